//! The deeper monitor checks: can the device still be read (depth 10), and can the filesystem
//! still be written (depth 20). Both run on a helper thread so a hung device cannot hold the
//! monitor past its deadline.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use clever_deadline::Deadline;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use crate::error::DrbdfsError;

/// Directory for per-node status files, inside the mounted filesystem.
pub const STATUS_DIR: &str = ".clever-drbdfs";
const BLOCK: usize = 4096;

fn bounded<T: Send + 'static>(
    depth: u32,
    path: &Path,
    deadline: &Deadline,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, DrbdfsError> {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    let failed = |detail: String| DrbdfsError::Check {
        depth,
        path: path.to_owned(),
        detail,
    };
    match result.recv_timeout(deadline.remaining()) {
        Ok(outcome) => outcome.map_err(failed),
        Err(_) => Err(failed(format!(
            "no answer within {:?}: the device may be hung",
            deadline.remaining()
        ))),
    }
}

/// Reads the first block of `device` bypassing the page cache, so a dead disk shows.
pub fn read_device(device: &Path, deadline: &Deadline) -> Result<(), DrbdfsError> {
    let path = device.to_owned();
    bounded(10, device, deadline, move || {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_DIRECT)
            .open(&path)
            .map_err(|e| format!("open with O_DIRECT: {e}"))?;
        // O_DIRECT needs a buffer aligned to the logical block size; carve one out of a larger
        // allocation instead of reaching for an aligned allocator.
        let mut storage = vec![0_u8; BLOCK * 2];
        let offset = storage.as_ptr().align_offset(BLOCK);
        let buffer = storage
            .get_mut(offset..offset + BLOCK)
            .ok_or_else(|| "cannot align the read buffer".to_owned())?;
        file.read(buffer).map_err(|e| format!("read: {e}"))?;
        Ok(())
    })
}

/// The filesystem has no room for the status file: its storage works, and no recovery
/// Pacemaker could attempt (restart, move to the peer, which holds the same replicated data)
/// would make room, so the monitor reports it as degraded rather than failed.
fn no_space(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(nix::libc::ENOSPC | nix::libc::EDQUOT)
    )
}

/// Why the status write did not complete.
enum WriteFailure {
    /// No space (or quota) left: the reason, for a degraded answer.
    Full(String),
    Failed(String),
}

impl WriteFailure {
    fn of(step: &str, error: &std::io::Error) -> Self {
        let text = format!("{step}: {error}");
        if no_space(error) {
            Self::Full(text)
        } else {
            Self::Failed(text)
        }
    }
}

/// Writes, syncs and reads back this node's status file inside the mounted filesystem. Files
/// are never followed through symlinks: the status directory is created 0700 by root and
/// checked to be a real directory owned by root before anything is opened in it. `Some` is the
/// reason the filesystem is full: the write could not be done, and that is not a failure.
pub fn write_status(
    directory: &Path,
    node: &str,
    deadline: &Deadline,
) -> Result<Option<String>, DrbdfsError> {
    let status_dir = directory.join(STATUS_DIR);
    let file = status_dir.join(format!("{node}.status"));
    let shown = file.clone();
    let node = node.to_owned();
    let outcome = bounded(20, &shown, deadline, move || {
        match write_and_read_back(&status_dir, &file, &node) {
            Ok(()) => Ok(None),
            Err(WriteFailure::Full(reason)) => Ok(Some(reason)),
            Err(WriteFailure::Failed(reason)) => Err(reason),
        }
    })?;
    Ok(outcome.map(|reason| {
        format!(
            "filesystem on {} is full, the depth 20 check could not write {}: {reason}",
            directory.display(),
            shown.display()
        )
    }))
}

