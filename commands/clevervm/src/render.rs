//! The status screen as text: problems first, then cluster, storage and VMs, in the spirit of the
//! original `service clevervm status` and readable under stress.

use std::fmt::Write as _;

use crate::model::{ClusterView, Snapshot, StorageView};
use crate::problems::{Problem, Severity};

/// Renders the whole screen.
pub fn render(snapshot: &Snapshot, problems: &[Problem]) -> String {
    let mut out = String::new();
    let node = snapshot.node.as_deref().unwrap_or("this node");
    let _ = writeln!(out, "Clever cluster, seen from {node}");
    out.push('\n');
    if problems.is_empty() {
        out.push_str("No problems.\n");
    } else {
        out.push_str("PROBLEMS\n");
        for p in problems {
            let mark = match p.severity {
                Severity::Critical => "!!",
                Severity::Warning => " !",
            };
            let _ = writeln!(out, "{mark} {}\n     fix: {}", p.what, p.fix);
        }
    }
    out.push('\n');
    match &snapshot.cluster {
        ClusterView::Down { reason } => {
            let _ = writeln!(out, "Cluster: DOWN on this node ({reason})");
        }
        ClusterView::Up(cluster) => {
            let yes_no = |b: Option<bool>| match b {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "?",
            };
            let _ = writeln!(
                out,
                "Cluster: stack {}, DC {}, quorum {}, fencing {}",
                cluster.stack.as_deref().unwrap_or("?"),
                cluster.dc.as_deref().unwrap_or("none"),
                yes_no(cluster.quorum),
                match cluster.stonith_enabled {
                    Some(true) => "on",
                    Some(false) => "OFF",
                    None => "?",
                }
            );
            let nodes: Vec<String> = cluster
                .nodes
                .iter()
                .map(|n| format!("{} {}{}", n.name, n.state, if n.dc { " (DC)" } else { "" }))
                .collect();
            let _ = writeln!(out, "Nodes:   {}", nodes.join(", "));
            out.push_str("\nResources\n");
            let width = cluster
                .resources
                .iter()
                .map(|r| r.id.len())
                .max()
                .unwrap_or(0);
            for r in &cluster.resources {
                let placement = if r.placement.is_empty() {
                    "Stopped".to_owned()
                } else {
                    r.placement
                        .iter()
                        .map(|(role, node)| format!("{role} on {node}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let failed = if r.failed { "  FAILED" } else { "" };
                let _ = writeln!(
                    out,
                    "  {:<width$}  {:<24} {placement}{failed}",
                    r.id, r.agent
                );
            }
            out.push_str("\nMigration summary\n");
            if cluster.fail_counts.is_empty() {
                out.push_str("  no failures recorded\n");
            }
            for c in &cluster.fail_counts {
                let _ = writeln!(
                    out,
                    "  {}: {} fail-count={} (limit {})",
                    c.node, c.resource, c.fail_count, c.migration_threshold
                );
            }
            if !cluster.failed_actions.is_empty() {
                out.push_str("\nFailed actions\n");
                for a in &cluster.failed_actions {
                    let _ = writeln!(
                        out,
                        "  {} on {}: {} ({}) {}",
                        a.operation, a.node, a.exit_status, a.exit_code, a.exit_reason
                    );
                }
            }
        }
    }
    out.push_str("\nDRBD storage\n");
    if snapshot.storage.is_empty() {
        out.push_str("  none configured\n");
    }
    for s in &snapshot.storage {
        let _ = writeln!(out, "  {}", storage_line(s));
    }
    out.push_str("\nVirtual machines\n");
    if snapshot.vms.is_empty() {
        out.push_str("  none configured\n");
    }
    for vm in &snapshot.vms {
        let placement = if vm.running_on.is_empty() {
            "not running".to_owned()
        } else {
            format!("running on {}", vm.running_on.join(", "))
        };
        let local = vm
            .local_state
            .as_deref()
            .map(|s| format!(", here: {s}"))
            .unwrap_or_default();
        let image = match &vm.image {
            Some(image) => format!(
                "hibernation image {} ({})",
                image.path,
                human_bytes(image.bytes)
            ),
            None => "no hibernation image".to_owned(),
        };
        let image = match vm.kept_images.len() {
            0 => image,
            kept => format!("{image}; {kept} kept aside"),
        };
        let _ = writeln!(
            out,
            "  {} ({}): {placement}{local}; {image}",
            vm.domain, vm.resource
        );
    }
    if !snapshot.timeline.is_empty() {
        out.push_str("\nRecent moves (from the cluster's operation history)\n");
        for m in &snapshot.timeline {
            let _ = writeln!(out, "  {}", move_line(m));
            for line in phase_lines(m) {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
}

/// One line per phase of `m`: when it began after the move began, how long it ran, what ran
/// where (`+   4.0s    0.4s  promote drbd on node2`).
pub fn phase_lines(m: &crate::timeline::Move) -> Vec<String> {
    m.phases
        .iter()
        .map(|p| {
            format!(
                "+{:>6.1}s {:>6.1}s  {}",
                p.began - m.began,
                p.seconds,
                step_name(p)
            )
        })
        .collect()
}

/// `stop vm_clever on node1, ran 3.4 s`: one step as `clevervm migrate --wait` shows it done.
pub fn step_line(p: &crate::timeline::Phase) -> String {
    format!("{}, ran {:.1} s", step_name(p), p.seconds)
}

/// `stop vm_clever on node1`, with the exit code when it failed.
fn step_name(p: &crate::timeline::Phase) -> String {
    format!(
        "{} {} on {}{}",
        p.operation,
        p.resource,
        p.node,
        if p.rc == 0 {
            String::new()
        } else {
            format!(" (rc {})", p.rc)
        }
    )
}

/// `vm: node1 -> node2 at 2026-12-05T05:16:36Z, unreachable 8.2 s`.
pub fn move_line(m: &crate::timeline::Move) -> String {
    use crate::timeline::MoveKind;
    let at = epoch_text(m.began);
    match m.kind {
        MoveKind::Migration => format!(
            "{}: {} -> {} at {at}, unreachable {:.1} s",
            m.vm,
            m.from.as_deref().unwrap_or("?"),
            m.to.as_deref().unwrap_or("?"),
            m.seconds
        ),
        MoveKind::Start => format!(
            "{}: started on {} at {at} (no stop elsewhere: a failover or the first start), \
             {:.1} s",
            m.vm,
            m.to.as_deref().unwrap_or("?"),
            m.seconds
        ),
        MoveKind::Stop => format!(
            "{}: stopped on {} at {at}, not started since",
            m.vm,
            m.from.as_deref().unwrap_or("?")
        ),
    }
}

/// An epoch time as UTC RFC 3339 (seconds).
pub fn epoch_text(seconds: f64) -> String {
    let whole = if seconds.is_finite() && seconds > 0.0 {
        std::time::Duration::from_secs_f64(seconds)
    } else {
        std::time::Duration::ZERO
    };
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + whole).to_string()
}

/// `r0 Connected Primary/Secondary UpToDate/UpToDate /srv/clever ext4 253G 107G 134G 45%`.
fn storage_line(s: &StorageView) -> String {
    let mut line = s.resource.clone();
    if let Some(error) = &s.error {
        let _ = write!(line, " ({error})");
    }
    if let Some(role) = &s.local_role {
        let connection = s
            .peers
            .iter()
            .map(|p| p.connection.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let roles = std::iter::once(role.as_str())
            .chain(s.peers.iter().map(|p| p.role.as_str()))
            .collect::<Vec<_>>()
            .join("/");
        let disks = std::iter::once(s.local_disk.as_deref().unwrap_or("?"))
            .chain(s.peers.iter().map(|p| p.disk.as_str()))
            .collect::<Vec<_>>()
            .join("/");
        let connection = if connection.is_empty() {
            "no peers"
        } else {
            &connection
        };
        let _ = write!(line, " {connection} {roles} {disks}");
        for peer in &s.peers {
            if let Some(done) = peer.resync_percent {
                let _ = write!(line, " resync {}: {done:.1}%", peer.name);
            }
        }
    }
    match &s.mount {
        Some(m) => {
            // Rounded up, as df does.
            let percent = m
                .used_bytes
                .saturating_mul(100)
                .div_ceil(m.used_bytes.saturating_add(m.free_bytes).max(1));
            let _ = write!(
                line,
                " {} {} {} {} {} {percent}%",
                m.directory,
                m.fstype,
                human_bytes(m.size_bytes),
                human_bytes(m.used_bytes),
                human_bytes(m.free_bytes)
            );
        }
        None => line.push_str(" not mounted here"),
    }
    line
}

/// Sizes as `df -h` prints them.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut value = bytes;
    let mut tenths = 0;
    let mut unit = 0;
    while value >= 1024 && unit < UNITS.len() - 1 {
        tenths = (value % 1024) * 10 / 1024;
        value /= 1024;
        unit += 1;
    }
    let suffix = UNITS.get(unit).copied().unwrap_or("?");
    if unit > 0 && value < 10 {
        format!("{value}.{tenths}{suffix}")
    } else {
        format!("{value}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_df() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1536), "1.5K");
        assert_eq!(human_bytes(253 * 1024 * 1024 * 1024), "253G");
        assert_eq!(human_bytes(u64::MAX), "16383P");
    }
}
