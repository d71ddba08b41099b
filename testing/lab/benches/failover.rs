//! `make bench` (alone: `make bench-lab`): failover timelines from the live lab, our agents
//! (`ocf:clever:vm`, `drbdfs`, `gwping`) against the stock ones (`VirtualDomain` with
//! `snapshot=`, `Filesystem`, `ocf:pacemaker:ping`), in the same lab set-up and the same run:
//!
//! 1. controlled migration of a 512 MiB guest (`crm_resource --move` of the VM, then `--clear`);
//! 2. power cut of the active node (fenced by the survivor, which takes the stack over);
//! 3. gateway loss of the active node (its uplink cut; the stack moves, nobody is fenced), with
//!    both gateway checks at the lab's settings (every 2 s, dampen 1 s);
//! 4. the same gateway loss with each stack's check as it is set up for a real cluster (ours:
//!    the generator's every 2 s, dampen 5 s; stock: ocf:pacemaker:ping's every 10 s, 3 attempts
//!    within 2 s, dampen 5 s), in a lab of its own (`clever-lab up --gateway-cadence own`).
//!
//! Each scenario runs [`RUNS`] times per stack. Two totals per run, from the fault (or the
//! command): the VM `Started` on the other node in `crm_mon` (seen from there), and the guest's
//! serial counter advancing again (it serves again). Between them, a timeline by phase: when the
//! fault was detected, the node fenced, each operation's result reached the CIB (as the other
//! node's `crm_mon` shows it), the address came up; Pacemaker's operation history
//! (`lrm_rsc_op`, read with `clevervm`'s parser) adds how long each operation ran and the second
//! it began in (`last-rc-change` has no finer resolution, too coarse to order steps a tenth of
//! a second apart, hence the polled view for the offsets). A round is a
//! fresh lab running each scenario once; rounds alternate between the stacks, so that load from
//! elsewhere on the machine hits both alike (two labs at once on two cores would measure each
//! other). Every run is watched, and one that had the VM or the filesystem active on two nodes at
//! once fails the benchmark.
//!
//! The floor: in each round of our stack, once its scenarios are done, Pacemaker is put in
//! maintenance mode and the same migration is done by hand, step after step (address, managed
//! save, umount, demote, promote, mount, `virsh start`, address), each timed; what the cluster
//! adds on top of the steps themselves is the distance between that and the migration's
//! timeline. The cluster is given the stack back (a refresh, then maintenance mode off) before
//! the lab goes down.
//!
//! The run ends with the targets: the migration's stack up within the floor + 0.5 s, the gateway
//! loss at each stack's own cadence at least twice as fast as stock, and after a power cut the
//! promotion and mount within 1 s of the fencing; each met, or the step that holds it.
//!
//! Slow (about 15 minutes): `make test` does not run it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code")]

use ocf_conformance::workspace_build::release_binaries;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clever_command::{CommandLine, RunCommand};
use clever_deadline::Deadline;
use clever_lab::config::ids;
use clever_lab::lab::VM_DOMAIN;
use clever_lab::layout;
use clever_lab::watch::{Report, Watch};
use clever_lab::Lab;
use clever_pacemaker::{ClusterStatus, Role};
use clevervm::timeline::{parse_phases, Phase as Operation};

/// Runs per scenario per stack: a failover costs tens of seconds with its recovery.
const RUNS: usize = 3;
/// The guest's RAM: what a controlled migration hibernates and resumes.
const VM_MIB: &str = "512";
const LAB_DIR: &str = "/run/clever-lab-bench";
/// How often the end of a failover is looked for.
const PERIOD: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Ours,
    Stock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Migration,
    PowerCut,
    /// Both stacks' gateway checks at the lab's settings (every 2 s, dampen 1 s).
    GatewayLoss,
    /// Each stack's gateway check as it is set up for a real cluster (in a lab of its own).
    GatewayLossOwnCadence,
}

/// The scenarios of one lab at the lab's gateway cadence, in the order they run.
const SCENARIOS: [Scenario; 3] = [
    Scenario::Migration,
    Scenario::PowerCut,
    Scenario::GatewayLoss,
];

/// Every scenario, in the order a round records them: [`SCENARIOS`], then the gateway loss
/// at each stack's own cadence.
const ALL_SCENARIOS: [Scenario; 4] = [
    Scenario::Migration,
    Scenario::PowerCut,
    Scenario::GatewayLoss,
    Scenario::GatewayLossOwnCadence,
];

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Self::Migration => "controlled migration, 512 MiB guest",
            Self::PowerCut => "power cut of the active node",
            Self::GatewayLoss => "gateway loss, lab cadence (2s/1s)",
            Self::GatewayLossOwnCadence => "gateway loss, each stack's own cadence",
        }
    }
}

/// The steps of a failover, listed in the order the stack first went through them; the
/// generator's constraints decide whether the address waits for the VM or only for the mount, so
/// nothing here relies on the order of those two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Detected,
    Fenced,
    Hibernated,
    Unmounted,
    Demoted,
    Promoted,
    Mounted,
    VmStarted,
    AddressUp,
    Serving,
}

const STEPS: [Step; 10] = [
    Step::Detected,
    Step::Fenced,
    Step::Hibernated,
    Step::Unmounted,
    Step::Demoted,
    Step::Promoted,
    Step::Mounted,
    Step::VmStarted,
    Step::AddressUp,
    Step::Serving,
];

