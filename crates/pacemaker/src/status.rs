//! `crm_mon --output-as=xml`, typed. The raw shape (Pacemaker's `crm_mon` API schema) is read
//! with serde and flattened into what an admin asks: where does each resource run, in which role,
//! what failed, what bans are left behind.

use std::fmt;
use std::str::FromStr;

/// crm_mon's XML could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CrmMonError {
    #[error("crm_mon XML: {0}")]
    Xml(#[from] quick_xml::DeError),
    #[error("crm_mon reported {code}: {message}")]
    Failed { code: i32, message: String },
    #[error("crm_mon XML: unknown resource role {0:?}")]
    UnknownRole(String),
}

/// The role of one resource instance on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Stopped,
    Started,
    Promoted,
    Unpromoted,
    Starting,
    Stopping,
    Migrating,
    Promoting,
    Demoting,
    Unknown,
}

impl FromStr for Role {
    type Err = CrmMonError;

    /// Accepts the pre-2.1 names (Master/Slave) some tools still print.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "Stopped" => Self::Stopped,
            "Started" => Self::Started,
            "Promoted" | "Master" => Self::Promoted,
            "Unpromoted" | "Slave" => Self::Unpromoted,
            "Starting" => Self::Starting,
            "Stopping" => Self::Stopping,
            "Migrating" => Self::Migrating,
            "Promoting" => Self::Promoting,
            "Demoting" => Self::Demoting,
            "Unknown" => Self::Unknown,
            other => {
                return Err(CrmMonError::UnknownRole(clever_command::shorten(
                    other,
                    clever_command::SHOWN_VALUE_LEN,
                )))
            }
        })
    }
}

impl Role {
    /// Pacemaker records an operation in flight (`record-pending`) as these roles: the
    /// instance is already claimed on the node but has not arrived.
    pub fn is_transition(self) -> bool {
        matches!(
            self,
            Self::Starting | Self::Stopping | Self::Migrating | Self::Promoting | Self::Demoting
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A cluster node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub id: String,
    pub online: bool,
    pub standby: bool,
    pub maintenance: bool,
    pub pending: bool,
    pub unclean: bool,
    pub shutdown: bool,
    pub is_dc: bool,
    pub resources_running: u32,
}

/// One instance of a primitive (clone instances appear once each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInstance {
    pub id: String,
    /// `class:provider:type`.
    pub agent: String,
    pub role: Role,
    pub active: bool,
    pub failed: bool,
    pub blocked: bool,
    pub managed: bool,
    pub nodes: Vec<String>,
    /// The clone or group it belongs to.
    pub parent: Option<String>,
}

/// A resource's failures on a node (the "Migration summary" of the original `clevervm status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailCount {
    pub node: String,
    pub resource: String,
    pub fail_count: u32,
    pub migration_threshold: u32,
    pub last_failure: Option<String>,
}

/// A failed operation, with the agent's exit reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAction {
    pub op_key: String,
    pub node: String,
    pub task: String,
    pub exit_code: i32,
    pub exit_status: String,
    pub exit_reason: String,
    pub last_change: String,
}

/// A location constraint left by `crm_resource --ban/--move` (ids `cli-ban-*`, `cli-prefer-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub id: String,
    pub resource: String,
    pub node: String,
    pub weight: i64,
    pub promoted_only: bool,
}

/// A simple location constraint (resource, node, score) from the CIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationConstraint {
    pub id: String,
    pub resource: String,
    pub node: Option<String>,
    /// The score as written (`-INFINITY`, `100`, …).
    pub score: Option<String>,
    pub role: Option<String>,
}

/// Parses the `<constraints>` section (`cibadmin --query --scope constraints`), keeping the
/// `rsc_location` elements.
pub fn parse_location_constraints(xml: &str) -> Result<Vec<LocationConstraint>, CrmMonError> {
    let raw: raw::Constraints = quick_xml::de::from_str(xml)?;
    Ok(raw
        .items
        .into_iter()
        .filter_map(|item| match item {
            raw::ConstraintItem::RscLocation(l) => Some(LocationConstraint {
                id: l.id,
                resource: l.rsc.unwrap_or_default(),
                node: l.node,
                score: l.score,
                role: l.role,
            }),
            raw::ConstraintItem::Other => None,
        })
        .collect())
}

