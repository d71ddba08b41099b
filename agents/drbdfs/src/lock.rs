//! One start or stop at a time per mount point on this node.
//!
//! Pacemaker runs one operation per resource at a time, but an admin's `crm_resource
//! --force-start`, a second resource configured on the same directory, or a test harness can run
//! another at once. Without a lock, two starts both see nothing mounted, both run fsck on the
//! same device (two repairs of one filesystem at once) and both mount, the second failing with
//! "already mounted" although the resource runs. With it, the second waits and then finds the
//! filesystem mounted.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clever_deadline::Deadline;
use nix::fcntl::{Flock, FlockArg};

use crate::error::DrbdfsError;

/// File names stay well under NAME_MAX; a longer mount point keeps its end, and two that then
/// share a name only wait for each other.
const NAME_LIMIT: usize = 200;

/// Held until dropped.
#[derive(Debug)]
pub struct MountPointLock {
    _lock: Flock<File>,
}

/// The lock file of `directory` in `run_dir`: `drbdfs-srv-clever.lock` for `/srv/clever`.
pub fn lock_path(run_dir: &Path, directory: &Path) -> PathBuf {
    let flat = directory.to_string_lossy().replace('/', "-");
    let kept: String = {
        let tail: Vec<char> = flat.chars().rev().take(NAME_LIMIT).collect();
        tail.into_iter().rev().collect()
    };
    run_dir.join(format!("drbdfs{kept}.lock"))
}

/// Takes the lock of `directory`, waiting for another action holding it until `deadline`.
pub fn lock_mount_point(
    run_dir: &Path,
    directory: &Path,
    deadline: &Deadline,
) -> Result<MountPointLock, DrbdfsError> {
    let path = lock_path(run_dir, directory);
    let failed = |detail: String| DrbdfsError::Lock {
        path: path.clone(),
        detail,
    };
    if !run_dir.is_dir() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(run_dir)
            .map_err(|e| failed(format!("creating {}: {e}", run_dir.display())))?;
    }
    // Never through a symlink, never readable by others; the file is never removed (removing a
    // lock file races with the next taker) and lives on a tmpfs a reboot clears.
    let mut file = Some(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| failed(e.to_string()))?,
    );
    let mut waited = false;
    let lock = deadline.poll(
        "another drbdfs start or stop of this mount point",
        Duration::from_millis(20),
        || {
            let candidate = file.take()?;
            match Flock::lock(candidate, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => Some(Ok(lock)),
                Err((back, nix::errno::Errno::EWOULDBLOCK)) => {
                    if !waited {
                        log::info!(
                            "waiting for another drbdfs action on {}",
                            directory.display()
                        );
                        waited = true;
                    }
                    file = Some(back);
                    None
                }
                Err((_, errno)) => Some(Err(errno)),
            }
        },
    )?;
    let lock = lock.map_err(|errno| failed(errno.to_string()))?;
    Ok(MountPointLock { _lock: lock })
}
