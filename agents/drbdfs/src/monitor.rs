//! monitor: mounted here, with our device, readable and writable at the asked depth, and
//! DRBD's replication health (degraded → 190 with the reason, lost Primary → failure).

use clever_command::RunCommand;
use clever_drbd::{DrbdStatusSource, ReplicationHealth};
use clever_ocf::{Context, Status};

use crate::check::{read_device, write_status};
use crate::drbd::{health, resource_name};
use crate::error::DrbdfsError;
use crate::filesystem::{is_mount_of, mounted_at};
use crate::host::DrbdfsHost;
use crate::params::Config;

pub fn monitor<R: RunCommand, D: DrbdStatusSource, S>(
    config: &Config,
    host: &DrbdfsHost<R, D, S>,
    context: &Context,
) -> Result<Status, DrbdfsError> {
    let directory = config.directory.as_path();
    let Some(entry) = mounted_at(host, directory)? else {
        return Ok(Status::NotRunning);
    };
    if !is_mount_of(&entry, config.device.as_path()) {
        log::warn!(
            "{} has {} mounted, not {}",
            config.directory,
            entry.source,
            config.device
        );
        return Ok(Status::NotRunning);
    }
    if context.check_level >= 10 {
        read_device(config.device.as_path(), &context.deadline)?;
    }
    let full = if context.check_level >= 20 {
        write_status(directory, &node_name(context), &context.deadline)?
    } else {
        None
    };
    let degraded = match resource_name(host, config)? {
        Some(name) => match health(host, &name, &context.deadline)? {
            ReplicationHealth::Healthy(_) => None,
            ReplicationHealth::Degraded(reason) => Some(reason),
            ReplicationHealth::LostPrimary(reason) => return Err(DrbdfsError::LostPrimary(reason)),
        },
        None => None,
    };
    Ok(match (degraded, full) {
        (None, None) => Status::Success,
        (Some(reason), None) | (None, Some(reason)) => Status::Degraded(reason),
        (Some(replication), Some(full)) => Status::Degraded(format!("{replication}; {full}")),
    })
}

/// The node's cluster name (what Pacemaker passes), else the host name.
fn node_name(context: &Context) -> String {
    context
        .meta("on_node")
        .map(str::to_owned)
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|name| name.into_string().ok())
        })
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .unwrap_or_else(|| "node".to_owned())
}
