//! `ocf:clever:vm` against real libvirtd + qemu (TCG) nodes built by `lab`: nothing mocked.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod hostile;
mod lab;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use clever_agent_vm::image::{MAGIC_PARTIAL, MAGIC_SAVE};
use clever_agent_vm::DECLARATION;
use clever_ocf::metadata_xml;
use lab::{patch, signal, wait_until, Lab, Node, NodeOptions};
use ocf_conformance::executable;

const PROBE: (&str, &str) = ("OCF_RESKEY_CRM_meta_interval", "0");
const RECURRING: (&str, &str) = ("OCF_RESKEY_CRM_meta_interval", "10000");

/// The agent's parameters for `domain` on `node`.
fn params<'a>(config: &'a str, node: &'a Node) -> Vec<(&'a str, &'a str)> {
    vec![
        ("config", config),
        ("hibernate_dir", node.hibernate_dir.to_str().unwrap()),
    ]
}

fn with<'a>(
    mut base: Vec<(&'a str, &'a str)>,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    base.extend_from_slice(extra);
    base
}

fn magic(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap().into_iter().take(16).collect()
}

// ---------------------------------------------------------------------------------------------
// Metadata: no libvirt needed.

/// Validation as the conformance harness does it (xmllint against the installed grammar).
fn xmllint(xml: &str, flag: &str, schema: &str) -> Result<(), String> {
    ocf_conformance::validate(xml, flag, schema).expect("xmllint could not run")
}

#[test]
fn metadata_is_valid_and_needs_no_libvirt() {
    assert_eq!(DECLARATION.problems(), Vec::<String>::new());
    let xml = metadata_xml(&DECLARATION).unwrap();
    xmllint(
        &xml,
        "--dtdvalid",
        "/usr/share/resource-agents/ra-api-1.dtd",
    )
    .unwrap();
    xmllint(&xml, "--relaxng", "/usr/share/resource-agents/metadata.rng").unwrap();
    for name in [
        "config",
        "domain",
        "hypervisor",
        "hibernate_dir",
        "stop_method",
        "on_restore_failure",
    ] {
        assert!(
            xml.contains(&format!("<parameter name=\"{name}\"")),
            "{name}"
        );
    }
    assert!(!xml.contains("name=\"migrate_to\""));
    assert!(xml.contains("migrate_to/migrate_from"));
    // The binary answers meta-data with an unreachable libvirt URI and no parameters at all.
    let out = Command::new(lab::AGENT)
        .arg("meta-data")
        .env(
            "OCF_RESKEY_hypervisor",
            "qemu:///system?socket=/nonexistent",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), xml);
    // The man page (section 7) comes from the same declaration.
    let page = clever_ocf::man_page(&DECLARATION);
    assert!(page.contains("ocf_clever_vm") && page.contains("hibernate_dir"));
}

// ---------------------------------------------------------------------------------------------
// The two builds: `vm` links no libvirt and hands over to `vm-libvirt`, which does.

/// The libraries a binary's dynamic section names, as `readelf -d` shows them.
fn needed(binary: &str) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-d", binary])
        .output()
        .unwrap();
    assert!(out.status.success(), "readelf -d {binary} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| Some(line.split_once('[')?.1.trim_end_matches(']').to_owned()))
        .collect()
}

#[test]
fn only_the_linked_build_links_libvirt() {
    let light = needed(lab::AGENT);
    assert!(light.iter().any(|l| l.starts_with("libc.so")), "{light:?}");
    assert!(!light.iter().any(|l| l.starts_with("libvirt")), "{light:?}");
    let linked = needed(lab::LINKED);
    assert!(linked.iter().any(|l| l == "libvirt.so.0"), "{linked:?}");
    // The same agent to Pacemaker, whichever build answers.
    let metadata = |binary: &str| {
        let out = Command::new(binary).arg("meta-data").output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        out.stdout
    };
    assert_eq!(metadata(lab::AGENT), metadata(lab::LINKED));
}

