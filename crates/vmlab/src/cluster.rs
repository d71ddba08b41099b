//! Two cluster VM nodes: the Debian root filesystem of [`crate::rootfs`] (Corosync, Pacemaker,
//! drbd-utils) on `/dev/vdb`, DRBD's backing disk on `/dev/vda`, the same private link and
//! control channel as [`crate::VmLab`]. The cluster itself is configured and started by the
//! test through the control channel ([`corosync_conf`], [`hosts`]).

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use clever_deadline::Deadline;

use crate::error::{io_error, VmLabError};
use crate::lab::{NodeSet, DEFAULT_CACHE, NODES};
use crate::rootfs::{self, RootImage};
use crate::vm::VmSpec;

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
    nodes: NodeSet,
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
                };
                let root = dir.join(format!("{name}.root.ext4"));
                fs::copy(&image.root, &root)
                    .map_err(io_error("copying the root image to", &root))?;
                Ok((spec, vec![root]))
            },
        )?;
        Ok(Self { nodes, image })
    }

    pub fn image(&self) -> &RootImage {
        &self.image
    }
}

/// A lab is its nodes plus what they booted from: `lab.node("alpha")`, `lab.set_link(false)`.
impl std::ops::Deref for ClusterLab {
    type Target = NodeSet;

    fn deref(&self) -> &NodeSet {
        &self.nodes
    }
}

/// corosync.conf for the two nodes on the private link (knet, no crypto, token 1000 ms as in the
/// namespace lab; `two_node` so either node keeps quorum alone).
pub fn corosync_conf() -> String {
    let mut text = String::from(
        "# Written by clever-vmlab.\n\
         totem {\n    version: 2\n    cluster_name: clever-vmlab\n    transport: knet\n\
         \x20   token: 1000\n    crypto_cipher: none\n    crypto_hash: none\n}\n\
         nodelist {\n",
    );
    for (index, (name, address)) in NODES.iter().enumerate() {
        let _ = write!(
            text,
            "    node {{\n        ring0_addr: {address}\n        name: {name}\n        nodeid: {}\n    }}\n",
            index + 1
        );
    }
    text.push_str(
        "}\nquorum {\n    provider: corosync_votequorum\n    two_node: 1\n}\n\
         logging {\n    to_logfile: yes\n    logfile: /var/log/corosync/corosync.log\n\
         \x20   to_stderr: no\n    to_syslog: no\n    timestamp: on\n}\n",
    );
    text
}

/// /etc/hosts of a node: both nodes by name (Corosync and Pacemaker resolve them).
pub fn hosts() -> String {
    let mut text = String::from("127.0.0.1\tlocalhost\n");
    for (name, address) in NODES {
        let _ = writeln!(text, "{address}\t{name}");
    }
    text
}
