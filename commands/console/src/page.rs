//! The pages, rendered on the server (maud escapes every value): the login form, the one
//! status screen, and the two fragments the event stream replaces in place.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use clevervm::model::{ClusterView, StorageView, VmView};
use clevervm::problems::Severity;

use crate::cluster::MovePlan;
use crate::server::{ActionState, View};

/// The node attribute gwping sets unless told otherwise (`name`, default `pingd`).
pub const GATEWAY_ATTRIBUTE: &str = "pingd";

fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/static/console.css";
            }
            body { (body) }
        }
    }
}

pub fn login(message: Option<&str>) -> Markup {
    shell(
        "Clever cluster: log in",
        html! {
            main.login {
                h1 { "Clever cluster" }
                p { "Log in with your account on this node (members of the haclient group)." }
                @if let Some(message) = message {
                    p.notice.critical role="alert" { (message) }
                }
                form method="post" action="/login" {
                    label { "User " input name="user" autocomplete="username" required autofocus; }
                    label { "Password " input name="password" type="password" autocomplete="current-password" required; }
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// The whole screen; `notice` is an answer to the action just asked for (a refusal, say).
pub fn screen(
    user: &str,
    csrf: &str,
    view: &View,
    action: &ActionState,
    notice: Option<&str>,
) -> Markup {
    shell(
        "Clever cluster",
        html! {
            header {
                h1 { "Clever cluster" }
                form.logout method="post" action="/logout" {
                    input type="hidden" name="csrf" value=(csrf);
                    span { "Logged in as " b { (user) } " " }
                    button type="submit" { "Log out" }
                }
            }
            @if let Some(notice) = notice {
                p.notice.critical #notice role="alert" { (notice) }
            }
            section #status aria-live="polite" { (status(view, csrf, action.running)) }
            section #progress aria-live="polite" { (progress(action)) }
            script src="/static/console.js" {}
        },
    )
}

fn seconds(d: std::time::Duration) -> String {
    format!("{:.0}", d.as_secs_f64().ceil())
}

/// What the confirmation of a move says will happen.
pub fn move_confirmation(plan: &MovePlan) -> String {
    let vms = plan.vms.join(", ");
    let to = if plan.to.is_empty() {
        "another node".to_owned()
    } else {
        plan.to.join(" or ")
    };
    let away = match plan.last_move {
        Some(d) => format!(
            "for about {} s (the last recorded move took that long)",
            seconds(d)
        ),
        None => "for as long as saving and restoring its memory takes (no earlier move is \
                 recorded to measure it)"
            .to_owned(),
    };
    format!(
        "The VM {vms} will be hibernated on {} and resumed on {to}: it is unreachable {away}. \
         Its sessions continue afterwards. The storage's Primary moves with it; the VM stays \
         away from {} until you unmigrate.",
        plan.from, plan.from
    )
}

/// The live part of the screen: problems first, then where the VM runs, storage, nodes,
/// failures, the timeline, and the actions.
pub fn status(view: &View, csrf: &str, busy: bool) -> Markup {
    let report = &view.report;
    let snapshot = &report.status;
    html! {
        h2 { "Problems" }
        @if report.problems.is_empty() {
            p.ok #verdict { "No problems: the VM is safe." }
        } @else {
            ul.problems #verdict {
                @for problem in &report.problems {
                    @let class = match problem.severity { Severity::Critical => "critical", Severity::Warning => "warning" };
                    li class=(class) {
                        b { (class) ": " } (problem.what)
                        br; span.fix { "What to do: " (problem.fix) }
                    }
                }
            }
        }
        h2 { "The VM" }
        @if snapshot.vms.is_empty() {
            p { "No ocf:clever:vm resource is known." }
        }
        @for vm in &snapshot.vms { (vm_card(vm)) }
        h2 { "Storage (DRBD)" }
        (storage(&snapshot.storage))
        @match &snapshot.cluster {
            ClusterView::Down { reason } => { p.critical { "The cluster does not answer: " (reason) } }
            ClusterView::Up(cluster) => {
                h2 { "Nodes" }
                table {
                    tr { th { "node" } th { "state" } th { "gateway score" } th { "other attributes" } }
                    @for node in &cluster.nodes {
                        tr {
                            td { (node.name) @if node.dc { " (DC)" } }
                            td class=(if node.state == "online" { "ok" } else { "warning" }) { (node.state) }
                            td.score { (node.attributes.get(GATEWAY_ATTRIBUTE).map_or("none", String::as_str)) }
                            td { @for (name, value) in node.attributes.iter().filter(|(n, _)| *n != GATEWAY_ATTRIBUTE) { (name) "=" (value) " " } }
                        }
                    }
                }
                h2 { "Failed actions" }
                @if cluster.failed_actions.is_empty() {
                    p { "None." }
                } @else {
                    table {
                        tr { th { "operation" } th { "node" } th { "result" } th { "exit reason" } }
                        @for failed in &cluster.failed_actions {
                            tr.critical {
                                td { (failed.operation) } td { (failed.node) }
                                td { (failed.exit_status) " (" (failed.exit_code) ")" }
                                td { (failed.exit_reason) }
                            }
                        }
                    }
                }
                @if !cluster.pins.is_empty() {
                    h2 { "Left by migrate" }
                    ul { @for pin in &cluster.pins {
                        li { (pin.id) ": " (pin.resource) @if let Some(node) = &pin.node { " on " (node) } }
                    } }
                }
            }
        }
        h2 { "Recent moves" }
        @if snapshot.timeline.is_empty() {
            p { "No move is recorded in the cluster's operation history." }
        }
        @for m in &snapshot.timeline {
            div.move {
                p { b { (clevervm::render::move_line(m)) } }
                table.phases {
                    tr { th { "at" } th { "phase" } th { "node" } th { "took" } }
                    @for p in &m.phases {
                        tr class=(if p.rc == 0 { "" } else { "critical" }) {
                            td { (format!("+{:.1} s", p.began - m.began)) }
                            td { (p.operation) " " (p.resource) @if p.rc != 0 { " (rc " (p.rc) ")" } }
                            td { (p.node) }
                            td { (format!("{:.1} s", p.seconds)) }
                        }
                    }
                }
            }
        }
        (actions(view, csrf, busy))
    }
}

fn vm_card(vm: &VmView) -> Markup {
    html! {
        div.vm {
            @if vm.running_on.is_empty() {
                p.critical.where { b { (vm.resource) } " (" (vm.domain) ") is " b { "not running" } }
            } @else {
                p.ok.where { b { (vm.resource) } " (" (vm.domain) ") runs on " b.node { (vm.running_on.join(", ")) } }
            }
            @if let Some(state) = &vm.local_state { p { "libvirt on this node: " (state) } }
            @if let Some(image) = &vm.image { p { "hibernation image: " (image.path) " (" (image.bytes / (1024 * 1024)) " MiB)" } }
        }
    }
}

fn storage(views: &[StorageView]) -> Markup {
    html! {
        @if views.is_empty() { p { "No DRBD resource is configured." } }
        @for view in views {
            div.storage {
                p {
                    b { (view.resource) } ": this node "
                    (view.local_role.as_deref().unwrap_or("unknown")) ", disk "
                    (view.local_disk.as_deref().unwrap_or("unknown"))
                    @if let Some(health) = &view.health {
                        " — " span class=(if view.degraded { "warning" } else { "ok" }) { (health) }
                    }
                    @if let Some(error) = &view.error { " — " span.warning { (error) } }
                }
                @if !view.peers.is_empty() {
                    table {
                        tr { th { "peer" } th { "connection" } th { "role" } th { "disk" } th { "resync" } }
                        @for peer in &view.peers {
                            tr {
                                td { (peer.name) } td { (peer.connection) } td { (peer.role) } td { (peer.disk) }
                                td { @if let Some(done) = peer.resync_percent {
                                    progress max="100" value=(format!("{done:.1}")) {} " " (format!("{done:.1} %"))
                                } @else { "—" } }
                            }
                        }
                    }
                }
                @if let Some(mount) = &view.mount {
                    p { "mounted here on " (mount.directory) " (" (mount.fstype) "), "
                        (mount.free_bytes / (1024 * 1024 * 1024)) " GiB free of " (mount.size_bytes / (1024 * 1024 * 1024)) " GiB" }
                }
            }
        }
    }
}

fn actions(view: &View, csrf: &str, busy: bool) -> Markup {
    let nodes: Vec<&str> = match &view.report.status.cluster {
        ClusterView::Up(cluster) => cluster.nodes.iter().map(|n| n.name.as_str()).collect(),
        ClusterView::Down { .. } => Vec::new(),
    };
    html! {
        h2 { "Actions" }
        div.actions {
            @match &view.migrate {
                Ok(plan) => {
                    button #migrate type="button" data-open="confirm-migrate" disabled[busy] { "Move the VM" }
                    dialog #confirm-migrate {
                        form method="post" action="/migrate" {
                            input type="hidden" name="csrf" value=(csrf);
                            p #migrate-confirmation { (move_confirmation(plan)) }
                            label { "To " select name="to" {
                                option value="" selected { "the other node (" (plan.to.join(" or ")) ")" }
                                @for node in nodes.iter().filter(|n| **n != plan.from) { option value=(node) { (node) } }
                            } }
                            p {
                                button #migrate-confirm type="submit" { "Yes, move it" }
                                " " button type="button" data-close { "Cancel" }
                            }
                        }
                    }
                }
                Err(reason) => {
                    button #migrate type="button" disabled { "Move the VM" }
                    span.refusal #migrate-refusal { "Cannot move now: " (reason) }
                }
            }
            button #unmigrate type="button" data-open="confirm-unmigrate" disabled[busy] { "Unmigrate" }
            dialog #confirm-unmigrate {
                form method="post" action="/unmigrate" {
                    input type="hidden" name="csrf" value=(csrf);
                    p { "The constraints left by earlier moves are removed, so every node may run the VM again. Nothing moves now: the VM stays where it runs." }
                    button #unmigrate-confirm type="submit" { "Yes, remove them" } " " button type="button" data-close { "Cancel" }
                }
            }
            button #cleanup type="button" data-open="confirm-cleanup" disabled[busy] { "Clean up failures" }
            dialog #confirm-cleanup {
                form method="post" action="/cleanup" {
                    input type="hidden" name="csrf" value=(csrf);
                    p { "Pacemaker forgets every recorded failure and reconsiders every resource: one that failed may be started again where it failed. Do this after fixing the cause." }
                    button #cleanup-confirm type="submit" { "Yes, clean up" } " " button type="button" data-close { "Cancel" }
                }
            }
        }
    }
}

/// The last action and its progress lines.
pub fn progress(action: &ActionState) -> Markup {
    html! {
        @if let Some(what) = &action.what {
            h2 { "Last action" }
            p { b { (what) } " asked by " (action.user) " at " (action.started) }
            ol.lines { @for line in &action.lines { li { (line) } } }
            @match &action.outcome {
                None => { p.warning #outcome data-state="running" { "In progress…" } }
                Some(Ok(text)) => { p.ok #outcome data-state="done" { (text) } }
                Some(Err(text)) => { p.critical #outcome data-state="failed" { (text) } }
            }
        }
    }
}

pub const SCRIPT: &str = r#""use strict";
// Live updates: the server sends rendered fragments; nothing is built here.
function bind() {
  for (const b of document.querySelectorAll("[data-open]")) {
    b.onclick = () => document.getElementById(b.dataset.open).showModal();
  }
  for (const b of document.querySelectorAll("[data-close]")) {
    b.onclick = () => b.closest("dialog").close();
  }
}
let pending = null;
function show(html) {
  if (document.querySelector("dialog[open]")) { pending = html; return; }
  document.getElementById("status").innerHTML = html;
  bind();
}
document.addEventListener("close", () => { if (pending) { const p = pending; pending = null; show(p); } }, true);
const events = new EventSource("/events");
events.addEventListener("status", (e) => show(e.data));
events.addEventListener("progress", (e) => {
  document.getElementById("progress").innerHTML = e.data;
  const notice = document.getElementById("notice");
  if (notice) notice.remove();
});
events.addEventListener("logout", () => { events.close(); location.assign("/login"); });
bind();
"#;

pub const STYLE: &str =
    "body{font-family:sans-serif;margin:1em auto;max-width:60em;padding:0 1em;color:#222}
header{display:flex;justify-content:space-between;align-items:center}
h2{border-bottom:1px solid #ccc;margin-top:1.2em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
.ok{color:#176117}.warning{color:#8a5a00}.critical{color:#a4000f}
.notice{border:2px solid #a4000f;padding:.5em}
.where{font-size:1.4em}.problems li{margin:.3em 0}.fix{color:#444}
.actions button{font-size:1.1em;margin-right:.6em}.refusal{color:#a4000f}
dialog{max-width:40em}.login{max-width:24em}.login label{display:block;margin:.5em 0}
";

/// A value that is already HTML-safe, for the SSE fragments.
pub fn into_string(markup: Markup) -> String {
    let PreEscaped(text) = markup;
    text
}
