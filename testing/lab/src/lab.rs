//! A lab: bring-up, teardown, fault controls and queries.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clever_command::{CommandError, CommandLine, HostCommands, Output, RunCommand};
use clever_deadline::Deadline;
use clever_pacemaker::{ClusterStatus, Pacemaker};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ocf_conformance::executable::copy_executable;
use serde::{Deserialize, Serialize};

use crate::cgroup::Cgroup;
use crate::config::{self, AgentChoice, CibOptions, GatewayCadence};
use crate::error::LabError;
use crate::guest;
use crate::init::{cluster_ids, Machine, LIBVIRT_BINDS, LIBVIRT_CACHE, NODE_BINDS};
use crate::layout::{self, Layout, MAX_NODES, MIN_NODES, UPLINK_IFACE};

/// Size of the shared filesystem's backing file (sparse).
pub const SHARED_SIZE: u64 = 64 * 1024 * 1024;
/// With the VM: room for the guest's hibernation image (its whole RAM) and more.
pub const VM_SHARED_SIZE: u64 = 256 * 1024 * 1024;

/// The shared disk for a guest of `vm_mib`: its hibernation image plus room for a second one
/// kept aside and the guest's files.
fn vm_shared_size(vm_mib: u32) -> u64 {
    VM_SHARED_SIZE.max((u64::from(vm_mib) * 2 + 64) * 1024 * 1024)
}
/// Our agents the lab installs into the nodes' OCF root when they are built.
pub const CLEVER_AGENTS: [&str; 3] = ["gwping", "drbdfs", "vm"];
/// Programs the lab needs on the host.
/// Programs the VM needs on the host.
pub const VM_PREREQUISITES: [&str; 5] = [
    "/usr/sbin/libvirtd",
    "/usr/bin/virsh",
    "/usr/bin/qemu-system-x86_64",
    "/usr/bin/as",
    "/usr/bin/ld",
];
pub const PREREQUISITES: [&str; 9] = [
    "/usr/sbin/corosync",
    "/usr/sbin/corosync-cmapctl",
    "/usr/sbin/pacemakerd",
    "/usr/sbin/crm_verify",
    "/usr/sbin/ip",
    "/usr/bin/nsenter",
    "/usr/sbin/losetup",
    "/usr/sbin/mkfs.ext4",
    "/usr/lib/ocf/resource.d/pacemaker/Stateful",
];

/// What `up` needs to know.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    pub nodes: usize,
    /// The `clever-lab` executable, re-run as each machine's init process.
    pub self_exe: PathBuf,
    /// The `fence_lab` executable, installed as /usr/sbin/fence_lab inside nodes.
    pub fence_agent: PathBuf,
    /// Where our agents' release binaries are (`target/release`); those present are installed.
    pub agents_dir: PathBuf,
    /// How long to wait for every node online with a DC; zero: do not wait.
    pub wait: Duration,
    /// Run libvirtd on every node and the real VM (the test guest) under `ocf:clever:vm`.
    pub vm: bool,
    /// Use the stock agents (`ocf:pacemaker:ping`, `ocf:heartbeat:Filesystem`,
    /// `ocf:heartbeat:VirtualDomain` with `snapshot=`) instead of ours, for comparisons.
    pub stock: bool,
    /// RAM of the test guest (benchmarks move a 512 MiB guest; tests a small one).
    pub vm_mib: u32,
    /// How many VM stacks (with `vm`), each with its own loop device, filesystem, hibernation
    /// directory, guest and console, all kept on one node; 1 is the lab as it always was.
    pub vms: usize,
    /// The gateway check's monitor interval and dampening: the same for both stacks, or each
    /// agent's own.
    pub gateway_cadence: GatewayCadence,
}

/// What `lab.json` records, for later commands, `down` and the fence agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub dir: PathBuf,
    pub nodes: Vec<String>,
    pub cgroup: PathBuf,
    pub loop_device: String,
    /// `ocf:…` agents used for the gateway check and the filesystem.
    pub gwping_agent: String,
    pub fs_agent: String,
    /// Our agents installed into the nodes.
    pub clever_agents: Vec<String>,
    /// Whether the real VM runs (libvirtd on every node).
    #[serde(default)]
    pub vm: bool,
    /// The VM's agent (with `vm`).
    #[serde(default)]
    pub vm_agent: String,
    /// The loop devices of the VM stacks after the first (`--vms`), in order.
    #[serde(default)]
    pub more_loop_devices: Vec<String>,
}

/// One VM stack of a lab, and where its pieces are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStack {
    /// 0 for the stack a one-VM lab has.
    pub index: usize,
    /// The stack's name, which is also the domain's (`clever`, `clever2` …).
    pub name: String,
    /// Its shared (loop) device.
    pub device: String,
    /// Resource ids.
    pub vm: String,
    pub fs: String,
    pub ip: String,
    /// Its hibernation directory (inside the node that mounts its filesystem).
    pub hibernate_dir: String,
}

impl LabState {
    pub fn read(layout: &Layout) -> Result<Self, LabError> {
        let path = layout.state_file();
        let text = fs::read_to_string(&path).map_err(|e| LabError::State {
            path: path.clone(),
            message: format!("{e} (is the lab up? run clever-lab up)"),
        })?;
        serde_json::from_str(&text).map_err(|e| LabError::State {
            path,
            message: e.to_string(),
        })
    }

