//! `clever-lab`: start, stop, inspect and break the live lab cluster. See the crate docs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use clever_deadline::Deadline;
use clever_lab::cgroup::Cgroup;
use clever_lab::config::GatewayCadence;
use clever_lab::init::{self, Machine};
use clever_lab::{Lab, LabError, Layout, UpOptions};

#[derive(Debug, Parser)]
#[command(
    name = "clever-lab",
    version,
    about = "A live Pacemaker + Corosync lab cluster of namespace nodes"
)]
struct Cli {
    /// The lab directory (state, logs, configuration).
    #[arg(long, global = true, env = "CLEVER_LAB_DIR", default_value = clever_lab::layout::DEFAULT_DIR)]
    dir: PathBuf,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Start a lab: nodes with corosync + pacemaker, bridge, gateway, shared disk, fencing.
    Up {
        /// Number of nodes (2 to 4).
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// Where our agents' release binaries are (those present are installed in the nodes).
        #[arg(long)]
        agents: Option<PathBuf>,
        /// The fence_lab binary (default: next to clever-lab).
        #[arg(long)]
        fence_agent: Option<PathBuf>,
        /// Seconds to wait for every node online with a DC (0: do not wait).
        #[arg(long, default_value_t = 60)]
        wait: u64,
        /// Run libvirtd on every node and the test guest under ocf:clever:vm.
        #[arg(long)]
        vm: bool,
        /// Stock agents instead of ours: ping, Filesystem, VirtualDomain (snapshot=).
        #[arg(long)]
        stock: bool,
        /// RAM of the test guest in MiB (the shared disk grows to hold its hibernation image).
        #[arg(long, default_value_t = clever_lab::lab::VM_MIB,
              value_parser = clap::value_parser!(u32).range(16..=4096))]
        vm_mib: u32,
        /// VM stacks, each on its own loop-device filesystem (own DRBD stand-in, hibernation
        /// directory, guest, console), all kept on one node (implies --vm).
        #[arg(long, default_value_t = 1)]
        vms: usize,
        /// The gateway check's monitor interval and dampening: `lab` the same fast settings for
        /// both stacks, `own` each agent's settings for a real cluster.
        #[arg(long, value_enum, default_value_t)]
        gateway_cadence: GatewayCadence,
    },
    /// Remove everything of the lab: processes, namespaces, cgroups, loop device, directory.
    Down,
    /// A short tour of a running lab: status, a controlled migration of the VM, how to look around.
    Tour,
    /// Show power, the cluster's nodes and resources.
    Status,
    /// Cut a node's power (every process of the node killed at once).
    PowerCut { node: String },
    /// Power a node that is off on again (it boots and rejoins the cluster).
    PowerOn { node: String },
    /// Cut a node's cluster interconnect (corosync loses its peers; the gateway stays reachable).
    LinkCut { node: String },
    /// Reconnect a node's interconnect.
    LinkRestore { node: String },
    /// Cut NODE's uplink (it loses the gateway), or the gateway itself for every node.
    GatewayCut { node: Option<String> },
    /// Undo gateway-cut for NODE, or for the gateway itself.
    GatewayRestore { node: Option<String> },
    /// Kill (SIGKILL) a daemon on a node, e.g. corosync, pacemaker-controld.
    KillDaemon { node: String, daemon: String },
    /// Run a command inside a node (its network, mount and UTS namespaces).
    Exec {
        node: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Randomized faults and operator actions, one after another, on a lab of its own (brought
    /// up with the VM, taken down at the end); prints the figures and fails unless every
    /// figure whose goal is zero is zero.
    Soak {
        /// How many faults.
        #[arg(long, default_value_t = 100)]
        runs: usize,
        /// The seed of the sequence (default: from the clock; printed, to replay a soak).
        #[arg(long)]
        seed: Option<u64>,
        /// Where our agents' and clevervm's release binaries are.
        #[arg(long)]
        agents: PathBuf,
        /// Only this kind of fault, named as in the figures (e.g. "agent killed in start").
        #[arg(long)]
        only: Option<String>,
    },
    /// Write the counter guest (guest.elf) and its libvirt domain XML (DOMAIN.xml) into OUT, for a
    /// cluster whose VM runs from MOUNT (the DRBD filesystem): the image and console paths in the
    /// XML are under MOUNT, where the files are to be copied. The Vagrant lab's boxes get them
    /// from `make vagrant-assets`.
    GuestImage {
        /// The directory to write guest.elf and DOMAIN.xml into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The directory the guest's files will be in on the nodes (its filesystem's mount).
        #[arg(long)]
        mount: PathBuf,
        /// The libvirt domain name.
        #[arg(long, default_value = "clever")]
        domain: String,
        /// The guest's RAM in MiB (its hibernation image is as large).
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(16..=4096))]
        mib: u32,
    },
    /// Internal: the soak's record writer, run inside a node.
    #[command(hide = true)]
    SoakWriter {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        from: u64,
    },
    /// Internal: the init process of a lab machine.
    #[command(hide = true)]
    Init {
        #[arg(long)]
        cgroup: PathBuf,
        #[arg(long, value_enum)]
        machine: MachineKind,
        #[arg(long, default_value_t = 0)]
        index: usize,
        #[arg(long, default_value_t = 0)]
        bridge_pid: i32,
        #[arg(long)]
        vm: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MachineKind {
    Bridge,
    Gateway,
    Node,
}

fn sibling(name: &str) -> Result<PathBuf, LabError> {
    let exe = std::env::current_exe().map_err(|e| LabError::Io {
        what: "locating",
        path: PathBuf::from("/proc/self/exe"),
        source: e,
    })?;
    Ok(exe.with_file_name(name))
}

fn run(cli: Cli) -> Result<ExitCode, LabError> {
    let dir = cli.dir;
    match cli.command {
        Commands::Init {
            cgroup,
            machine,
            index,
            bridge_pid,
            vm,
        } => {
            let layout = Layout::new(dir)?;
            let machine = match machine {
                MachineKind::Bridge => Machine::Bridge,
                MachineKind::Gateway => Machine::Gateway { bridge_pid },
                MachineKind::Node => Machine::Node {
                    index,
                    bridge_pid,
                    vm,
                },
            };
            Err(init::run(&layout, &machine, &Cgroup::new(cgroup)))
        }
        Commands::Up {
            nodes,
            agents,
            fence_agent,
            wait,
            vm,
            stock,
            vm_mib,
            vms,
            gateway_cadence,
        } => {
            let self_exe = sibling("clever-lab")?;
            let options = UpOptions {
                dir,
                nodes,
                fence_agent: match fence_agent {
                    Some(path) => path,
                    None => sibling("fence_lab")?,
                },
                agents_dir: match agents {
                    Some(path) => path,
                    None => self_exe.with_file_name(""),
                },
                self_exe,
                wait: Duration::from_secs(wait),
                vm: vm || vms > 1,
                stock,
                vm_mib,
                vms,
                gateway_cadence,
            };
            let lab = Lab::up(&options)?;
            let state = lab.state();
            println!(
                "lab up in {}: {} ({}), loop device {}, gateway check {}, filesystem {}, VM {}",
                state.dir.display(),
                state.nodes.join(" "),
                if state.clever_agents.is_empty() {
                    "none of our agents built".to_owned()
                } else {
                    format!("ocf:clever: {}", state.clever_agents.join(" "))
                },
                state.loop_device,
                state.gwping_agent,
                state.fs_agent,
                state.vm_agent,
            );
            print_status(&lab);
            Ok(ExitCode::SUCCESS)
        }
        Commands::Down => {
            let report = clever_lab::down(dir)?;
            println!(
                "lab down: {} processes killed, loop devices detached: {}",
                report.processes_killed,
                if report.loop_devices.is_empty() {
                    "none".to_owned()
                } else {
                    report.loop_devices.join(" ")
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Commands::Tour => {
            tour(&Lab::open(dir)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Status => {
            print_status(&Lab::open(dir)?);
            Ok(ExitCode::SUCCESS)
        }
        Commands::PowerCut { node } => {
            Lab::open(dir)?.power_cut(&node)?;
            println!("{node}: power cut");
            Ok(ExitCode::SUCCESS)
        }
        Commands::PowerOn { node } => {
            let pid = Lab::open(dir)?.power_on(&node, &sibling("clever-lab")?)?;
            println!("{node}: powered on (init pid {pid})");
            Ok(ExitCode::SUCCESS)
        }
        Commands::LinkCut { node } => {
            Lab::open(dir)?.link_cut(&node)?;
            println!("{node}: link cut");
            Ok(ExitCode::SUCCESS)
        }
        Commands::LinkRestore { node } => {
            Lab::open(dir)?.link_restore(&node)?;
            println!("{node}: link restored");
            Ok(ExitCode::SUCCESS)
        }
        Commands::GatewayCut { node } => {
            Lab::open(dir)?.gateway_cut(node.as_deref())?;
            println!(
                "gateway cut for {}",
                node.as_deref().unwrap_or("every node")
            );
            Ok(ExitCode::SUCCESS)
        }
        Commands::GatewayRestore { node } => {
            Lab::open(dir)?.gateway_restore(node.as_deref())?;
            println!(
                "gateway restored for {}",
                node.as_deref().unwrap_or("every node")
            );
            Ok(ExitCode::SUCCESS)
        }
        Commands::KillDaemon { node, daemon } => {
            let pids = Lab::open(dir)?.kill_daemon(&node, &daemon)?;
            println!("{node}: killed {daemon} {pids:?}");
            Ok(ExitCode::SUCCESS)
        }
        Commands::Soak {
            runs,
            seed,
            agents,
            only,
        } => soak(dir, runs, seed, agents, only),
        Commands::GuestImage {
            out,
            mount,
            domain,
            mib,
        } => {
            guest_image(&out, &mount, &domain, mib)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::SoakWriter { file, from } => {
            clever_lab::soak::writer(&file, from)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Exec { node, command } => {
            let status = Lab::open(dir)?.exec(&node, &command)?;
            let code = status.code().unwrap_or(128);
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
    }
}

/// The counter guest and its domain XML for nodes that keep them under `mount`: the XML names
/// `mount/guest.elf` as the kernel and `mount/console.log` as the serial console (appended to
/// across nodes, as in the labs), and schedules the guest's vCPU `SCHED_IDLE`.
fn guest_image(out: &Path, mount: &Path, domain: &str, mib: u32) -> Result<(), LabError> {
    if !mount.is_absolute() {
        return Err(LabError::Usage(format!(
            "--mount {}: give the absolute path of the directory on the nodes",
            mount.display()
        )));
    }
    // The name becomes a file name here and libvirt's domain name on the nodes.
    if domain.is_empty()
        || !domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(LabError::Usage(format!(
            "--domain {domain:?}: letters, digits, '-' and '_' only"
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| LabError::Io {
        what: "creating",
        path: out.to_owned(),
        source: e,
    })?;
    let elf = clever_lab::guest::build(out)?;
    // The assembler's intermediate files are of no use on the nodes.
    for scratch in ["guest.S", "guest.o"] {
        let path = out.join(scratch);
        std::fs::remove_file(&path).map_err(|e| LabError::Io {
            what: "removing",
            path,
            source: e,
        })?;
    }
    let xml = clever_lab::guest::idle_vcpu(&clever_lab::guest::domain_xml(
        domain,
        mib,
        &mount.join("guest.elf"),
        &mount.join("console.log"),
    ));
    let xml_path = out.join(format!("{domain}.xml"));
    std::fs::write(&xml_path, xml).map_err(|e| LabError::Io {
        what: "writing",
        path: xml_path.clone(),
        source: e,
    })?;
    println!(
        "{} and {}: copy both into {} on the node that holds the filesystem",
        elf.display(),
        xml_path.display(),
        mount.display()
    );
    Ok(())
}

fn soak(
    dir: PathBuf,
    runs: usize,
    seed: Option<u64>,
    agents: PathBuf,
    only: Option<String>,
) -> Result<ExitCode, LabError> {
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    println!("soak: {runs} runs, seed {seed} (replay with --seed {seed})");
    // Programs are run inside the nodes, whose working directory is not ours.
    let agents = std::fs::canonicalize(&agents).map_err(|e| LabError::Io {
        what: "locating",
        path: agents.clone(),
        source: e,
    })?;
    let self_exe = sibling("clever-lab")?;
    // Leftovers of an interrupted soak.
    clever_lab::down(&dir)?;
    // `up` in a process of its own: the machines are then not this process's children, and the
    // host's init reaps them when a power cut or `down` ends them.
    let up = std::process::Command::new(&self_exe)
        .arg("--dir")
        .arg(&dir)
        .args(["up", "--vm", "--agents"])
        .arg(&agents)
        .status()
        .map_err(|e| LabError::Io {
            what: "running",
            path: self_exe.clone(),
            source: e,
        })?;
    if !up.success() {
        return Err(LabError::Usage(format!(
            "clever-lab up failed ({up}); see above"
        )));
    }
    let lab = Lab::open(&dir)?;
    let options = clever_lab::soak::SoakOptions {
        runs,
        seed,
        self_exe,
        clevervm: agents.join("clevervm"),
        only,
    };
    let figures = match clever_lab::soak::run(&lab, &options) {
        Ok(figures) => figures,
        Err(e) => {
            eprintln!(
                "the lab is left up for inspection: clever-lab --dir {} status; remove it with \
                 clever-lab --dir {} down",
                dir.display(),
                dir.display()
            );
            return Err(e);
        }
    };
    println!("{figures}");
    if !figures.clean() {
        // The nodes' logs (pacemaker.log, the agents' lines) are what explains a bad figure.
        println!(
            "the lab is left up with its logs for inspection ({}/nodes/*/); remove it with \
             clever-lab --dir {} down",
            dir.display(),
            dir.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    clever_lab::down(&dir)?;
    Ok(ExitCode::SUCCESS)
}

fn tour(lab: &Lab) -> Result<(), LabError> {
    use clever_lab::config::ids;
    let deadline = Deadline::after(Duration::from_secs(180));
    println!("== The lab cluster");
    print_status(lab);
    let (seen_from, _) = lab.status(&deadline)?;
    println!("\n== Waiting for the VM stack to run");
    let status = lab.wait_for(&seen_from, "the VM to run", &deadline, |s| {
        s.settled_on(ids::VM, None).len() == 1
    })?;
    let from = status.running_on(ids::VM, None).concat();
    let Some(to) = lab
        .nodes()
        .iter()
        .find(|n| **n != from && lab.is_on(n))
        .cloned()
    else {
        return Err(LabError::Usage(
            "no other powered node to move the VM to".into(),
        ));
    };
    let counter = |lab: &Lab| {
        let serial = lab.serial();
        format!(
            "guest counter {} ({} boot(s))",
            serial.last().map_or("-".to_owned(), |n| n.to_string()),
            serial.boots
        )
    };
    if lab.state().vm {
        deadline.poll("the guest to count", Duration::from_millis(100), || {
            lab.serial().last().filter(|n| *n >= 3)
        })?;
    }
    println!("{} runs on {from}; {}", ids::VM, counter(lab));
    println!(
        "\n== Controlled migration: crm_resource --move {} --node {to}",
        ids::VM
    );
    let pacemaker = lab.pacemaker(&from)?;
    let started = std::time::Instant::now();
    pacemaker.move_to(ids::VM, &to, false, &deadline)?;
    lab.wait_for(&to, "the VM on the other node", &deadline, |s| {
        s.settled_on(ids::VM, None) == [to.as_str()]
    })?;
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "{} runs on {to} after {:.2} s; {}",
        ids::VM,
        took.as_secs_f64(),
        counter(lab)
    );
    if lab.state().vm {
        println!("(the counter went on from where it was: the VM was hibernated and resumed)");
    }
    pacemaker.clear(ids::VM, &deadline)?;
    println!(
        "crm_resource --clear {}: the VM stays where it is (stickiness)\n",
        ids::VM
    );
    print_status(lab);
    let dir = lab.layout().dir().display();
    let pid = lab
        .node_pid(&to)
        .map_or("PID".to_owned(), |p| p.to_string());
    println!(
        "\n== Look around\n\
         clever-lab --dir {dir} status\n\
         clever-lab --dir {dir} exec {to} -- /usr/sbin/crm_mon -1\n\
         nsenter -t {pid} -m -n -u /usr/sbin/crm_mon -1     (the same, by hand)\n\
         tail -f {dir}/serial/clever.log     (the guest's console, with --vm)\n\
         less {dir}/nodes/{to}/log-pacemaker/pacemaker.log\n\
         clever-lab --dir {dir} power-cut {to}     (then watch the other node fence it)\n\
         \n== Stop it\n\
         clever-lab --dir {dir} down     (or make demo-down)"
    );
    Ok(())
}

fn print_status(lab: &Lab) {
    for node in lab.nodes() {
        let power = match lab.node_pid(node) {
            Ok(pid) => format!(
                "on (init pid {pid}; clever-lab exec {node} -- CMD, or nsenter -t {pid} -m -n -u)"
            ),
            Err(_) => "OFF".to_owned(),
        };
        println!("{node}: {power}");
    }
    match lab.status(&Deadline::after(Duration::from_secs(10))) {
        Ok((seen_from, status)) => {
            println!(
                "cluster (seen from {seen_from}): DC {}, quorum {}",
                status.dc.as_deref().unwrap_or("none"),
                status.quorum.map_or("?", |q| if q { "yes" } else { "no" })
            );
            for node in &status.nodes {
                let state = if node.online {
                    "online"
                } else if node.unclean {
                    "UNCLEAN"
                } else {
                    "offline"
                };
                println!(
                    "  node {}: {state}{}",
                    node.name,
                    if node.is_dc { " (DC)" } else { "" }
                );
            }
            for resource in &status.resources {
                println!(
                    "  {} ({}): {}{} {}",
                    resource.id,
                    resource.agent,
                    resource.role,
                    if resource.failed { " FAILED" } else { "" },
                    resource.nodes.join(" ")
                );
            }
            for (node, name, value) in &status.node_attributes {
                println!("  attribute {name}={value} on {node}");
            }
            for failure in &status.failures {
                println!(
                    "  failed: {} on {}: {} {}",
                    failure.op_key, failure.node, failure.exit_status, failure.exit_reason
                );
            }
        }
        Err(e) => println!("cluster: no answer ({e})"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("clever-lab: {e}");
            ExitCode::FAILURE
        }
    }
}
