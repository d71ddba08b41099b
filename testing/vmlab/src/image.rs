//! The boot image of a VM node: Debian's kernel and one initramfs holding busybox, drbd-utils,
//! the modules DRBD, virtio, ext4 and device-mapper need, the host's e2fsprogs and util-linux
//! `mount` (what drbdfs runs on a real node) and `dmsetup` (to put failing devices under it),
//! each with the shared libraries `ldd` names.
//!
//! The base image is built once per set of package versions and cached; a run appends its own
//! small archive (our agents, built minutes ago) to it, which the kernel unpacks over the base.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeSet;
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clever_command::{CommandLine, HostCommands, RunCommand};
use clever_deadline::Deadline;

use crate::cpio::Archive;
use crate::error::{io_error, VmLabError};
use crate::packages::{self, Package};

/// The guest's PID 1.
pub const INIT: &str = include_str!("guest/init.sh");

/// Bumped when what goes into the base image changes in a way the inputs below do not show.
const FORMAT: u32 = 2;

/// Kernel modules the guests load, each after its dependencies.
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "crc32c_generic",
    "drbd",
    "ext4",
    // dm-mod brings the `linear` and `error` targets; dm-flakey drops or fails writes on demand.
    "dm_mod",
    "dm_flakey",
];

/// drbd-utils files, from the package (drbd-utils 9 dispatches to the 8.4 tools by itself).
const DRBD_FILES: &[&str] = &[
    "sbin/drbdadm",
    "sbin/drbdsetup",
    "sbin/drbdmeta",
    "lib/drbd/drbdadm-84",
    "lib/drbd/drbdsetup-84",
    "etc/drbd.conf",
    "etc/drbd.d/global_common.conf",
];

/// Host programs copied in, with their libraries: the filesystem tools of a real node.
const HOST_TOOLS: &[&str] = &[
    "mke2fs", "e2fsck", "fsck", "mount", "umount", "blkid", "dmsetup",
];

/// A built base image.
#[derive(Debug, Clone)]
pub struct Image {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub packages: Vec<Package>,
}

