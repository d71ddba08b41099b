//! The seams between drbdfs and the machine: programs, DRBD state, the kernel calls of stop, and
//! where `/proc` and the device links are read. Production uses [`DrbdfsHost::system`]; tests
//! swap the DRBD source for recorded states and the kernel calls for a recording fake.

use std::path::{Path, PathBuf};

use clever_command::HostCommands;
use clever_drbd::HostDrbd;
use clever_mounts::{find_holders, Holder};
use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The kernel calls of stop and the scan that goes with them: what unit tests replace to play
/// a busy mount and its holders without root.
pub trait Syscalls {
    /// `umount2(2)` of `target`.
    fn umount(&self, target: &Path, flags: MntFlags) -> Result<(), Errno>;
    /// `kill(2)`.
    fn kill(&self, pid: Pid, signal: Signal) -> Result<(), Errno>;
    /// The processes keeping something below `mount` open, never PID 1 or this process.
    fn holders(&self, mount: &Path) -> Vec<Holder>;
}

/// The kernel itself: each call passes straight to nix, the scan reads `proc_root`.
#[derive(Debug, Clone)]
pub struct HostSyscalls {
    /// Where the processes to scan for holders are (`/proc`).
    pub proc_root: PathBuf,
}

impl Syscalls for HostSyscalls {
    fn umount(&self, target: &Path, flags: MntFlags) -> Result<(), Errno> {
        umount2(target, flags)
    }

    fn kill(&self, pid: Pid, signal: Signal) -> Result<(), Errno> {
        kill(pid, signal)
    }

    fn holders(&self, mount: &Path) -> Vec<Holder> {
        find_holders(&self.proc_root, mount, std::process::id())
    }
}

/// drbdfs's seam to the machine. The defaults are the production types, so `DrbdfsHost` alone
/// names the host Pacemaker's runs get.
#[derive(Debug)]
pub struct DrbdfsHost<R = HostCommands, D = HostDrbd<HostCommands>, S = HostSyscalls> {
    /// Runs `mount` and `fsck`.
    pub commands: R,
    pub drbd: D,
    /// `umount2`, `kill` and the holder scan of stop.
    pub syscalls: S,
    /// Root under which `/dev/drbd/by-res` links are resolved.
    pub root: PathBuf,
    /// Where `self/mountinfo` is.
    pub proc_root: PathBuf,
}

impl DrbdfsHost {
    /// The production host: the real programs, DRBD through `drbdsetup`, the kernel, `/proc`.
    pub fn system() -> Self {
        Self {
            commands: HostCommands,
            drbd: HostDrbd::new(HostCommands),
            syscalls: HostSyscalls {
                proc_root: PathBuf::from("/proc"),
            },
            root: PathBuf::from("/"),
            proc_root: PathBuf::from("/proc"),
        }
    }
}

impl<R, D, S> DrbdfsHost<R, D, S> {
    pub fn mountinfo_path(&self) -> PathBuf {
        self.proc_root.join("self/mountinfo")
    }
}
