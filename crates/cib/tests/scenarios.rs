//! Scenario suite: the generated CIB under Pacemaker's own scheduler (`crm_simulate`), for 2, 3
//! and 16 nodes with 1 and 10 VMs. Every step checks, from Pacemaker's XML output:
//! - each VM's DRBD Promoted instance, filesystem, VM and address are on one node and nowhere
//!   else, and never two Promoted instances of one DRBD resource;
//! - the executed transition, replayed action by action, never mounts without the Promoted
//!   instance, starts a VM without its mount and libvirtd, or an address without the Promoted
//!   instance, and never stops/demotes under a running dependant; the transition graph makes
//!   every such pair wait for the other (promote → mount → VM, promote → address, and the
//!   reverse on stop), and a survivor promotes only after the failed node is fenced.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use clever_cib::build::{drbd_clone_id, drbd_primitive_id, fs_id, ip_id, vm_id};
use clever_cib::Description;

use crate::sim::{formed_status, Ev, Executed, Lab, Status, Step};

/// A settled cluster (after the initial placement) and where each VM runs.
type Settled = (String, BTreeMap<String, String>);

type SettledCells = BTreeMap<(usize, usize), Arc<OnceLock<Settled>>>;

/// The settled state per cluster shape, computed once and shared by the scenarios.
static SETTLED: Mutex<SettledCells> = Mutex::new(BTreeMap::new());

/// Gateway score every healthy node has (gwping: 1 host × multiplier 1000).
const PINGD: &str = "1000";
/// Promotion score the DRBD agent gives an UpToDate replica.
const PROMOTION: &str = "10000";

/// One VM of a test cluster and its DRBD replicas.
#[derive(Debug, Clone)]
pub struct TestVm {
    pub name: String,
    pub drbd: String,
    pub replicas: Vec<String>,
}

impl TestVm {
    fn drbd_primitive(&self) -> String {
        drbd_primitive_id(&self.drbd)
    }
}

/// A cluster of `nodes` nodes and `vms` VMs, as the scenarios describe it.
#[derive(Debug, Clone)]
pub struct TestCluster {
    pub shape: (usize, usize),
    pub nodes: Vec<String>,
    pub vms: Vec<TestVm>,
}

impl TestCluster {
    /// Every DRBD resource has two replicas (Debian 12's in-kernel DRBD 8.4 replicates between
    /// two nodes): VM `v` on nodes `2v` and `2v+1` (modulo the node count), so with 3 or more
    /// nodes the VMs spread over different pairs.
    pub fn new(nodes: usize, vms: usize) -> Self {
        let names: Vec<String> = (1..=nodes).map(|i| format!("node{i}")).collect();
        let shape = (nodes, vms);
        let vms = (0..vms)
            .map(|v| TestVm {
                name: format!("vm{v}"),
                drbd: format!("r{v}"),
                replicas: vec![
                    names[(2 * v) % nodes].clone(),
                    names[(2 * v + 1) % nodes].clone(),
                ],
            })
            .collect();
        TestCluster {
            shape,
            nodes: names,
            vms,
        }
    }

    pub fn toml(&self) -> String {
        let mut text = String::from(
            "[cluster]\nname = \"test\"\nresource_stickiness = 100\nmigration_threshold = 3\n\
             failure_timeout = \"10min\"\n\n[gwping]\nhost_list = [\"192.0.2.1\"]\n\
             multiplier = 1000\n\n",
        );
        for node in &self.nodes {
            let _ = writeln!(text, "[[node]]\nname = \"{node}\"\n");
        }
        // One SBD device fences every node: a real-world setup, and far fewer resources for the
        // simulator to carry than a device per node.
        let all: Vec<String> = self.nodes.iter().map(|n| format!("\"{n}\"")).collect();
        let _ = writeln!(
            text,
            "[fencing]\nmode = \"devices\"\n\n[[fencing.device]]\nname = \"fence_sbd\"\n\
             agent = \"fence_sbd\"\nnodes = [{}]\n\
             params = {{ devices = \"/dev/disk/by-id/wwn-0x5000c500a1b2c3d4\" }}\n",
            all.join(", ")
        );
        for (i, vm) in self.vms.iter().enumerate() {
            let replicas: Vec<String> = vm.replicas.iter().map(|r| format!("\"{r}\"")).collect();
            let _ = writeln!(
                text,
                "[[drbd]]\nname = \"{}\"\ndevice = \"/dev/drbd{i}\"\nnodes = [{}]\n",
                vm.drbd,
                replicas.join(", ")
            );
            let _ = writeln!(
                text,
                "[[vm]]\nname = \"{0}\"\ndrbd = \"{1}\"\nconfig = \"/srv/{0}/{0}.xml\"\n\
                 mount = {{ directory = \"/srv/{0}\" }}\n\
                 address = {{ ip = \"10.1.{2}.{3}\", cidr_netmask = 16 }}\n",
                vm.name,
                vm.drbd,
                i / 200,
                i % 200 + 10
            );
        }
        text
    }