    fn write(&self, layout: &Layout) -> Result<(), LabError> {
        let path = layout.state_file();
        let text = serde_json::to_string_pretty(self).map_err(|e| LabError::State {
            path: path.clone(),
            message: e.to_string(),
        })?;
        fs::write(&path, text).map_err(LabError::io("writing", path))
    }
}

/// A lab that is (or was) up.
#[derive(Debug, Clone)]
pub struct Lab {
    layout: Layout,
    state: LabState,
}

/// Runs a command inside a lab node's namespaces (`nsenter -t PID -m -n -u`): libqb's sockets
/// are per network namespace, so Pacemaker's tools must run there.
#[derive(Debug, Clone, Copy)]
pub struct InNode {
    pid: i32,
}

impl InNode {
    fn wrap(&self, command: &CommandLine) -> CommandLine {
        CommandLine::new("/usr/bin/nsenter")
            .args(["-t", &self.pid.to_string(), "-m", "-n", "-u", "--"])
            .arg(command.program())
            .args(command.arguments())
    }
}

impl RunCommand for InNode {
    fn run(&self, command: &CommandLine, deadline: &Deadline) -> Result<Output, CommandError> {
        HostCommands.run(&self.wrap(command), deadline)
    }
}

/// Seconds since the epoch, to the millisecond (for the power log).
fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", since.as_secs(), since.subsec_millis())
}

