//! The last moves and failovers of the VM, derived from the operation history Pacemaker keeps
//! in the CIB's status section (`lrm_rsc_op`: `last-rc-change` and `exec-time` of each
//! resource's last stop, demote, promote and start on each node).
//!
//! Pacemaker keeps only the most recent such operation per resource and node (and forgets a
//! fenced node's history), so this shows the latest move in each direction, not a full log;
//! that is what an admin asks after a move ("how long was it away, and which step took the
//! time?"). A phase begins at `last-rc-change` and lasts `exec-time`: for an operation that does
//! not recur, Pacemaker 2.1 records there the moment the executor began running it (`t_run`),
//! not its end (the failover benchmark's timelines confirm it for every operation).
//! `last-rc-change` has one-second resolution, so phases within a second of each other may show
//! out of order.

use quick_xml::events::{BytesStart, Event};
use serde::Serialize;

/// One operation of the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    pub resource: String,
    /// stop, demote, promote or start.
    pub operation: String,
    pub node: String,
    /// Seconds since the epoch.
    pub began: f64,
    pub seconds: f64,
    /// The agent's exit code (0 is success).
    pub rc: i32,
}

impl Phase {
    pub fn ended(&self) -> f64 {
        self.began + self.seconds
    }

    /// The operation's `last-rc-change` as Pacemaker recorded it (whole seconds), for callers
    /// that place it on a clock of their own.
    pub fn last_rc_change(&self) -> f64 {
        self.began
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MoveKind {
    /// Stopped (hibernated) on one node, started (resumed) on another.
    Migration,
    /// Started with no stop recorded on another node: after a fence or a failure, or the
    /// first start.
    Start,
    /// Stopped, and not started anywhere since (a move under way, or the VM held stopped).
    Stop,
}

/// One move of one VM with the phases of the whole stack within it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Move {
    pub vm: String,
    pub kind: MoveKind,
    pub from: Option<String>,
    pub to: Option<String>,
    pub began: f64,
    /// From the start of the VM's stop to the end of its start: how long it was unreachable.
    pub seconds: f64,
    pub phases: Vec<Phase>,
}

#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("the CIB status section is not XML: {0}")]
    Xml(#[from] quick_xml::Error),
    #[error("lrm_rsc_op {id}: {attribute} is not a number: {value:?}")]
    Number {
        id: String,
        attribute: &'static str,
        value: String,
    },
}

const PHASES: [&str; 4] = ["stop", "demote", "promote", "start"];
/// How far before a VM start on a node its stack's own phases there still belong to it, when
/// no stop elsewhere bounds the move.
const STACK_LEAD_SECONDS: f64 = 300.0;
/// `last-rc-change` has one-second resolution.
const SLACK_SECONDS: f64 = 1.0;
/// How far apart a VM's stop on one node and its start on another may be to make one move.
/// The history's times are whole seconds and were seen to put a start's derived beginning
/// before the stop it followed (a loaded lab), so a move is told by the stop having begun before
/// the start ended, not by their order to the second.
const MOVE_WINDOW_SECONDS: f64 = 120.0;

fn attribute(element: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| a.unescape_value().ok())
        .map(|v| v.into_owned())
}

/// Every completed stop/demote/promote/start in a CIB (or its status section).
pub fn parse_phases(xml: &str) -> Result<Vec<Phase>, TimelineError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut node: Option<String> = None;
    let mut resource: Option<String> = None;
    let mut phases = Vec::new();
    loop {
        let event = reader.read_event()?;
        let (element, empty) = match &event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) => {
                match e.name().as_ref() {
                    b"node_state" => node = None,
                    b"lrm_resource" => resource = None,
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match element.name().as_ref() {
            b"node_state" if !empty => node = attribute(element, b"uname"),
            // Clone instances are recorded as `id:N`; the model knows the primitive.
            b"lrm_resource" if !empty => {
                resource = attribute(element, b"id")
                    .map(|id| id.split(':').next().unwrap_or_default().to_owned());
            }
            b"lrm_rsc_op" => {
                let (Some(node), Some(resource)) = (&node, &resource) else {
                    continue;
                };
                let Some(operation) = attribute(element, b"operation") else {
                    continue;
                };
                let interval = attribute(element, b"interval").unwrap_or_default();
                if !PHASES.contains(&operation.as_str()) || !matches!(interval.as_str(), "" | "0") {
                    continue;
                }
                // op-status other than 0 (done) means it did not complete: pending, cancelled.
                if attribute(element, b"op-status").is_some_and(|s| s != "0") {
                    continue;
                }
                let id = attribute(element, b"id").unwrap_or_default();
                let number = |name: &'static str| -> Result<Option<f64>, TimelineError> {
                    match attribute(element, name.as_bytes()) {
                        None => Ok(None),
                        Some(value) => {
                            value
                                .parse::<f64>()
                                .map(Some)
                                .map_err(|_| TimelineError::Number {
                                    id: id.clone(),
                                    attribute: name,
                                    value,
                                })
                        }
                    }
                };
                let (Some(began), Some(milliseconds)) =
                    (number("last-rc-change")?, number("exec-time")?)
                else {
                    continue;
                };
                let rc = attribute(element, b"rc-code")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(-1);
                let seconds = milliseconds / 1000.0;
                phases.push(Phase {
                    resource: resource.clone(),
                    operation,
                    node: node.clone(),
                    began,
                    seconds,
                    rc,
                });
            }
            _ => {}
        }
    }
    phases.sort_by(|a, b| a.began.total_cmp(&b.began));
    Ok(phases)
}