impl Step {
    fn label(self) -> &'static str {
        match self {
            Self::Detected => "detected",
            Self::Fenced => "fenced",
            Self::Hibernated => "hibernated",
            Self::Unmounted => "unmounted",
            Self::Demoted => "demoted",
            Self::Promoted => "promoted",
            Self::Mounted => "mounted",
            Self::VmStarted => "VM started",
            Self::AddressUp => "address up",
            Self::Serving => "guest serving",
        }
    }

    /// Whether the step happens in `scenario`: a migration has no fault to detect, and after a
    /// power cut nothing is stopped on the dead node (fencing stands for it).
    fn applies(self, scenario: Scenario) -> bool {
        match self {
            Self::Detected => scenario != Scenario::Migration,
            Self::Fenced => scenario == Scenario::PowerCut,
            Self::Hibernated | Self::Unmounted | Self::Demoted => scenario != Scenario::PowerCut,
            _ => true,
        }
    }

    /// The operation whose result marks the step: resource, operation, whether it runs on the
    /// node the stack moves to.
    fn operation(self) -> Option<(&'static str, &'static str, bool)> {
        match self {
            Self::Hibernated => Some((ids::VM, "stop", false)),
            Self::Unmounted => Some((ids::FS, "stop", false)),
            Self::Demoted => Some((ids::DRBD, "demote", false)),
            Self::Promoted => Some((ids::DRBD, "promote", true)),
            Self::Mounted => Some((ids::FS, "start", true)),
            Self::VmStarted => Some((ids::VM, "start", true)),
            Self::AddressUp => Some((ids::IP, "start", true)),
            Self::Detected | Self::Fenced | Self::Serving => None,
        }
    }

    fn index(self) -> usize {
        STEPS.iter().position(|s| *s == self).unwrap()
    }
}

/// One run: from the fault to the VM started on the other node and to the guest counting, and
/// the moment each step completed.
#[derive(Debug, Clone, Copy)]
struct Run {
    started: Duration,
    serving: Duration,
    steps: [Option<Duration>; STEPS.len()],
}

impl Run {
    fn step(&self, step: Step) -> Option<Duration> {
        self.steps[step.index()]
    }
}

