//! The admin verbs other than status.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use clever_command::RunCommand;
use clever_deadline::Deadline;
use clever_pacemaker::{ClusterStatus, Pacemaker, Primitive, Role, TargetRole};

use crate::error::ClevervmError;

/// The resources the verbs act on, found in the CIB.
#[derive(Debug, Clone)]
pub struct Stack {
    pub vms: Vec<Primitive>,
    /// What migrate moves: the promotable DRBD clone(s) the VMs depend on (their promoted role
    /// only), or the VM resources themselves when there is no promotable clone.
    pub anchors: Vec<(String, bool)>,
}

pub fn discover<R: RunCommand>(
    pacemaker: &Pacemaker<R>,
    deadline: &Deadline,
) -> Result<Stack, ClevervmError> {
    let primitives = pacemaker.primitives(deadline)?;
    let vms: Vec<Primitive> = primitives
        .iter()
        .filter(|p| p.agent() == "ocf:clever:vm")
        .cloned()
        .collect();
    if vms.is_empty() {
        return Err(ClevervmError::NoVm);
    }
    let clones = |wanted: &dyn Fn(&Primitive) -> bool| -> Vec<(String, bool)> {
        primitives
            .iter()
            .filter(|p| wanted(p))
            .filter_map(|p| p.promotable_clone.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|id| (id, true))
            .collect()
    };
    let mut anchors = clones(&|p| p.agent() == "ocf:linbit:drbd");
    if anchors.is_empty() {
        // A lab or a cluster whose storage is another promotable resource.
        anchors = clones(&|_| true);
    }
    if anchors.is_empty() {
        anchors = vms
            .iter()
            .map(|vm| (vm.top_level_id().to_owned(), false))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
    }
    Ok(Stack { vms, anchors })
}

pub fn set_target_role<R: RunCommand>(
    pacemaker: &Pacemaker<R>,
    stack: &Stack,
    role: TargetRole,
    out: &mut dyn Write,
    deadline: &Deadline,
) -> Result<(), ClevervmError> {
    for vm in &stack.vms {
        pacemaker.set_target_role(&vm.id, role, deadline)?;
        let _ = writeln!(out, "{}: target-role={}", vm.id, role.as_str());
    }
    Ok(())
}

pub fn cleanup<R: RunCommand>(
    pacemaker: &Pacemaker<R>,
    out: &mut dyn Write,
    deadline: &Deadline,
) -> Result<(), ClevervmError> {
    pacemaker.cleanup(None, None, deadline)?;
    let _ = writeln!(
        out,
        "failures cleared; Pacemaker will reconsider every resource"
    );
    Ok(())
}

/// Removes the constraints `migrate` left.
pub fn unmigrate<R: RunCommand>(
    pacemaker: &Pacemaker<R>,
    stack: &Stack,
    out: &mut dyn Write,
    deadline: &Deadline,
) -> Result<(), ClevervmError> {
    for (anchor, _) in &stack.anchors {
        pacemaker.clear(anchor, deadline)?;
        let _ = writeln!(out, "{anchor}: migrate constraints removed");
    }
    let _ = writeln!(
        out,
        "Nothing moves back by itself: resource stickiness keeps the VM where it runs now."
    );
    Ok(())
}

/// Checks the move can succeed, then places the constraints.
pub fn migrate<R: RunCommand>(
    pacemaker: &Pacemaker<R>,
    stack: &Stack,
    this_node: &str,
    to: Option<&str>,
    out: &mut dyn Write,
    deadline: &Deadline,
) -> Result<(), ClevervmError> {
    let status = pacemaker.status(deadline)?;
    check_migrate(&status, this_node, to)?;
    for (anchor, promoted_only) in &stack.anchors {
        match to {
            Some(target) => {
                pacemaker.move_to(anchor, target, *promoted_only, deadline)?;
                let _ = writeln!(out, "{anchor}: preferred on {target} (cli-prefer-{anchor})");
            }
            None => {
                pacemaker.ban(anchor, this_node, *promoted_only, deadline)?;
                let _ = writeln!(
                    out,
                    "{anchor}: banned from {this_node} (cli-ban-{anchor}-on-{this_node}); \
                     run clevervm unmigrate to lift it"
                );
            }
        }
    }
    Ok(())
}