fn mkdir(path: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<(), LabError> {
    fs::create_dir_all(path).map_err(LabError::io("creating", path))?;
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(LabError::io("chmod", path))?;
    if let Some((uid, gid)) = owner {
        chown(path, Some(uid), Some(gid)).map_err(LabError::io("chown", path))?;
    }
    Ok(())
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), LabError> {
    fs::write(path, text).map_err(LabError::io("writing", path))?;
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(LabError::io("chmod", path))
}

fn run_host(command: CommandLine, seconds: u64) -> Result<Output, LabError> {
    Ok(HostCommands.run_ok(&command, &Deadline::after(Duration::from_secs(seconds)))?)
}

/// Waits for a machine's pid file (or its failure file).
fn wait_for_pid(pid_file: &Path, machine_dir: &Path) -> Result<i32, LabError> {
    let failure = Layout::failure_file(machine_dir);
    let found = Deadline::after(Duration::from_secs(30)).poll(
        &format!("{} to appear", pid_file.display()),
        Duration::from_millis(5),
        || {
            if let Ok(message) = fs::read_to_string(&failure) {
                return Some(Err(message));
            }
            fs::read_to_string(pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok())
                .map(Ok)
        },
    )?;
    found.map_err(|message| LabError::Start {
        what: machine_dir.display().to_string(),
        message: message.trim().to_owned(),
    })
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Lab {
    /// The lab in `dir`, as `up` recorded it.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, LabError> {
        let layout = Layout::new(dir)?;
        let state = LabState::read(&layout)?;
        Ok(Self { layout, state })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn state(&self) -> &LabState {
        &self.state
    }

    pub fn nodes(&self) -> &[String] {
        &self.state.nodes
    }

    fn check_node(&self, node: &str) -> Result<(), LabError> {
        if self.state.nodes.iter().any(|n| n == node) {
            Ok(())
        } else {
            Err(LabError::Usage(format!(
                "no node {node:?} in this lab (nodes: {})",
                self.state.nodes.join(", ")
            )))
        }
    }

    pub fn cgroup(&self) -> Cgroup {
        Cgroup::new(&self.state.cgroup)
    }

    pub fn node_cgroup(&self, node: &str) -> Cgroup {
        self.cgroup().child(node)
    }

    /// Whether the node has power (any process left in its cgroup).
    pub fn is_on(&self, node: &str) -> bool {
        self.node_cgroup(node).populated()
    }

    /// The pid of the node's init process, whose namespaces are the node's.
    pub fn node_pid(&self, node: &str) -> Result<i32, LabError> {
        self.check_node(node)?;
        let pid = read_pid(&self.layout.node_pid_file(node));
        match pid {
            Some(pid) if self.node_cgroup(node).pids().contains(&pid) => Ok(pid),
            _ => Err(LabError::Usage(format!("node {node} is powered off"))),
        }
    }

    fn holder_pid(&self, role: &str) -> Result<i32, LabError> {
        read_pid(&self.layout.holder_pid_file(role))
            .filter(|pid| self.cgroup().child(role).pids().contains(pid))
            .ok_or_else(|| LabError::Usage(format!("the lab's {role} is not running")))
    }

    /// Pacemaker's tools as run on `node`.
    pub fn pacemaker(&self, node: &str) -> Result<Pacemaker<InNode>, LabError> {
        Ok(Pacemaker::live(self.runner(node)?))
    }

    /// A command runner inside `node`.
    pub fn runner(&self, node: &str) -> Result<InNode, LabError> {
        Ok(InNode {
            pid: self.node_pid(node)?,
        })
    }

    /// The cluster as `node` sees it.
    pub fn status_from(&self, node: &str, deadline: &Deadline) -> Result<ClusterStatus, LabError> {
        Ok(self
            .pacemaker(node)?
            .status(&deadline.capped(Duration::from_secs(10)))?)
    }

    /// The cluster as the first powered node that answers sees it, with that node's name.
    pub fn status(&self, deadline: &Deadline) -> Result<(String, ClusterStatus), LabError> {
        let mut last = LabError::Usage("every node is powered off".into());
        for node in &self.state.nodes {
            match self.status_from(node, deadline) {
                Ok(status) => return Ok((node.clone(), status)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Polls `node`'s view of the cluster until `done` holds, returning that status.
    pub fn wait_for(
        &self,
        node: &str,
        what: &str,
        deadline: &Deadline,
        mut done: impl FnMut(&ClusterStatus) -> bool,
    ) -> Result<ClusterStatus, LabError> {
        Ok(deadline.poll(what, Duration::from_millis(100), || {
            self.status_from(node, deadline)
                .ok()
                .filter(|status| done(status))
        })?)
    }

    /// Whether every powered node is online and there is a DC.
    pub fn cluster_formed(&self, status: &ClusterStatus) -> bool {
        status.dc.is_some()
            && self
                .state
                .nodes
                .iter()
                .filter(|n| self.is_on(n))
                .all(|n| status.node(n).is_some_and(|node| node.online))
    }

    /// The lab's VM stacks (one without `--vms`; also without `--vm`, where the VM is a Dummy).
    pub fn stacks(&self) -> Vec<VmStack> {
        std::iter::once(&self.state.loop_device)
            .chain(&self.state.more_loop_devices)
            .enumerate()
            .map(|(index, device)| {
                let name = layout::vm_name(index);
                VmStack {
                    index,
                    device: device.clone(),
                    vm: clever_cib::build::vm_id(&name),
                    fs: clever_cib::build::fs_id(&name),
                    ip: clever_cib::build::ip_id(&name),
                    hibernate_dir: layout::hibernate_dir(index),
                    name,
                }
            })
            .collect()
    }

    /// The powered nodes on which the shared device is mounted (read from each node's
    /// `/proc/PID/mountinfo`, no process spawned: cheap enough to sample often).
    pub fn mounted_on(&self) -> Vec<String> {
        self.device_mounted_on(&self.state.loop_device)
    }

    /// The powered nodes on which `device` is mounted (as [`Lab::mounted_on`]).
    pub fn device_mounted_on(&self, device: &str) -> Vec<String> {
        self.state
            .nodes
            .iter()
            .filter(|node| {
                self.node_pid(node).is_ok_and(|pid| {
                    fs::read_to_string(format!("/proc/{pid}/mountinfo")).is_ok_and(|text| {
                        text.lines().any(|line| {
                            line.split_once(" - ").is_some_and(|(_, right)| {
                                right.split_whitespace().nth(1) == Some(device)
                            })
                        })
                    })
                })
            })
            .cloned()
            .collect()
    }

    /// The powered nodes on which a qemu process runs.
    pub fn qemu_on(&self) -> Vec<String> {
        self.nodes_running_qemu(|_| true)
    }

    /// The powered nodes on which the qemu of `domain` runs (libvirt names it in qemu's
    /// command line: `-name guest=DOMAIN,…`).
    pub fn domain_qemu_on(&self, domain: &str) -> Vec<String> {
        let wanted = format!("guest={domain}");
        self.nodes_running_qemu(|cmdline| {
            cmdline
                .split(|b| *b == 0)
                .any(|arg| arg.split(|b| *b == b',').next() == Some(wanted.as_bytes()))
        })
    }

    /// The powered nodes with a qemu process whose command line (NUL-separated) `accept`s.
    fn nodes_running_qemu(&self, accept: impl Fn(&[u8]) -> bool) -> Vec<String> {
        self.state
            .nodes
            .iter()
            .filter(|node| {
                self.node_cgroup(node).all_pids().iter().any(|pid| {
                    fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|comm| comm.starts_with("qemu-system"))
                        && fs::read(format!("/proc/{pid}/cmdline"))
                            .is_ok_and(|cmdline| accept(&cmdline))
                })
            })
            .cloned()
            .collect()
    }

    /// The powered nodes that hold the service address (read from each node's
    /// `/proc/PID/net/fib_trie`, whose local table lists the node's own addresses: no process
    /// spawned, so it can be sampled as often as the mounts).
    pub fn address_on(&self) -> Vec<String> {
        self.vm_address_on(0)
    }

    /// The powered nodes that hold VM stack `index`'s address (as [`Lab::address_on`]).
    pub fn vm_address_on(&self, index: usize) -> Vec<String> {
        let address = layout::vm_address(index).to_string();
        self.state
            .nodes
            .iter()
            .filter(|node| {
                self.node_pid(node).is_ok_and(|pid| {
                    fs::read_to_string(format!("/proc/{pid}/net/fib_trie"))
                        .is_ok_and(|text| holds_local(&text, &address))
                })
            })
            .cloned()
            .collect()
    }

    /// What the test guest printed so far (all nodes append to one console file).
    pub fn serial(&self) -> guest::Serial {
        self.serial_of(VM_DOMAIN)
    }

    /// What the guest of `domain` printed so far.
    pub fn serial_of(&self, domain: &str) -> guest::Serial {
        guest::Serial::read(&self.layout.serial_file(domain))
    }

    /// Cuts a node's power: every process of its cgroup is killed at once.
    pub fn power_cut(&self, node: &str) -> Result<(), LabError> {
        self.check_node(node)?;
        power_off(&self.layout, &self.state, node, "power-cut by clever-lab")
    }

    fn in_holder(&self, role: &str, args: &[&str]) -> Result<(), LabError> {
        let pid = self.holder_pid(role)?.to_string();
        run_host(
            CommandLine::new("/usr/bin/nsenter")
                .args(["-t", &pid, "-n", "/usr/sbin/ip"])
                .args(args),
            10,
        )?;
        Ok(())
    }

    /// Cuts a node's interconnect (its port on the cluster bridge goes down): corosync loses
    /// its peers, the gateway stays reachable.
    pub fn link_cut(&self, node: &str) -> Result<(), LabError> {
        self.check_node(node)?;
        self.in_holder("bridge", &["link", "set", node, "down"])
    }

    pub fn link_restore(&self, node: &str) -> Result<(), LabError> {
        self.check_node(node)?;
        self.in_holder("bridge", &["link", "set", node, "up"])
    }

    /// Cuts `node`'s uplink (its port on the uplink bridge goes down), or the gateway itself for
    /// everyone when `None`. The interconnect stays up.
    pub fn gateway_cut(&self, node: Option<&str>) -> Result<(), LabError> {
        match node {
            None => self.in_holder("gateway", &["link", "set", UPLINK_IFACE, "down"]),
            Some(node) => {
                self.check_node(node)?;
                self.in_holder(
                    "bridge",
                    &["link", "set", &layout::uplink_port(node), "down"],
                )
            }
        }
    }

    /// Undoes [`Lab::gateway_cut`] for `node`, or for the gateway itself when `None`.
    pub fn gateway_restore(&self, node: Option<&str>) -> Result<(), LabError> {
        match node {
            None => self.in_holder("gateway", &["link", "set", UPLINK_IFACE, "up"]),
            Some(node) => {
                self.check_node(node)?;
                self.in_holder("bridge", &["link", "set", &layout::uplink_port(node), "up"])
            }
        }
    }

    /// Kills (SIGKILL) the node's processes named `daemon` (by executable name or by the first
    /// 15 characters the kernel keeps); returns their pids.
    pub fn kill_daemon(&self, node: &str, daemon: &str) -> Result<Vec<i32>, LabError> {
        self.check_node(node)?;
        let short: String = daemon.chars().take(15).collect();
        let mut killed = Vec::new();
        for pid in self.node_cgroup(node).all_pids() {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            let exe_name = exe.file_name().map(|n| n.to_string_lossy().into_owned());
            if comm.trim() == short || exe_name.as_deref() == Some(daemon) {
                kill(Pid::from_raw(pid), Signal::SIGKILL)
                    .map_err(LabError::sys(format!("killing {daemon} ({pid})")))?;
                killed.push(pid);
            }
        }
        if killed.is_empty() {
            return Err(LabError::Usage(format!("no {daemon} is running on {node}")));
        }
        Ok(killed)
    }

    /// Runs `argv` inside `node` with this process's stdio.
    pub fn exec(&self, node: &str, argv: &[String]) -> Result<ExitStatus, LabError> {
        let Some((program, args)) = argv.split_first() else {
            return Err(LabError::Usage("exec needs a command".into()));
        };
        let pid = self.node_pid(node)?.to_string();
        Command::new("/usr/bin/nsenter")
            .args(["-t", &pid, "-m", "-n", "-u", "--", program])
            .args(args)
            .status()
            .map_err(LabError::io("running", "/usr/bin/nsenter"))
    }

    /// Brings a lab up: state, shared storage, configuration, machines; waits for the cluster.
    pub fn up(options: &UpOptions) -> Result<Self, LabError> {
        check_prerequisites(options)?;
        let layout = Layout::new(&options.dir)?;
        if layout.marker().exists() {
            return Err(LabError::Usage(format!(
                "a lab already exists in {}: run clever-lab down first",
                layout.dir().display()
            )));
        }
        if fs::read_dir(layout.dir()).is_ok_and(|mut entries| entries.next().is_some()) {
            return Err(LabError::Usage(format!(
                "{} exists and is not a lab directory: choose another --dir",
                layout.dir().display()
            )));
        }
        mkdir(layout.dir(), 0o755, None)?;
        write_file(&layout.marker(), "clever-lab\n", 0o644)?;
        let cgroup = Cgroup::new(layout.cgroup_root(&layout::cgroup2_mount()?));
        cgroup.create()?;

        let nodes: Vec<String> = (0..options.nodes).map(layout::node_name).collect();
        let clever_agents = stage_agents(&layout, options)?;
        if options.vm && !options.stock && !clever_agents.iter().any(|a| a == "vm") {
            return Err(LabError::Prerequisite(format!(
                "{}/vm (the ocf:clever:vm agent): cargo build --release -p clever-agent-vm",
                options.agents_dir.display()
            )));
        }
        let mut loop_devices = Vec::new();
        for index in 0..options.vms {
            let seed = if options.vm {
                Some(vm_seed(&layout, options.vm_mib, index, options.vms > 1)?)
            } else {
                None
            };
            loop_devices.push(shared_storage(
                &layout,
                index,
                seed.as_deref(),
                vm_shared_size(options.vm_mib),
            )?);
        }
        let loop_device = loop_devices.first().cloned().unwrap_or_default();
        let has = |agent: &str| !options.stock && clever_agents.iter().any(|a| a == agent);
        let cib_options = CibOptions {
            nodes: options.nodes,
            lab_dir: layout.dir().to_string_lossy().into_owned(),
            shared_devices: loop_devices.clone(),
            gwping: if has("gwping") {
                AgentChoice::Clever
            } else {
                AgentChoice::Stock
            },
            fs: if has("drbdfs") {
                AgentChoice::Clever
            } else {
                AgentChoice::Stock
            },
            vm: options.vm,
            gateway_cadence: options.gateway_cadence,
            vm_agent: if options.stock {
                AgentChoice::Stock
            } else {
                AgentChoice::Clever
            },
        };
        let state = LabState {
            dir: layout.dir().to_owned(),
            nodes: nodes.clone(),
            cgroup: cgroup.path().to_owned(),
            loop_device,
            gwping_agent: match cib_options.gwping {
                AgentChoice::Clever => "ocf:clever:gwping",
                AgentChoice::Stock => "ocf:pacemaker:ping",
            }
            .to_owned(),
            fs_agent: match cib_options.fs {
                AgentChoice::Clever => "ocf:clever:drbdfs",
                AgentChoice::Stock => "ocf:heartbeat:Filesystem",
            }
            .to_owned(),
            clever_agents,
            vm: options.vm,
            vm_agent: match (options.vm, cib_options.vm_agent) {
                (false, _) => "ocf:pacemaker:Dummy",
                (true, AgentChoice::Clever) => "ocf:clever:vm",
                (true, AgentChoice::Stock) => "ocf:heartbeat:VirtualDomain",
            }
            .to_owned(),
            more_loop_devices: loop_devices.iter().skip(1).cloned().collect(),
        };
        state.write(&layout)?;
        write_file(
            &layout.dir().join("description.toml"),
            &config::lab_description(&cib_options),
            0o644,
        )?;
        let cib = config::lab_cib(&cib_options)?;
        let cib_file = layout.dir().join("cib.xml");
        write_file(&cib_file, &cib, 0o644)?;
        verify_cib(&cib_file)?;
        for node in &nodes {
            node_files(&layout, node, options.nodes, &cib)?;
            if options.vm {
                libvirt_files(&layout, node)?;
            }
        }

        let lab = Self { layout, state };
        let bridge_pid = lab.spawn(&options.self_exe, &Machine::Bridge)?;
        lab.spawn(&options.self_exe, &Machine::Gateway { bridge_pid })?;
        for index in 0..options.nodes {
            let vm = options.vm;
            lab.spawn(
                &options.self_exe,
                &Machine::Node {
                    index,
                    bridge_pid,
                    vm,
                },
            )?;
        }
        if !options.wait.is_zero() {
            let deadline = Deadline::after(options.wait);
            lab.wait_for(
                &nodes[0],
                "every node online with a DC",
                &deadline,
                |status| lab.cluster_formed(status),
            )?;
        }
        Ok(lab)
    }

    /// Powers a node that is off on again: a fresh init process (fresh namespaces, tmpfs /run),
    /// the node's disk as it was (its CIB, logs); it rejoins the cluster. `self_exe` is the
    /// `clever-lab` executable.
    pub fn power_on(&self, node: &str, self_exe: &Path) -> Result<i32, LabError> {
        self.check_node(node)?;
        if self.is_on(node) {
            return Err(LabError::Usage(format!("node {node} is already on")));
        }
        let index = self
            .state
            .nodes
            .iter()
            .position(|n| n == node)
            .unwrap_or_default();
        let bridge_pid = self.holder_pid("bridge")?;
        // The kernel removes a dead namespace's interfaces in the background, and with them the
        // node's ports on the bridges: the new node can only plug in once the old ports are gone.
        let ports = [node.to_owned(), layout::uplink_port(node)];
        Deadline::after(Duration::from_secs(30)).poll(
            &format!("the old ports of {node} to go"),
            Duration::from_millis(20),
            || {
                fs::read_to_string(format!("/proc/{bridge_pid}/net/dev"))
                    .ok()
                    .filter(|dev| {
                        !dev.lines().any(|line| {
                            line.split_once(':')
                                .is_some_and(|(name, _)| ports.iter().any(|p| p == name.trim()))
                        })
                    })
            },
        )?;
        let _ = fs::remove_file(Layout::failure_file(&self.layout.node_dir(node)));
        let pid = self.spawn(
            self_exe,
            &Machine::Node {
                index,
                bridge_pid,
                vm: self.state.vm,
            },
        )?;
        let _ = fs::remove_file(self.layout.node_power_file(node));
        let log = self.layout.fence_log();
        if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(&log) {
            let _ = writeln!(file, "{} {node} on: power-on by clever-lab", now());
        }
        Ok(pid)
    }

    fn spawn(&self, self_exe: &Path, machine: &Machine) -> Result<i32, LabError> {
        let dir = machine.dir(&self.layout);
        mkdir(&dir, 0o755, None)?;
        let name = machine.name();
        let cgroup = self.cgroup().child(&name);
        cgroup.create()?;
        let log_path = dir.join("init.log");
        let log = File::create(&log_path).map_err(LabError::io("creating", &log_path))?;
        let log2 = log
            .try_clone()
            .map_err(LabError::io("duplicating", &log_path))?;
        let mut command = Command::new(self_exe);
        command
            .arg("--dir")
            .arg(self.layout.dir())
            .arg("init")
            .arg("--cgroup")
            .arg(cgroup.path());
        match machine {
            Machine::Bridge => command.args(["--machine", "bridge"]),
            Machine::Gateway { bridge_pid } => command
                .args(["--machine", "gateway", "--bridge-pid"])
                .arg(bridge_pid.to_string()),
            Machine::Node {
                index,
                bridge_pid,
                vm,
            } => {
                command
                    .args(["--machine", "node", "--index"])
                    .arg(index.to_string())
                    .arg("--bridge-pid")
                    .arg(bridge_pid.to_string());
                if *vm {
                    command.arg("--vm");
                }
                &mut command
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(LabError::io("starting", self_exe))?;
        let pid_file = match machine {
            Machine::Node { .. } => self.layout.node_pid_file(&name),
            _ => self.layout.holder_pid_file(&name),
        };
        wait_for_pid(&pid_file, &dir)
    }
}

/// `crm_verify` on the seed CIB: errors fail; warnings are expected (no node is online yet, so
/// it warns that they are unclean).
fn verify_cib(cib_file: &Path) -> Result<(), LabError> {
    let command = CommandLine::new("/usr/sbin/crm_verify")
        .arg("--xml-file")
        .arg(cib_file);
    let output = HostCommands.run(&command, &Deadline::after(Duration::from_secs(30)))?;
    let stderr = output.stderr_text();
    if output.status.success() || (output.code() == Some(78) && !stderr.contains("Errors found")) {
        return Ok(());
    }
    Err(LabError::Cib(format!(
        "crm_verify refuses {}: {}",
        cib_file.display(),
        stderr.trim()
    )))
}

fn check_prerequisites(options: &UpOptions) -> Result<(), LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::Prerequisite(
            "root (namespaces, mounts, cgroups)".into(),
        ));
    }
    if !(1..=layout::MAX_VMS).contains(&options.vms) || (options.vms > 1 && !options.vm) {
        return Err(LabError::Usage(format!(
            "a lab runs 1 to {} VM stacks, more than one only with the VM, not {}",
            layout::MAX_VMS,
            options.vms
        )));
    }
    if !(MIN_NODES..=MAX_NODES).contains(&options.nodes) {
        return Err(LabError::Usage(format!(
            "a lab has {MIN_NODES} to {MAX_NODES} nodes, not {}",
            options.nodes
        )));
    }
    let vm: &[&str] = if options.vm { &VM_PREREQUISITES } else { &[] };
    for program in PREREQUISITES
        .iter()
        .chain(vm)
        .map(PathBuf::from)
        .chain([options.self_exe.clone(), options.fence_agent.clone()])
    {
        if !program.exists() {
            return Err(LabError::Prerequisite(format!(
                "{} (run scripts/setup.sh and cargo build)",
                program.display()
            )));
        }
    }
    Ok(())
}

/// The vm agent's libvirt-linked build, which it hands start, stop and the monitor's fallback to.
const VM_LINKED: &str = "vm-libvirt";

/// Installs fence_lab and whichever of our agents are built (the vm agent with its
/// libvirt-linked build, where the installed agent looks for it); returns the agents installed.
fn stage_agents(layout: &Layout, options: &UpOptions) -> Result<Vec<String>, LabError> {
    mkdir(&layout.sbin_dir(), 0o755, None)?;
    copy_executable(&options.fence_agent, &layout.sbin_dir().join("fence_lab"))?;
    let clever = layout.ocf_dir().join("clever");
    mkdir(&clever, 0o755, None)?;
    mkdir(&layout.libexec_dir(), 0o755, None)?;
    let mut staged = Vec::new();
    for agent in CLEVER_AGENTS {
        let binary = options.agents_dir.join(agent);
        if binary.is_file() {
            if agent == "vm" {
                let linked = options.agents_dir.join(VM_LINKED);
                if !linked.is_file() {
                    return Err(LabError::Prerequisite(format!(
                        "{} (the vm agent's libvirt-linked build): cargo build --release -p clever-agent-vm",
                        linked.display()
                    )));
                }
                copy_executable(&linked, &layout.libexec_dir().join(VM_LINKED))?;
            }
            copy_executable(&binary, &clever.join(agent))?;
            staged.push(agent.to_owned());
        }
    }
    Ok(staged)
}

/// The domain XML name on the shared filesystem and the domain's name.
pub const VM_DOMAIN: &str = "clever";
/// RAM of the test guest, by default.
pub const VM_MIB: u32 = 64;

/// The files VM stack `index`'s filesystem starts with: the guest and its XML (with `idle`, its
/// vCPU scheduled `SCHED_IDLE`: see [`guest::idle_vcpu`]).
fn vm_seed(layout: &Layout, vm_mib: u32, index: usize, idle: bool) -> Result<PathBuf, LabError> {
    let name = layout::vm_name(index);
    let seed = if index == 0 {
        layout.dir().join("seed")
    } else {
        layout.dir().join(format!("seed-{name}"))
    };
    mkdir(&seed, 0o755, None)?;
    let build = layout.dir().join("guest");
    let elf = build.join("guest.elf");
    if !elf.is_file() {
        mkdir(&build, 0o755, None)?;
        guest::build(&build)?;
    }
    copy_executable(&elf, &seed.join("guest.elf"))?;
    mkdir(&layout.serial_dir(), 0o755, None)?;
    mkdir(&seed.join("hibernate"), 0o755, None)?;
    let kernel = Path::new(&layout::shared_mount(index)).join("guest.elf");
    let mut xml = guest::domain_xml(&name, vm_mib, &kernel, &layout.serial_file(&name));
    if idle {
        xml = guest::idle_vcpu(&xml);
    }
    write_file(&seed.join(format!("{name}.xml")), &xml, 0o644)?;
    Ok(seed)
}

/// libvirt's configuration for a lab node (the settings lab-notes found to work here).
pub const QEMU_CONF: &str = "user = \"root\"\ngroup = \"root\"\ncgroup_controllers = [ ]\n\
    security_driver = \"none\"\nremember_owner = 0\nstdio_handler = \"file\"\nnamespaces = [ ]\n";
pub const LIBVIRTD_CONF: &str = "unix_sock_dir = \"/run/libvirt\"\n\
    log_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n";

fn libvirt_files(layout: &Layout, node: &str) -> Result<(), LabError> {
    let dir = layout.node_dir(node);
    for (name, _) in LIBVIRT_BINDS {
        if name.contains("libvirt") {
            mkdir(&dir.join(name), 0o755, None)?;
        }
    }
    mkdir(&dir.join("var-lib-libvirt/qemu/save"), 0o755, None)?;
    mkdir(&dir.join("log-libvirt/qemu"), 0o755, None)?;
    mkdir(Path::new(LIBVIRT_CACHE), 0o755, None)?;
    write_file(&dir.join("etc-libvirt/qemu.conf"), QEMU_CONF, 0o644)?;
    write_file(&dir.join("etc-libvirt/libvirtd.conf"), LIBVIRTD_CONF, 0o644)?;
    let mut passwd =
        fs::read_to_string("/etc/passwd").map_err(LabError::io("reading", "/etc/passwd"))?;
    let mut group =
        fs::read_to_string("/etc/group").map_err(LabError::io("reading", "/etc/group"))?;
    if !passwd.contains("\nlibvirt-qemu:") {
        passwd.push_str("libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin\n");
        group.push_str("libvirt-qemu:x:64055:\n");
    }
    write_file(&dir.join("passwd"), &passwd, 0o644)?;
    write_file(&dir.join("group"), &group, 0o644)
}

/// The DRBD stand-in of VM stack `index`: an ext4 filesystem on a loop device every node sees,
/// with `seed`'s files.
fn shared_storage(
    layout: &Layout,
    index: usize,
    seed: Option<&Path>,
    vm_size: u64,
) -> Result<String, LabError> {
    let backing = layout.backing_file_of(index);
    let file = File::create(&backing).map_err(LabError::io("creating", &backing))?;
    file.set_len(if seed.is_some() { vm_size } else { SHARED_SIZE })
        .map_err(LabError::io("sizing", &backing))?;
    drop(file);
    let mut mkfs = CommandLine::new("/usr/sbin/mkfs.ext4").args(["-q", "-F", "-L", "clever-lab"]);
    if let Some(seed) = seed {
        mkfs = mkfs.arg("-d").arg(seed);
    }
    run_host(mkfs.arg(&backing), 60)?;
    let output = run_host(
        CommandLine::new("/usr/sbin/losetup")
            .args(["--find", "--show"])
            .arg(&backing),
        30,
    )?;
    Ok(output.stdout_text().trim().to_owned())
}

fn node_files(layout: &Layout, node: &str, nodes: usize, cib: &str) -> Result<(), LabError> {
    let ids = cluster_ids()?;
    let dir = layout.node_dir(node);
    mkdir(&dir, 0o755, None)?;
    for (name, _) in NODE_BINDS {
        if name != "hosts" {
            mkdir(&dir.join(name), 0o755, None)?;
        }
    }
    let pacemaker = dir.join("var-lib-pacemaker");
    mkdir(&pacemaker, 0o755, None)?;
    for sub in ["cib", "pengine", "blackbox", "cores"] {
        mkdir(&pacemaker.join(sub), 0o750, Some(ids))?;
    }
    mkdir(&dir.join("log-pacemaker"), 0o770, Some(ids))?;
    write_file(&dir.join("hosts"), &config::hosts(nodes), 0o644)?;
    write_file(
        &dir.join("etc-corosync").join("corosync.conf"),
        &config::corosync_conf(nodes),
        0o644,
    )?;
    let cib_path = pacemaker.join("cib").join("cib.xml");
    write_file(&cib_path, cib, 0o600)?;
    chown(&cib_path, Some(ids.0), Some(ids.1)).map_err(LabError::io("chown", &cib_path))
}

/// Powers `node` off: kills every process of its cgroup and waits until none is left, then
/// records it. What the node had mounted, its addresses and veth go with its namespaces.
pub fn power_off(
    layout: &Layout,
    state: &LabState,
    node: &str,
    reason: &str,
) -> Result<(), LabError> {
    let cgroup = Cgroup::new(&state.cgroup).child(node);
    cgroup.kill(&Deadline::after(Duration::from_secs(20)))?;
    // A powered-off machine loses its runtime state (/run, /dev/shm were tmpfs in its mount
    // namespace and are gone with it); its disk (/var/lib/pacemaker …) stays.
    let _ = fs::remove_file(layout.node_pid_file(node));
    let line = format!("{} {node} off: {reason}\n", now());
    let _ = fs::write(layout.node_power_file(node), &line);
    let log = layout.fence_log();
    if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(&log) {
        let _ = file.write_all(line.as_bytes());
    }
    Ok(())
}

/// What `down` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    pub processes_killed: usize,
    pub loop_devices: Vec<String>,
    pub removed_dir: bool,
}

/// Loop devices backed by `file` (`losetup -j`).
pub fn loop_devices_of(file: &Path) -> Result<Vec<String>, LabError> {
    let output = run_host(
        CommandLine::new("/usr/sbin/losetup").arg("-j").arg(file),
        10,
    )?;
    Ok(output
        .stdout_text()
        .lines()
        .filter_map(|line| line.split_once(':').map(|(dev, _)| dev.trim().to_owned()))
        .filter(|dev| dev.starts_with("/dev/loop"))
        .collect())
}

/// Removes everything of the lab in `dir`, whatever state it is in: processes (hence
/// namespaces, mounts, veths), cgroups, loop devices, the directory. Doing it twice is fine.
pub fn down(dir: impl Into<PathBuf>) -> Result<DownReport, LabError> {
    let layout = Layout::new(dir)?;
    let mut report = DownReport::default();
    let dir_exists = layout.dir().exists();
    if dir_exists
        && !layout.marker().exists()
        && layout
            .dir()
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    {
        return Err(LabError::Usage(format!(
            "{} is not a lab directory (no {}): not touching it",
            layout.dir().display(),
            layout::MARKER
        )));
    }
    let cgroup = match LabState::read(&layout) {
        Ok(state) => Cgroup::new(state.cgroup),
        Err(_) => Cgroup::new(layout.cgroup_root(&layout::cgroup2_mount()?)),
    };
    report.processes_killed = cgroup.all_pids().len();
    cgroup.kill_and_reap(&Deadline::after(Duration::from_secs(30)))?;
    cgroup.remove_tree()?;
    if let Some(parent) = cgroup.path().parent() {
        // Shared by every lab on the machine: removed only once empty.
        let _ = fs::remove_dir(parent);
    }
    for index in 0..layout::MAX_VMS {
        let backing = layout.backing_file_of(index);
        if !backing.exists() {
            continue;
        }
        for device in loop_devices_of(&backing)? {
            run_host(
                CommandLine::new("/usr/sbin/losetup").arg("-d").arg(&device),
                10,
            )?;
            report.loop_devices.push(device);
        }
        // A device still held by a dying mount namespace is detached when it is released.
        Deadline::after(Duration::from_secs(10)).poll(
            "the loop device to detach",
            Duration::from_millis(10),
            || loop_devices_of(&backing).ok().filter(Vec::is_empty),
        )?;
    }
    if dir_exists {
        fs::remove_dir_all(layout.dir()).map_err(LabError::io("removing", layout.dir()))?;
        report.removed_dir = true;
    }
    Ok(report)
}

/// Whether a `fib_trie` listing has `address` as a local (own) address: its leaf line is
/// followed by a `/32 host LOCAL` line.
fn holds_local(fib_trie: &str, address: &str) -> bool {
    let leaf = format!("|-- {address}");
    let mut lines = fib_trie.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        if line == leaf {
            while let Some(next) = lines.peek() {
                if next.starts_with("|--") || next.starts_with("+--") {
                    break;
                }
                if next.contains("/32 host LOCAL") {
                    return true;
                }
                lines.next();
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::holds_local;

    const FIB_TRIE: &str = "\
Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 10.213.1.0/24 2 0 2
        |-- 10.213.1.0
           /24 link UNICAST
        |-- 10.213.1.12
           /32 host LOCAL
        |-- 10.213.1.100
           /24 link UNICAST
           /32 host LOCAL
        |-- 10.213.1.101
           /24 link UNICAST
        |-- 10.213.1.255
           /32 link BROADCAST
";

    #[test]
    fn a_local_address_is_told_from_a_route_to_it() {
        assert!(holds_local(FIB_TRIE, "10.213.1.12"));
        assert!(holds_local(FIB_TRIE, "10.213.1.100"));
        assert!(!holds_local(FIB_TRIE, "10.213.1.101"));
        assert!(!holds_local(FIB_TRIE, "10.213.1.255"));
        assert!(!holds_local(FIB_TRIE, "10.213.1.1"));
        assert!(!holds_local("", "10.213.1.100"));
    }
}
