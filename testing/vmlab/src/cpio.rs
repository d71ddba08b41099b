//! The kernel's initramfs format: cpio "newc" (SVR4, no CRC), as `Documentation/driver-api/
//! early-userspace/buffer-format.rst` describes it.
//!
//! Written here rather than by the `cpio` tool: the archive is built from a list the code
//! computes (files from several packages, the host's libraries, our agents), the format is ten
//! lines of fixed-width headers, and archives concatenated into one initrd are unpacked in order
//! by the kernel, which is how a run adds its own files to a cached base image.

use std::collections::BTreeMap;

/// Files, directories and links to put in an archive, by absolute path in the guest.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Directory,
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file (and its parent directories); a later add of the same path wins.
    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        self.parents(path);
        self.entries
            .insert(relative(path), Entry::File { mode, data });
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.entries.insert(
            relative(path),
            Entry::Symlink {
                target: target.to_owned(),
            },
        );
    }

    pub fn directory(&mut self, path: &str) {
        self.parents(path);
        self.entries
            .entry(relative(path))
            .or_insert(Entry::Directory);
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&relative(path))
    }

    /// Parents sort before their contents (a path is a prefix of its children's), and the
    /// kernel needs a directory to exist before it creates anything in it.
    fn parents(&mut self, path: &str) {
        let relative = relative(path);
        let mut prefix = String::new();
        let components: Vec<&str> = relative.split('/').collect();
        if let Some((_, parents)) = components.split_last() {
            for component in parents {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(component);
                self.entries
                    .entry(prefix.clone())
                    .or_insert(Entry::Directory);
            }
        }
    }

    /// The archive in newc format, with its trailer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (inode, (name, entry)) in (1u32..).zip(&self.entries) {
            let (mode, data): (u32, &[u8]) = match entry {
                Entry::Directory => (S_IFDIR | 0o755, &[]),
                Entry::File { mode, data } => (S_IFREG | (mode & 0o7777), data),
                Entry::Symlink { target } => (S_IFLNK | 0o777, target.as_bytes()),
            };
            let nlink = if matches!(entry, Entry::Directory) {
                2
            } else {
                1
            };
            write_entry(&mut out, inode, mode, nlink, name, data);
        }
        write_entry(&mut out, 0, 0, 1, "TRAILER!!!", &[]);
        out
    }
}

fn relative(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

fn write_entry(out: &mut Vec<u8>, inode: u32, mode: u32, nlink: u32, name: &str, data: &[u8]) {
    // The format has 32-bit sizes; nothing in an initramfs of ours comes near.
    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let name_size = u32::try_from(name.len().saturating_add(1)).unwrap_or(u32::MAX);
    let fields = [inode, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, name_size, 0];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(out);
    out.extend_from_slice(data);
    pad(out);
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_entries_are_aligned() {
        let mut archive = Archive::new();
        archive.file("/usr/bin/tool", 0o755, b"hello".to_vec());
        archive.symlink("/bin/sh", "busybox");
        let bytes = archive.to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let order: Vec<usize> = ["bin\0", "bin/sh\0", "usr\0", "usr/bin\0", "usr/bin/tool\0"]
            .iter()
            .map(|name| text.find(name).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!"));
        assert_eq!(bytes.len() % 4, 0);
        // Each header starts on a 4-byte boundary with the newc magic.
        let magics: Vec<usize> = text.match_indices("070701").map(|(i, _)| i).collect();
        assert_eq!(magics.len(), 6);
        assert!(magics.iter().all(|i| i % 4 == 0));
        // The file's header: mode 100755, size 5.
        let tool = text.find("usr/bin/tool\0").unwrap() - 110;
        assert_eq!(&text[tool + 14..tool + 22], "000081ed");
        assert_eq!(&text[tool + 54..tool + 62], "00000005");
    }

    #[test]
    fn a_later_add_replaces_an_earlier_one() {
        let mut archive = Archive::new();
        archive.file("/etc/a", 0o644, b"one".to_vec());
        archive.file("/etc/a", 0o600, b"two".to_vec());
        archive.directory("/etc");
        let text = String::from_utf8_lossy(&archive.to_bytes()).into_owned();
        assert!(text.contains("two") && !text.contains("one"));
        assert!(archive.contains("/etc/a") && archive.contains("etc"));
    }
}
