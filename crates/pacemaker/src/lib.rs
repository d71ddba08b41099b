//! Pacemaker through its own tools: `crm_mon --output-as=xml` for state (never screen text, which
//! changes between releases) and `crm_resource` for the admin verbs. Every call goes through the
//! bounded command runner, since Pacemaker's CLI can block on a cluster in transition.

mod commands;
mod configuration;
mod status;

pub use commands::{Pacemaker, PacemakerError, TargetRole};
pub use configuration::{parse_resources, Primitive};
pub use status::{
    parse_crm_mon, Ban, ClusterStatus, CrmMonError, FailCount, FailedAction, Node,
    ResourceInstance, Role,
};
