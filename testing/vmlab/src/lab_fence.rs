//! The host end of the cluster lab's fence device. Debian's fence-virtd cannot serve here: its
//! backends (libvirt, cpg) fence libvirt domains, and the lab's nodes are plain qemu processes.
//! So each node gets a virtio serial port, [`FENCE_PORT`], where the namespace lab's agent
//! (`fence_lab` of testing/lab, given `serial_port=lab.fence`) sends its requests; the host ends
//! the target's qemu with SIGKILL, as cutting its power would.
//!
//! Requests are lines `ID ACTION TARGET`; answers `ID RESULT [DETAIL]` where RESULT is `ok`,
//! `on`, `off`, `list` (DETAIL: the nodes) or `error` (DETAIL: why).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use clever_deadline::Deadline;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{io_error, VmLabError};
use crate::vm::Vm;

/// The serial port's name (the guest looks for it under /sys/class/virtio-ports).
pub const FENCE_PORT: &str = "lab.fence";

/// One request the host answered, for the tests' timelines and assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceEvent {
    pub at: Instant,
    /// The node whose fencer asked.
    pub requester: String,
    pub action: String,
    pub target: String,
    pub answer: String,
}

#[derive(Debug)]
struct Target {
    pid: Option<i32>,
    marker: String,
}

impl Target {
    /// Whether this node's qemu still runs: a killed qemu stays a zombie until the lab reaps
    /// it, and a reaped one's pid may be reused.
    fn running(&self) -> bool {
        let Some(pid) = self.pid else { return false };
        let ours = fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&self.marker));
        ours && fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
    }
}

/// The host end of every node's fence port, served by one thread per node until the node's
/// qemu exits or the service is dropped.
#[derive(Debug)]
pub(crate) struct FenceService {
    streams: Vec<UnixStream>,
    threads: Vec<JoinHandle<()>>,
    events: Arc<Mutex<Vec<FenceEvent>>>,
}

impl FenceService {
    pub(crate) fn start(vms: &[Vm]) -> Result<Self, VmLabError> {
        // Targets by name: the qemu pid (setpriv execs qemu, so the child's pid is qemu's) and
        // what its command line holds (its control socket's path, unique to this lab): once the
        // lab has reaped a powered-off qemu, its pid may be another process's.
        let targets: Arc<BTreeMap<String, Target>> = Arc::new(
            vms.iter()
                .map(|vm| {
                    let target = Target {
                        pid: vm.pid().and_then(|pid| i32::try_from(pid).ok()),
                        marker: vm.control_path().to_string_lossy().into_owned(),
                    };
                    (vm.name().to_owned(), target)
                })
                .collect(),
        );
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut service = Self {
            streams: Vec::new(),
            threads: Vec::new(),
            events: Arc::clone(&events),
        };
        for vm in vms {
            let path = vm.port_path(FENCE_PORT);
            let stream = UnixStream::connect(&path).map_err(io_error("connecting to", &path))?;
            let writer = stream
                .try_clone()
                .map_err(io_error("cloning the socket", &path))?;
            service.streams.push(
                stream
                    .try_clone()
                    .map_err(io_error("cloning the socket", &path))?,
            );
            let requester = vm.name().to_owned();
            let targets = Arc::clone(&targets);
            let events = Arc::clone(&events);
            service.threads.push(thread::spawn(move || {
                serve(&requester, stream, writer, &targets, &events);
            }));
        }
        Ok(service)
    }