fn clever_lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clever-lab"))
        .args(["--dir", LAB_DIR])
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let output = clever_lab(args);
    assert!(
        output.status.success(),
        "clever-lab {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `argv` inside `node`; its stdout. A failure fails the benchmark with the command's
/// stderr.
fn in_node(lab: &Lab, node: &str, argv: &[&str], deadline: &Deadline) -> String {
    let command = CommandLine::new(argv[0]).args(&argv[1..]);
    lab.runner(node)
        .unwrap()
        .run_ok(&command, deadline)
        .unwrap_or_else(|e| panic!("{argv:?} on {node}: {e}"))
        .stdout_text()
}

/// Our agents as in the tree, built in release (what the lab installs into its nodes).
fn release_dir() -> PathBuf {
    release_binaries(&[
        "clever-agent-gwping",
        "clever-agent-drbdfs",
        "clever-agent-vm",
    ])
}

/// Polls `done` every [`PERIOD`] (no back-off: the moment matters) until it holds.
fn until(deadline: &Deadline, what: &str, mut done: impl FnMut() -> bool) {
    while !done() {
        assert!(!deadline.expired(), "timed out waiting for {what}");
        thread::sleep(PERIOD);
    }
}

fn other(lab: &Lab, node: &str) -> String {
    lab.nodes().iter().find(|n| *n != node).unwrap().clone()
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits for the stack on one node with the guest counting and every node scoring the
/// gateway; returns the active node.
fn steady(lab: &Lab, deadline: &Deadline) -> String {
    let status = lab
        .wait_for("node1", "the stack to run", deadline, |s| {
            let vm = s.settled_on(ids::VM, None);
            vm.len() == 1
                && s.settled_on(ids::FS, None) == vm
                && s.settled_on(ids::IP, None) == vm
                && lab
                    .nodes()
                    .iter()
                    .all(|n| s.attribute(n, ids::GWPING_ATTRIBUTE) == Some("1000"))
        })
        .unwrap();
    let active = status.settled_on(ids::VM, None)[0].to_owned();
    let before = lab.serial().last().unwrap_or_default();
    until(deadline, "the guest to count", || {
        lab.serial().last().is_some_and(|n| n > before)
    });
    active
}

/// Whether the cluster's view (the CIB, through `crm_mon`) shows `step` done, the stack moving
/// from `source` to `target`.
fn shows(s: &ClusterStatus, step: Step, scenario: Scenario, source: &str, target: &str) -> bool {
    let on = |id: &str, node: &str| s.running_on(id, None).contains(&node);
    match step {
        Step::Detected => match scenario {
            Scenario::PowerCut => s.node(source).is_some_and(|n| n.unclean || !n.online),
            _ => s.attribute(source, ids::GWPING_ATTRIBUTE) != Some("1000"),
        },
        Step::Hibernated => !on(ids::VM, source),
        Step::Unmounted => !on(ids::FS, source),
        // Running there in a role other than promoted (or a transition to or from it), or not at
        // all.
        Step::Demoted => !s.resources.iter().any(|r| {
            r.id == ids::DRBD
                && r.active
                && r.nodes.iter().any(|n| n == source)
                && matches!(r.role, Role::Promoted | Role::Promoting | Role::Demoting)
        }),
        Step::Promoted => s.settled_on(ids::DRBD, Some(Role::Promoted)) == [target],
        Step::Mounted => s.settled_on(ids::FS, None) == [target],
        Step::VmStarted => s.settled_on(ids::VM, None) == [target],
        Step::AddressUp => s.settled_on(ids::IP, None) == [target],
        Step::Fenced | Step::Serving => false,
    }
}

/// When the watch first saw the sampled `what` ("filesystem mounted on", "qemu running on",
/// "service address on") with nodes that `accept`, from the fault (the event `mark`).
fn sampled(
    report: &Report,
    mark: Duration,
    what: &str,
    accept: impl Fn(&[&str]) -> bool,
) -> Option<Duration> {
    let prefix = format!("{what} [");
    report
        .events
        .iter()
        .filter(|e| e.at >= mark)
        .find(|e| {
            e.what.strip_prefix(&prefix).is_some_and(|rest| {
                let nodes: Vec<&str> = rest.trim_end_matches(']').split_whitespace().collect();
                accept(&nodes)
            })
        })
        .map(|e| e.at - mark)
}

/// The fence device's first `off` of `node` logged after `since` (seconds since the epoch), as
/// an offset from it. The power log's lines start with their time, to the millisecond.
fn fenced_at(lab: &Lab, node: &str, since: f64) -> Option<f64> {
    let text = fs::read_to_string(lab.layout().fence_log()).ok()?;
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let at: f64 = words.next()?.parse().ok()?;
        let named = words.next()? == node;
        (named && at >= since && line.contains("fence_lab")).then_some(at - since)
    })
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// One failover of `scenario` away from `active`; leaves the lab steady again. Returns the run
/// and its printed timeline.
fn run_once(lab: &Lab, scenario: Scenario, active: &str) -> (Run, String) {
    let deadline = Deadline::after(Duration::from_secs(300));
    let target = other(lab, active);
    let watch = Watch::start(lab.clone(), &[ids::VM, ids::FS, ids::IP]);
    let boots = lab.serial().boots;
    let mark = match scenario {
        Scenario::Migration => format!("crm_resource --move {} --node {target}", ids::VM),
        Scenario::PowerCut => format!("FAULT: power cut of {active}"),
        Scenario::GatewayLoss | Scenario::GatewayLossOwnCadence => {
            format!("FAULT: uplink of {active} cut")
        }
    };
    let fault = Instant::now();
    let fault_epoch = epoch();
    watch.mark(mark.clone());
    match scenario {
        Scenario::Migration => {
            lab.pacemaker(active)
                .unwrap()
                .move_to(ids::VM, &target, false, &deadline)
                .unwrap();
        }
        Scenario::PowerCut => lab.power_cut(active).unwrap(),
        Scenario::GatewayLoss | Scenario::GatewayLossOwnCadence => {
            lab.gateway_cut(Some(active)).unwrap();
        }
    }
    let mut seen: [Option<Duration>; STEPS.len()] = [None; STEPS.len()];
    let mut serving = None;
    // Lines the guest printed when qemu ran on the target alone: one more means it serves
    // there (the source may print a last line before it is paused or killed).
    let mut printed_when_alone = None;
    // The longest time between two views of the cluster: how late a step may be seen.
    let (mut last_view, mut view_gap) = (fault, Duration::ZERO);
    until(&deadline, "the stack to run on the other node", || {
        if serving.is_none() {
            let printed = lab.serial().counts.len();
            match printed_when_alone {
                None if lab.qemu_on() == [target.as_str()] => printed_when_alone = Some(printed),
                Some(base) if printed > base => serving = Some(fault.elapsed()),
                _ => {}
            }
        }
        if let Ok(status) = lab.status_from(&target, &deadline) {
            let now = fault.elapsed();
            view_gap = view_gap.max(last_view.elapsed());
            last_view = Instant::now();
            for step in STEPS.into_iter().filter(|s| s.applies(scenario)) {
                if seen[step.index()].is_none() && shows(&status, step, scenario, active, &target) {
                    seen[step.index()] = Some(now);
                }
            }
        }
        serving.is_some()
            && seen[Step::VmStarted.index()].is_some()
            && seen[Step::AddressUp.index()].is_some()
    });
    let report = watch.finish();
    assert!(
        report.doubles.is_empty(),
        "active on two nodes at once: {:?}\n{report}",
        report.doubles
    );
    let serial = lab.serial();
    match scenario {
        Scenario::Migration => assert_eq!(serial.boots, boots, "the move rebooted the guest"),
        Scenario::PowerCut => assert_eq!(serial.boots, boots + 1, "no cold boot after a power cut"),
        Scenario::GatewayLoss | Scenario::GatewayLossOwnCadence => {}
    }
    let history = lab
        .pacemaker(&target)
        .unwrap()
        .status_section(&deadline)
        .unwrap();
    let operations = parse_phases(&history).unwrap();
    let mark_at = report.first(&mark).unwrap_or_default();
    let lab_seen = |step: Step| -> Option<Duration> {
        let (what, to_target, node) = match step {
            Step::Hibernated => ("qemu running on", false, active),
            Step::Unmounted => ("filesystem mounted on", false, active),
            Step::Mounted => ("filesystem mounted on", true, target.as_str()),
            Step::VmStarted => ("qemu running on", true, target.as_str()),
            Step::AddressUp => ("service address on", true, target.as_str()),
            _ => return None,
        };
        sampled(&report, mark_at, what, |nodes| {
            nodes.contains(&node) == to_target
        })
    };

    let mut run = Run {
        started: seen[Step::VmStarted.index()].unwrap(),
        serving: serving.unwrap(),
        steps: seen,
    };
    run.steps[Step::Serving.index()] = Some(run.serving);
    if scenario == Scenario::PowerCut {
        run.steps[Step::Fenced.index()] =
            fenced_at(lab, active, fault_epoch).map(Duration::from_secs_f64);
    }
    // The address is up when the node holds it, which the watch samples every few ms.
    if let Some(up) = lab_seen(Step::AddressUp) {
        run.steps[Step::AddressUp.index()] = Some(up);
    }

    let mut timeline = String::new();
    for step in STEPS.into_iter().filter(|s| s.applies(scenario)) {
        let at = run
            .step(step)
            .map_or_else(|| "      -".to_owned(), |d| format!("{:>+7.2}", seconds(d)));
        let mut notes = Vec::new();
        match step {
            Step::Detected if scenario == Scenario::PowerCut => {
                notes.push(format!("{target} sees {active} unclean or lost"));
            }
            Step::Detected => notes.push(format!(
                "{} of {active} below 1000 in the CIB",
                ids::GWPING_ATTRIBUTE
            )),
            Step::Fenced => notes.push("power log".to_owned()),
            Step::Serving => notes.push("serial counter advanced".to_owned()),
            Step::AddressUp => {
                notes.push("held by the node".to_owned());
                if let Some(cib) = seen[step.index()] {
                    notes.push(format!("in the CIB {:+.2}", seconds(cib)));
                }
            }
            _ => notes.push("result in the CIB".to_owned()),
        }
        if step != Step::AddressUp {
            if let Some(lab_at) = lab_seen(step) {
                let what = match step {
                    Step::Hibernated => "qemu gone",
                    Step::VmStarted => "qemu up",
                    Step::Unmounted => "mount gone",
                    _ => "mount seen",
                };
                notes.push(format!("{what} {:+.2}", seconds(lab_at)));
            }
        }
        if let Some((resource, operation, on_target)) = step.operation() {
            let node = if on_target { target.as_str() } else { active };
            if let Some(op) = recorded(&operations, resource, operation, node, fault_epoch) {
                // last-rc-change: when the operation began to run, in whole seconds.
                let began = op.last_rc_change() - fault_epoch;
                notes.push(format!(
                    "history: began {:+.1}..{:+.1}, ran {:.2}s",
                    began,
                    began + 1.0,
                    op.seconds
                ));
            }
        }
        let _ = writeln!(
            timeline,
            "  {:<13} {at}s  {}",
            step.label(),
            notes.join("; ")
        );
    }
    let _ = writeln!(
        timeline,
        "  (the cluster seen from {target} at most {:.0} ms apart)",
        view_gap.as_secs_f64() * 1000.0
    );
    timeline.push_str(&report.to_string());

    // Back to a steady lab, the stack staying where it now is (stickiness).
    match scenario {
        Scenario::Migration => lab
            .pacemaker(&target)
            .unwrap()
            .clear(ids::VM, &deadline)
            .unwrap(),
        Scenario::PowerCut => {
            ok(&["power-on", active]);
        }
        Scenario::GatewayLoss | Scenario::GatewayLossOwnCadence => {
            lab.gateway_restore(Some(active)).unwrap();
        }
    }
    lab.wait_for(&target, "the lab steady again", &deadline, |s| {
        lab.cluster_formed(s)
            && lab
                .nodes()
                .iter()
                .all(|n| s.node(n).is_some_and(|n| n.online))
            && s.settled_on(ids::VM, None) == [target.as_str()]
            && s.attribute(active, ids::GWPING_ATTRIBUTE) == Some("1000")
    })
    .unwrap();
    (run, timeline)
}

/// The latest `operation` of `resource` on `node` in the history that began in the fault's
/// second or later (`last-rc-change` is in whole seconds).
fn recorded<'a>(
    operations: &'a [Operation],
    resource: &str,
    operation: &str,
    node: &str,
    since: f64,
) -> Option<&'a Operation> {
    operations
        .iter()
        .filter(|op| {
            op.resource == resource
                && op.operation == operation
                && op.node == node
                && op.rc == 0
                && op.last_rc_change() >= since.floor()
        })
        .max_by(|a, b| a.last_rc_change().total_cmp(&b.last_rc_change()))
}