/// The cluster as crm_mon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterStatus {
    pub stack: Option<String>,
    pub dc: Option<String>,
    pub quorum: Option<bool>,
    pub stonith_enabled: Option<bool>,
    pub nodes: Vec<Node>,
    pub resources: Vec<ResourceInstance>,
    pub fail_counts: Vec<FailCount>,
    pub failures: Vec<FailedAction>,
    pub bans: Vec<Ban>,
    /// `(node, attribute, value)`, e.g. the `pingd` score.
    pub node_attributes: Vec<(String, String, String)>,
}

impl ClusterStatus {
    /// The nodes where instances of `id` are active in `role` (any active role when `None`).
    pub fn running_on(&self, id: &str, role: Option<Role>) -> Vec<&str> {
        let mut nodes: Vec<&str> = self
            .resources
            .iter()
            .filter(|r| r.id == id && r.active && role.is_none_or(|role| r.role == role))
            .flat_map(|r| r.nodes.iter().map(String::as_str))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// Like [`running_on`](Self::running_on), but an instance still starting, promoting or
    /// migrating does not count: a wait for a move must end when the move has ended, while a
    /// check for two active copies must count the one still arriving.
    pub fn settled_on(&self, id: &str, role: Option<Role>) -> Vec<&str> {
        let mut nodes: Vec<&str> = self
            .resources
            .iter()
            .filter(|r| {
                r.id == id
                    && r.active
                    && !r.role.is_transition()
                    && role.is_none_or(|role| r.role == role)
            })
            .flat_map(|r| r.nodes.iter().map(String::as_str))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn attribute(&self, node: &str, name: &str) -> Option<&str> {
        self.node_attributes
            .iter()
            .find(|(n, a, _)| n == node && a == name)
            .map(|(_, _, v)| v.as_str())
    }
}

/// Parses the output of `crm_mon --output-as=xml` (any `--include` set).
pub fn parse_crm_mon(xml: &str) -> Result<ClusterStatus, CrmMonError> {
    let raw: raw::Result = quick_xml::de::from_str(xml)?;
    if let Some(status) = &raw.status {
        let errors: Vec<&str> = status
            .errors
            .iter()
            .flat_map(|e| e.errors.iter().map(String::as_str))
            .collect();
        // crm_mon 2.1 answers "OK" with an <errors> list when it cannot reach the CIB at all.
        if status.code != 0 || (raw.summary.is_none() && !errors.is_empty()) {
            let message = if errors.is_empty() {
                status.message.clone()
            } else {
                errors.join("; ")
            };
            return Err(CrmMonError::Failed {
                code: status.code,
                message,
            });
        }
    }
    let summary = raw.summary.unwrap_or_default();
    let mut resources = Vec::new();
    for item in raw.resources.map(|r| r.items).unwrap_or_default() {
        flatten(item, None, &mut resources)?;
    }
    let mut fail_counts = Vec::new();
    for node in raw.node_history.map(|h| h.nodes).unwrap_or_default() {
        for history in node.resources {
            if let Some(fail_count) = history.fail_count.filter(|c| *c > 0) {
                fail_counts.push(FailCount {
                    node: node.name.clone(),
                    resource: history.id,
                    fail_count,
                    migration_threshold: history.migration_threshold.unwrap_or(0),
                    last_failure: history.last_failure,
                });
            }
        }
    }
    let node_attributes = raw
        .node_attributes
        .map(|a| a.nodes)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|node| {
            node.attributes
                .into_iter()
                .map(move |a| (node.name.clone(), a.name, a.value))
        })
        .collect();
    Ok(ClusterStatus {
        stack: summary.stack.map(|s| s.kind),
        dc: summary.current_dc.as_ref().and_then(|dc| dc.name.clone()),
        quorum: summary.current_dc.and_then(|dc| dc.with_quorum),
        stonith_enabled: summary.cluster_options.and_then(|o| o.stonith_enabled),
        nodes: raw
            .nodes
            .map(|n| n.nodes)
            .unwrap_or_default()
            .into_iter()
            .map(|n| Node {
                name: n.name,
                id: n.id,
                online: n.online,
                standby: n.standby,
                maintenance: n.maintenance,
                pending: n.pending,
                unclean: n.unclean,
                shutdown: n.shutdown,
                is_dc: n.is_dc,
                resources_running: n.resources_running,
            })
            .collect(),
        resources,
        fail_counts,
        failures: raw
            .failures
            .map(|f| f.failures)
            .unwrap_or_default()
            .into_iter()
            .map(|f| FailedAction {
                op_key: f.op_key,
                node: f.node,
                task: f.task,
                exit_code: f.exitcode,
                exit_status: f.exitstatus,
                exit_reason: f.exitreason.unwrap_or_default(),
                last_change: f.last_rc_change.unwrap_or_default(),
            })
            .collect(),
        bans: raw
            .bans
            .map(|b| b.bans)
            .unwrap_or_default()
            .into_iter()
            .map(|b| Ban {
                id: b.id,
                resource: b.resource,
                node: b.node,
                weight: b.weight,
                promoted_only: b.promoted_only,
            })
            .collect(),
        node_attributes,
    })
}

fn flatten(
    item: raw::Item,
    parent: Option<&str>,
    out: &mut Vec<ResourceInstance>,
) -> Result<(), CrmMonError> {
    match item {
        raw::Item::Resource(r) => out.push(ResourceInstance {
            role: r.role.parse()?,
            id: r.id,
            agent: r.resource_agent,
            active: r.active,
            failed: r.failed,
            blocked: r.blocked,
            managed: r.managed,
            nodes: r.nodes.into_iter().map(|n| n.name).collect(),
            parent: parent.map(str::to_owned),
        }),
        raw::Item::Clone(c) | raw::Item::Group(c) | raw::Item::Bundle(c) => {
            for child in c.items {
                flatten(child, Some(&c.id), out)?;
            }
        }
        raw::Item::Other => {}
    }
    Ok(())
}

/// The document as Pacemaker writes it; only what we use, unknown parts ignored.
mod raw {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    pub struct Result {
        pub summary: Option<Summary>,
        pub nodes: Option<Nodes>,
        pub resources: Option<Resources>,
        pub node_attributes: Option<NodeAttributes>,
        pub node_history: Option<NodeHistory>,
        pub failures: Option<Failures>,
        pub bans: Option<Bans>,
        pub status: Option<Status>,
    }

