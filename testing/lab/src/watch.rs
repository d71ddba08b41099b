//! Watching a lab while a test breaks it: a timeline of what happened when (fault → detected →
//! fenced → mounted → VM running), and the check that the shared filesystem and the VM were never
//! active on two nodes at once.
//!
//! A background thread samples, every [`FAST`], what needs no program (each node's power from its
//! cgroup, its mounts from `/proc/PID/mountinfo`, its qemu processes, the service address from
//! `/proc/PID/net/fib_trie`, new lines of the power log (`fence.log`));
//! another, every [`SLOW`], the cluster's view through `crm_mon` on a powered node (node states, where
//! `watched` resources run). Every change becomes an event. With several VM stacks (`--vms`) the
//! filesystem, qemu and address of each stack are watched on their own ("qemu of clever2 …"):
//! all of them moving together means one node may run one stack's qemu while another still runs
//! another's, which is fine; one stack active on two nodes is not.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use clever_deadline::Deadline;

use crate::lab::Lab;

/// Period of the cheap samples.
pub const FAST: Duration = Duration::from_millis(20);
/// Period of the `crm_mon` samples.
pub const SLOW: Duration = Duration::from_millis(250);

/// One thing that happened, `at` after the watch started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Duration,
    pub what: String,
}

/// What a watch saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub events: Vec<Event>,
    /// Cheap samples taken.
    pub samples: usize,
    /// The longest time between two cheap samples: an overlap shorter than this could be missed.
    pub max_gap: Duration,
    /// Moments when the filesystem, a qemu or the service address was active on several nodes.
    pub doubles: Vec<Event>,
}

impl Report {
    /// When the first event containing `text` happened.
    pub fn first(&self, text: &str) -> Option<Duration> {
        self.events
            .iter()
            .find(|e| e.what.contains(text))
            .map(|e| e.at)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for event in &self.events {
            writeln!(f, "  +{:>8.3}s  {}", event.at.as_secs_f64(), event.what)?;
        }
        write!(
            f,
            "  ({} samples every {FAST:?}, at most {:?} apart; active on two nodes at once: {})",
            self.samples,
            self.max_gap,
            if self.doubles.is_empty() {
                "never".to_owned()
            } else {
                format!("{} times", self.doubles.len())
            }
        )
    }
}

/// A running watch; [`Watch::finish`] stops it and returns the report.
#[derive(Debug)]
pub struct Watch {
    started: Instant,
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<Event>>>,
    handle: Option<JoinHandle<(usize, Duration, Vec<Event>)>>,
    cluster: Option<JoinHandle<()>>,
}

fn push(events: &Mutex<Vec<Event>>, started: Instant, what: String) {
    let at = started.elapsed();
    events
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Event { at, what });
}

impl Watch {
    /// Starts watching `lab`; `watched` are the resources whose placement is recorded.
    pub fn start(lab: Lab, watched: &[&str]) -> Self {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let watched: Vec<String> = watched.iter().map(|s| (*s).to_owned()).collect();
        let handle = {
            let (stop, events, lab) = (Arc::clone(&stop), Arc::clone(&events), lab.clone());
            thread::spawn(move || fast(&lab, started, &stop, &events))
        };
        let cluster = {
            let (stop, events) = (Arc::clone(&stop), Arc::clone(&events));
            thread::spawn(move || slow(&lab, &watched, started, &stop, &events))
        };
        Self {
            started,
            stop,
            events,
            handle: Some(handle),
            cluster: Some(cluster),
        }
    }

    /// Records something the test did (a fault it injected).
    pub fn mark(&self, what: impl Into<String>) {
        push(&self.events, self.started, what.into());
    }

