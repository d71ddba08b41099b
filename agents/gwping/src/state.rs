//! The state file: its presence means "started on this node".
//!
//! It lives in the cluster's run directory ([`clever_ocf::Context::run_dir`]), which is a tmpfs
//! emptied at boot, so a rebooted node never believes it is still started.
//! It is created exclusively, without following symlinks, mode 0600, and holds a marker line:
//! a file planted by another user cannot redirect it, and a file that is not ours is never
//! taken for a started resource nor removed. It appears with its marker already in it (linked
//! into place), so an instance running at the same moment never sees it empty.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} exists but is not a regular file; refusing to use it")]
    NotRegular { path: PathBuf },
    #[error("{path} exists but is not a gwping state file; refusing to use or remove it")]
    Foreign { path: PathBuf },
}

/// What a state file holds: a misconfigured `pidfile` pointing at someone else's file is then
/// never taken for ours, nor deleted by stop.
pub const MARKER: &[u8] = b"ocf:clever:gwping state\n";

/// The state file of one resource instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// `<run dir>/gwping-<instance>`, the instance name made safe as one path component.
    pub fn for_instance(run_dir: &Path, instance: &str) -> Self {
        Self::new(run_dir.join(clever_ocf::run_dir::file_name("gwping", instance)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: io::Error) -> StateError {
        StateError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Whether the resource is started here. Anything there but a regular file with our
    /// marker is an error.
    pub fn exists(&self) -> Result<bool, StateError> {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_file() => {}
            Ok(_) => {
                return Err(StateError::NotRegular {
                    path: self.path.clone(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io(e)),
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).bits())
            .open(&self.path);
        let mut head = Vec::with_capacity(MARKER.len());
        match file {
            Ok(file) => {
                file.take(MARKER.len() as u64)
                    .read_to_end(&mut head)
                    .map_err(|e| self.io(e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io(e)),
        }
        if head == MARKER {
            Ok(true)
        } else {
            Err(StateError::Foreign {
                path: self.path.clone(),
            })
        }
    }

    /// Marks the resource started; an existing state file (a repeated start) is kept.
    pub fn create(&self) -> Result<(), StateError> {
        if let Some(dir) = self.path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| self.io(e))?;
        }
        // The file appears whole or not at all: written under a private name, then linked
        // into place (link never replaces). Created empty and then written, a second instance
        // starting at the same moment would read it empty and call it foreign.
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let draft = self
            .path
            .with_file_name(format!(".{name}.{}.{nanos}.new", std::process::id()));
        let _ = fs::remove_file(&draft);
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
            .open(&draft)
            .and_then(|mut file| file.write_all(MARKER));
        let linked = written.and_then(|()| fs::hard_link(&draft, &self.path));
        let _ = fs::remove_file(&draft);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if self.exists()? {
                    Ok(())
                } else {
                    Err(self.io(e))
                }
            }
            Err(e) => Err(self.io(e)),
        }
    }

    /// Marks the resource stopped; an absent file is already that. Only our own state file
    /// is removed.
    pub fn remove(&self) -> Result<(), StateError> {
        if !self.exists()? {
            return Ok(());
        }
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gwping-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn instance_names_become_one_safe_component() {
        let state = StateFile::for_instance(Path::new("/run/x"), "gw:0/../../etc");
        assert_eq!(state.path(), Path::new("/run/x/gwping-gw_0_.._.._etc"));
        // Which run directory (never a relative one) is the framework's rule: run_dir::resolve.
    }

    #[test]
    fn create_exists_remove_cycle() {
        let dir = scratch("cycle");
        let state = StateFile::new(dir.join("sub/gwping-x"));
        assert!(!state.exists().unwrap());
        state.create().unwrap();
        assert!(state.exists().unwrap());
        let mode = fs::metadata(state.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        state.create().unwrap();
        state.remove().unwrap();
        assert!(!state.exists().unwrap());
        state.remove().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_foreign_file_is_neither_adopted_nor_removed() {
        let dir = scratch("foreign");
        fs::create_dir_all(&dir).unwrap();
        let state = StateFile::new(dir.join("passwd"));
        fs::write(state.path(), "root:x:0:0::/root:/bin/sh\n").unwrap();
        assert!(matches!(state.exists(), Err(StateError::Foreign { .. })));
        assert!(matches!(state.create(), Err(StateError::Foreign { .. })));
        assert!(matches!(state.remove(), Err(StateError::Foreign { .. })));
        assert!(state.path().exists());
        let empty = StateFile::new(dir.join("empty"));
        fs::write(empty.path(), "").unwrap();
        assert!(matches!(empty.exists(), Err(StateError::Foreign { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn symlinks_are_never_followed() {
        let dir = scratch("symlink");
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target");
        let state = StateFile::new(dir.join("gwping-x"));
        symlink(&target, state.path()).unwrap();
        assert!(matches!(state.exists(), Err(StateError::NotRegular { .. })));
        assert!(state.create().is_err());
        assert!(!target.exists(), "the symlink's target was created");
        assert!(state.remove().is_err());
        assert!(
            fs::symlink_metadata(state.path()).is_ok(),
            "the symlink was removed"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
