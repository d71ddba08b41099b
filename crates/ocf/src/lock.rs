//! One start or stop at a time per resource on this node.
//!
//! Pacemaker runs one operation per resource at a time, but an admin's `crm_resource
//! --force-start`, `clevervm` beside the cluster, a second resource configured on the same mount
//! point, or a test harness can run another at once. Two starts of a filesystem would both run
//! fsck on one device and both mount; two hibernations of one VM would each take the other's
//! image for a stale one. With the lock the second waits, within its own deadline, and then finds
//! the work done.
//!
//! The lock is `flock(2)` on a file in the run directory: the kernel releases it when the holder
//! ends, however it ends, so a killed agent never leaves it taken. The file itself is never
//! removed (removing a lock file races with the next taker); the run directory is a tmpfs a
//! reboot clears.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clever_deadline::{Deadline, DeadlineExceeded};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::run_dir;

/// How often a waiter tries again: short beside any action's timeout, long beside a syscall.
const RETRY: Duration = Duration::from_millis(20);

/// Why the lock was not taken. What to do about it is the agent's policy: a start may fail,
/// a stop may rather go on unlocked than end in fencing.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The run directory or the lock file cannot be made or opened (a read-only or full
    /// tmpfs, something that is not a regular file planted at the lock's path).
    #[error("cannot open the lock {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot lock {}: {errno}", path.display())]
    Flock { path: PathBuf, errno: Errno },
    /// Another action held it until the deadline.
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
}

/// The lock of one resource, held until dropped.
#[derive(Debug)]
pub struct ResourceLock {
    _lock: Flock<File>,
}

impl ResourceLock {
    /// The lock file of `key` (an instance name, a mount point) for the agent `prefix`:
    /// `<run_dir>/<prefix>-<key made file-safe>.lock`.
    pub fn path(run_dir: &Path, prefix: &str, key: &str) -> PathBuf {
        run_dir.join(format!("{}.lock", run_dir::file_name(prefix, key)))
    }

    /// Takes the lock of `key`, waiting until `deadline` while another action holds it.
    pub fn acquire(
        run_dir: &Path,
        prefix: &str,
        key: &str,
        deadline: &Deadline,
    ) -> Result<Self, LockError> {
        let path = Self::path(run_dir, prefix, key);
        let open = |source| LockError::Open {
            path: path.clone(),
            source,
        };
        run_dir::create(run_dir).map_err(open)?;
        // Never through a symlink, never readable by others.
        let mut file = Some(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .open(&path)
                .map_err(open)?,
        );
        let what = format!("another start or stop holding {}", path.display());
        let mut waited = false;
        let locked = deadline.poll(&what, RETRY, || {
            let candidate = file.take()?;
            match Flock::lock(candidate, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => Some(Ok(lock)),
                Err((back, Errno::EWOULDBLOCK)) => {
                    if !waited {
                        // Pacemaker never runs two: someone acts beside the cluster.
                        log::warn!("waiting for {what}");
                        waited = true;
                    }
                    file = Some(back);
                    None
                }
                Err((_, errno)) => Some(Err(errno)),
            }
        })?;
        let lock = locked.map_err(|errno| LockError::Flock {
            path: path.clone(),
            errno,
        })?;
        Ok(Self { _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;

    /// A run directory of its own under the system's temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("clever-ocf-lock-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn deadline(millis: u64) -> Deadline {
        Deadline::after(Duration::from_millis(millis))
    }

    #[test]
    fn makes_the_run_dir_and_a_private_lock_file() {
        let scratch = Scratch::new("create");
        let run_dir = scratch.0.join("run/resource-agents");
        let lock = ResourceLock::acquire(&run_dir, "vm", "vm:1", &deadline(1000)).unwrap();
        let path = run_dir.join("vm-vm_1.lock");
        assert_eq!(ResourceLock::path(&run_dir, "vm", "vm:1"), path);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(lock);
        assert!(path.exists(), "the lock file is never removed");
    }

    #[test]
    fn a_second_taker_waits_until_the_first_lets_go() {
        let scratch = Scratch::new("wait");
        let first = ResourceLock::acquire(&scratch.0, "x", "r", &deadline(1000)).unwrap();
        let (taken, was_taken) = mpsc::channel();
        let run_dir = scratch.0.clone();
        let second = std::thread::spawn(move || {
            let lock = ResourceLock::acquire(&run_dir, "x", "r", &deadline(10_000));
            taken.send(Instant::now()).unwrap();
            lock.map(drop)
        });
        // Still held: the second must not have it yet.
        assert!(was_taken.recv_timeout(Duration::from_millis(200)).is_err());
        let released = Instant::now();
        drop(first);
        let when = was_taken.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(when >= released);
        second.join().unwrap().unwrap();
        // Another key is another lock.
        let _a = ResourceLock::acquire(&scratch.0, "x", "a", &deadline(1000)).unwrap();
        let _b = ResourceLock::acquire(&scratch.0, "x", "b", &deadline(1000)).unwrap();
    }

    #[test]
    fn a_holder_that_never_lets_go_costs_the_waiter_only_its_deadline() {
        let scratch = Scratch::new("deadline");
        let _held = ResourceLock::acquire(&scratch.0, "x", "r", &deadline(1000)).unwrap();
        let started = Instant::now();
        let err = ResourceLock::acquire(&scratch.0, "x", "r", &deadline(300)).unwrap_err();
        let waited = started.elapsed();
        assert!(matches!(err, LockError::Deadline(_)), "{err}");
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert!(err.to_string().contains("x-r.lock"), "{err}");
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        let scratch = Scratch::new("symlink");
        std::fs::create_dir_all(&scratch.0).unwrap();
        let victim = scratch.0.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, scratch.0.join("x-r.lock")).unwrap();
        let err = ResourceLock::acquire(&scratch.0, "x", "r", &deadline(1000)).unwrap_err();
        assert!(matches!(err, LockError::Open { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
