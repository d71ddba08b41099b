//! The boot image of a cluster VM node: a Debian 12 root filesystem (`debootstrap
//! --variant=minbase` with systemd, Corosync, Pacemaker, crmsh, pcs, drbd-utils, resource-agents,
//! libvirt and qemu: what our package depends on and an admin installs beside it) made into an
//! ext4 image with `mke2fs -d` (no loop mount), and a small initramfs (busybox and Debian's
//! kernel modules) that mounts it. The busybox nodes of [`crate::image`] cannot run the cluster
//! stack.
//!
//! Both are built once per package set and cached; each VM boots a copy of the root image, and a
//! run's own files (the lab's control channel as a systemd unit, our package, the lab's fence
//! agent) travel in an archive appended to the initramfs, which copies them onto the root before
//! handing over to systemd.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use clever_command::{CommandLine, HostCommands, RunCommand};
use clever_deadline::Deadline;

use crate::cpio::Archive;
use crate::error::{io_error, VmLabError};
use crate::image::{add_from, module_order};
use crate::packages;

/// The initramfs's PID 1: modules, mount `/dev/vdb`, switch_root.
pub const STAGE1: &str = include_str!("guest/stage1.sh");

/// What the first stage hands over to (`/usr/sbin/clever-vm-init`): names the node, then
/// `exec`s systemd as PID 1.
pub const NODE_INIT: &str = include_str!("guest/node-init.sh");

/// The lab's control channel on the node (`/usr/local/sbin/clever-lab-control`).
pub const NODE_CONTROL: &str = include_str!("guest/node-control.sh");

/// Its systemd unit, started early in the boot (`sysinit.target`), so the host can drive the
/// node while systemd brings up the rest.
pub const NODE_CONTROL_UNIT: &str = include_str!("guest/clever-lab-control.service");

/// Bumped when the recipe changes in a way the inputs below do not show.
const FORMAT: u32 = 3;

/// Debian's mirror; the same the host's apt uses on CI machines.
const MIRROR: &str = "http://deb.debian.org/debian";
const SUITE: &str = "bookworm";

/// Packages on top of minbase, with their dependencies but not their recommendations: systemd
/// as init (and D-Bus, which libvirtd and Pacemaker's systemd resources talk through), the
/// cluster stack with crmsh and pcs (the generator's two scripts are loaded with them), DRBD's tools and OCF agents (ocf:linbit:drbd and the
/// crm-fence-peer.9.sh handlers are in drbd-utils), libvirt and qemu for the VM (our package's
/// dependencies, and its recommendations an admin installs: `apt install` of our package then
/// finds everything on the node), what our agents and the stock ones call.
pub const PACKAGES: &[&str] = &[
    "systemd-sysv",
    "dbus",
    // debootstrap does not resolve virtual packages: polkitd (libvirt-daemon-system) depends on
    // default-logind, which this provides.
    "libpam-systemd",
    "pacemaker",
    "pacemaker-cli-utils",
    "corosync",
    "drbd-utils",
    "resource-agents",
    "crmsh",
    "pcs",
    // Provides the virtual python3-cffi-backend-api-{min,max} pcs's python3-cryptography needs.
    "python3-cffi-backend",
    "libvirt-daemon-system",
    "libvirt-clients",
    "qemu-system-x86",
    "iproute2",
    "kmod",
    "e2fsprogs",
    "procps",
    "psmisc",
];

/// What the root image is keyed by: these packages' `.deb` names carry their versions.
const KEY_PACKAGES: &[&str] = &[
    "pacemaker",
    "corosync",
    "drbd-utils",
    "resource-agents",
    "systemd",
    "crmsh",
    "pcs",
    "libvirt-daemon-system",
    "qemu-system-x86",
];

/// Units installed enabled that must not start at boot: Corosync and Pacemaker start once the
/// test has configured them (`provision/cluster.sh start` enables them then, as on Vagrant), and
/// libvirtd is a cluster resource (pacemaker-cib/README.md: only Pacemaker starts it, so
/// neither at boot nor by socket activation). The rest costs a TCG node's only CPU for nothing
/// (timers, the default NAT network's dnsmasq, the getty on the console, pcs's daemons: the
/// generated pcs script works on a file and pushes it with cibadmin, without pcsd).
const DISABLED_UNITS: &[&str] = &[
    "corosync.service",
    "pacemaker.service",
    "libvirtd.service",
    "libvirtd.socket",
    "libvirtd-ro.socket",
    "libvirtd-admin.socket",
    "libvirt-guests.service",
    "virtlockd.socket",
    "virtlockd-admin.socket",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "logrotate.timer",
    "man-db.timer",
    "pcsd.service",
    "pcsd-ruby.service",
];

