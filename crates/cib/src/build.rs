//! From a [`Description`] to a Pacemaker [`Configuration`]: every check first, then the
//! resources and constraints of each VM stack, then the agents' own first stage on the parameters
//! written for each `ocf:clever:*` resource ([`crate::agents`]), which has the last word. The
//! checks here are the description's own rules (names that become ids, uniqueness, references,
//! the paths the generator derives) and cluster policy; operation timeouts and intervals of our
//! agents are the ones each agent advertises.
//!
//! Resource ids (derived, so the scenario tests and `clevervm` can rely on them):
//! `drbd_<drbd>` in `drbd_<drbd>-clone`, `fs_<vm>`, `vm_<vm>`, `ip_<vm>`, `libvirtd` in
//! `libvirtd-clone`, `gwping` in `gwping-clone`, fence devices `fence_<node>`. Clone ids follow
//! pcs's `<primitive>-clone` so the pcs script creates exactly the same ids.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use clever_agent_params::{drbdfs, gwping, vm, AdvertisedAction};

use crate::description::{
    Description, FenceDeviceSpec, FencingMode, LibvirtdClass, NodeSpec, OperationsSpec, VmSpec,
};
use crate::error::DescriptionError;
use crate::pacemaker::{
    Action, Agent, BoolOp, CloneResource, ClusterNode, Colocation, Comparison, Configuration,
    Constraint, Expression, Location, NvPair, Operation, Order, Placement, Primitive, Resource,
    Role, Rule, Score, ValueType,
};

/// Fewest nodes: one node is not a cluster.
pub const MIN_NODES: usize = 2;
/// Most nodes: Corosync 3 supports (and is tested with) 32.
pub const MAX_NODES: usize = 32;
/// Longest resource or node name part.
pub const MAX_NAME: usize = 48;
/// Largest `gwping` multiplier and `migration-threshold` / stickiness accepted.
pub const MAX_SCORE_VALUE: u32 = 1_000_000;

/// The id of the promotable clone of DRBD resource `drbd`.
pub fn drbd_clone_id(drbd: &str) -> String {
    format!("drbd_{drbd}-clone")
}

/// The id of the DRBD primitive (the promotion score attribute is `master-<this>`).
pub fn drbd_primitive_id(drbd: &str) -> String {
    format!("drbd_{drbd}")
}

/// The id of VM `vm`'s filesystem resource.
pub fn fs_id(vm: &str) -> String {
    format!("fs_{vm}")
}

/// The VM's hibernation directory: as described, else `hibernate/` on its DRBD filesystem.
/// The vm agent links the domain's path in libvirt's fixed save directory to its image there,
/// so no resource binds it: each VM's images stay on its own DRBD filesystem.
pub fn hibernate_dir(vm: &VmSpec) -> String {
    vm.hibernate_dir
        .clone()
        .unwrap_or_else(|| format!("{}/hibernate", vm.mount.directory.trim_end_matches('/')))
}

/// The id of VM `vm`'s domain resource.
pub fn vm_id(vm: &str) -> String {
    format!("vm_{vm}")
}

/// The id of VM `vm`'s address resource.
pub fn ip_id(vm: &str) -> String {
    format!("ip_{vm}")
}

pub const LIBVIRTD_ID: &str = "libvirtd";
pub const LIBVIRTD_CLONE_ID: &str = "libvirtd-clone";
pub const GWPING_ID: &str = "gwping";
pub const GWPING_CLONE_ID: &str = "gwping-clone";

/// Checks `description` and builds its configuration; the first problem found is the error.
pub fn build(description: &Description) -> Result<Configuration, DescriptionError> {
    let nodes = check_nodes(&description.nodes)?;
    let node_names: Vec<String> = nodes.iter().map(|node| node.name.clone()).collect();
    check_cluster(description)?;
    check_gwping(description)?;
    let drbd_nodes = check_drbd(description, &node_names)?;
    check_vms(description)?;
    let timing = check_operations(&description.operations)?;
    let fencing = fencing(description, &node_names)?;

    let cluster = &description.cluster;
    let mut properties = vec![NvPair::new(
        "stonith-enabled",
        if fencing.enabled { "true" } else { "false" },
    )];
    properties.push(NvPair::new(
        "no-quorum-policy",
        cluster.no_quorum_policy.as_str(),
    ));

    let mut resources: Vec<Resource> = fencing
        .devices
        .iter()
        .map(|d| Resource::Primitive(d.primitive.clone()))
        .collect();
    // A device that fences a single node never runs on that node (it could not report the
    // node's death); a device for several nodes may run anywhere.
    let mut constraints: Vec<Constraint> = fencing
        .devices
        .iter()
        .filter_map(|device| match device.targets.as_slice() {
            [node] => Some(Constraint::Location(Location {
                id: format!("loc_{}_avoid_{node}", device.primitive.id),
                rsc: device.primitive.id.clone(),
                role: None,
                exclusive: false,
                placement: Placement::Node {
                    node: node.clone(),
                    score: Score::MinusInfinity,
                },
            })),
            _ => None,
        })
        .collect();

    resources.push(Resource::Clone(gwping_clone(description)));
    resources.push(Resource::Clone(libvirtd_clone(description)));

    for vm in &description.vms {
        let replicas = drbd_nodes
            .get(vm.drbd.as_str())
            .cloned()
            .unwrap_or_default();
        let device = description
            .drbd
            .iter()
            .find(|d| d.name == vm.drbd)
            .map(|d| d.device.clone())
            .unwrap_or_default();
        resources.extend(vm_resources(vm, &device, replicas.len()));
        constraints.extend(vm_constraints(
            vm,
            &replicas,
            &node_names,
            &description.gwping.attribute,
        ));
    }

    for resource in &mut resources {
        let primitive = match resource {
            Resource::Primitive(primitive) => primitive,
            Resource::Clone(clone) => &mut clone.child,
        };
        for operation in &mut primitive.ops {
            timing.apply(operation);
        }
    }
    let configuration = Configuration {
        warnings: fencing.warnings,
        properties,
        nodes,
        resources,
        constraints,
        rsc_defaults: vec![
            NvPair::new(
                "resource-stickiness",
                cluster.resource_stickiness.to_string(),
            ),
            NvPair::new(
                "migration-threshold",
                cluster.migration_threshold.to_string(),
            ),
            NvPair::new("failure-timeout", cluster.failure_timeout.clone()),
        ],
    };
    check_unique_ids(&configuration)?;
    crate::agents::check(&configuration)?;
    Ok(configuration)
}

