//! Hibernation images: what libvirt would do with one, read from the file itself.
//!
//! libvirt's own "has managed save" flag is cached per daemon and goes stale on shared storage,
//! and libvirt silently cold-boots and *deletes* an image that is still marked partial
//! (`LibvirtQemudPart`, left by a libvirtd killed mid-save), shorter than its header, or empty.
//! So the agent reads the header before every resume, and an image it will not or cannot resume
//! is renamed aside with a timestamp, never deleted.
//!
//! The header (libvirt `virQEMUSaveHeader`, native endianness): 16 bytes of magic, then the
//! 32-bit words version, data length (domain XML and cookie, NUL padded), was-running,
//! compression, cookie offset and 14 unused words: 92 bytes. The data follows, then the QEMU
//! migration stream, which starts with `QEVM` when uncompressed.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::hypervisor::SaveWrites;

/// Magic of a complete image.
pub const MAGIC_SAVE: &[u8; 16] = b"LibvirtQemudSave";
/// Magic of an image whose save did not complete.
pub const MAGIC_PARTIAL: &[u8; 16] = b"LibvirtQemudPart";
/// Size of libvirt's save-image header.
pub const HEADER_LEN: u64 = 92;
/// Largest domain XML section we accept in a header; libvirt's own limit is 10 MiB.
const MAX_DATA_LEN: u32 = 16 * 1024 * 1024;
/// Magic of an uncompressed QEMU migration stream.
const QEMU_STREAM_MAGIC: &[u8; 4] = b"QEVM";

/// Why an image will not be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageProblem {
    Empty,
    ShorterThanHeader {
        size: u64,
    },
    /// The save never completed; libvirt would boot and delete it.
    Partial,
    NotAnImage,
    UnsupportedVersion(u32),
    Truncated {
        size: u64,
        needed: u64,
    },
    /// More bytes were read than the file had when its size was taken: something is still
    /// writing it, so no decision can rest on what was read.
    ChangedWhileRead {
        size: u64,
        read: u64,
    },
    /// The header's domain XML is not readable or names no domain.
    BadDomainXml(String),
    OtherDomain(String),
    NoQemuStream,
    /// libvirt refused or failed to restore it.
    RestoreFailed(String),
    /// libvirt started the domain without resuming it.
    NotResumed(String),
}

impl ImageProblem {
    /// A short word for the kept-aside file name.
    pub fn tag(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::ShorterThanHeader { .. } | Self::Truncated { .. } => "truncated",
            Self::Partial => "partial",
            Self::NotAnImage | Self::UnsupportedVersion(_) | Self::NoQemuStream => "corrupt",
            Self::BadDomainXml(_) => "corrupt",
            Self::ChangedWhileRead { .. } => "changing",
            Self::OtherDomain(_) => "other-domain",
            Self::RestoreFailed(_) => "restore-failed",
            Self::NotResumed(_) => "not-resumed",
        }
    }
}

impl fmt::Display for ImageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the image is empty"),
            Self::ShorterThanHeader { size } => {
                write!(
                    f,
                    "the image has {size} bytes, less than its {HEADER_LEN}-byte header"
                )
            }
            Self::Partial => write!(
                f,
                "the image is marked partial (LibvirtQemudPart): its save never completed"
            ),
            Self::NotAnImage => write!(f, "the file is not a libvirt save image (bad magic)"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported save image version {v}"),
            Self::Truncated { size, needed } => {
                write!(
                    f,
                    "the image is truncated: {size} bytes, at least {needed} needed"
                )
            }
            Self::ChangedWhileRead { size, read } => write!(
                f,
                "the image changed while it was read ({read} bytes read from a file of {size}): \
                 something is still writing it"
            ),
            Self::BadDomainXml(why) => write!(f, "the image's domain XML is unreadable: {why}"),
            Self::OtherDomain(name) => write!(f, "the image belongs to domain {name:?}"),
            Self::NoQemuStream => write!(f, "the image has no QEMU state after its header"),
            Self::RestoreFailed(why) => write!(f, "libvirt could not restore it: {why}"),
            Self::NotResumed(state) => {
                write!(
                    f,
                    "libvirt started the domain without resuming it ({state})"
                )
            }
        }
    }
}

