//! Gathering the status from the host: Pacemaker (crm_mon, the CIB), DRBD (drbdsetup), mounts
//! (/proc/self/mountinfo, statvfs), libvirt (virsh) and the hibernation image files. Every call
//! shares one deadline, so a hung cluster cannot hang `clevervm status`.

use std::path::{Path, PathBuf};

use clever_command::{CommandLine, RunCommand};
use clever_deadline::Deadline;
use clever_drbd::{
    replication_health, ConnectionState, DrbdStatusSource, HostDrbd, ReplicationHealth,
};
use clever_mounts::parse_mountinfo;
use clever_pacemaker::{ClusterStatus, Pacemaker, Primitive};

use crate::model::{
    Cluster, ClusterView, FailCountView, FailedActionView, ImageView, MountView, NodeView,
    PeerView, PinView, ResourceView, Snapshot, StorageView, VmView,
};

/// Where the CIB lives on disk: read when the cluster is down, so storage and VMs still show.
pub const CIB_ON_DISK: &str = "/var/lib/pacemaker/cib/cib.xml";

/// The host seams `clevervm` reads through.
#[derive(Debug, Clone)]
pub struct Sources<R> {
    pub runner: R,
    pub pacemaker: Pacemaker<R>,
    /// The CIB file to read the configuration from when the live cluster does not answer.
    pub cib_on_disk: PathBuf,
    /// Where `self/mountinfo` is.
    pub proc_root: PathBuf,
}

impl<R: RunCommand + Clone> Sources<R> {
    pub fn live(runner: R) -> Self {
        Self {
            pacemaker: Pacemaker::live(runner.clone()),
            runner,
            cib_on_disk: PathBuf::from(CIB_ON_DISK),
            proc_root: PathBuf::from("/proc"),
        }
    }
}