fn check_nodes(nodes: &[NodeSpec]) -> Result<Vec<ClusterNode>, DescriptionError> {
    if !(MIN_NODES..=MAX_NODES).contains(&nodes.len()) {
        return Err(DescriptionError::NodeCount {
            count: nodes.len(),
            min: MIN_NODES,
            max: MAX_NODES,
        });
    }
    let mut names = BTreeSet::new();
    let mut ids = BTreeSet::new();
    let mut result = Vec::with_capacity(nodes.len());
    for (index, node) in nodes.iter().enumerate() {
        check_host_name("node name", &node.name)?;
        if !names.insert(node.name.as_str()) {
            return Err(duplicate("node name", &node.name));
        }
        let id = match node.id {
            Some(id) => id,
            None => u32::try_from(index + 1).unwrap_or(u32::MAX),
        };
        if id == 0 {
            return Err(invalid(
                format!("node {:?} id", node.name),
                "0",
                "corosync node ids start at 1",
            ));
        }
        if !ids.insert(id) {
            return Err(duplicate("node id", &id.to_string()));
        }
        result.push(ClusterNode {
            id,
            name: node.name.clone(),
        });
    }
    Ok(result)
}

fn check_cluster(description: &Description) -> Result<(), DescriptionError> {
    let cluster = &description.cluster;
    check_id("cluster name", &cluster.name)?;
    if cluster.resource_stickiness > MAX_SCORE_VALUE {
        return Err(invalid(
            "cluster.resource_stickiness",
            &cluster.resource_stickiness.to_string(),
            "must be at most 1000000",
        ));
    }
    if !(1..=MAX_SCORE_VALUE).contains(&cluster.migration_threshold) {
        return Err(invalid(
            "cluster.migration_threshold",
            &cluster.migration_threshold.to_string(),
            "must be from 1 to 1000000 (0 would disable it: a failing VM would restart forever)",
        ));
    }
    check_interval("cluster.failure_timeout", &cluster.failure_timeout, true)
}

fn check_gwping(description: &Description) -> Result<(), DescriptionError> {
    let gwping = &description.gwping;
    if gwping.host_list.is_empty() {
        return Err(invalid(
            "gwping.host_list",
            "[]",
            "needs at least one gateway to ping",
        ));
    }
    let mut seen = BTreeSet::new();
    for entry in &gwping.host_list {
        let host = check_ping_host(entry)?;
        if !seen.insert(host.to_owned()) {
            return Err(duplicate("gwping host", host));
        }
    }
    check_id("gwping.attribute", &gwping.attribute)?;
    if !(1..=i64::from(MAX_SCORE_VALUE)).contains(&gwping.multiplier) {
        return Err(invalid(
            "gwping.multiplier",
            &gwping.multiplier.to_string(),
            "must be from 1 to 1000000: with 0 or less every node would score <= 0 and be banned",
        ));
    }
    check_interval("gwping.dampen", &gwping.dampen, true)?;
    if let Some(interval) = &gwping.monitor_interval {
        check_interval("gwping.monitor_interval", interval, false)?;
    }
    if let Some(interface) = &gwping.interface {
        check_interface("gwping.interface", interface)?;
    }
    Ok(())
}

/// One `host_list` entry: an address or host name with an optional `=weight`; returns the host.
fn check_ping_host(entry: &str) -> Result<&str, DescriptionError> {
    let field = "gwping.host_list";
    let (host, weight) = match entry.split_once('=') {
        Some((host, weight)) => (host, Some(weight)),
        None => (entry, None),
    };
    if let Some(weight) = weight {
        match weight.parse::<u32>() {
            Ok(w) if (1..=MAX_SCORE_VALUE).contains(&w) => {}
            _ => {
                return Err(invalid(
                    field,
                    entry,
                    "the weight after '=' must be a whole number from 1 to 1000000",
                ))
            }
        }
    }
    let address = host
        .split_once('%')
        .map_or(host, |(address, _zone)| address);
    if address.parse::<IpAddr>().is_ok() {
        return Ok(host);
    }
    if host.contains('%') || check_host_name(field, host).is_err() {
        return Err(invalid(
            field,
            entry,
            "not an IP address or host name (optionally followed by =weight)",
        ));
    }
    Ok(host)
}

