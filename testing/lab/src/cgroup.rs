//! One cgroup (v2) per node: its processes, whether any is left, and `cgroup.kill`, which ends all
//! of them at once, including any they fork meanwhile. This is the lab's power switch.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clever_deadline::Deadline;

use crate::error::LabError;

/// A cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn child(&self, name: &str) -> Self {
        Self::new(self.path.join(name))
    }

    pub fn exists(&self) -> bool {
        self.path.join("cgroup.procs").exists()
    }

    /// Creates the cgroup and its parents.
    pub fn create(&self) -> Result<(), LabError> {
        fs::create_dir_all(&self.path).map_err(LabError::io("creating cgroup", &self.path))
    }

    /// Moves the calling process into this cgroup (its future children follow).
    pub fn join_self(&self) -> Result<(), LabError> {
        let procs = self.path.join("cgroup.procs");
        fs::write(&procs, std::process::id().to_string())
            .map_err(LabError::io("joining cgroup", procs))
    }

    /// Moves process `pid` into this cgroup: a program started into a node from outside
    /// belongs to the node, and must die with it at a power cut.
    pub fn adopt(&self, pid: u32) -> Result<(), LabError> {
        let procs = self.path.join("cgroup.procs");
        fs::write(&procs, pid.to_string()).map_err(LabError::io("joining cgroup", procs))
    }

    /// Whether any process is left in this cgroup or below it.
    pub fn populated(&self) -> bool {
        fs::read_to_string(self.path.join("cgroup.events"))
            .map(|events| events.lines().any(|line| line.trim() == "populated 1"))
            .unwrap_or(false)
    }

    /// The processes directly in this cgroup.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// The processes in this cgroup and every cgroup below it.
    pub fn all_pids(&self) -> Vec<i32> {
        let mut pids = self.pids();
        for child in self.children() {
            pids.extend(child.all_pids());
        }
        pids
    }

    fn children(&self) -> Vec<Cgroup> {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| Cgroup::new(e.path()))
            .collect()
    }

    /// Kills every process in the cgroup and below (SIGKILL, atomically) and waits until none
    /// is left. A cgroup that does not exist is already empty.
    pub fn kill(&self, deadline: &Deadline) -> Result<(), LabError> {
        if !self.exists() {
            return Ok(());
        }
        let kill = self.path.join("cgroup.kill");
        match fs::write(&kill, "1") {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(LabError::io("writing", kill)(e)),
        }
        deadline.poll(
            &format!("the processes of {} to end", self.path.display()),
            Duration::from_millis(2),
            || (!self.populated()).then_some(()),
        )?;
        Ok(())
    }

    /// Kills like [`Cgroup::kill`], then waits until each process is gone from the process
    /// table too. A process leaves its cgroup as it exits, but stays in the table until its
    /// parent reaps it: killed with its node's init, it is reparented to the host's PID 1, which
    /// may take seconds to reap it. Whoever says "nothing is left" (`down`) waits for that.
    pub fn kill_and_reap(&self, deadline: &Deadline) -> Result<(), LabError> {
        let before: Vec<(i32, Option<u64>)> = self
            .all_pids()
            .into_iter()
            .map(|pid| (pid, start_time(pid)))
            .collect();
        self.kill(deadline)?;
        deadline.poll(
            &format!("the processes of {} to be reaped", self.path.display()),
            Duration::from_millis(10),
            || {
                before
                    .iter()
                    .all(|(pid, started)| started.is_none() || start_time(*pid) != *started)
                    .then_some(())
            },
        )?;
        Ok(())
    }

    /// Removes this cgroup and every cgroup below it (all must be empty).
    pub fn remove_tree(&self) -> Result<(), LabError> {
        if !self.path.exists() {
            return Ok(());
        }
        for child in self.children() {
            child.remove_tree()?;
        }
        match fs::remove_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LabError::io("removing cgroup", &self.path)(e)),
        }
    }
}

/// When `pid` started (field 22 of `/proc/PID/stat`, in clock ticks since boot), which tells a
/// process from a later one that reuses its number; `None` once it is gone.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}
