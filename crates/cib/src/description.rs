//! The typed description of a Clever cluster: what an admin writes (TOML), before any checking.
//!
//! Every section rejects unknown keys, so a misspelt key is an error rather than a silently
//! ignored setting. Defaults are the ones the generated configuration documents; checking that
//! the values make sense is [`crate::build`]'s job.

use std::collections::BTreeMap;

use clever_agent_params::gwping;
use clever_ocf::ParameterSpec;
use serde::Deserialize;

use crate::error::DescriptionError;

/// A whole cluster: nodes, fencing, the gateway check, libvirtd and the VMs with their storage.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    pub cluster: ClusterSpec,
    #[serde(rename = "node", default)]
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub fencing: FencingSpec,
    pub gwping: GwpingSpec,
    #[serde(default)]
    pub libvirtd: LibvirtdSpec,
    #[serde(rename = "drbd", default)]
    pub drbd: Vec<DrbdSpec>,
    #[serde(rename = "vm", default)]
    pub vms: Vec<VmSpec>,
    #[serde(default)]
    pub operations: OperationsSpec,
}

impl Description {
    /// Parses TOML text; a syntax or type error becomes one line naming its position.
    pub fn from_toml(text: &str) -> Result<Self, DescriptionError> {
        toml::from_str(text).map_err(|error| {
            let (line, column) = match error.span() {
                Some(span) => line_and_column(text, span.start),
                None => (0, 0),
            };
            DescriptionError::Parse {
                line,
                column,
                message: one_line(error.message()),
            }
        })
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cluster-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// The corosync cluster name (`cluster-name` property).
    pub name: String,
    /// `resource-stickiness` for every resource: how much a running resource prefers to stay.
    #[serde(default = "default_stickiness")]
    pub resource_stickiness: u32,
    /// `migration-threshold`: failures on a node before the resource is banned from it.
    #[serde(default = "default_migration_threshold")]
    pub migration_threshold: u32,
    /// `failure-timeout`: how long a failure counts (a Pacemaker interval: `10min`, `600s`).
    #[serde(default = "default_failure_timeout")]
    pub failure_timeout: String,
    /// `no-quorum-policy`.
    #[serde(default)]
    pub no_quorum_policy: NoQuorumPolicy,
}

fn default_stickiness() -> u32 {
    100
}

fn default_migration_threshold() -> u32 {
    3
}

fn default_failure_timeout() -> String {
    "10min".to_owned()
}

/// Operation timing for nodes slower than the agents' advertised timeouts assume (old hardware,
/// emulated CPUs): without it every operation keeps the timeout and interval its agent
/// advertises or the description gives. A timeout that expires counts as a failure, so on such
/// nodes a too-short one moves the VM for nothing; a monitor that runs too often eats the CPU the
/// operations need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsSpec {
    /// Every operation timeout below it is raised to it (a Pacemaker interval: `120s`).
    pub timeout_floor: Option<String>,
    /// Every recurring monitor runs this many times less often than it would.
    pub monitor_interval_factor: Option<u32>,
}

/// What a partition without quorum does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoQuorumPolicy {
    #[default]
    Stop,
    Freeze,
    Ignore,
    Demote,
    Suicide,
}

impl NoQuorumPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Freeze => "freeze",
            Self::Ignore => "ignore",
            Self::Demote => "demote",
            Self::Suicide => "suicide",
        }
    }
}

/// One cluster node, named as corosync and `uname -n` name it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    /// The corosync node id; default: the node's position in the list, from 1.
    pub id: Option<u32>,
}

/// How nodes are fenced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FencingSpec {
    #[serde(default)]
    pub mode: FencingMode,
    /// With `mode = "devices"`: the fence devices, at least one per node.
    #[serde(rename = "device", default)]
    pub devices: Vec<FenceDeviceSpec>,
    /// With `mode = "disabled"`: why this cluster runs without fencing (required).
    pub reason: Option<String>,
}

/// The three ways to describe fencing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FencingMode {
    /// One disabled `fence_ipmilan` device per node with `CHANGE-ME` parameters: fencing stays
    /// enabled, so the cluster cannot recover a failed node until real devices replace them.
    #[default]
    Placeholder,
    /// Real devices, given in `[[fencing.device]]`.
    Devices,
    /// `stonith-enabled=false`, only when asked, with a reason, and loudly.
    Disabled,
}