/// Checks every `[[drbd]]` and returns each one's replica nodes.
fn check_drbd(
    description: &Description,
    nodes: &[String],
) -> Result<BTreeMap<String, Vec<String>>, DescriptionError> {
    let mut result = BTreeMap::new();
    let mut devices = BTreeSet::new();
    for drbd in &description.drbd {
        check_id("drbd name", &drbd.name)?;
        if result.contains_key(&drbd.name) {
            return Err(duplicate("drbd name", &drbd.name));
        }
        check_path(&format!("drbd {:?} device", drbd.name), &drbd.device)?;
        if !drbd.device.starts_with("/dev/") {
            return Err(invalid(
                format!("drbd {:?} device", drbd.name),
                &drbd.device,
                "must be a device under /dev",
            ));
        }
        if !devices.insert(drbd.device.as_str()) {
            return Err(duplicate("drbd device", &drbd.device));
        }
        let replicas = match &drbd.nodes {
            None => nodes.to_vec(),
            Some(replicas) => {
                let mut seen = BTreeSet::new();
                for node in replicas {
                    if !nodes.contains(node) {
                        return Err(DescriptionError::UnknownNode {
                            what: format!("drbd {:?}", drbd.name),
                            node: node.clone(),
                        });
                    }
                    if !seen.insert(node.as_str()) {
                        return Err(duplicate("drbd replica node", node));
                    }
                }
                if replicas.len() < 2 {
                    return Err(invalid(
                        format!("drbd {:?} nodes", drbd.name),
                        &replicas.join(" "),
                        "a replicated resource needs at least 2 nodes",
                    ));
                }
                replicas.clone()
            }
        };
        result.insert(drbd.name.clone(), replicas);
    }
    Ok(result)
}

fn check_vms(description: &Description) -> Result<(), DescriptionError> {
    if description.vms.is_empty() {
        return Err(DescriptionError::NoVms);
    }
    let mut names = BTreeSet::new();
    let mut domains = BTreeSet::new();
    let mut configs = BTreeSet::new();
    let mut directories = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    let mut drbd_users: BTreeMap<&str, &str> = BTreeMap::new();
    for vm in &description.vms {
        check_id("vm name", &vm.name)?;
        if !names.insert(vm.name.as_str()) {
            return Err(duplicate("vm name", &vm.name));
        }
        if !description.drbd.iter().any(|d| d.name == vm.drbd) {
            return Err(DescriptionError::UnknownDrbd {
                vm: vm.name.clone(),
                drbd: vm.drbd.clone(),
            });
        }
        if let Some(first) = drbd_users.insert(vm.drbd.as_str(), vm.name.as_str()) {
            return Err(DescriptionError::SharedDrbd {
                drbd: vm.drbd.clone(),
                first: first.to_owned(),
                second: vm.name.clone(),
            });
        }
        let domain = vm.domain.as_deref().unwrap_or(&vm.name);
        check_token(&format!("vm {:?} domain", vm.name), domain)?;
        if !domains.insert(domain) {
            return Err(duplicate("libvirt domain", domain));
        }
        check_path(&format!("vm {:?} config", vm.name), &vm.config)?;
        let images = hibernate_dir(vm);
        check_path(&format!("vm {:?} hibernate_dir", vm.name), &images)?;
        let mount = vm.mount.directory.trim_end_matches('/');
        if !images.starts_with(&format!("{mount}/")) {
            return Err(DescriptionError::InvalidValue {
                field: format!("vm {:?} hibernate_dir", vm.name),
                value: images,
                reason: format!(
                    "not on the VM's DRBD filesystem ({mount}): hibernation images would not \
                     travel with the VM"
                ),
            });
        }
        if !configs.insert(vm.config.as_str()) {
            return Err(duplicate("vm config", &vm.config));
        }
        if let Some(uri) = &vm.hypervisor {
            // Which URIs the agent accepts is its own rule, applied to the generated resource.
            check_token(&format!("vm {:?} hypervisor", vm.name), uri)?;
        }
        if let Some(timeout) = &vm.stop_timeout {
            check_interval(&format!("vm {:?} stop_timeout", vm.name), timeout, false)?;
        }
        check_mount(vm)?;
        if !directories.insert(vm.mount.directory.trim_end_matches('/')) {
            return Err(duplicate("mount directory", &vm.mount.directory));
        }
        let ip = check_address(vm)?;
        if !addresses.insert(ip) {
            return Err(duplicate("address", &vm.address.ip));
        }
    }
    if let Some(unused) = description
        .drbd
        .iter()
        .find(|d| !drbd_users.contains_key(d.name.as_str()))
    {
        return Err(DescriptionError::UnusedDrbd(unused.name.clone()));
    }
    Ok(())
}

