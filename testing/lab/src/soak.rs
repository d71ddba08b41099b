//! `clever-lab soak`: randomized faults and operator actions against a lab running the whole VM
//! stack, one after another, each judged on what an admin cares about:
//!
//! - the cluster converges to exactly one active stack (VM, filesystem, address on one node, the
//!   guest counting) within a bound, and the time it took;
//! - the watch ([`crate::watch`]) never saw the filesystem, a qemu or the service address on two
//!   nodes at once (it states how far apart its samples were: a shorter overlap could be missed);
//! - nothing acknowledged is lost: a writer inside the stack appends numbered records to the
//!   shared filesystem, each `fsync`ed before it is acknowledged, and every acknowledged number
//!   must be there after every fault (the writer is killed with the stack, as an application would
//!   be, and started again where the stack runs);
//! - no hibernation image vanishes on a failure path: the image directory is sampled all along,
//!   and an image that vanished in a run whose guest then cold-booted counts as lost (an image
//!   vanishes legitimately only once the guest was resumed from it);
//! - nothing an agent started outlives it: once the cluster is idle, a program an agent runs
//!   (mount, fsck, attrd_updater, virsh, …) that is still there seconds later is a leftover;
//! - at the end the filesystem checks clean (`e2fsck -fn` with the stack stopped).
//!
//! The sequence comes from a seed, so a failing run can be replayed (`--seed`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use clever_command::{CommandLine, HostCommands, RunCommand};
use clever_deadline::Deadline;
use clever_pacemaker::Role;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::ids;
use crate::error::LabError;
use crate::layout::{HIBERNATE_DIR, SHARED_MOUNT};
use crate::watch::Watch;
use crate::Lab;

/// How long the cluster may take to come back to one active stack after a fault, the healing
/// (power back on, links up) included.
pub const CONVERGE_BOUND: Duration = Duration::from_secs(300);

/// Where the writer keeps its records, on the shared filesystem.
const RECORDS_DIR: &str = "soak";
const RECORDS_FILE: &str = "records";

/// Programs our agents (and the tools they call) run; one still running on an idle cluster was
/// left behind by an action that ended.
const AGENT_PROGRAMS: &[&str] = &[
    "mount",
    "umount",
    "fsck",
    "fsck.ext4",
    "e2fsck",
    "attrd_updater",
    "crm_attribute",
    "crm_resource",
    "cibadmin",
    "virsh",
    "drbdadm",
    "drbdsetup",
    "ping",
    "vm",
    "vm-libvirt",
    "drbdfs",
    "gwping",
];

/// Which node a fault aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Active,
    Standby,
}

/// An agent action interrupted the way the executor ends one at its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Start,
    Stop,
    Monitor,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Monitor => "monitor",
        }
    }
}

/// One fault or operator action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// `clevervm migrate --wait`, then `clevervm unmigrate`.
    Migration,
    PowerCut(Target),
    /// The node's interconnect goes down: one node fences the other.
    LinkCut(Target),
    /// The active node loses its gateway: the stack moves; the gateway comes back.
    GatewayCut,
    QemuKilled,
    LibvirtdKilled,
    /// SIGKILL to one of our agents in the middle of an action (a move provides start and stop).
    AgentKilled(Action),
    /// `clevervm migrate` without waiting, then `unmigrate` and `cleanup` while it moves.
    AwkwardCommands,
    /// A qemu kill and a power cut of the standby node, close together.
    TwoFaults,
}

impl Fault {
    /// What a soak draws from, each entry as often as the others: every kind once, and the
    /// controlled migration, what admins do most, twice.
    pub const ALL: [Fault; 14] = [
        Fault::Migration,
        Fault::PowerCut(Target::Active),
        Fault::PowerCut(Target::Standby),
        Fault::LinkCut(Target::Active),
        Fault::LinkCut(Target::Standby),
        Fault::GatewayCut,
        Fault::QemuKilled,
        Fault::LibvirtdKilled,
        Fault::AgentKilled(Action::Start),
        Fault::AgentKilled(Action::Stop),
        Fault::AgentKilled(Action::Monitor),
        Fault::AwkwardCommands,
        Fault::TwoFaults,
        Fault::Migration,
    ];
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = |t: &Target| match t {
            Target::Active => "active",
            Target::Standby => "standby",
        };
        match self {
            Self::Migration => write!(f, "controlled migration"),
            Self::PowerCut(t) => write!(f, "power cut ({})", target(t)),
            Self::LinkCut(t) => write!(f, "link cut ({})", target(t)),
            Self::GatewayCut => write!(f, "gateway cut (active)"),
            Self::QemuKilled => write!(f, "qemu killed"),
            Self::LibvirtdKilled => write!(f, "libvirtd killed"),
            Self::AgentKilled(a) => write!(f, "agent killed in {}", a.word()),
            Self::AwkwardCommands => write!(f, "migrate/unmigrate/cleanup at once"),
            Self::TwoFaults => write!(f, "qemu killed + standby power cut"),
        }
    }
}

