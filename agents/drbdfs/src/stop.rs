//! stop: unmount, ending whoever keeps the filesystem busy, and say 0 only when it is gone.

use std::time::Duration;

use clever_command::RunCommand;
use clever_deadline::Deadline;
use clever_drbd::DrbdStatusSource;
use clever_mounts::Holder;
use clever_ocf::Status;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::DrbdfsError;
use crate::filesystem::{is_mount_of, mounted_at, unmount};
use crate::host::{DrbdfsHost, Syscalls};
use crate::params::{Config, ForceUnmount};

/// How long holders get to react to TERM before KILL, at most.
const TERM_GRACE: Duration = Duration::from_secs(5);

pub fn stop<R: RunCommand, D: DrbdStatusSource, S: Syscalls>(
    config: &Config,
    host: &DrbdfsHost<R, D, S>,
    deadline: &Deadline,
) -> Result<Status, DrbdfsError> {
    let directory = config.directory.as_path();
    let mut terminated_at: Option<std::time::Instant> = None;
    let mut last_holders: Vec<Holder>;
    loop {
        let Some(entry) = mounted_at(host, directory)? else {
            log::info!("{} is not mounted", config.directory);
            return Ok(Status::Success);
        };
        if !is_mount_of(&entry, config.device.as_path()) {
            log::warn!(
                "{} has {} mounted, not {}: leaving it alone",
                config.directory,
                entry.source,
                config.device
            );
            return Ok(Status::Success);
        }
        match unmount(&host.syscalls, directory) {
            Ok(()) => {
                log::info!("unmounted {}", config.directory);
                continue;
            }
            Err(Errno::EBUSY) => {}
            // Gone between our look and the call: look again.
            Err(Errno::EINVAL | Errno::ENOENT) => continue,
            Err(errno) => {
                return Err(DrbdfsError::Unmount {
                    directory: directory.to_owned(),
                    errno,
                })
            }
        }
        last_holders = host.syscalls.holders(directory);
        if deadline.expired() {
            break;
        }
        if config.force_unmount == ForceUnmount::Refuse && !last_holders.is_empty() {
            break;
        }
        let signal = match terminated_at {
            Some(at) if at.elapsed() >= TERM_GRACE.min(deadline.timeout() / 4) => Signal::SIGKILL,
            Some(_) => {
                std::thread::sleep(Duration::from_millis(100).min(deadline.remaining()));
                continue;
            }
            None => Signal::SIGTERM,
        };
        if signal == Signal::SIGTERM {
            terminated_at = Some(std::time::Instant::now());
        }
        for holder in &last_holders {
            log::warn!(
                "{} busy: sending {signal} to {} (pid {}, {:?} {})",
                config.directory,
                holder.command,
                holder.pid,
                holder.how,
                holder.path.display()
            );
            if let Some(pid) = signalable(holder.pid) {
                // A holder that exited already is what we wanted.
                let _ = host.syscalls.kill(pid, signal);
            }
        }
        std::thread::sleep(Duration::from_millis(50).min(deadline.remaining()));
    }
    let holders = if last_holders.is_empty() {
        "no holder found in /proc (a kernel user such as a nested mount or swap file?)".to_owned()
    } else {
        last_holders
            .iter()
            .map(|h| format!("{} (pid {})", h.command, h.pid))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(DrbdfsError::StillBusy {
        directory: directory.to_owned(),
        holders,
    })
}

/// The pid to signal for a holder, unless it is init, this agent, or not a pid at all: the
/// scan already leaves those out, and this keeps it so whatever the scan returned, since
/// `kill(0)` and `kill(-1)` would reach a whole group or every process.
fn signalable(pid: u32) -> Option<Pid> {
    if pid <= 1 || pid == std::process::id() {
        return None;
    }
    i32::try_from(pid).ok().map(Pid::from_raw)
}
