//! start: mount only where DRBD lets this node write, never over someone else's mount.

use std::os::unix::fs::DirBuilderExt;

use clever_command::RunCommand;
use clever_deadline::Deadline;
use clever_drbd::DrbdStatusSource;
use clever_ocf::Status;

use crate::drbd::{resource_name, wait_until_mountable};
use crate::error::DrbdfsError;
use crate::filesystem::{check_filesystem, is_mount_of, mount, mounted_at};
use crate::host::DrbdfsHost;
use crate::params::Config;

pub fn start<R: RunCommand, D: DrbdStatusSource, S>(
    config: &Config,
    host: &DrbdfsHost<R, D, S>,
    deadline: &Deadline,
) -> Result<Status, DrbdfsError> {
    let directory = config.directory.as_path();
    if let Some(entry) = mounted_at(host, directory)? {
        if is_mount_of(&entry, config.device.as_path()) {
            log::info!(
                "{} is already mounted on {}",
                config.device,
                config.directory
            );
            return Ok(Status::Success);
        }
        return Err(DrbdfsError::DirectoryOccupied {
            directory: directory.to_owned(),
            source_device: entry.source,
            fstype: entry.fs_type,
        });
    }
    if let Some(name) = resource_name(host, config)? {
        let reason = wait_until_mountable(host, config, &name, deadline)?;
        log::info!("{reason}");
    }
    if !directory.is_dir() {
        log::info!("creating mount point {}", config.directory);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(directory)
            .map_err(|source| DrbdfsError::CreateDirectory {
                directory: directory.to_owned(),
                source,
            })?;
    }
    check_filesystem(host, config, deadline)?;
    mount(host, config, deadline)?;
    match mounted_at(host, directory)? {
        Some(entry) if is_mount_of(&entry, config.device.as_path()) => {
            log::info!(
                "mounted {} on {} ({})",
                config.device,
                config.directory,
                config.fstype
            );
            Ok(Status::Success)
        }
        _ => Err(DrbdfsError::NotMountedAfterMount {
            directory: directory.to_owned(),
        }),
    }
}