/// A stand-in for the linked build next to a copy of `vm` records what it was given; its exit
/// code and exit reason are the action's.
#[test]
fn the_light_build_hands_over_with_argv_and_environment_unchanged() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("clever-vm-handover-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let light = dir.join("vm");
    executable::copy_executable(Path::new(lab::AGENT), &light).unwrap();
    let stand_in = dir.join("vm-libvirt");
    executable::write_executable(
        &stand_in,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >'{0}/argv'\nenv >'{0}/env'\n\
             echo 'ocf-exit-reason:answered by the linked build' >&2\nexit 4\n",
            dir.display()
        ),
    )
    .unwrap();
    let run = |action: &str, uri: &str| {
        for record in ["argv", "env"] {
            let _ = fs::remove_file(dir.join(record));
        }
        let out = Command::new(&light)
            .arg(action)
            .env("OCF_RESOURCE_INSTANCE", "handover")
            .env("OCF_RESKEY_config", dir.join("none.xml"))
            .env("OCF_RESKEY_domain", "cvt-handover")
            .env("OCF_RESKEY_hibernate_dir", &dir)
            .env("OCF_RESKEY_hypervisor", uri)
            .env("OCF_RESKEY_CRM_meta_timeout", "20000")
            .env("HA_RSCTMP", dir.join("run"))
            .env("CLEVER_HANDOVER_MARK", "kept")
            .output()
            .unwrap();
        let argv = fs::read_to_string(dir.join("argv")).unwrap_or_default();
        let env = fs::read_to_string(dir.join("env")).unwrap_or_default();
        (out, argv, env)
    };
    for action in ["stop", "monitor"] {
        // An option the remote-protocol client does not know sends the monitor to the library.
        let (out, argv, env) = run(action, "qemu:///system?clever_test=library");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{action}: {stderr}");
        assert!(stderr.contains("ocf-exit-reason:answered by the linked build"));
        assert_eq!(argv, format!("{action}\n"));
        assert!(env.contains("CLEVER_HANDOVER_MARK=kept"), "{env}");
        assert!(env.contains("OCF_RESKEY_CRM_meta_timeout=20000"), "{env}");
    }
    // meta-data and validate-all never need libvirt: the light build answers them itself.
    let (out, argv, _) = run("meta-data", "qemu:///system");
    assert_eq!(out.status.code(), Some(0));
    assert!(argv.is_empty());
    let (out, argv, _) = run("validate-all", "qemu:///system");
    assert_ne!(out.status.code(), Some(4));
    assert!(argv.is_empty());
    fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Priority 1 and 2: hibernate and resume, the counter continues; stopped → 7.