    /// The status of a freshly formed and probed cluster: every node online with its gateway
    /// score and the promotion score of each DRBD replica it holds.
    pub fn status_xml(&self) -> String {
        let description = Description::from_toml(&self.toml()).unwrap();
        let configuration = clever_cib::build(&description).unwrap();
        formed_status(&configuration, &|node| {
            let mut attributes = vec![("pingd".to_owned(), PINGD.to_owned())];
            for vm in self
                .vms
                .iter()
                .filter(|vm| vm.replicas.iter().any(|r| r == node))
            {
                attributes.push((
                    format!("master-{}", vm.drbd_primitive()),
                    PROMOTION.to_owned(),
                ));
            }
            attributes
        })
    }

    pub fn lab(&self, name: &str) -> Lab {
        let outputs = clever_cib::generate(&self.toml()).unwrap();
        Lab::new(name, &outputs.cib_xml, &self.status_xml())
    }

    /// A lab continuing from the settled initial placement (computed, and checked, once per
    /// cluster shape), and where each VM runs in it.
    pub fn settled_lab(&self, name: &str) -> (Lab, BTreeMap<String, String>) {
        let cell = SETTLED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(self.shape)
            .or_default()
            .clone();
        let (cib, placement) = cell.get_or_init(|| {
            let mut lab = self.lab("settle");
            let placement = self.start(&mut lab);
            let cib = lab.cib();
            lab.finish();
            (cib, placement)
        });
        (Lab::from_cib(name, cib), placement.clone())
    }

    /// Where each VM's complete stack runs (`None`: stopped everywhere), after checking that no
    /// part of any stack runs anywhere else.
    pub fn placement(&self, step: &Step) -> BTreeMap<String, Option<String>> {
        self.vms
            .iter()
            .map(|vm| {
                (
                    vm.name.clone(),
                    self.stack_node(vm, &step.after, &step.label),
                )
            })
            .collect()
    }

    /// Checks that no part of any stack runs away from its DRBD Promoted instance or below a
    /// missing lower layer, allowing incomplete stacks (a transition stopped by a failure).
    pub fn assert_consistent(&self, step: &Step) {
        let status = &step.after;
        for vm in &self.vms {
            let promoted = status.nodes_in_role(&vm.drbd_primitive(), "Promoted");
            let fs = status.nodes_of(&fs_id(&vm.name));
            let domain = status.nodes_of(&vm_id(&vm.name));
            let ip = status.nodes_of(&ip_id(&vm.name));
            let context = format!(
                "{}: {}: promoted {promoted:?} fs {fs:?} vm {domain:?} ip {ip:?}",
                step.label, vm.name
            );
            assert!(
                promoted.len() <= 1,
                "two Promoted DRBD instances: {context}"
            );
            let within =
                |upper: &[String], lower: &[String]| upper.iter().all(|n| lower.contains(n));
            assert!(
                within(&fs, &promoted),
                "mounted without Promoted: {context}"
            );
            assert!(within(&domain, &fs), "VM without its mount: {context}");
            assert!(
                within(&ip, &promoted),
                "address without the Promoted instance: {context}"
            );
        }
    }