/// A fence device: one node's (IPMI, iLO …) or several nodes' (a PDU, SBD, fence_virsh).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceDeviceSpec {
    /// The node this device fences (`pcmk_host_list`); the device is kept off that node.
    pub node: Option<String>,
    /// Instead of `node`: every node this device fences.
    pub nodes: Option<Vec<String>>,
    /// The fence agent, e.g. `fence_ipmilan`.
    pub agent: String,
    /// Resource id; default `fence_<node>` (required with `nodes`).
    pub name: Option<String>,
    /// The agent's parameters, written as given (sorted by name).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// The `ocf:clever:gwping` clone that scores every node's gateway reachability.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GwpingSpec {
    /// Hosts to ping (`host_list`), each an address or name with an optional `=weight`.
    pub host_list: Vec<String>,
    /// The node attribute (`name`); the location rules test it.
    #[serde(default = "default_attribute")]
    pub attribute: String,
    #[serde(default = "default_multiplier")]
    pub multiplier: i64,
    #[serde(default = "default_dampen")]
    pub dampen: String,
    /// Send probes through this interface only.
    pub interface: Option<String>,
    /// How often gwping's monitor runs; default: the interval the agent advertises.
    pub monitor_interval: Option<String>,
}

/// The agent's own default (`pingd`).
fn default_attribute() -> String {
    agent_default(&gwping::NAME)
}

fn default_multiplier() -> i64 {
    1000
}

/// The agent's own default (`5s`).
fn default_dampen() -> String {
    agent_default(&gwping::DAMPEN)
}

/// The default an agent declares for `parameter` (a unit test checks there is one).
fn agent_default(parameter: &dyn ParameterSpec) -> String {
    parameter.default().unwrap_or_default().to_owned()
}

/// libvirtd as a cluster resource (a clone on every node).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibvirtdSpec {
    #[serde(default)]
    pub class: LibvirtdClass,
    /// The unit or init script name.
    #[serde(default = "default_libvirtd_name")]
    pub name: String,
}

impl Default for LibvirtdSpec {
    fn default() -> Self {
        Self {
            class: LibvirtdClass::default(),
            name: default_libvirtd_name(),
        }
    }
}

fn default_libvirtd_name() -> String {
    "libvirtd".to_owned()
}

/// How Pacemaker controls libvirtd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LibvirtdClass {
    /// `systemd:libvirtd`: Debian 12 runs systemd; Pacemaker waits for the unit's real state.
    #[default]
    Systemd,
    /// `lsb:libvirtd`, as the original cluster had it (needs the sysv init script).
    Lsb,
}

/// One DRBD resource, managed by an `ocf:linbit:drbd` promotable clone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrbdSpec {
    /// The DRBD resource name (`drbd_resource`, as in `/etc/drbd.d/<name>.res`).
    pub name: String,
    /// The block device the VM's filesystem lives on, e.g. `/dev/drbd0`.
    pub device: String,
    /// The nodes holding a replica; default: every node (fine for 2 nodes).
    pub nodes: Option<Vec<String>>,
}

/// One VM and its stack: DRBD Primary → filesystem → VM → address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    /// Short name; resource ids are derived from it (`fs_<name>`, `vm_<name>`, `ip_<name>`).
    pub name: String,
    /// The `[[drbd]]` resource holding the VM's filesystem (one VM per DRBD resource).
    pub drbd: String,
    /// The libvirt domain name; default: `name`.
    pub domain: Option<String>,
    /// The domain's XML definition (`config`), on the DRBD filesystem or on every node.
    pub config: String,
    /// libvirt URI (`hypervisor`); default: the agent's (`qemu:///system`).
    pub hypervisor: Option<String>,
    /// Where hibernation images live (`hibernate_dir` of ocf:clever:vm); it must be on the
    /// VM's DRBD filesystem so images travel with the VM. Default: `<mount directory>/hibernate`.
    /// The vm agent links each domain's path in libvirt's fixed save directory to its image
    /// here, so VMs on different filesystems hibernate on one node at once.
    pub hibernate_dir: Option<String>,
    /// Timeout of the VM's stop (a managed save of all its memory): a Pacemaker interval;
    /// default: the stop timeout the vm agent advertises.
    pub stop_timeout: Option<String>,
    pub mount: MountSpec,
    pub address: AddressSpec,
}

/// Where the VM's DRBD device is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    pub directory: String,
    #[serde(default = "default_fstype")]
    pub fstype: String,
    pub options: Option<String>,
}

fn default_fstype() -> String {
    "ext4".to_owned()
}

/// The floating address that follows the VM (`ocf:heartbeat:IPaddr2`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressSpec {
    pub ip: String,
    pub cidr_netmask: Option<u8>,
    pub nic: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_are_one_line_with_a_position() {
        let err = Description::from_toml("[cluster]\nname = \"c\"\nbogus = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("bogus"), "{text}");
    }

    #[test]
    fn missing_section_is_reported() {
        let err = Description::from_toml("[cluster]\nname = \"c\"\n").unwrap_err();
        assert!(err.to_string().contains("gwping"), "{err}");
    }

    #[test]
    fn gwping_defaults_are_the_agents() {
        assert_eq!(default_attribute(), "pingd");
        assert_eq!(default_dampen(), "5s");
    }

    #[test]
    fn position_of_offset() {
        assert_eq!(line_and_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_and_column("ab", 99), (1, 3));
    }
}
