//! The first process of each lab "machine": a node, the bridge, the gateway.
//!
//! `clever-lab` re-executes itself as these processes (hidden subcommands), started in host
//! namespaces. Each one moves itself into its cgroup first (so everything it ever starts is in
//! it), then unshares its namespaces while still single-threaded, sets itself up, writes its pid
//! file (the signal that the machine exists) and stays as the machine's subreaper. A node then
//! starts corosync and pacemakerd in the foreground and reaps every orphan at once, which keeps
//! libvirt's and Pacemaker's waits for dead children short.
//!
//! Nothing here is undone on exit: when the machine's last process ends (power cut, fencing,
//! `down`), the kernel drops its namespaces, and with them its mounts, addresses and veths.

use std::fs::{self, File, Permissions};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clever_command::{CommandLine, HostCommands, RunCommand};
use clever_deadline::Deadline;
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{sethostname, Group, User};

use crate::cgroup::Cgroup;
use crate::error::LabError;
use crate::layout::{self, Layout, CLUSTER_BRIDGE, CLUSTER_IFACE, UPLINK_BRIDGE, UPLINK_IFACE};

/// What a lab init process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Machine {
    /// Holds the bridge every other machine plugs into.
    Bridge,
    /// The gateway the nodes ping (its address is the ping target).
    Gateway { bridge_pid: i32 },
    /// A cluster node: `index` 0-based; with `vm`, it also runs libvirtd.
    Node {
        index: usize,
        bridge_pid: i32,
        vm: bool,
    },
}

impl Machine {
    pub fn name(&self) -> String {
        match self {
            Self::Bridge => "bridge".to_owned(),
            Self::Gateway { .. } => "gateway".to_owned(),
            Self::Node { index, .. } => layout::node_name(*index),
        }
    }

    /// Its directory in the lab.
    pub fn dir(&self, layout: &Layout) -> PathBuf {
        match self {
            Self::Node { index, .. } => layout.node_dir(&layout::node_name(*index)),
            _ => layout.holder_dir(&self.name()),
        }
    }
}

/// Runs `machine` in this process; returns only on failure (which it also records in the
/// machine's `init.failed` for `up` to report).
pub fn run(layout: &Layout, machine: &Machine, cgroup: &Cgroup) -> LabError {
    let error = match setup(layout, machine, cgroup) {
        Ok(()) => {
            serve(machine);
            return LabError::Start {
                what: machine.name(),
                message: "the init loop ended".into(),
            };
        }
        Err(error) => error,
    };
    let _ = fs::write(
        Layout::failure_file(&machine.dir(layout)),
        format!("{error}\n"),
    );
    error
}

fn setup(layout: &Layout, machine: &Machine, cgroup: &Cgroup) -> Result<(), LabError> {
    cgroup.join_self()?;
    let mut flags = CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS;
    if matches!(machine, Machine::Node { .. }) {
        flags |= CloneFlags::CLONE_NEWNS;
    }
    // Must come before any thread exists (the command runner starts threads).
    unshare(flags).map_err(LabError::sys("unshare"))?;
    nix::sys::prctl::set_child_subreaper(true).map_err(LabError::sys("PR_SET_CHILD_SUBREAPER"))?;
    let hostname = match machine {
        Machine::Bridge => "lab-bridge".to_owned(),
        _ => machine.name(),
    };
    sethostname(&hostname).map_err(LabError::sys("sethostname"))?;
    ip(&["link", "set", "lo", "up"])?;
    match machine {
        Machine::Bridge => {
            for bridge in [CLUSTER_BRIDGE, UPLINK_BRIDGE] {
                ip(&["link", "add", bridge, "type", "bridge"])?;
                ip(&["link", "set", bridge, "up"])?;
            }
        }
        Machine::Gateway { bridge_pid } => {
            let cidr = format!("{}/24", layout::gateway_address());
            plug(UPLINK_IFACE, "gw", UPLINK_BRIDGE, *bridge_pid, &cidr)?;
        }
        Machine::Node {
            index,
            bridge_pid,
            vm,
        } => {
            let name = layout::node_name(*index);
            node_mounts(layout, &name, *vm)?;
            let cluster = format!("{}/24", layout::node_address(*index));
            plug(CLUSTER_IFACE, &name, CLUSTER_BRIDGE, *bridge_pid, &cluster)?;
            let uplink = format!("{}/24", layout::node_uplink_address(*index));
            let port = layout::uplink_port(&name);
            plug(UPLINK_IFACE, &port, UPLINK_BRIDGE, *bridge_pid, &uplink)?;
            ip(&[
                "route",
                "add",
                "default",
                "via",
                &layout::gateway_address().to_string(),
            ])?;
        }
    }
    let pid_file = match machine {
        Machine::Node { index, .. } => layout.node_pid_file(&layout::node_name(*index)),
        _ => layout.holder_pid_file(&machine.name()),
    };
    fs::write(&pid_file, format!("{}\n", std::process::id()))
        .map_err(LabError::io("writing", &pid_file))?;
    if let Machine::Node { vm, .. } = machine {
        if *vm {
            start_libvirtd()?;
        }
        start_cluster_stack()?;
    }
    Ok(())
}