/// The faults of a soak, in order: the same seed gives the same sequence.
pub fn plan(runs: usize, seed: u64, only: Option<&str>) -> Vec<(Fault, Duration)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let kinds: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|f| only.is_none_or(|only| f.to_string() == only))
        .collect();
    if kinds.is_empty() {
        return Vec::new();
    }
    (0..runs)
        .map(|_| {
            let fault = kinds[rng.gen_range(0..kinds.len())];
            // How long the second half of a two-part fault waits (restore, second fault, the
            // unmigrate after an unwaited migrate): awkward moments come from this spread.
            let delay = Duration::from_millis(rng.gen_range(0..3000));
            (fault, delay)
        })
        .collect()
}

/// What one run saw.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub fault: Fault,
    pub converged_in: Duration,
    pub doubles: usize,
    pub records_lost: u64,
    pub images_lost: usize,
    pub leftovers: Vec<String>,
    /// Whether the fault could be caused (an agent action to interrupt may not come in time).
    pub caused: bool,
}

/// The figures of a whole soak.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub seed: u64,
    pub runs: Vec<RunReport>,
    pub records_acknowledged: u64,
    pub max_sample_gap: Duration,
    pub fsck_clean: Option<bool>,
    pub duration: Duration,
    /// Images the vm agent kept aside instead of resuming, by the reason in their name; the
    /// soak removes them after each run, as an admin does once `clevervm status` names them.
    pub kept_aside: BTreeMap<String, u64>,
}

impl Figures {
    /// Whether every figure whose goal is zero is zero.
    pub fn clean(&self) -> bool {
        self.fsck_clean == Some(true)
            && self.runs.iter().all(|r| {
                r.doubles == 0
                    && r.records_lost == 0
                    && r.images_lost == 0
                    && r.leftovers.is_empty()
            })
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for run in &self.runs {
            let entry = by_kind.entry(run.fault.to_string()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(!run.caused);
        }
        let mut times: Vec<Duration> = self.runs.iter().map(|r| r.converged_in).collect();
        times.sort_unstable();
        let median = times.get(times.len() / 2).copied().unwrap_or_default();
        let max = times.last().copied().unwrap_or_default();
        let sum = |pick: fn(&RunReport) -> u64| self.runs.iter().map(pick).sum::<u64>();
        writeln!(
            f,
            "soak: {} runs, seed {}, {:.0} s",
            self.runs.len(),
            self.seed,
            self.duration.as_secs_f64()
        )?;
        writeln!(f, "faults by kind:")?;
        for (kind, (count, missed)) in &by_kind {
            if *missed > 0 {
                writeln!(
                    f,
                    "  {count:>4}  {kind} ({missed} not caused: no action came)"
                )?;
            } else {
                writeln!(f, "  {count:>4}  {kind}")?;
            }
        }
        writeln!(
            f,
            "convergence to one active stack: median {:.1} s, max {:.1} s (bound {} s)",
            median.as_secs_f64(),
            max.as_secs_f64(),
            CONVERGE_BOUND.as_secs()
        )?;
        writeln!(
            f,
            "double activations (VM, filesystem, address): {} (samples at most {:?} apart)",
            sum(|r| r.doubles as u64),
            self.max_sample_gap
        )?;
        writeln!(
            f,
            "records lost: {} of {} acknowledged",
            sum(|r| r.records_lost),
            self.records_acknowledged
        )?;
        writeln!(
            f,
            "hibernation images lost: {}",
            sum(|r| r.images_lost as u64)
        )?;
        let kept: u64 = self.kept_aside.values().sum();
        let reasons: Vec<String> = self
            .kept_aside
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        writeln!(
            f,
            "images kept aside by the vm agent, not resumed (removed after the run, as an \
             admin would): {kept}{}",
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            }
        )?;
        writeln!(
            f,
            "leftover programs: {}",
            sum(|r| r.leftovers.len() as u64)
        )?;
        write!(
            f,
            "filesystem check at the end: {}",
            match self.fsck_clean {
                Some(true) => "clean",
                Some(false) => "ERRORS",
                None => "not run",
            }
        )
    }
}