/// Collects a full snapshot.
pub fn collect<R: RunCommand + Clone>(sources: &Sources<R>, deadline: &Deadline) -> Snapshot {
    let node = sources.pacemaker.local_node(deadline).ok();
    let status = sources.pacemaker.status(deadline);
    let primitives = match &status {
        Ok(_) => sources.pacemaker.primitives(deadline),
        Err(_) => {
            Pacemaker::on_file(sources.runner.clone(), &sources.cib_on_disk).primitives(deadline)
        }
    };
    // With the cluster down the on-disk copy is a best effort, and "does not answer" says it.
    let (primitives, configuration_error) = match primitives {
        Ok(primitives) => (primitives, None),
        Err(e) if status.is_ok() => (Vec::new(), Some(e.to_string())),
        Err(_) => (Vec::new(), None),
    };
    let vm_ids: Vec<String> = primitives
        .iter()
        .filter(|p| p.agent() == "ocf:clever:vm")
        .map(|p| p.id.clone())
        .collect();
    // Best effort: a history that cannot be read leaves the timeline empty, not the screen.
    let timeline = match &status {
        Ok(_) => sources
            .pacemaker
            .status_section(deadline)
            .ok()
            .and_then(|xml| crate::timeline::parse_phases(&xml).ok())
            .map(|phases| crate::timeline::moves(&phases, &vm_ids))
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let cluster = match status {
        Ok(status) => {
            let pins = sources
                .pacemaker
                .cli_constraints(deadline)
                .unwrap_or_default()
                .into_iter()
                .map(|c| PinView {
                    id: c.id,
                    resource: c.resource,
                    node: c.node,
                    score: c.score,
                })
                .collect();
            ClusterView::Up(cluster_view(&status, pins))
        }
        Err(e) => ClusterView::Down {
            reason: e.to_string(),
        },
    };
    let running_on = |id: &str| match &cluster {
        ClusterView::Up(c) => c
            .resources
            .iter()
            .filter(|r| r.id == id)
            .flat_map(|r| r.placement.iter().map(|(_, node)| node.clone()))
            .collect(),
        ClusterView::Down { .. } => Vec::new(),
    };
    let drbd = HostDrbd::new(sources.runner.clone());
    let mounts = std::fs::read_to_string(sources.proc_root.join("self/mountinfo"))
        .ok()
        .and_then(|text| parse_mountinfo(&text).ok())
        .unwrap_or_default();
    let storage = storage_views(&primitives, &drbd, &mounts, deadline);
    let vms = primitives
        .iter()
        .filter(|p| p.agent() == "ocf:clever:vm")
        .map(|p| vm_view(p, running_on(&p.id), &sources.runner, deadline))
        .collect();
    Snapshot {
        node,
        cluster,
        configuration_error,
        storage,
        vms,
        timeline,
    }
}

fn cluster_view(status: &ClusterStatus, pins: Vec<PinView>) -> Cluster {
    let mut resources: Vec<ResourceView> = Vec::new();
    for instance in &status.resources {
        let position = match resources.iter().position(|r| r.id == instance.id) {
            Some(position) => position,
            None => {
                resources.push(ResourceView {
                    id: instance.id.clone(),
                    agent: instance.agent.clone(),
                    placement: Vec::new(),
                    failed: false,
                });
                resources.len() - 1
            }
        };
        let Some(view) = resources.get_mut(position) else {
            continue;
        };
        view.failed |= instance.failed;
        if instance.active {
            for node in &instance.nodes {
                view.placement
                    .push((instance.role.to_string(), node.clone()));
            }
        }
    }
    Cluster {
        stack: status.stack.clone(),
        dc: status.dc.clone(),
        quorum: status.quorum,
        stonith_enabled: status.stonith_enabled,
        nodes: status
            .nodes
            .iter()
            .map(|n| NodeView {
                name: n.name.clone(),
                state: if n.unclean {
                    "unclean"
                } else if !n.online {
                    "offline"
                } else if n.standby {
                    "standby"
                } else if n.maintenance {
                    "maintenance"
                } else if n.pending {
                    "pending"
                } else if n.shutdown {
                    "shutting down"
                } else {
                    "online"
                }
                .to_owned(),
                dc: n.is_dc,
                attributes: status
                    .node_attributes
                    .iter()
                    .filter(|(node, _, _)| *node == n.name)
                    .map(|(_, name, value)| (name.clone(), value.clone()))
                    .collect(),
            })
            .collect(),
        resources,
        fail_counts: status
            .fail_counts
            .iter()
            .map(|c| FailCountView {
                node: c.node.clone(),
                resource: c.resource.clone(),
                fail_count: c.fail_count,
                migration_threshold: c.migration_threshold,
            })
            .collect(),
        failed_actions: status
            .failures
            .iter()
            .map(|f| FailedActionView {
                operation: f.op_key.clone(),
                node: f.node.clone(),
                exit_code: f.exit_code,
                exit_status: f.exit_status.clone(),
                exit_reason: f.exit_reason.clone(),
            })
            .collect(),
        pins,
    }
}

/// One line per DRBD resource in the CIB, plus filesystems not on DRBD.
fn storage_views<D: DrbdStatusSource>(
    primitives: &[Primitive],
    drbd: &D,
    mounts: &[clever_mounts::MountEntry],
    deadline: &Deadline,
) -> Vec<StorageView> {
    let filesystems: Vec<&Primitive> = primitives
        .iter()
        .filter(|p| p.agent() == "ocf:clever:drbdfs" || p.agent() == "ocf:heartbeat:Filesystem")
        .collect();
    let mount_of = |fs: &Primitive| -> Option<MountView> {
        let directory = fs.parameters.get("directory")?;
        let entry = mounts
            .iter()
            .rev()
            .find(|m| m.mount_point == Path::new(directory))?;
        let stats = nix::sys::statvfs::statvfs(Path::new(directory)).ok()?;
        let unit = stats.fragment_size();
        let blocks = stats.blocks();
        let free = stats.blocks_available();
        let unused = stats.blocks_free();
        Some(MountView {
            directory: directory.clone(),
            fstype: entry.fs_type.clone(),
            size_bytes: blocks.saturating_mul(unit),
            used_bytes: blocks.saturating_sub(unused).saturating_mul(unit),
            free_bytes: free.saturating_mul(unit),
        })
    };
    let fs_resource = |fs: &Primitive| -> Option<String> {
        fs.parameters.get("drbd_resource").cloned().or_else(|| {
            let device = fs.parameters.get("device")?;
            clever_drbd::resolve_device(Path::new("/"), Path::new(device))
                .ok()
                .map(|d| d.resource)
        })
    };
    let mut views = Vec::new();
    let mut covered = Vec::new();
    for primitive in primitives.iter().filter(|p| p.agent() == "ocf:linbit:drbd") {
        let Some(name) = primitive.parameters.get("drbd_resource") else {
            continue;
        };
        let filesystem = filesystems
            .iter()
            .find(|fs| fs_resource(fs).as_ref() == Some(name));
        if let Some(fs) = filesystem {
            covered.push(fs.id.clone());
        }
        let mount = filesystem.and_then(|fs| mount_of(fs));
        views.push(match drbd.resource(name, deadline) {
            Ok(resource) => drbd_view(&resource, mount),
            Err(e) => StorageView {
                resource: name.clone(),
                local_role: None,
                local_disk: None,
                peers: Vec::new(),
                health: None,
                degraded: false,
                split_brain: false,
                error: Some(e.to_string()),
                mount,
            },
        });
    }
    for fs in filesystems.iter().filter(|fs| !covered.contains(&fs.id)) {
        views.push(StorageView {
            resource: fs.id.clone(),
            local_role: None,
            local_disk: None,
            peers: Vec::new(),
            health: None,
            degraded: false,
            split_brain: false,
            error: Some("not on DRBD".to_owned()),
            mount: mount_of(fs),
        });
    }
    views
}

/// The DRBD part of a storage line, from the state DRBD reported.
pub fn drbd_view(resource: &clever_drbd::Resource, mount: Option<MountView>) -> StorageView {
    let health = health_here(resource, mount.is_some());
    let peers = resource
        .connections
        .iter()
        .map(|c| {
            let device = c.peer_devices.first();
            PeerView {
                name: c.name.clone(),
                connection: c.state.to_string(),
                role: c.peer_role.to_string(),
                disk: device.map_or_else(|| "DUnknown".to_owned(), |d| d.peer_disk.to_string()),
                resync_percent: device.and_then(|d| d.resync_done_percent),
            }
        })
        .collect();
    StorageView {
        resource: resource.name.clone(),
        local_role: Some(resource.role.to_string()),
        local_disk: resource.devices.first().map(|d| d.disk.to_string()),
        peers,
        degraded: !matches!(health, ReplicationHealth::Healthy(_)),
        health: Some(health.reason().to_owned()),
        split_brain: resource
            .connections
            .iter()
            .any(|c| c.state == ConnectionState::StandAlone),
        error: None,
        mount,
    }
}

/// The replication's health as this node sees it. [`replication_health`] judges a resource this
/// node has mounted, where a Secondary has lost its writable device; on a node without the
/// mount a Secondary is the normal passive side (the status screen of a healthy cluster's
/// passive node warned that it was "no longer Primary"), degraded only when it does not
/// replicate.
fn health_here(resource: &clever_drbd::Resource, mounted_here: bool) -> ReplicationHealth {
    if mounted_here || resource.role == clever_drbd::Role::Primary {
        return replication_health(resource);
    }
    let mut problems = Vec::new();
    for device in &resource.devices {
        if device.disk != clever_drbd::DiskState::UpToDate {
            problems.push(format!("local disk {}", device.disk));
        }
    }
    for connection in &resource.connections {
        if connection.state != ConnectionState::Connected {
            problems.push(format!(
                "{} {}: not replicating",
                connection.name, connection.state
            ));
        }
        for device in &connection.peer_devices {
            if device.peer_disk != clever_drbd::DiskState::UpToDate {
                problems.push(format!("{} disk {}", connection.name, device.peer_disk));
            }
        }
    }
    let name = &resource.name;
    if problems.is_empty() {
        ReplicationHealth::Healthy(format!(
            "DRBD {name} is {} here and replicating",
            resource.role
        ))
    } else {
        ReplicationHealth::Degraded(format!(
            "DRBD {name} is {} here: {}",
            resource.role,
            problems.join(", ")
        ))
    }
}

fn vm_view<R: RunCommand>(
    primitive: &Primitive,
    running_on: Vec<String>,
    runner: &R,
    deadline: &Deadline,
) -> VmView {
    let domain = primitive
        .parameters
        .get("domain")
        .filter(|d| !d.is_empty())
        .cloned()
        .or_else(|| {
            let config = primitive.parameters.get("config")?;
            domain_from_xml(&std::fs::read_to_string(config).ok()?)
        })
        .unwrap_or_else(|| primitive.id.clone());
    let uri = primitive
        .parameters
        .get("hypervisor")
        .cloned()
        .unwrap_or_else(|| "qemu:///system".to_owned());
    let local_state = runner
        .run_ok(
            &CommandLine::new("virsh").args(["--connect", &uri, "domstate", "--reason", &domain]),
            deadline,
        )
        .ok()
        .map(|o| o.stdout_text().trim().to_owned())
        .filter(|s| !s.is_empty());
    let hibernate_dir = primitive.parameters.get("hibernate_dir").map(Path::new);
    let image = hibernate_dir.and_then(|dir| {
        let path = dir.join(format!("{domain}.save"));
        let metadata = std::fs::symlink_metadata(&path).ok()?;
        Some(ImageView {
            path: path.display().to_string(),
            bytes: metadata.len(),
        })
    });
    let kept_images = hibernate_dir
        .map(|dir| kept_images(dir, &domain))
        .unwrap_or_default();
    VmView {
        resource: primitive.id.clone(),
        domain,
        running_on,
        local_state,
        image,
        kept_images,
    }
}

/// The images of `domain` the vm agent kept aside in `dir`, oldest first (their names carry
/// the time); none when `dir` is not readable here (the storage is on the other node).
pub fn kept_images(dir: &Path, domain: &str) -> Vec<ImageView> {
    let prefix = format!("{domain}.save.kept-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut kept: Vec<ImageView> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|entry| {
            let metadata = entry.metadata().ok()?;
            metadata.is_file().then(|| ImageView {
                path: entry.path().display().to_string(),
                bytes: metadata.len(),
            })
        })
        .collect();
    kept.sort_by(|a, b| a.path.cmp(&b.path));
    kept
}

/// The `<name>` of a libvirt domain XML.
pub fn domain_from_xml(xml: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0_usize;
    let mut in_name = false;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                depth += 1;
                in_name = depth == 2 && e.name().as_ref() == b"name";
            }
            Event::Text(text) if in_name => {
                let name = text.unescape().ok()?.trim().to_owned();
                return (!name.is_empty()).then_some(name);
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                in_name = false;
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}