fn write_and_read_back(status_dir: &Path, file: &Path, node: &str) -> Result<(), WriteFailure> {
    // The directory is opened once, without following a symlink, and checked on that open
    // handle; the file is then opened through /proc/self/fd, which names exactly that
    // directory. A directory swapped for a symlink after the check cannot redirect the write.
    let dir = open_private_directory(status_dir)?;
    let through_handle =
        PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(format!("{node}.status"));
    let content = format!(
        "{node} {}\n",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut handle = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&through_handle)
        .map_err(|e| WriteFailure::of(&format!("open {}", file.display()), &e))?;
    handle
        .write_all(content.as_bytes())
        .map_err(|e| WriteFailure::of("write", &e))?;
    handle
        .sync_all()
        .map_err(|e| WriteFailure::of("fsync", &e))?;
    let back = read_back(&mut handle, content.len())?;
    if back == content.as_bytes() {
        Ok(())
    } else {
        Err(WriteFailure::Failed(format!(
            "read back {} bytes that differ from the {} written and synced: the device \
             acknowledges writes it does not keep",
            back.len(),
            content.len()
        )))
    }
}

/// Reads the file back from the device rather than the page cache (`O_DIRECT`, set on the
/// same handle): a device that acknowledges writes it then drops (a lying write cache,
/// dm-flakey's `drop_writes`) shows only there, since the cache still holds what was written.
/// A filesystem without direct I/O refuses the flag (EINVAL); the read then goes through the
/// cache, which proves the write and fsync succeeded but not that the data reached the disk.
fn read_back(handle: &mut File, length: usize) -> Result<Vec<u8>, WriteFailure> {
    let fd = handle.as_raw_fd();
    let flags = fcntl(fd, FcntlArg::F_GETFL)
        .map_err(|e| WriteFailure::of("fcntl F_GETFL", &std::io::Error::from(e)))?;
    let direct = OFlag::from_bits_truncate(flags) | OFlag::O_DIRECT;
    match fcntl(fd, FcntlArg::F_SETFL(direct)) {
        Ok(_) => {}
        Err(Errno::EINVAL) => {
            log::warn!("no direct I/O on this filesystem: the depth 20 read-back is cached");
            handle
                .seek(SeekFrom::Start(0))
                .map_err(|e| WriteFailure::of("seek", &e))?;
            let mut back = Vec::new();
            handle
                .read_to_end(&mut back)
                .map_err(|e| WriteFailure::of("read back", &e))?;
            return Ok(back);
        }
        Err(e) => {
            return Err(WriteFailure::of(
                "fcntl F_SETFL O_DIRECT",
                &std::io::Error::from(e),
            ))
        }
    }
    // O_DIRECT wants the buffer, offset and length aligned to the logical block size; the read
    // stops at the end of the file.
    let blocks = length.div_ceil(BLOCK).max(1);
    let mut storage = vec![0_u8; BLOCK * (blocks + 1)];
    let offset = storage.as_ptr().align_offset(BLOCK);
    let buffer = storage
        .get_mut(offset..offset + BLOCK * blocks)
        .ok_or_else(|| WriteFailure::Failed("cannot align the read-back buffer".to_owned()))?;
    let mut filled = 0;
    while filled < length {
        let Some(rest) = buffer.get_mut(filled..) else {
            break;
        };
        let offset = u64::try_from(filled).unwrap_or(u64::MAX);
        match handle.read_at(rest, offset) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WriteFailure::of("read back with O_DIRECT", &e)),
        }
    }
    Ok(buffer.get(..filled).unwrap_or_default().to_vec())
}

/// Opens (creating it 0700 if missing) the status directory, refusing a symlink and anything
/// not owned by root or writable by others.
fn open_private_directory(path: &Path) -> Result<File, WriteFailure> {
    if std::fs::symlink_metadata(path).is_err() {
        DirBuilder::new()
            .mode(0o700)
            .create(path)
            .map_err(|e| WriteFailure::of(&format!("create {}", path.display()), &e))?;
    }
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            WriteFailure::Failed(format!(
                "{} is not a directory (symlink?): {e}",
                path.display()
            ))
        })?;
    let metadata = dir
        .metadata()
        .map_err(|e| WriteFailure::Failed(format!("{}: {e}", path.display())))?;
    if metadata.uid() != 0 || metadata.mode() & 0o022 != 0 {
        return Err(WriteFailure::Failed(format!(
            "{} is not a private root-owned directory",
            path.display()
        )));
    }
    Ok(dir)
}
