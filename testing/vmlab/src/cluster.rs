//! Two cluster VM nodes: the Debian root filesystem of [`crate::rootfs`] (systemd, Corosync,
//! Pacemaker, crmsh, drbd-utils, libvirt, qemu) on `/dev/vdb`, DRBD's backing disk on
//! `/dev/vda`, the same private link and control channel as [`crate::VmLab`] (here a systemd
//! unit). Our package is installed, and the cluster configured and started, by the test through
//! the control channel, with the Vagrant lab's scripts ([`crate::PROVISION_CLUSTER`]).
//!
//! Each node has three NICs, so that each failure can be caused alone: `eth0` the private link
//! (Corosync), `eth1` DRBD's replication link ([`REPLICATION_NIC`], [`REPLICATION_ADDRESSES`]),
//! `eth2` a gateway to ping ([`GATEWAY_NIC`], qemu's user network whose virtual router
//! [`USER_NET_GATEWAY`] answers). And a fence device ([`crate::lab_fence`]) that kills a
//! node's qemu.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use clever_deadline::Deadline;

use crate::error::{io_error, VmLabError};
use crate::lab::{NodeSet, DEFAULT_CACHE};
use crate::lab_fence::{FenceEvent, FenceService, FENCE_PORT};
use crate::rootfs::{self, RootImage};
use crate::vm::{Nic, VmSpec, USER_NET_GATEWAY};

/// The NIC id of DRBD's replication link ([`NodeSet::set_nic_link`]).
pub const REPLICATION_NIC: &str = "repl";

/// Each node's address on the replication link (`eth1`), in [`NODES`] order.
pub const REPLICATION_ADDRESSES: [&str; 2] = ["10.98.0.1", "10.98.0.2"];

/// The NIC id of the gateway link ([`crate::Vm::set_nic_link`] on one node: its gateway is lost).
pub const GATEWAY_NIC: &str = "gw";

/// A node's own address on the gateway link (`eth2`); every node's user network is its own.
const GATEWAY_LINK_ADDRESS: &str = "10.0.2.15/24";

/// What to put in the cluster nodes besides the root image.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub cache: PathBuf,
    /// Host files to copy onto each node's root, by guest path (our agents).
    pub files: Vec<(String, PathBuf)>,
    /// DRBD's backing disk (`/dev/vda`).
    pub disk_mib: u64,
    pub memory_mib: u32,
    /// Building the image (first run: a debootstrap) and booting both nodes.
    pub boot_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            cache: PathBuf::from(DEFAULT_CACHE),
            files: Vec::new(),
            disk_mib: 64,
            memory_mib: 512,
            boot_timeout: Duration::from_secs(1200),
        }
    }
}

/// Two booted cluster nodes; dropping the lab kills them and removes its run directory (with
/// the nodes' root disks).
#[derive(Debug)]
pub struct ClusterLab {
    // Dropped first: the nodes' qemu processes end, so the fence threads see their ports close.
    nodes: NodeSet,
    fence: FenceService,
    image: RootImage,
}

impl ClusterLab {
    pub fn boot(config: &ClusterConfig) -> Result<Self, VmLabError> {
        let deadline = Deadline::after(config.boot_timeout);
        fs::create_dir_all(&config.cache).map_err(io_error("creating", &config.cache))?;
        let image = rootfs::root_image(&config.cache, &deadline)?;
        let mut initrd = fs::read(&image.initrd).map_err(io_error("reading", &image.initrd))?;
        initrd.extend(rootfs::overlay(&config.files)?);
        let nodes = NodeSet::boot(
            &image.kernel,
            &initrd,
            &deadline,
            |dir, index, name, address| {
                let spec = VmSpec {
                    name: name.to_owned(),
                    address: format!("{address}/24"),
                    mac: format!("52:54:00:99:00:{:02x}", index + 1),
                    disk_mib: config.disk_mib,
                    // No scratch disk: the root image must be /dev/vdb.
                    scratch_mib: 0,
                    memory_mib: config.memory_mib,
                    extra_nics: vec![
                        Nic::PeerLink {
                            id: REPLICATION_NIC.to_owned(),
                            mac: format!("52:54:00:98:00:{:02x}", index + 1),
                        },
                        Nic::Gateway {
                            id: GATEWAY_NIC.to_owned(),
                            mac: format!("52:54:00:97:00:{:02x}", index + 1),
                        },
                    ],
                    extra_ports: vec![FENCE_PORT.to_owned()],
                };
                let root = dir.join(format!("{name}.root.ext4"));
                fs::copy(&image.root, &root)
                    .map_err(io_error("copying the root image to", &root))?;
                Ok((spec, vec![root]))
            },
        )?;
        for (vm, replication) in nodes.nodes().iter().zip(REPLICATION_ADDRESSES) {
            let script = format!(
                "ip addr add {replication}/24 dev eth1 && ip link set eth1 up \
                 && ip addr add {GATEWAY_LINK_ADDRESS} dev eth2 && ip link set eth2 up"
            );
            let output = vm.run(&script, Duration::from_secs(30))?;
            if !output.success() {
                return Err(VmLabError::Guest {
                    node: vm.name().to_owned(),
                    problem: format!("configuring eth1 and eth2: {}", output.stderr.trim()),
                    console: vm.console_tail(),
                });
            }
        }
        let fence = FenceService::start(nodes.nodes())?;
        Ok(Self {
            nodes,
            fence,
            image,
        })
    }

    pub fn image(&self) -> &RootImage {
        &self.image
    }

    /// What the fence device was asked, by whom, and what it answered, in order.
    pub fn fence_events(&self) -> Vec<FenceEvent> {
        self.fence.events()
    }
}

/// The gateway every node's `eth2` reaches (until [`GATEWAY_NIC`] is cut on that node).
pub const GATEWAY: &str = USER_NET_GATEWAY;

/// A lab is its nodes plus what they booted from: `lab.node("alpha")`, `lab.set_link(false)`.
impl std::ops::Deref for ClusterLab {
    type Target = NodeSet;

    fn deref(&self) -> &NodeSet {
        &self.nodes
    }
}