/// The steps of the migration by hand, in the cluster's order.
const FLOOR_STEPS: [&str; 8] = [
    "address removed",
    "managed save",
    "umount",
    "demote",
    "promote",
    "mount",
    "virsh start (restore)",
    "address added",
];

/// The libvirt save and restore options measured in place, after the migration by hand: the
/// default (through the page cache) and `--bypass-cache` (O_DIRECT), one after the other on
/// the same node, image and guest.
const IN_PLACE_STEPS: [&str; 4] = [
    "managed save",
    "restore (virsh start)",
    "managed save --bypass-cache",
    "restore --bypass-cache",
];

/// One migration by hand: how long each step took, and from the first step to the guest
/// counting on the other node; then the save options in place.
#[derive(Debug, Clone, Copy)]
struct FloorRun {
    steps: [Duration; FLOOR_STEPS.len()],
    serving: Duration,
    in_place: [Duration; IN_PLACE_STEPS.len()],
}

impl FloorRun {
    fn total(&self) -> Duration {
        self.steps.iter().sum()
    }
}

/// The DRBD stand-in's state file on `node` (where `ocf:pacemaker:Stateful` keeps its role,
/// `/run/Stateful-INSTANCE.state`), as the path inside the node and the instance name.
fn stateful_state(lab: &Lab, node: &str) -> (String, String) {
    let pid = lab.node_pid(node).unwrap();
    let prefix = format!("Stateful-{}", ids::DRBD);
    let name = fs::read_dir(format!("/proc/{pid}/root/run"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&prefix) && n.ends_with(".state"))
        .unwrap_or_else(|| panic!("no {prefix}*.state in /run of {node}"));
    let instance = name
        .trim_start_matches("Stateful-")
        .trim_end_matches(".state")
        .to_owned();
    (format!("/run/{name}"), instance)
}