/// libvirtd's pid, for the init loop to restart it when it dies (as systemd's `Restart=` would
/// on a real node).
static LIBVIRTD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(20))
}

fn ip(args: &[&str]) -> Result<(), LabError> {
    HostCommands.run_ok(&CommandLine::new("/usr/sbin/ip").args(args), &deadline())?;
    Ok(())
}

/// Creates this machine's `iface` with `cidr`, its veth peer `port` in the bridge namespace on
/// `bridge`.
fn plug(
    iface: &str,
    port: &str,
    bridge: &str,
    bridge_pid: i32,
    cidr: &str,
) -> Result<(), LabError> {
    let bridge_ns = bridge_pid.to_string();
    ip(&[
        "link", "add", iface, "type", "veth", "peer", "name", port, "netns", &bridge_ns,
    ])?;
    HostCommands.run_ok(
        &CommandLine::new("/usr/bin/nsenter")
            .args(["-t", &bridge_ns, "-n", "/usr/sbin/ip", "link", "set", port])
            .args(["master", bridge, "up"]),
        &deadline(),
    )?;
    ip(&["addr", "add", cidr, "dev", iface])?;
    ip(&["link", "set", iface, "up"])
}

fn mount_error(what: &str, target: &Path) -> impl FnOnce(Errno) -> LabError {
    let what = format!("mounting {what} on {}", target.display());
    move |source| LabError::Sys { what, source }
}

fn bind(source: &Path, target: &Path) -> Result<(), LabError> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(mount_error(&source.display().to_string(), target))
}

fn tmpfs(target: &Path, mode: &str) -> Result<(), LabError> {
    let options = format!("mode={mode}");
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(mount_error("tmpfs", target))
}

/// A read-only union of `extra` over `target`: how the node sees fence_lab in /usr/sbin and our
/// agents in the OCF root without the host's directories changing.
fn overlay(extra: &Path, target: &Path) -> Result<(), LabError> {
    let options = format!("lowerdir={}:{}", extra.display(), target.display());
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(mount_error("overlay", target))
}

/// The directories of a node's own (private) state, bound over the host's.
pub const NODE_BINDS: [(&str, &str); 6] = [
    ("etc-corosync", "/etc/corosync"),
    ("var-lib-pacemaker", "/var/lib/pacemaker"),
    ("var-lib-corosync", "/var/lib/corosync"),
    ("log-pacemaker", "/var/log/pacemaker"),
    ("log-corosync", "/var/log/corosync"),
    ("hosts", "/etc/hosts"),
];

/// With the VM: libvirt's private directories, and the user libvirtd insists on.
pub const LIBVIRT_BINDS: [(&str, &str); 5] = [
    ("etc-libvirt", "/etc/libvirt"),
    ("var-lib-libvirt", "/var/lib/libvirt"),
    ("log-libvirt", "/var/log/libvirt"),
    ("passwd", "/etc/passwd"),
    ("group", "/etc/group"),
];

/// libvirt's QEMU capability cache, shared by every node and kept across labs: probing QEMU
/// costs ~8 s per fresh libvirtd.
pub const LIBVIRT_CACHE: &str = "/var/cache/clever-lab/libvirt";
/// Where libvirt looks for that cache.
const LIBVIRT_CACHE_TARGET: &str = "/var/cache/libvirt";
/// The OCF agents' root, where a node sees ours beside the stock ones.
const OCF_ROOT: &str = "/usr/lib/ocf/resource.d";