/// Units masked: the consoles' gettys (the serial console is the host's log, not a login).
const MASKED_UNITS: &[&str] = &["serial-getty@ttyS0.service", "getty@tty1.service"];

/// A built cluster-node image.
#[derive(Debug, Clone)]
pub struct RootImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The ext4 root filesystem; VMs boot copies of it.
    pub root: PathBuf,
}

/// The cluster-node image for the packages apt offers now: from the cache, else built (a
/// debootstrap of ~200 packages, 2.5–3 min; the initramfs 10–20 s). The two are cached apart,
/// so a change to the first stage does not cost a debootstrap; our init travels with each run
/// ([`overlay`]), so changing it costs nothing.
pub fn root_image(cache: &Path, deadline: &Deadline) -> Result<RootImage, VmLabError> {
    let kernel_packages = packages::resolve(deadline)?;
    let mut hasher = DefaultHasher::new();
    FORMAT.hash(&mut hasher);
    STAGE1.hash(&mut hasher);
    for package in &kernel_packages {
        package.file_name.hash(&mut hasher);
    }
    let boot = cache.join(format!("stage1-{:016x}", hasher.finish()));
    let mut hasher = DefaultHasher::new();
    FORMAT.hash(&mut hasher);
    PACKAGES.hash(&mut hasher);
    for name in KEY_PACKAGES {
        packages::package(name, deadline)?
            .file_name
            .hash(&mut hasher);
    }
    let root = cache.join(format!("rootfs-{:016x}.ext4", hasher.finish()));
    let image = RootImage {
        kernel: boot.join("vmlinuz"),
        initrd: boot.join("initrd.cpio"),
        root,
    };
    if !(image.kernel.is_file() && image.initrd.is_file()) {
        cached_build(cache, "stage1", &boot, &image.initrd, |build| {
            build_stage1(&kernel_packages, cache, build, deadline)
        })?;
    }
    if !image.root.is_file() {
        let dir = image.root.with_extension("d");
        let built = dir.join("root.ext4");
        cached_build(cache, "rootfs", &dir, &built, |build| {
            build_root(build, deadline)
        })?;
        fs::rename(&built, &image.root)
            .map_err(io_error("moving the root image to", &image.root))?;
        let _ = fs::remove_dir_all(&dir);
    }
    Ok(image)
}

