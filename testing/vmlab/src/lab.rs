//! Two VM nodes on a private link: what the DRBD tests and `clever-vmlab` stand on.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use clever_deadline::Deadline;

use crate::error::{io_error, VmLabError};
use crate::image::{self, Image};
use crate::vm::{Vm, VmFiles, VmSpec};

/// Where built images and downloaded packages are kept between runs (outside the repository).
pub const DEFAULT_CACHE: &str = "/var/cache/clever-vmlab";

/// Where running labs keep their sockets, disks and console logs (one directory per lab).
pub const RUN_ROOT: &str = "/run/clever-vmlab";

/// The two nodes: host name and address on the private link.
pub const NODES: [(&str, &str); 2] = [("alpha", "10.99.0.1"), ("beta", "10.99.0.2")];

/// What to put in the guests besides the base image.
#[derive(Debug, Clone)]
pub struct LabConfig {
    pub cache: PathBuf,
    /// Host files to copy in, by guest path (our agents); their libraries come along.
    pub files: Vec<(String, PathBuf)>,
    pub disk_mib: u64,
    /// The second, non-DRBD disk of each node (`/dev/vdb`).
    pub scratch_mib: u64,
    pub memory_mib: u32,
    /// Building (first run: a download) and booting both nodes.
    pub boot_timeout: Duration,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            cache: PathBuf::from(DEFAULT_CACHE),
            files: Vec::new(),
            disk_mib: 64,
            scratch_mib: 32,
            memory_mib: 256,
            boot_timeout: Duration::from_secs(600),
        }
    }
}

/// Two booted VM nodes; dropping the lab kills them and removes its run directory.
#[derive(Debug)]
pub struct VmLab {
    nodes: NodeSet,
    image: Image,
}

impl VmLab {
    pub fn boot(config: &LabConfig) -> Result<Self, VmLabError> {
        let deadline = Deadline::after(config.boot_timeout);
        fs::create_dir_all(&config.cache).map_err(io_error("creating", &config.cache))?;
        let image = image::base_image(&config.cache, &deadline)?;
        let mut initrd = fs::read(&image.initrd).map_err(io_error("reading", &image.initrd))?;
        initrd.extend(image::overlay(&config.files, &deadline)?);
        let nodes = NodeSet::boot(
            &image.kernel,
            &initrd,
            &deadline,
            |_, index, name, address| {
                let spec = VmSpec {
                    name: name.to_owned(),
                    address: format!("{address}/24"),
                    mac: format!("52:54:00:99:00:{:02x}", index + 1),
                    disk_mib: config.disk_mib,
                    scratch_mib: config.scratch_mib,
                    memory_mib: config.memory_mib,
                    extra_nics: Vec::new(),
                    extra_ports: Vec::new(),
                };
                Ok((spec, Vec::new()))
            },
        )?;
        Ok(Self { nodes, image })
    }

    pub fn image(&self) -> &Image {
        &self.image
    }
}

/// A lab is its nodes plus what they booted from: `lab.node("alpha")`, `lab.set_link(false)`.
impl std::ops::Deref for VmLab {
    type Target = NodeSet;

    fn deref(&self) -> &NodeSet {
        &self.nodes
    }
}

/// The two booted nodes on their private link and the run directory they live in: what both
/// kinds of VM lab share. Dropping it kills the nodes and removes the directory.
#[derive(Debug)]
pub struct NodeSet {
    dir: PathBuf,
    vms: Vec<Vm>,
}

impl NodeSet {
    /// Boots [`NODES`] from one `initrd` (written once into a fresh run directory) and waits
    /// until each answers on its control channel. `node(dir, index, name, address)` gives a
    /// node's spec and the disks it gets beyond DRBD's and the scratch one.
    pub(crate) fn boot(
        kernel: &Path,
        initrd: &[u8],
        deadline: &Deadline,
        mut node: impl FnMut(&Path, usize, &str, &str) -> Result<(VmSpec, Vec<PathBuf>), VmLabError>,
    ) -> Result<Self, VmLabError> {
        sweep_stale_runs();
        let mut set = Self {
            dir: run_dir()?,
            vms: Vec::new(),
        };
        let initrd_path = set.dir.join("initrd.cpio");
        fs::write(&initrd_path, initrd).map_err(io_error("writing", &initrd_path))?;
        for (index, (name, address)) in NODES.iter().enumerate() {
            let peer = NODES[1 - index].0;
            let (spec, drives) = node(&set.dir, index, name, address)?;
            let files = VmFiles::new(&set.dir, name, peer);
            set.vms.push(Vm::boot(
                &spec,
                &files,
                kernel,
                &initrd_path,
                &drives,
                deadline,
            )?);
        }
        for vm in &set.vms {
            vm.wait_ready(deadline)?;
        }
        Ok(set)
    }

    pub fn nodes(&self) -> &[Vm] {
        &self.vms
    }

    /// The node called `name` (`alpha`, `beta`).
    pub fn node(&self, name: &str) -> Option<&Vm> {
        self.vms.iter().find(|vm| vm.name() == name)
    }

    /// Cuts (false) or restores (true) the private link, on both ends.
    pub fn set_link(&self, up: bool) -> Result<(), VmLabError> {
        for vm in &self.vms {
            vm.set_link(up)?;
        }
        Ok(())
    }

    /// As [`NodeSet::set_link`], for the point-to-point NIC `id` of the nodes' specs.
    pub fn set_nic_link(&self, id: &str, up: bool) -> Result<(), VmLabError> {
        for vm in &self.vms {
            vm.set_nic_link(id, up)?;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for NodeSet {
    fn drop(&mut self) {
        self.vms.clear();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory for this lab: `RUN_ROOT/PID-N`.
pub(crate) fn run_dir() -> Result<PathBuf, VmLabError> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(RUN_ROOT).join(format!("{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(io_error("creating", &dir))?;
    Ok(dir)
}

/// Removes run directories of processes that died without cleaning up; their qemu processes
/// died with them (parent-death signal).
pub(crate) fn sweep_stale_runs() {
    let Ok(entries) = fs::read_dir(RUN_ROOT) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next() else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
