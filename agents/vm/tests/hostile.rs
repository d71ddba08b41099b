//! Hostile parameters against the built agent on a real libvirtd node, table-driven over every
//! declared parameter: each input gets the right exit code for validate-all, start and a
//! recurring monitor, exactly one `ocf-exit-reason:` line naming the problem when it fails, no
//! panic, and no side effect — nothing defined or started in libvirt, no qemu process, nothing
//! created, removed or changed in the shared directory (hibernation images and domain XML) or
//! in the node's run directory.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use clever_agent_vm::DECLARATION;
use clever_ocf::{run_with, Invocation, OcfExitCode};
use ocf_conformance::hostile::{exit_reasons, panicked, tree, Tally};

use super::lab::{self, Lab, Node, NodeOptions};

const ACTIONS: [&str; 3] = ["validate-all", "start", "monitor"];

/// Exit codes expected for validate-all, start and a recurring monitor.
type Codes = [i32; 3];
const REFUSED: Codes = [6, 6, 6];

struct Case {
    parameter: &'static str,
    value: OsString,
    codes: Codes,
    /// A word the exit reason of a failed action must contain.
    needle: &'static str,
    /// Other parameters this case sets.
    extra: Vec<(&'static str, OsString)>,
}

impl Case {
    fn with(mut self, parameter: &'static str, value: &str) -> Self {
        self.extra.push((parameter, value.into()));
        self
    }
}

fn case(
    parameter: &'static str,
    value: impl Into<OsString>,
    codes: Codes,
    needle: &'static str,
) -> Case {
    Case {
        parameter,
        value: value.into(),
        codes,
        needle,
        extra: Vec::new(),
    }
}

/// Runs the agent inside the node with exactly `vars` as its OCF environment.
fn run(node: &Node, action: &str, vars: &[(String, OsString)]) -> Output {
    Command::new("nsenter")
        .arg("-t")
        .arg(node.init_pid.to_string())
        .args(["-m", "-p", "--", lab::AGENT, action])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HA_LOGFACILITY", "none")
        .env("OCF_RESOURCE_INSTANCE", "vm-hostile")
        .env("OCF_RESKEY_CRM_meta_timeout", "20000")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .expect("nsenter is missing: install util-linux")
}

/// What libvirt and the node hold that no rejected input may change.
fn libvirt_state(node: &Node) -> String {
    let list = node.virsh(&["list", "--all", "--name"]);
    assert!(list.status.success(), "virsh list failed");
    let qemu: Vec<u32> = node
        .processes()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("qemu"))
        })
        .collect();
    format!(
        "domains {:?}, qemu {qemu:?}",
        String::from_utf8_lossy(&list.stdout).trim()
    )
}

