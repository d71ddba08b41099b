//! The seams between drbdfs and the machine: programs, DRBD state, and where `/proc` and the
//! device links are read. Production uses [`Host::system`]; tests swap the DRBD source for
//! recorded states while mounts stay real.

use std::path::PathBuf;

use clever_command::{HostCommands, RunCommand};
use clever_drbd::{DrbdStatusSource, HostDrbd};

#[derive(Debug)]
pub struct Host<R, D> {
    /// Runs `mount` and `fsck`.
    pub commands: R,
    pub drbd: D,
    /// Root under which `/dev/drbd/by-res` links are resolved.
    pub root: PathBuf,
    /// Where `self/mountinfo` and the processes to scan for holders are.
    pub proc_root: PathBuf,
}

/// The production host.
pub type SystemHost = Host<HostCommands, HostDrbd<HostCommands>>;

impl SystemHost {
    pub fn system() -> Self {
        Self {
            commands: HostCommands,
            drbd: HostDrbd::new(HostCommands),
            root: PathBuf::from("/"),
            proc_root: PathBuf::from("/proc"),
        }
    }
}

impl<R: RunCommand, D: DrbdStatusSource> Host<R, D> {
    pub fn mountinfo_path(&self) -> PathBuf {
        self.proc_root.join("self/mountinfo")
    }
}
