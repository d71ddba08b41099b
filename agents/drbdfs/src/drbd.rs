//! DRBD's word on whether this node may write the data, and how well it is replicated.

use std::time::Duration;

use clever_command::{CommandError, RunCommand};
use clever_deadline::Deadline;
use clever_drbd::{
    mount_verdict, replication_health, DrbdStatusError, DrbdStatusSource, MountVerdict,
    ReplicationHealth,
};

use crate::error::DrbdfsError;
use crate::host::DrbdfsHost;
use crate::params::{is_drbd_path, Config};

/// The DRBD resource behind the configured device, if it is DRBD.
pub fn resource_name<R: RunCommand, D: DrbdStatusSource, S>(
    host: &DrbdfsHost<R, D, S>,
    config: &Config,
) -> Result<Option<String>, DrbdfsError> {
    if let Some(name) = &config.drbd_resource {
        return Ok(Some(name.clone()));
    }
    if !is_drbd_path(config.device.as_path()) {
        return Ok(None);
    }
    Ok(Some(
        clever_drbd::resolve_device(&host.root, config.device.as_path())?.resource,
    ))
}

/// Waits, within the deadline, until DRBD allows mounting here; a refusal ends the wait at once.
pub fn wait_until_mountable<R: RunCommand, D: DrbdStatusSource, S>(
    host: &DrbdfsHost<R, D, S>,
    config: &Config,
    name: &str,
    deadline: &Deadline,
) -> Result<String, DrbdfsError> {
    let mut pause = Duration::from_millis(50);
    let mut waiting_for: Option<String> = None;
    loop {
        let resource = match host.drbd.resource(name, deadline) {
            Ok(resource) => resource,
            // The deadline can fall while drbdsetup runs (it takes a while on a loaded node):
            // the state that kept us waiting says more than the killed drbdsetup.
            Err(DrbdStatusError::Command(CommandError::TimedOut { .. }))
                if waiting_for.is_some() =>
            {
                return Err(DrbdfsError::DrbdNotReady {
                    reason: waiting_for.unwrap_or_default(),
                    waited: deadline.elapsed(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        match mount_verdict(&resource, config.promotion) {
            verdict @ (MountVerdict::Allowed(_) | MountVerdict::AllowedByAutoPromote(_)) => {
                return Ok(verdict.reason().to_owned());
            }
            MountVerdict::Refuse(reason) => return Err(DrbdfsError::DrbdRefused(reason)),
            MountVerdict::Wait(reason) => {
                if deadline.remaining() <= pause {
                    return Err(DrbdfsError::DrbdNotReady {
                        reason,
                        waited: deadline.elapsed(),
                    });
                }
                log::info!("waiting: {reason}");
                waiting_for = Some(reason);
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Replication health of a mounted resource.
pub fn health<R: RunCommand, D: DrbdStatusSource, S>(
    host: &DrbdfsHost<R, D, S>,
    name: &str,
    deadline: &Deadline,
) -> Result<ReplicationHealth, DrbdfsError> {
    let resource = host.drbd.resource(name, deadline)?;
    Ok(replication_health(&resource))
}
