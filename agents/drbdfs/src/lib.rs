//! `ocf:clever:drbdfs`: the DRBD-aware filesystem agent.
//!
//! The stock `ocf:heartbeat:Filesystem` mounts whatever device it is given and trusts the
//! constraints to have promoted DRBD first. This agent asks DRBD itself: it mounts only where the
//! local data is UpToDate and the node is (or may auto-promote to) Primary, refuses with the
//! state named in the exit reason otherwise, and reports lost replication as degraded.

mod check;
mod drbd;
mod error;
mod filesystem;
pub mod host;
mod monitor;
mod start;
mod stop;

/// The parameters and their first stage live in `clever-agent-params`, which the CIB generator
/// shares.
pub use clever_agent_params::drbdfs as params;

use std::os::unix::fs::FileTypeExt;

use clever_ocf::{
    Action, Agent, Context, Declaration, ParameterError, Parameters, ResourceLock, Status,
};

pub use check::STATUS_DIR;
pub use error::DrbdfsError;
pub use host::{DrbdfsHost, HostSyscalls, Syscalls};
pub use monitor::monitor;
pub use params::Config;
pub use start::start;
pub use stop::stop;

/// The agent as Pacemaker runs it: its configuration; the host comes from [`Agent::host`].
#[derive(Debug)]
pub struct Drbdfs {
    pub config: Config,
}

impl Agent for Drbdfs {
    type Error = DrbdfsError;
    type Host = DrbdfsHost;

    fn configure(parameters: &Parameters) -> Result<Self, ParameterError> {
        Ok(Self {
            config: Config::from_parameters(parameters)?,
        })
    }

    fn host(&self, _context: &Context) -> DrbdfsHost {
        DrbdfsHost::system()
    }

    /// start and validate-all need the device and mount(8); stop and monitor must work even when
    /// the device has vanished, so they check nothing here.
    fn check_host(&self, context: &Context) -> Result<(), DrbdfsError> {
        if !matches!(context.action, Action::Start | Action::ValidateAll) {
            return Ok(());
        }
        let device = self.config.device.as_path();
        let metadata = std::fs::metadata(device).map_err(|_| DrbdfsError::DeviceMissing {
            device: device.to_owned(),
        })?;
        if !metadata.file_type().is_block_device() {
            return Err(DrbdfsError::NotABlockDevice {
                device: device.to_owned(),
            });
        }
        let directory = self.config.directory.as_path();
        // From the nearest ancestor that exists: a symlink above a mount point yet to be
        // created would send start's mkdir and mount somewhere else.
        let existing = directory
            .ancestors()
            .find(|p| std::fs::symlink_metadata(p).is_ok())
            .unwrap_or(directory);
        if let Ok(real) = existing.canonicalize() {
            if real != existing {
                let rest = directory.strip_prefix(existing).unwrap_or(directory);
                return Err(DrbdfsError::DirectoryNotCanonical {
                    directory: directory.to_owned(),
                    real: if rest.as_os_str().is_empty() {
                        real
                    } else {
                        real.join(rest)
                    },
                });
            }
        }
        if ![
            "/usr/bin/mount",
            "/bin/mount",
            "/usr/sbin/mount",
            "/sbin/mount",
        ]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
        {
            return Err(DrbdfsError::ToolMissing { program: "mount" });
        }
        Ok(())
    }
}

fn handle_start(
    agent: &Drbdfs,
    context: &Context,
    host: &DrbdfsHost,
) -> Result<Status, DrbdfsError> {
    let _lock = agent.lock(context)?;
    start(&agent.config, host, &context.deadline)
}

fn handle_stop(
    agent: &Drbdfs,
    context: &Context,
    host: &DrbdfsHost,
) -> Result<Status, DrbdfsError> {
    let _lock = agent.lock(context)?;
    stop(&agent.config, host, &context.deadline)
}

impl Drbdfs {
    /// Start and stop of one mount point never overlap on this node: two starts would both
    /// run fsck on the device and both mount. The lock is the mount point's, not the
    /// instance's, so two resources configured on one directory wait for each other too.
    fn lock(&self, context: &Context) -> Result<ResourceLock, DrbdfsError> {
        let directory = self.config.directory.as_path().to_string_lossy();
        let key = directory.trim_start_matches('/');
        Ok(ResourceLock::acquire(
            &context.run_dir,
            "drbdfs",
            key,
            &context.deadline,
        )?)
    }
}

fn handle_monitor(
    agent: &Drbdfs,
    context: &Context,
    host: &DrbdfsHost,
) -> Result<Status, DrbdfsError> {
    monitor(&agent.config, host, context)
}

fn handle_validate(
    _agent: &Drbdfs,
    _context: &Context,
    _host: &DrbdfsHost,
) -> Result<Status, DrbdfsError> {
    // Both stages of checks already ran before any handler; reaching here means valid.
    Ok(Status::Success)
}

pub static DECLARATION: Declaration<Drbdfs> = Declaration {
    name: params::AGENT_NAME,
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "DRBD-aware filesystem mount",
    longdesc:
        "Mounts a filesystem, and for a DRBD device only where DRBD says this node may write \
        it: local role Primary (or DRBD 9 auto-promote with no Primary peer) and local disk \
        UpToDate. While a promotion settles, start waits within its timeout; otherwise it \
        refuses with the DRBD state in the exit reason. monitor reads /proc/self/mountinfo \
        (no process spawned for a plain device, one drbdsetup call for DRBD); \
        OCF_CHECK_LEVEL=10 reads the first block of the device with O_DIRECT, 20 also writes, \
        syncs and reads back with O_DIRECT a per-node status file in .clever-drbdfs/, so a \
        device that drops writes it acknowledged fails it too (a full filesystem makes that \
        OCF_DEGRADED with the reason, not a failure). A mounted DRBD filesystem \
        whose replication is down returns OCF_DEGRADED (190) with the reason; one whose node \
        lost the Primary role fails. stop ends the processes that keep the filesystem busy \
        (found in /proc: open files, working directories, memory maps) with TERM, then KILL, \
        and succeeds only when the filesystem is really unmounted. start and stop of one mount \
        point never overlap on a node (a lock file in $HA_RSCTMP).",
    parameters: params::PARAMETERS,
    actions: &[
        params::START.with(handle_start),
        params::STOP.with(handle_stop),
        params::MONITOR.with(handle_monitor),
        params::MONITOR_READ.with(handle_monitor),
        params::VALIDATE_ALL.with(handle_validate),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator reads this agent's parameters and timeouts from `clever-agent-params`.
    #[test]
    fn declaration_is_the_shared_table() {
        assert_eq!(
            params::AGENT.differences(&DECLARATION),
            Vec::<String>::new()
        );
    }
}
