//! Hostile parameters against the built agent, table-driven over every declared parameter: each
//! rejected input must give the right exit code, exactly one `ocf-exit-reason:` line naming the
//! problem, no panic, and no side effect — nothing mounted, no command run (every tool the agent
//! could call is replaced by a recorder on its `PATH`), no process signalled (a canary holds a
//! directory under the scratch tree), nothing created, removed or changed on disk.
//!
//! Also: the status file of the depth-20 check cannot be redirected by a planted symlink, FIFO
//! or foreign directory inside the mounted filesystem.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use clever_agent_drbdfs::{monitor, start, stop, Config, DECLARATION, STATUS_DIR};
use clever_ocf::{run_with, Invocation, OcfExitCode, Parameters};
use ocf_conformance::hostile::{answer_problems, panicked, tree, Fake, FakeTools, Tally};

use super::{context, deadline, plain, LoopFs};

/// Every program the agent may run; each is replaced by one that records its call and fails.
const TOOLS: &[&str] = &[
    "mount",
    "umount",
    "fsck",
    "fsck.ext4",
    "blkid",
    "drbdsetup",
    "drbdadm",
    "attrd_updater",
    "crm_attribute",
    "crm_resource",
    "kill",
    "fuser",
    "lsof",
];

/// What one hostile run may not change, observed before and after.
struct Sandbox {
    fs: LoopFs,
    fakes: FakeTools,
    canary: Child,
    /// A second filesystem (tmpfs) a symlinked `directory` may point at.
    other: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let fs = LoopFs::new("hostile", "ext4");
        let fakes = FakeTools::new(fs.base.join("bin"), TOOLS, &Fake::Fails);
        let other = fs.base.join("other");
        std::fs::create_dir_all(&other).unwrap();
        super::run("mount", &["-t", "tmpfs", "none", other.to_str().unwrap()]);
        std::fs::write(other.join("keep"), "other mount\n").unwrap();
        let held = fs.base.join("held");
        std::fs::create_dir_all(&held).unwrap();
        let canary = Command::new("sleep")
            .arg("600")
            .current_dir(&held)
            .spawn()
            .unwrap();
        Self {
            fs,
            fakes,
            canary,
            other,
        }
    }

    /// Mounts whose source or mount point is ours: none may appear or go.
    fn mounts(&self) -> BTreeSet<(String, PathBuf)> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        clever_mounts::parse_mountinfo(&text)
            .unwrap()
            .into_iter()
            .filter(|m| {
                Path::new(&m.source) == self.fs.device
                    || m.source == "/dev/null"
                    || m.mount_point.starts_with(&self.fs.base)
            })
            .map(|m| (m.source, m.mount_point))
            .collect()
    }

    fn run(&self, action: &str, vars: &[(String, OsString)]) -> (Option<i32>, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_drbdfs"))
            .arg(action)
            .env_clear()
            .env("PATH", self.fakes.path())
            .env("HA_LOGFACILITY", "none")
            .env("OCF_RESOURCE_INSTANCE", "hostile")
            .env("OCF_RESKEY_CRM_meta_timeout", "20000")
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// A valid configuration with `overrides` applied (an empty name list removes a parameter).
    fn vars(&self, overrides: &[(&str, OsString)]) -> Vec<(String, OsString)> {
        let mut vars: Vec<(String, OsString)> = [
            ("device", self.fs.device.as_os_str()),
            ("directory", self.fs.directory.as_os_str()),
            ("fstype", OsStr::new("ext4")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (name, value) in overrides {
            vars.retain(|(k, _)| k != name);
            vars.push(((*name).to_owned(), value.clone()));
        }
        vars.into_iter()
            .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v))
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.canary.kill();
        let _ = self.canary.wait();
        let _ = Command::new("umount").arg(&self.other).status();
    }
}

fn os(text: &str) -> OsString {
    OsString::from(text)
}

fn bytes(raw: &[u8]) -> OsString {
    OsStr::from_bytes(raw).to_owned()
}

