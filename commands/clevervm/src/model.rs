//! What `clevervm status` shows, as plain data: collected from the host, rendered as text or
//! JSON, and judged for problems, each by its own module.

use serde::Serialize;

/// Everything one status screen shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// This node's cluster name, when the cluster answers.
    pub node: Option<String>,
    pub cluster: ClusterView,
    /// Why the configured resources could not be read, when they could not: storage and VMs
    /// are then unknown, not absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_error: Option<String>,
    pub storage: Vec<StorageView>,
    pub vms: Vec<VmView>,
    /// The latest moves of the VMs, the latest first, from the CIB's operation history.
    pub timeline: Vec<crate::timeline::Move>,
}

/// Pacemaker's part.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ClusterView {
    /// The cluster did not answer (not running here, or hung): the reason.
    Down {
        reason: String,
    },
    Up(Cluster),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Cluster {
    pub stack: Option<String>,
    pub dc: Option<String>,
    pub quorum: Option<bool>,
    pub stonith_enabled: Option<bool>,
    pub nodes: Vec<NodeView>,
    pub resources: Vec<ResourceView>,
    pub fail_counts: Vec<FailCountView>,
    pub failed_actions: Vec<FailedActionView>,
    /// `cli-ban-*` / `cli-prefer-*` constraints left by migrate.
    pub pins: Vec<PinView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub name: String,
    /// online, offline, standby, maintenance, unclean, pending or shutting down.
    pub state: String,
    pub dc: bool,
    /// The node's transient attributes (gwping's gateway score among them), by name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceView {
    pub id: String,
    pub agent: String,
    /// `(role, node)` per active instance; empty when stopped.
    pub placement: Vec<(String, String)>,
    pub failed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailCountView {
    pub node: String,
    pub resource: String,
    pub fail_count: u32,
    pub migration_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedActionView {
    pub operation: String,
    pub node: String,
    pub exit_code: i32,
    pub exit_status: String,
    pub exit_reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinView {
    pub id: String,
    pub resource: String,
    pub node: Option<String>,
    pub score: Option<String>,
}

/// One DRBD resource as this node sees it, with its mount if it is mounted here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageView {
    pub resource: String,
    /// `None` when DRBD could not be read on this node; the reason is in `error`.
    pub local_role: Option<String>,
    pub local_disk: Option<String>,
    pub peers: Vec<PeerView>,
    pub health: Option<String>,
    pub degraded: bool,
    pub split_brain: bool,
    pub error: Option<String>,
    pub mount: Option<MountView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerView {
    pub name: String,
    pub connection: String,
    pub role: String,
    pub disk: String,
    pub resync_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountView {
    pub directory: String,
    pub fstype: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
}

/// One VM resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmView {
    pub resource: String,
    pub domain: String,
    /// Nodes where Pacemaker runs it.
    pub running_on: Vec<String>,
    /// `virsh domstate --reason` on this node, when the domain is defined here.
    pub local_state: Option<String>,
    /// The hibernation image, read from the file itself (libvirt's flag is stale across nodes).
    pub image: Option<ImageView>,
    /// Images the vm agent kept aside instead of resuming them (`NAME.save.kept-WHEN-WHY`): RAM
    /// states nobody resumed, never deleted by the cluster, and taking the room the next
    /// hibernation needs until an admin removes them.
    pub kept_images: Vec<ImageView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageView {
    pub path: String,
    pub bytes: u64,
}
