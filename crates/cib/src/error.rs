//! What can be wrong with a description; every message is one line an admin can act on.

/// A description that cannot become a cluster configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    /// TOML syntax or a value of the wrong type.
    #[error("line {line}, column {column}: {message}")]
    Parse {
        line: usize,
        column: usize,
        message: String,
    },
    /// Fewer than two nodes, or more than Corosync supports.
    #[error("{count} node(s) described: a cluster needs between {min} and {max}")]
    NodeCount {
        count: usize,
        min: usize,
        max: usize,
    },
    /// No `[[vm]]` at all.
    #[error("no [[vm]] described: the cluster would have nothing to run")]
    NoVms,
    /// A name or value used twice where it must be unique.
    #[error("duplicate {what} {value:?}")]
    Duplicate { what: &'static str, value: String },
    /// A name that cannot become a Pacemaker id or a host name.
    #[error("{what} {value:?} is not valid: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A setting whose value is out of range or malformed.
    #[error("{field} = {value:?}: {reason}")]
    InvalidValue {
        field: String,
        value: String,
        reason: String,
    },
    /// A reference to a node that is not in `[[node]]`.
    #[error("{what} refers to node {node:?}, which is not a [[node]]")]
    UnknownNode { what: String, node: String },
    /// A VM whose DRBD resource is not described.
    #[error("vm {vm:?} uses drbd {drbd:?}, which is not a [[drbd]]")]
    UnknownDrbd { vm: String, drbd: String },
    /// Two VMs on one DRBD resource: they could never be placed independently.
    #[error("drbd {drbd:?} is used by vm {first:?} and vm {second:?}: each VM needs its own")]
    SharedDrbd {
        drbd: String,
        first: String,
        second: String,
    },
    /// A DRBD resource no VM uses.
    #[error("drbd {0:?} is not used by any [[vm]]")]
    UnusedDrbd(String),
    /// A fencing setting that does not fit the chosen mode.
    #[error("fencing: {0}")]
    Fencing(String),
    /// A resource whose own agent refuses its parameters: it would fail every start with exit 6
    /// (not configured), however valid the CIB is to Pacemaker.
    #[error("resource {resource}: {agent} would refuse it at every start: {reason}")]
    AgentRefuses {
        resource: String,
        agent: String,
        reason: String,
    },
}

/// Generating output failed (the only cause is the XML writer).
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Description(#[from] DescriptionError),
    #[error("writing the CIB XML: {0}")]
    Xml(#[from] std::io::Error),
}