/// What the file at an image path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspection {
    Absent,
    Usable { size: u64 },
    Unusable(ImageProblem),
}

/// The image path of `domain` in `dir`.
/// How libvirt should write an image into `dir`: past the page cache on the filesystems known
/// to take direct I/O (those a DRBD device carries for a VM: ext4, XFS, Btrfs), through it
/// elsewhere (tmpfs has no direct I/O, and an unknown one may not either: a failed save would
/// cost the RAM state).
pub fn save_writes(dir: &Path) -> SaveWrites {
    use nix::sys::statfs::{statfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC};
    match statfs(dir) {
        Ok(fs)
            if [EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC]
                .contains(&fs.filesystem_type()) =>
        {
            SaveWrites::BypassCache
        }
        _ => SaveWrites::PageCache,
    }
}

pub fn image_path(dir: &Path, domain: &str) -> PathBuf {
    dir.join(format!("{domain}.save"))
}

/// Reads the header of the image at `path`, which should belong to `domain` with `uuid`
/// (normalised; empty to skip that check).
pub fn inspect(path: &Path, domain: &str, uuid: &str) -> io::Result<Inspection> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Inspection::Absent),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    let mut start = Vec::new();
    (&mut file).take(HEADER_LEN).read_to_end(&mut start)?;
    if let Ok((data_len, _)) = check_header(&start, size) {
        // Only as much as the header announces, never the RAM behind it.
        (&mut file)
            .take(u64::from(data_len) + 4)
            .read_to_end(&mut start)?;
    }
    Ok(inspect_start(&start, size, domain, uuid))
}

/// What an image of `size` bytes whose first bytes are `start` (its header, data and the first
/// four bytes of the QEMU stream, as far as they exist) holds: the pure part of [`inspect`].
pub fn inspect_start(start: &[u8], size: u64, domain: &str, uuid: &str) -> Inspection {
    let read = u64::try_from(start.len()).unwrap_or(u64::MAX);
    if read > size {
        return Inspection::Unusable(ImageProblem::ChangedWhileRead { size, read });
    }
    let header_len = usize::try_from(HEADER_LEN).unwrap_or(usize::MAX);
    let header = start.get(..start.len().min(header_len)).unwrap_or_default();
    let problem = match check_header(header, size) {
        Err(problem) => problem,
        Ok((data_len, compressed)) => {
            let data = start.get(header_len..).unwrap_or_default();
            let wanted = usize::try_from(data_len).map_or(usize::MAX, |l| l.saturating_add(4));
            let data = data.get(..data.len().min(wanted)).unwrap_or_default();
            match check_data(data, data_len, compressed, domain, uuid) {
                Ok(()) => return Inspection::Usable { size },
                Err(problem) => problem,
            }
        }
    };
    Inspection::Unusable(problem)
}

/// Checks the fixed header; gives the data length and whether the stream is compressed.
fn check_header(header: &[u8], size: u64) -> Result<(u32, bool), ImageProblem> {
    if size == 0 {
        return Err(ImageProblem::Empty);
    }
    if size < HEADER_LEN || header.len() < 36 {
        return Err(ImageProblem::ShorterThanHeader { size });
    }
    let magic = header.get(..16).unwrap_or_default();
    if magic == MAGIC_PARTIAL {
        return Err(ImageProblem::Partial);
    }
    if magic != MAGIC_SAVE {
        return Err(ImageProblem::NotAnImage);
    }
    let word = |index: usize| -> u32 {
        let at = 16 + 4 * index;
        let bytes: [u8; 4] = header
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default();
        u32::from_ne_bytes(bytes)
    };
    // libvirt reads images of the other byte order by swapping; so do we.
    let swapped = !(1..=2).contains(&word(0)) && (1..=2).contains(&word(0).swap_bytes());
    let word = |index: usize| {
        if swapped {
            word(index).swap_bytes()
        } else {
            word(index)
        }
    };
    let version = word(0);
    if !(1..=2).contains(&version) {
        return Err(ImageProblem::UnsupportedVersion(version));
    }
    let data_len = word(1);
    if data_len == 0 || data_len > MAX_DATA_LEN {
        return Err(ImageProblem::BadDomainXml(format!(
            "data length {data_len} is not plausible"
        )));
    }
    // At least the data and the 4-byte start of the QEMU stream.
    let needed = HEADER_LEN + u64::from(data_len) + 4;
    if size < needed {
        return Err(ImageProblem::Truncated { size, needed });
    }
    Ok((data_len, word(3) != 0))
}