fn check_mount(vm: &VmSpec) -> Result<(), DescriptionError> {
    let mount = &vm.mount;
    let field = |name: &str| format!("vm {:?} mount.{name}", vm.name);
    check_path(&field("directory"), &mount.directory)?;
    if mount.directory.trim_end_matches('/').is_empty() {
        return Err(invalid(
            field("directory"),
            &mount.directory,
            "the root directory cannot be a VM's mount point",
        ));
    }
    // fstype, and which options may be given, are drbdfs's own rules, applied to the resource.
    if let Some(options) = &mount.options {
        check_token(&field("options"), options)?;
    }
    Ok(())
}

fn check_address(vm: &VmSpec) -> Result<IpAddr, DescriptionError> {
    let address = &vm.address;
    let field = format!("vm {:?} address.ip", vm.name);
    let ip: IpAddr = address.ip.parse().map_err(|_| {
        invalid(
            field.clone(),
            &address.ip,
            "not an IPv4 or IPv6 address (give the prefix length in cidr_netmask)",
        )
    })?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return Err(invalid(
            field,
            &address.ip,
            "an unspecified, loopback or multicast address cannot be a service address",
        ));
    }
    if let Some(prefix) = address.cidr_netmask {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if !(1..=max).contains(&prefix) {
            return Err(invalid(
                format!("vm {:?} address.cidr_netmask", vm.name),
                &prefix.to_string(),
                &format!("must be from 1 to {max} for this address"),
            ));
        }
    }
    if let Some(nic) = &address.nic {
        check_interface(&format!("vm {:?} address.nic", vm.name), nic)?;
    }
    Ok(ip)
}

struct FenceDevice {
    /// The nodes it fences.
    targets: Vec<String>,
    primitive: Primitive,
}

struct Fencing {
    enabled: bool,
    devices: Vec<FenceDevice>,
    warnings: Vec<String>,
}

/// Placeholder values that no real device accepts.
pub const PLACEHOLDER: &str = "CHANGE-ME";

fn fencing(description: &Description, nodes: &[String]) -> Result<Fencing, DescriptionError> {
    let spec = &description.fencing;
    let mode_error = |message: &str| Err(DescriptionError::Fencing(message.to_owned()));
    match spec.mode {
        FencingMode::Placeholder => {
            if !spec.devices.is_empty() {
                return mode_error(
                    "[[fencing.device]] given but mode is \"placeholder\": set mode = \"devices\"",
                );
            }
            if spec.reason.is_some() {
                return mode_error("reason is only for mode = \"disabled\"");
            }
            let devices = nodes.iter().map(|node| placeholder_device(node)).collect();
            Ok(Fencing {
                enabled: true,
                devices,
                warnings: vec![format!(
                    "FENCING IS NOT CONFIGURED: the fence devices below are disabled placeholders \
                     ({PLACEHOLDER} parameters, target-role=Stopped). stonith-enabled stays true, \
                     so the cluster cannot recover a failed node until each is replaced by a real \
                     device (describe them with [fencing] mode = \"devices\")."
                )],
            })
        }
        FencingMode::Devices => {
            if spec.reason.is_some() {
                return mode_error("reason is only for mode = \"disabled\"");
            }
            let mut devices = Vec::with_capacity(spec.devices.len());
            for device in &spec.devices {
                devices.push(real_device(device, nodes)?);
            }
            if let Some(unfenced) = nodes
                .iter()
                .find(|node| !devices.iter().any(|d| d.targets.contains(node)))
            {
                return Err(DescriptionError::Fencing(format!(
                    "node {unfenced:?} has no [[fencing.device]]: every node needs one"
                )));
            }
            Ok(Fencing {
                enabled: true,
                devices,
                warnings: Vec::new(),
            })
        }
        FencingMode::Disabled => {
            if !spec.devices.is_empty() {
                return mode_error("[[fencing.device]] given but mode is \"disabled\"");
            }
            let reason = spec.reason.as_deref().map(str::trim).unwrap_or_default();
            if reason.is_empty() {
                return mode_error(
                    "mode = \"disabled\" needs a reason: without fencing a split brain runs the \
                     VM twice",
                );
            }
            check_text("fencing.reason", reason)?;
            Ok(Fencing {
                enabled: false,
                devices: Vec::new(),
                warnings: vec![format!(
                    "FENCING IS DISABLED (stonith-enabled=false) as the description asks: \
                     \"{reason}\". A node that stops answering is assumed dead: after a network \
                     split both sides may mount the DRBD device and run the VM. Never use this \
                     on a production cluster."
                )],
            })
        }
    }
}

fn placeholder_device(node: &str) -> FenceDevice {
    let id = format!("fence_{node}");
    FenceDevice {
        targets: vec![node.to_owned()],
        primitive: Primitive {
            comment: Some(format!(
                "PLACEHOLDER: replace with the real fence device of {node} (disabled until then)"
            )),
            params: vec![
                NvPair::new("ip", PLACEHOLDER),
                NvPair::new("username", PLACEHOLDER),
                NvPair::new("password", PLACEHOLDER),
                NvPair::new("lanplus", "1"),
                NvPair::new("pcmk_host_list", node),
            ],
            meta: vec![NvPair::new("target-role", "Stopped")],
            ops: vec![Operation::new("monitor", "60s", "20s")],
            agent: Agent::Stonith {
                kind: "fence_ipmilan".to_owned(),
            },
            id,
        },
    }
}

