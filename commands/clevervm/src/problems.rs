//! What is wrong, and what to do about it: the top of the status screen.

use serde::Serialize;

use crate::model::{ClusterView, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The service is down or data is at risk.
    Critical,
    /// Redundancy is reduced or a manual step is pending.
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub what: String,
    pub fix: String,
}

fn problem(severity: Severity, what: String, fix: impl Into<String>) -> Problem {
    Problem {
        severity,
        what,
        fix: fix.into(),
    }
}

/// Every problem the snapshot shows, the most severe first.
pub fn problems(snapshot: &Snapshot) -> Vec<Problem> {
    use Severity::{Critical, Warning};
    let mut found = Vec::new();
    if let Some(reason) = &snapshot.configuration_error {
        found.push(problem(
            Critical,
            format!("cannot read the cluster configuration: {reason}; storage and VMs unknown"),
            "check that Pacemaker's cibadmin works on this node",
        ));
    }
    match &snapshot.cluster {
        ClusterView::Down { reason } => found.push(problem(
            Critical,
            format!("the cluster does not answer on this node: {reason}"),
            "start corosync and pacemaker on this node, or run clevervm on the other node",
        )),
        ClusterView::Up(cluster) => {
            if cluster.quorum == Some(false) {
                found.push(problem(
                    Critical,
                    "the cluster partition has no quorum".to_owned(),
                    "bring the other node back or check the cluster network",
                ));
            }
            if cluster.stonith_enabled == Some(false) {
                found.push(problem(
                    Warning,
                    "fencing is disabled (stonith-enabled=false): a split brain can run the VM twice"
                        .to_owned(),
                    "configure a fence device and set stonith-enabled=true",
                ));
            }
            for node in cluster.nodes.iter().filter(|n| n.state != "online") {
                found.push(problem(
                    if node.state == "unclean" {
                        Critical
                    } else {
                        Warning
                    },
                    format!("node {} is {}", node.name, node.state),
                    match node.state.as_str() {
                        "standby" => {
                            format!("crm node online {} (or pcs node unstandby)", node.name)
                        }
                        "unclean" => {
                            "the node must be fenced before its resources can move".to_owned()
                        }
                        _ => format!("bring {} back into the cluster", node.name),
                    },
                ));
            }
            for pin in &cluster.pins {
                let what = match (pin.id.starts_with("cli-ban"), &pin.node) {
                    (true, Some(node)) => format!(
                        "{} may not run on {node} ({}, left by clevervm migrate)",
                        pin.resource, pin.id
                    ),
                    (false, Some(node)) => format!(
                        "{} is pinned to {node} ({}, left by clevervm migrate --to)",
                        pin.resource, pin.id
                    ),
                    (_, None) => format!(
                        "{} has a constraint {} left by a move",
                        pin.resource, pin.id
                    ),
                };
                found.push(problem(Warning, what, "clevervm unmigrate"));
            }
            for action in &cluster.failed_actions {
                let reason = if action.exit_reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", action.exit_reason)
                };
                found.push(problem(
                    Warning,
                    format!(
                        "{} failed on {} ({}, {}){reason}",
                        action.operation, action.node, action.exit_status, action.exit_code
                    ),
                    "fix the cause, then clevervm cleanup",
                ));
            }
            for count in cluster
                .fail_counts
                .iter()
                .filter(|c| c.migration_threshold > 0 && c.fail_count >= c.migration_threshold)
            {
                found.push(problem(
                    Critical,
                    format!(
                        "{} reached its failure limit on {} ({} of {}): it will not run there",
                        count.resource, count.node, count.fail_count, count.migration_threshold
                    ),
                    "fix the cause, then clevervm cleanup",
                ));
            }
            for vm in &snapshot.vms {
                if vm.running_on.is_empty() {
                    found.push(problem(
                        Critical,
                        format!("VM {} ({}) is not running anywhere", vm.domain, vm.resource),
                        "clevervm forcestart, or see the failed actions above",
                    ));
                }
                if vm.running_on.len() > 1 {
                    found.push(problem(
                        Critical,
                        format!(
                            "VM {} is active on {} nodes at once: {}",
                            vm.domain,
                            vm.running_on.len(),
                            vm.running_on.join(", ")
                        ),
                        "stop it on all but one node now (disk corruption); check fencing",
                    ));
                }
            }
        }
    }
    for storage in &snapshot.storage {
        if storage.split_brain {
            found.push(problem(
                Critical,
                format!(
                    "DRBD {} is StandAlone: possible split brain",
                    storage.resource
                ),
                format!(
                    "on the node whose changes are to be discarded: drbdadm secondary {0}; \
                     drbdadm connect --discard-my-data {0}; on the other: drbdadm connect {0}",
                    storage.resource
                ),
            ));
        } else if storage.degraded {
            found.push(problem(
                Warning,
                storage.health.clone().unwrap_or_default(),
                "check the replication link and the peer node",
            ));
        }
    }
    for vm in &snapshot.vms {
        if let Some(image) = &vm.image {
            if !vm.running_on.is_empty() {
                found.push(problem(
                    Warning,
                    format!(
                        "VM {} runs, but a hibernation image is still at {}",
                        vm.domain, image.path
                    ),
                    "find out why it was not consumed before it is resumed over newer data",
                ));
            }
        }
    }
    for vm in &snapshot.vms {
        if !vm.kept_images.is_empty() {
            let bytes: u64 = vm.kept_images.iter().map(|image| image.bytes).sum();
            found.push(problem(
                Warning,
                format!(
                    "{} hibernation image(s) of VM {} kept aside, not resumed ({} MiB), e.g. {}",
                    vm.kept_images.len(),
                    vm.domain,
                    bytes / (1024 * 1024),
                    vm.kept_images
                        .last()
                        .map(|image| image.path.as_str())
                        .unwrap_or_default()
                ),
                "each is a RAM state the vm agent would not resume (its name says when and why); \
                 inspect, then delete it: on a full filesystem the next hibernation fails and the \
                 VM is shut down instead",
            ));
        }
    }
    found.sort_by_key(|p| p.severity);
    found
}
