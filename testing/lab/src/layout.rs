//! Where a lab keeps everything, and how its nodes are named and addressed.
//!
//! All state lives under one lab directory (default [`DEFAULT_DIR`]) and one cgroup; nothing is
//! mounted or configured in the host's own namespaces, so `down` only has to end the cgroup's
//! processes, detach the loop device and remove the directory.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::error::LabError;

/// The lab directory used when none is given.
/// Where `make install` puts the package's programs that are not commands (the vm agent's
/// libvirt-linked build, which the vm agent looks for there).
pub const LIBEXEC_DIR: &str = "/usr/lib/clever-cluster";
pub const DEFAULT_DIR: &str = "/run/clever-lab";
/// Most nodes a lab may have.
pub const MAX_NODES: usize = 4;
/// Fewest nodes: one node is not a cluster.
pub const MIN_NODES: usize = 2;
/// The file whose presence marks a directory as a lab's (so `down` never removes anything else).
pub const MARKER: &str = ".clever-lab";
/// The cluster interconnect, a private /24 on its own bridge (corosync's ring). The bridges live
/// in their own network namespace, so these never clash with the host's routes.
pub const CLUSTER_NET: [u8; 3] = [10, 213, 0];
/// The uplink (public) network, with the gateway and the service address.
pub const UPLINK_NET: [u8; 3] = [10, 213, 1];
/// The interconnect bridge; a node's port on it is named after the node.
pub const CLUSTER_BRIDGE: &str = "br-cluster";
/// The uplink bridge; a node's port on it is `<node>-up`, the gateway's `gw`.
pub const UPLINK_BRIDGE: &str = "br-uplink";
/// A node's interconnect interface.
pub const CLUSTER_IFACE: &str = "eth0";
/// A node's (and the gateway's) uplink interface.
pub const UPLINK_IFACE: &str = "eth1";
/// Mount point of the shared filesystem (the DRBD stand-in) inside the node that mounts it.
pub const SHARED_MOUNT: &str = "/srv/clever";
/// libvirt's fixed managed-save directory, where the vm agent links the domain's image path to
/// its hibernation directory on the shared filesystem.
pub const LIBVIRT_SAVE_DIR: &str = "/var/lib/libvirt/qemu/save";
/// The VM's hibernation directory on the shared filesystem (the generator's default).
pub const HIBERNATE_DIR: &str = "/srv/clever/hibernate";
/// Most VM stacks a lab may run (`--vms`), each on its own loop device.
pub const MAX_VMS: usize = 4;

/// The name of VM stack `index` (0-based), which is also its domain's: `clever`, then
/// `clever2`, `clever3` … (the first keeps the name a one-VM lab has always had).
pub fn vm_name(index: usize) -> String {
    if index == 0 {
        "clever".to_owned()
    } else {
        format!("clever{}", index + 1)
    }
}

/// The DRBD resource (stand-in) of VM stack `index`: `r0`, `r1` …
pub fn drbd_name(index: usize) -> String {
    format!("r{index}")
}

/// Mount point of VM stack `index`'s own shared filesystem: [`SHARED_MOUNT`] for the first.
pub fn shared_mount(index: usize) -> String {
    format!("/srv/{}", vm_name(index))
}

/// VM stack `index`'s hibernation directory, on its own filesystem: [`HIBERNATE_DIR`] for the
/// first.
pub fn hibernate_dir(index: usize) -> String {
    format!("{}/hibernate", shared_mount(index))
}

/// The name of node `index` (0-based): `node1`, `node2` …
pub fn node_name(index: usize) -> String {
    format!("node{}", index + 1)
}