/// Why a move away from `this_node` (or to `to`) would fail, before anything is changed: the
/// command and the web console refuse with the same words.
pub fn check_migrate(
    status: &ClusterStatus,
    this_node: &str,
    to: Option<&str>,
) -> Result<(), ClevervmError> {
    let eligible = |name: &str| {
        status
            .node(name)
            .is_some_and(|n| n.online && !n.standby && !n.unclean && !n.maintenance)
    };
    match to {
        Some(target) => {
            if status.node(target).is_none() {
                return Err(ClevervmError::UnknownNode(target.to_owned()));
            }
            if !eligible(target) {
                return Err(ClevervmError::CannotMigrate(format!(
                    "node {target} cannot take the stack: {}",
                    describe_node(status, target)
                )));
            }
        }
        None => {
            let others: Vec<&str> = status
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .filter(|n| *n != this_node)
                .collect();
            if !others.iter().any(|n| eligible(n)) {
                let why = others
                    .iter()
                    .map(|n| format!("{n} is {}", describe_node(status, n)))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ClevervmError::CannotMigrate(format!(
                    "no other node can take the stack{}",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {why}")
                    }
                )));
            }
        }
    }
    Ok(())
}

fn describe_node(status: &ClusterStatus, name: &str) -> &'static str {
    match status.node(name) {
        None => "unknown",
        Some(n) if n.unclean => "unclean",
        Some(n) if !n.online => "offline",
        Some(n) if n.standby => "in standby",
        Some(n) if n.maintenance => "in maintenance",
        Some(_) => "online",
    }
}

/// Follows a migration until every VM runs away from `this_node` (on `to` when given), printing
/// each change as it happens.
pub fn follow<R: RunCommand>(
    pacemaker: &Pacemaker<R>,
    stack: &Stack,
    this_node: &str,
    to: Option<&str>,
    wait: Duration,
    out: &mut dyn Write,
) -> Result<(), ClevervmError> {
    let started = Instant::now();
    let started_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let deadline = Deadline::after(wait);
    let known_failures: BTreeSet<(String, String)> = pacemaker
        .status(&deadline)?
        .failures
        .into_iter()
        .map(|f| (f.op_key, f.last_change))
        .collect();
    let watched: BTreeSet<&str> = stack
        .vms
        .iter()
        .map(|vm| vm.id.as_str())
        .chain(stack.anchors.iter().map(|(a, _)| a.as_str()))
        .collect();
    let mut last_line = String::new();
    let mut steps_shown = BTreeSet::new();
    loop {
        let status = pacemaker.status(&deadline.capped(Duration::from_secs(10)))?;
        let line = progress_line(&status, stack);
        if line != last_line {
            let _ = writeln!(out, "[{:>6.1}s] {line}", started.elapsed().as_secs_f64());
            last_line = line;
        }
        // Read after the status above, so every step that status reflects is already here.
        show_completed_steps(
            pacemaker,
            started,
            started_epoch,
            &deadline,
            &mut steps_shown,
            out,
        );
        let _ = out.flush();
        let arrived = stack.vms.iter().all(|vm| {
            let nodes = status.settled_on(&vm.id, None);
            nodes.len() == 1
                && nodes
                    .iter()
                    .all(|n| *n != this_node && to.is_none_or(|t| *n == t))
        });
        if arrived {
            let _ = writeln!(
                out,
                "migration complete in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            print_move(pacemaker, stack, started_epoch, &deadline, out);
            return Ok(());
        }
        if let Some(failure) = status.failures.iter().find(|f| {
            !known_failures.contains(&(f.op_key.clone(), f.last_change.clone()))
                && watched
                    .iter()
                    .any(|w| f.op_key.starts_with(&format!("{w}_")))
        }) {
            return Err(ClevervmError::MigrationFailed(format!(
                "{} failed on {} ({}){}",
                failure.op_key,
                failure.node,
                failure.exit_status,
                if failure.exit_reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", failure.exit_reason)
                }
            )));
        }
        if deadline.expired() {
            return Err(ClevervmError::MigrationFailed(format!(
                "still not done after {wait:?}: {last_line}"
            )));
        }
        std::thread::sleep(Duration::from_millis(250).min(deadline.remaining()));
    }
}

