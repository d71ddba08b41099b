//! Everything that can go wrong in drbdfs, and the one mapping to OCF exit codes.

use std::io;
use std::path::PathBuf;

use clever_command::CommandError;
use clever_deadline::DeadlineExceeded;
use clever_drbd::DrbdStatusError;
use clever_mounts::MountinfoError;
use clever_ocf::{HasExitCode, LockError, OcfExitCode};

#[derive(Debug, thiserror::Error)]
pub enum DrbdfsError {
    #[error("device {} does not exist on this node", device.display())]
    DeviceMissing { device: PathBuf },
    #[error("{} is not a block device", device.display())]
    NotABlockDevice { device: PathBuf },
    #[error("directory {} resolves to {}: configure the real path", directory.display(), real.display())]
    DirectoryNotCanonical { directory: PathBuf, real: PathBuf },
    #[error("{program} is not installed on this node")]
    ToolMissing { program: &'static str },
    #[error("{} already has {source_device} ({fstype}) mounted: refusing to mount over it", directory.display())]
    DirectoryOccupied {
        directory: PathBuf,
        source_device: String,
        fstype: String,
    },
    #[error("cannot create mount point {}: {source}", directory.display())]
    CreateDirectory {
        directory: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    DrbdRefused(String),
    #[error("{reason} (still so after waiting {waited:?}; giving up before the start timeout)")]
    DrbdNotReady {
        reason: String,
        waited: std::time::Duration,
    },
    #[error("DRBD: {0}")]
    DrbdStatus(#[from] DrbdStatusError),
    #[error("{0}")]
    LostPrimary(String),
    #[error("cannot read /proc/self/mountinfo: {0}")]
    MountinfoRead(io::Error),
    #[error(transparent)]
    Mountinfo(#[from] MountinfoError),
    #[error("filesystem check of {} found errors it could not fix: {detail}", device.display())]
    FsckFailed { device: PathBuf, detail: String },
    #[error("mount failed: {0}")]
    Mount(CommandError),
    #[error("fsck: {0}")]
    Fsck(CommandError),
    #[error("{} is not mounted after mount reported success", directory.display())]
    NotMountedAfterMount { directory: PathBuf },
    #[error("{} is still busy: {holders}", directory.display())]
    StillBusy { directory: PathBuf, holders: String },
    #[error("unmount of {} failed: {errno}", directory.display())]
    Unmount {
        directory: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("depth {depth} check of {}: {detail}", path.display())]
    Check {
        depth: u32,
        path: PathBuf,
        detail: String,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
}

impl HasExitCode for DrbdfsError {
    fn exit_code(&self) -> OcfExitCode {
        match self {
            Self::DeviceMissing { .. } | Self::ToolMissing { .. } => OcfExitCode::ErrInstalled,
            Self::NotABlockDevice { .. } | Self::DirectoryNotCanonical { .. } => {
                OcfExitCode::ErrConfigured
            }
            Self::DrbdStatus(DrbdStatusError::NotLoaded { .. }) => OcfExitCode::ErrInstalled,
            Self::DrbdStatus(DrbdStatusError::Command(e)) | Self::Mount(e) | Self::Fsck(e) => {
                e.exit_code()
            }
            Self::DirectoryOccupied { .. }
            | Self::CreateDirectory { .. }
            | Self::DrbdRefused(_)
            | Self::DrbdNotReady { .. }
            | Self::DrbdStatus(_)
            | Self::LostPrimary(_)
            | Self::MountinfoRead(_)
            | Self::Mountinfo(_)
            | Self::FsckFailed { .. }
            | Self::NotMountedAfterMount { .. }
            | Self::StillBusy { .. }
            | Self::Unmount { .. }
            | Self::Check { .. }
            | Self::Lock(_)
            | Self::Deadline(_) => OcfExitCode::ErrGeneric,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cannot_start(errno: i32) -> CommandError {
        CommandError::Spawn {
            command: "drbdsetup status --json r0".into(),
            source: io::Error::from_raw_os_error(errno),
        }
    }

    /// Every error that carries a program's failure follows the framework's one rule.
    #[test]
    fn a_program_that_cannot_start_is_not_installed_only_when_missing() {
        for (errno, code) in [
            (nix::libc::EAGAIN, 1),
            (nix::libc::ENOENT, 5),
            (nix::libc::EACCES, 5),
        ] {
            for err in [
                DrbdfsError::DrbdStatus(DrbdStatusError::Command(cannot_start(errno))),
                DrbdfsError::Mount(cannot_start(errno)),
                DrbdfsError::Fsck(cannot_start(errno)),
            ] {
                assert_eq!(err.exit_code().code(), code, "{err}");
            }
        }
        let timed_out = DrbdfsError::Mount(CommandError::TimedOut {
            command: "mount".into(),
            budget: std::time::Duration::ZERO,
        });
        assert_eq!(timed_out.exit_code().code(), 1);
    }
}
