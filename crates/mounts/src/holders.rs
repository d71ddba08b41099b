//! Which processes keep a mount busy: a scan of `/proc` like `fuser -m`, without the process.

use std::fs;
use std::path::{Path, PathBuf};

/// How a process holds the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HoldKind {
    Cwd,
    Root,
    Executable,
    OpenFile,
    /// A memory map: a qemu with its disk image mapped, a program run from the mount.
    MemoryMap,
}

/// A process that holds a file under the mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// The command name from `/proc/<pid>/comm`, for the log.
    pub command: String,
    pub how: HoldKind,
    pub path: PathBuf,
}

/// Every process under `proc_root` (normally `/proc`) holding something below `mount_point`,
/// except PID 1 and `own_pid`: an agent must never signal init or itself. A process that vanishes
/// during the scan is skipped; one we may not inspect is skipped too (we run as root).
pub fn find_holders(proc_root: &Path, mount_point: &Path, own_pid: u32) -> Vec<Holder> {
    let Ok(entries) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut holders = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == 1 || pid == own_pid {
            continue;
        }
        let dir = entry.path();
        if let Some((how, path)) = holding(&dir, mount_point) {
            let command = fs::read_to_string(dir.join("comm"))
                .map(|c| c.trim().to_owned())
                .unwrap_or_default();
            holders.push(Holder {
                pid,
                command,
                how,
                path,
            });
        }
    }
    holders.sort_by_key(|h| h.pid);
    holders
}

/// The first way the process in `dir` holds the mount, if any.
fn holding(dir: &Path, mount_point: &Path) -> Option<(HoldKind, PathBuf)> {
    let under = |path: &Path| path.starts_with(mount_point);
    for (link, how) in [
        ("cwd", HoldKind::Cwd),
        ("root", HoldKind::Root),
        ("exe", HoldKind::Executable),
    ] {
        if let Ok(target) = fs::read_link(dir.join(link)) {
            if under(&target) {
                return Some((how, target));
            }
        }
    }
    if let Ok(fds) = fs::read_dir(dir.join("fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                if under(&target) {
                    return Some((HoldKind::OpenFile, target));
                }
            }
        }
    }
    let maps = fs::read_to_string(dir.join("maps")).ok()?;
    maps.lines()
        .filter_map(map_path)
        .find(|path| under(path))
        .map(|path| (HoldKind::MemoryMap, path))
}

/// The path of a `/proc/<pid>/maps` line (the sixth field, which may contain spaces).
fn map_path(line: &str) -> Option<PathBuf> {
    let mut rest = line;
    for _ in 0..5 {
        let (_, tail) = rest.trim_start().split_once(' ')?;
        rest = tail;
    }
    let path = rest.trim_start();
    path.starts_with('/')
        .then(|| PathBuf::from(path.strip_suffix(" (deleted)").unwrap_or(path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Tree(PathBuf);

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn process(root: &Path, pid: u32, comm: &str) -> PathBuf {
        let dir = root.join(pid.to_string());
        fs::create_dir_all(dir.join("fd")).unwrap();
        fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        symlink("/", dir.join("cwd")).unwrap();
        symlink("/", dir.join("root")).unwrap();
        symlink("/usr/bin/true", dir.join("exe")).unwrap();
        fs::write(dir.join("maps"), "").unwrap();
        dir
    }

    #[test]
    fn finds_each_kind_of_holder_and_spares_init_and_self() {
        let root = std::env::temp_dir().join(format!("clever-holders-{}", std::process::id()));
        let _cleanup = Tree(root.clone());
        let mount = Path::new("/srv/vm");

        let cwd = process(&root, 10, "bash");
        fs::remove_file(cwd.join("cwd")).unwrap();
        symlink("/srv/vm/images", cwd.join("cwd")).unwrap();
        let open = process(&root, 11, "tail");
        symlink("/srv/vm/log", open.join("fd/3")).unwrap();
        let mapped = process(&root, 12, "qemu-system-x86");
        fs::write(
            mapped.join("maps"),
            "7f00-7f10 r--s 00000000 07:00 12 /srv/vm/images/clever vm.img (deleted)\n",
        )
        .unwrap();
        process(&root, 13, "unrelated");
        let init = process(&root, 1, "init");
        fs::remove_file(init.join("cwd")).unwrap();
        symlink("/srv/vm", init.join("cwd")).unwrap();
        let me = process(&root, 99, "agent");
        fs::remove_file(me.join("cwd")).unwrap();
        symlink("/srv/vm", me.join("cwd")).unwrap();
        // A similar prefix is not under the mount.
        let neighbour = process(&root, 14, "other");
        symlink("/srv/vm2/file", neighbour.join("fd/0")).unwrap();
        fs::create_dir_all(root.join("self")).unwrap();

        let holders = find_holders(&root, mount, 99);
        let seen: Vec<_> = holders
            .iter()
            .map(|h| (h.pid, h.how, h.command.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (10, HoldKind::Cwd, "bash"),
                (11, HoldKind::OpenFile, "tail"),
                (12, HoldKind::MemoryMap, "qemu-system-x86"),
            ]
        );
        assert_eq!(holders[2].path, Path::new("/srv/vm/images/clever vm.img"));
    }

    #[test]
    fn map_lines_without_paths_are_ignored() {
        assert_eq!(map_path("7f00-7f10 rw-p 00000000 00:00 0"), None);
        assert_eq!(map_path("7f00-7f10 rw-p 00000000 00:00 0   [heap]"), None);
        assert_eq!(map_path("garbage"), None);
        assert_eq!(
            map_path("7f00-7f10 r-xp 00000000 fd:01 42   /usr/lib/libc.so.6"),
            Some(PathBuf::from("/usr/lib/libc.so.6"))
        );
    }

    #[test]
    fn finds_this_process_in_the_real_proc() {
        let holders = find_holders(Path::new("/proc"), Path::new("/"), 0);
        assert!(holders.iter().any(|h| h.pid == std::process::id()));
    }
}