    pub(crate) fn events(&self) -> Vec<FenceEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FenceService {
    fn drop(&mut self) {
        for stream in &self.streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn serve(
    requester: &str,
    stream: UnixStream,
    mut writer: UnixStream,
    targets: &BTreeMap<String, Target>,
    events: &Mutex<Vec<FenceEvent>>,
) {
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let mut words = line.split_whitespace();
        let (Some(id), Some(action), Some(target)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let answer = answer(action, target, targets);
        events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(FenceEvent {
                at: Instant::now(),
                requester: requester.to_owned(),
                action: action.to_owned(),
                target: target.to_owned(),
                answer: answer.clone(),
            });
        if writer
            .write_all(format!("{id} {answer}\n").as_bytes())
            .is_err()
        {
            return;
        }
    }
}

fn answer(action: &str, target: &str, targets: &BTreeMap<String, Target>) -> String {
    match action {
        "monitor" => return "ok".to_owned(),
        "list" => {
            let names: Vec<&str> = targets.keys().map(String::as_str).collect();
            return format!("list {}", names.join(" "));
        }
        _ => {}
    }
    let Some(node) = targets.get(target) else {
        return format!("error unknown node {target}");
    };
    match action {
        "status" => {
            if node.running() {
                "on".to_owned()
            } else {
                "off".to_owned()
            }
        }
        "off" | "reboot" => {
            if let (true, Some(pid)) = (node.running(), node.pid) {
                if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGKILL) {
                    return format!("error killing qemu {pid}: {e}");
                }
            }
            // "ok" promises the node is down: wait for the kernel to end it (milliseconds).
            let deadline = Deadline::after(Duration::from_secs(10));
            while node.running() {
                if deadline.expired() {
                    return format!("error the qemu of {target} still runs 10 s after SIGKILL");
                }
                thread::sleep(Duration::from_millis(10));
            }
            "ok".to_owned()
        }
        "on" => "error the lab cannot power a node on".to_owned(),
        other => format!("error unsupported action {other}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// A stand-in for a node's qemu: `sleep` run under the marker's name. `spawn` returns once
    /// exec has begun, but the kernel sets the new command line a moment later (an empty
    /// `/proc/PID/cmdline` until then), so this waits until the node reads as running.
    fn node(marker: &str) -> (std::process::Child, Target) {
        let child = Command::new("sleep")
            .arg0(marker)
            .arg("600")
            .spawn()
            .unwrap();
        let target = Target {
            pid: i32::try_from(child.id()).ok(),
            marker: marker.to_owned(),
        };
        let deadline = Deadline::after(Duration::from_secs(5));
        while !target.running() {
            assert!(
                !deadline.expired(),
                "{marker} never showed its command line"
            );
            thread::sleep(Duration::from_millis(1));
        }
        (child, target)
    }

    #[test]
    fn off_kills_the_target_and_status_follows() {
        let (mut alpha, alpha_target) = node("fence-test-alpha");
        let (mut beta, beta_target) = node("fence-test-beta");
        let targets = BTreeMap::from([
            ("alpha".to_owned(), alpha_target),
            ("beta".to_owned(), beta_target),
        ]);
        assert_eq!(answer("status", "alpha", &targets), "on");
        assert_eq!(answer("list", "-", &targets), "list alpha beta");
        assert_eq!(answer("monitor", "-", &targets), "ok");
        assert_eq!(answer("off", "alpha", &targets), "ok");
        // "ok" once the process has let go of its memory; the kernel makes it a zombie a moment
        // later.
        let deadline = Deadline::after(Duration::from_secs(5));
        while alpha.try_wait().unwrap().is_none() {
            assert!(!deadline.expired(), "alpha still runs");
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(answer("status", "alpha", &targets), "off");
        // Off again: already off is done.
        assert_eq!(answer("reboot", "alpha", &targets), "ok");
        assert_eq!(answer("status", "beta", &targets), "on");
        assert!(answer("off", "gamma", &targets).starts_with("error unknown node"));
        assert!(answer("on", "alpha", &targets).starts_with("error"));
        assert!(answer("dance", "beta", &targets).starts_with("error"));
        beta.kill().unwrap();
        beta.wait().unwrap();
    }

    #[test]
    fn a_reused_pid_is_not_the_node() {
        let (mut other, _) = node("fence-test-other");
        let targets = BTreeMap::from([(
            "alpha".to_owned(),
            Target {
                pid: i32::try_from(other.id()).ok(),
                marker: "fence-test-alpha-gone".to_owned(),
            },
        )]);
        assert_eq!(answer("status", "alpha", &targets), "off");
        assert_eq!(answer("off", "alpha", &targets), "ok");
        assert!(
            other.try_wait().unwrap().is_none(),
            "an unrelated process was killed"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