/// The corosync node id of node `index` (0-based).
pub fn node_id(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

fn host(net: [u8; 3], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(net[0], net[1], net[2], host)
}

fn node_host(index: usize) -> u8 {
    u8::try_from(11 + index).unwrap_or(u8::MAX)
}

/// The interconnect address of node `index` (0-based): `10.213.0.11` …
pub fn node_address(index: usize) -> Ipv4Addr {
    host(CLUSTER_NET, node_host(index))
}

/// The uplink address of node `index` (0-based): `10.213.1.11` …
pub fn node_uplink_address(index: usize) -> Ipv4Addr {
    host(UPLINK_NET, node_host(index))
}

/// The gateway's address, which the ping scoring probes.
pub fn gateway_address() -> Ipv4Addr {
    host(UPLINK_NET, 1)
}

/// The floating address of the service (IPaddr2), on the uplink.
pub fn service_address() -> Ipv4Addr {
    vm_address(0)
}

/// The floating address of VM stack `index`: the service address, then the next ones.
pub fn vm_address(index: usize) -> Ipv4Addr {
    host(UPLINK_NET, u8::try_from(100 + index).unwrap_or(u8::MAX))
}

/// A node's port on the uplink bridge.
pub fn uplink_port(node: &str) -> String {
    format!("{node}-up")
}

/// The paths of one lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The lab in `dir`, which must be absolute (nodes see it at the same path).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, LabError> {
        let dir = dir.into();
        if !dir.is_absolute() || dir.parent().is_none() {
            return Err(LabError::Usage(format!(
                "the lab directory must be an absolute path below /, not {}",
                dir.display()
            )));
        }
        let text = dir.to_string_lossy();
        if text.contains([':', ',', '"', '\\']) || text.contains(char::is_whitespace) {
            return Err(LabError::Usage(format!(
                "the lab directory may not contain ':', ',', quotes, backslashes or spaces (it \
                 becomes an overlay mount option): {text}"
            )));
        }
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn marker(&self) -> PathBuf {
        self.dir.join(MARKER)
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.join("lab.json")
    }

    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join("nodes").join(node)
    }

    /// Written by a node's init process once its namespaces are set up: its pid.
    pub fn node_pid_file(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("init.pid")
    }

    /// Written by the fence agent when it powered the node off.
    pub fn node_power_file(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("power-off")
    }

    pub fn holder_dir(&self, role: &str) -> PathBuf {
        self.dir.join(role)
    }

    pub fn holder_pid_file(&self, role: &str) -> PathBuf {
        self.holder_dir(role).join("init.pid")
    }

    /// Why a node or holder failed to set itself up.
    pub fn failure_file(dir: &Path) -> PathBuf {
        dir.join("init.failed")
    }

    /// The file behind the shared loop device.
    pub fn backing_file(&self) -> PathBuf {
        self.backing_file_of(0)
    }

    /// The file behind VM stack `index`'s loop device: `shared.img`, `shared2.img` …
    pub fn backing_file_of(&self, index: usize) -> PathBuf {
        if index == 0 {
            self.dir.join("shared.img")
        } else {
            self.dir.join(format!("shared{}.img", index + 1))
        }
    }

    /// Overlaid on /usr/sbin inside nodes: holds `fence_lab`.
    pub fn sbin_dir(&self) -> PathBuf {
        self.dir.join("sbin")
    }

    /// Overlaid on /usr/lib/ocf/resource.d inside nodes: holds `clever/<agent>`.
    pub fn ocf_dir(&self) -> PathBuf {
        self.dir.join("ocf")
    }

    /// Overlaid on [`LIBEXEC_DIR`] inside VM nodes: holds `vm-libvirt`, the vm agent's
    /// libvirt-linked build, where the installed agent looks for it.
    pub fn libexec_dir(&self) -> PathBuf {
        self.dir.join("libexec")
    }

    /// The test guest's console files.
    pub fn serial_dir(&self) -> PathBuf {
        self.dir.join("serial")
    }

    pub fn serial_file(&self, domain: &str) -> PathBuf {
        self.serial_dir().join(format!("{domain}.log"))
    }

    /// Every fencing action, one line each.
    pub fn fence_log(&self) -> PathBuf {
        self.dir.join("fence.log")
    }

    /// The cgroup holding every process of this lab, below the cgroup2 mount.
    pub fn cgroup_root(&self, cgroup2_mount: &Path) -> PathBuf {
        let flat: String = self
            .dir
            .to_string_lossy()
            .trim_matches('/')
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        cgroup2_mount.join("clever-lab").join(flat)
    }
}

/// Where the unified (v2) cgroup hierarchy is mounted: `/sys/fs/cgroup` on a pure v2 host,
/// `/sys/fs/cgroup/unified` on a hybrid one. Its `cgroup.kill` ends a node in one write.
pub fn cgroup2_mount() -> Result<PathBuf, LabError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(path).map_err(LabError::io("reading", path))?;
    cgroup2_mount_in(&text).ok_or_else(|| {
        LabError::Prerequisite("no cgroup2 filesystem is mounted (needed for cgroup.kill)".into())
    })
}

/// The first cgroup2 mount point in a `/proc/self/mountinfo` text.
pub fn cgroup2_mount_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mountinfo(mount_point)))
    })
}

fn unescape_mountinfo(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert_eq!(node_name(0), "node1");
        assert_eq!(node_id(3), 4);
        assert_eq!(node_address(1).to_string(), "10.213.0.12");
        assert_eq!(node_uplink_address(0).to_string(), "10.213.1.11");
        assert_eq!(gateway_address().to_string(), "10.213.1.1");
    }

    #[test]
    fn the_first_vm_stack_keeps_the_one_vm_names() {
        assert_eq!(vm_name(0), "clever");
        assert_eq!(shared_mount(0), SHARED_MOUNT);
        assert_eq!(hibernate_dir(0), HIBERNATE_DIR);
        assert_eq!(vm_address(0), service_address());
        assert_eq!(vm_name(2), "clever3");
        assert_eq!(drbd_name(2), "r2");
        assert_eq!(hibernate_dir(1), "/srv/clever2/hibernate");
        assert_eq!(vm_address(2).to_string(), "10.213.1.102");
        let layout = Layout::new("/run/x").unwrap();
        assert_eq!(layout.backing_file_of(0), layout.backing_file());
        assert_eq!(
            layout.backing_file_of(1),
            PathBuf::from("/run/x/shared2.img")
        );
    }

    #[test]
    fn relative_dirs_are_refused() {
        assert!(Layout::new("lab").is_err());
        assert!(Layout::new("/").is_err());
        assert!(Layout::new("/run/x").is_ok());
    }

    #[test]
    fn cgroup_root_is_flat() {
        let layout = Layout::new("/run/clever-lab").unwrap();
        assert_eq!(
            layout.cgroup_root(Path::new("/sys/fs/cgroup")),
            PathBuf::from("/sys/fs/cgroup/clever-lab/run-clever-lab")
        );
    }

    #[test]
    fn finds_the_cgroup2_mount_on_a_hybrid_host() {
        let text = "35 25 0:30 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n\
                    44 25 0:39 / /sys/fs/cgroup/unified rw,relatime shared:18 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount_in(text),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount_in("1 2 0:1 / / rw - ext4 /dev/x rw\n"), None);
    }
}