#[test]
fn hostile_parameters_are_answered_without_side_effects() {
    let _serial = lab::serial_guard();
    let lab = Lab::new("hostile");
    let node = Node::start(&lab, "a", &NodeOptions::default());
    let domain = "cvt-hostile";
    let config = lab.domain_xml(domain, 32);
    // Fixtures, all made before the snapshot.
    let other = lab.domain_xml("cvt-other", 32);
    let shared = &lab.shared;
    let no_uuid = shared.join("no-uuid.xml");
    let xml = std::fs::read_to_string(&config).unwrap();
    let start = xml.find("<uuid>").unwrap();
    let end = xml.find("</uuid>").unwrap() + "</uuid>".len();
    std::fs::write(&no_uuid, format!("{}{}", &xml[..start], &xml[end..])).unwrap();
    let escaping = shared.join("escaping.xml");
    std::fs::write(&escaping, xml.replace(domain, "../../etc/cron.d/x")).unwrap();
    let fifo = shared.join("config.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let huge = shared.join("huge.xml");
    let mut padded = xml.clone().into_bytes();
    padded.resize(11 << 20, b' ');
    std::fs::write(&huge, padded).unwrap();
    let plain_file = shared.join("plain-file");
    std::fs::write(&plain_file, "not a directory\n").unwrap();
    let root_link = shared.join("to-root");
    std::os::unix::fs::symlink("/", &root_link).unwrap();

    let path = |p: &Path| p.as_os_str().to_owned();
    let mut cases = Vec::new();
    for spec in DECLARATION.parameters {
        let name = spec.name();
        cases.push(case(name, "9".repeat(100_000), REFUSED, "longer than"));
        cases.push(case(
            name,
            OsStr::from_bytes(b"1\xff\xfe"),
            REFUSED,
            "UTF-8",
        ));
        if name != "domain" {
            // Values are trimmed; the blank inside is what is refused.
            cases.push(case(name, " \t x y \n", REFUSED, name));
        }
    }
    cases.extend([
        case("config", "clever.xml", REFUSED, "absolute"),
        case("config", "/srv/../etc/passwd", REFUSED, ".."),
        case("config", "/", REFUSED, "regular file"),
        case("config", path(&fifo), REFUSED, "regular file"),
        case("config", "/dev/zero", REFUSED, "regular file"),
        case("config", path(&huge), REFUSED, "bytes"),
        case("config", "/etc/passwd", REFUSED, "XML"),
        case("config", path(&escaping), REFUSED, "domain name"),
        case(
            "config",
            "/nonexistent/clever.xml",
            [5, 5, 5],
            "cannot read",
        ),
        // The monitor needs no UUID: it asks libvirt by name, and nothing is defined.
        case("config", path(&no_uuid), [6, 6, 7], "uuid"),
        // A domain XML that names another domain than the `domain` parameter.
        case("config", path(&other), [6, 6, 7], "does not match").with("domain", domain),
        case("domain", "../x", REFUSED, "domain"),
        case("domain", "a/b", REFUSED, "domain"),
        case("domain", ".", REFUSED, "domain"),
        case("domain", "..", REFUSED, "domain"),
        case("domain", "x".repeat(256), REFUSED, "domain"),
        case("domain", "a\u{1}b", REFUSED, "domain"),
        case("domain", "cvt-other", [6, 6, 7], "does not match"),
        case("domain", "-x y", [6, 6, 7], "does not match"),
        case(
            "hypervisor",
            "qemu+ssh://root@192.0.2.1/system",
            REFUSED,
            "local",
        ),
        case(
            "hypervisor",
            "qemu+tcp://192.0.2.1/system",
            REFUSED,
            "local",
        ),
        case("hypervisor", "qemu://localhost/system", REFUSED, "local"),
        case("hypervisor", "qemu:///session", REFUSED, "local"),
        case("hypervisor", "xen:///system", REFUSED, "local"),
        case("hypervisor", "test:///default", REFUSED, "local"),
        case(
            "hypervisor",
            "qemu:///system?socket=/x\u{7f}",
            REFUSED,
            "control",
        ),
        case("hibernate_dir", "hibernate", REFUSED, "absolute"),
        case("hibernate_dir", "/srv/../etc", REFUSED, ".."),
        case("hibernate_dir", "/", [6, 6, 7], "root filesystem"),
        case("hibernate_dir", "/etc", [6, 6, 7], "root filesystem"),
        case(
            "hibernate_dir",
            path(&root_link),
            [6, 6, 7],
            "root filesystem",
        ),
        case("hibernate_dir", path(&plain_file), [5, 5, 7], "not usable"),
        case(
            "hibernate_dir",
            "/nonexistent/hibernate",
            [5, 5, 7],
            "not usable",
        ),
        case("stop_method", "HIBERNATE", REFUSED, "stop_method"),
        case("stop_method", "hibernate;reboot", REFUSED, "stop_method"),
        case("stop_method", "hibernate,destroy", REFUSED, "stop_method"),
        case("stop_method", "suspend", REFUSED, "stop_method"),
        case("shutdown_timeout", "-1", REFUSED, "shutdown_timeout"),
        case("shutdown_timeout", "3601", REFUSED, "shutdown_timeout"),
        case(
            "shutdown_timeout",
            "4294967296",
            REFUSED,
            "shutdown_timeout",
        ),
        case(
            "shutdown_timeout",
            "99999999999999999999",
            REFUSED,
            "shutdown_timeout",
        ),
        case("shutdown_timeout", "1e3", REFUSED, "shutdown_timeout"),
        case("shutdown_timeout", "60s", REFUSED, "shutdown_timeout"),
        case("shutdown_timeout", "0x10", REFUSED, "shutdown_timeout"),
        case("shutdown_timeout", "NaN", REFUSED, "shutdown_timeout"),
        case(
            "on_restore_failure",
            "delete",
            REFUSED,
            "on_restore_failure",
        ),
        case("on_restore_failure", "Boot", REFUSED, "on_restore_failure"),
        case(
            "on_restore_failure",
            "boot fail",
            REFUSED,
            "on_restore_failure",
        ),
    ]);

    let base = [
        ("config", path(&config)),
        ("hibernate_dir", path(&node.hibernate_dir)),
        ("hypervisor", OsString::from("qemu:///system")),
    ];
    let run_dir = node.dir.join("run/resource-agents");
    let shared_before = tree(shared);
    let libvirt_before = libvirt_state(&node);
    assert_eq!(libvirt_before, "domains \"\", qemu []");
    let mut tally = Tally::new("vm", "hostile_parameters");
    for Case {
        parameter,
        value,
        codes,
        needle,
        extra,
    } in &cases
    {
        let mut vars: Vec<(String, OsString)> = base
            .iter()
            .filter(|(k, _)| k != parameter)
            .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.clone()))
            .collect();
        vars.push((format!("OCF_RESKEY_{parameter}"), value.clone()));
        for (k, v) in extra {
            vars.push((format!("OCF_RESKEY_{k}"), v.clone()));
        }
        for (action, want) in ACTIONS.iter().zip(codes) {
            let mut vars = vars.clone();
            if *action == "monitor" {
                vars.push(("OCF_RESKEY_CRM_meta_interval".to_owned(), "10000".into()));
            }
            let output = run(&node, action, &vars);
            let stderr = String::from_utf8_lossy(&output.stderr);
            let reasons = exit_reasons(&stderr);
            let mut wrong = Vec::new();
            if output.status.code() != Some(*want) {
                wrong.push(format!("exit {:?}, want {want}", output.status.code()));
            }
            let panicked = panicked(&stderr);
            if panicked {
                wrong.push("panicked".to_owned());
            }
            if *want != 0 && *want != 7 {
                if reasons.len() != 1 {
                    wrong.push(format!("{} exit reasons", reasons.len()));
                } else if !reasons[0].to_lowercase().contains(&needle.to_lowercase()) {
                    wrong.push(format!("reason lacks {needle:?}"));
                }
            }
            if reasons.iter().any(|r| r.len() > 512) {
                wrong.push("exit reason over 512 bytes".to_owned());
            }
            let mut side_effect = false;
            if run_dir.exists() {
                side_effect = true;
                wrong.push("wrote the run directory".to_owned());
                let _ = std::fs::remove_dir_all(&run_dir);
            }
            if tree(shared) != shared_before {
                side_effect = true;
                wrong.push("changed the shared directory".to_owned());
            }
            // libvirt is asked once per parameter (each question costs a virsh call); a change
            // counts against the parameter's last action.
            if action == ACTIONS.last().unwrap_or(action) {
                let libvirt_after = libvirt_state(&node);
                if libvirt_after != libvirt_before {
                    side_effect = true;
                    wrong.push(format!("libvirt changed: {libvirt_after}"));
                }
            }
            if !wrong.is_empty() {
                wrong.push(format!(
                    "stderr: {}",
                    stderr.trim().chars().take(400).collect::<String>()
                ));
            }
            let shown: String = value.to_string_lossy().chars().take(48).collect();
            tally.record(
                &format!("{parameter}={shown:?} ({action})"),
                panicked,
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
        let mut vars = vec![
            ("OCF_RESKEY_config".to_owned(), OsString::from("/srv/c.xml")),
            (
                "OCF_RESKEY_hibernate_dir".to_owned(),
                OsString::from("/srv/h"),
            ),
        ];
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