fn real_device(spec: &FenceDeviceSpec, nodes: &[String]) -> Result<FenceDevice, DescriptionError> {
    let targets = match (&spec.node, &spec.nodes) {
        (Some(node), None) => vec![node.clone()],
        (None, Some(targets)) if !targets.is_empty() => targets.clone(),
        _ => {
            return Err(DescriptionError::Fencing(format!(
                "device with agent {:?}: give either node or a non-empty nodes list",
                spec.agent
            )))
        }
    };
    let mut seen = BTreeSet::new();
    for target in &targets {
        if !nodes.contains(target) {
            return Err(DescriptionError::UnknownNode {
                what: "[[fencing.device]]".to_owned(),
                node: target.clone(),
            });
        }
        if !seen.insert(target.as_str()) {
            return Err(duplicate("fence device target", target));
        }
    }
    let id = match (&spec.name, targets.as_slice()) {
        (Some(name), _) => name.clone(),
        (None, [node]) => format!("fence_{node}"),
        (None, _) => {
            return Err(DescriptionError::Fencing(format!(
                "a device for several nodes ({}) needs a name",
                targets.join(", ")
            )))
        }
    };
    check_id("fence device name", &id)?;
    check_id("fence agent", &spec.agent)?;
    let mut params = Vec::with_capacity(spec.params.len() + 1);
    for (name, value) in &spec.params {
        check_id("fence device parameter", name)?;
        check_text(&format!("fence device {id:?} parameter {name}"), value)?;
        if name == "pcmk_host_list" {
            return Err(DescriptionError::Fencing(format!(
                "device {id:?}: pcmk_host_list is set from node/nodes"
            )));
        }
        params.push(NvPair::new(name.clone(), value.clone()));
    }
    params.push(NvPair::new("pcmk_host_list", targets.join(" ")));
    Ok(FenceDevice {
        targets,
        primitive: Primitive {
            comment: None,
            params,
            meta: Vec::new(),
            ops: vec![Operation::new("monitor", "60s", "20s")],
            agent: Agent::Stonith {
                kind: spec.agent.clone(),
            },
            id,
        },
    })
}

fn gwping_clone(description: &Description) -> CloneResource {
    let gwping = &description.gwping;
    let mut params = vec![
        NvPair::new("host_list", gwping.host_list.join(" ")),
        NvPair::new("name", gwping.attribute.clone()),
        NvPair::new("multiplier", gwping.multiplier.to_string()),
        NvPair::new("dampen", gwping.dampen.clone()),
    ];
    if let Some(interface) = &gwping.interface {
        params.push(NvPair::new("interface", interface.clone()));
    }
    CloneResource {
        id: GWPING_CLONE_ID.to_owned(),
        meta: vec![NvPair::new("interleave", "true")],
        child: Primitive {
            id: GWPING_ID.to_owned(),
            agent: Agent::ocf("clever", "gwping"),
            comment: None,
            params,
            meta: Vec::new(),
            ops: vec![
                advertised(&gwping::START),
                advertised(&gwping::STOP),
                with_interval(
                    advertised(&gwping::MONITOR),
                    gwping.monitor_interval.as_deref(),
                ),
            ],
        },
    }
}

fn libvirtd_clone(description: &Description) -> CloneResource {
    let name = description.libvirtd.name.clone();
    let agent = match description.libvirtd.class {
        LibvirtdClass::Systemd => Agent::Systemd { kind: name },
        LibvirtdClass::Lsb => Agent::Lsb { kind: name },
    };
    CloneResource {
        id: LIBVIRTD_CLONE_ID.to_owned(),
        meta: vec![NvPair::new("interleave", "true")],
        child: Primitive {
            id: LIBVIRTD_ID.to_owned(),
            agent,
            comment: None,
            params: Vec::new(),
            meta: Vec::new(),
            ops: vec![
                Operation::new("start", "0s", "100s"),
                Operation::new("stop", "0s", "100s"),
                Operation::new("monitor", "30s", "100s"),
            ],
        },
    }
}