    fn stack_node(&self, vm: &TestVm, status: &Status, label: &str) -> Option<String> {
        let drbd = vm.drbd_primitive();
        let promoted = status.nodes_in_role(&drbd, "Promoted");
        let fs = status.nodes_of(&fs_id(&vm.name));
        let domain = status.nodes_of(&vm_id(&vm.name));
        let ip = status.nodes_of(&ip_id(&vm.name));
        let context = format!(
            "{label}: {}: promoted {promoted:?} fs {fs:?} vm {domain:?} ip {ip:?}",
            vm.name
        );
        assert!(
            promoted.len() <= 1,
            "two Promoted DRBD instances: {context}"
        );
        for node in status.nodes_of(&drbd) {
            assert!(
                vm.replicas.contains(&node),
                "DRBD off its replicas: {context}"
            );
        }
        let Some(node) = promoted.first() else {
            assert!(
                fs.is_empty() && domain.is_empty() && ip.is_empty(),
                "stack parts without the Promoted instance: {context}"
            );
            return None;
        };
        let here = vec![node.clone()];
        assert_eq!(
            fs, here,
            "filesystem not (only) with the Promoted instance: {context}"
        );
        assert_eq!(domain, here, "VM not (only) with its filesystem: {context}");
        assert_eq!(ip, here, "address not (only) with its VM: {context}");
        assert!(
            status.nodes_of("libvirtd").contains(node),
            "VM without libvirtd: {context}"
        );
        Some(node.clone())
    }

    /// Replays the executed transition from the status before it, checking every action's
    /// preconditions, then checks the graph orders each dependent pair.
    pub fn check_transition(&self, step: &Step) {
        let label = &step.label;
        let mut running: BTreeSet<(String, String)> = BTreeSet::new();
        let mut promoted: BTreeSet<(String, String)> = BTreeSet::new();
        for (id, placed) in &step.before.active {
            for p in placed {
                running.insert((id.clone(), p.node.clone()));
                if p.role == "Promoted" {
                    promoted.insert((id.clone(), p.node.clone()));
                }
            }
        }
        let by_rsc: BTreeMap<String, &TestVm> = self
            .vms
            .iter()
            .flat_map(|vm| {
                [
                    (vm.drbd_primitive(), vm),
                    (fs_id(&vm.name), vm),
                    (vm_id(&vm.name), vm),
                    (ip_id(&vm.name), vm),
                ]
            })
            .collect();
        for (index, action) in step.executed.iter().enumerate() {
            let (rsc, op, node) = match action {
                Executed::Fence { target } => {
                    running.retain(|(_, n)| n != target);
                    promoted.retain(|(_, n)| n != target);
                    continue;
                }
                Executed::Pseudo => continue,
                Executed::Resource { rsc, op, node } => (rsc, op.as_str(), node),
            };
            let at = format!("{label}: action {index} {op} {rsc} on {node}");
            let is_running = |r: &str, running: &BTreeSet<(String, String)>| {
                running.contains(&(r.to_owned(), node.clone()))
            };
            if rsc == "libvirtd" && op == "stop" {
                for vm in &self.vms {
                    assert!(
                        !is_running(&vm_id(&vm.name), &running),
                        "{at}: VM still running"
                    );
                }
            }
            if let Some(vm) = by_rsc.get(rsc) {
                let (drbd, fs, domain, ip) = (
                    vm.drbd_primitive(),
                    fs_id(&vm.name),
                    vm_id(&vm.name),
                    ip_id(&vm.name),
                );
                match op {
                    "promote" if rsc == &drbd => {
                        let other = promoted.iter().find(|(r, _)| r == &drbd);
                        assert!(other.is_none(), "{at}: already Promoted at {other:?}");
                    }
                    "demote" | "stop" if rsc == &drbd => {
                        assert!(!is_running(&fs, &running), "{at}: still mounted");
                        assert!(!is_running(&ip, &running), "{at}: address still up");
                    }
                    "start" if rsc == &fs => {
                        let here = (drbd.clone(), node.clone());
                        assert!(promoted.contains(&here), "{at}: DRBD not Promoted here");
                    }
                    "stop" if rsc == &fs => {
                        assert!(!is_running(&domain, &running), "{at}: VM still running");
                    }
                    "start" if rsc == &domain => {
                        assert!(is_running(&fs, &running), "{at}: not mounted");
                        assert!(is_running("libvirtd", &running), "{at}: no libvirtd");
                    }
                    "start" if rsc == &ip => {
                        let here = (drbd.clone(), node.clone());
                        assert!(promoted.contains(&here), "{at}: DRBD not Promoted here");
                    }
                    _ => {}
                }
            }
            let key = (rsc.clone(), node.clone());
            match op {
                "start" => {
                    running.insert(key);
                }
                "stop" => {
                    running.remove(&key);
                    promoted.remove(&key);
                }
                "promote" => {
                    promoted.insert(key);
                }
                "demote" => {
                    promoted.remove(&key);
                }
                _ => {}
            }
        }
        self.check_graph(step);
    }

