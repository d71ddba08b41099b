//! `/proc/<pid>/mountinfo` (proc(5)): one mount per line, paths octal-escaped.

use std::path::{Path, PathBuf};

/// A mountinfo line that does not have the kernel's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mountinfo line {line}: {reason}")]
pub struct MountinfoError {
    pub line: usize,
    pub reason: &'static str,
}

/// One mount, as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u32,
    pub parent_id: u32,
    /// `major:minor` of the device holding the filesystem (st_dev of files on it).
    pub major: u32,
    pub minor: u32,
    /// The directory of the filesystem mounted here (not `/` for bind mounts of a subtree).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub mount_options: String,
    pub fs_type: String,
    /// What was mounted: a device path, or e.g. `tmpfs`, `none`.
    pub source: String,
    pub super_options: String,
}

impl MountEntry {
    /// Whether `option` (e.g. `ro`) is among the per-mount or superblock options.
    pub fn has_option(&self, option: &str) -> bool {
        self.mount_options
            .split(',')
            .chain(self.super_options.split(','))
            .any(|o| o == option)
    }

    pub fn is_at(&self, directory: &Path) -> bool {
        self.mount_point == directory
    }
}

/// Parses a whole mountinfo file; any malformed line is an error (a truncated read must not
/// look like "not mounted").
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>, MountinfoError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            parse_line(line).map_err(|reason| MountinfoError {
                line: index + 1,
                reason,
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Result<MountEntry, &'static str> {
    let mut fields = line.split(' ');
    let mut next = |what: &'static str| fields.next().filter(|f| !f.is_empty()).ok_or(what);
    let mount_id = next("no mount id")?.parse().map_err(|_| "bad mount id")?;
    let parent_id = next("no parent id")?.parse().map_err(|_| "bad parent id")?;
    let (major, minor) = next("no device")?.split_once(':').ok_or("bad device")?;
    let major = major.parse().map_err(|_| "bad major")?;
    let minor = minor.parse().map_err(|_| "bad minor")?;
    let root = unescape(next("no root")?);
    let mount_point = unescape(next("no mount point")?);
    let mount_options = next("no mount options")?.to_owned();
    // Optional fields (shared:N, master:N …) run up to a lone "-".
    loop {
        if next("no separator")? == "-" {
            break;
        }
    }
    let fs_type = next("no filesystem type")?.to_owned();
    let source = unescape(next("no source")?).to_string_lossy().into_owned();
    let super_options = next("no superblock options")?.to_owned();
    Ok(MountEntry {
        mount_id,
        parent_id,
        major,
        minor,
        root,
        mount_point,
        mount_options,
        fs_type,
        source,
        super_options,
    })
}

/// Undoes the kernel's `\ooo` escaping of space, tab, newline and backslash.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0_u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
36 22 0:31 / /run rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs tmpfs rw,size=1627492k,mode=755
97 22 7:0 / /srv/clever\\040vm rw,noatime shared:54 master:3 - ext4 /dev/loop0 rw
98 22 7:0 /images /var/lib/libvirt/qemu/save rw,noatime - ext4 /dev/loop0 ro
";

    #[test]
    fn parses_fields_optional_tags_and_escapes() {
        let mounts = parse_mountinfo(SAMPLE).unwrap();
        assert_eq!(mounts.len(), 4);
        let vm = &mounts[2];
        assert_eq!(vm.mount_point, Path::new("/srv/clever vm"));
        assert_eq!((vm.major, vm.minor), (7, 0));
        assert_eq!(vm.fs_type, "ext4");
        assert_eq!(vm.source, "/dev/loop0");
        assert!(vm.has_option("noatime"));
        assert!(!vm.has_option("ro"));
        let bind = &mounts[3];
        assert_eq!(bind.root, Path::new("/images"));
        assert!(bind.has_option("ro"), "superblock options count too");
        assert_eq!(mounts[1].source, "tmpfs");
    }

    #[test]
    fn truncated_or_garbled_lines_are_errors() {
        for bad in [
            "22 1 254:1 / / rw",
            "x 1 254:1 / / rw - ext4 /dev/vda1 rw",
            "22 1 2541 / / rw - ext4 /dev/vda1 rw",
            "22 1 254:1 / / rw shared:1 ext4 /dev/vda1 rw",
            "22 1 254:1 / / rw -",
        ] {
            let err = parse_mountinfo(bad).unwrap_err();
            assert_eq!(err.line, 1, "{bad}");
        }
    }

    #[test]
    fn odd_escapes_do_not_panic() {
        assert_eq!(unescape("a\\"), PathBuf::from("a\\"));
        assert_eq!(unescape("a\\9"), PathBuf::from("a\\9"));
        assert_eq!(unescape("\\134x"), PathBuf::from("\\x"));
        assert_eq!(unescape("\\777"), PathBuf::from("?"));
    }

    #[test]
    fn reads_the_real_file() {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mounts = parse_mountinfo(&text).unwrap();
        assert!(mounts.iter().any(|m| m.mount_point == Path::new("/")));
    }
}
