//! The configuration files of a lab: corosync.conf, each node's /etc/hosts, and the CIB.
//!
//! The CIB comes from the project's generator (`clever-cib`) fed a lab description (fence_lab
//! devices, the lab gateway, one VM stack on the shared device), then adapted to what the lab can
//! run, each change marked with a comment in the CIB:
//! - `ocf:linbit:drbd` → `ocf:pacemaker:Stateful` (no DRBD kernel module here; the loop device
//!   every node sees stands in for the replicated disk, so "DRBD" never refuses a mount),
//! - libvirtd (`lsb:`/`systemd:`) and the VM (`ocf:clever:vm`) → `ocf:pacemaker:Dummy` until the
//!   VM stack is integrated,
//! - `ocf:clever:gwping`/`ocf:clever:drbdfs` → `ocf:pacemaker:ping`/`ocf:heartbeat:Filesystem`
//!   when our binary was not staged,
//! - faster timings (dc-deadtime 1 s, gateway checks every 2 s) and a priority on the VM so that
//!   `priority-fencing-delay` lets the active node win a fencing race after a link cut,
//! - with several VM stacks (`--vms`), each on its own loop device: every stack's filesystem
//!   colocated with the first's, so that all VMs run on one node (the generator places each
//!   stack on its own).

use std::fmt::Write as _;

use clever_cib::build::{fs_id, vm_id};
use clever_cib::pacemaker::{
    Agent, Colocation, Constraint, NvPair, Operation, Primitive, Resource, Score,
};

use crate::error::LabError;
use crate::layout;

/// Resource ids of the lab's CIB (from the generator's naming scheme).
pub mod ids {
    /// The standalone Dummy that proves resources start at all.
    pub const DUMMY: &str = "dummy";
    /// The promotable clone standing in for DRBD.
    pub const DRBD_CLONE: &str = "drbd_r0-clone";
    pub const DRBD: &str = "drbd_r0";
    /// The shared filesystem.
    pub const FS: &str = "fs_clever";
    /// The VM (a Dummy until the VM stack is integrated).
    pub const VM: &str = "vm_clever";
    /// The floating address.
    pub const IP: &str = "ip_clever";
    pub const GWPING_CLONE: &str = "gwping-clone";
    pub const GWPING: &str = "gwping";
    /// The node attribute the gateway check sets.
    pub const GWPING_ATTRIBUTE: &str = "pingd";
}

/// Which implementation of an agent the lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentChoice {
    /// Ours (`ocf:clever:*`), staged from the build.
    Clever,
    /// The stock agent Debian ships.
    Stock,
}

/// How often the gateway check runs and how long its changes are held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GatewayCadence {
    /// The same for every agent, so that the stacks' other steps compare alike: a monitor every
    /// 2 s, 2 echo requests within 1 s, a dampen of 1 s. Faster than the stock agent is run on
    /// a real cluster (its probe alone takes ~2 s there).
    #[default]
    Lab,
    /// Each agent as the generator (ours) or its own metadata (stock) sets it up for a real
    /// cluster: ocf:clever:gwping every 2 s, dampen 5 s; ocf:pacemaker:ping every 10 s with a
    /// 60 s timeout, 3 attempts within 2 s, dampen 5 s. What users get.
    Own,
}

/// What the lab's CIB depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CibOptions {
    pub nodes: usize,
    pub lab_dir: String,
    /// The shared block devices (loop devices), one per VM stack: the first is the one a
    /// one-VM lab has; each further one gets a stack of its own ([`crate::layout::vm_name`]).
    pub shared_devices: Vec<String>,
    pub gwping: AgentChoice,
    pub fs: AgentChoice,
    /// Run the real VM (libvirtd per node) instead of a Dummy.
    pub vm: bool,
    /// With `vm`: `ocf:clever:vm`, or the stock `ocf:heartbeat:VirtualDomain` with `snapshot=`.
    pub vm_agent: AgentChoice,
    pub gateway_cadence: GatewayCadence,
}