/// Checks the domain XML in the data section and the start of the QEMU stream.
fn check_data(
    data: &[u8],
    data_len: u32,
    compressed: bool,
    domain: &str,
    uuid: &str,
) -> Result<(), ImageProblem> {
    let len = usize::try_from(data_len).unwrap_or(usize::MAX);
    let xml = data.get(..len).ok_or(ImageProblem::Truncated {
        size: HEADER_LEN + data.len() as u64,
        needed: HEADER_LEN + u64::from(data_len),
    })?;
    // The XML is followed by the cookie and NUL padding; the first document is the domain.
    let text_end = xml.iter().position(|b| *b == 0).unwrap_or(xml.len());
    let text = std::str::from_utf8(xml.get(..text_end).unwrap_or_default())
        .map_err(|_| ImageProblem::BadDomainXml("not UTF-8".to_owned()))?;
    let identity = crate::xml::domain_identity(text).map_err(ImageProblem::BadDomainXml)?;
    if identity.name != domain {
        return Err(ImageProblem::OtherDomain(identity.name));
    }
    if !uuid.is_empty() && identity.uuid.as_deref() != Some(uuid) {
        return Err(ImageProblem::OtherDomain(format!(
            "{} with UUID {}",
            identity.name,
            identity.uuid.as_deref().unwrap_or("none")
        )));
    }
    if !compressed && data.get(len..len + 4) != Some(QEMU_STREAM_MAGIC.as_slice()) {
        return Err(ImageProblem::NoQemuStream);
    }
    Ok(())
}