/// Builds into a fresh directory, then renames it to `dir` (another test binary may have built
/// the same meanwhile: either copy is good, which `witness` tells).
fn cached_build(
    cache: &Path,
    what: &str,
    dir: &Path,
    witness: &Path,
    build: impl FnOnce(&Path) -> Result<(), VmLabError>,
) -> Result<(), VmLabError> {
    let scratch = cache.join(format!("{what}-build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).map_err(io_error("creating", &scratch))?;
    let outcome = build(&scratch).and_then(|()| {
        let _ = fs::remove_dir_all(scratch.join("root"));
        let _ = fs::remove_dir_all(scratch.join("tree"));
        match fs::rename(&scratch, dir) {
            Ok(()) => Ok(()),
            Err(_) if witness.is_file() => Ok(()),
            Err(source) => Err(VmLabError::Io {
                what: "renaming the built image to",
                path: dir.to_owned(),
                source,
            }),
        }
    });
    let _ = fs::remove_dir_all(&scratch);
    outcome
}

/// The initramfs: busybox and the kernel's modules, from the same packages as the busybox
/// nodes (unpacked under build/root).
fn build_stage1(
    kernel_packages: &[packages::Package],
    cache: &Path,
    build: &Path,
    deadline: &Deadline,
) -> Result<(), VmLabError> {
    let unpacked = packages::fetch_and_unpack(kernel_packages, cache, build, deadline)?;
    let root = &unpacked.root;
    let release = &unpacked.kernel_release;
    let mut archive = Archive::new();
    archive.file("/init", 0o755, STAGE1.as_bytes().to_vec());
    add_from(&mut archive, root, "bin/busybox", "/bin/busybox")?;
    let mut list = String::new();
    for module in module_order(root, release, deadline)? {
        add_from(
            &mut archive,
            root,
            &format!("lib/modules/{release}/{module}"),
            &format!("/lib/modules/{release}/{module}"),
        )?;
        list.push_str(&format!("{release}/{module}\n"));
    }
    archive.file("/etc/lab-modules", 0o644, list.into_bytes());
    let initrd = build.join("initrd.cpio");
    fs::write(&initrd, archive.to_bytes()).map_err(io_error("writing", &initrd))?;
    let vmlinuz = root.join(format!("boot/vmlinuz-{release}"));
    let kernel = build.join("vmlinuz");
    fs::copy(&vmlinuz, &kernel).map_err(io_error("copying", &vmlinuz))?;
    Ok(())
}

/// The root filesystem: debootstrap, then `mke2fs -d` (no loop mount).
fn build_root(build: &Path, deadline: &Deadline) -> Result<(), VmLabError> {
    let tree = build.join("tree");
    let debootstrap = HostCommands.run_ok(
        &CommandLine::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg(SUITE)
            .arg(&tree)
            .arg(MIRROR),
        deadline,
    );
    if let Err(error) = debootstrap {
        // debootstrap says why in its log only, which the failed build's directory takes along.
        let log = fs::read_to_string(tree.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        return Err(VmLabError::Packages(format!(
            "{error}; the end of debootstrap.log:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    // `systemctl` in a root it does not run (`--root`): it only edits the links.
    // Only what is installed: some come with packages a dependency change may drop.
    let installed: Vec<&str> = DISABLED_UNITS
        .iter()
        .copied()
        .filter(|unit| tree.join("lib/systemd/system").join(unit).exists())
        .collect();
    HostCommands.run_ok(
        &CommandLine::new("systemctl")
            .arg(format!("--root={}", tree.display()))
            .arg("disable")
            .args(installed),
        deadline,
    )?;
    HostCommands.run_ok(
        &CommandLine::new("systemctl")
            .arg(format!("--root={}", tree.display()))
            .arg("mask")
            .args(MASKED_UNITS.iter().copied()),
        deadline,
    )?;
    // libvirt's default NAT network would start dnsmasq with libvirtd; the lab has no use for it.
    let _ = fs::remove_file(tree.join("etc/libvirt/qemu/networks/autostart/default.xml"));
    // No apt caches in the image (apt reads only dpkg's status to install a local package).
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(entries) = fs::read_dir(tree.join(dir)) {
            for entry in entries.filter_map(Result::ok) {
                if entry.path().is_file() {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    // Room for logs, the CIB's history and our agents: the tree's size plus 256 MiB.
    let used = HostCommands.run_ok(
        &CommandLine::new("du").args(["-s", "-m", "-x"]).arg(&tree),
        deadline,
    )?;
    let mib: u64 = used
        .stdout_text()
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| VmLabError::Packages(format!("du printed {:?}", used.stdout_text())))?;
    let image = build.join("root.ext4");
    HostCommands.run_ok(
        &CommandLine::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-L", "clever-root", "-d"])
            .arg(&tree)
            .arg(&image)
            .arg(format!("{}M", mib.saturating_add(256))),
        deadline,
    )?;
    Ok(())
}

/// An archive of host files for one run (our init, the control channel's unit, and the given
/// host files by their guest paths), placed under `/overlay`: the first stage copies it onto the
/// root. The root has the same C library as the host.
pub fn overlay(files: &[(String, PathBuf)]) -> Result<Vec<u8>, VmLabError> {
    let mut archive = Archive::new();
    // /sbin is a link to usr/sbin (merged /usr): copying a directory over it would fail.
    archive.file(
        "/overlay/usr/sbin/clever-vm-init",
        0o755,
        NODE_INIT.as_bytes().to_vec(),
    );
    archive.file(
        "/overlay/usr/local/sbin/clever-lab-control",
        0o755,
        NODE_CONTROL.as_bytes().to_vec(),
    );
    archive.file(
        "/overlay/etc/systemd/system/clever-lab-control.service",
        0o644,
        NODE_CONTROL_UNIT.as_bytes().to_vec(),
    );
    // The NICs keep the kernel's names (eth0 the private link, eth1 replication, eth2 the
    // gateway) should udev be in the image: Debian's documented switch-off of predictable names.
    archive.symlink("/overlay/etc/systemd/network/99-default.link", "/dev/null");
    // What `systemctl enable` would do.
    archive.symlink(
        "/overlay/etc/systemd/system/sysinit.target.wants/clever-lab-control.service",
        "/etc/systemd/system/clever-lab-control.service",
    );
    for (guest, host) in files {
        let text = host.to_string_lossy();
        add_from(
            &mut archive,
            Path::new("/"),
            &text,
            &format!("/overlay/{}", guest.trim_start_matches('/')),
        )?;
    }
    Ok(archive.to_bytes())
}