/// Makes the host paths a node binds over exist in the node's own mount namespace, never on the
/// host: a package need not have made them (`libvirt-daemon` without `libvirt-daemon-system`
/// makes no `/var/lib/libvirt`, `/var/log/libvirt` or `/var/cache/libvirt`). The nearest
/// existing ancestor of a missing target gets a writable overlay whose upper layer lives in the
/// node's directory, and the target is made in it; the host's directories stay as they were, so
/// `down` has nothing to undo there. All of this comes before the first bind: an overlay mounted
/// on an ancestor later would hide the binds below it.
#[derive(Debug)]
pub struct MountTargets {
    /// Where the overlays' upper and work directories go.
    scratch: PathBuf,
    /// Ancestors already overlaid: what is made below them stays in the node.
    overlaid: Vec<PathBuf>,
}

impl MountTargets {
    pub fn new(scratch: PathBuf) -> Self {
        Self {
            scratch,
            overlaid: Vec::new(),
        }
    }

    /// The ancestors this node overlaid (for tests and the node's log).
    pub fn overlaid(&self) -> &[PathBuf] {
        &self.overlaid
    }

    /// Makes `target` a directory (or, with `file`, an empty file) unless it exists.
    pub fn ensure(&mut self, target: &Path, file: bool) -> Result<(), LabError> {
        if target.exists() {
            return Ok(());
        }
        let ancestor = target
            .ancestors()
            .skip(1)
            .find(|a| a.is_dir())
            .unwrap_or(Path::new("/"))
            .to_owned();
        if !self.overlaid.iter().any(|o| ancestor.starts_with(o)) {
            let name = ancestor
                .to_string_lossy()
                .trim_matches('/')
                .replace('/', "_");
            let scratch = self
                .scratch
                .join(if name.is_empty() { "root" } else { &name });
            let (upper, work) = (scratch.join("upper"), scratch.join("work"));
            for dir in [&upper, &work] {
                fs::create_dir_all(dir).map_err(LabError::io("creating", dir))?;
            }
            let options = format!(
                "lowerdir={},upperdir={},workdir={}",
                ancestor.display(),
                upper.display(),
                work.display()
            );
            mount(
                Some("overlay"),
                &ancestor,
                Some("overlay"),
                MsFlags::empty(),
                Some(options.as_str()),
            )
            .map_err(mount_error("a private overlay", &ancestor))?;
            eprintln!(
                "{} is missing on the host: made in this node only, over a private overlay of {}",
                target.display(),
                ancestor.display()
            );
            self.overlaid.push(ancestor);
        }
        let made = if file {
            target
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| File::create(target).map(drop))
        } else {
            fs::create_dir_all(target)
        };
        made.map_err(LabError::io("creating in the node", target))
    }
}

fn node_mounts(layout: &Layout, node: &str, vm: bool) -> Result<(), LabError> {
    // Keep a handle on the lab directory: the tmpfs on /run may hide it.
    let lab = File::open(layout.dir()).map_err(LabError::io("opening", layout.dir()))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(LabError::sys("making / private"))?;
    let node_dir = layout.node_dir(node);
    let libvirt_binds: &[(&str, &str)] = if vm { &LIBVIRT_BINDS } else { &[] };
    let binds: Vec<(PathBuf, &Path)> = NODE_BINDS
        .iter()
        .chain(libvirt_binds)
        .map(|(name, target)| (node_dir.join(name), Path::new(*target)))
        .chain(vm.then(|| {
            (
                PathBuf::from(LIBVIRT_CACHE),
                Path::new(LIBVIRT_CACHE_TARGET),
            )
        }))
        .collect();
    let mut targets = MountTargets::new(node_dir.join("overlays"));
    for target in [OCF_ROOT, "/srv"]
        .into_iter()
        .chain(vm.then_some(layout::LIBEXEC_DIR))
    {
        targets.ensure(Path::new(target), false)?;
    }
    for (source, target) in &binds {
        targets.ensure(target, source.is_file())?;
    }
    overlay(&layout.sbin_dir(), Path::new("/usr/sbin"))?;
    overlay(&layout.ocf_dir(), Path::new(OCF_ROOT))?;
    if vm {
        overlay(&layout.libexec_dir(), Path::new(layout::LIBEXEC_DIR))?;
    }
    for (source, target) in &binds {
        bind(source, target)?;
    }
    // The shared filesystem's mount point lives in a private /srv (drbdfs creates it).
    tmpfs(Path::new("/srv"), "0755")?;
    let run = Path::new("/run");
    tmpfs(run, "0755")?;
    tmpfs(Path::new("/dev/shm"), "1777")?;
    let (hacluster, haclient) = cluster_ids()?;
    for (dir, mode, owner) in [
        ("/run/lock", 0o1777, None),
        ("/run/resource-agents", 0o1755, None),
        ("/run/crm", 0o750, Some((hacluster, haclient))),
    ] {
        fs::create_dir_all(dir).map_err(LabError::io("creating", dir))?;
        fs::set_permissions(dir, Permissions::from_mode(mode))
            .map_err(LabError::io("chmod", dir))?;
        if let Some((uid, gid)) = owner {
            chown(dir, Some(uid), Some(gid)).map_err(LabError::io("chown", dir))?;
        }
    }
    if !layout.marker().exists() {
        fs::create_dir_all(layout.dir()).map_err(LabError::io("creating", layout.dir()))?;
        let handle = PathBuf::from(format!("/proc/self/fd/{}", lab.as_raw_fd()));
        bind(&handle, layout.dir())?;
    }
    Ok(())
}