/// Runs the Stateful agent's `action` on `node` as the executor would (the OCF environment of
/// the instance whose state file is there).
fn stateful(lab: &Lab, node: &str, action: &str, state: &str, instance: &str, deadline: &Deadline) {
    in_node(
        lab,
        node,
        &[
            "/usr/bin/env",
            "OCF_ROOT=/usr/lib/ocf",
            &format!("OCF_RESOURCE_INSTANCE={instance}"),
            &format!("OCF_RESKEY_state={state}"),
            "/usr/lib/ocf/resource.d/pacemaker/Stateful",
            action,
        ],
        deadline,
    );
}

fn timed(work: impl FnOnce()) -> Duration {
    let at = Instant::now();
    work();
    at.elapsed()
}

fn maintenance(lab: &Lab, node: &str, on: bool, deadline: &Deadline) {
    in_node(
        lab,
        node,
        &[
            "/usr/sbin/crm_attribute",
            "--type",
            "crm_config",
            "--name",
            "maintenance-mode",
            "--update",
            if on { "true" } else { "false" },
        ],
        deadline,
    );
}

/// The migration of the stack from `active` by hand, Pacemaker in maintenance mode; then the
/// stack is handed back to Pacemaker where it now is.
fn floor_once(lab: &Lab, active: &str) -> FloorRun {
    let deadline = Deadline::after(Duration::from_secs(300));
    let target = other(lab, active);
    let device = lab.state().loop_device.clone();
    let address = format!("{}/24", layout::vm_address(0));
    let link = format!("{}/{VM_DOMAIN}.save", layout::LIBVIRT_SAVE_DIR);
    let image = format!("{}/{VM_DOMAIN}.save", layout::HIBERNATE_DIR);
    let stack = [ids::VM, ids::FS, ids::IP, ids::DRBD];

    maintenance(lab, active, true, &deadline);
    lab.wait_for(active, "the stack unmanaged", &deadline, |s| {
        s.resources
            .iter()
            .filter(|r| stack.contains(&r.id.as_str()))
            .all(|r| !r.managed)
    })
    .unwrap();
    // The transition that cancels the monitors runs after the CIB shows maintenance mode.
    thread::sleep(Duration::from_secs(2));
    // libvirt saves to and restores from its own directory; as with ocf:clever:vm, a link
    // there points at the image on the shared filesystem (untimed: the agent keeps it made).
    for node in [active, target.as_str()] {
        in_node(
            lab,
            node,
            &["/usr/bin/ln", "-sfn", &image, &link],
            &deadline,
        );
    }

    let (demote_state, demote_instance) = stateful_state(lab, active);
    let (promote_state, promote_instance) = stateful_state(lab, &target);
    let iface = layout::UPLINK_IFACE;

    let watch = Watch::start(lab.clone(), &[ids::VM, ids::FS, ids::IP]);
    let boots = lab.serial().boots;
    let mut steps = [Duration::ZERO; FLOOR_STEPS.len()];
    let began = Instant::now();
    steps[0] = timed(|| {
        in_node(
            lab,
            active,
            &["/usr/sbin/ip", "addr", "del", &address, "dev", iface],
            &deadline,
        );
    });
    steps[1] = timed(|| {
        in_node(
            lab,
            active,
            &["/usr/bin/virsh", "managedsave", VM_DOMAIN],
            &deadline,
        );
    });
    // The guest is saved: a line printed from now on comes from the restored guest.
    let printed = lab.serial().counts.len();
    steps[2] = timed(|| {
        in_node(
            lab,
            active,
            &["/usr/bin/umount", layout::SHARED_MOUNT],
            &deadline,
        );
    });
    steps[3] = timed(|| {
        stateful(
            lab,
            active,
            "demote",
            &demote_state,
            &demote_instance,
            &deadline,
        )
    });
    steps[4] = timed(|| {
        stateful(
            lab,
            &target,
            "promote",
            &promote_state,
            &promote_instance,
            &deadline,
        );
    });
    steps[5] = timed(|| {
        in_node(
            lab,
            &target,
            &[
                "/usr/bin/mount",
                "-t",
                "ext4",
                &device,
                layout::SHARED_MOUNT,
            ],
            &deadline,
        );
    });
    // Untimed: the domain is defined on a node where it ran once (the agents define it).
    let untimed = Instant::now();
    let defined = lab
        .runner(&target)
        .unwrap()
        .run(
            &CommandLine::new("/usr/bin/virsh").args(["domstate", VM_DOMAIN]),
            &deadline,
        )
        .is_ok_and(|o| o.status.success());
    if !defined {
        let config = format!("{}/{VM_DOMAIN}.xml", layout::SHARED_MOUNT);
        eprintln!("the domain was not defined on {target}: defined from {config} (untimed)");
        in_node(
            lab,
            &target,
            &["/usr/bin/virsh", "define", &config],
            &deadline,
        );
    }
    let untimed = untimed.elapsed();
    steps[6] = timed(|| {
        in_node(
            lab,
            &target,
            &["/usr/bin/virsh", "start", VM_DOMAIN],
            &deadline,
        );
    });
    steps[7] = timed(|| {
        in_node(
            lab,
            &target,
            &["/usr/sbin/ip", "addr", "add", &address, "dev", iface],
            &deadline,
        );
    });
    until(&deadline, "the guest to count after the restore", || {
        lab.serial().counts.len() > printed
    });
    let serving = began.elapsed() - untimed;
    let report = watch.finish();
    assert!(
        report.doubles.is_empty(),
        "active on two nodes at once during the migration by hand: {:?}\n{report}",
        report.doubles
    );
    assert_eq!(
        lab.serial().boots,
        boots,
        "the restore booted the guest instead of resuming it"
    );

    // The image stays behind once libvirt resumed from it (it removes only its link).
    in_node(lab, &target, &["/usr/bin/rm", "-f", &image], &deadline);
    let mut in_place = [Duration::ZERO; IN_PLACE_STEPS.len()];
    for (pair, flags) in [(0, &[][..]), (2, &["--bypass-cache"][..])] {
        let save: Vec<&str> = ["/usr/bin/virsh", "managedsave", VM_DOMAIN]
            .into_iter()
            .chain(flags.iter().copied())
            .collect();
        let restore: Vec<&str> = ["/usr/bin/virsh", "start", VM_DOMAIN]
            .into_iter()
            .chain(flags.iter().copied())
            .collect();
        in_node(
            lab,
            &target,
            &["/usr/bin/ln", "-sfn", &image, &link],
            &deadline,
        );
        in_place[pair] = timed(|| {
            in_node(lab, &target, &save, &deadline);
        });
        in_place[pair + 1] = timed(|| {
            in_node(lab, &target, &restore, &deadline);
        });
        in_node(lab, &target, &["/usr/bin/rm", "-f", &image], &deadline);
    }
    assert_eq!(
        lab.serial().boots,
        boots,
        "a restore in place booted the guest instead of resuming it"
    );
    // Pacemaker takes the stack back: a refresh re-probes every resource where it now is, then
    // maintenance mode ends.
    in_node(
        lab,
        &target,
        &["/usr/sbin/crm_resource", "--refresh"],
        &deadline,
    );
    maintenance(lab, &target, false, &deadline);
    let back = lab.wait_for(
        &target,
        "the cluster to hold the stack again",
        &deadline,
        |s| {
            s.resources
                .iter()
                .filter(|r| stack.contains(&r.id.as_str()))
                .all(|r| r.managed && !r.failed)
                && s.settled_on(ids::VM, None) == [target.as_str()]
                && s.settled_on(ids::FS, None) == [target.as_str()]
                && s.settled_on(ids::IP, None) == [target.as_str()]
                && s.settled_on(ids::DRBD, Some(Role::Promoted)) == [target.as_str()]
        },
    );
    if let Err(e) = back {
        eprintln!("after the migration by hand, the cluster did not take the stack back: {e}");
    }
    let mut text = format!("Floor (by hand, no cluster) {active} -> {target}:");
    for (label, step) in FLOOR_STEPS.iter().zip(steps) {
        let _ = write!(text, " {label} {:.2}s,", seconds(step));
    }
    let run = FloorRun {
        steps,
        serving,
        in_place,
    };
    eprintln!(
        "{text} total {:.2}s, guest counting after {:.2}s; in place on {target}: {}",
        seconds(run.total()),
        seconds(serving),
        IN_PLACE_STEPS
            .iter()
            .zip(in_place)
            .map(|(label, d)| format!("{label} {:.2}s", seconds(d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    run
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median of the runs that have a value, and how many had one.
fn median_of(samples: impl Iterator<Item = Option<Duration>>) -> Option<(Duration, usize)> {
    let present: Vec<Duration> = samples.flatten().collect();
    let n = present.len();
    (n > 0).then(|| (median(present), n))
}

/// One round for `stack`: a fresh lab, each of [`SCENARIOS`] once, and for our stack a
/// migration by hand; then a second lab with each stack's own gateway cadence for the gateway
/// loss again. The runs in [`ALL_SCENARIOS`] order.
fn round(stack: Stack, index: usize, release: &Path) -> (Vec<Run>, Option<FloorRun>) {
    let lab = lab_up(stack, release, "lab");
    let mut active = steady(&lab, &Deadline::after(Duration::from_secs(300)));
    let mut runs = Vec::new();
    for scenario in SCENARIOS {
        runs.push(run_and_report(&lab, stack, scenario, index, &active));
        active = steady(&lab, &Deadline::after(Duration::from_secs(300)));
    }
    let floor = (stack == Stack::Ours).then(|| floor_once(&lab, &active));
    let lab = lab_up(stack, release, "own");
    let active = steady(&lab, &Deadline::after(Duration::from_secs(300)));
    runs.push(run_and_report(
        &lab,
        stack,
        Scenario::GatewayLossOwnCadence,
        index,
        &active,
    ));
    ok(&["down"]);
    (runs, floor)
}

/// A fresh lab of `stack` with the gateway check at `cadence` (`clever-lab up
/// --gateway-cadence`).
fn lab_up(stack: Stack, release: &Path, cadence: &str) -> Lab {
    ok(&["down"]);
    let mut args = vec![
        "up",
        "--vm",
        "--vm-mib",
        VM_MIB,
        "--gateway-cadence",
        cadence,
        "--agents",
        release.to_str().unwrap(),
    ];
    if stack == Stack::Stock {
        args.push("--stock");
    }
    let up = ok(&args);
    eprintln!("{}", up.lines().next().unwrap_or_default());
    Lab::open(LAB_DIR).unwrap()
}

fn run_and_report(lab: &Lab, stack: Stack, scenario: Scenario, index: usize, active: &str) -> Run {
    let (run, timeline) = run_once(lab, scenario, active);
    eprintln!(
        "{stack:?} {} #{index}: VM started on the other node after {:.2?}, guest counting \
         after {:.2?}\n{timeline}",
        scenario.label(),
        run.started,
        run.serving
    );
    run
}

/// The goals, as ratios and sums from this run's medians: each met, or not, naming the step
/// that holds it.
fn targets(ours: &[Vec<Run>], stock: &[Vec<Run>], floor: &[FloorRun]) -> String {
    let position = |wanted: Scenario| ALL_SCENARIOS.iter().position(|s| *s == wanted).unwrap();
    let step_of = |rounds: &[Vec<Run>], scenario: Scenario, step: Step| {
        median_of(rounds.iter().map(|r| r[position(scenario)].step(step))).map(|(d, _)| d)
    };
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let mut text = String::from("\nTargets (medians of this run)\n");

    // Controlled migration: the stack up within the floor + 0.5 s.
    let floor_step = |index: usize| median(floor.iter().map(|f| f.steps[index]).collect());
    let floor_total = median(floor.iter().map(FloorRun::total).collect());
    let stack_up = median_of(ours.iter().map(|r| {
        let run = &r[position(Scenario::Migration)];
        run.step(Step::VmStarted).max(run.step(Step::AddressUp))
    }))
    .map(|(d, _)| d);
    if let (Some(up), false) = (stack_up, floor.is_empty()) {
        let goal = floor_total + Duration::from_millis(500);
        let _ = write!(
            text,
            "controlled migration: stack up {:.2}s, floor {:.2}s + 0.5s = {:.2}s: {}",
            seconds(up),
            seconds(floor_total),
            seconds(goal),
            verdict(up <= goal)
        );
        if up > goal {
            // Each step's own time in the cluster (from the step before) against the same step
            // by hand; the largest excess holds the target.
            let pairs = [
                (Step::Hibernated, 1),
                (Step::Unmounted, 2),
                (Step::Demoted, 3),
                (Step::Promoted, 4),
                (Step::Mounted, 5),
                (Step::VmStarted, 6),
            ];
            let mut previous = Duration::ZERO;
            let mut worst: Option<(&str, Duration)> = None;
            for (step, floor_index) in pairs {
                let Some(at) = step_of(ours, Scenario::Migration, step) else {
                    continue;
                };
                let excess = at
                    .saturating_sub(previous)
                    .saturating_sub(floor_step(floor_index));
                previous = at;
                if worst.is_none_or(|(_, w)| excess > w) {
                    worst = Some((step.label(), excess));
                }
            }
            if let Some((label, excess)) = worst {
                let _ = write!(
                    text,
                    " (held by `{label}`: {:.2}s over the same step by hand)",
                    seconds(excess)
                );
            }
        }
        text.push('\n');
    }

    // Gateway loss at each stack's own cadence: ours at least twice as fast.
    let of =
        |rounds: &[Vec<Run>], step: Step| step_of(rounds, Scenario::GatewayLossOwnCadence, step);
    if let (Some(o), Some(s)) = (of(ours, Step::VmStarted), of(stock, Step::VmStarted)) {
        let ratio = seconds(s) / seconds(o).max(1e-9);
        let _ = write!(
            text,
            "gateway loss, own cadence: VM started elsewhere ours {:.2}s, stock {:.2}s, stock/ours \
             {ratio:.2}x (goal 2x): {}",
            seconds(o),
            seconds(s),
            verdict(ratio >= 2.0)
        );
        if ratio < 2.0 {
            let detected = of(ours, Step::Detected).unwrap_or_default();
            let _ = write!(
                text,
                " (ours: detection {:.2}s, the move after it {:.2}s)",
                seconds(detected),
                seconds(o.saturating_sub(detected))
            );
        }
        text.push('\n');
    }

    // Power cut: cut → guest serving within membership loss + fencing + cold boot + 1 s, i.e.
    // promotion and mount after the fencing within 1 s (the cold boot: from the mount to the
    // guest counting, qemu's start included).
    let of = |step: Step| step_of(ours, Scenario::PowerCut, step);
    if let (Some(detected), Some(fenced), Some(mounted), Some(serving)) = (
        of(Step::Detected),
        of(Step::Fenced),
        of(Step::Mounted),
        of(Step::Serving),
    ) {
        let between = mounted.saturating_sub(fenced);
        let _ = writeln!(
            text,
            "power cut: guest serving {:.2}s = membership loss {:.2}s + fencing {:.2}s + promote \
             and mount {:.2}s + cold boot {:.2}s; goal: promote and mount within 1s: {}",
            seconds(serving),
            seconds(detected),
            seconds(fenced.saturating_sub(detected)),
            seconds(between),
            seconds(serving.saturating_sub(mounted)),
            verdict(between <= Duration::from_secs(1))
        );
    }
    text
}

fn cell(value: Option<(Duration, usize)>) -> String {
    match value {
        None => "-".to_owned(),
        Some((d, n)) if n < RUNS => format!("{:.2}s ({n})", seconds(d)),
        Some((d, _)) => format!("{:.2}s", seconds(d)),
    }
}

fn ratio(over: Option<(Duration, usize)>, under: Option<(Duration, usize)>) -> String {
    match (over, under) {
        (Some((a, _)), Some((b, _))) if !b.is_zero() => {
            format!("{:.2}x", seconds(a) / seconds(b))
        }
        _ => "-".to_owned(),
    }
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() -> ExitCode {
    let load_before = load_average();
    let release = release_dir();
    // Rounds alternate between the stacks, so that the machine's load drifts over both alike.
    let (mut ours, mut stock, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for index in 1..=RUNS {
        let (runs, by_hand) = round(Stack::Ours, index, &release);
        ours.push(runs);
        floor.extend(by_hand);
        stock.push(round(Stack::Stock, index, &release).0);
    }
    let runs = |rounds: &[Vec<Run>], scenario: usize, pick: fn(&Run) -> Duration| {
        median(rounds.iter().map(|r| pick(&r[scenario])).collect())
    };

    let mut table = format!(
        "Failover in the live lab (2 nodes, token 1000 ms, TCG guest of {VM_MIB} MiB), median of \
         {RUNS} runs each\n{:<38} {:<22} {:>9} {:>9} {:>12}\n",
        "scenario", "from the fault to", "ours", "stock", "stock/ours"
    );
    for (index, scenario) in ALL_SCENARIOS.into_iter().enumerate() {
        for (what, pick) in [
            (
                "VM Started elsewhere",
                (|r: &Run| r.started) as fn(&Run) -> Duration,
            ),
            ("guest counting again", |r: &Run| r.serving),
        ] {
            let ours = runs(&ours, index, pick);
            let stock = runs(&stock, index, pick);
            let _ = writeln!(
                table,
                "{:<38} {:<22} {:>8.2}s {:>8.2}s {:>11.2}x",
                scenario.label(),
                what,
                ours.as_secs_f64(),
                stock.as_secs_f64(),
                stock.as_secs_f64() / ours.as_secs_f64().max(1e-9)
            );
        }
    }

    let step_median = |rounds: &[Vec<Run>], scenario: usize, step: Step| {
        median_of(rounds.iter().map(|r| r[scenario].step(step)))
    };
    let _ = writeln!(
        table,
        "\nPhases: when each step completed, from the fault (or the command), median (runs that \
         had it, when fewer than {RUNS})\n{:<38} {:<14} {:>12} {:>12} {:>12}",
        "scenario", "phase", "ours", "stock", "stock/ours"
    );
    for (index, scenario) in ALL_SCENARIOS.into_iter().enumerate() {
        for step in STEPS.into_iter().filter(|s| s.applies(scenario)) {
            let (o, s) = (
                step_median(&ours, index, step),
                step_median(&stock, index, step),
            );
            let _ = writeln!(
                table,
                "{:<38} {:<14} {:>12} {:>12} {:>12}",
                scenario.label(),
                step.label(),
                cell(o),
                cell(s),
                ratio(s, o)
            );
        }
    }

    let _ = writeln!(
        table,
        "\nFloor: the same migration by hand in the lab of our stack (Pacemaker in maintenance \
         mode), median of {} runs\n{:<38} {:>9}",
        floor.len(),
        "step",
        "seconds"
    );
    for (index, label) in FLOOR_STEPS.iter().enumerate() {
        let step = median_of(floor.iter().map(|f| Some(f.steps[index])));
        let _ = writeln!(table, "{label:<38} {:>9}", cell(step));
    }
    let floor_total = median_of(floor.iter().map(|f| Some(f.total())));
    let floor_serving = median_of(floor.iter().map(|f| Some(f.serving)));
    let _ = writeln!(
        table,
        "{:<38} {:>9}\n{:<38} {:>9}",
        "total (the steps one after another)",
        cell(floor_total),
        "guest counting, from the first step",
        cell(floor_serving)
    );
    let _ = writeln!(
        table,
        "Save and restore in place, {VM_MIB} MiB guest, image on the shared filesystem:"
    );
    for (index, label) in IN_PLACE_STEPS.iter().enumerate() {
        let step = median_of(floor.iter().map(|f| Some(f.in_place[index])));
        let _ = writeln!(table, "  {label:<36} {:>9}", cell(step));
    }
    let migration = ALL_SCENARIOS
        .iter()
        .position(|s| *s == Scenario::Migration)
        .unwrap();
    let _ = writeln!(
        table,
        "\nControlled migration against the floor\n{:<38} {:>9} {:>9} {:>9} {:>11} {:>11}",
        "", "floor", "ours", "stock", "ours/floor", "stock/ours"
    );
    // The stack is up once both the VM and the address are, whichever came last.
    let stack_up = |run: &Run| run.step(Step::VmStarted).max(run.step(Step::AddressUp));
    let serving = |run: &Run| run.step(Step::Serving);
    for (what, floor_value, pick) in [
        (
            "stack up (VM started and address up)",
            floor_total,
            &stack_up as &dyn Fn(&Run) -> Option<Duration>,
        ),
        ("guest counting again", floor_serving, &serving),
    ] {
        let of = |rounds: &[Vec<Run>]| median_of(rounds.iter().map(|r| pick(&r[migration])));
        let (o, s) = (of(&ours), of(&stock));
        let _ = writeln!(
            table,
            "{what:<38} {:>9} {:>9} {:>9} {:>11} {:>11}",
            cell(floor_value),
            cell(o),
            cell(s),
            ratio(o, floor_value),
            ratio(s, o)
        );
    }
    table.push_str(&targets(&ours, &stock, &floor));
    let _ = writeln!(
        table,
        "\nload average (1, 5, 15 min) before: {load_before}; after: {}",
        load_average()
    );
    println!("{table}");
    ExitCode::SUCCESS
}