/// The steps of the move (stops, demotions, promotions, starts) from the cluster's operation
/// history, each once, as its result reaches the CIB: when it was seen and how long it ran, so an
/// admin watching a slow move sees which step holds it. Best effort: a history that cannot be
/// read this round is read again the next.
fn show_completed_steps<R: RunCommand>(
    pacemaker: &Pacemaker<R>,
    started: Instant,
    started_epoch: f64,
    deadline: &Deadline,
    shown: &mut BTreeSet<(String, String, String, u64)>,
    out: &mut dyn Write,
) {
    let Some(phases) = recent_phases(pacemaker, started_epoch, deadline) else {
        return;
    };
    for phase in phases {
        // `began` tells a repeated operation from the first (read from the same record each
        // round, so its bits are the same).
        let key = (
            phase.resource.clone(),
            phase.operation.clone(),
            phase.node.clone(),
            phase.began.to_bits(),
        );
        if shown.insert(key) {
            let _ = writeln!(
                out,
                "[{:>6.1}s]   {}",
                started.elapsed().as_secs_f64(),
                crate::render::step_line(&phase)
            );
        }
    }
}

/// The history's steps that began since the command ran. Its times are whole seconds: a step
/// that began in the second the command ran reads as up to one second before it.
fn recent_phases<R: RunCommand>(
    pacemaker: &Pacemaker<R>,
    started_epoch: f64,
    deadline: &Deadline,
) -> Option<Vec<crate::timeline::Phase>> {
    let xml = pacemaker
        .status_section(&deadline.capped(Duration::from_secs(10)))
        .ok()?;
    let phases = crate::timeline::parse_phases(&xml).ok()?;
    Some(
        phases
            .into_iter()
            .filter(|p| p.began >= started_epoch.floor() - 1.0)
            .collect(),
    )
}

/// The move just completed, as `clevervm status` lists it under "Recent moves": from where to
/// where and how long the VM was unreachable (its steps were shown as they completed).
fn print_move<R: RunCommand>(
    pacemaker: &Pacemaker<R>,
    stack: &Stack,
    started_epoch: f64,
    deadline: &Deadline,
    out: &mut dyn Write,
) {
    let vm_ids: Vec<String> = stack.vms.iter().map(|vm| vm.id.clone()).collect();
    let Some(phases) = recent_phases(pacemaker, started_epoch, deadline) else {
        return;
    };
    for m in crate::timeline::moves(&phases, &vm_ids)
        .iter()
        .filter(|m| m.kind == crate::timeline::MoveKind::Migration)
    {
        let _ = writeln!(out, "{}", crate::render::move_line(m));
    }
}

/// One line describing where the stack is: `drbd-clone Promoted on node2 | vm Started on node2`.
fn progress_line(status: &ClusterStatus, stack: &Stack) -> String {
    let mut parts = Vec::new();
    for (anchor, promoted_only) in &stack.anchors {
        if *promoted_only {
            let ids: BTreeSet<&str> = status
                .resources
                .iter()
                .filter(|r| r.parent.as_deref() == Some(anchor.as_str()))
                .map(|r| r.id.as_str())
                .collect();
            let promoted: Vec<&str> = ids
                .iter()
                .flat_map(|id| status.running_on(id, Some(Role::Promoted)))
                .collect();
            parts.push(format!(
                "{anchor} promoted on {}",
                if promoted.is_empty() {
                    "no node (switching)".to_owned()
                } else {
                    promoted.join(",")
                }
            ));
        }
    }
    for vm in &stack.vms {
        let instance = status
            .resources
            .iter()
            .find(|r| r.id == vm.id && r.active && !r.nodes.is_empty());
        parts.push(match instance {
            None => format!("{} stopped (hibernated, waiting to resume)", vm.id),
            Some(r) => {
                let state = match r.role {
                    Role::Starting => "starting (resuming) on",
                    Role::Stopping => "stopping (hibernating) on",
                    _ => "running on",
                };
                format!("{} {state} {}", vm.id, r.nodes.join(","))
            }
        });
    }
    parts.join(" | ")
}

/// Asks on the terminal; `--yes` skips it, and without a terminal the answer is no.
pub fn confirm(
    warning: &str,
    yes: bool,
    interactive: bool,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), ClevervmError> {
    let _ = writeln!(out, "WARNING: {warning}");
    if yes {
        return Ok(());
    }
    if !interactive {
        let _ = writeln!(out, "not a terminal: pass --yes to do it anyway");
        return Err(ClevervmError::NotConfirmed);
    }
    let _ = write!(out, "Type yes to continue: ");
    let _ = out.flush();
    let mut answer = String::new();
    let _ = input.read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(ClevervmError::NotConfirmed)
    }
}