fn vm_resources(vm: &VmSpec, device: &str, replicas: usize) -> Vec<Resource> {
    let drbd = Primitive {
        id: drbd_primitive_id(&vm.drbd),
        agent: Agent::ocf("linbit", "drbd"),
        comment: None,
        params: vec![NvPair::new("drbd_resource", vm.drbd.clone())],
        meta: Vec::new(),
        ops: vec![
            Operation::new("start", "0s", "240s"),
            Operation::new("stop", "0s", "100s"),
            Operation::new("promote", "0s", "90s"),
            Operation::new("demote", "0s", "90s"),
            Operation::new("notify", "0s", "90s"),
            Operation::new("monitor", "29s", "20s").role(Role::Promoted),
            Operation::new("monitor", "31s", "20s").role(Role::Unpromoted),
        ],
    };
    let drbd_clone = CloneResource {
        id: drbd_clone_id(&vm.drbd),
        meta: vec![
            NvPair::new("promotable", "true"),
            NvPair::new("promoted-max", "1"),
            NvPair::new("promoted-node-max", "1"),
            NvPair::new("clone-max", replicas.to_string()),
            NvPair::new("clone-node-max", "1"),
            NvPair::new("notify", "true"),
            NvPair::new("interleave", "true"),
        ],
        child: drbd,
    };
    let mut fs_params = vec![
        NvPair::new("device", device),
        NvPair::new("directory", vm.mount.directory.clone()),
        NvPair::new("fstype", vm.mount.fstype.clone()),
    ];
    if let Some(options) = &vm.mount.options {
        fs_params.push(NvPair::new("options", options.clone()));
    }
    fs_params.push(NvPair::new("drbd_resource", vm.drbd.clone()));
    let fs = Primitive {
        id: fs_id(&vm.name),
        agent: Agent::ocf("clever", "drbdfs"),
        comment: None,
        params: fs_params,
        meta: Vec::new(),
        ops: vec![
            advertised(&drbdfs::START),
            advertised(&drbdfs::STOP),
            advertised(&drbdfs::MONITOR),
        ],
    };
    let mut vm_params = vec![
        NvPair::new("config", vm.config.clone()),
        NvPair::new(
            "domain",
            vm.domain.clone().unwrap_or_else(|| vm.name.clone()),
        ),
    ];
    if let Some(uri) = &vm.hypervisor {
        vm_params.push(NvPair::new("hypervisor", uri.clone()));
    }
    vm_params.push(NvPair::new("hibernate_dir", hibernate_dir(vm)));
    let domain = Primitive {
        id: vm_id(&vm.name),
        agent: Agent::ocf("clever", "vm"),
        comment: None,
        params: vm_params,
        meta: Vec::new(),
        ops: vec![
            advertised(&vm::START),
            with_timeout(advertised(&vm::STOP), vm.stop_timeout.as_deref()),
            advertised(&vm::MONITOR),
        ],
    };
    let mut ip_params = vec![NvPair::new("ip", vm.address.ip.clone())];
    if let Some(prefix) = vm.address.cidr_netmask {
        ip_params.push(NvPair::new("cidr_netmask", prefix.to_string()));
    }
    if let Some(nic) = &vm.address.nic {
        ip_params.push(NvPair::new("nic", nic.clone()));
    }
    let ip = Primitive {
        id: ip_id(&vm.name),
        agent: Agent::ocf("heartbeat", "IPaddr2"),
        comment: None,
        params: ip_params,
        meta: Vec::new(),
        ops: vec![
            Operation::new("start", "0s", "20s"),
            Operation::new("stop", "0s", "20s"),
            Operation::new("monitor", "10s", "20s"),
        ],
    };
    vec![
        Resource::Clone(drbd_clone),
        Resource::Primitive(fs),
        Resource::Primitive(domain),
        Resource::Primitive(ip),
    ]
}

fn vm_constraints(
    vm: &VmSpec,
    replicas: &[String],
    nodes: &[String],
    attribute: &str,
) -> Vec<Constraint> {
    let name = &vm.name;
    let drbd = drbd_clone_id(&vm.drbd);
    let (fs, domain, ip) = (fs_id(name), vm_id(name), ip_id(name));
    let mut constraints = Vec::new();
    // DRBD is configured only on its replicas (ocf:linbit:drbd probing elsewhere would fail with
    // "not configured"), and the mount and the VM live on that DRBD device: they may run, and
    // are probed, only there. The address is still probed everywhere, so a stray copy of it on
    // any node is found.
    if replicas.len() < nodes.len() {
        for (part, rsc) in [("drbd", &drbd), ("fs", &fs), ("vm", &domain)] {
            constraints.push(Constraint::Location(Location {
                id: format!("loc_{name}_{part}_on_replicas"),
                rsc: rsc.clone(),
                role: None,
                exclusive: true,
                placement: Placement::Rule(Rule {
                    score: Score::Value(0),
                    bool_op: BoolOp::Or,
                    expressions: replicas
                        .iter()
                        .map(|node| Expression::Compare {
                            attribute: "#uname".to_owned(),
                            comparison: Comparison::Eq,
                            value: node.clone(),
                            value_type: ValueType::String,
                        })
                        .collect(),
                }),
            }));
        }
    }
    constraints.push(Constraint::Location(Location {
        id: format!("loc_{name}_gateway"),
        rsc: drbd.clone(),
        role: Some(Role::Promoted),
        exclusive: false,
        placement: Placement::Rule(Rule {
            score: Score::MinusInfinity,
            bool_op: BoolOp::Or,
            expressions: vec![
                Expression::NotDefined {
                    attribute: attribute.to_owned(),
                },
                Expression::Compare {
                    attribute: attribute.to_owned(),
                    comparison: Comparison::Lte,
                    value: "0".to_owned(),
                    value_type: ValueType::Number,
                },
            ],
        }),
    }));
    let colocation = |id: &str, rsc: &str, with: &str, with_role: Option<Role>| {
        Constraint::Colocation(Colocation {
            id: format!("col_{name}_{id}"),
            rsc: rsc.to_owned(),
            with_rsc: with.to_owned(),
            with_role,
            score: Score::Infinity,
        })
    };
    let order = |id: &str, first: &str, first_action: Action, then: &str| {
        Constraint::Order(Order {
            id: format!("ord_{name}_{id}"),
            first: first.to_owned(),
            first_action,
            then: then.to_owned(),
            then_action: Action::Start,
        })
    };
    constraints.extend([
        colocation("fs_on_drbd", &fs, &drbd, Some(Role::Promoted)),
        order("drbd_then_fs", &drbd, Action::Promote, &fs),
        colocation("vm_with_fs", &domain, &fs, None),
        order("fs_then_vm", &fs, Action::Start, &domain),
        colocation("vm_with_libvirtd", &domain, LIBVIRTD_CLONE_ID, None),
        order(
            "libvirtd_then_vm",
            LIBVIRTD_CLONE_ID,
            Action::Start,
            &domain,
        ),
        // The address names the node that holds the stack, it serves nothing of the VM's: it
        // goes where the VM goes, but waits only for the promotion there, so it comes up beside
        // the mount and the resume instead of one CIB round trip after them, and a VM restarted
        // in place does not take it down. (Colocated with the VM, not the filesystem: its
        // stickiness must not hold the stack where the VM may no longer run.)
        colocation("ip_with_vm", &ip, &domain, None),
        order("drbd_then_ip", &drbd, Action::Promote, &ip),
    ]);
    constraints
}