/// The moves of `vms` the history shows, the latest first.
pub fn moves(phases: &[Phase], vms: &[String]) -> Vec<Move> {
    let mut found = Vec::new();
    for vm in vms {
        let of_vm = |operation: &'static str| {
            phases
                .iter()
                .filter(move |p| p.resource == *vm && p.operation == operation)
        };
        let mut stops_used = Vec::new();
        for start in of_vm("start").filter(|p| p.rc == 0) {
            let stop = of_vm("stop")
                .filter(|s| {
                    s.node != start.node
                        && s.began <= start.ended() + SLACK_SECONDS
                        && s.ended() >= start.began - MOVE_WINDOW_SECONDS
                })
                .max_by(|a, b| a.began.total_cmp(&b.began));
            let (kind, from, began) = match stop {
                Some(stop) => {
                    stops_used.push(stop.clone());
                    (MoveKind::Migration, Some(stop.node.clone()), stop.began)
                }
                None => {
                    let lead = phases
                        .iter()
                        .filter(|p| {
                            p.node == start.node
                                && p.resource != *vm
                                && (p.operation == "promote" || p.operation == "start")
                                && p.began >= start.began - STACK_LEAD_SECONDS
                                && p.began <= start.began
                        })
                        .map(|p| p.began)
                        .fold(start.began, f64::min);
                    (MoveKind::Start, None, lead)
                }
            };
            let ended = start.ended();
            found.push(Move {
                vm: vm.clone(),
                kind,
                from,
                to: Some(start.node.clone()),
                began,
                seconds: ended - began,
                phases: within(phases, began, ended),
            });
        }
        let latest_start = of_vm("start")
            .map(|p| p.began)
            .fold(f64::NEG_INFINITY, f64::max);
        for stop in of_vm("stop") {
            if stop.began > latest_start && !stops_used.contains(stop) {
                found.push(Move {
                    vm: vm.clone(),
                    kind: MoveKind::Stop,
                    from: Some(stop.node.clone()),
                    to: None,
                    began: stop.began,
                    seconds: stop.seconds,
                    phases: within(phases, stop.began, f64::INFINITY),
                });
            }
        }
    }
    found.sort_by(|a, b| b.began.total_cmp(&a.began));
    found
}

fn within(phases: &[Phase], began: f64, ended: f64) -> Vec<Phase> {
    phases
        .iter()
        .filter(|p| p.began >= began - SLACK_SECONDS && p.ended() <= ended + SLACK_SECONDS)
        .cloned()
        .collect()
}