/// Renames the image at `path` to `NAME.save.kept-TIMESTAMP-TAG` beside it and returns the new
/// path. Never deletes: an existing name gets a counter appended.
pub fn keep_aside(path: &Path, tag: &str) -> io::Result<PathBuf> {
    let stamp = timestamp(SystemTime::now());
    let base = format!(
        "{}.kept-{stamp}-{tag}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let dir = path.parent().unwrap_or(Path::new("/"));
    for attempt in 0..1000_u32 {
        let name = if attempt == 0 {
            base.clone()
        } else {
            format!("{base}.{attempt}")
        };
        let target = dir.join(name);
        // A hard link refuses to replace an existing file, unlike rename.
        match fs::hard_link(path, &target) {
            Ok(()) => {
                fs::remove_file(path)?;
                return Ok(target);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // A filesystem without hard links: rename, having checked the name is free.
            Err(e) if no_hard_links(&e) => {
                if target.exists() {
                    continue;
                }
                fs::rename(path, &target)?;
                return Ok(target);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "too many kept images with the same timestamp",
    ))
}

/// The name of the hold of the image at `path` (see [`hold`]).
pub fn hold_path(path: &Path) -> PathBuf {
    path.with_extension("save.resuming")
}

/// A second name for the image while libvirt resumes it, so that even an image libvirt deletes
/// unasked survives. Returns `None` when the filesystem has no hard links (then nothing is
/// held, with a warning).
pub fn hold(path: &Path) -> io::Result<Option<PathBuf>> {
    let held = hold_path(path);
    if let Some(kept) = drop_hold(path, "interrupted")? {
        // A hold left by an interrupted start that is not this image: an older image.
        log::warn!(
            "kept the stale hold of an earlier resume as {}",
            kept.display()
        );
    }
    match fs::hard_link(path, &held) {
        Ok(()) => Ok(Some(held)),
        Err(e) if no_hard_links(&e) => {
            log::warn!("cannot hold {} with a hard link: {e}", path.display());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Ends the hold of the image at `path`, never losing data: a hold that is a second name of
/// the image still there is removed; any other (the image was consumed, or it is an older one)
/// is kept aside with `tag`, whose new path is returned.
pub fn drop_hold(path: &Path, tag: &str) -> io::Result<Option<PathBuf>> {
    let held = hold_path(path);
    let hold_meta = match fs::symlink_metadata(&held) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if let Ok(image) = fs::symlink_metadata(path) {
        if image.dev() == hold_meta.dev() && image.ino() == hold_meta.ino() {
            fs::remove_file(&held)?;
            return Ok(None);
        }
    }
    keep_aside(&held, tag).map(Some)
}

fn no_hard_links(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(nix::libc::EPERM | nix::libc::EOPNOTSUPP | nix::libc::EXDEV)
    )
}

/// `YYYYmmddTHHMMSSZ` in UTC.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tmpfs takes no direct I/O: a save there with --bypass-cache would fail and cost the RAM
    /// state. (The real saves of the agent and lab tests write past the cache onto ext4.)
    #[test]
    fn images_on_filesystems_without_direct_io_go_through_the_page_cache() {
        assert_eq!(save_writes(Path::new("/dev/shm")), SaveWrites::PageCache);
        assert_eq!(save_writes(Path::new("/proc")), SaveWrites::PageCache);
        assert_eq!(
            save_writes(Path::new("/nonexistent-clever-dir")),
            SaveWrites::PageCache
        );
    }

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("clever-vm-image-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn image(magic: &[u8; 16], domain: &str, stream: &[u8]) -> Vec<u8> {
        let xml = format!(
            "<domain type='qemu'>\n  <name>{domain}</name>\n  <uuid>{UUID}</uuid>\n</domain>\n"
        );
        let data_len = u32::try_from(xml.len() + 20).unwrap();
        let mut bytes = magic.to_vec();
        for word in [2, data_len, 1, 0, 0] {
            bytes.extend_from_slice(&u32::to_ne_bytes(word));
        }
        bytes.resize(92, 0);
        bytes.extend_from_slice(xml.as_bytes());
        bytes.resize(92 + data_len as usize, 0);
        bytes.extend_from_slice(stream);
        bytes
    }

    const UUID: &str = "6fb5ac16-4415-4ea6-b8d5-6f8223e0212b";

    #[test]
    fn an_image_of_another_uuid_is_not_resumed() {
        let dir = scratch("uuid");
        let path = dir.0.join("clever.save");
        fs::write(&path, image(MAGIC_SAVE, "clever", b"QEVM")).unwrap();
        let same = inspect(&path, "clever", "6fb5ac1644154ea6b8d56f8223e0212b").unwrap();
        assert!(matches!(same, Inspection::Usable { .. }), "{same:?}");
        let other = inspect(&path, "clever", "00000000000040008000000000000000").unwrap();
        assert!(
            matches!(&other, Inspection::Unusable(p) if p.tag() == "other-domain"),
            "{other:?}"
        );
    }

    fn inspect_bytes(dir: &Dir, bytes: &[u8]) -> Inspection {
        let path = dir.0.join("clever.save");
        fs::write(&path, bytes).unwrap();
        inspect(&path, "clever", "").unwrap()
    }

    #[test]
    fn classifies_images() {
        let dir = scratch("classify");
        let good = image(MAGIC_SAVE, "clever", b"QEVM\0\0\0\x03rest");
        assert!(matches!(
            inspect_bytes(&dir, &good),
            Inspection::Usable { .. }
        ));
        assert_eq!(
            inspect(&dir.0.join("absent.save"), "clever", "").unwrap(),
            Inspection::Absent
        );
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "empty"),
            (vec![7; 40], "truncated"),
            (image(MAGIC_PARTIAL, "clever", b"QEVM"), "partial"),
            (image(b"SomethingElse!!!", "clever", b"QEVM"), "corrupt"),
            (image(MAGIC_SAVE, "other", b"QEVM"), "other-domain"),
            (image(MAGIC_SAVE, "clever", b"XXXX"), "corrupt"),
            (good[..150].to_vec(), "truncated"),
        ];
        for (bytes, tag) in cases {
            match inspect_bytes(&dir, &bytes) {
                Inspection::Unusable(problem) => assert_eq!(problem.tag(), tag, "{problem}"),
                other => panic!("{tag}: {other:?}"),
            }
        }
    }

    #[test]
    fn keep_aside_never_overwrites() {
        let dir = scratch("keep");
        let path = dir.0.join("clever.save");
        fs::write(&path, b"one").unwrap();
        let first = keep_aside(&path, "empty").unwrap();
        fs::write(&path, b"two").unwrap();
        let second = keep_aside(&path, "empty").unwrap();
        assert_ne!(first, second);
        assert!(!path.exists());
        assert_eq!(fs::read(&first).unwrap(), b"one");
        assert_eq!(fs::read(&second).unwrap(), b"two");
        assert!(first
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("clever.save.kept-"));
    }

    #[test]
    fn hold_keeps_a_second_name() {
        let dir = scratch("hold");
        let path = dir.0.join("clever.save");
        fs::write(&path, b"image").unwrap();
        let held = hold(&path).unwrap().unwrap();
        fs::remove_file(&path).unwrap();
        assert_eq!(fs::read(&held).unwrap(), b"image");
        assert!(held.to_string_lossy().ends_with("clever.save.resuming"));
    }

    #[test]
    fn a_hold_is_removed_only_when_the_image_keeps_its_data() {
        let dir = scratch("drop");
        let path = dir.0.join("clever.save");
        fs::write(&path, b"image").unwrap();
        hold(&path).unwrap().unwrap();
        // Same data under both names: the hold goes.
        assert_eq!(drop_hold(&path, "x").unwrap(), None);
        assert!(!hold_path(&path).exists() && path.exists());
        // The image was consumed: the hold is the last copy and is kept aside.
        hold(&path).unwrap().unwrap();
        fs::remove_file(&path).unwrap();
        let kept = drop_hold(&path, "unverified").unwrap().unwrap();
        assert_eq!(fs::read(&kept).unwrap(), b"image");
        assert!(!hold_path(&path).exists());
        // An older hold beside a newer image: kept aside when the new image is held.
        fs::write(hold_path(&path), b"older").unwrap();
        fs::write(&path, b"newer").unwrap();
        let held = hold(&path).unwrap().unwrap();
        assert_eq!(fs::read(&held).unwrap(), b"newer");
        let older: Vec<_> = fs::read_dir(&dir.0)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("-interrupted"))
            .collect();
        assert_eq!(older.len(), 1);
        assert_eq!(fs::read(older[0].path()).unwrap(), b"older");
    }

    /// Found by fuzzing: a whole image read from a file that claimed fewer bytes (it grew
    /// between the size and the read) was called usable with the smaller size.
    #[test]
    fn an_image_that_grew_while_read_is_not_usable() {
        let whole = image(MAGIC_SAVE, "clever", b"QEVM\0\0\0\x03");
        let size = u64::try_from(whole.len()).unwrap();
        assert!(matches!(
            inspect_start(&whole, size, "clever", ""),
            Inspection::Usable { .. }
        ));
        assert_eq!(
            inspect_start(&whole, size - 10, "clever", ""),
            Inspection::Unusable(ImageProblem::ChangedWhileRead {
                size: size - 10,
                read: size
            })
        );
    }

    #[test]
    fn timestamps_are_compact() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(timestamp(t), "20231114T221320Z");
    }
}