/// The operation as our agent advertises it: its timeout, and a monitor's interval.
fn advertised(action: &AdvertisedAction) -> Operation {
    let seconds = |secs: u32| format!("{secs}s");
    Operation::new(
        action.action.as_str(),
        &seconds(action.interval_secs.unwrap_or(0)),
        &seconds(action.timeout_secs),
    )
}

/// `operation` with the description's timeout, when it gives one.
fn with_timeout(mut operation: Operation, timeout: Option<&str>) -> Operation {
    if let Some(timeout) = timeout {
        timeout.clone_into(&mut operation.timeout);
    }
    operation
}

/// `operation` with the description's interval, when it gives one.
fn with_interval(mut operation: Operation, interval: Option<&str>) -> Operation {
    if let Some(interval) = interval {
        interval.clone_into(&mut operation.interval);
    }
    operation
}

fn check_unique_ids(configuration: &Configuration) -> Result<(), DescriptionError> {
    let mut seen = BTreeSet::new();
    let resource_ids = configuration.resources.iter().flat_map(|r| match r {
        Resource::Primitive(p) => vec![p.id.as_str()],
        Resource::Clone(c) => vec![c.id.as_str(), c.child.id.as_str()],
    });
    let constraint_ids = configuration.constraints.iter().map(Constraint::id);
    for id in resource_ids.chain(constraint_ids) {
        if !seen.insert(id) {
            return Err(duplicate("resource or constraint id", id));
        }
    }
    Ok(())
}

fn duplicate(what: &'static str, value: &str) -> DescriptionError {
    DescriptionError::Duplicate {
        what,
        value: value.to_owned(),
    }
}

