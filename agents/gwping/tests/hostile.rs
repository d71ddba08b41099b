//! Hostile parameters against the built agent, table-driven over every declared parameter: each
//! rejected input must exit 6 (not configured) with exactly one `ocf-exit-reason:` line naming
//! the parameter, no panic, and no side effect — no attribute written (a recording
//! `attrd_updater` comes first on `PATH`), no state file or run directory created, nothing
//! changed under the scratch tree.
//!
//! Also: the state file cannot be redirected or removed through a planted symlink, FIFO,
//! directory or foreign file, whether it is the per-instance file in `$HA_RSCTMP` or `pidfile`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use clever_agent_gwping::DECLARATION;
use clever_ocf::{run_with, Invocation, OcfExitCode};
use ocf_conformance::hostile::{self, answer_problems, panicked, tree, Fake, FakeTools, Tally};

/// A scratch tree with a recording `attrd_updater`, a run directory that must stay absent, and
/// the snapshot every rejected run is compared with.
pub(super) struct Sandbox {
    pub(super) base: PathBuf,
    pub(super) fakes: FakeTools,
    pub(super) run_dir: PathBuf,
}

impl Sandbox {
    pub(super) fn new(label: &str) -> Self {
        let base =
            std::env::temp_dir().join(format!("gwping-hostile-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let fakes = FakeTools::new(
            base.join("bin"),
            &["attrd_updater", "crm_attribute", "ping", "fping", "ping6"],
            &Fake::Fails,
        );
        Self {
            run_dir: base.join("run"),
            base,
            fakes,
        }
    }

    fn run(&self, action: &str, vars: &[(String, OsString)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_gwping"))
            .arg(action)
            .env_clear()
            .env("PATH", self.fakes.path())
            .env("HA_LOGFACILITY", "none")
            .env("HA_RSCTMP", &self.run_dir)
            .env("OCF_RESOURCE_INSTANCE", "gw")
            .env("OCF_RESKEY_CRM_meta_timeout", "10000")
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// A valid configuration (host_list only) with `overrides` applied.
fn vars(overrides: &[(&str, OsString)]) -> Vec<(String, OsString)> {
    let mut vars = vec![("host_list".to_owned(), OsString::from("127.0.0.1"))];
    for (name, value) in overrides {
        vars.retain(|(k, _)| k != name);
        vars.push(((*name).to_owned(), value.clone()));
    }
    vars.into_iter()
        .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v))
        .collect()
}

fn os(text: &str) -> OsString {
    OsString::from(text)
}

fn exit_reasons(output: &Output) -> Vec<String> {
    hostile::exit_reasons(&String::from_utf8_lossy(&output.stderr))
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// (parameter, value, word the exit reason must contain).
fn cases(sandbox: &Sandbox) -> Vec<(&'static str, OsString, &'static str)> {
    let mut cases = Vec::new();
    for spec in DECLARATION.parameters {
        let name = spec.name();
        // A value longer than 64 KiB is refused by the framework; one exec's environment cannot
        // carry a single value much over 128 KiB, so 1 MiB is tried in-process below.
        cases.push((name, os(&"9".repeat(100_000)), "longer than"));
        cases.push((name, OsStr::from_bytes(b"1\xff\xfe").to_owned(), "UTF-8"));
        if name != "host_list" {
            // Values are trimmed; blanks inside are separators only in host_list.
            cases.push((name, os(" \t x y \n"), name));
        }
    }
    let thousands: Vec<String> = (0..10_000)
        .map(|i| format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256 + 1))
        .collect();
    let hosts = |text: &str| ("host_list", os(text), "host_list");
    cases.extend([
        ("host_list", os(&thousands.join(" ")), "longer than"),
        ("host_list", os(&vec!["g"; 10_000].join(" ")), "at most 256"),
        (
            "host_list",
            os(&vec!["127.0.0.1"; 257].join(",")),
            "at most 256",
        ),
        hosts("10.0.0.1:3"),
        hosts("0.0.0.0"),
        hosts("::"),
        hosts("224.0.0.1"),
        hosts("ff02::1"),
        hosts("255.255.255.255"),
        hosts("-oProxyCommand=x"),
        hosts("gw;reboot"),
        hosts("$(reboot)"),
        hosts("a..b"),
        hosts("=3"),
        hosts("gw=0"),
        hosts("gw=-1"),
        hosts("gw=4294967296"),
        hosts("gw=1000001"),
        hosts("gw=x"),
        hosts("fe80::1%../../x"),
        hosts("fe80::1%eth0/x"),
        hosts("10.0.0.1%eth0"),
        hosts(&format!("{}.example", "a".repeat(64))),
        hosts(&"a.".repeat(127)),
        hosts("../../etc/passwd"),
        ("host_list", os(" , \t,"), "host_list"),
        ("name", os("../x"), "name"),
        ("name", os("-n"), "name"),
        ("name", os("a b"), "name"),
        ("name", os(&"n".repeat(300)), "name"),
        ("multiplier", os("-9223372036854775808"), "multiplier"),
        ("multiplier", os("9223372036854775808"), "multiplier"),
        ("multiplier", os("-1000001"), "multiplier"),
        ("multiplier", os("1000001"), "multiplier"),
        ("multiplier", os("1e3"), "multiplier"),
        ("multiplier", os("0x10"), "multiplier"),
        ("multiplier", os("NaN"), "multiplier"),
        ("dampen", os("-1"), "dampen"),
        ("dampen", os("99999999999999999999"), "dampen"),
        ("dampen", os("18446744073709551615h"), "dampen"),
        ("dampen", os("2h"), "dampen"),
        ("dampen", os("1.5s"), "dampen"),
        ("dampen", os("5 parsecs"), "dampen"),
        ("attempts", os("0"), "attempts"),
        ("attempts", os("-1"), "attempts"),
        ("attempts", os("21"), "attempts"),
        ("attempts", os("4294967296"), "attempts"),
        ("attempts", os("three"), "attempts"),
        ("timeout", os("0"), "timeout"),
        ("timeout", os("-5"), "timeout"),
        ("timeout", os("9ms"), "timeout"),
        ("timeout", os("301s"), "timeout"),
        ("timeout", os("18446744073709551615"), "timeout"),
        ("failure_score", os("-9223372036854775809"), "failure_score"),
        ("failure_score", os("9223372036854775808"), "failure_score"),
        ("failure_score", os("1.5"), "failure_score"),
        ("failure_score", os("-INFINITY"), "failure_score"),
        ("interface", os("a/b"), "interface"),
        ("interface", os("1234567890123456"), "interface"),
        ("interface", os(".."), "interface"),
        ("interface", os("eth0:1"), "interface"),
        ("interface", os("eth 0"), "interface"),
        ("pidfile", os("relative/state"), "pidfile"),
        ("pidfile", os("/run/../etc/passwd"), "pidfile"),
        (
            "pidfile",
            sandbox.base.join("run/../x").into_os_string(),
            "pidfile",
        ),
        ("options", os("-I eth0"), "options"),
        ("options", os("x"), "options"),
        ("use_fping", os("maybe"), "use_fping"),
        ("debug", os("loud"), "debug"),
        ("debug", os("-1"), "debug"),
    ]);
    cases
}

#[test]
fn hostile_parameters_are_refused_without_side_effects() {
    let sandbox = Sandbox::new("params");
    let cases = cases(&sandbox);
    let before = tree(&sandbox.base);
    let mut tally = Tally::new("gwping", "parameters");
    for (name, value, needle) in &cases {
        let vars = vars(&[(name, value.clone())]);
        for action in ["validate-all", "start", "monitor"] {
            let output = sandbox.run(action, &vars);
            let stderr = String::from_utf8_lossy(&output.stderr);
            let mut wrong = answer_problems(output.status.code(), 6, &stderr, needle);
            let mut side_effects = Vec::new();
            if let Some(calls) = sandbox.fakes.take_calls() {
                side_effects.push(format!("ran {calls:?}"));
            }
            if sandbox.run_dir.exists() {
                side_effects.push("created the run directory".to_owned());
                let _ = std::fs::remove_dir_all(&sandbox.run_dir);
            }
            if tree(&sandbox.base) != before {
                side_effects.push("changed the scratch tree".to_owned());
            }
            let side_effect = !side_effects.is_empty();
            wrong.extend(side_effects);
            if !wrong.is_empty() {
                wrong.push(format!(
                    "stderr: {}",
                    stderr.trim().chars().take(400).collect::<String>()
                ));
            }
            let shown: String = value.to_string_lossy().chars().take(40).collect();
            tally.record(
                &format!("{name}={shown:?} ({action})"),
                panicked(&stderr),
                side_effect,
                &wrong,
            );
        }
    }
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}

/// 1 MiB values cannot pass through one exec's environment; the framework sees them in-process.
#[test]
fn one_mebibyte_values_are_refused_in_process() {
    let huge = OsString::from("1".repeat(1 << 20));
    for spec in DECLARATION.parameters {
        let mut vars = vec![("OCF_RESKEY_host_list".to_owned(), os("127.0.0.1"))];
        let key = format!("OCF_RESKEY_{}", spec.name());
        vars.retain(|(k, _)| *k != key);
        vars.push((key, huge.clone()));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(
            &DECLARATION,
            &Invocation::new(["validate-all"], vars),
            &mut out,
            &mut err,
        );
        let err = String::from_utf8_lossy(&err);
        assert_eq!(code, OcfExitCode::ErrConfigured, "{}: {err}", spec.name());
        assert!(err.contains("longer than"), "{}: {err}", spec.name());
        assert!(err.len() < 4096, "the 1 MiB value is echoed back");
    }
}

/// A symlink, FIFO, directory or foreign file where the state file goes (in `$HA_RSCTMP`, or
/// as `pidfile`) is never written through, adopted, removed or waited on: start and monitor
/// fail with a reason, stop succeeds with a warning and leaves it in place.
#[test]
fn planted_state_files_are_neither_followed_nor_removed() {
    let sandbox = Sandbox::new("state");
    std::fs::create_dir_all(&sandbox.run_dir).unwrap();
    let victim = sandbox.base.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let dangling = sandbox.base.join("created-through-symlink");
    let by_instance = sandbox.run_dir.join("gwping-gw");
    let pidfile = sandbox.base.join("pidfile");
    // Every check below asserts; a run that reaches the tally was right.
    let mut tally = Tally::new("gwping", "planted-state-files");
    for (state, extra) in [
        (&by_instance, vec![]),
        (
            &pidfile,
            vec![("pidfile", pidfile.clone().into_os_string())],
        ),
    ] {
        for how in [
            "symlink",
            "dangling symlink",
            "fifo",
            "directory",
            "foreign",
        ] {
            let _ = std::fs::remove_file(state);
            let _ = std::fs::remove_dir(state);
            match how {
                "symlink" => std::os::unix::fs::symlink(&victim, state).unwrap(),
                "dangling symlink" => std::os::unix::fs::symlink(&dangling, state).unwrap(),
                "fifo" => nix::unistd::mkfifo(state, nix::sys::stat::Mode::S_IRWXU).unwrap(),
                "directory" => std::fs::create_dir(state).unwrap(),
                "foreign" => std::fs::write(state, "root:x:0:0::/root:/bin/sh\n").unwrap(),
                _ => unreachable!(),
            }
            let before = std::fs::symlink_metadata(state).unwrap();
            let vars = vars(&extra);
            for action in ["start", "monitor", "stop"] {
                let started = Instant::now();
                let output = sandbox.run(action, &vars);
                let what = format!("{} as {how}, {action}", state.display());
                assert!(started.elapsed() < Duration::from_secs(8), "{what}: hung");
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(!stderr.contains("panicked"), "{what}: {stderr}");
                if action == "stop" {
                    // A stop that failed would get the node fenced: it succeeds, warns, and
                    // leaves the planted file alone (checked below).
                    assert!(output.status.success(), "{what}: {output:?}");
                    assert!(stderr.contains("WARNING"), "{what}: {stderr}");
                } else {
                    assert!(!output.status.success(), "{what}: succeeded: {output:?}");
                    assert_eq!(exit_reasons(&output).len(), 1, "{what}: {stderr}");
                }
                let _ = sandbox.fakes.take_calls();
                assert_eq!(
                    std::fs::read_to_string(&victim).unwrap(),
                    "precious\n",
                    "{what}"
                );
                assert!(!dangling.exists(), "{what}: created the symlink's target");
                let after = std::fs::symlink_metadata(state)
                    .unwrap_or_else(|e| panic!("{what}: the planted file is gone: {e}"));
                assert_eq!(
                    (after.ino(), after.mode(), after.len()),
                    (before.ino(), before.mode(), before.len()),
                    "{what}: the planted file changed"
                );
                tally.record(&what, false, false, &[]);
            }
        }
        let _ = std::fs::remove_file(state);
        let _ = std::fs::remove_dir(state);
    }
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}