/// One row: parameter values, the exit code start and validate-all must give, and a word the
/// exit reason must contain.
struct Case {
    label: String,
    set: Vec<(&'static str, OsString)>,
    code: i32,
    needle: &'static str,
}

fn case(label: &str, set: Vec<(&'static str, OsString)>, code: i32, needle: &'static str) -> Case {
    Case {
        label: label.to_owned(),
        set,
        code,
        needle,
    }
}

/// The values every parameter is tried with; each must be refused (6) by stage one. Longer
/// than 64 KiB is refused by the framework; the environment of one exec cannot carry a single
/// value much over 128 KiB (MAX_ARG_STRLEN), so 1 MiB is tried in-process below.
fn junk() -> Vec<(&'static str, OsString, &'static str)> {
    vec![
        ("whitespace-padded", os(" \t x \n"), ""),
        ("100 KB", os(&"x".repeat(100_000)), "longer than"),
        ("non-UTF-8", bytes(b"/srv/\xff\xfe"), "UTF-8"),
    ]
}

fn cases(sandbox: &Sandbox) -> Vec<Case> {
    let base = &sandbox.fs.base;
    let regular = base.join("regular.img");
    std::fs::write(&regular, vec![0_u8; 4096]).unwrap();
    let fifo = base.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let to_root = base.join("to-root");
    std::os::unix::fs::symlink("/", &to_root).unwrap();
    let to_other = base.join("to-other");
    std::os::unix::fs::symlink(&sandbox.other, &to_other).unwrap();
    let to_proc = base.join("to-proc");
    std::os::unix::fs::symlink("/proc", &to_proc).unwrap();
    let device_link = base.join("device-link");
    std::os::unix::fs::symlink("/dev/null", &device_link).unwrap();

    let mut cases = Vec::new();
    for spec in DECLARATION.parameters {
        let name = spec.name();
        for (label, value, needle) in junk() {
            let needle = if needle.is_empty() { name } else { needle };
            cases.push(case(
                &format!("{name} {label}"),
                vec![(name, value)],
                6,
                needle,
            ));
        }
    }
    for name in ["device", "directory", "fstype"] {
        cases.push(case(
            &format!("{name} empty"),
            vec![(name, os(""))],
            6,
            name,
        ));
        cases.push(case(
            &format!("{name} blank"),
            vec![(name, os("  \t"))],
            6,
            name,
        ));
    }
    let path = |p: &Path| p.as_os_str().to_owned();
    cases.extend([
        // device
        case(
            "device relative",
            vec![("device", os("dev/loop0"))],
            6,
            "absolute",
        ),
        case(
            "device ..",
            vec![("device", os("/dev/../dev/loop0"))],
            6,
            "..",
        ),
        case(
            "device regular file",
            vec![("device", path(&regular))],
            6,
            "not a block device",
        ),
        case(
            "device /dev/null",
            vec![("device", os("/dev/null"))],
            6,
            "not a block device",
        ),
        case(
            "device symlink to /dev/null",
            vec![("device", path(&device_link))],
            6,
            "not a block device",
        ),
        case(
            "device FIFO",
            vec![("device", path(&fifo))],
            6,
            "not a block device",
        ),
        case(
            "device directory",
            vec![("device", path(base))],
            6,
            "not a block device",
        ),
        case(
            "device missing",
            vec![("device", path(&base.join("absent")))],
            5,
            "does not exist",
        ),
        case(
            "device option-like",
            vec![("device", os("-o"))],
            6,
            "absolute",
        ),
        // directory
        case("directory /", vec![("directory", os("/"))], 6, "/"),
        case(
            "directory relative",
            vec![("directory", os("srv/x"))],
            6,
            "absolute",
        ),
        case(
            "directory ..",
            vec![("directory", path(&base.join("held/../mnt")))],
            6,
            "..",
        ),
        case(
            "directory symlink to /",
            vec![("directory", path(&to_root))],
            6,
            "resolves to /",
        ),
        case(
            "directory symlink to another mount",
            vec![("directory", path(&to_other))],
            6,
            "resolves to",
        ),
        case(
            "directory symlink to /proc",
            vec![("directory", path(&to_proc))],
            6,
            "resolves to /proc",
        ),
        case(
            "directory under a symlinked parent",
            vec![("directory", path(&to_other.join("new")))],
            6,
            "resolves to",
        ),
        case(
            "directory option-like",
            vec![("directory", os("--bind"))],
            6,
            "absolute",
        ),
        // fstype
        case(
            "fstype with an option",
            vec![("fstype", os("ext4 -o bind"))],
            6,
            "fstype",
        ),
        case("fstype list", vec![("fstype", os("ext4,xfs"))], 6, "fstype"),
        case(
            "fstype path",
            vec![("fstype", os("../../tmp/x"))],
            6,
            "fstype",
        ),
        case(
            "fstype long",
            vec![("fstype", os(&"e".repeat(33)))],
            6,
            "fstype",
        ),
        // options
        case(
            "options ro,bind",
            vec![("options", os("ro,bind"))],
            6,
            "options",
        ),
        case(
            "options newline",
            vec![("options", os("ro\nremount"))],
            6,
            "options",
        ),
        case(
            "options x=y,remount",
            vec![("options", os("x=y,remount"))],
            6,
            "options",
        ),
        case(
            "options rbind",
            vec![("options", os("rbind"))],
            6,
            "options",
        ),
        case(
            "options move",
            vec![("options", os("noatime,move"))],
            6,
            "options",
        ),
        case(
            "options propagation",
            vec![("options", os("make-rshared"))],
            6,
            "options",
        ),
        case(
            "options shared",
            vec![("options", os("rw,shared"))],
            6,
            "options",
        ),
        case(
            "options remount=",
            vec![("options", os("remount=1"))],
            6,
            "options",
        ),
        case(
            "options space",
            vec![("options", os("ro bind"))],
            6,
            "options",
        ),
        case(
            "options tab",
            vec![("options", os("ro\tbind"))],
            6,
            "options",
        ),
        case(
            "options empty item",
            vec![("options", os("ro,,rw"))],
            6,
            "options",
        ),
        case(
            "options trailing comma",
            vec![("options", os("ro,"))],
            6,
            "options",
        ),
        case(
            "options lone comma",
            vec![("options", os(","))],
            6,
            "options",
        ),
        // drbd_resource
        case(
            "drbd_resource path",
            vec![("drbd_resource", os("../r0"))],
            6,
            "drbd_resource",
        ),
        case(
            "drbd_resource shell",
            vec![("drbd_resource", os("r0;reboot"))],
            6,
            "drbd_resource",
        ),
        case(
            "drbd_resource option",
            vec![("drbd_resource", os("--force"))],
            6,
            "drbd_resource",
        ),
        case(
            "drbd_resource 65",
            vec![("drbd_resource", os(&"r".repeat(65)))],
            6,
            "drbd_resource",
        ),
        // choices
        case(
            "drbd_promotion yes",
            vec![("drbd_promotion", os("yes"))],
            6,
            "drbd_promotion",
        ),
        case(
            "drbd_promotion case",
            vec![("drbd_promotion", os("AUTO"))],
            6,
            "drbd_promotion",
        ),
        case("fsck maybe", vec![("fsck", os("maybe"))], 6, "fsck"),
        case("fsck number", vec![("fsck", os("-1"))], 6, "fsck"),
        case(
            "force_unmount kill",
            vec![("force_unmount", os("kill"))],
            6,
            "force_unmount",
        ),
        case(
            "force_unmount 1",
            vec![("force_unmount", os("1"))],
            6,
            "force_unmount",
        ),
    ]);
    cases
}

#[test]
fn hostile_parameters_are_refused_without_side_effects() {
    let mut sandbox = Sandbox::new();
    let cases = cases(&sandbox);
    let mounts = sandbox.mounts();
    let mut before = tree(&sandbox.fs.base);
    let mut tally = Tally::new("drbdfs", "parameters");
    for case in &cases {
        let vars = sandbox.vars(&case.set);
        for action in ["validate-all", "start"] {
            let (code, stderr) = sandbox.run(action, &vars);
            let mut wrong = answer_problems(code, case.code, &stderr, case.needle);
            let mut side_effects = Vec::new();
            if let Some(calls) = sandbox.fakes.take_calls() {
                side_effects.push(format!("ran {calls:?}"));
            }
            if sandbox.mounts() != mounts {
                side_effects.push(format!("mounts changed: {:?}", sandbox.mounts()));
            }
            if sandbox.canary.try_wait().unwrap().is_some() {
                side_effects.push("the canary process was signalled".to_owned());
            }
            let now = tree(&sandbox.fs.base);
            if now != before {
                let added: Vec<_> = now.difference(&before).collect();
                let gone: Vec<_> = before.difference(&now).collect();
                side_effects.push(format!("disk changed: +{added:?} -{gone:?}"));
                // Blame only the run that did it.
                before = now;
            }
            let side_effect = !side_effects.is_empty();
            wrong.extend(side_effects);
            if !wrong.is_empty() {
                wrong.push(format!(
                    "stderr: {}",
                    stderr.trim().chars().take(400).collect::<String>()
                ));
            }
            tally.record(
                &format!("{} ({action})", case.label),
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
    let huge = OsString::from("/".repeat(1 << 20));
    for spec in DECLARATION.parameters {
        let mut vars = vec![
            ("OCF_RESKEY_device".to_owned(), OsString::from("/dev/loop0")),
            ("OCF_RESKEY_directory".to_owned(), OsString::from("/srv/x")),
            ("OCF_RESKEY_fstype".to_owned(), OsString::from("ext4")),
        ];
        let key = format!("OCF_RESKEY_{}", spec.name());
        vars.retain(|(k, _)| *k != key);
        vars.push((key, huge.clone()));
        let mut out = Vec::new();
        let mut err = Vec::new();
        let invocation = Invocation::new(["validate-all"], vars);
        let code = run_with(&DECLARATION, &invocation, &mut out, &mut err);
        let err = String::from_utf8_lossy(&err);
        assert_eq!(code, OcfExitCode::ErrConfigured, "{}: {err}", spec.name());
        assert!(err.contains("longer than"), "{}: {err}", spec.name());
        assert!(err.len() < 4096, "the 1 MiB value is echoed back");
        let loaded = Parameters::load(DECLARATION.parameters, |k| {
            (k == format!("OCF_RESKEY_{}", spec.name())).then(|| huge.clone())
        });
        assert!(loaded.is_err());
    }
}

/// A node's status file inside the mounted filesystem, planted before the depth-20 check as a
/// symlink, a FIFO, a hard link or a directory, is never written through, and the check fails
/// rather than hangs; a status directory not owned by root, or writable by others, is refused.
#[test]
fn depth_20_status_file_cannot_be_redirected() {
    let fs = LoopFs::new("status-file", "ext4");
    let config: Config = fs.config(&[]);
    start(&config, &plain(), &deadline(30)).unwrap();
    // A first check creates the private root-owned directory and the file.
    monitor(&config, &plain(), &context(20)).unwrap();
    let status_dir = fs.directory.join(STATUS_DIR);
    let meta = std::fs::symlink_metadata(&status_dir).unwrap();
    assert!(meta.is_dir());
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o700));
    let files: Vec<PathBuf> = std::fs::read_dir(&status_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = files[0].clone();
    assert_eq!(
        std::fs::symlink_metadata(&file).unwrap().mode() & 0o777,
        0o600
    );

    let victim = fs.base.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let plant = |how: &str| {
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_dir(&file);
        match how {
            "symlink" => std::os::unix::fs::symlink(&victim, &file).unwrap(),
            "dangling symlink" => {
                std::os::unix::fs::symlink(fs.base.join("created"), &file).unwrap();
            }
            "fifo" => {
                nix::unistd::mkfifo(&file, nix::sys::stat::Mode::S_IRWXU).unwrap();
            }
            "directory" => std::fs::create_dir(&file).unwrap(),
            _ => unreachable!(),
        }
    };
    // Every check below asserts; a run that reaches the tally was right.
    let mut tally = Tally::new("drbdfs", "planted-status-files");
    for how in ["symlink", "dangling symlink", "fifo", "directory"] {
        plant(how);
        let started = std::time::Instant::now();
        let result = monitor(&config, &plain(), &context(20));
        assert!(result.is_err(), "{how}: the check passed through it");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{how}: hung"
        );
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious\n",
            "{how}"
        );
        assert!(
            !fs.base.join("created").exists(),
            "{how}: created the target"
        );
        let kind = std::fs::symlink_metadata(&file).unwrap().file_type();
        match how {
            "fifo" => assert!(kind.is_fifo()),
            "directory" => assert!(kind.is_dir()),
            _ => assert!(kind.is_symlink(), "{how}: the symlink was replaced"),
        }
        tally.record(how, false, false, &[]);
    }
    let _ = std::fs::remove_dir(&file);

    // The status directory itself: a symlink (tested in tests.rs), not root's, or group- or
    // world-writable.
    std::os::unix::fs::chown(&status_dir, Some(65534), None).unwrap();
    let err = monitor(&config, &plain(), &context(20)).unwrap_err();
    assert!(err.to_string().contains("private root-owned"), "{err}");
    std::os::unix::fs::chown(&status_dir, Some(0), None).unwrap();
    std::fs::set_permissions(&status_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = monitor(&config, &plain(), &context(20)).unwrap_err();
    assert!(err.to_string().contains("private root-owned"), "{err}");
    std::fs::set_permissions(&status_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    tally.record(
        "status directory not root's, then world-writable",
        false,
        false,
        &[],
    );
    monitor(&config, &plain(), &context(20)).unwrap();
    stop(&config, &plain(), &deadline(30)).unwrap();
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}
