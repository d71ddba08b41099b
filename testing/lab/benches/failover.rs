//! `make bench` (alone: `make bench-lab`): failover timelines from the live lab, our agents
//! (`ocf:clever:vm`, `drbdfs`, `gwping`) against the stock ones (`VirtualDomain` with
//! `snapshot=`, `Filesystem`, `ocf:pacemaker:ping`), in the same lab set-up and the same run:
//!
//! 1. controlled migration of a 512 MiB guest (`crm_resource --move` of the VM, then `--clear`);
//! 2. power cut of the active node (fenced by the survivor, which takes the stack over);
//! 3. gateway loss of the active node (its uplink cut; the stack moves, nobody is fenced).
//!
//! Each scenario runs [`RUNS`] times per stack. Two numbers per run, from the fault (or the
//! command): the VM `Started` on the other node in `crm_mon` (seen from there), and the guest's
//! serial counter advancing again (it serves again). A round is a fresh lab running each
//! scenario once; rounds alternate between the stacks, so that load from elsewhere on the
//! machine hits both alike (two labs at once on two cores would measure each other). Every run is watched, and one that had the VM or the filesystem active
//! on two nodes at once fails the benchmark.
//!
//! Slow (about 8 minutes): `make test` does not run it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code")]

use ocf_conformance::workspace_build::release_binaries;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};
use std::thread;
use std::time::{Duration, Instant};

use clever_deadline::Deadline;
use clever_lab::config::ids;
use clever_lab::watch::Watch;
use clever_lab::Lab;

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
    GatewayLoss,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario::Migration,
    Scenario::PowerCut,
    Scenario::GatewayLoss,
];

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Self::Migration => "controlled migration, 512 MiB guest",
            Self::PowerCut => "power cut of the active node",
            Self::GatewayLoss => "gateway loss of the active node",
        }
    }
}

/// One run: from the fault to the VM started on the other node, and to the guest counting.
#[derive(Debug, Clone, Copy)]
struct Run {
    started: Duration,
    serving: Duration,
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

fn settled_on(lab: &Lab, node: &str, deadline: &Deadline) -> bool {
    lab.status_from(node, deadline)
        .is_ok_and(|s| s.settled_on(ids::VM, None) == [node])
}

fn other(lab: &Lab, node: &str) -> String {
    lab.nodes().iter().find(|n| *n != node).unwrap().clone()
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

/// One failover of `scenario` away from `active`; leaves the lab steady again.
fn run_once(lab: &Lab, scenario: Scenario, active: &str) -> (Run, String) {
    let deadline = Deadline::after(Duration::from_secs(300));
    let target = other(lab, active);
    let watch = Watch::start(lab.clone(), &[ids::VM, ids::FS, ids::IP]);
    let boots = lab.serial().boots;
    let fault = Instant::now();
    match scenario {
        Scenario::Migration => {
            watch.mark(format!("crm_resource --move {} --node {target}", ids::VM));
            lab.pacemaker(active)
                .unwrap()
                .move_to(ids::VM, &target, false, &deadline)
                .unwrap();
        }
        Scenario::PowerCut => {
            watch.mark(format!("FAULT: power cut of {active}"));
            lab.power_cut(active).unwrap();
        }
        Scenario::GatewayLoss => {
            watch.mark(format!("FAULT: uplink of {active} cut"));
            lab.gateway_cut(Some(active)).unwrap();
        }
    }
    let mut started = None;
    let mut serving = None;
    // Lines the guest printed when qemu ran on the target alone: one more means it serves
    // there (the source may print a last line before it is paused or killed).
    let mut printed_when_alone = None;
    until(&deadline, "the VM to run on the other node", || {
        if serving.is_none() {
            let printed = lab.serial().counts.len();
            match printed_when_alone {
                None if lab.qemu_on() == [target.as_str()] => printed_when_alone = Some(printed),
                Some(base) if printed > base => serving = Some(fault.elapsed()),
                _ => {}
            }
        }
        if started.is_none() && settled_on(lab, &target, &deadline) {
            started = Some(fault.elapsed());
        }
        started.is_some() && serving.is_some()
    });
    let run = Run {
        started: started.unwrap(),
        serving: serving.unwrap(),
    };
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
        Scenario::GatewayLoss => {}
    }

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
        Scenario::GatewayLoss => lab.gateway_restore(Some(active)).unwrap(),
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
    (run, report.to_string())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// One round for `stack`: a fresh lab, each scenario once; the runs in [`SCENARIOS`] order.
fn round(stack: Stack, index: usize, release: &Path) -> Vec<Run> {
    ok(&["down"]);
    let mut args = vec![
        "up",
        "--vm",
        "--vm-mib",
        VM_MIB,
        "--agents",
        release.to_str().unwrap(),
    ];
    if stack == Stack::Stock {
        args.push("--stock");
    }
    let up = ok(&args);
    eprintln!("{}", up.lines().next().unwrap_or_default());
    let lab = Lab::open(LAB_DIR).unwrap();
    let mut active = steady(&lab, &Deadline::after(Duration::from_secs(300)));
    let mut runs = Vec::new();
    for scenario in SCENARIOS {
        let (run, timeline) = run_once(&lab, scenario, &active);
        eprintln!(
            "{stack:?} {} #{index}: VM started on the other node after {:.2?}, guest counting \
             after {:.2?}\n{timeline}",
            scenario.label(),
            run.started,
            run.serving
        );
        runs.push(run);
        active = steady(&lab, &Deadline::after(Duration::from_secs(300)));
    }
    ok(&["down"]);
    runs
}

fn main() -> ExitCode {
    let release = release_dir();
    // Rounds alternate between the stacks, so that the machine's load drifts over both alike.
    let (mut ours, mut stock) = (Vec::new(), Vec::new());
    for index in 1..=RUNS {
        ours.push(round(Stack::Ours, index, &release));
        stock.push(round(Stack::Stock, index, &release));
    }
    let runs = |rounds: &[Vec<Run>], scenario: usize, pick: fn(&Run) -> Duration| {
        median(rounds.iter().map(|r| pick(&r[scenario])).collect())
    };

    let mut table = format!(
        "Failover in the live lab (2 nodes, token 1000 ms, TCG guest of {VM_MIB} MiB), median of \
         {RUNS} runs each\n{:<38} {:<22} {:>9} {:>9} {:>12}\n",
        "scenario", "from the fault to", "ours", "stock", "stock/ours"
    );
    for (index, scenario) in SCENARIOS.into_iter().enumerate() {
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
    println!("{table}");
    ExitCode::SUCCESS
}