    fn check_graph(&self, step: &Step) {
        let fenced = step.fenced();
        for vm in &self.vms {
            let (drbd, fs, domain, ip) = (
                vm.drbd_primitive(),
                fs_id(&vm.name),
                vm_id(&vm.name),
                ip_id(&vm.name),
            );
            for node in &self.nodes {
                let n = node.as_str();
                // Starts: promote → mount → VM, promote → address; libvirtd → VM.
                if step.did(&drbd, "promote", n) && step.did(&fs, "start", n) {
                    step.assert_after((&drbd, "promote", n), (&fs, "start", n));
                }
                if step.did(&fs, "start", n) && step.did(&domain, "start", n) {
                    step.assert_after((&fs, "start", n), (&domain, "start", n));
                }
                if step.did("libvirtd", "start", n) && step.did(&domain, "start", n) {
                    step.assert_after(("libvirtd", "start", n), (&domain, "start", n));
                }
                if step.did(&drbd, "promote", n) && step.did(&ip, "start", n) {
                    step.assert_after((&drbd, "promote", n), (&ip, "start", n));
                }
                // Stops: VM → unmount → demote, address → demote.
                if step.did(&ip, "stop", n) && step.did(&drbd, "demote", n) {
                    step.assert_after((&ip, "stop", n), (&drbd, "demote", n));
                }
                if step.did(&domain, "stop", n) && step.did(&fs, "stop", n) {
                    step.assert_after((&domain, "stop", n), (&fs, "stop", n));
                }
                if step.did(&fs, "stop", n) && step.did(&drbd, "demote", n) {
                    step.assert_after((&fs, "stop", n), (&drbd, "demote", n));
                }
                // A promotion elsewhere waits for the old Primary's demotion or fencing.
                if step.did(&drbd, "promote", n) {
                    let promote = step.graph.find(&drbd, "promote", n).unwrap();
                    for old in step.before.nodes_in_role(&drbd, "Promoted") {
                        if old == *node {
                            continue;
                        }
                        let waits = if fenced.contains(&old) {
                            let fence = step.graph.find_fencing(&old).unwrap();
                            step.graph.waits_for(promote, fence)
                        } else {
                            let demote =
                                step.graph.find(&drbd, "demote", &old).unwrap_or_else(|| {
                                    panic!(
                                        "{}: {drbd} promoted on {n} while Promoted on {old}",
                                        step.label
                                    )
                                });
                            step.graph.waits_for(promote, demote)
                        };
                        assert!(
                            waits,
                            "{}: {drbd} promote on {n} does not wait for {old}",
                            step.label
                        );
                    }
                }
            }
        }
    }