    /// Stops the watch and returns everything it saw, in time order.
    pub fn finish(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let (samples, max_gap, doubles) = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if let Some(cluster) = self.cluster.take() {
            let _ = cluster.join();
        }
        let mut events =
            std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner));
        events.sort_by_key(|e| e.at);
        Report {
            events,
            samples,
            max_gap,
            doubles,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Emits "`what` changed" events for a keyed state.
#[derive(Default)]
struct Tracker {
    last: BTreeMap<String, String>,
}

impl Tracker {
    /// Records `value` for `key`; returns whether it changed (a first value counts).
    fn update(&mut self, key: &str, value: String) -> bool {
        if self.last.get(key) == Some(&value) {
            return false;
        }
        self.last.insert(key.to_owned(), value);
        true
    }
}

fn fast(
    lab: &Lab,
    started: Instant,
    stop: &AtomicBool,
    events: &Mutex<Vec<Event>>,
) -> (usize, Duration, Vec<Event>) {
    let mut samples = 0;
    let mut max_gap = Duration::ZERO;
    let mut last_sample: Option<Instant> = None;
    let mut doubles = Vec::new();
    let mut tracker = Tracker::default();
    let stacks = lab.stacks();
    let mut fence_lines = fs::read_to_string(lab.layout().fence_log())
        .map(|t| t.lines().count())
        .unwrap_or(0);
    while !stop.load(Ordering::Relaxed) {
        samples += 1;
        let now = Instant::now();
        if let Some(last) = last_sample {
            max_gap = max_gap.max(now - last);
        }
        last_sample = Some(now);
        for node in lab.nodes() {
            let power = if lab.is_on(node) { "on" } else { "OFF" };
            if tracker.update(&format!("power {node}"), power.to_owned()) {
                push(events, started, format!("{node} power {power}"));
            }
        }
        for stack in &stacks {
            // One stack: any qemu counts, as it always did; several: each domain's own.
            let (suffix, mounted, qemu, address) = if stacks.len() == 1 {
                (
                    String::new(),
                    lab.mounted_on(),
                    lab.qemu_on(),
                    lab.address_on(),
                )
            } else {
                (
                    format!(" of {}", stack.name),
                    lab.device_mounted_on(&stack.device),
                    lab.domain_qemu_on(&stack.name),
                    lab.vm_address_on(stack.index),
                )
            };
            for (what, key, verb, nodes) in [
                ("filesystem", "mounted", "mounted on", &mounted),
                ("qemu", "qemu", "running on", &qemu),
                ("service address", "address", "on", &address),
            ] {
                if tracker.update(&format!("{key}{suffix}"), nodes.join(" ")) {
                    push(
                        events,
                        started,
                        format!("{what}{suffix} {verb} [{}]", nodes.join(" ")),
                    );
                }
                if nodes.len() > 1 {
                    doubles.push(Event {
                        at: started.elapsed(),
                        what: format!("{what}{suffix} on {}", nodes.join(" ")),
                    });
                }
            }
        }
        if let Ok(text) = fs::read_to_string(lab.layout().fence_log()) {
            for line in text.lines().skip(fence_lines) {
                let what = line.split_once(' ').map_or(line, |(_, rest)| rest);
                push(events, started, format!("power log: {what}"));
                fence_lines += 1;
            }
        }
        thread::sleep(FAST);
    }
    (samples, max_gap, doubles)
}

fn slow(
    lab: &Lab,
    watched: &[String],
    started: Instant,
    stop: &AtomicBool,
    events: &Mutex<Vec<Event>>,
) {
    let mut tracker = Tracker::default();
    while !stop.load(Ordering::Relaxed) {
        let asked = Instant::now();
        if let Ok((seen_from, status)) = lab.status(&Deadline::after(Duration::from_secs(2))) {
            for node in &status.nodes {
                let state = if node.unclean {
                    "UNCLEAN"
                } else if node.online {
                    "online"
                } else {
                    "offline"
                };
                if tracker.update(&format!("node {}", node.name), state.to_owned()) {
                    push(
                        events,
                        started,
                        format!("{} {state} (seen by {seen_from})", node.name),
                    );
                }
            }
            for id in watched {
                let placement: Vec<String> = status
                    .resources
                    .iter()
                    .filter(|r| &r.id == id && r.role.to_string() != "Stopped")
                    .map(|r| format!("{} {}", r.role, r.nodes.join(" ")))
                    .collect();
                let placement = if placement.is_empty() {
                    "Stopped".to_owned()
                } else {
                    placement.join(", ")
                };
                if tracker.update(&format!("resource {id}"), placement.clone()) {
                    push(events, started, format!("{id}: {placement}"));
                }
            }
        }
        thread::sleep(SLOW.saturating_sub(asked.elapsed()));
    }
}