/// The soak's settings.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub runs: usize,
    pub seed: u64,
    /// This binary, for the writer run inside a node and for powering nodes on.
    pub self_exe: PathBuf,
    /// Where `clevervm` is (the agents' release directory).
    pub clevervm: PathBuf,
    /// Only this kind of fault (as the figures name it), to replay one kind.
    pub only: Option<String>,
}

/// Runs a soak against `lab` (up, with `--vm`). Returns the figures; an error means the soak
/// itself could not go on (the cluster did not converge within the bound, a fault could not be
/// caused by the lab), and its message says at which run.
pub fn run(lab: &Lab, options: &SoakOptions) -> Result<Figures, LabError> {
    let started = Instant::now();
    let mut figures = Figures {
        seed: options.seed,
        ..Figures::default()
    };
    let soak = Soak {
        lab,
        options,
        acked: Arc::new(AtomicU64::new(0)),
    };
    let first = soak.converge(&Deadline::after(CONVERGE_BOUND))?;
    let images = ImageWatch::start(lab.clone());
    let mut writer = soak.start_writer(&first)?;
    let faults = plan(options.runs, options.seed, options.only.as_deref());
    if faults.is_empty() && options.runs > 0 {
        return Err(LabError::Usage(format!(
            "no fault kind is called {:?}; the kinds are: {}",
            options.only.as_deref().unwrap_or_default(),
            Fault::ALL.map(|f| f.to_string()).join(", ")
        )));
    }
    for (index, (fault, delay)) in faults.into_iter().enumerate() {
        let number = index + 1;
        let watch = Watch::start(lab.clone(), &[ids::VM, ids::FS, ids::IP]);
        let boots_before = lab.serial().boots;
        let images_before = images.vanished();
        let active = soak.active()?;
        eprintln!(
            "[run {number}/{}] {fault} (stack on {active}, delay {delay:?})",
            options.runs
        );
        let fault_at = Instant::now();
        let caused = soak
            .cause(fault, delay, &active, &watch)
            .map_err(|e| at_run(number, fault, e))?;
        let now_on = soak
            .converge(&Deadline::after(CONVERGE_BOUND))
            .map_err(|e| at_run(number, fault, e))?;
        let converged_in = fault_at.elapsed();
        let report = watch.finish();
        figures.max_sample_gap = figures.max_sample_gap.max(report.max_gap);
        if !writer.alive() || writer.node != now_on {
            writer.stop();
            writer = soak.start_writer(&now_on)?;
        }
        let records_lost = soak.records_lost(&now_on)?;
        for reason in images
            .clear_kept(&soak, &now_on)
            .map_err(|e| at_run(number, fault, e))?
        {
            *figures.kept_aside.entry(reason).or_default() += 1;
        }
        let cold_booted = lab.serial().boots > boots_before;
        let vanished = images.vanished().saturating_sub(images_before);
        let images_lost = if cold_booted { vanished } else { 0 };
        let leftovers = soak.leftovers();
        let run = RunReport {
            fault,
            converged_in,
            doubles: report.doubles.len(),
            records_lost,
            images_lost,
            leftovers,
            caused,
        };
        eprintln!(
            "[run {number}] converged on {now_on} in {:.1} s; doubles {}, records lost {}, images \
             lost {}, leftovers {:?}{}",
            converged_in.as_secs_f64(),
            run.doubles,
            run.records_lost,
            run.images_lost,
            run.leftovers,
            if caused { "" } else { " (fault not caused)" }
        );
        if run.doubles > 0 || run.records_lost > 0 || run.images_lost > 0 {
            eprintln!("[run {number}] timeline:\n{report}");
        }
        figures.runs.push(run);
    }
    writer.stop();
    figures.records_acknowledged = soak.acked.load(Ordering::Relaxed);
    images.stop();
    figures.fsck_clean = Some(soak.check_filesystem()?);
    figures.duration = started.elapsed();
    Ok(figures)
}

fn at_run(run: usize, fault: Fault, e: LabError) -> LabError {
    LabError::Soak {
        run,
        fault: fault.to_string(),
        source: Box::new(e),
    }
}

struct Soak<'a> {
    lab: &'a Lab,
    options: &'a SoakOptions,
    /// The highest record number acknowledged so far (records are numbered from 1 and a new
    /// writer goes on after the last acknowledged one, so every number up to it was acknowledged).
    acked: Arc<AtomicU64>,
}