    /// Runs a step, checks its transition and placement, and returns the placement.
    pub fn step(
        &self,
        lab: &mut Lab,
        label: &str,
        events: &[Ev<'_>],
    ) -> (Step, BTreeMap<String, Option<String>>) {
        let step = lab.simulate(label, events);
        self.check_transition(&step);
        let placement = self.placement(&step);
        (step, placement)
    }

    /// Initial placement: every stack complete on one of its replicas.
    pub fn start(&self, lab: &mut Lab) -> BTreeMap<String, String> {
        let (step, placement) = self.step(lab, "initial placement", &[]);
        assert!(step.fenced().is_empty(), "no fencing at start");
        for node in &self.nodes {
            assert!(
                step.after.nodes_of("gwping").contains(node),
                "gwping on {node}"
            );
            assert!(
                step.after.nodes_of("libvirtd").contains(node),
                "libvirtd on {node}"
            );
        }
        self.complete(&placement, "initial placement")
    }

    /// Asserts every stack is running and returns where.
    pub fn complete(
        &self,
        placement: &BTreeMap<String, Option<String>>,
        label: &str,
    ) -> BTreeMap<String, String> {
        let mut result = BTreeMap::new();
        for vm in &self.vms {
            let node = placement[&vm.name]
                .clone()
                .unwrap_or_else(|| panic!("{label}: {} is not running", vm.name));
            assert!(
                vm.replicas.contains(&node),
                "{label}: {} off its replicas",
                vm.name
            );
            result.insert(vm.name.clone(), node);
        }
        result
    }

    /// Asserts that VMs that were on `left` moved to another replica and all others stayed.
    pub fn assert_moved_off(
        &self,
        before: &BTreeMap<String, String>,
        after: &BTreeMap<String, String>,
        left: &str,
        label: &str,
    ) {
        for vm in &self.vms {
            let (was, now) = (&before[&vm.name], &after[&vm.name]);
            if was == left {
                assert_ne!(now, left, "{label}: {} stayed on {left}", vm.name);
            } else {
                assert_eq!(now, was, "{label}: {} moved needlessly", vm.name);
            }
        }
    }

    /// Asserts the step started, stopped, promoted or demoted nothing of any VM stack (a DRBD
    /// instance may start Unpromoted, as on a returning node).
    pub fn assert_quiet(&self, step: &Step) {
        for action in &step.executed {
            let Executed::Resource { rsc, op, node } = action else {
                continue;
            };
            let drbd = self.vms.iter().any(|vm| &vm.drbd_primitive() == rsc);
            let rest = self
                .vms
                .iter()
                .any(|vm| [fs_id(&vm.name), vm_id(&vm.name), ip_id(&vm.name)].contains(rsc));
            let disruptive = match op.as_str() {
                "stop" | "demote" | "promote" => drbd || rest,
                "start" => rest,
                _ => false,
            };
            assert!(
                !disruptive,
                "{}: unexpected {op} of {rsc} on {node}",
                step.label
            );
        }
    }
}

fn first_vm(cluster: &TestCluster) -> &TestVm {
    &cluster.vms[0]
}

// The scenarios. Each takes the cluster size so the matrix below runs it for every shape.

pub fn initial_placement(nodes: usize, vms: usize) {
    let cluster = TestCluster::new(nodes, vms);
    let mut lab = cluster.lab("initial");
    cluster.start(&mut lab);
    let (step, _) = cluster.step(&mut lab, "settled", &[]);
    cluster.assert_quiet(&step);
    lab.finish();
}

/// The active node's gateway score drops to 0 (`Some("0")`) or disappears (`None`); the stacks
/// move; when the gateway comes back nothing moves back.
pub fn gateway_lost(nodes: usize, vms: usize, value: Option<&str>) {
    let cluster = TestCluster::new(nodes, vms);
    let (mut lab, before) = cluster.settled_lab("gateway");
    let active = before[&first_vm(&cluster).name].clone();
    lab.node_attribute(&active, "pingd", value);
    let (step, placement) = cluster.step(&mut lab, "gateway lost", &[]);
    assert!(step.fenced().is_empty(), "losing the gateway fences nobody");
    let after = cluster.complete(&placement, &step.label);
    cluster.assert_moved_off(&before, &after, &active, &step.label);
    // The rule forbids the Promoted role only: DRBD stays up there as the Secondary that keeps
    // the data replicated (stopped, the node's copy goes stale, and a later failover to it finds
    // an Outdated disk).
    let drbd = first_vm(&cluster).drbd_primitive();
    assert!(
        !step.did(&drbd, "stop", &active),
        "{}: {drbd} stopped on {active}, which only lost its gateway",
        step.label
    );
    lab.node_attribute(&active, "pingd", Some(PINGD));
    let (step, placement) = cluster.step(&mut lab, "gateway back", &[]);
    cluster.assert_quiet(&step);
    assert_eq!(
        cluster.complete(&placement, &step.label),
        after,
        "no move back"
    );
    lab.finish();
}

/// Every replica of the first VM loses its gateway: that stack stops everywhere (nowhere is
/// better than a node that cannot be reached); one gateway back brings it up there.
pub fn all_gateways_lost(nodes: usize, vms: usize) {
    let cluster = TestCluster::new(nodes, vms);
    let (mut lab, _) = cluster.settled_lab("all-gateways");
    let vm = first_vm(&cluster).clone();
    for node in &vm.replicas {
        lab.node_attribute(node, "pingd", Some("0"));
    }
    let (step, placement) = cluster.step(&mut lab, "all gateways lost", &[]);
    assert_eq!(placement[&vm.name], None, "{}: stack must stop", step.label);
    let survivor = vm.replicas.last().unwrap().clone();
    lab.node_attribute(&survivor, "pingd", Some(PINGD));
    let (step, placement) = cluster.step(&mut lab, "one gateway back", &[]);
    assert_eq!(placement[&vm.name], Some(survivor), "{}", step.label);
    lab.finish();
}

/// What `clevervm migrate` / `unmigrate` do: ban the Promoted role from the active node, then
/// clear the ban (no move back); then `--move` it back explicitly.
pub fn ban_move_clear(nodes: usize, vms: usize) {
    let cluster = TestCluster::new(nodes, vms);
    let (mut lab, before) = cluster.settled_lab("ban-move-clear");
    let vm = first_vm(&cluster).clone();
    let clone = drbd_clone_id(&vm.drbd);
    let active = before[&vm.name].clone();
    lab.crm_resource(&["--ban", "--promoted", "-r", &clone, "-N", &active]);
    let (step, placement) = cluster.step(&mut lab, "ban", &[]);
    let banned = cluster.complete(&placement, &step.label);
    assert_ne!(banned[&vm.name], active, "{}: did not move", step.label);
    for other in cluster.vms.iter().filter(|v| v.name != vm.name) {
        assert_eq!(
            banned[&other.name], before[&other.name],
            "{}: {} moved",
            step.label, other.name
        );
    }
    lab.crm_resource(&["--clear", "-r", &clone]);
    let (step, placement) = cluster.step(&mut lab, "clear after ban", &[]);
    cluster.assert_quiet(&step);
    assert_eq!(
        cluster.complete(&placement, &step.label),
        banned,
        "no move back"
    );
    lab.crm_resource(&["--move", "--promoted", "-r", &clone, "-N", &active]);
    let (step, placement) = cluster.step(&mut lab, "move back", &[]);
    let moved = cluster.complete(&placement, &step.label);
    assert_eq!(
        moved[&vm.name], active,
        "{}: not moved to {active}",
        step.label
    );
    for other in cluster.vms.iter().filter(|v| v.name != vm.name) {
        assert_eq!(
            moved[&other.name], before[&other.name],
            "{}: {} moved",
            step.label, other.name
        );
    }
    lab.finish();
}

/// The VM's monitor fails: restarted in place below `migration-threshold` (3), moved with its
/// whole stack at the threshold.
pub fn monitor_failures(nodes: usize, vms: usize) {
    let cluster = TestCluster::new(nodes, vms);
    let (mut lab, before) = cluster.settled_lab("monitor-failures");
    let vm = first_vm(&cluster).clone();
    let active = before[&vm.name].clone();
    let domain = vm_id(&vm.name);
    for failure in 1..=3 {
        let spec = format!("{domain}_monitor_10000@{active}=7");
        let label = format!("monitor failure {failure}");
        let (step, placement) = cluster.step(&mut lab, &label, &[Ev::Inject(spec)]);
        let after = cluster.complete(&placement, &label);
        if failure < 3 {
            assert_eq!(after, before, "{label}: recovered in place");
            assert!(step.did(&domain, "stop", &active), "{label}: VM stopped");
            assert!(step.did(&domain, "start", &active), "{label}: VM restarted");
            // The address waits for the promotion only: a VM restarted in place leaves it up.
            assert!(
                !step.did(&ip_id(&vm.name), "stop", &active),
                "{label}: address stopped"
            );
        } else {
            for other in cluster.vms.iter().filter(|v| v.name != vm.name) {
                assert_eq!(
                    after[&other.name], before[&other.name],
                    "{label}: {} moved",
                    other.name
                );
            }
            assert_ne!(after[&vm.name], active, "{label}: moved at the threshold");
        }
    }
    // failure-timeout (10min): 11 minutes later the failures have expired, so banning the new
    // node sends the stack back to the node where it failed (with the fail count still in
    // force it could run nowhere).
    let moved_to = lab.history.last().map(|s| s.after.clone()).unwrap();
    let current = cluster
        .stack_node(&vm, &moved_to, "after threshold")
        .unwrap();
    let clone = drbd_clone_id(&vm.drbd);
    lab.crm_resource(&["--ban", "--promoted", "-r", &clone, "-N", &current]);
    let label = "ban after failure-timeout";
    let (_, placement) = cluster.step(&mut lab, label, &[Ev::Later(11 * 60)]);
    assert_eq!(
        placement[&vm.name].as_deref(),
        Some(active.as_str()),
        "{label}: failures expired"
    );
    lab.finish();
}

/// The VM fails to start on the node chosen first: the stack ends up complete on another replica,
/// with the failed node's mount and Promoted instance released in order.
pub fn start_failure(nodes: usize, vms: usize) {
    let cluster = TestCluster::new(nodes, vms);
    let vm = first_vm(&cluster).clone();
    // The scheduler is deterministic: the settled placement tells where the VM will start.
    let (dry, settled) = cluster.settled_lab("start-failure-dry");
    dry.finish();
    let chosen = settled[&vm.name].clone();
    let mut lab = cluster.lab("start-failure");
    let spec = format!("{}_start_0@{chosen}=1", vm_id(&vm.name));
    let step = lab.simulate("failed start", &[Ev::FailOp(spec)]);
    cluster.check_transition(&step);
    cluster.assert_consistent(&step);
    assert!(
        step.did(&vm_id(&vm.name), "start", &chosen),
        "the start was attempted"
    );
    // A live cluster records a start failure as INFINITY (start-failure-is-fatal); the
    // simulator only counts 1, so record it as the controller would.
    lab.node_attribute(
        &chosen,
        &format!("fail-count-{}#start_0", vm_id(&vm.name)),
        Some("INFINITY"),
    );
    let (step, placement) = cluster.step(&mut lab, "recovery after failed start", &[]);
    let after = cluster.complete(&placement, &step.label);
    assert_ne!(
        after[&vm.name], chosen,
        "{}: moved off the failing node",
        step.label
    );
    lab.finish();
}

/// The active node fails: it is fenced, its stacks move (the others stay). It returns with its
/// gateway and DRBD scores: nothing moves back.
pub fn node_fails_and_returns(nodes: usize, vms: usize) {
    let cluster = TestCluster::new(nodes, vms);
    let (mut lab, before) = cluster.settled_lab("node-fails");
    let active = before[&first_vm(&cluster).name].clone();
    let (step, placement) = cluster.step(&mut lab, "active node fails", &[Ev::Fail(&active)]);
    assert_eq!(
        step.fenced(),
        vec![active.clone()],
        "the failed node is fenced"
    );
    let failed_over = cluster.complete(&placement, &step.label);
    cluster.assert_moved_off(&before, &failed_over, &active, &step.label);
    // Its gateway and DRBD scores are there when it rejoins (set on its offline node state).
    lab.node_attribute(&active, "pingd", Some(PINGD));
    for vm in cluster
        .vms
        .iter()
        .filter(|vm| vm.replicas.contains(&active))
    {
        lab.node_attribute(
            &active,
            &format!("master-{}", vm.drbd_primitive()),
            Some(PROMOTION),
        );
    }
    let (step, placement) = cluster.step(&mut lab, "node returns", &[Ev::Up(&active)]);
    cluster.assert_quiet(&step);
    assert_eq!(
        cluster.complete(&placement, &step.label),
        failed_over,
        "stickiness: no move back\n{}",
        lab.report()
    );
    lab.finish();
}

macro_rules! matrix {
    ($name:ident, $scenario:expr) => {
        mod $name {
            #[test]
            fn nodes_2_vms_1() {
                ($scenario)(2, 1)
            }
            #[test]
            fn nodes_2_vms_10() {
                ($scenario)(2, 10)
            }
            #[test]
            fn nodes_3_vms_1() {
                ($scenario)(3, 1)
            }
            #[test]
            fn nodes_3_vms_10() {
                ($scenario)(3, 10)
            }
            #[test]
            fn nodes_16_vms_1() {
                ($scenario)(16, 1)
            }
            #[test]
            fn nodes_16_vms_10() {
                ($scenario)(16, 10)
            }
        }
    };
}

matrix!(initial, super::initial_placement);
matrix!(gateway_zero, |n, v| super::gateway_lost(n, v, Some("0")));
// An undefined score takes the same path as 0 once the rule matches: the 1-VM shapes prove it.
mod gateway_undefined {
    #[test]
    fn nodes_2_vms_1() {
        super::gateway_lost(2, 1, None)
    }
    #[test]
    fn nodes_3_vms_1() {
        super::gateway_lost(3, 1, None)
    }
    #[test]
    fn nodes_16_vms_1() {
        super::gateway_lost(16, 1, None)
    }
}
// Only the first VM's replicas lose their gateway: the 1-VM shapes say all there is to say.
mod all_gateways {
    #[test]
    fn nodes_2_vms_1() {
        super::all_gateways_lost(2, 1)
    }
    #[test]
    fn nodes_3_vms_1() {
        super::all_gateways_lost(3, 1)
    }
    #[test]
    fn nodes_16_vms_1() {
        super::all_gateways_lost(16, 1)
    }
}
matrix!(ban_move, super::ban_move_clear);
matrix!(monitor_threshold, super::monitor_failures);
matrix!(start_fails, super::start_failure);
matrix!(node_fails_returns, super::node_fails_and_returns);