/// How long the VM was unreachable in the latest migration, when one is recorded.
pub fn last_migration_seconds(moves: &[Move]) -> Option<f64> {
    moves
        .iter()
        .find(|m| m.kind == MoveKind::Migration)
        .map(|m| m.seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER_MIGRATION: &str = include_str!("../tests/fixtures/cib-status-after-migration.xml");

    fn ops(phases: &[Phase]) -> Vec<String> {
        phases
            .iter()
            .map(|p| format!("{} {} {} {:.2}", p.operation, p.resource, p.node, p.seconds))
            .collect()
    }

    #[test]
    fn a_recorded_migration_is_one_move_with_its_phases_in_order() {
        let phases = parse_phases(AFTER_MIGRATION).unwrap();
        let moves = moves(&phases, &["vm".to_owned()]);
        assert_eq!(moves.len(), 1, "{moves:#?}");
        let m = &moves[0];
        assert_eq!(m.kind, MoveKind::Migration);
        assert_eq!(m.from.as_deref(), Some("node1"));
        assert_eq!(m.to.as_deref(), Some("node2"));
        // vm stop began at 1796000001 (last-rc-change); vm start began at 1796000009 and ran
        // 2.8 s.
        assert!((m.began - 1_796_000_001.0).abs() < 1e-6, "{}", m.began);
        assert!((m.seconds - 10.8).abs() < 1e-6, "{}", m.seconds);
        assert_eq!(
            ops(&m.phases),
            [
                "stop vm node1 4.20",
                "stop ip node1 0.06",
                "stop fs node1 0.35",
                "demote drbd node1 0.24",
                "promote drbd node2 0.41",
                "start fs node2 0.52",
                "start ip node2 0.08",
                "start vm node2 2.80",
            ]
        );
        assert_eq!(last_migration_seconds(&moves), Some(m.seconds));
    }

    /// Recorded in the namespace lab right after the console moved the VM (clever-console's
    /// lab test writes it).
    #[test]
    fn a_migration_recorded_in_the_lab_reads_as_one() {
        let xml = include_str!("../tests/fixtures/cib-status-lab-migration.xml");
        let moves = moves(&parse_phases(xml).unwrap(), &["vm_clever".to_owned()]);
        let m = &moves[0];
        assert_eq!(m.kind, MoveKind::Migration, "{moves:#?}");
        assert_eq!(
            (m.from.as_deref(), m.to.as_deref()),
            (Some("node1"), Some("node2"))
        );
        let steps: Vec<String> = m
            .phases
            .iter()
            .map(|p| format!("{} {} {}", p.operation, p.resource, p.node))
            .collect();
        for step in [
            "stop vm_clever node1",
            "demote drbd_r0 node1",
            "promote drbd_r0 node2",
            "start vm_clever node2",
        ] {
            assert!(
                steps.iter().any(|s| s == step),
                "{step} missing from {steps:?}"
            );
        }
        assert!(m.seconds > 0.9 && m.seconds < 10.0, "{}", m.seconds);
    }

    #[test]
    fn the_recorded_last_rc_change_is_kept() {
        let phases = parse_phases(AFTER_MIGRATION).unwrap();
        let stop = phases
            .iter()
            .find(|p| p.resource == "vm" && p.operation == "stop")
            .unwrap();
        assert!(
            (stop.last_rc_change() - 1_796_000_001.0).abs() < 1e-6,
            "{stop:?}"
        );
    }

    #[test]
    fn monitors_probes_pending_and_failed_entries_are_not_moves() {
        let phases = parse_phases(AFTER_MIGRATION).unwrap();
        assert!(phases
            .iter()
            .all(|p| PHASES.contains(&p.operation.as_str())));
        // The old failed start on node2 is a phase (with its rc) but no move: it did not start.
        let failed: Vec<&Phase> = phases.iter().filter(|p| p.rc != 0).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].rc, 1);
        assert!(!phases.iter().any(|p| p.operation == "monitor"));
    }

    #[test]
    fn a_start_with_no_stop_elsewhere_is_a_failover_or_first_start_and_a_lone_stop_is_pending() {
        let only_node2 = AFTER_MIGRATION.replace(r#"uname="node1""#, r#"uname="gone""#);
        let mut phases = parse_phases(&only_node2).unwrap();
        phases.retain(|p| p.node != "gone");
        let moves = moves(&phases, &["vm".to_owned()]);
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].kind, MoveKind::Start);
        assert_eq!(moves[0].to.as_deref(), Some("node2"));
        // Its stack on node2 (promote, fs, ip) belongs to it.
        assert_eq!(
            moves[0].phases.first().map(|p| p.operation.as_str()),
            Some("promote")
        );

        let mut stopped = parse_phases(AFTER_MIGRATION).unwrap();
        stopped.retain(|p| !(p.resource == "vm" && p.node == "node2"));
        let moves = super::moves(&stopped, &["vm".to_owned()]);
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].kind, MoveKind::Stop);
        assert_eq!(moves[0].from.as_deref(), Some("node1"));
        assert_eq!(last_migration_seconds(&moves), None);
    }

    /// Recorded in a loaded lab: the whole seconds put the start's derived beginning on node2
    /// before the stop on node1 it followed. It is still one migration.
    #[test]
    fn a_start_whose_derived_beginning_precedes_its_stop_is_still_a_migration() {
        let phase = |resource: &str, operation: &str, node: &str, began: f64, seconds: f64| Phase {
            resource: resource.to_owned(),
            operation: operation.to_owned(),
            node: node.to_owned(),
            began,
            seconds,
            rc: 0,
        };
        let phases = vec![
            phase("ip", "stop", "node1", 800.887, 0.113),
            phase("vm", "start", "node2", 800.955, 2.045),
            phase("vm", "stop", "node1", 801.064, 0.936),
            phase("drbd", "demote", "node1", 801.958, 0.042),
            phase("fs", "stop", "node1", 801.987, 0.013),
            phase("drbd", "promote", "node2", 802.964, 0.036),
            phase("fs", "start", "node2", 802.986, 0.014),
        ];
        let moves = moves(&phases, &["vm".to_owned()]);
        assert_eq!(moves.len(), 1, "{moves:#?}");
        assert_eq!(moves[0].kind, MoveKind::Migration);
        assert_eq!(moves[0].from.as_deref(), Some("node1"));
        assert_eq!(moves[0].to.as_deref(), Some("node2"));
        // A stop long before the start is another story: a start after it is a failover.
        let apart = vec![
            phase("vm", "stop", "node1", 100.0, 1.0),
            phase("vm", "start", "node2", 800.0, 2.0),
        ];
        assert_eq!(
            super::moves(&apart, &["vm".to_owned()])[0].kind,
            MoveKind::Start
        );
    }

    #[test]
    fn a_bad_number_is_an_error_and_an_empty_history_is_no_moves() {
        let bad = AFTER_MIGRATION.replace(r#"exec-time="4200""#, r#"exec-time="soon""#);
        assert!(matches!(
            parse_phases(&bad),
            Err(TimelineError::Number {
                attribute: "exec-time",
                ..
            })
        ));
        assert!(moves(&parse_phases("<status/>").unwrap(), &["vm".to_owned()]).is_empty());
        assert!(parse_phases("<status><node_state").is_err());
    }
}