impl Soak<'_> {
    fn status(&self) -> Result<(String, clever_pacemaker::ClusterStatus), LabError> {
        self.lab.status(&Deadline::after(Duration::from_secs(10)))
    }

    /// The node the whole stack runs on, as the cluster sees it.
    fn active(&self) -> Result<String, LabError> {
        let (_, status) = self.status()?;
        status
            .running_on(ids::VM, None)
            .first()
            .map(|n| (*n).to_owned())
            .ok_or_else(|| LabError::Usage("the VM runs nowhere".into()))
    }

    fn other(&self, node: &str) -> String {
        self.lab
            .nodes()
            .iter()
            .find(|n| *n != node)
            .cloned()
            .unwrap_or_default()
    }

    /// Runs `clevervm` on `node`, or on a node that has power when `node` was fenced meanwhile
    /// (an agent killed in its stop gets its node fenced): the command acts cluster-wide.
    fn clevervm(&self, node: &str, args: &[&str]) -> Result<(), LabError> {
        let deadline = Deadline::after(Duration::from_secs(240));
        let node = if self.lab.is_on(node) {
            node.to_owned()
        } else {
            self.other(node)
        };
        let node = node.as_str();
        let output = self.lab.runner(node)?.run(
            &CommandLine::new(&self.options.clevervm).args(args),
            &deadline,
        )?;
        if output.code() != Some(0) {
            eprintln!(
                "  clevervm {} on {node}: exit {:?}: {}",
                args.join(" "),
                output.code(),
                output.stderr_text().trim()
            );
        }
        Ok(())
    }

    /// Causes `fault`; returns whether it could be (an agent action may not come in time).
    fn cause(
        &self,
        fault: Fault,
        delay: Duration,
        active: &str,
        watch: &Watch,
    ) -> Result<bool, LabError> {
        let lab = self.lab;
        let standby = self.other(active);
        let target = |t: Target| match t {
            Target::Active => active.to_owned(),
            Target::Standby => standby.clone(),
        };
        watch.mark(format!("FAULT: {fault}"));
        match fault {
            Fault::Migration => {
                self.clevervm(&standby, &["migrate", "--wait"])?;
                self.clevervm(active, &["unmigrate"])?;
            }
            Fault::PowerCut(t) => lab.power_cut(&target(t))?,
            Fault::LinkCut(t) => {
                lab.link_cut(&target(t))?;
                // The link comes back only after one side has fenced the other: restored sooner,
                // the membership would merge again and nothing would have been tested.
                Deadline::after(CONVERGE_BOUND).poll(
                    "a node to be fenced after the link cut",
                    Duration::from_millis(50),
                    || lab.nodes().iter().any(|n| !lab.is_on(n)).then_some(()),
                )?;
                thread::sleep(delay);
            }
            Fault::GatewayCut => {
                lab.gateway_cut(Some(active))?;
                // The stack leaves; the gateway comes back once it has.
                Deadline::after(CONVERGE_BOUND).poll(
                    "the stack to leave the node without a gateway",
                    Duration::from_millis(200),
                    || (self.active().ok().as_deref() == Some(standby.as_str())).then_some(()),
                )?;
                thread::sleep(delay);
                lab.gateway_restore(Some(active))?;
            }
            Fault::QemuKilled => {
                lab.kill_daemon(active, "qemu-system-x86_64")?;
            }
            Fault::LibvirtdKilled => {
                lab.kill_daemon(active, "libvirtd")?;
            }
            Fault::AgentKilled(action) => {
                // The hunt starts before the move is asked for: `clevervm migrate` may take as
                // long as the whole move when the machine is loaded.
                let hunt = {
                    let lab = lab.clone();
                    thread::spawn(move || kill_agent_in(&lab, action))
                };
                if action != Action::Monitor {
                    self.clevervm(active, &["migrate"])?;
                }
                let killed = hunt.join().ok().flatten();
                if let Some(what) = &killed {
                    watch.mark(format!("FAULT: SIGKILL to {what}"));
                }
                self.clevervm(active, &["unmigrate"])?;
                return Ok(killed.is_some());
            }
            Fault::AwkwardCommands => {
                self.clevervm(active, &["migrate"])?;
                thread::sleep(delay);
                self.clevervm(&standby, &["unmigrate"])?;
                self.clevervm(active, &["cleanup"])?;
            }
            Fault::TwoFaults => {
                lab.kill_daemon(active, "qemu-system-x86_64")?;
                thread::sleep(delay);
                lab.power_cut(&standby)?;
            }
        }
        Ok(true)
    }

    /// Heals what the fault left (links, gateways, powered-off nodes, constraints and failures)
    /// and waits until exactly one stack runs with the guest counting; returns its node.
    ///
    /// A node can go off while this waits: a stop that an agent's death failed gets its node
    /// fenced seconds later. Every wait therefore gives up as soon as a node is off, and the
    /// healing starts over.
    fn converge(&self, deadline: &Deadline) -> Result<String, LabError> {
        let lab = self.lab;
        loop {
            self.power_on_fenced(deadline)?;
            // A node that is off has no ports; powering it on makes new ones, up. One that goes
            // off while its ports are restored loses them under our hands: start over.
            let mut went_off = false;
            for node in lab.nodes().iter().filter(|n| lab.is_on(n)) {
                let restored = lab
                    .link_restore(node)
                    .and_then(|()| lab.gateway_restore(Some(node)));
                match restored {
                    Err(_) if !lab.is_on(node) => went_off = true,
                    restored => restored?,
                }
            }
            if went_off {
                continue;
            }
            let all_on = || lab.nodes().iter().all(|n| lab.is_on(n));
            // `Some(None)`: a node went off, start over.
            let online = deadline.poll(
                "every node online and able to take resources",
                Duration::from_millis(200),
                || {
                    if !all_on() {
                        return Some(None);
                    }
                    self.status()
                        .ok()
                        .filter(|(_, status)| {
                            lab.cluster_formed(status)
                                && status
                                    .nodes
                                    .iter()
                                    .all(|n| n.online && !n.standby && !n.unclean && !n.maintenance)
                        })
                        .map(Some)
                },
            )?;
            if online.is_none() {
                continue;
            }
            let any = lab.nodes().first().cloned().unwrap_or_default();
            self.clevervm(&any, &["unmigrate"])?;
            self.clevervm(&any, &["cleanup"])?;
            // A killed libvirtd is restarted by the node's init, as systemd would.
            let libvirtd =
                deadline.poll("libvirtd on every node", Duration::from_millis(100), || {
                    if !all_on() {
                        return Some(false);
                    }
                    lab.nodes()
                        .iter()
                        .all(|node| runs(lab, node, "libvirtd"))
                        .then_some(true)
                })?;
            if !libvirtd {
                continue;
            }
            let stack = deadline.poll(
                "exactly one active stack",
                Duration::from_millis(200),
                || {
                    if !all_on() {
                        return Some(None);
                    }
                    self.one_stack().map(Some)
                },
            )?;
            let Some(node) = stack else { continue };
            // The guest counts: it runs, whether resumed or booted.
            let before = lab.serial().last();
            deadline.poll("the guest to count", Duration::from_millis(100), || {
                (lab.serial().last() > before).then_some(())
            })?;
            return Ok(node);
        }
    }

    /// Powers on every node that is off, once the survivors no longer count it as unclean
    /// (fencing done), as an admin would after a fault.
    fn power_on_fenced(&self, deadline: &Deadline) -> Result<(), LabError> {
        let lab = self.lab;
        let off: Vec<String> = lab
            .nodes()
            .iter()
            .filter(|n| !lab.is_on(n))
            .cloned()
            .collect();
        if off.is_empty() {
            return Ok(());
        }
        deadline.poll(
            "the survivors to see the powered-off node fenced",
            Duration::from_millis(200),
            || {
                self.status().ok().filter(|(_, status)| {
                    off.iter()
                        .all(|node| status.node(node).is_some_and(|n| !n.online && !n.unclean))
                })
            },
        )?;
        for node in &off {
            self.lab_command(&["power-on", node])?;
        }
        Ok(())
    }

    /// The node of the one stack, when the cluster and the nodes themselves agree on it.
    fn one_stack(&self) -> Option<String> {
        let (_, status) = self.status().ok()?;
        let vm = status.settled_on(ids::VM, None);
        let settled = vm.len() == 1
            && status.settled_on(ids::FS, None) == vm
            && status.settled_on(ids::IP, None) == vm
            && status.settled_on(ids::DRBD, Some(Role::Promoted)) == vm
            && !status.resources.iter().any(|r| r.failed);
        let node = vm.first()?.to_string();
        let seen = [
            self.lab.mounted_on(),
            self.lab.qemu_on(),
            self.lab.address_on(),
        ];
        (settled && seen.iter().all(|nodes| *nodes == [node.as_str()])).then_some(node)
    }

    /// Runs `clever-lab` itself: the machines it starts are then not this process's children,
    /// and the host's init reaps them when they die (this process would not, and `down` waits
    /// until every machine is reaped).
    fn lab_command(&self, args: &[&str]) -> Result<(), LabError> {
        let output = HostCommands.run(
            &CommandLine::new(&self.options.self_exe)
                .arg("--dir")
                .arg(self.lab.layout().dir())
                .args(args),
            &Deadline::after(Duration::from_secs(120)),
        )?;
        if output.code() == Some(0) {
            Ok(())
        } else {
            Err(LabError::Usage(format!(
                "clever-lab {}: {}",
                args.join(" "),
                output.stderr_text().trim()
            )))
        }
    }

    fn start_writer(&self, node: &str) -> Result<Writer, LabError> {
        let pid = self.lab.node_pid(node)?;
        let file = Path::new(SHARED_MOUNT).join(RECORDS_DIR).join(RECORDS_FILE);
        let from = self.acked.load(Ordering::Relaxed) + 1;
        let mut child = Command::new("/usr/bin/nsenter")
            .args(["-t", &pid.to_string(), "-m", "-n", "-u", "--"])
            .arg(&self.options.self_exe)
            .arg("soak-writer")
            .arg("--file")
            .arg(&file)
            .arg("--from")
            .arg(from.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(LabError::io("running", "/usr/bin/nsenter"))?;
        // nsenter execs the writer in place (no fork without a PID namespace), so this is the
        // writer itself: in the node's cgroup it dies with the node. Outside, it would keep the
        // node's mount namespace, and the filesystem mounted in it, alive after a power cut.
        if let Err(e) = self.lab.node_cgroup(node).adopt(child.id()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let stdout = child.stdout.take();
        let acked = Arc::clone(&self.acked);
        let reader = thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Ok(n) = line.trim().parse::<u64>() {
                    acked.fetch_max(n, Ordering::Relaxed);
                }
            }
        });
        Ok(Writer {
            node: node.to_owned(),
            child,
            reader: Some(reader),
        })
    }

    /// How many acknowledged records the shared filesystem lacks, read where it is mounted.
    fn records_lost(&self, node: &str) -> Result<u64, LabError> {
        let acked = self.acked.load(Ordering::Relaxed);
        let pid = self.lab.node_pid(node)?;
        let path = PathBuf::from(format!("/proc/{pid}/root"))
            .join(SHARED_MOUNT.trim_start_matches('/'))
            .join(RECORDS_DIR)
            .join(RECORDS_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) if acked == 0 => String::new(),
            Err(e) => return Err(LabError::io("reading", &path)(e)),
        };
        Ok(missing_records(&text, acked))
    }

    /// Programs of our agents still running on an idle cluster: seen now and again seconds
    /// later with the same pid.
    fn leftovers(&self) -> Vec<String> {
        let sample = || -> BTreeSet<(i32, String)> {
            self.lab
                .nodes()
                .iter()
                .flat_map(|node| self.lab.node_cgroup(node).all_pids())
                .filter_map(|pid| {
                    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
                    let comm = comm.trim().to_owned();
                    AGENT_PROGRAMS
                        .contains(&comm.as_str())
                        .then_some((pid, comm))
                })
                .collect()
        };
        let first = sample();
        if first.is_empty() {
            return Vec::new();
        }
        thread::sleep(Duration::from_secs(5));
        let second = sample();
        first
            .intersection(&second)
            .map(|(pid, comm)| {
                format!(
                    "{comm} ({pid}): {}",
                    agent_command_line(*pid).unwrap_or_default()
                )
            })
            .collect()
    }

    /// Stops the stack, checks the filesystem read-only from the host, and reports whether it
    /// was clean. The lab is taken down afterwards, so the stack is not started again.
    fn check_filesystem(&self) -> Result<bool, LabError> {
        let node = self.active()?;
        let deadline = Deadline::after(CONVERGE_BOUND);
        self.lab.runner(&node)?.run_ok(
            &CommandLine::new("/usr/sbin/crm_resource").args([
                "--resource",
                ids::FS,
                "--meta",
                "--set-parameter",
                "target-role",
                "--parameter-value",
                "Stopped",
            ]),
            &deadline,
        )?;
        deadline.poll(
            "the filesystem to be unmounted everywhere",
            Duration::from_millis(200),
            || self.lab.mounted_on().is_empty().then_some(()),
        )?;
        let output = HostCommands.run(
            &CommandLine::new("/usr/sbin/e2fsck").args(["-f", "-n", &self.lab.state().loop_device]),
            &deadline,
        )?;
        if output.code() != Some(0) {
            eprintln!(
                "e2fsck: exit {:?}\n{}{}",
                output.code(),
                output.stdout_text(),
                output.stderr_text()
            );
        }
        Ok(output.code() == Some(0))
    }
}