/// corosync.conf for a lab of `nodes` nodes (knet, no crypto, token 1000 ms).
pub fn corosync_conf(nodes: usize) -> String {
    let mut text = String::from(
        "# Written by clever-lab.\n\
         totem {\n\
         \x20   version: 2\n\
         \x20   cluster_name: clever-lab\n\
         \x20   transport: knet\n\
         \x20   token: 1000\n\
         \x20   crypto_cipher: none\n\
         \x20   crypto_hash: none\n\
         }\n\
         nodelist {\n",
    );
    for index in 0..nodes {
        let _ = write!(
            text,
            "    node {{\n        ring0_addr: {}\n        name: {}\n        nodeid: {}\n    }}\n",
            layout::node_address(index),
            layout::node_name(index),
            layout::node_id(index)
        );
    }
    text.push_str("}\nquorum {\n    provider: corosync_votequorum\n");
    if nodes == 2 {
        text.push_str("    two_node: 1\n");
    }
    text.push_str(
        "}\n\
         logging {\n\
         \x20   to_logfile: yes\n\
         \x20   logfile: /var/log/corosync/corosync.log\n\
         \x20   to_stderr: no\n\
         \x20   to_syslog: no\n\
         \x20   timestamp: on\n\
         }\n",
    );
    text
}

