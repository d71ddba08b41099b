//! Mounting, checking and unmounting, and telling our mount from someone else's.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use clever_command::{CommandLine, RunCommand};
use clever_deadline::Deadline;
use clever_drbd::DrbdStatusSource;
use clever_mounts::{parse_mountinfo, MountEntry};
use nix::mount::MntFlags;
use nix::sys::stat::{major, minor};

use crate::error::DrbdfsError;
use crate::host::{DrbdfsHost, Syscalls};
use crate::params::{Config, Fsck};

/// Filesystems without a journal: the only ones `fsck=auto` checks.
const UNJOURNALED: &[&str] = &["ext2", "vfat", "msdos", "fat", "minix"];

/// The top-most mount at `directory`, if any.
pub fn mounted_at<R: RunCommand, D: DrbdStatusSource, S>(
    host: &DrbdfsHost<R, D, S>,
    directory: &Path,
) -> Result<Option<MountEntry>, DrbdfsError> {
    let text =
        std::fs::read_to_string(host.mountinfo_path()).map_err(DrbdfsError::MountinfoRead)?;
    Ok(parse_mountinfo(&text)?
        .into_iter()
        .rev()
        .find(|entry| entry.is_at(directory)))
}

/// `major:minor` of a block device; what mountinfo records for a mount of it.
pub fn block_device_numbers(device: &Path) -> Result<(u32, u32), DrbdfsError> {
    let metadata = std::fs::metadata(device).map_err(|_| DrbdfsError::DeviceMissing {
        device: device.to_owned(),
    })?;
    if !metadata.file_type().is_block_device() {
        return Err(DrbdfsError::NotABlockDevice {
            device: device.to_owned(),
        });
    }
    let rdev = std::os::unix::fs::MetadataExt::rdev(&metadata);
    let (major, minor) = (major(rdev), minor(rdev));
    Ok((
        u32::try_from(major).unwrap_or(u32::MAX),
        u32::try_from(minor).unwrap_or(u32::MAX),
    ))
}

/// Whether `entry` is a mount of `device`: same device numbers, which holds whatever path
/// (symlink, by-res name) the admin configured.
pub fn is_mount_of(entry: &MountEntry, device: &Path) -> bool {
    match block_device_numbers(device) {
        Ok(numbers) => numbers == (entry.major, entry.minor),
        // The device node is gone (DRBD down, udev link removed): fall back to the path.
        Err(_) => Path::new(&entry.source) == device,
    }
}

/// Runs fsck when the policy asks for it; errors it could not repair fail the start.
pub fn check_filesystem<R: RunCommand, D: DrbdStatusSource, S>(
    host: &DrbdfsHost<R, D, S>,
    config: &Config,
    deadline: &Deadline,
) -> Result<(), DrbdfsError> {
    let wanted = match config.fsck {
        Fsck::Never => false,
        Fsck::Force => true,
        Fsck::Auto => UNJOURNALED.contains(&config.fstype.as_str()),
    };
    if !wanted {
        return Ok(());
    }
    log::info!(
        "checking {} ({}) before mounting",
        config.device,
        config.fstype
    );
    let command = CommandLine::new("fsck")
        .args(["-T", "-a", "-t", &config.fstype])
        .arg(config.device.as_path());
    let output = host
        .commands
        .run(&command, deadline)
        .map_err(DrbdfsError::Fsck)?;
    // fsck: 0 clean, 1 errors corrected; anything else leaves the filesystem unsafe to mount.
    match output.code() {
        Some(0) => Ok(()),
        Some(1) => {
            log::warn!("fsck corrected errors on {}", config.device);
            Ok(())
        }
        _ => Err(DrbdfsError::FsckFailed {
            device: config.device.as_path().to_owned(),
            detail: format!(
                "{}: {}",
                clever_command::describe_status(output.status),
                output
                    .stdout_text()
                    .lines()
                    .chain(output.stderr_text().lines())
                    .last()
                    .unwrap_or_default()
            ),
        }),
    }
}

/// Mounts through mount(8), which knows every filesystem's option syntax.
pub fn mount<R: RunCommand, D: DrbdStatusSource, S>(
    host: &DrbdfsHost<R, D, S>,
    config: &Config,
    deadline: &Deadline,
) -> Result<(), DrbdfsError> {
    let mut command = CommandLine::new("mount").args(["-t", &config.fstype]);
    if let Some(options) = &config.options {
        command = command.args(["-o", options]);
    }
    command = command
        .arg(config.device.as_path())
        .arg(config.directory.as_path());
    host.commands
        .run_ok(&command, deadline)
        .map_err(DrbdfsError::Mount)?;
    Ok(())
}

/// One unmount attempt of the top-most mount at `directory`, never following a symlink there.
pub fn unmount<S: Syscalls>(syscalls: &S, directory: &Path) -> Result<(), nix::errno::Errno> {
    syscalls.umount(directory, MntFlags::UMOUNT_NOFOLLOW)
}