/// SIGKILLs the first of our agents seen running `action` on any node, and says which; `None`
/// when none came within a minute. One that ends between being seen and the signal (a drbdfs
/// start takes milliseconds) does not count: the hunt goes on.
fn kill_agent_in(lab: &Lab, action: Action) -> Option<String> {
    Deadline::after(Duration::from_secs(60))
        .poll(
            "an agent action to interrupt",
            Duration::from_millis(2),
            || {
                lab.nodes().iter().find_map(|node| {
                    lab.node_cgroup(node)
                        .all_pids()
                        .into_iter()
                        .filter(|pid| agent_running(*pid, action))
                        .find_map(|pid| {
                            let what = agent_command_line(pid)?;
                            kill(Pid::from_raw(pid), Signal::SIGKILL).ok()?;
                            Some(format!("`{what}` on {node}"))
                        })
                })
            },
        )
        .ok()
}

/// Acknowledged numbers (1 to `acked`) that `text` (one zero-padded number a line) lacks. A last
/// line cut short was never acknowledged and does not count.
pub fn missing_records(text: &str, acked: u64) -> u64 {
    let present: BTreeSet<u64> = text
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    (1..=acked).filter(|n| !present.contains(n)).count() as u64
}

/// Whether a process called `comm` runs on `node`.
fn runs(lab: &Lab, node: &str, comm: &str) -> bool {
    lab.node_cgroup(node)
        .all_pids()
        .iter()
        .any(|pid| fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm))
}