    #[derive(Debug, Deserialize, Default)]
    pub struct Summary {
        pub stack: Option<Stack>,
        pub current_dc: Option<CurrentDc>,
        pub cluster_options: Option<ClusterOptions>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Stack {
        #[serde(rename = "@type")]
        pub kind: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct CurrentDc {
        #[serde(rename = "@name")]
        pub name: Option<String>,
        #[serde(rename = "@with_quorum")]
        pub with_quorum: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    pub struct ClusterOptions {
        #[serde(rename = "@stonith-enabled")]
        pub stonith_enabled: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Nodes {
        #[serde(rename = "node", default)]
        pub nodes: Vec<Node>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Node {
        #[serde(rename = "@name")]
        pub name: String,
        #[serde(rename = "@id", default)]
        pub id: String,
        #[serde(rename = "@online", default)]
        pub online: bool,
        #[serde(rename = "@standby", default)]
        pub standby: bool,
        #[serde(rename = "@maintenance", default)]
        pub maintenance: bool,
        #[serde(rename = "@pending", default)]
        pub pending: bool,
        #[serde(rename = "@unclean", default)]
        pub unclean: bool,
        #[serde(rename = "@shutdown", default)]
        pub shutdown: bool,
        #[serde(rename = "@is_dc", default)]
        pub is_dc: bool,
        #[serde(rename = "@resources_running", default)]
        pub resources_running: u32,
    }

    #[derive(Debug, Deserialize)]
    pub struct Resources {
        #[serde(rename = "$value", default)]
        pub items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Item {
        Resource(Resource),
        Clone(Collective),
        Group(Collective),
        Bundle(Collective),
        #[serde(other)]
        Other,
    }

    #[derive(Debug, Deserialize)]
    pub struct Collective {
        #[serde(rename = "@id")]
        pub id: String,
        #[serde(rename = "$value", default)]
        pub items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Resource {
        #[serde(rename = "@id")]
        pub id: String,
        #[serde(rename = "@resource_agent", default)]
        pub resource_agent: String,
        #[serde(rename = "@role")]
        pub role: String,
        #[serde(rename = "@active", default)]
        pub active: bool,
        #[serde(rename = "@failed", default)]
        pub failed: bool,
        #[serde(rename = "@blocked", default)]
        pub blocked: bool,
        #[serde(rename = "@managed", default)]
        pub managed: bool,
        #[serde(rename = "node", default)]
        pub nodes: Vec<NodeRef>,
    }

    #[derive(Debug, Deserialize)]
    pub struct NodeRef {
        #[serde(rename = "@name")]
        pub name: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct NodeAttributes {
        #[serde(rename = "node", default)]
        pub nodes: Vec<AttributeNode>,
    }

    #[derive(Debug, Deserialize)]
    pub struct AttributeNode {
        #[serde(rename = "@name")]
        pub name: String,
        #[serde(rename = "attribute", default)]
        pub attributes: Vec<Attribute>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Attribute {
        #[serde(rename = "@name")]
        pub name: String,
        #[serde(rename = "@value", default)]
        pub value: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct NodeHistory {
        #[serde(rename = "node", default)]
        pub nodes: Vec<HistoryNode>,
    }

    #[derive(Debug, Deserialize)]
    pub struct HistoryNode {
        #[serde(rename = "@name")]
        pub name: String,
        #[serde(rename = "resource_history", default)]
        pub resources: Vec<ResourceHistory>,
    }

    #[derive(Debug, Deserialize)]
    pub struct ResourceHistory {
        #[serde(rename = "@id")]
        pub id: String,
        #[serde(rename = "@fail-count")]
        pub fail_count: Option<u32>,
        #[serde(rename = "@migration-threshold")]
        pub migration_threshold: Option<u32>,
        #[serde(rename = "@last-failure")]
        pub last_failure: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Failures {
        #[serde(rename = "failure", default)]
        pub failures: Vec<Failure>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Failure {
        #[serde(rename = "@op_key")]
        pub op_key: String,
        #[serde(rename = "@node")]
        pub node: String,
        #[serde(rename = "@task", default)]
        pub task: String,
        #[serde(rename = "@exitcode", default)]
        pub exitcode: i32,
        #[serde(rename = "@exitstatus", default)]
        pub exitstatus: String,
        #[serde(rename = "@exitreason")]
        pub exitreason: Option<String>,
        #[serde(rename = "@last-rc-change")]
        pub last_rc_change: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Bans {
        #[serde(rename = "ban", default)]
        pub bans: Vec<Ban>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Ban {
        #[serde(rename = "@id")]
        pub id: String,
        #[serde(rename = "@resource")]
        pub resource: String,
        #[serde(rename = "@node")]
        pub node: String,
        #[serde(rename = "@weight", default)]
        pub weight: i64,
        #[serde(rename = "@promoted-only", default)]
        pub promoted_only: bool,
    }

    #[derive(Debug, Deserialize)]
    pub struct Constraints {
        #[serde(rename = "$value", default)]
        pub items: Vec<ConstraintItem>,
    }

    #[derive(Debug, Deserialize)]
    pub enum ConstraintItem {
        #[serde(rename = "rsc_location")]
        RscLocation(Location),
        #[serde(other)]
        Other,
    }

    #[derive(Debug, Deserialize)]
    pub struct Location {
        #[serde(rename = "@id")]
        pub id: String,
        #[serde(rename = "@rsc")]
        pub rsc: Option<String>,
        #[serde(rename = "@node")]
        pub node: Option<String>,
        #[serde(rename = "@score")]
        pub score: Option<String>,
        #[serde(rename = "@role")]
        pub role: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Status {
        #[serde(rename = "@code")]
        pub code: i32,
        #[serde(rename = "@message", default)]
        pub message: String,
        pub errors: Option<Errors>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Errors {
        #[serde(rename = "error", default)]
        pub errors: Vec<String>,
    }
}