/// hacluster's uid and haclient's gid.
pub fn cluster_ids() -> Result<(u32, u32), LabError> {
    let user = User::from_name("hacluster")
        .map_err(LabError::sys("looking up user hacluster"))?
        .ok_or_else(|| LabError::Prerequisite("user hacluster (package pacemaker)".into()))?;
    let group = Group::from_name("haclient")
        .map_err(LabError::sys("looking up group haclient"))?
        .ok_or_else(|| LabError::Prerequisite("group haclient (package pacemaker)".into()))?;
    Ok((user.uid.as_raw(), group.gid.as_raw()))
}

fn start_libvirtd() -> Result<(), LabError> {
    let socket = Path::new("/run/libvirt/libvirt-sock");
    let _ = fs::remove_file(socket);
    let child = Command::new("/usr/sbin/libvirtd")
        .stdin(Stdio::null())
        .spawn()
        .map_err(LabError::io("starting", "/usr/sbin/libvirtd"))?;
    LIBVIRTD.store(
        i32::try_from(child.id()).unwrap_or(0),
        std::sync::atomic::Ordering::Relaxed,
    );
    deadline().poll("libvirtd's socket", Duration::from_millis(20), || {
        socket.exists().then_some(())
    })?;
    Ok(())
}

fn start_cluster_stack() -> Result<(), LabError> {
    Command::new("/usr/sbin/corosync")
        .arg("-f")
        .stdin(Stdio::null())
        .spawn()
        .map_err(LabError::io("starting", "/usr/sbin/corosync"))?;
    let ready = CommandLine::new("/usr/sbin/corosync-cmapctl").args(["-g", "totem.cluster_name"]);
    deadline().poll("corosync to answer", Duration::from_millis(20), || {
        HostCommands
            .run_ok(&ready, &Deadline::after(Duration::from_secs(2)))
            .ok()
    })?;
    Command::new("/usr/sbin/pacemakerd")
        .env("PCMK_logfile", "/var/log/pacemaker/pacemaker.log")
        .env("PCMK_logfacility", "none")
        .env("HA_LOGFACILITY", "none")
        .stdin(Stdio::null())
        .spawn()
        .map_err(LabError::io("starting", "/usr/sbin/pacemakerd"))?;
    Ok(())
}

/// Reaps children and orphans for as long as the machine lives.
fn serve(machine: &Machine) {
    let name = machine.name();
    loop {
        match waitpid(None, None) {
            Ok(status) => {
                eprintln!("{name}: reaped {status:?}");
                let libvirtd = LIBVIRTD.load(std::sync::atomic::Ordering::Relaxed);
                if libvirtd != 0 && status.pid().is_some_and(|pid| pid.as_raw() == libvirtd) {
                    std::thread::sleep(Duration::from_secs(1));
                    match start_libvirtd() {
                        Ok(()) => eprintln!("{name}: libvirtd restarted"),
                        Err(e) => eprintln!("{name}: restarting libvirtd: {e}"),
                    }
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}