fn invalid(field: impl Into<String>, value: &str, reason: &str) -> DescriptionError {
    DescriptionError::InvalidValue {
        field: field.into(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A name that becomes part of Pacemaker ids: a letter, then letters, digits, `_`, `-`, `.`.
fn check_id(what: &'static str, value: &str) -> Result<(), DescriptionError> {
    let reason = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > MAX_NAME {
        Some("must be at most 48 characters")
    } else if !value.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("must start with a letter")
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Some("may hold only letters, digits, '_', '-' and '.'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(DescriptionError::InvalidName {
            what,
            value: value.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A host name as `uname -n` gives it: labels of letters, digits and `-`, separated by dots.
fn check_host_name(what: &'static str, value: &str) -> Result<(), DescriptionError> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if value.is_empty() || value.len() > MAX_NAME || !value.split('.').all(label_ok) {
        return Err(DescriptionError::InvalidName {
            what,
            value: value.to_owned(),
            reason: "must be a host name (letters, digits, '-', dots between labels; at most 48)",
        });
    }
    Ok(())
}

/// The description's `[operations]`, checked: what each generated operation becomes.
struct OperationTiming {
    timeout_floor_ms: Option<u64>,
    monitor_interval_factor: u64,
}

impl OperationTiming {
    fn apply(&self, operation: &mut Operation) {
        if let (Some(floor), Some(timeout)) =
            (self.timeout_floor_ms, interval_millis(&operation.timeout))
        {
            if timeout < floor {
                operation.timeout = pacemaker_interval(floor);
            }
        }
        if operation.name == "monitor" && self.monitor_interval_factor > 1 {
            if let Some(interval) = interval_millis(&operation.interval).filter(|ms| *ms > 0) {
                operation.interval =
                    pacemaker_interval(interval.saturating_mul(self.monitor_interval_factor));
            }
        }
    }
}

/// The longest interval the factor may stretch a monitor by: past it a failure would go unseen
/// for most of an hour at the agents' own intervals.
const MAX_MONITOR_INTERVAL_FACTOR: u32 = 10;

fn check_operations(operations: &OperationsSpec) -> Result<OperationTiming, DescriptionError> {
    let timeout_floor_ms = match &operations.timeout_floor {
        Some(floor) => {
            check_interval("operations.timeout_floor", floor, false)?;
            interval_millis(floor)
        }
        None => None,
    };
    let factor = operations.monitor_interval_factor.unwrap_or(1);
    if !(1..=MAX_MONITOR_INTERVAL_FACTOR).contains(&factor) {
        return Err(invalid(
            "operations.monitor_interval_factor",
            &factor.to_string(),
            "must be from 1 to 10",
        ));
    }
    Ok(OperationTiming {
        timeout_floor_ms,
        monitor_interval_factor: u64::from(factor),
    })
}

/// Milliseconds in a Pacemaker interval (a bare number is seconds); `None` when it is not one.
fn interval_millis(value: &str) -> Option<u64> {
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    let per_unit: u64 = match unit {
        "ms" | "msec" => 1,
        "" | "s" | "sec" => 1_000,
        "m" | "min" => 60_000,
        "h" | "hr" => 3_600_000,
        _ => return None,
    };
    number.parse::<u32>().ok()?;
    number.parse::<u64>().ok()?.checked_mul(per_unit)
}

/// `ms` as Pacemaker writes it, in whole seconds where it can be.
fn pacemaker_interval(ms: u64) -> String {
    if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

/// A Pacemaker interval: a whole number with an optional unit.
fn check_interval(field: &str, value: &str, zero_ok: bool) -> Result<(), DescriptionError> {
    match interval_millis(value) {
        Some(ms) if zero_ok || ms > 0 => Ok(()),
        _ => Err(invalid(
            field,
            value,
            if zero_ok {
                "must be a whole number with an optional unit ms, s, min or h (e.g. 10min)"
            } else {
                "must be a positive whole number with an optional unit ms, s, min or h (e.g. 30s)"
            },
        )),
    }
}

fn check_interface(field: &str, value: &str) -> Result<(), DescriptionError> {
    let ok = !value.is_empty()
        && value.len() <= 15
        && value != "."
        && value != ".."
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            value,
            "must be a network interface name (at most 15 characters, no '/' or ':')",
        ))
    }
}

/// An absolute path without whitespace or control characters.
fn check_path(field: &str, value: &str) -> Result<(), DescriptionError> {
    if value.starts_with('/') && value.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid(
            field,
            value,
            "must be an absolute path of printable ASCII without spaces",
        ))
    }
}

/// One word of printable ASCII: no spaces, quotes or backslashes.
fn check_token(field: &str, value: &str) -> Result<(), DescriptionError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '`' | '$'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            value,
            "must be one word of printable ASCII without quotes, '\\', '`' or '$'",
        ))
    }
}

/// Free text that ends up in comments and parameter values: no control characters.
fn check_text(field: &str, value: &str) -> Result<(), DescriptionError> {
    if value.chars().any(char::is_control) {
        Err(invalid(field, value, "must not contain control characters"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert!(check_interval("f", "10min", false).is_ok());
        assert!(check_interval("f", "300s", false).is_ok());
        assert!(check_interval("f", "45", false).is_ok());
        assert!(check_interval("f", "0", true).is_ok());
        assert!(check_interval("f", "0", false).is_err());
        assert!(check_interval("f", "", true).is_err());
        assert!(check_interval("f", "10 min", true).is_err());
        assert!(check_interval("f", "5d", true).is_err());
        assert!(check_interval("f", "-5s", true).is_err());
    }

    #[test]
    fn ping_hosts() {
        assert_eq!(check_ping_host("192.0.2.1").ok(), Some("192.0.2.1"));
        assert_eq!(
            check_ping_host("gw.example.com=3").ok(),
            Some("gw.example.com")
        );
        assert_eq!(check_ping_host("fe80::1%eth0").ok(), Some("fe80::1%eth0"));
        assert!(check_ping_host("gw=0").is_err());
        assert!(check_ping_host("gw=x").is_err());
        assert!(check_ping_host("-gw").is_err());
        assert!(check_ping_host("").is_err());
    }

    #[test]
    fn names() {
        assert!(check_id("x", "vm-1.a_b").is_ok());
        assert!(check_id("x", "1vm").is_err());
        assert!(check_id("x", "").is_err());
        assert!(check_id("x", &"a".repeat(MAX_NAME + 1)).is_err());
        assert!(check_host_name("x", "node-1.example").is_ok());
        assert!(check_host_name("x", "node_1").is_err());
        assert!(check_host_name("x", "a..b").is_err());
    }

    #[test]
    fn derived_ids() {
        assert_eq!(drbd_clone_id("r0"), "drbd_r0-clone");
        assert_eq!(drbd_primitive_id("r0"), "drbd_r0");
        assert_eq!(
            (fs_id("a"), vm_id("a"), ip_id("a")),
            ("fs_a".into(), "vm_a".into(), "ip_a".into())
        );
    }
}