#[test]
fn hibernate_then_resume_continues_the_counter() {
    let _serial = lab::serial_guard();
    let lab = Lab::new("resume");
    assert!(lab::off_root(&lab.shared));
    let node = Node::start(&lab, "a", &NodeOptions::default());
    let domain = "cvt-resume";
    let config = lab.domain_xml(domain, 32);
    let config = config.to_str().unwrap();
    let p = params(config, &node);

    assert_eq!(node.agent("validate-all", &p, &[]).code, Some(0));
    // Nothing defined yet: a probe says not running.
    assert_eq!(node.agent("monitor", &p, &[PROBE]).code, Some(7));

    let start = node.agent("start", &p, &[]);
    assert_eq!(start.code, Some(0), "{}", start.stderr);
    assert!(
        node.domstate(domain).starts_with("running"),
        "{}",
        node.domstate(domain)
    );
    let before = lab.wait_count_above(domain, 3);
    assert_eq!(node.agent("monitor", &p, &[RECURRING]).code, Some(0));
    assert_eq!(node.agent("monitor", &p, &[PROBE]).code, Some(0));

    let stop = node.agent("stop", &p, &[]);
    assert_eq!(stop.code, Some(0), "{}", stop.stderr);
    assert!(node.qemu_pids(domain).is_empty());
    assert_eq!(magic(&lab.image(domain)), MAGIC_SAVE);
    let size = fs::metadata(lab.image(domain)).unwrap().len();
    assert!(
        size > 28 * 1024 * 1024,
        "image of {size} bytes for 32 MiB of RAM (filled above 2 MiB)"
    );
    assert_eq!(node.domstate(domain), "shut off (saved)");
    let frozen = lab.serial(domain).counts.last().copied().unwrap();
    assert!(frozen >= before);
    // Stopped: 7 for probes and recurring monitors alike; stop again is fine.
    assert_eq!(node.agent("monitor", &p, &[PROBE]).code, Some(7));
    assert_eq!(node.agent("monitor", &p, &[RECURRING]).code, Some(7));
    assert_eq!(node.agent("stop", &p, &[]).code, Some(0));

    let start = node.agent("start", &p, &[]);
    assert_eq!(start.code, Some(0), "{}", start.stderr);
    assert_eq!(node.domstate(domain), "running (restored)");
    assert!(
        lab.shared_files(&format!("{domain}.save")).is_empty(),
        "{:?}",
        lab.shared_files(domain)
    );
    lab.wait_count_above(domain, frozen);
    let serial = lab.serial(domain);
    assert_eq!(serial.boots, 1, "a resume must not boot: {serial:?}");
    assert!(serial.increasing(), "{serial:?}");
    assert_eq!(node.agent("monitor", &p, &[RECURRING]).code, Some(0));

    let stop = node.agent("stop", &with(p.clone(), &[("stop_method", "destroy")]), &[]);
    assert_eq!(stop.code, Some(0), "{}", stop.stderr);
    assert!(node.qemu_pids(domain).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Priority 3: images that cannot be resumed are kept aside, never deleted.

#[test]
fn unusable_images_are_kept_aside_and_the_policy_applies() {
    let _serial = lab::serial_guard();
    let lab = Lab::new("images");
    let node = Node::start(&lab, "a", &NodeOptions::default());
    let domain = "cvt-images";
    let config = lab.domain_xml(domain, 32);
    let config = config.to_str().unwrap();
    let p = params(config, &node);

    // One real image to mangle in several ways.
    assert_eq!(node.agent("start", &p, &[]).code, Some(0));
    lab.wait_count_above(domain, 2);
    assert_eq!(node.agent("stop", &p, &[]).code, Some(0));
    let original = fs::read(lab.image(domain)).unwrap();
    fs::remove_file(lab.image(domain)).unwrap();

    type Mangle = fn(&Path, &[u8]);
    let cases: [(&str, Mangle, &str); 4] = [
        ("empty", |path, _| fs::write(path, b"").unwrap(), "empty"),
        (
            "partial",
            |path, image| {
                fs::write(path, image).unwrap();
                patch(path, 0, MAGIC_PARTIAL);
            },
            "partial",
        ),
        (
            "corrupt header",
            |path, image| {
                fs::write(path, image).unwrap();
                patch(path, 0, b"garbage garbage!");
            },
            "corrupt",
        ),
        (
            // Header intact, QEMU stream cut: libvirt tries, qemu fails, libvirt keeps it.
            "truncated stream",
            |path, image| fs::write(path, &image[..image.len() * 3 / 5]).unwrap(),
            "restore-failed",
        ),
    ];
    let booted_before = lab.serial(domain).boots;
    for (case, (what, mangle, tag)) in cases.into_iter().enumerate() {
        let boots = booted_before + case + 1;
        mangle(&lab.image(domain), &original);
        let mangled = fs::read(lab.image(domain)).unwrap();
        let start = node.agent("start", &p, &[]);
        assert_eq!(start.code, Some(0), "{what}: {}", start.stderr);
        assert!(
            start.stderr.contains("NOT RESUMED"),
            "{what}: {}",
            start.stderr
        );
        assert_eq!(node.domstate(domain), "running (booted)", "{what}");
        wait_until(Duration::from_secs(30), "the cold boot", || {
            lab.serial(domain).boots == boots
        });
        // Nothing deleted: the image is kept, byte for byte, under a timestamped name.
        let kept: Vec<String> = lab
            .shared_files(&format!("{domain}.save.kept-"))
            .into_iter()
            .filter(|n| n.ends_with(&format!("-{tag}")))
            .collect();
        assert_eq!(kept.len(), 1, "{what}: {:?}", lab.shared_files(domain));
        assert_eq!(
            fs::read(lab.shared.join(&kept[0])).unwrap(),
            mangled,
            "{what}"
        );
        fs::remove_file(lab.shared.join(&kept[0])).unwrap();
        assert!(!lab.image(domain).exists(), "{what}");
        let stop = node.agent("stop", &with(p.clone(), &[("stop_method", "destroy")]), &[]);
        assert_eq!(stop.code, Some(0), "{what}: {}", stop.stderr);
    }

    // on_restore_failure=fail: kept aside, start fails with a clear reason, nothing runs.
    fs::write(lab.image(domain), &original).unwrap();
    patch(&lab.image(domain), 0, MAGIC_PARTIAL);
    let fail = with(p.clone(), &[("on_restore_failure", "fail")]);
    let start = node.agent("start", &fail, &[]);
    assert_eq!(start.code, Some(6), "{}", start.stderr);
    let reason = start.exit_reason().unwrap();
    assert!(
        reason.contains("kept as") && reason.contains("partial"),
        "{reason}"
    );
    assert!(node.qemu_pids(domain).is_empty());
    assert_eq!(node.agent("monitor", &fail, &[PROBE]).code, Some(7));
    assert_eq!(lab.shared_files(&format!("{domain}.save.kept-")).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Priority 4: qemu killed; libvirtd down.

#[test]
fn killed_qemu_fails_the_monitor_and_libvirtd_down_is_survived() {
    let _serial = lab::serial_guard();
    let lab = Lab::new("faults");
    let node = Node::start(&lab, "a", &NodeOptions::default());
    let domain = "cvt-faults";
    let config = lab.domain_xml(domain, 32);
    let config = config.to_str().unwrap();
    let p = params(config, &node);

    assert_eq!(node.agent("start", &p, &[]).code, Some(0));
    lab.wait_count_above(domain, 1);
    let qemu = node.qemu_pids(domain);
    assert_eq!(qemu.len(), 1);
    signal(qemu[0], "KILL");
    wait_until(Duration::from_secs(10), "libvirt to see the crash", || {
        node.domstate(domain) == "shut off (crashed)"
    });
    let monitor = node.agent("monitor", &p, &[RECURRING]);
    assert_eq!(monitor.code, Some(1), "{}", monitor.stderr);
    assert!(monitor.exit_reason().unwrap().contains("crashed"));
    assert_eq!(node.agent("stop", &p, &[]).code, Some(0));

    // libvirtd goes away while the VM runs.
    assert_eq!(node.agent("start", &p, &[]).code, Some(0));
    lab.wait_count_above(domain, 1);
    node.stop_libvirtd();
    assert_eq!(
        node.qemu_pids(domain).len(),
        1,
        "qemu must outlive libvirtd"
    );
    for vars in [[PROBE], [RECURRING]] {
        let run = node.agent("monitor", &p, &vars);
        assert_eq!(run.code, Some(190), "{}", run.stderr);
        assert!(run.exit_reason().unwrap().contains("is running"));
    }
    let stop = node.agent("stop", &p, &[("OCF_RESKEY_CRM_meta_timeout", "30000")]);
    assert_eq!(stop.code, Some(0), "{}", stop.stderr);
    assert!(stop.took < Duration::from_secs(30));
    assert!(node.qemu_pids(domain).is_empty());
    assert_eq!(node.agent("monitor", &p, &[PROBE]).code, Some(7));
}

#[test]
fn hung_libvirtd_neither_hides_the_vm_nor_blocks_its_stop() {
    let _serial = lab::serial_guard();
    let lab = Lab::new("hung");
    let node = Node::start(&lab, "a", &NodeOptions::default());
    let domain = "cvt-hung";
    let config = lab.domain_xml(domain, 32);
    let config = config.to_str().unwrap();
    let p = params(config, &node);
    assert_eq!(node.agent("start", &p, &[]).code, Some(0));
    lab.wait_count_above(domain, 1);
    // libvirtd still accepts connections (the kernel does) but answers nothing.
    signal(node.libvirtd_pid().unwrap(), "STOP");
    let probe = node.agent(
        "monitor",
        &p,
        &[PROBE, ("OCF_RESKEY_CRM_meta_timeout", "8000")],
    );
    assert_eq!(probe.code, Some(190), "{}", probe.stderr);
    assert!(probe.took < Duration::from_secs(8));
    let recurring = node.agent(
        "monitor",
        &p,
        &[RECURRING, ("OCF_RESKEY_CRM_meta_timeout", "8000")],
    );
    assert_eq!(recurring.code, Some(190), "{}", recurring.stderr);
    assert!(recurring.took < Duration::from_secs(8));
    // A domain this node does not run: the hung daemon cannot make it look alive, or dead
    // with an error.
    let absent = node.agent(
        "monitor",
        &[
            ("config", config),
            ("domain", "cvt-absent"),
            ("hibernate_dir", "/dev/shm"),
        ],
        &[PROBE, ("OCF_RESKEY_CRM_meta_timeout", "8000")],
    );
    assert_eq!(absent.code, Some(7), "{}", absent.stderr);
    assert!(absent.took < Duration::from_secs(8));
    let stop = node.agent("stop", &p, &[("OCF_RESKEY_CRM_meta_timeout", "40000")]);
    assert_eq!(stop.code, Some(0), "{}", stop.stderr);
    assert!(stop.took < Duration::from_secs(40), "{:?}", stop.took);
    assert!(node.qemu_pids(domain).is_empty());
}

/// The executor's SIGTERM at the timeout of a start, while libvirt resumes the image: the agent
/// leaves no process behind, and the next start converges to a resumed VM with neither the
/// image nor its hold left beside it, and nothing deleted. Whether the kill came before or
/// after libvirt's restore is up to the scheduler; both paths must end the same way.
#[test]
fn sigterm_mid_resume_leaves_neither_image_nor_hold_behind() {
    let _serial = lab::serial_guard();
    let lab = Lab::new("sigterm");
    let node = Node::start(&lab, "a", &NodeOptions::default());
    let domain = "cvt-sigterm";
    let config = lab.domain_xml(domain, 128);
    let config = config.to_str().unwrap();
    let p = params(config, &node);
    assert_eq!(node.agent("start", &p, &[]).code, Some(0));
    let before = lab.wait_count_above(domain, 1);
    assert_eq!(node.agent("stop", &p, &[]).code, Some(0));
    let frozen = lab.serial(domain).counts.last().copied().unwrap();
    assert!(frozen >= before);

    let hold = lab.shared.join(format!("{domain}.save.resuming"));
    let mut start = Command::new("nsenter")
        .arg("-t")
        .arg(node.init_pid.to_string())
        .args(["-m", "-p", "--", lab::AGENT, "start"])
        .env("HA_LOGFACILITY", "none")
        .env("OCF_RESOURCE_INSTANCE", "vm-a")
        .env("OCF_RESKEY_config", config)
        .env("OCF_RESKEY_hibernate_dir", &node.hibernate_dir)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The hold appears just before libvirt is asked to resume.
    wait_until(Duration::from_secs(60), "the resume to begin", || {
        hold.exists()
    });
    // The start runs as `vm-libvirt` by now: `vm` handed it over (exec, the same process).
    let agent = node
        .processes()
        .into_iter()
        .find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "vm-libvirt")
        })
        .expect("the agent is running");
    signal(agent, "TERM");
    let status = start.wait().unwrap();
    assert!(!status.success(), "the start survived SIGTERM: {status:?}");
    wait_until(Duration::from_secs(10), "the agent to be gone", || {
        !node.processes().contains(&agent)
    });

    let again = node.agent("start", &p, &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(node.domstate(domain), "running (restored)");
    let left = lab.shared_files(domain);
    assert!(
        !left
            .iter()
            .any(|n| *n == format!("{domain}.save") || n.ends_with(".resuming")),
        "{left:?}"
    );
    lab.wait_count_above(domain, frozen);
    let serial = lab.serial(domain);
    assert_eq!(
        serial.boots, 1,
        "the VM was rebooted, not resumed: {serial:?}"
    );
    assert!(serial.increasing(), "{serial:?}");
    // A stop then hibernates cleanly: one image, no hold beside it.
    assert_eq!(node.agent("stop", &p, &[]).code, Some(0));
    let after = lab.shared_files(&format!("{domain}.save"));
    assert!(after.contains(&format!("{domain}.save")), "{after:?}");
    assert!(!after.iter().any(|n| n.ends_with(".resuming")), "{after:?}");
    node.agent("stop", &with(p, &[("stop_method", "destroy")]), &[]);
}

/// Two stops of one resource at once (an admin beside Pacemaker): the second waits for the
/// first's hibernation and finds the domain saved, instead of taking the image being written
/// for a stale one and powering the VM off mid-save.
#[test]
fn two_stops_at_once_hibernate_once() {
    let _serial = lab::serial_guard();
    let lab = Lab::new("twostops");
    let node = Node::start(&lab, "a", &NodeOptions::default());
    let domain = "cvt-twostops";
    let config = lab.domain_xml(domain, 256);
    let config = config.to_str().unwrap();
    let p = params(config, &node);
    assert_eq!(node.agent("start", &p, &[]).code, Some(0));
    lab.wait_count_above(domain, 1);
    let runs: Vec<lab::Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| node.agent("stop", &p, &[])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for run in &runs {
        assert_eq!(run.code, Some(0), "{}", run.stderr);
    }
    assert!(
        runs.iter()
            .any(|r| r.stderr.contains("is already shut off (saved)")),
        "one stop must find the other's work done: {runs:?}"
    );
    assert_eq!(node.domstate(domain), "shut off (saved)");
    assert_eq!(magic(&lab.image(domain)), MAGIC_SAVE);
    let files = lab.shared_files(&format!("{domain}.save"));
    assert_eq!(files, [format!("{domain}.save")], "nothing kept aside");
    let start = node.agent("start", &p, &[]);
    assert_eq!(start.code, Some(0), "{}", start.stderr);
    assert_eq!(node.domstate(domain), "running (restored)");
    node.agent("stop", &with(p, &[("stop_method", "destroy")]), &[]);
}

// ---------------------------------------------------------------------------------------------
// Priority 5: two nodes share the image directory.

#[test]
fn hibernate_on_one_node_resume_on_the_other_and_back() {
    let _serial = lab::serial_guard();
    let lab = Lab::new("twonodes");
    let a = Node::start(&lab, "a", &NodeOptions::default());
    let b = Node::start(&lab, "b", &NodeOptions::default());
    let domain = "cvt-move";
    let config = lab.domain_xml(domain, 32);
    let config = config.to_str().unwrap();
    let (pa, pb) = (params(config, &a), params(config, &b));

    assert_eq!(a.agent("start", &pa, &[]).code, Some(0));
    let mut last = lab.wait_count_above(domain, 2);
    // B has never seen the domain: its probe says not running.
    assert_eq!(b.agent("monitor", &pb, &[PROBE]).code, Some(7));
    for (from, to, pfrom, pto) in [(&a, &b, &pa, &pb), (&b, &a, &pb, &pa), (&a, &b, &pa, &pb)] {
        let stop = from.agent("stop", pfrom, &[]);
        assert_eq!(stop.code, Some(0), "{}", stop.stderr);
        assert!(from.qemu_pids(domain).is_empty());
        assert_eq!(magic(&lab.image(domain)), MAGIC_SAVE);
        let frozen = lab.serial(domain).counts.last().copied().unwrap();
        assert!(frozen >= last);
        let start = to.agent("start", pto, &[]);
        assert_eq!(start.code, Some(0), "{}", start.stderr);
        assert_eq!(to.domstate(domain), "running (restored)", "on {}", to.name);
        assert!(!lab.image(domain).exists());
        last = lab.wait_count_above(domain, frozen);
        assert_eq!(from.agent("monitor", pfrom, &[PROBE]).code, Some(7));
        assert_eq!(to.agent("monitor", pto, &[RECURRING]).code, Some(0));
    }
    let serial = lab.serial(domain);
    assert_eq!(serial.boots, 1, "{serial:?}");
    assert!(serial.increasing(), "{serial:?}");
    assert_eq!(
        b.agent(
            "stop",
            &with(pb.clone(), &[("stop_method", "destroy")]),
            &[]
        )
        .code,
        Some(0)
    );
}

// ---------------------------------------------------------------------------------------------
// Many VMs on one node, each on its own filesystem, through the per-domain link.

/// The names of the files in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Each VM its own resource, as Pacemaker names them: the agent's per-resource lock and its
/// record of the domain started are per instance.
fn instance(domain: &str) -> (&'static str, &'static str) {
    let name: &'static str = Box::leak(format!("vm_{domain}").into_boxed_str());
    ("OCF_RESOURCE_INSTANCE", name)
}

/// Runs `action` of every VM on `node` at once, one agent each, and checks each succeeded.
fn at_once(node: &Node, action: &str, vms: &[(String, Vec<(&str, &str)>)]) {
    std::thread::scope(|scope| {
        let runs: Vec<_> = vms
            .iter()
            .map(|(domain, p)| {
                let run = move || node.agent(action, p, &[instance(domain)]);
                (domain, scope.spawn(run))
            })
            .collect();
        for (domain, run) in runs {
            let run = run.join().unwrap();
            assert_eq!(run.code, Some(0), "{action} {domain}: {}", run.stderr);
        }
    });
}

/// Three VMs, each with its hibernation directory on a filesystem of its own and nothing bound
/// over libvirt's save directory, hibernate at once and resume at once on one node, each from
/// its own image; then all three move to the other node; and a VM whose filesystem is not
/// mounted is shut down rather than hibernated anywhere else.
#[test]
fn three_vms_on_their_own_filesystems_hibernate_and_resume_at_once_and_move_together() {
    let _serial = lab::serial_guard();
    let lab = Lab::new("many");
    let names: Vec<String> = (1..=3).map(|i| format!("cvt-many{i}")).collect();
    let dirs: Vec<_> = names.iter().map(|n| lab.own_filesystem(n)).collect();
    let configs: Vec<String> = names
        .iter()
        .map(|n| lab.domain_xml(n, 32).to_str().unwrap().to_owned())
        .collect();
    let options = NodeOptions {
        link_layout: true,
        ..NodeOptions::default()
    };
    let a = Node::start(&lab, "a", &options);
    let b = Node::start(&lab, "b", &options);
    let vms: Vec<(String, Vec<(&str, &str)>)> = names
        .iter()
        .zip(&configs)
        .zip(&dirs)
        .map(|((name, config), dir)| {
            let p = vec![
                ("config", config.as_str()),
                ("hibernate_dir", dir.to_str().unwrap()),
                ("shutdown_timeout", "1"),
            ];
            (name.clone(), p)
        })
        .collect();
    for dir in &dirs {
        assert!(lab::off_root(dir));
    }
    for (name, p) in &vms {
        assert_eq!(a.agent("validate-all", p, &[instance(name)]).code, Some(0));
    }

    at_once(&a, "start", &vms);
    let mut last: Vec<u64> = names.iter().map(|n| lab.wait_count_above(n, 2)).collect();
    // Every image path in libvirt's directory is a link to that VM's own filesystem.
    for (name, dir) in names.iter().zip(&dirs) {
        let link = a.libvirt_save_dir().join(format!("{name}.save"));
        assert_eq!(
            fs::read_link(&link).unwrap(),
            dir.join(format!("{name}.save"))
        );
    }

    // Here, then on the other node: all three hibernate at once and resume at once.
    for (from, to) in [(&a, &a), (&a, &b)] {
        at_once(from, "stop", &vms);
        for ((name, dir), before) in names.iter().zip(&dirs).zip(&last) {
            assert_eq!(from.domstate(name), "shut off (saved)", "{name}");
            assert!(from.qemu_pids(name).is_empty(), "{name}");
            // Its own image, on its own filesystem, and nothing else there.
            assert_eq!(files_in(dir), [format!("{name}.save")], "{name}");
            assert_eq!(magic(&dir.join(format!("{name}.save"))), MAGIC_SAVE);
            let frozen = lab.serial(name).counts.last().copied().unwrap();
            assert!(frozen >= *before, "{name}");
        }
        let frozen: Vec<u64> = names
            .iter()
            .map(|n| lab.serial(n).counts.last().copied().unwrap())
            .collect();
        at_once(to, "start", &vms);
        for ((name, dir), frozen) in names.iter().zip(&dirs).zip(&frozen) {
            assert_eq!(
                to.domstate(name),
                "running (restored)",
                "{name} on {}",
                to.name
            );
            assert_eq!(files_in(dir), Vec::<String>::new(), "{name}");
            lab.wait_count_above(name, *frozen);
        }
        last = names
            .iter()
            .map(|n| lab.serial(n).counts.last().copied().unwrap())
            .collect();
    }
    for (name, p) in &vms {
        let serial = lab.serial(name);
        assert_eq!(
            serial.boots, 1,
            "{name} was booted, not resumed: {serial:?}"
        );
        assert!(serial.increasing(), "{name}: {serial:?}");
        assert_eq!(
            a.agent("monitor", p, &[PROBE, instance(name)]).code,
            Some(7),
            "{name}"
        );
    }

    // An admin's virsh on b, behind the cluster's back: the link the agent made again after the
    // resume takes the image to the VM's own filesystem, and virsh start resumes it (libvirt
    // then removes the link, not the image, which the agent's next stop keeps aside as stale).
    let (name, p) = &vms[0];
    let before = lab.serial(name).counts.last().copied().unwrap();
    assert!(b.virsh(&["managedsave", name]).status.success());
    assert_eq!(files_in(&dirs[0]), [format!("{name}.save")]);
    assert_eq!(
        fs::read_link(b.libvirt_save_dir().join(format!("{name}.save"))).unwrap(),
        dirs[0].join(format!("{name}.save"))
    );
    assert!(b.virsh(&["start", name]).status.success());
    assert_eq!(b.domstate(name), "running (restored)");
    lab.wait_count_above(name, before);
    let stop = b.agent("stop", p, &[instance(name)]);
    assert_eq!(stop.code, Some(0), "{}", stop.stderr);
    let left = files_in(&dirs[0]);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left[1].ends_with("-stale"), "{left:?}");
    let start = b.agent("start", p, &[instance(name)]);
    assert_eq!(start.code, Some(0), "{}", start.stderr);
    assert_eq!(b.domstate(name), "running (restored)");
    assert_eq!(lab.serial(name).boots, 1);

    // The third VM's filesystem is gone on b while the VM runs: stop must not hibernate it
    // through the link onto the mount point's own filesystem, nor anywhere else.
    let (name, p) = &vms[2];
    let mount_point = dirs[2].parent().unwrap();
    b.unmount(mount_point);
    let seen = b.sees(mount_point);
    assert_eq!(files_in(&seen), Vec::<String>::new());
    let stop = b.agent("stop", p, &[instance(name)]);
    assert_eq!(stop.code, Some(0), "{}", stop.stderr);
    assert!(stop.stderr.contains("not hibernating"), "{}", stop.stderr);
    assert!(b.qemu_pids(name).is_empty());
    assert_ne!(b.domstate(name), "shut off (saved)");
    assert_eq!(
        files_in(&seen),
        Vec::<String>::new(),
        "an image under the mount point"
    );
    let link = b.libvirt_save_dir().join(format!("{name}.save"));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // The others still hibernate into their own filesystems.
    for (name, p) in &vms[..2] {
        let stop = b.agent("stop", p, &[instance(name)]);
        assert_eq!(stop.code, Some(0), "{}", stop.stderr);
        assert_eq!(b.domstate(name), "shut off (saved)", "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Priority 6: the save directory is full.

#[test]
fn full_save_directory_falls_back_within_the_deadline() {
    let _serial = lab::serial_guard();
    let lab = Lab::new("full");
    let node = Node::start(
        &lab,
        "a",
        &NodeOptions {
            small_tmpfs_mib: Some(4),
            ..NodeOptions::default()
        },
    );
    let domain = "cvt-full";
    let config = lab.domain_xml(domain, 32);
    let config = config.to_str().unwrap();
    let p = with(params(config, &node), &[("shutdown_timeout", "3")]);

    assert_eq!(node.agent("start", &p, &[]).code, Some(0));
    lab.wait_count_above(domain, 1);
    let stop = node.agent("stop", &p, &[("OCF_RESKEY_CRM_meta_timeout", "60000")]);
    assert_eq!(stop.code, Some(0), "{}", stop.stderr);
    assert!(stop.took < Duration::from_secs(54), "{:?}", stop.took);
    assert!(stop.stderr.contains("falling back"), "{}", stop.stderr);
    assert!(node.qemu_pids(domain).is_empty());
    // libvirt removed its partial file; the agent deleted nothing and left no image to resume.
    let hib = node.dir.join("hibernate");
    assert!(
        fs::read_dir(&hib).map(|d| d.count()).unwrap_or(0) == 0
            || !hib.join(format!("{domain}.save")).exists()
    );
    assert_eq!(node.agent("monitor", &p, &[PROBE]).code, Some(7));
}

/// A hibernation that cannot finish within its budget is aborted early enough that the step,
/// libvirt's answer included, ends within the budget the stop announced; the stop then powers
/// the VM off within its timeout and no whole image is left to resume from. The test decides
/// that the save is too slow: qemu is held at 1% of a CPU from before the stop until libvirt has
/// ended the save job, so the outcome does not depend on this machine's speed.
#[test]
fn slow_hibernation_is_aborted_within_the_stop_timeout() {
    let _serial = lab::serial_guard();
    let lab = Lab::new("slow");
    let node = Node::start(&lab, "a", &NodeOptions::default());
    let domain = "cvt-slow";
    let config = lab.domain_xml(domain, 256);
    let config = config.to_str().unwrap();
    let p = with(params(config, &node), &[("shutdown_timeout", "0")]);
    assert_eq!(node.agent("start", &p, &[]).code, Some(0));
    // The counter starts once all of the RAM is filled.
    lab.wait_count_above(domain, 1);
    let throttle = lab::CpuThrottle::new("slow");
    for pid in node.qemu_pids(domain) {
        throttle.hold(pid);
    }
    assert!(throttle.held() > 0, "qemu of {domain} is not throttled");
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let stop = std::thread::scope(|scope| {
        scope.spawn(|| {
            // Released once the save job has come and gone (the abort ended it), so that the
            // power-off after it meets a qemu at full speed.
            let mut saw_job = false;
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                let job = node.virsh(&["domjobinfo", domain]);
                let text = String::from_utf8_lossy(&job.stdout);
                let running = text.contains("Unbounded") || text.contains("Bounded");
                saw_job |= running;
                if saw_job && !running {
                    throttle.release();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        // 13 s: 1.3 s margin and 10 s kept for power-off leave about 1.7 s for the save.
        let stop = node.agent("stop", &p, &[("OCF_RESKEY_CRM_meta_timeout", "13000")]);
        stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        stop
    });
    assert_eq!(stop.code, Some(0), "{}", stop.stderr);
    assert!(stop.took < Duration::from_secs(13), "{:?}", stop.took);
    // Progress is logged while the image is written.
    assert!(
        stop.stderr.contains("hibernating cvt-slow: "),
        "{}",
        stop.stderr
    );
    assert!(stop.stderr.contains("was aborted"), "{}", stop.stderr);
    // "… (the step took 1.3s of its 1.7s); falling back …"
    let (took, budget) = stop
        .stderr
        .split("(the step took ")
        .nth(1)
        .and_then(|rest| {
            let (took, rest) = rest.split_once(" of its ")?;
            let (budget, _) = rest.split_once(')')?;
            Some((lab::debug_seconds(took)?, lab::debug_seconds(budget)?))
        })
        .unwrap_or_else(|| panic!("no step duration logged: {}", stop.stderr));
    assert!(
        took <= budget + 0.25,
        "the hibernation step took {took} s of its {budget} s budget"
    );
    assert!(node.qemu_pids(domain).is_empty());
    let image = lab.image(domain);
    assert!(
        !image.exists() || magic(&image) != MAGIC_SAVE,
        "a whole image was left"
    );
    assert_eq!(node.agent("monitor", &p, &[PROBE]).code, Some(7));
}

// ---------------------------------------------------------------------------------------------
// The conformance harness, resource-agents' ocf-tester included, on a real node; the hanging
// backend is a libvirt socket that accepts connections and never answers.

#[test]
fn conformance_harness_and_ocf_tester_pass() {
    use std::os::unix::net::UnixListener;

    let _serial = lab::serial_guard();
    let lab = Lab::new("conformance");
    let node = Node::start(&lab, "a", &NodeOptions::default());
    let domain = "cvt-conformance";
    let config = lab.domain_xml(domain, 32);
    let hang = lab.root.join("hang.sock");
    let listener = UnixListener::bind(&hang).unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = std::sync::Arc::clone(&held);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    let wrapper = lab.root.join("vm-in-node");
    executable::write_executable(
        &wrapper,
        &format!(
            "#!/bin/sh\n[ \"$1\" = meta-data ] && exec {agent} \"$@\"\n\
             exec /usr/bin/nsenter -t {pid} -m -p -- {agent} \"$@\"\n",
            agent = lab::AGENT,
            pid = node.init_pid
        ),
    )
    .unwrap();
    let agent = ocf_conformance::AgentUnderTest {
        path: wrapper,
        instance: "vm_conformance".to_owned(),
        parameters: [
            ("config", config.to_str().unwrap()),
            ("hibernate_dir", node.hibernate_dir.to_str().unwrap()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
        hanging: [(
            "hypervisor".to_owned(),
            format!("qemu:///system?socket={}", hang.display()),
        )]
        .into(),
        environment: std::collections::BTreeMap::new(),
        run_ocf_tester: true,
    };
    let report = ocf_conformance::check_agent(&agent).unwrap();
    assert!(report.passed(), "{report}");
    assert!(node.qemu_pids(domain).is_empty());
}

// ---------------------------------------------------------------------------------------------
// validate-all refusals.

#[test]
fn validate_all_refuses_what_would_lose_images() {
    let dir = std::env::temp_dir().join(format!("clever-vm-validate-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("d.xml");
    fs::write(
        &config,
        "<domain type='qemu'><name>cvt-v</name><uuid>6fb5ac16-4415-4ea6-b8d5-6f8223e0212b</uuid></domain>",
    )
    .unwrap();
    let run = |params: &[(&str, &str)]| {
        let mut command = Command::new(lab::AGENT);
        command.arg("validate-all").env("HA_LOGFACILITY", "none");
        for (k, v) in params {
            command.env(format!("OCF_RESKEY_{k}"), v);
        }
        let out = command.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let config_s = config.to_str().unwrap();
    let on_root = dir.to_str().unwrap();
    let (code, err) = run(&[("config", config_s), ("hibernate_dir", on_root)]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("root filesystem"), "{err}");
    let (code, _) = run(&[("config", config_s), ("hibernate_dir", "/dev/shm")]);
    assert_eq!(code, Some(0));
    let (code, err) = run(&[
        ("config", config_s),
        ("hibernate_dir", "/dev/shm"),
        ("domain", "other"),
    ]);
    assert_eq!(code, Some(6), "{err}");
    // Without a fixed UUID the nodes would define different domains.
    fs::write(&config, "<domain type='qemu'><name>cvt-v</name></domain>").unwrap();
    let (code, err) = run(&[("config", config_s), ("hibernate_dir", "/dev/shm")]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("uuid"), "{err}");
    fs::write(&config, "<network><name>x</name></network>").unwrap();
    let (code, _) = run(&[("config", config_s), ("hibernate_dir", "/dev/shm")]);
    assert_eq!(code, Some(6));
    let (code, _) = run(&[
        ("config", "/nonexistent/d.xml"),
        ("hibernate_dir", "/dev/shm"),
    ]);
    assert_eq!(code, Some(5));
    let _ = fs::remove_dir_all(&dir);
}