/// /etc/hosts of a node: itself and its peers (libvirt resolves its own name at every domain
/// start; without an entry that costs 10 s in a namespace without DNS).
pub fn hosts(nodes: usize) -> String {
    let mut text = String::from("127.0.0.1\tlocalhost\n");
    for index in 0..nodes {
        let _ = writeln!(
            text,
            "{}\t{}",
            layout::node_address(index),
            layout::node_name(index)
        );
    }
    let _ = writeln!(text, "{}\tgateway", layout::gateway_address());
    text
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The lab's cluster description, in the generator's TOML.
pub fn lab_description(options: &CibOptions) -> String {
    let mut text = String::from(
        "# The lab cluster, written by clever-lab for the clever-cib generator.\n\
         [cluster]\n\
         name = \"clever-lab\"\n\
         resource_stickiness = 100\n\
         migration_threshold = 3\n\
         failure_timeout = \"10min\"\n\
         no_quorum_policy = \"stop\"\n\n",
    );
    for index in 0..options.nodes {
        let _ = writeln!(text, "[[node]]\nname = \"{}\"\n", layout::node_name(index));
    }
    text.push_str("[fencing]\nmode = \"devices\"\n\n");
    for index in 0..options.nodes {
        let _ = writeln!(
            text,
            "[[fencing.device]]\nnode = \"{}\"\nagent = \"fence_lab\"\nparams = {{ lab_dir = {} }}\n",
            layout::node_name(index),
            quoted(&options.lab_dir)
        );
    }
    let _ = write!(
        text,
        "[gwping]\n\
         host_list = [\"{gateway}\"]\n\
         multiplier = 1000\n",
        gateway = layout::gateway_address(),
    );
    if options.gateway_cadence == GatewayCadence::Lab {
        text.push_str("dampen = \"1s\"\nmonitor_interval = \"2s\"\n");
    }
    text.push_str("\n[libvirtd]\nclass = \"lsb\"\n");
    for index in 0..options.shared_devices.len().max(1) {
        let _ = write!(
            text,
            "\n[[drbd]]\n\
             name = \"{drbd}\"\n\
             device = \"/dev/drbd{index}\"\n\n\
             [[vm]]\n\
             name = \"{name}\"\n\
             drbd = \"{drbd}\"\n\
             config = \"{shared}/{name}.xml\"\n\
             stop_timeout = \"90s\"\n\
             mount = {{ directory = \"{shared}\", fstype = \"ext4\" }}\n\
             address = {{ ip = \"{service}\", cidr_netmask = 24, nic = \"{nic}\" }}\n",
            drbd = layout::drbd_name(index),
            name = layout::vm_name(index),
            service = layout::vm_address(index),
            nic = layout::UPLINK_IFACE,
            shared = layout::shared_mount(index),
        );
    }
    text
}

fn stand_in(primitive: &mut Primitive, agent: Agent, why: &str) {
    let was = primitive.agent.to_string();
    primitive.agent = agent;
    primitive.params.clear();
    primitive.comment = Some(format!(
        "LAB STAND-IN for {was}: {why} (clever-lab, not for production)"
    ));
}

/// The lab's CIB: the generator's output for [`lab_description`], adapted as the module says.
pub fn lab_cib(options: &CibOptions) -> Result<String, LabError> {
    let description = clever_cib::Description::from_toml(&lab_description(options))
        .map_err(|e| LabError::Cib(e.to_string()))?;
    let mut configuration =
        clever_cib::build(&description).map_err(|e| LabError::Cib(e.to_string()))?;
    let stacks = options.shared_devices.len().max(1);
    let fs_ids: Vec<String> = (0..stacks).map(|i| fs_id(&layout::vm_name(i))).collect();
    let vm_ids: Vec<String> = (0..stacks).map(|i| vm_id(&layout::vm_name(i))).collect();
    let stack_of = |ids: &[String], id: &str| ids.iter().position(|i| i == id);

    for resource in &mut configuration.resources {
        match resource {
            Resource::Clone(clone) => {
                let child = &mut clone.child;
                if child.agent == Agent::ocf("linbit", "drbd") {
                    stand_in(
                        child,
                        Agent::ocf("pacemaker", "Stateful"),
                        "no DRBD kernel module in the lab; every node sees the same loop device",
                    );
                } else if child.id == clever_cib::build::LIBVIRTD_ID {
                    stand_in(
                        child,
                        Agent::ocf("pacemaker", "Dummy"),
                        "libvirtd per node is not integrated in the lab yet",
                    );
                } else if child.id == ids::GWPING {
                    if options.gwping == AgentChoice::Stock {
                        child.agent = Agent::ocf("pacemaker", "ping");
                        child.comment = Some(
                            "LAB: the stock ping agent instead of ocf:clever:gwping".to_owned(),
                        );
                    }
                    match options.gateway_cadence {
                        GatewayCadence::Lab => {
                            child.params.push(NvPair::new("attempts", "2"));
                            child.params.push(NvPair::new("timeout", "1"));
                        }
                        // ocf:pacemaker:ping's own advertised monitor (its metadata), where the
                        // generator wrote ours.
                        GatewayCadence::Own if options.gwping == AgentChoice::Stock => {
                            for op in child.ops.iter_mut().filter(|op| op.name == "monitor") {
                                *op = Operation::new("monitor", "10s", "60s");
                            }
                        }
                        GatewayCadence::Own => {}
                    }
                }
            }
            Resource::Primitive(primitive) if stack_of(&fs_ids, &primitive.id).is_some() => {
                let index = stack_of(&fs_ids, &primitive.id).unwrap_or_default();
                primitive
                    .params
                    .retain(|p| p.name != "drbd_resource" && p.name != "device");
                let device = options
                    .shared_devices
                    .get(index)
                    .cloned()
                    .unwrap_or_default();
                primitive.params.insert(0, NvPair::new("device", device));
                let mut comment =
                    "LAB: the shared loop device stands in for the DRBD device".to_owned();
                if options.fs == AgentChoice::Stock {
                    primitive.agent = Agent::ocf("heartbeat", "Filesystem");
                    comment.push_str("; the stock Filesystem agent instead of ocf:clever:drbdfs");
                }
                primitive.comment = Some(comment);
            }
            Resource::Primitive(primitive)
                if stack_of(&vm_ids, &primitive.id).is_some()
                    && options.vm
                    && options.vm_agent == AgentChoice::Stock =>
            {
                let index = stack_of(&vm_ids, &primitive.id).unwrap_or_default();
                // The stock agent, as benchmarks compare it: save/restore into snapshot=.
                primitive.agent = Agent::ocf("heartbeat", "VirtualDomain");
                primitive.params.retain(|p| p.name == "config");
                primitive
                    .params
                    .push(NvPair::new("hypervisor", "qemu:///system"));
                primitive
                    .params
                    .push(NvPair::new("snapshot", layout::hibernate_dir(index)));
                primitive.comment = Some(
                    "LAB (stock agents): VirtualDomain with snapshot= instead of ocf:clever:vm"
                        .to_owned(),
                );
                primitive.meta.push(NvPair::new("priority", "10"));
            }
            Resource::Primitive(primitive)
                if stack_of(&vm_ids, &primitive.id).is_some() && options.vm =>
            {
                // The test guest has no ACPI: a graceful shutdown never completes.
                primitive.params.push(NvPair::new("shutdown_timeout", "10"));
                primitive.comment = Some(
                    "LAB: the test guest; libvirtd runs as a service of every lab node (no \
                     systemd to control it), the libvirtd clone is a Dummy"
                        .to_owned(),
                );
                primitive.meta.push(NvPair::new("priority", "10"));
            }
            Resource::Primitive(primitive) if stack_of(&vm_ids, &primitive.id).is_some() => {
                stand_in(
                    primitive,
                    Agent::ocf("pacemaker", "Dummy"),
                    "the VM stack is not integrated in the lab yet",
                );
                primitive.meta.push(NvPair::new("priority", "10"));
            }
            Resource::Primitive(_) => {}
        }
    }
    // Several stacks: the generator places each on its own; the lab keeps them on one node (the
    // filesystems follow the first's, and each drags its DRBD stand-in's promotion along).
    for fs in fs_ids.iter().skip(1) {
        configuration
            .constraints
            .push(Constraint::Colocation(Colocation {
                id: format!("col_lab_{fs}_with_{}", ids::FS),
                rsc: fs.clone(),
                with_rsc: ids::FS.to_owned(),
                with_role: None,
                score: Score::Infinity,
            }));
    }
    configuration.resources.push(Resource::Primitive(Primitive {
        id: ids::DUMMY.to_owned(),
        agent: Agent::ocf("pacemaker", "Dummy"),
        comment: Some("LAB: a resource with no dependencies, to see the cluster run".into()),
        params: Vec::new(),
        meta: Vec::new(),
        ops: vec![Operation::new("monitor", "10s", "20s")],
    }));
    configuration.properties.extend([
        NvPair::new("dc-deadtime", "1s"),
        NvPair::new("stonith-timeout", "30s"),
        NvPair::new("priority-fencing-delay", "2s"),
        NvPair::new("cluster-recheck-interval", "1min"),
    ]);
    clever_cib::xml::render(&configuration).map_err(|e| LabError::Cib(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> CibOptions {
        CibOptions {
            nodes: 2,
            lab_dir: "/run/clever-lab".into(),
            shared_devices: vec!["/dev/loop7".into()],
            gwping: AgentChoice::Clever,
            fs: AgentChoice::Stock,
            vm: false,
            vm_agent: AgentChoice::Clever,
            gateway_cadence: GatewayCadence::Lab,
        }
    }

    #[test]
    fn at_their_own_cadence_the_gateway_checks_run_as_on_a_real_cluster() {
        let ours = lab_cib(&CibOptions {
            gateway_cadence: GatewayCadence::Own,
            ..options()
        })
        .unwrap();
        assert!(ours.contains(r#"name="dampen" value="5s""#), "{ours}");
        assert!(!ours.contains(r#"name="attempts""#), "{ours}");
        assert!(ours.contains(r#"name="monitor" interval="2s""#), "{ours}");
        let stock = lab_cib(&CibOptions {
            gateway_cadence: GatewayCadence::Own,
            gwping: AgentChoice::Stock,
            ..options()
        })
        .unwrap();
        assert!(
            stock.contains(r#"provider="pacemaker" type="ping""#),
            "{stock}"
        );
        assert!(stock.contains(r#"name="dampen" value="5s""#), "{stock}");
        assert!(
            stock.contains(r#"name="monitor" interval="10s" timeout="60s""#),
            "{stock}"
        );
        let lab = lab_cib(&options()).unwrap();
        assert!(lab.contains(r#"name="dampen" value="1s""#), "{lab}");
        assert!(lab.contains(r#"name="attempts" value="2""#), "{lab}");
    }

    #[test]
    fn corosync_conf_lists_every_node_and_two_node_only_for_two() {
        let two = corosync_conf(2);
        assert!(two.contains("ring0_addr: 10.213.0.12"), "{two}");
        assert!(two.contains("two_node: 1"));
        let three = corosync_conf(3);
        assert!(three.contains("name: node3"));
        assert!(!three.contains("two_node"));
    }

    #[test]
    fn cib_has_lab_fencing_and_stand_ins() {
        let cib = lab_cib(&options()).unwrap();
        assert!(cib.contains(r#"type="fence_lab""#), "{cib}");
        assert!(
            cib.contains(r#"name="lab_dir" value="/run/clever-lab""#),
            "{cib}"
        );
        assert!(cib.contains(r#"type="Stateful""#), "{cib}");
        assert!(cib.contains(r#"value="/dev/loop7""#), "{cib}");
        assert!(
            cib.contains(r#"provider="heartbeat" type="Filesystem""#),
            "{cib}"
        );
        assert!(cib.contains(r#"provider="clever" type="gwping""#), "{cib}");
        assert!(!cib.contains(r#"provider="linbit""#), "{cib}");
        assert!(!cib.contains("drbd_resource"), "{cib}");
        assert!(cib.contains(r#"name="dc-deadtime" value="1s""#), "{cib}");
        assert!(cib.contains(r#"id="dummy""#), "{cib}");
        assert!(cib.contains(r#"id="vm_clever" class="ocf" provider="pacemaker" type="Dummy""#));
    }

    #[test]
    fn with_the_vm_the_cib_runs_our_agent_with_its_hibernation_directory_on_the_shared_disk() {
        let cib = lab_cib(&CibOptions {
            vm: true,
            ..options()
        })
        .unwrap();
        assert!(
            cib.contains(r#"id="vm_clever" class="ocf" provider="clever" type="vm""#),
            "{cib}"
        );
        assert!(
            cib.contains(r#"name="hibernate_dir" value="/srv/clever/hibernate""#),
            "{cib}"
        );
        // The agent links libvirt's managed-save path itself: nothing binds over it.
        assert!(!cib.contains("save_clever"), "{cib}");
        assert!(!cib.contains("/var/lib/libvirt/qemu/save"), "{cib}");
        assert!(
            cib.contains(r#"name="config" value="/srv/clever/clever.xml""#),
            "{cib}"
        );
    }

    #[test]
    fn three_vm_stacks_each_have_their_own_device_and_directory_and_stay_on_one_node() {
        let cib = lab_cib(&CibOptions {
            vm: true,
            shared_devices: vec![
                "/dev/loop7".into(),
                "/dev/loop8".into(),
                "/dev/loop9".into(),
            ],
            ..options()
        })
        .unwrap();
        for (name, drbd, device, address) in [
            ("clever", "r0", "/dev/loop7", "10.213.1.100"),
            ("clever2", "r1", "/dev/loop8", "10.213.1.101"),
            ("clever3", "r2", "/dev/loop9", "10.213.1.102"),
        ] {
            assert!(
                cib.contains(&format!(
                    r#"id="vm_{name}" class="ocf" provider="clever" type="vm""#
                )),
                "{cib}"
            );
            assert!(
                cib.contains(&format!(r#"value="/srv/{name}/hibernate""#)),
                "{cib}"
            );
            assert!(
                cib.contains(&format!(r#"value="/srv/{name}/{name}.xml""#)),
                "{cib}"
            );
            assert!(cib.contains(&format!(r#"id="drbd_{drbd}-clone""#)), "{cib}");
            assert!(cib.contains(&format!(r#"value="{device}""#)), "{cib}");
            assert!(cib.contains(&format!(r#"value="{address}""#)), "{cib}");
        }
        assert!(!cib.contains(r#"type="drbd""#), "{cib}");
        for fs in ["fs_clever2", "fs_clever3"] {
            assert!(
                cib.contains(&format!(
                    r#"id="col_lab_{fs}_with_fs_clever" rsc="{fs}" with-rsc="fs_clever" score="INFINITY""#
                )),
                "{cib}"
            );
        }
        // One stack: nothing of the kind.
        assert!(!lab_cib(&options()).unwrap().contains("col_lab_"));
    }

    #[test]
    fn stock_vm_is_virtual_domain_with_snapshot() {
        let cib = lab_cib(&CibOptions {
            vm: true,
            vm_agent: AgentChoice::Stock,
            ..options()
        })
        .unwrap();
        assert!(
            cib.contains(r#"provider="heartbeat" type="VirtualDomain""#),
            "{cib}"
        );
        assert!(
            cib.contains(r#"name="snapshot" value="/srv/clever/hibernate""#),
            "{cib}"
        );
        assert!(!cib.contains(r#"name="hibernate_dir""#), "{cib}");
    }
}
