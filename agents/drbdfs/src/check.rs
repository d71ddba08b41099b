//! The deeper monitor checks: can the device still be read (depth 10), and can the filesystem
//! still be written (depth 20). Both run on a helper thread so a hung device cannot hold the
//! monitor past its deadline.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use clever_deadline::Deadline;

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

/// Writes, syncs and reads back this node's status file inside the mounted filesystem. Files
/// are never followed through symlinks: the status directory is created 0700 by root and
/// checked to be a real directory owned by root before anything is opened in it.
pub fn write_status(directory: &Path, node: &str, deadline: &Deadline) -> Result<(), DrbdfsError> {
    let status_dir = directory.join(STATUS_DIR);
    let file = status_dir.join(format!("{node}.status"));
    let shown = file.clone();
    let node = node.to_owned();
    bounded(20, &shown, deadline, move || {
        // The directory is opened once, without following a symlink, and checked on that open
        // handle; the file is then opened through /proc/self/fd, which names exactly that
        // directory. A directory swapped for a symlink after the check cannot redirect the write.
        let dir = open_private_directory(&status_dir)?;
        let through_handle = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .join(format!("{node}.status"));
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
            .map_err(|e| format!("open {}: {e}", file.display()))?;
        handle
            .write_all(content.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        handle.sync_all().map_err(|e| format!("fsync: {e}"))?;
        handle
            .seek(SeekFrom::Start(0))
            .map_err(|e| format!("seek: {e}"))?;
        let mut back = String::new();
        handle
            .read_to_string(&mut back)
            .map_err(|e| format!("read back: {e}"))?;
        if back == content {
            Ok(())
        } else {
            Err("read back different content".to_owned())
        }
    })
}

/// Opens (creating it 0700 if missing) the status directory, refusing a symlink and anything
/// not owned by root or writable by others.
fn open_private_directory(path: &Path) -> Result<File, String> {
    if std::fs::symlink_metadata(path).is_err() {
        DirBuilder::new()
            .mode(0o700)
            .create(path)
            .map_err(|e| format!("create {}: {e}", path.display()))?;
    }
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("{} is not a directory (symlink?): {e}", path.display()))?;
    let metadata = dir
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if metadata.uid() != 0 || metadata.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not a private root-owned directory",
            path.display()
        ));
    }
    Ok(dir)
}