/// The base image for the packages apt offers now: from the cache, else built (a ~72 MB
/// download the first time, then 10–20 s of unpacking).
pub fn base_image(cache: &Path, deadline: &Deadline) -> Result<Image, VmLabError> {
    let packages = packages::resolve(deadline)?;
    let mut hasher = DefaultHasher::new();
    FORMAT.hash(&mut hasher);
    INIT.hash(&mut hasher);
    MODULES.hash(&mut hasher);
    DRBD_FILES.hash(&mut hasher);
    HOST_TOOLS.hash(&mut hasher);
    for package in &packages {
        package.file_name.hash(&mut hasher);
    }
    let dir = cache.join(format!("image-{:016x}", hasher.finish()));
    let image = Image {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.cpio"),
        packages: packages.clone(),
    };
    if image.kernel.is_file() && image.initrd.is_file() {
        return Ok(image);
    }
    let build = cache.join(format!("build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&build);
    let result = build_into(&packages, cache, &build, deadline);
    let outcome = result.and_then(|()| {
        let _ = fs::remove_dir_all(build.join("root"));
        // Another test binary may have built the same image meanwhile: either copy is good.
        match fs::rename(&build, &dir) {
            Ok(()) => Ok(()),
            Err(_) if image.initrd.is_file() => Ok(()),
            Err(source) => Err(VmLabError::Io {
                what: "renaming the built image to",
                path: dir.clone(),
                source,
            }),
        }
    });
    let _ = fs::remove_dir_all(&build);
    outcome.map(|()| image)
}

fn build_into(
    packages: &[Package],
    cache: &Path,
    build: &Path,
    deadline: &Deadline,
) -> Result<(), VmLabError> {
    let unpacked = packages::fetch_and_unpack(packages, cache, build, deadline)?;
    let root = &unpacked.root;
    let release = &unpacked.kernel_release;
    let mut archive = Archive::new();
    archive.file("/init", 0o755, INIT.as_bytes().to_vec());
    add_from(&mut archive, root, "bin/busybox", "/bin/busybox")?;
    let mut elves = Vec::new();
    for file in DRBD_FILES {
        let guest = format!("/{file}");
        add_from(&mut archive, root, file, &guest)?;
        elves.push(root.join(file));
    }
    for tool in HOST_TOOLS {
        let host = which(tool)?;
        add_from(
            &mut archive,
            Path::new("/"),
            &host,
            &format!("/usr/local/sbin/{tool}"),
        )?;
        elves.push(PathBuf::from(&host));
    }
    // fsck runs fsck.<type>; mke2fs reads its defaults from here. busybox sh prefers its own
    // applets (its mke2fs makes only ext2) to PATH, but has no mkfs.ext4.
    archive.symlink("/usr/local/sbin/mkfs.ext4", "mke2fs");
    add_from(
        &mut archive,
        Path::new("/"),
        &which("e2fsck")?,
        "/usr/local/sbin/fsck.ext4",
    )?;
    add_from(
        &mut archive,
        Path::new("/"),
        "etc/mke2fs.conf",
        "/etc/mke2fs.conf",
    )?;
    add_libraries(&mut archive, &elves, deadline)?;
    let order = module_order(root, release, deadline)?;
    let mut list = String::new();
    for module in &order {
        add_from(
            &mut archive,
            root,
            &format!("lib/modules/{release}/{module}"),
            &format!("/lib/modules/{release}/{module}"),
        )?;
        list.push_str(&format!("{release}/{module}\n"));
    }
    archive.file("/etc/lab-modules", 0o644, list.into_bytes());
    for dir in [
        "/tmp",
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/var/lock",
        "/usr/bin",
        "/usr/sbin",
    ] {
        archive.directory(dir);
    }
    let initrd = build.join("initrd.cpio");
    fs::write(&initrd, archive.to_bytes()).map_err(io_error("writing", &initrd))?;
    let vmlinuz = root.join(format!("boot/vmlinuz-{release}"));
    let kernel = build.join("vmlinuz");
    fs::copy(&vmlinuz, &kernel).map_err(io_error("copying", &vmlinuz))?;
    Ok(())
}

/// The modules to insert, in order, as paths under `lib/modules/RELEASE/`: what `modprobe
/// --show-depends` prints after `depmod` indexed the unpacked tree (the package ships no index).
pub(crate) fn module_order(
    root: &Path,
    release: &str,
    deadline: &Deadline,
) -> Result<Vec<String>, VmLabError> {
    HostCommands.run_ok(
        &CommandLine::new("depmod").arg("-b").arg(root).arg(release),
        deadline,
    )?;
    let prefix = root.join(format!("lib/modules/{release}/"));
    let prefix = prefix.to_string_lossy().into_owned();
    let mut order: Vec<String> = Vec::new();
    for module in MODULES {
        let output = HostCommands.run_ok(
            &CommandLine::new("modprobe").arg("-d").arg(root).args([
                "-S",
                release,
                "--show-depends",
                module,
            ]),
            deadline,
        )?;
        for line in output.stdout_text().lines() {
            let Some(path) = line.trim().strip_prefix("insmod ") else {
                continue; // `builtin NAME`: nothing to load
            };
            let path = path.trim().replace("/./", "/");
            let relative = path
                .strip_prefix(&prefix)
                .ok_or_else(|| {
                    VmLabError::Packages(format!("modprobe named {path}, outside {prefix}"))
                })?
                .to_owned();
            if !order.contains(&relative) {
                order.push(relative);
            }
        }
    }
    if !order.iter().any(|m| m.ends_with("/drbd.ko")) {
        return Err(VmLabError::Packages(format!(
            "kernel {release} has no drbd module"
        )));
    }
    Ok(order)
}

/// A program on the host, by the usual sbin/bin search.
fn which(program: &str) -> Result<String, VmLabError> {
    ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| format!("{dir}/{program}"))
        .find(|path| Path::new(path).is_file())
        .ok_or_else(|| {
            VmLabError::Packages(format!(
                "{program} is not installed on this host (e2fsprogs, mount, util-linux, dmsetup)"
            ))
        })
}

/// Copies `root/relative` (following links) to `guest` in the archive, keeping the mode.
pub(crate) fn add_from(
    archive: &mut Archive,
    root: &Path,
    relative: &str,
    guest: &str,
) -> Result<(), VmLabError> {
    let path = root.join(relative.trim_start_matches('/'));
    let data = fs::read(&path).map_err(io_error("reading", &path))?;
    let mode = fs::metadata(&path)
        .map_err(io_error("reading", &path))?
        .permissions()
        .mode();
    archive.file(guest, mode, data);
    Ok(())
}

/// Adds the shared libraries (and the loader) `ldd` names for each program, at the paths it
/// names: guest and host are both Debian 12, so the host's copies are the ones they were built
/// against. A static program (busybox) has none.
pub(crate) fn add_libraries(
    archive: &mut Archive,
    programs: &[PathBuf],
    deadline: &Deadline,
) -> Result<(), VmLabError> {
    let mut libraries = BTreeSet::new();
    for program in programs {
        let output = HostCommands.run(&CommandLine::new("ldd").arg(program), deadline)?;
        if !output.status.success() {
            continue; // "not a dynamic executable", or not a program at all (a config file)
        }
        for line in output.stdout_text().lines() {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(path) = path.filter(|p| p.starts_with('/')) {
                libraries.insert(path.to_owned());
            }
        }
    }
    for library in libraries {
        add_from(archive, Path::new("/"), &library, &library)?;
    }
    Ok(())
}

/// An archive of host files for one run (our agents and what they link), appended to the base.
pub fn overlay(files: &[(String, PathBuf)], deadline: &Deadline) -> Result<Vec<u8>, VmLabError> {
    let mut archive = Archive::new();
    let mut programs = Vec::new();
    for (guest, host) in files {
        let text = host.to_string_lossy();
        add_from(&mut archive, Path::new("/"), &text, guest)?;
        programs.push(host.clone());
    }
    add_libraries(&mut archive, &programs, deadline)?;
    Ok(archive.to_bytes())
}