/// Whether `pid` is one of our agents running `action`: the executor runs an agent as
/// `AGENT ACTION`, so the action is its first argument.
fn agent_running(pid: i32, action: Action) -> bool {
    let Some(line) = agent_command_line(pid) else {
        return false;
    };
    let mut words = line.split(' ');
    let program = words
        .next()
        .and_then(|p| Path::new(p).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    ["vm", "vm-libvirt", "drbdfs", "gwping"].contains(&program.as_str())
        && words.next() == Some(action.word())
}

fn agent_command_line(pid: i32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The record writer running inside a node.
struct Writer {
    node: String,
    child: Child,
    reader: Option<JoinHandle<()>>,
}

impl Writer {
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The hibernation directory, sampled wherever it is mounted: every inode that held an image,
/// and how many of them vanished from every name (kept aside is a rename, the inode stays).
struct ImageWatch {
    stop: Arc<AtomicBool>,
    vanished: Arc<AtomicU64>,
    /// Inodes the soak itself removed (kept-aside images, as an admin would): not lost.
    removed_by_admin: Arc<Mutex<BTreeSet<u64>>>,
    handle: Option<JoinHandle<()>>,
}

impl ImageWatch {
    fn start(lab: Lab) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let vanished = Arc::new(AtomicU64::new(0));
        let removed_by_admin = Arc::new(Mutex::new(BTreeSet::new()));
        let handle = {
            let (stop, vanished, removed) = (
                Arc::clone(&stop),
                Arc::clone(&vanished),
                Arc::clone(&removed_by_admin),
            );
            thread::spawn(move || {
                let known: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());
                while !stop.load(Ordering::Relaxed) {
                    if let Some(now) = image_inodes(&lab) {
                        let mut known = known.lock().unwrap_or_else(PoisonError::into_inner);
                        let removed = removed.lock().unwrap_or_else(PoisonError::into_inner);
                        let gone = known
                            .difference(&now)
                            .filter(|inode| !removed.contains(*inode))
                            .count() as u64;
                        drop(removed);
                        vanished.fetch_add(gone, Ordering::Relaxed);
                        *known = now;
                    }
                    thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Self {
            stop,
            vanished,
            removed_by_admin,
            handle: Some(handle),
        }
    }

    /// Removes the images the vm agent kept aside, through the node that mounts the shared
    /// filesystem, after `clevervm status` there has named them; returns their reasons.
    /// Kept forever, they fill the filesystem until every hibernation fails (ENOSPC), which
    /// an earlier soak ran into: from then on every move cold-booted the guest.
    fn clear_kept(&self, soak: &Soak<'_>, node: &str) -> Result<Vec<String>, LabError> {
        let pid = soak.lab.node_pid(node)?;
        let dir =
            PathBuf::from(format!("/proc/{pid}/root")).join(HIBERNATE_DIR.trim_start_matches('/'));
        let kept: Vec<(PathBuf, u64, String)> = fs::read_dir(&dir)
            .map_err(LabError::io("reading", &dir))?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let (_, suffix) = name.split_once(".save.kept-")?;
                // NAME.save.kept-WHEN-WHY[.N]: the reason follows the time stamp.
                let reason = suffix.split_once('-')?.1.split('.').next()?.to_owned();
                let inode = entry.metadata().ok()?.ino();
                Some((entry.path(), inode, reason))
            })
            .collect();
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        let output = soak.lab.runner(node)?.run(
            &CommandLine::new(&soak.options.clevervm).arg("status"),
            &Deadline::after(Duration::from_secs(60)),
        )?;
        let status = output.stdout_text();
        if !status.contains("kept aside") {
            return Err(LabError::Usage(format!(
                "{} images kept aside on {node}, and clevervm status does not name them:\n{status}",
                kept.len()
            )));
        }
        let mut reasons = Vec::new();
        for (path, inode, reason) in kept {
            self.removed_by_admin
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(inode);
            fs::remove_file(&path).map_err(LabError::io("removing", &path))?;
            reasons.push(reason);
        }
        Ok(reasons)
    }

    fn vanished(&self) -> usize {
        usize::try_from(self.vanished.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The inodes of the image files in the hibernation directory, read through the node that
/// mounts the shared filesystem; `None` when no node mounts it (nothing can be told then).
fn image_inodes(lab: &Lab) -> Option<BTreeSet<u64>> {
    let mounted = lab.mounted_on();
    let [node] = mounted.as_slice() else {
        return None;
    };
    let pid = lab.node_pid(node).ok()?;
    let dir =
        PathBuf::from(format!("/proc/{pid}/root")).join(HIBERNATE_DIR.trim_start_matches('/'));
    let entries = fs::read_dir(&dir).ok()?;
    Some(
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".save"))
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.ino())
            .collect(),
    )
}

/// `clever-lab soak-writer`: appends numbered records to `file`, `fsync`ing each before printing
/// its number (the acknowledgement) on stdout; ends at the first error (the filesystem went away,
/// the soak stopped reading).
pub fn writer(file: &Path, from: u64) -> Result<(), LabError> {
    if let Some(dir) = file.parent() {
        fs::create_dir_all(dir).map_err(LabError::io("creating", dir))?;
    }
    let mut records = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(LabError::io("opening", file))?;
    let stdout = std::io::stdout();
    for n in from.. {
        records
            .write_all(format!("{n:020}\n").as_bytes())
            .and_then(|()| records.sync_data())
            .map_err(LabError::io("writing", file))?;
        let mut out = stdout.lock();
        writeln!(out, "{n}")
            .and_then(|()| out.flush())
            .map_err(LabError::io("acknowledging to", Path::new("stdout")))?;
        drop(out);
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_plan_and_every_kind_comes() {
        assert_eq!(plan(50, 7, None), plan(50, 7, None));
        assert_ne!(plan(50, 7, None), plan(50, 8, None));
        let kinds: BTreeSet<Fault> = plan(400, 1, None).into_iter().map(|(f, _)| f).collect();
        let all: BTreeSet<Fault> = Fault::ALL.into_iter().collect();
        assert_eq!(kinds, all);
        let only = plan(20, 1, Some("qemu killed"));
        assert!(
            only.iter().all(|(f, _)| *f == Fault::QemuKilled),
            "{only:?}"
        );
        assert!(plan(20, 1, Some("no such fault")).is_empty());
    }

    #[test]
    fn every_acknowledged_record_must_be_there() {
        let text =
            "00000000000000000001\n00000000000000000002\n00000000000000000002\n0000000000000000000";
        assert_eq!(missing_records(text, 2), 0);
        // The cut line (3) was never acknowledged; had it been, it is missing.
        assert_eq!(missing_records(text, 3), 1);
        assert_eq!(missing_records("", 0), 0);
        assert_eq!(missing_records("1\n3\n", 3), 1);
    }

    #[test]
    fn figures_are_clean_only_when_every_zero_goal_is_zero() {
        let run = RunReport {
            fault: Fault::QemuKilled,
            converged_in: Duration::from_secs(9),
            doubles: 0,
            records_lost: 0,
            images_lost: 0,
            leftovers: Vec::new(),
            caused: true,
        };
        let mut figures = Figures {
            seed: 1,
            runs: vec![run.clone()],
            fsck_clean: Some(true),
            ..Figures::default()
        };
        assert!(figures.clean());
        let text = figures.to_string();
        assert!(text.contains("1 runs, seed 1"), "{text}");
        assert!(text.contains("records lost: 0 of 0"), "{text}");
        figures.runs.push(RunReport {
            records_lost: 1,
            ..run.clone()
        });
        assert!(!figures.clean());
        figures.runs.pop();
        figures.fsck_clean = None;
        assert!(!figures.clean());
    }
}
