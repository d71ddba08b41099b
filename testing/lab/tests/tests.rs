#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
//! End-to-end tests in a live lab: real corosync + pacemaker nodes in namespaces, the lab fence
//! device, the CIB from the generator. Each test brings up its own lab (its own directory and
//! cgroup) and tears it down, even when it fails; the tests take a lock so that only one lab runs
//! at a time (two clusters at once on two cores would make token timeouts flaky). Nothing is
//! skipped: a missing prerequisite fails `up` with its name.

use ocf_conformance::workspace_build::release_binaries;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use clever_command::{CommandLine, RunCommand};
use clever_deadline::Deadline;
use clever_lab::config::ids;
use clever_lab::watch::{Report, Watch};
use clever_lab::Lab;

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

fn clever_lab(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clever-lab"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let output = clever_lab(dir, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "clever-lab {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Our agents, built now (release, as installed), so that the lab runs the current code; the
/// lab installs them into its nodes. Built once per test run.
fn release_dir() -> PathBuf {
    release_binaries(&[
        "clever-agent-gwping",
        "clever-agent-drbdfs",
        "clever-agent-vm",
        "clevervm",
    ])
}

/// A running lab, torn down on drop (also when the test panics).
struct TestLab {
    dir: PathBuf,
    lab: Lab,
    started: Instant,
    _serial: MutexGuard<'static, ()>,
}

impl TestLab {
    fn up(name: &str, nodes: usize) -> Self {
        Self::up_with(name, nodes, &[])
    }

    fn up_with(name: &str, nodes: usize, extra: &[&str]) -> Self {
        let serial = ONE_LAB_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = PathBuf::from(format!("/run/clever-lab-test-{name}"));
        // Leftovers of an earlier, interrupted run.
        ok(&dir, &["down"]);
        let release = release_dir();
        let started = Instant::now();
        let nodes = nodes.to_string();
        let mut args = vec![
            "up",
            "--nodes",
            &nodes,
            "--agents",
            release.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let printed = ok(&dir, &args);
        eprintln!("[{name}] up in {:?}:\n{printed}", started.elapsed());
        Self {
            lab: Lab::open(&dir).unwrap(),
            dir,
            started,
            _serial: serial,
        }
    }

    fn log(&self, message: &str) {
        eprintln!("[{:>7.2}s] {message}", self.started.elapsed().as_secs_f64());
    }

    /// Waits until the whole stack and the standalone Dummy run, and returns the stack's node.
    fn wait_for_stack(&self, deadline: &Deadline) -> String {
        let status = self
            .lab
            .wait_for("node1", "the stack and the Dummy to run", deadline, |s| {
                let vm = s.settled_on(ids::VM, None);
                vm.len() == 1
                    && s.settled_on(ids::FS, None) == vm
                    && s.settled_on(ids::IP, None) == vm
                    && s.settled_on(ids::DRBD, Some(clever_pacemaker::Role::Promoted)) == vm
                    && s.settled_on(ids::DUMMY, None).len() == 1
            })
            .unwrap();
        status.running_on(ids::VM, None)[0].to_owned()
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let output = clever_lab(&self.dir, &["down"]);
        if !output.status.success() {
            eprintln!(
                "teardown of {} failed: {}",
                self.dir.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// Starts a timeline of the lab (power, mounts, qemu, fencing, node states, the stack).
fn watch(lab: &Lab) -> Watch {
    Watch::start(lab.clone(), &[ids::VM, ids::FS, ids::IP])
}

/// Stops the watch, prints its timeline, and fails if the shared filesystem or the VM was ever
/// active on two nodes at once.
fn finish(test: &TestLab, watch: Watch) -> Report {
    let report = watch.finish();
    test.log(&format!("timeline:\n{report}"));
    assert!(
        report.doubles.is_empty(),
        "active on two nodes at once: {:?}",
        report.doubles
    );
    report
}

fn other(lab: &Lab, node: &str) -> String {
    lab.nodes().iter().find(|n| *n != node).unwrap().clone()
}

/// Everything `down` must have removed, given what the lab had before it.
struct Footprint {
    pids: Vec<i32>,
    namespaces: BTreeSet<String>,
    cgroup: PathBuf,
    dir: PathBuf,
    loop_device: String,
}

impl Footprint {
    fn of(lab: &Lab) -> Self {
        let pids = lab.cgroup().all_pids();
        let namespaces = pids
            .iter()
            .flat_map(|pid| {
                ["net", "mnt", "uts"]
                    .into_iter()
                    .filter_map(move |ns| fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok())
            })
            .map(|link| link.to_string_lossy().into_owned())
            .filter(|link| {
                // The host's own namespaces are shared with the machines' (the bridge keeps the
                // host mount namespace): only the lab's own count.
                fs::read_link(format!("/proc/self/ns/{}", &link[..3]))
                    .map(|own| own.to_string_lossy() != *link)
                    .unwrap_or(true)
            })
            .collect();
        Self {
            pids,
            namespaces,
            cgroup: lab.state().cgroup.clone(),
            dir: lab.layout().dir().to_owned(),
            loop_device: lab.state().loop_device.clone(),
        }
    }

    fn assert_gone(&self) {
        for pid in &self.pids {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Not even a zombie: `down` returns once the host's init has reaped them, so a lab
            // brought up right after it cannot meet the old one's processes.
            assert!(stat.is_empty(), "lab process {pid} survived: {stat}");
        }
        let mut held = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            let name = entry.file_name();
            if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            for ns in ["net", "mnt", "uts"] {
                if let Ok(link) = fs::read_link(entry.path().join("ns").join(ns)) {
                    if self.namespaces.contains(&*link.to_string_lossy()) {
                        held.push((name.to_string_lossy().into_owned(), link));
                    }
                }
            }
            if let Ok(mounts) = fs::read_to_string(entry.path().join("mountinfo")) {
                let dir = self.dir.to_string_lossy();
                assert!(
                    !mounts.contains(&*dir),
                    "process {name:?} still sees a mount of {dir}"
                );
            }
        }
        assert!(held.is_empty(), "lab namespaces still held: {held:?}");
        // Namespaces pinned by a bind mount would show in the host's mount table as nsfs.
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        for ns in &self.namespaces {
            let inode = ns.trim_end_matches(']').rsplit('[').next().unwrap();
            assert!(
                !mounts
                    .lines()
                    .any(|l| l.contains("nsfs") && l.contains(inode)),
                "namespace {ns} is pinned by a mount"
            );
        }
        assert!(
            !self.cgroup.exists(),
            "cgroup {} left",
            self.cgroup.display()
        );
        assert!(
            !self.dir.exists(),
            "lab directory {} left",
            self.dir.display()
        );
        let loops = Command::new("/usr/sbin/losetup")
            .arg("-a")
            .output()
            .unwrap();
        let loops = String::from_utf8_lossy(&loops.stdout);
        assert!(
            !loops.contains(&*self.dir.to_string_lossy()),
            "loop device {} still attached: {loops}",
            self.loop_device
        );
        let links = Command::new("/usr/sbin/ip")
            .args(["-br", "link"])
            .output()
            .unwrap();
        let links = String::from_utf8_lossy(&links.stdout);
        assert!(
            !links
                .lines()
                .any(|l| l.starts_with("node") || l.starts_with("gw")),
            "a lab veth is in the host namespace: {links}"
        );
    }
}

/// The directories libvirt's packages usually make; `libvirt-daemon` alone makes none of them.
const LIBVIRT_HOST_DIRS: [&str; 3] = ["/var/lib/libvirt", "/var/log/libvirt", "/var/cache/libvirt"];

/// Runs `up` in a mount namespace of its own where the host's libvirt directories do not exist
/// (each hidden by a whiteout in a private overlay of its parent, whatever this machine has):
/// the lab's nodes inherit that view, as on a machine that never had them.
const UP_WITHOUT_LIBVIRT_DIRS: &str = r#"set -eu
scratch=$1; shift
for dir in /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
  [ -e "$dir" ] || continue
  parent=${dir%/*}
  layer="$scratch/hide$parent"
  mkdir -p "$layer/upper" "$layer/work"
  mount -t overlay overlay -o "lowerdir=$parent,upperdir=$layer/upper,workdir=$layer/work" "$parent"
  [ "$(findmnt -n -o FSTYPE --mountpoint "$parent")" = overlay ]
  rm -rf "$dir"
done
for dir in /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
  if [ -e "$dir" ]; then echo "$dir is still visible" >&2; exit 1; fi
done
exec "$@"
"#;

/// `make demo`'s path (`up --vm`, `tour`, `down`) on a host without libvirt's directories; the
/// host's directories are as they were afterwards, and `down` returns only when every process
/// of the lab is gone from the process table.
#[test]
fn demo_runs_where_the_host_has_no_libvirt_directories_and_down_leaves_no_process() {
    let serial = ONE_LAB_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = PathBuf::from("/run/clever-lab-test-demo");
    ok(&dir, &["down"]);
    let release = release_dir();
    let host_before: Vec<bool> = LIBVIRT_HOST_DIRS
        .iter()
        .map(|d| Path::new(d).exists())
        .collect();
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-namespace");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).unwrap();
    let started = Instant::now();
    let up = Command::new("/usr/bin/unshare")
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(UP_WITHOUT_LIBVIRT_DIRS)
        .arg("up-without-libvirt-dirs")
        .arg(&scratch)
        .arg(env!("CARGO_BIN_EXE_clever-lab"))
        .arg("--dir")
        .arg(&dir)
        .args(["up", "--vm", "--agents", release.to_str().unwrap()])
        .output()
        .unwrap();
    let test = TestLab {
        lab: Lab::open(&dir).unwrap_or_else(|e| {
            panic!(
                "up failed ({e}): {}\n{}",
                String::from_utf8_lossy(&up.stderr),
                String::from_utf8_lossy(&up.stdout)
            )
        }),
        dir: dir.clone(),
        started,
        _serial: serial,
    };
    assert!(
        up.status.success(),
        "up --vm failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    for node in test.lab.nodes() {
        let log = fs::read_to_string(test.lab.layout().node_dir(node).join("init.log")).unwrap();
        assert!(
            log.contains("/var/lib/libvirt is missing on the host"),
            "{node} did not make /var/lib/libvirt itself: {log}"
        );
    }
    let tour = ok(&dir, &["tour"]);
    test.log(&format!("tour:\n{tour}"));
    assert!(tour.contains("the VM was hibernated and resumed"), "{tour}");
    let serial = test.lab.serial();
    assert_eq!(serial.boots, 1, "the guest was rebooted: {serial:?}");
    let footprint = Footprint::of(&test.lab);
    ok(&dir, &["down"]);
    footprint.assert_gone();
    let host_after: Vec<bool> = LIBVIRT_HOST_DIRS
        .iter()
        .map(|d| Path::new(d).exists())
        .collect();
    assert_eq!(
        host_before, host_after,
        "the lab changed the host's {LIBVIRT_HOST_DIRS:?}"
    );
    let _ = fs::remove_dir_all(&scratch);
}

#[test]
fn two_node_lab_runs_the_stack_and_down_leaves_nothing_behind() {
    let test = TestLab::up("basic", 2);
    let lab = &test.lab;
    // Our agents run, not the stock fallbacks.
    assert_eq!(lab.state().gwping_agent, "ocf:clever:gwping");
    assert_eq!(lab.state().fs_agent, "ocf:clever:drbdfs");
    let deadline = Deadline::after(Duration::from_secs(60));

    let status = lab
        .wait_for("node1", "both nodes online with a DC", &deadline, |s| {
            lab.cluster_formed(s)
        })
        .unwrap();
    assert_eq!(status.nodes.len(), 2);
    assert!(status.nodes.iter().all(|n| n.online && !n.unclean));
    assert_eq!(status.quorum, Some(true));
    assert_eq!(status.stonith_enabled, Some(true));
    test.log(&format!(
        "cluster formed, DC {}",
        status.dc.as_deref().unwrap()
    ));

    let active = test.wait_for_stack(&deadline);
    test.log(&format!("stack and Dummy running, stack on {active}"));
    // The stack needs only its own node's gateway score and no fence device: the peer's score
    // and the fence devices may still be on their way (CI saw a device still starting).
    let status = lab
        .wait_for(
            &active,
            "gateway scores and fence devices",
            &deadline,
            |s| {
                lab.nodes().iter().all(|n| {
                    s.attribute(n, ids::GWPING_ATTRIBUTE).is_some()
                        && s.settled_on(&format!("fence_{n}"), None).len() == 1
                })
            },
        )
        .unwrap();
    for node in lab.nodes() {
        assert_eq!(
            status.attribute(node, ids::GWPING_ATTRIBUTE),
            Some("1000"),
            "gateway score of {node}"
        );
        // Each node's fence device runs on another node.
        let fence = format!("fence_{node}");
        let placed = status.running_on(&fence, None);
        assert_eq!(placed.len(), 1, "{fence} not running: {status:?}");
        assert_ne!(placed[0], node);
    }
    assert_eq!(lab.mounted_on(), vec![active.clone()]);
    let addresses = lab
        .runner(&active)
        .unwrap()
        .run_ok(
            &CommandLine::new("/usr/sbin/ip").args(["-br", "addr", "show", "eth1"]),
            &deadline,
        )
        .unwrap()
        .stdout_text();
    assert!(addresses.contains("10.213.1.100/24"), "{addresses}");
    // The fencer knows the lab's agent, through the overlay on /usr/sbin.
    let agents = lab
        .runner(&active)
        .unwrap()
        .run_ok(
            &CommandLine::new("/usr/sbin/stonith_admin").arg("--list-installed"),
            &deadline,
        )
        .unwrap()
        .stdout_text();
    assert!(agents.contains("fence_lab"), "{agents}");

    let footprint = Footprint::of(lab);
    assert!(footprint.pids.len() > 10, "{:?}", footprint.pids);
    assert!(
        footprint.namespaces.len() >= 8,
        "{:?}",
        footprint.namespaces
    );
    let down_started = Instant::now();
    let printed = ok(&test.dir, &["down"]);
    test.log(&format!("down in {:?}: {printed}", down_started.elapsed()));
    footprint.assert_gone();
    // A second down finds nothing and succeeds.
    ok(&test.dir, &["down"]);
}

#[test]
fn power_cut_of_the_active_node_is_fenced_the_stack_moves_and_stays_when_it_returns() {
    let test = TestLab::up("power-cut", 2);
    let lab = &test.lab;
    let active = test.wait_for_stack(&Deadline::after(Duration::from_secs(60)));
    let survivor = other(lab, &active);
    test.log(&format!("stack on {active}; cutting its power"));
    let watch = watch(lab);

    let cut = Instant::now();
    watch.mark(format!("FAULT: power cut of {active}"));
    ok(&test.dir, &["power-cut", &active]);
    assert!(!lab.is_on(&active));
    let deadline = Deadline::after(Duration::from_secs(60));
    let mut seen_unclean = None;
    let status = lab
        .wait_for(&survivor, "the stack on the survivor", &deadline, |s| {
            if seen_unclean.is_none() && s.node(&active).is_some_and(|n| n.unclean) {
                seen_unclean = Some(cut.elapsed());
            }
            s.settled_on(ids::VM, None) == [survivor.as_str()]
                && s.settled_on(ids::IP, None) == [survivor.as_str()]
        })
        .unwrap();
    let moved = cut.elapsed();
    assert!(!status.node(&active).unwrap().online);
    assert_eq!(lab.mounted_on(), vec![survivor.clone()]);

    // Fencing was done, by the lab's device, from the survivor.
    let history = lab
        .runner(&survivor)
        .unwrap()
        .run_ok(
            &CommandLine::new("/usr/sbin/stonith_admin").args(["--history", &active]),
            &deadline,
        )
        .unwrap()
        .stdout_text();
    assert!(
        history.contains(&format!("of {active} successful"))
            && history.contains(&format!("delegate={survivor}")),
        "{history}"
    );
    let fence_log = fs::read_to_string(lab.layout().fence_log()).unwrap();
    assert!(
        fence_log.contains(&format!("{active} off: fence_lab"))
            && fence_log.contains(&format!("from {survivor}")),
        "{fence_log}"
    );

    // The fenced node is powered on again: it rejoins, and the stack stays where it is.
    watch.mark(format!("{active} powered on"));
    ok(&test.dir, &["power-on", &active]);
    lab.wait_for(&survivor, "the node back online", &deadline, |s| {
        lab.cluster_formed(s) && s.node(&active).is_some_and(|n| n.online)
    })
    .unwrap();
    watch.mark(format!("{active} back in the cluster"));
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(5) {
        let status = lab.status_from(&survivor, &deadline).unwrap();
        assert_eq!(
            status.running_on(ids::VM, None),
            [survivor.as_str()],
            "the stack moved back to the node that came back"
        );
        thread::sleep(Duration::from_millis(300));
    }
    let report = finish(&test, watch);
    test.log(&format!(
        "timeline: power cut → {active} seen unclean {seen_unclean:?} → fenced (stonith_admin: \
         {}) → stack on {survivor} {moved:?}; {} samples, never on two nodes",
        history.lines().next().unwrap_or_default(),
        report.samples
    ));
}

#[test]
fn gateway_loss_on_the_active_node_moves_the_stack_and_restoring_it_does_not_move_it_back() {
    let test = TestLab::up("gateway", 2);
    let lab = &test.lab;
    let active = test.wait_for_stack(&Deadline::after(Duration::from_secs(60)));
    let standby = other(lab, &active);
    let deadline = Deadline::after(Duration::from_secs(60));
    lab.wait_for(&standby, "gateway scores on both nodes", &deadline, |s| {
        lab.nodes()
            .iter()
            .all(|n| s.attribute(n, ids::GWPING_ATTRIBUTE) == Some("1000"))
    })
    .unwrap();
    let watch = watch(lab);

    test.log(&format!(
        "stack on {active}; the gateway stops answering it"
    ));
    let cut = Instant::now();
    watch.mark(format!("FAULT: uplink of {active} cut"));
    ok(&test.dir, &["gateway-cut", &active]);
    lab.wait_for(&standby, "the stack to move", &deadline, |s| {
        s.settled_on(ids::VM, None) == [standby.as_str()]
            && s.settled_on(ids::IP, None) == [standby.as_str()]
    })
    .unwrap();
    let moved = cut.elapsed();
    let status = lab.status_from(&standby, &deadline).unwrap();
    let score = status.attribute(&active, ids::GWPING_ATTRIBUTE);
    assert!(
        score.is_none_or(|s| s == "0"),
        "score of {active}: {score:?}"
    );
    assert!(
        status.node(&active).unwrap().online,
        "nobody fences for a gateway loss"
    );
    assert_eq!(lab.mounted_on(), vec![standby.clone()]);
    test.log(&format!(
        "stack on {standby} {moved:?} after the gateway cut"
    ));

    watch.mark(format!("uplink of {active} restored"));
    ok(&test.dir, &["gateway-restore", &active]);
    lab.wait_for(
        &standby,
        "the score of the old active back",
        &deadline,
        |s| s.attribute(&active, ids::GWPING_ATTRIBUTE) == Some("1000"),
    )
    .unwrap();
    test.log(&format!("{active} reaches the gateway again"));
    // Stickiness keeps the stack where it is: watch it for a few monitor rounds.
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(6) {
        let status = lab.status_from(&standby, &deadline).unwrap();
        assert_eq!(
            status.running_on(ids::VM, None),
            [standby.as_str()],
            "the stack moved back after the gateway came back"
        );
        thread::sleep(Duration::from_millis(300));
    }
    let report = finish(&test, watch);
    test.log(&format!(
        "no flapping; {} samples, never on two nodes",
        report.samples
    ));
}

#[test]
fn controls_refuse_unknown_nodes_and_a_second_up() {
    let test = TestLab::up("controls", 2);
    let second = clever_lab(&test.dir, &["up"]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already exists"));
    let unknown = clever_lab(&test.dir, &["power-cut", "node9"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no node \"node9\""));
    // exec runs inside the node: its own hostname.
    let hostname = ok(&test.dir, &["exec", "node2", "--", "/usr/bin/hostname"]);
    assert_eq!(hostname.trim(), "node2");
    // Killing a daemon: pacemakerd respawns the scheduler.
    let killed = ok(&test.dir, &["kill-daemon", "node1", "pacemaker-schedulerd"]);
    assert!(killed.contains("killed pacemaker-schedulerd"), "{killed}");
}

#[test]
fn interconnect_cut_ends_with_one_node_fenced_and_the_stack_on_the_other() {
    let test = TestLab::up("link-cut", 2);
    let lab = &test.lab;
    let active = test.wait_for_stack(&Deadline::after(Duration::from_secs(60)));
    let watch = watch(lab);
    test.log(&format!("stack on {active}; cutting its interconnect"));
    let cut = Instant::now();
    watch.mark(format!("FAULT: interconnect of {active} cut"));
    ok(&test.dir, &["link-cut", &active]);
    // Both sides lose the other and both may fence; priority-fencing-delay delays fencing the
    // node that runs the (priority 10) VM, so the other one goes.
    let deadline = Deadline::after(Duration::from_secs(60));
    let on = deadline
        .poll("one node to be fenced", Duration::from_millis(20), || {
            let on: Vec<String> = lab
                .nodes()
                .iter()
                .filter(|n| lab.is_on(n))
                .cloned()
                .collect();
            (on.len() < 2).then_some(on)
        })
        .unwrap();
    let fenced_after = cut.elapsed();
    assert_eq!(
        on,
        vec![active.clone()],
        "the node running the VM must survive"
    );
    // No second fencing follows: the survivor stays on.
    thread::sleep(Duration::from_secs(3));
    assert!(lab.is_on(&active), "{active} was fenced too");
    let status = lab
        .wait_for(&active, "the stack still on the survivor", &deadline, |s| {
            s.settled_on(ids::VM, None) == [active.as_str()]
                && s.settled_on(ids::FS, None) == [active.as_str()]
        })
        .unwrap();
    let standby = other(lab, &active);
    assert!(!status.node(&standby).unwrap().online);
    let fence_log = fs::read_to_string(lab.layout().fence_log()).unwrap();
    assert!(
        fence_log.contains(&format!("{standby} off: fence_lab")),
        "{fence_log}"
    );
    assert!(!fence_log.contains(&format!("{active} off")), "{fence_log}");
    let report = finish(&test, watch);
    test.log(&format!(
        "timeline: interconnect cut → {standby} fenced {fenced_after:?}; stack stayed on \
         {active}; {} samples, never on two nodes",
        report.samples
    ));
}

#[test]
fn four_node_lab_forms_one_cluster_with_fencing_for_every_node() {
    let test = TestLab::up("four", 4);
    let lab = &test.lab;
    let deadline = Deadline::after(Duration::from_secs(90));
    let status = lab
        .wait_for("node1", "four nodes online with a DC", &deadline, |s| {
            lab.cluster_formed(s) && s.nodes.len() == 4
        })
        .unwrap();
    assert_eq!(status.quorum, Some(true));
    let active = test.wait_for_stack(&deadline);
    let status = lab
        .wait_for(&active, "every fence device started", &deadline, |s| {
            lab.nodes()
                .iter()
                .all(|n| s.settled_on(&format!("fence_{n}"), None).len() == 1)
        })
        .unwrap();
    for node in lab.nodes() {
        assert_ne!(
            status.running_on(&format!("fence_{node}"), None),
            [node.as_str()]
        );
    }
    assert_eq!(lab.mounted_on(), vec![active.clone()]);
    test.log(&format!("4 nodes, stack on {active}"));
}

#[test]
fn vm_moves_by_hibernation_and_a_power_cut_cold_boots_it_on_the_survivor() {
    let test = TestLab::up_with("vm", 2, &["--vm"]);
    let lab = &test.lab;
    let deadline = Deadline::after(Duration::from_secs(120));
    let first = test.wait_for_stack(&deadline);
    let second = other(lab, &first);
    let printed = deadline
        .poll("the guest to count", Duration::from_millis(50), || {
            lab.serial().last().filter(|n| *n > 3)
        })
        .unwrap();
    assert_eq!(lab.serial().boots, 1);
    assert_eq!(lab.qemu_on(), vec![first.clone()]);
    test.log(&format!("guest running on {first}, counter at {printed}"));
    let watch = watch(lab);

    // Controlled migration: hibernate on the first node, resume on the second.
    let pacemaker = lab.pacemaker(&first).unwrap();
    let before = lab.serial().last().unwrap();
    let moving = Instant::now();
    watch.mark(format!("crm_resource --move {} to {second}", ids::VM));
    pacemaker
        .move_to(ids::VM, &second, false, &deadline)
        .unwrap();
    lab.wait_for(&second, "the VM on the other node", &deadline, |s| {
        s.settled_on(ids::VM, None) == [second.as_str()]
    })
    .unwrap();
    let moved = moving.elapsed();
    let after = deadline
        .poll("the guest to count on", Duration::from_millis(50), || {
            lab.serial().last().filter(|n| *n > before)
        })
        .unwrap();
    let serial = lab.serial();
    assert_eq!(serial.boots, 1, "the move rebooted the guest: {serial:?}");
    assert!(
        serial.counts.windows(2).all(|w| w[0] < w[1]),
        "the counter went back: {serial:?}"
    );
    let qemu = Deadline::after(Duration::from_secs(10)).poll(
        "qemu only on the new node",
        Duration::from_millis(20),
        || (lab.qemu_on() == [second.as_str()]).then_some(()),
    );
    assert!(qemu.is_ok(), "qemu runs on {:?}", lab.qemu_on());
    test.log(&format!(
        "moved to {second} in {moved:?}: counter {before} → {after}, no reboot (resumed)"
    ));
    let listing = lab
        .runner(&second)
        .unwrap()
        .run_ok(
            &CommandLine::new("/usr/bin/ls").args([
                "-l",
                clever_lab::layout::LIBVIRT_SAVE_DIR,
                clever_lab::layout::HIBERNATE_DIR,
            ]),
            &deadline,
        )
        .unwrap()
        .stdout_text();
    test.log(&format!(
        "libvirt's save directory (the link) and the shared filesystem after the resume:\n{listing}"
    ));

    // --clear, then no move back (stickiness).
    pacemaker.clear(ids::VM, &deadline).unwrap();
    assert!(pacemaker.cli_constraints(&deadline).unwrap().is_empty());
    thread::sleep(Duration::from_secs(3));
    let status = lab.status_from(&first, &deadline).unwrap();
    assert_eq!(status.running_on(ids::VM, None), [second.as_str()]);

    // Power cut of the node running it: fenced, cold boot on the survivor.
    let cut = Instant::now();
    watch.mark(format!("FAULT: power cut of {second}"));
    ok(&test.dir, &["power-cut", &second]);
    lab.wait_for(&first, "the VM back on the survivor", &deadline, |s| {
        s.settled_on(ids::VM, None) == [first.as_str()]
    })
    .unwrap();
    let recovered = cut.elapsed();
    deadline
        .poll("the guest to boot again", Duration::from_millis(50), || {
            (lab.serial().boots == 2).then_some(())
        })
        .unwrap();
    let fence_log = fs::read_to_string(lab.layout().fence_log()).unwrap();
    assert!(
        fence_log.contains(&format!("{second} off: fence_lab")),
        "{fence_log}"
    );
    let report = finish(&test, watch);
    test.log(&format!(
        "timeline: power cut of {second} → fenced → VM cold-booted on {first} in {recovered:?}; \
         {} samples, mount and qemu never on two nodes",
        report.samples
    ));
}

#[test]
fn vm_outlives_a_libvirtd_kill_and_a_killed_qemu_restarts_in_place_then_moves() {
    let test = TestLab::up_with("vm-faults", 2, &["--vm"]);
    let lab = &test.lab;
    let deadline = Deadline::after(Duration::from_secs(240));
    let active = test.wait_for_stack(&deadline);
    let standby = other(lab, &active);
    deadline
        .poll("the guest to count", Duration::from_millis(50), || {
            lab.serial().last().filter(|n| *n > 3)
        })
        .unwrap();
    let watch = watch(lab);

    // Step 1: libvirtd killed on the active node. The node's init restarts it (as systemd
    // would); the VM keeps running and the monitor never fails.
    let libvirtd = |node: &str| {
        lab.node_cgroup(node).all_pids().into_iter().find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "libvirtd")
        })
    };
    // Each step has a bound of its own: one bound for the whole test would make the last step's
    // wait depend on how long the earlier ones took on a loaded machine.
    let step_bound = || Deadline::after(Duration::from_secs(180));
    let deadline = step_bound();
    let old = libvirtd(&active).unwrap();
    let before = lab.serial().last().unwrap();
    watch.mark(format!("FAULT: libvirtd killed on {active}"));
    ok(&test.dir, &["kill-daemon", &active, "libvirtd"]);
    deadline
        .poll(
            "libvirtd to be restarted",
            Duration::from_millis(50),
            || libvirtd(&active).filter(|pid| *pid != old),
        )
        .unwrap();
    watch.mark(format!("libvirtd restarted on {active}"));
    // Two monitor rounds (every 10 s) with libvirtd new.
    thread::sleep(Duration::from_secs(12));
    let status = lab.status_from(&active, &deadline).unwrap();
    assert_eq!(status.running_on(ids::VM, None), [active.as_str()]);
    assert!(
        status.fail_counts.iter().all(|f| f.resource != ids::VM),
        "{:?}",
        status.fail_counts
    );
    let serial = lab.serial();
    assert_eq!(serial.boots, 1, "{serial:?}");
    assert!(serial.last().unwrap() > before);
    test.log("step 1: libvirtd killed and restarted, the VM ran on, no failure");

    // Step 2: qemu killed three times. The first two are recovered in place (a cold boot on the
    // same node); the third reaches migration-threshold=3 and the VM moves.
    for round in 1..=3 {
        let deadline = step_bound();
        let boots = lab.serial().boots;
        watch.mark(format!("FAULT: qemu killed on {active} (round {round})"));
        ok(&test.dir, &["kill-daemon", &active, "qemu-system-x86_64"]);
        let expected = if round < 3 { &active } else { &standby };
        lab.wait_for(&standby, "the VM running again", &deadline, |s| {
            // A failed instance still counts as settled until its recovery: killing qemu again
            // then would hit the restart itself.
            s.settled_on(ids::VM, None) == [expected.as_str()]
                && !s.resources.iter().any(|r| r.id == ids::VM && r.failed)
                && s.fail_counts
                    .iter()
                    .any(|f| f.resource == ids::VM && f.node == active && f.fail_count >= round)
        })
        .unwrap();
        deadline
            .poll("the guest to boot again", Duration::from_millis(50), || {
                (lab.serial().boots > boots).then_some(())
            })
            .unwrap();
        test.log(&format!(
            "step 2, round {round}: VM running again on {expected}"
        ));
    }
    let status = lab.status_from(&standby, &step_bound()).unwrap();
    let failures = status
        .fail_counts
        .iter()
        .find(|f| f.resource == ids::VM && f.node == active)
        .unwrap();
    assert_eq!(failures.fail_count, 3);
    assert_eq!(failures.migration_threshold, 3);
    assert_eq!(lab.qemu_on(), vec![standby.clone()]);
    finish(&test, watch);
}

#[test]
fn down_cleans_up_after_a_failed_up() {
    let _serial = ONE_LAB_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = PathBuf::from("/run/clever-lab-test-failed-up");
    ok(&dir, &["down"]);
    // --vm without the vm agent fails after the directory and the cgroup exist.
    let failed = clever_lab(&dir, &["up", "--vm", "--agents", "/nonexistent"]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("ocf:clever:vm"), "{stderr}");
    assert!(dir.join(".clever-lab").exists());
    let again = clever_lab(&dir, &["up"]);
    assert!(
        !again.status.success(),
        "up over a failed lab must ask for down"
    );
    let cgroup = clever_lab::Layout::new(&dir)
        .unwrap()
        .cgroup_root(&clever_lab::layout::cgroup2_mount().unwrap());
    assert!(cgroup.exists(), "{}", cgroup.display());
    ok(&dir, &["down"]);
    assert!(!dir.exists());
    assert!(!cgroup.exists());
    // A directory that is not a lab is never removed.
    let foreign = PathBuf::from("/run/clever-lab-test-foreign");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("precious"), "x").unwrap();
    let refused = clever_lab(&foreign, &["down"]);
    assert!(!refused.status.success());
    assert!(foreign.join("precious").exists());
    fs::remove_dir_all(&foreign).unwrap();
}

#[test]
fn stock_agents_run_the_same_stack_and_move_the_vm_by_save_and_restore() {
    // The comparison `make bench` needs: the same lab with ping, Filesystem and VirtualDomain.
    let test = TestLab::up_with("stock", 2, &["--vm", "--stock"]);
    let lab = &test.lab;
    assert_eq!(lab.state().gwping_agent, "ocf:pacemaker:ping");
    assert_eq!(lab.state().fs_agent, "ocf:heartbeat:Filesystem");
    assert_eq!(lab.state().vm_agent, "ocf:heartbeat:VirtualDomain");
    let deadline = Deadline::after(Duration::from_secs(180));
    let first = test.wait_for_stack(&deadline);
    let second = other(lab, &first);
    deadline
        .poll("the guest to count", Duration::from_millis(50), || {
            lab.serial().last().filter(|n| *n > 3)
        })
        .unwrap();
    let watch = watch(lab);
    let before = lab.serial().last().unwrap();
    let moving = Instant::now();
    watch.mark(format!("crm_resource --move {} to {second}", ids::VM));
    let pacemaker = lab.pacemaker(&first).unwrap();
    pacemaker
        .move_to(ids::VM, &second, false, &deadline)
        .unwrap();
    lab.wait_for(&second, "the VM on the other node", &deadline, |s| {
        s.settled_on(ids::VM, None) == [second.as_str()]
    })
    .unwrap();
    let moved = moving.elapsed();
    deadline
        .poll("the guest to count on", Duration::from_millis(50), || {
            lab.serial().last().filter(|n| *n > before)
        })
        .unwrap();
    let serial = lab.serial();
    assert_eq!(
        serial.boots, 1,
        "the stock move rebooted the guest: {serial:?}"
    );
    pacemaker.clear(ids::VM, &deadline).unwrap();
    finish(&test, watch);
    test.log(&format!(
        "stock agents: moved to {second} in {moved:?}, resumed"
    ));
}

/// `clevervm` run inside a node, as an admin logged in there would: exit code and all output.
fn clevervm(lab: &Lab, node: &str, args: &[&str], deadline: &Deadline) -> (Option<i32>, String) {
    let binary = release_dir().join("clevervm");
    let output = lab
        .runner(node)
        .unwrap()
        .run(&CommandLine::new(&binary).args(args), deadline)
        .unwrap();
    (
        output.code(),
        format!("{}{}", output.stdout_text(), output.stderr_text()),
    )
}

#[test]
fn clevervm_drives_the_live_cluster_from_either_node() {
    let test = TestLab::up_with("clevervm", 2, &["--vm"]);
    let lab = &test.lab;
    let deadline = Deadline::after(Duration::from_secs(240));
    let first = test.wait_for_stack(&deadline);
    let second = other(lab, &first);
    deadline
        .poll("the guest to count", Duration::from_millis(50), || {
            lab.serial().last().filter(|n| *n > 3)
        })
        .unwrap();

    for node in [&first, &second] {
        let (code, out) = clevervm(lab, node, &["status"], &deadline);
        assert_eq!(code, Some(0), "status on {node}:\n{out}");
        assert!(out.contains(&format!("running on {first}")), "{out}");
        assert!(out.contains(&format!("seen from {node}")), "{out}");
    }
    let (code, json) = clevervm(lab, &second, &["status", "--json"], &deadline);
    assert_eq!(code, Some(0));
    assert!(json.contains("\"state\": \"up\""), "{json}");

    // migrate --wait from the active node: hibernate, switch, resume, and say so.
    let watch = watch(lab);
    let (code, out) = clevervm(
        lab,
        &first,
        &["migrate", "--wait", "--wait-timeout", "120"],
        &deadline,
    );
    test.log(&format!("clevervm migrate --wait:\n{out}"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("migration complete"), "{out}");
    // Then where the time went, step by step, from the operation history.
    assert!(
        out.contains(&format!("{}: {first} -> {second}", ids::VM)) && out.contains("unreachable"),
        "{out}"
    );
    for step in [
        format!("stop {} on {first}", ids::VM),
        format!("demote {} on {first}", ids::DRBD),
        format!("promote {} on {second}", ids::DRBD),
        format!("start {} on {second}", ids::VM),
    ] {
        assert!(out.contains(&step), "no `{step}` in:\n{out}");
    }
    assert_eq!(lab.serial().boots, 1, "the migration rebooted the guest");
    let status = lab.status_from(&second, &deadline).unwrap();
    assert_eq!(status.running_on(ids::VM, None), [second.as_str()]);
    finish(&test, watch);

    // The ban is called out, from either node, until unmigrate; nothing moves back.
    let (_, out) = clevervm(lab, &first, &["status"], &deadline);
    assert!(out.contains("left by clevervm migrate"), "{out}");
    let (code, out) = clevervm(lab, &first, &["unmigrate"], &deadline);
    assert_eq!(code, Some(0), "{out}");
    let (_, out) = clevervm(lab, &second, &["status"], &deadline);
    assert!(!out.contains("left by clevervm migrate"), "{out}");
    thread::sleep(Duration::from_secs(3));
    let status = lab.status_from(&first, &deadline).unwrap();
    assert_eq!(status.running_on(ids::VM, None), [second.as_str()]);

    // A migrate that cannot complete: the only other node is in standby.
    lab.runner(&second)
        .unwrap()
        .run_ok(
            &CommandLine::new("/usr/sbin/crm_attribute")
                .args(["-N", &first, "-n", "standby", "-v", "on"]),
            &deadline,
        )
        .unwrap();
    let (code, out) = clevervm(lab, &second, &["migrate"], &deadline);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("{first} is in standby")), "{out}");
    lab.runner(&second)
        .unwrap()
        .run_ok(
            &CommandLine::new("/usr/sbin/crm_attribute")
                .args(["-N", &first, "-n", "standby", "-v", "off"]),
            &deadline,
        )
        .unwrap();

    // forcestop keeps it stopped (status 3); the storage stays where it was.
    let (code, out) = clevervm(lab, &first, &["forcestop"], &deadline);
    assert_eq!(code, Some(0), "{out}");
    lab.wait_for(&first, "the VM stopped", &deadline, |s| {
        s.running_on(ids::VM, None).is_empty()
    })
    .unwrap();
    let (code, out) = clevervm(lab, &first, &["status"], &deadline);
    assert_eq!(code, Some(3), "{out}");
    let storage = lab.mounted_on();
    assert_eq!(
        storage,
        [second.as_str()],
        "the storage stays with forcestop"
    );
    let (holder, bare) = (&storage[0], &first);

    // Direct verbs while the cluster keeps the VM stopped (the original's `service clevervm
    // start|stop`): stop has nothing to do anywhere; start is refused where the storage is not
    // and resumes the hibernated VM where it is.
    for node in [&first, &second] {
        let (code, out) = clevervm(lab, node, &["stop", "--yes"], &deadline);
        assert_eq!(code, Some(0), "stop of a stopped VM on {node}:\n{out}");
        assert!(out.contains("nothing to do"), "{out}");
    }
    let (code, out) = clevervm(lab, bare, &["start"], &deadline);
    assert_eq!(code, Some(1), "without --yes nothing happens:\n{out}");
    let (code, out) = clevervm(lab, bare, &["start", "--yes"], &deadline);
    assert_eq!(code, Some(1), "start without the storage:\n{out}");
    assert!(
        out.contains("storage is not mounted here") && out.contains(&format!("active on {holder}")),
        "{out}"
    );
    assert!(lab.qemu_on().is_empty(), "a refused start ran qemu");
    let (code, out) = clevervm(lab, holder, &["start", "--yes"], &deadline);
    assert_eq!(code, Some(0), "start on {holder}:\n{out}");
    assert!(
        out.contains("WARNING") && out.contains("resumed on"),
        "{out}"
    );
    assert_eq!(lab.qemu_on(), [holder.as_str()]);
    let before = lab.serial().last().unwrap_or_default();
    deadline
        .poll(
            "the resumed guest to count on",
            Duration::from_millis(50),
            || lab.serial().last().filter(|n| *n > before),
        )
        .unwrap();
    assert_eq!(lab.serial().boots, 1, "the direct start resumed the guest");

    // forcestart: Pacemaker finds the VM already running there and adopts it.
    let (code, out) = clevervm(lab, &second, &["forcestart"], &deadline);
    assert_eq!(code, Some(0), "{out}");
    lab.wait_for(&first, "the VM running again", &deadline, |s| {
        s.settled_on(ids::VM, None) == [holder.as_str()]
    })
    .unwrap();
    assert_eq!(
        lab.serial().boots,
        1,
        "forcestop/start/forcestart hibernated and resumed"
    );

    // Direct verbs while the cluster runs the VM, from either node.
    let direct_watch = self::watch(lab);
    let (active, passive) = (holder, bare);
    let (code, out) = clevervm(lab, active, &["stop"], &deadline);
    assert_eq!(code, Some(1), "without --yes nothing happens:\n{out}");
    let (code, out) = clevervm(lab, passive, &["stop", "--yes"], &deadline);
    assert_eq!(code, Some(1), "stop from the peer:\n{out}");
    assert!(out.contains(&format!("runs on {active}")), "{out}");
    for node in [active, passive] {
        let (code, out) = clevervm(lab, node, &["start", "--yes"], &deadline);
        assert_eq!(code, Some(0), "start of a running VM on {node}:\n{out}");
        assert!(out.contains("nothing to do"), "{out}");
    }
    assert_eq!(lab.qemu_on(), [active.as_str()]);
    // stop behind the cluster's back: libvirt hibernates the VM, Pacemaker's monitor finds it
    // gone and recovers it in place, which resumes it.
    let (code, out) = clevervm(lab, active, &["stop", "--yes"], &deadline);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("WARNING") && out.contains("hibernated on"),
        "{out}"
    );
    lab.wait_for(
        active,
        "the cluster to notice and recover the VM",
        &deadline,
        |s| {
            !s.failures.is_empty()
                && s.resources.iter().any(|r| {
                    r.id == ids::VM
                        && r.active
                        && !r.failed
                        && !r.role.is_transition()
                        && r.nodes == [active.clone()]
                })
        },
    )
    .unwrap();
    let before = lab.serial().last().unwrap_or_default();
    deadline
        .poll(
            "the recovered guest to count on",
            Duration::from_millis(50),
            || lab.serial().last().filter(|n| *n > before),
        )
        .unwrap();
    assert_eq!(
        lab.serial().boots,
        1,
        "the recovery resumed the hibernated VM"
    );
    finish(&test, direct_watch);

    // cleanup forgets the failure the direct stop caused.
    let (code, out) = clevervm(lab, &first, &["cleanup"], &deadline);
    assert_eq!(code, Some(0), "{out}");
    lab.wait_for(&second, "the failure forgotten", &deadline, |s| {
        s.failures.is_empty()
    })
    .unwrap();
}

/// Sets `target-role` of every resource in `ids` in one CIB change (one `cibadmin --modify`), so
/// that Pacemaker acts on all of them in one transition.
fn set_target_role_at_once(lab: &Lab, node: &str, ids: &[&str], role: &str, deadline: &Deadline) {
    let primitives: String = ids
        .iter()
        .map(|id| {
            format!(
                r#"<primitive id="{id}"><meta_attributes id="{id}-meta_attributes"><nvpair id="{id}-meta_attributes-target-role" name="target-role" value="{role}"/></meta_attributes></primitive>"#
            )
        })
        .collect();
    lab.runner(node)
        .unwrap()
        .run_ok(
            &CommandLine::new("/usr/sbin/cibadmin").args([
                "--modify",
                "--scope",
                "resources",
                "--xml-text",
                &format!("<resources>{primitives}</resources>"),
            ]),
            deadline,
        )
        .unwrap();
}

/// The files in `dir` as `node` sees it (through its init process's root).
fn files_in_node(lab: &Lab, node: &str, dir: &str) -> Vec<String> {
    let pid = lab.node_pid(node).unwrap();
    let path = PathBuf::from(format!("/proc/{pid}/root")).join(dir.trim_start_matches('/'));
    let mut names: Vec<String> = fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn three_vms_on_one_node_hibernate_and_resume_at_once_and_one_clevervm_migrate_moves_them_all() {
    let test = TestLab::up_with("vms", 2, &["--vm", "--vms", "3", "--vm-mib", "32"]);
    let lab = &test.lab;
    let stacks = lab.stacks();
    assert_eq!(stacks.len(), 3, "{stacks:?}");
    let vms: Vec<&str> = stacks.iter().map(|s| s.vm.as_str()).collect();
    let deadline = Deadline::after(Duration::from_secs(420));

    // Each stack on its own device, all of them on one node.
    let devices: BTreeSet<&str> = stacks.iter().map(|s| s.device.as_str()).collect();
    assert_eq!(devices.len(), 3, "{stacks:?}");
    let status = lab
        .wait_for("node1", "the three stacks on one node", &deadline, |s| {
            let first = s.settled_on(&stacks[0].vm, None);
            first.len() == 1
                && stacks.iter().all(|stack| {
                    s.settled_on(&stack.vm, None) == first
                        && s.settled_on(&stack.fs, None) == first
                        && s.settled_on(&stack.ip, None) == first
                })
        })
        .unwrap();
    let first = status.running_on(&stacks[0].vm, None)[0].to_owned();
    let second = other(lab, &first);
    let count_above = |name: &str, floor: u64| {
        deadline
            .poll(
                &format!("the guest {name} to count above {floor}"),
                Duration::from_millis(50),
                || lab.serial_of(name).last().filter(|n| *n > floor),
            )
            .unwrap()
    };
    for stack in &stacks {
        let count = count_above(&stack.name, 2);
        assert_eq!(lab.serial_of(&stack.name).boots, 1, "{}", stack.name);
        assert_eq!(lab.device_mounted_on(&stack.device), [first.as_str()]);
        assert_eq!(lab.domain_qemu_on(&stack.name), [first.as_str()]);
        test.log(&format!(
            "{} runs on {first} from {} (counter {count})",
            stack.vm, stack.device
        ));
    }
    let watch = Watch::start(lab.clone(), &vms);

    // All three stopped by the cluster in one change: each hibernates onto its own filesystem,
    // which stays mounted where it was.
    let stopping = Instant::now();
    watch.mark(format!(
        "target-role=Stopped on {} (one CIB change)",
        vms.join(" ")
    ));
    set_target_role_at_once(lab, &first, &vms, "Stopped", &deadline);
    lab.wait_for(&first, "the three VMs stopped", &deadline, |s| {
        vms.iter().all(|vm| s.running_on(vm, None).is_empty())
    })
    .unwrap();
    test.log(&format!("three VMs hibernated in {:?}", stopping.elapsed()));
    let mut frozen = Vec::new();
    for stack in &stacks {
        assert!(lab.domain_qemu_on(&stack.name).is_empty(), "{}", stack.name);
        assert_eq!(lab.device_mounted_on(&stack.device), [first.as_str()]);
        assert_eq!(
            files_in_node(lab, &first, &stack.hibernate_dir),
            [format!("{}.save", stack.name)],
            "{} hibernated onto its own filesystem",
            stack.name
        );
        frozen.push(lab.serial_of(&stack.name).last().unwrap());
    }

    // All three started in one change: each resumes from its own image, where it was.
    let starting = Instant::now();
    watch.mark(format!(
        "target-role=Started on {} (one CIB change)",
        vms.join(" ")
    ));
    set_target_role_at_once(lab, &first, &vms, "Started", &deadline);
    lab.wait_for(&first, "the three VMs started", &deadline, |s| {
        vms.iter()
            .all(|vm| s.settled_on(vm, None) == [first.as_str()])
    })
    .unwrap();
    let started = starting.elapsed();
    let mut before = Vec::new();
    for (stack, frozen) in stacks.iter().zip(&frozen) {
        let after = count_above(&stack.name, *frozen);
        let serial = lab.serial_of(&stack.name);
        assert_eq!(serial.boots, 1, "{} booted again: {serial:?}", stack.name);
        assert!(serial.increasing(), "{} counter went back", stack.name);
        assert!(
            files_in_node(lab, &first, &stack.hibernate_dir).is_empty(),
            "{}: the image it resumed from is left",
            stack.name
        );
        test.log(&format!(
            "{} resumed on {first}: counter {frozen} → {after}",
            stack.vm
        ));
        before.push(after);
    }
    test.log(&format!("three VMs resumed in {started:?}"));

    // One clevervm migrate moves the whole workload to the other node.
    let moving = Instant::now();
    watch.mark(format!("clevervm migrate --wait on {first}"));
    let (code, out) = clevervm(
        lab,
        &first,
        &["migrate", "--wait", "--wait-timeout", "240"],
        &deadline,
    );
    test.log(&format!("clevervm migrate --wait:\n{out}"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("migration complete"), "{out}");
    for stack in &stacks {
        let anchor = format!("drbd_r{}-clone: banned from {first}", stack.index);
        assert!(out.contains(&anchor), "{anchor}: {out}");
    }
    let moved = moving.elapsed();
    let status = lab.status_from(&second, &deadline).unwrap();
    for ((stack, before), frozen) in stacks.iter().zip(&before).zip(&frozen) {
        assert_eq!(status.running_on(&stack.vm, None), [second.as_str()]);
        assert_eq!(status.running_on(&stack.fs, None), [second.as_str()]);
        let after = count_above(&stack.name, *before);
        let serial = lab.serial_of(&stack.name);
        assert_eq!(serial.boots, 1, "{} booted again: {serial:?}", stack.name);
        assert!(serial.increasing(), "{} counter went back", stack.name);
        let only_there = Deadline::after(Duration::from_secs(10)).poll(
            "qemu only on the new node",
            Duration::from_millis(20),
            || (lab.domain_qemu_on(&stack.name) == [second.as_str()]).then_some(()),
        );
        assert!(only_there.is_ok(), "{}", stack.name);
        assert_eq!(lab.device_mounted_on(&stack.device), [second.as_str()]);
        test.log(&format!(
            "{} resumed on {second}: counter {frozen} → {before} → {after}, one boot",
            stack.vm
        ));
    }
    finish(&test, watch);
    test.log(&format!(
        "moved together to {second} in {moved:?}; filesystems and qemus never on two nodes"
    ));
}
