//! clevervm against Pacemaker's real tools on CIB files: the scheduler (`crm_simulate`) plays the
//! cluster's part between verbs. The live-cluster tests (migrate --wait, cleanup) belong to the
//! lab.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod faults;
mod hostile;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use clap::Parser;
use clever_command::{CommandError, CommandLine, HostCommands, Output, RunCommand};
use clever_deadline::Deadline;
use clevervm::cli::Cli;
use clevervm::collect::{drbd_view, Sources};
use clevervm::model::{
    Cluster, ClusterView, FailCountView, FailedActionView, ImageView, MountView, NodeView, PinView,
    ResourceView, Snapshot, VmView,
};
use clevervm::problems::problems;
use clevervm::render::render;

const CONFIGURATION: &str = r#"<crm_config><cluster_property_set id="opts">
      <nvpair id="o1" name="stonith-enabled" value="false"/>
      <nvpair id="o2" name="no-quorum-policy" value="ignore"/>
      <nvpair id="o3" name="symmetric-cluster" value="true"/></cluster_property_set></crm_config>
    <nodes><node id="1" uname="node1"/><node id="2" uname="node2"/></nodes>
    <resources>
      <clone id="storage-clone"><meta_attributes id="sc-meta">
          <nvpair id="sc-p" name="promotable" value="true"/><nvpair id="sc-n" name="notify" value="true"/>
        </meta_attributes>
        <primitive id="storage" class="ocf" provider="pacemaker" type="Stateful"/></clone>
      <group id="stack">
        <primitive id="fs" class="ocf" provider="heartbeat" type="Dummy"/>
        <primitive id="vm" class="ocf" provider="clever" type="vm">
          <instance_attributes id="vm-ia">
            <nvpair id="vm-d" name="domain" value="clever"/>
            <nvpair id="vm-h" name="hibernate_dir" value="/nonexistent/images"/>
            <nvpair id="vm-c" name="config" value="/nonexistent/clever.xml"/>
          </instance_attributes>
        </primitive>
      </group>
    </resources>
    <constraints>
      <rsc_colocation id="stack-with-primary" rsc="stack" with-rsc="storage-clone" with-rsc-role="Promoted" score="INFINITY"/>
      <rsc_order id="promote-then-stack" first="storage-clone" first-action="promote" then="stack" then-action="start"/>
    </constraints>"#;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(label: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("clevervm-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn tool(program: &str, args: &[&str], cib: Option<&Path>) {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(cib) = cib {
        command.env("CIB_file", cib);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{program} missing ({e}): make setup installs pacemaker"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn simulate(cib: &Path, extra: &[&str]) {
    let next = cib.with_extension("next");
    let mut args = vec![
        "-S",
        "-x",
        cib.to_str().unwrap(),
        "-O",
        next.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    tool("crm_simulate", &args, None);
    std::fs::rename(&next, cib).unwrap();
}

/// A running 2-node cluster with the stack promoted on node1.
fn cluster(dir: &Path) -> PathBuf {
    cluster_of(dir, CONFIGURATION, &["storage"])
}

/// A running 2-node cluster of `configuration`, each promotable primitive in `storages`
/// promoted on node1.
fn cluster_of(dir: &Path, configuration: &str, storages: &[&str]) -> PathBuf {
    let empty = Command::new("cibadmin").arg("--empty").output().unwrap();
    let empty = String::from_utf8(empty.stdout).unwrap();
    let start = empty.find("<crm_config/>").unwrap();
    let end = empty.find("</configuration>").unwrap();
    let cib = dir.join("cib.xml");
    std::fs::write(
        &cib,
        format!("{}{configuration}\n  {}", &empty[..start], &empty[end..]),
    )
    .unwrap();
    tool("crm_verify", &["-x", cib.to_str().unwrap()], None);
    simulate(&cib, &["-u", "node1", "-u", "node2"]);
    for storage in storages {
        for (node, score) in [("node1", "10"), ("node2", "5")] {
            tool(
                "crm_attribute",
                &[
                    "-N",
                    node,
                    "-n",
                    &format!("master-{storage}"),
                    "-v",
                    score,
                    "-l",
                    "reboot",
                ],
                Some(&cib),
            );
        }
    }
    simulate(&cib, &[]);
    cib
}

/// Records every command and runs it for real.
#[derive(Debug, Clone, Default)]
struct Recording(Arc<Mutex<Vec<String>>>);

impl RunCommand for Recording {
    fn run(&self, command: &CommandLine, deadline: &Deadline) -> Result<Output, CommandError> {
        self.0.lock().unwrap().push(command.to_string());
        HostCommands.run(command, deadline)
    }
}

fn clevervm(cib: &Path, args: &[&str]) -> (u8, String, Vec<String>) {
    let mut argv = vec!["clevervm", "--cib-file", cib.to_str().unwrap()];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let recording = Recording::default();
    let mut sources = Sources::live(recording.clone());
    sources.pacemaker = clever_pacemaker::Pacemaker::on_file(recording.clone(), cib);
    sources.cib_on_disk = cib.to_owned();
    let mut out = Vec::new();
    let code = clevervm::run(&cli, &sources, &mut out, &mut std::io::empty(), false);
    let calls = recording.0.lock().unwrap().clone();
    (code, String::from_utf8(out).unwrap(), calls)
}

fn placement(cib: &Path, id: &str) -> Vec<String> {
    let status = clever_pacemaker::Pacemaker::on_file(HostCommands, cib)
        .status(&Deadline::after(std::time::Duration::from_secs(30)))
        .unwrap();
    status
        .running_on(id, None)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[test]
fn status_reads_the_cluster_and_exits_like_lsb() {
    let dir = scratch("status");
    let cib = cluster(&dir.0);
    let (code, text, _) = clevervm(&cib, &["--node", "node1", "status"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Clever cluster, seen from node1"), "{text}");
    assert!(
        text.contains("vm                ocf:clever:vm") || text.contains("ocf:clever:vm"),
        "{text}"
    );
    assert!(text.contains("Promoted on node1"), "{text}");
    assert!(text.contains("fencing is disabled"), "{text}");
    assert!(text.contains("clever (vm): running on node1"), "{text}");

    let (code, json, _) = clevervm(&cib, &["--node", "node1", "status", "--json"]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["status"]["vms"][0]["running_on"][0], "node1");
    assert_eq!(value["status"]["cluster"]["state"], "up");
    assert!(value["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["severity"] == "warning"));
}

#[test]
fn forcestop_and_forcestart_go_through_target_role() {
    let dir = scratch("force");
    let cib = cluster(&dir.0);
    let (code, out, calls) = clevervm(&cib, &["forcestop"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        calls
            .iter()
            .any(|c| c.contains("target-role --parameter-value Stopped")),
        "{calls:?}"
    );
    simulate(&cib, &[]);
    assert!(placement(&cib, "vm").is_empty());
    let (code, text, _) = clevervm(&cib, &["--node", "node1", "status"]);
    assert_eq!(code, 3, "stopped is LSB 3:\n{text}");
    assert!(text.contains("is not running anywhere"), "{text}");

    assert_eq!(clevervm(&cib, &["forcestart"]).0, 0);
    simulate(&cib, &[]);
    assert_eq!(placement(&cib, "vm"), ["node1"]);
}

#[test]
fn migrate_moves_the_primary_and_unmigrate_lifts_the_ban() {
    let dir = scratch("migrate");
    let cib = cluster(&dir.0);
    let (code, out, calls) = clevervm(&cib, &["--node", "node1", "migrate"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        calls
            .iter()
            .any(|c| c.contains("--ban --resource storage-clone --node node1 --promoted")),
        "{calls:?}"
    );
    simulate(&cib, &[]);
    assert_eq!(placement(&cib, "vm"), ["node2"]);
    let (_, text, _) = clevervm(&cib, &["--node", "node2", "status"]);
    assert!(text.contains("left by clevervm migrate"), "{text}");
    assert!(text.contains("fix: clevervm unmigrate"), "{text}");

    let (code, out, _) = clevervm(&cib, &["unmigrate"]);
    assert_eq!(code, 0);
    assert!(out.contains("stickiness"), "{out}");
    let (_, text, _) = clevervm(&cib, &["--node", "node2", "status"]);
    assert!(!text.contains("left by clevervm migrate"), "{text}");
}

/// Two stacks, each on its own promotable storage (as the generator makes one DRBD clone per
/// VM), kept on one node.
fn two_stacks() -> String {
    let stack = |n: &str| {
        format!(
            r#"<clone id="storage{n}-clone"><meta_attributes id="sc{n}-meta">
          <nvpair id="sc{n}-p" name="promotable" value="true"/><nvpair id="sc{n}-n" name="notify" value="true"/>
        </meta_attributes>
        <primitive id="storage{n}" class="ocf" provider="pacemaker" type="Stateful"/></clone>
      <group id="stack{n}">
        <primitive id="fs{n}" class="ocf" provider="heartbeat" type="Dummy"/>
        <primitive id="vm{n}" class="ocf" provider="clever" type="vm">
          <instance_attributes id="vm{n}-ia">
            <nvpair id="vm{n}-d" name="domain" value="clever{n}"/>
            <nvpair id="vm{n}-h" name="hibernate_dir" value="/nonexistent/images{n}"/>
            <nvpair id="vm{n}-c" name="config" value="/nonexistent/clever{n}.xml"/>
          </instance_attributes>
        </primitive>
      </group>"#
        )
    };
    let constraints = |n: &str| {
        format!(
            r#"<rsc_colocation id="stack{n}-with-primary" rsc="stack{n}" with-rsc="storage{n}-clone" with-rsc-role="Promoted" score="INFINITY"/>
      <rsc_order id="promote{n}-then-stack" first="storage{n}-clone" first-action="promote" then="stack{n}" then-action="start"/>"#
        )
    };
    let start = CONFIGURATION.find("<resources>").unwrap();
    format!(
        "{}<resources>{}{}</resources><constraints>{}{}\n      \
         <rsc_colocation id=\"together\" rsc=\"stack2\" with-rsc=\"stack1\" score=\"INFINITY\"/>\
         </constraints>",
        &CONFIGURATION[..start],
        stack("1"),
        stack("2"),
        constraints("1"),
        constraints("2"),
    )
}

#[test]
fn migrate_moves_every_stack_off_the_node() {
    let dir = scratch("migrate-all");
    let cib = cluster_of(&dir.0, &two_stacks(), &["storage1", "storage2"]);
    assert_eq!(placement(&cib, "vm1"), ["node1"]);
    assert_eq!(placement(&cib, "vm2"), ["node1"]);
    let (code, out, calls) = clevervm(&cib, &["--node", "node1", "migrate"]);
    assert_eq!(code, 0, "{out}");
    for storage in ["storage1-clone", "storage2-clone"] {
        assert!(
            calls.iter().any(|c| c.contains(&format!(
                "--ban --resource {storage} --node node1 --promoted"
            ))),
            "{storage}: {calls:?}"
        );
        assert!(
            out.contains(&format!("{storage}: banned from node1")),
            "{out}"
        );
    }
    simulate(&cib, &[]);
    assert_eq!(placement(&cib, "vm1"), ["node2"]);
    assert_eq!(placement(&cib, "vm2"), ["node2"]);
}

#[test]
fn migrate_to_a_named_node_prefers_it() {
    let dir = scratch("migrate-to");
    let cib = cluster(&dir.0);
    let (code, _, calls) = clevervm(&cib, &["--node", "node1", "migrate", "--to", "node2"]);
    assert_eq!(code, 0);
    assert!(
        calls
            .iter()
            .any(|c| c.contains("--move --resource storage-clone --node node2 --promoted")),
        "{calls:?}"
    );
    simulate(&cib, &[]);
    assert_eq!(placement(&cib, "vm"), ["node2"]);
    assert_eq!(
        clevervm(&cib, &["--node", "node1", "migrate", "--to", "node9"]).0,
        2
    );
}

#[test]
fn migrate_that_cannot_complete_says_why_and_changes_nothing() {
    let dir = scratch("standby");
    let cib = cluster(&dir.0);
    tool(
        "crm_attribute",
        &["-N", "node2", "-n", "standby", "-v", "on"],
        Some(&cib),
    );
    simulate(&cib, &[]);
    let (code, _, calls) = clevervm(&cib, &["--node", "node1", "migrate"]);
    assert_eq!(code, 1);
    assert!(!calls.iter().any(|c| c.contains("--ban")), "{calls:?}");
    let (_, text, _) = clevervm(&cib, &["--node", "node1", "status"]);
    assert!(text.contains("node node2 is standby"), "{text}");
}

#[test]
fn direct_start_and_stop_refuse_without_confirmation() {
    let dir = scratch("direct");
    let cib = cluster(&dir.0);
    for verb in ["start", "stop"] {
        let (code, out, calls) = clevervm(&cib, &[verb]);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("WARNING") && out.contains("bypasses Pacemaker"),
            "{out}"
        );
        assert!(!calls.iter().any(|c| c.starts_with("virsh")), "{calls:?}");
    }
}

/// Pacemaker's tools for real (on the CIB file), and a libvirt that says the domain is `state`
/// here (`None`: not defined here); every virsh call is recorded, and only domstate answers.
#[derive(Debug, Clone)]
struct FakeVirsh {
    state: Option<&'static str>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl RunCommand for FakeVirsh {
    fn run(&self, command: &CommandLine, deadline: &Deadline) -> Result<Output, CommandError> {
        if command.program() != "virsh" {
            return HostCommands.run(command, deadline);
        }
        self.calls.lock().unwrap().push(command.to_string());
        let domstate = command.arguments().iter().any(|a| a == "domstate");
        let (code, stdout, stderr) = match (domstate, self.state) {
            (true, Some(state)) => (0, format!("{state}\n"), String::new()),
            (true, None) => (
                1,
                String::new(),
                "error: failed to get domain 'clever'\n".into(),
            ),
            (false, _) => (0, String::new(), String::new()),
        };
        use std::os::unix::process::ExitStatusExt;
        Ok(Output {
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        })
    }
}

/// `clevervm` with [`FakeVirsh`]: exit code, all output, the virsh calls.
fn clevervm_with_virsh(
    cib: &Path,
    state: Option<&'static str>,
    args: &[&str],
) -> (u8, String, Vec<String>) {
    let mut argv = vec!["clevervm", "--cib-file", cib.to_str().unwrap()];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let runner = FakeVirsh {
        state,
        calls: Arc::default(),
    };
    let mut sources = Sources::live(runner.clone());
    sources.pacemaker = clever_pacemaker::Pacemaker::on_file(runner.clone(), cib);
    sources.cib_on_disk = cib.to_owned();
    let mut out = Vec::new();
    let code = clevervm::run(&cli, &sources, &mut out, &mut std::io::empty(), false);
    let calls = runner.calls.lock().unwrap().clone();
    (code, String::from_utf8(out).unwrap(), calls)
}

#[test]
fn direct_start_and_stop_act_only_where_it_is_safe() {
    let dir = scratch("direct-safe");
    let cib = cluster(&dir.0);
    let acted = |calls: &[String]| {
        calls
            .iter()
            .any(|c| c.contains(" start ") || c.contains("managedsave") || c.contains("define"))
    };
    // The VM runs on node1. From node2, where libvirt does not know it: stop names node1 and
    // does nothing; start says it already runs and does nothing.
    let (code, out, calls) = clevervm_with_virsh(&cib, None, &["--node", "node2", "stop", "--yes"]);
    assert_eq!(code, 1, "{out}");
    assert!(!acted(&calls), "{calls:?}");
    let (code, out, calls) =
        clevervm_with_virsh(&cib, None, &["--node", "node2", "start", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already runs on node1"), "{out}");
    assert!(!acted(&calls), "{calls:?}");
    // On node1 it runs, but its storage is not there (here: the domain XML is unreadable): a
    // hibernation would write the image where the peer never looks.
    let (code, out, calls) =
        clevervm_with_virsh(&cib, Some("running"), &["--node", "node1", "stop", "--yes"]);
    assert_eq!(code, 1, "{out}");
    assert!(!acted(&calls), "{calls:?}");
    // Stopped by the cluster, and its storage is not here: start refuses.
    assert_eq!(clevervm(&cib, &["forcestop"]).0, 0);
    simulate(&cib, &[]);
    let (code, out, calls) = clevervm_with_virsh(
        &cib,
        Some("shut off"),
        &["--node", "node1", "start", "--yes"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(!acted(&calls), "{calls:?}");
}

#[test]
fn a_cluster_that_does_not_answer_is_status_4_and_says_so() {
    let dir = scratch("down");
    // A CIB that cannot be read is what a stopped cluster looks like to the tools.
    let missing = dir.0.join("unreadable-cib.xml");
    std::fs::write(&missing, "not a CIB").unwrap();
    let (code, text, _) = clevervm(&missing, &["status"]);
    assert_eq!(code, 4, "{text}");
    assert!(
        text.contains("the cluster does not answer on this node"),
        "{text}"
    );
    assert!(text.contains("Cluster: DOWN"), "{text}");
    // Verbs that need the cluster fail with LSB 7 (not running) and a reason.
    assert_eq!(clevervm(&missing, &["forcestart"]).0, 7);
}

#[test]
fn the_live_command_on_a_node_without_a_cluster_is_status_4_quickly() {
    let started = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_clevervm"))
        .args(["--timeout", "10", "status"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

#[test]
fn unknown_verbs_are_usage_errors() {
    let output = Command::new(env!("CARGO_BIN_EXE_clevervm"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = Command::new(env!("CARGO_BIN_EXE_clevervm"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for verb in [
        "status",
        "start",
        "forcestart",
        "stop",
        "forcestop",
        "cleanup",
        "migrate",
        "unmigrate",
    ] {
        assert!(help.contains(verb), "{verb} missing from --help");
    }
}

fn fixture(name: &str) -> clever_drbd::Resource {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/drbd/tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    if name.ends_with(".json") {
        clever_drbd::parse_status_json(&text).unwrap().remove(0)
    } else {
        clever_drbd::parse_status_text(&text).unwrap().remove(0)
    }
}

/// A fixed snapshot: the original wiki's cluster, DRBD from real recorded outputs.
fn sample_snapshot() -> Snapshot {
    let mount = MountView {
        directory: "/opt".to_owned(),
        fstype: "ext4".to_owned(),
        size_bytes: 253 * 1024 * 1024 * 1024,
        used_bytes: 107 * 1024 * 1024 * 1024,
        free_bytes: 134 * 1024 * 1024 * 1024,
    };
    Snapshot {
        node: Some("node1".to_owned()),
        configuration_error: None,
        cluster: ClusterView::Up(Cluster {
            stack: Some("corosync".to_owned()),
            dc: Some("node2".to_owned()),
            quorum: Some(true),
            stonith_enabled: Some(true),
            nodes: vec![
                NodeView {
                    name: "node1".into(),
                    state: "online".into(),
                    dc: false,
                    attributes: Default::default(),
                },
                NodeView {
                    name: "node2".into(),
                    state: "online".into(),
                    dc: true,
                    attributes: Default::default(),
                },
            ],
            resources: vec![
                ResourceView {
                    id: "res_drbd_1".into(),
                    agent: "ocf:linbit:drbd".into(),
                    placement: vec![
                        ("Promoted".into(), "node1".into()),
                        ("Unpromoted".into(), "node2".into()),
                    ],
                    failed: false,
                },
                ResourceView {
                    id: "res_vm".into(),
                    agent: "ocf:clever:vm".into(),
                    placement: vec![("Started".into(), "node1".into())],
                    failed: false,
                },
            ],
            fail_counts: vec![FailCountView {
                node: "node2".into(),
                resource: "res_vm".into(),
                fail_count: 1,
                migration_threshold: 3,
            }],
            failed_actions: vec![FailedActionView {
                operation: "res_vm_start_0".into(),
                node: "node2".into(),
                exit_code: 1,
                exit_status: "error".into(),
                exit_reason: "image /srv/images/clever.save is partial: kept aside".into(),
            }],
            pins: vec![PinView {
                id: "cli-ban-res_drbd_1-clone-on-node2".into(),
                resource: "res_drbd_1-clone".into(),
                node: Some("node2".into()),
                score: Some("-INFINITY".into()),
            }],
        }),
        storage: vec![
            drbd_view(
                &fixture("drbd84-kernel-drbdadm9-status-primary.txt"),
                Some(mount),
            ),
            drbd_view(
                &fixture("drbd9-status-text-splitbrain-victim-outdated-standalone.txt"),
                None,
            ),
        ],
        vms: vec![VmView {
            resource: "res_vm".into(),
            domain: "clever".into(),
            running_on: vec!["node1".into()],
            local_state: Some("running (restored)".into()),
            image: Some(ImageView {
                path: "/srv/images/clever.save".into(),
                bytes: 512 * 1024 * 1024,
            }),
            kept_images: vec![ImageView {
                path: "/srv/images/clever.save.kept-20261205T082612Z-partial".into(),
                bytes: 31 * 1024 * 1024,
            }],
        }],
        timeline: Vec::new(),
    }
}

#[test]
fn status_screen_matches_its_snapshot() {
    let snapshot = sample_snapshot();
    let text = render(&snapshot, &problems(&snapshot));
    let expected_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/status.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&expected_path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path)
        .expect("tests/snapshots/status.txt missing: run with UPDATE_SNAPSHOTS=1 and review it");
    assert_eq!(
        text, expected,
        "status screen changed; review and run with UPDATE_SNAPSHOTS=1"
    );
    // The original's DRBD line, rebuilt from a real recorded state.
    assert!(
        text.contains(
            "r0 Connected Primary/Secondary UpToDate/UpToDate /opt ext4 253G 107G 134G 45%"
        ),
        "{text}"
    );
    // An image kept aside is named, with the room it takes: it is what fills the filesystem.
    assert!(
        text.contains("1 hibernation image(s) of VM clever kept aside, not resumed (31 MiB)"),
        "{text}"
    );
    let critical_first = text.find("!!").unwrap() < text.find(" ! ").unwrap();
    assert!(critical_first, "{text}");
    assert!(
        text.contains("drbdadm connect --discard-my-data one-vm-8373-disk-2"),
        "{text}"
    );
}

#[test]
fn direct_start_and_stop_wait_for_an_operation_pacemaker_has_in_flight() {
    let dir = scratch("direct-busy");
    let cib = cluster(&dir.0);
    let on = placement(&cib, "vm")[0].clone();
    // What the controller records while the VM's start runs (record-pending): status -1, rc 193.
    let node_state = format!(
        r#"<node_state id="{id}" uname="{on}"><lrm id="{id}"><lrm_resources><lrm_resource id="vm" type="vm" class="ocf" provider="clever"><lrm_rsc_op id="vm_last_0" operation_key="vm_start_0" operation="start" crm-debug-origin="test" crm_feature_set="3.16.2" transition-key="1:1:0:00000000-0000-0000-0000-000000000000" transition-magic="-1:193;1:1:0:00000000-0000-0000-0000-000000000000" call-id="-1" rc-code="193" op-status="-1" interval="0" on_node="{on}"/></lrm_resource></lrm_resources></lrm></node_state>"#,
        id = &on[4..],
    );
    tool(
        "cibadmin",
        &["--modify", "--scope", "status", "--xml-text", &node_state],
        Some(&cib),
    );
    for verb in ["start", "stop"] {
        let (code, out, calls) =
            clevervm_with_virsh(&cib, Some("running"), &["--node", &on, verb, "--yes"]);
        assert_eq!(code, 1, "{verb}: {out}");
        // The reason goes to stderr: ask the binary itself.
        let output = Command::new(env!("CARGO_BIN_EXE_clevervm"))
            .args([
                "--cib-file",
                cib.to_str().unwrap(),
                "--node",
                &on,
                verb,
                "--yes",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{verb}: {stderr}");
        assert!(
            stderr.contains(&format!("Pacemaker is starting vm on {on}")),
            "{verb}: {stderr}"
        );
        assert!(
            !calls.iter().any(|c| c.contains("virsh")),
            "{verb} called libvirt: {calls:?}"
        );
    }
}

#[test]
fn kept_images_are_found_by_name_oldest_first() {
    let dir = scratch("kept-images");
    for name in [
        "clever.save",
        "clever.save.kept-20261205T082612Z-partial",
        "clever.save.kept-20261205T081621Z-empty",
        "other.save.kept-20261205T081621Z-empty",
        "clever.save.hold",
    ] {
        std::fs::write(dir.0.join(name), b"x").unwrap();
    }
    let kept: Vec<String> = clevervm::collect::kept_images(&dir.0, "clever")
        .into_iter()
        .map(|image| image.path.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        kept,
        [
            "clever.save.kept-20261205T081621Z-empty",
            "clever.save.kept-20261205T082612Z-partial"
        ]
    );
    assert!(clevervm::collect::kept_images(&dir.0.join("absent"), "clever").is_empty());
}

/// The passive node of a healthy cluster: Secondary, nothing mounted there, connected to an
/// UpToDate Primary. Its status screen once warned that DRBD was "no longer Primary" (the VM
/// tier's systemd nodes showed it), a verdict meant for a node holding the mount.
#[test]
fn a_healthy_secondary_without_the_mount_is_no_problem() {
    let view = drbd_view(
        &fixture("drbd84-kernel-drbdadm9-status-secondary.txt"),
        None,
    );
    assert!(!view.degraded, "{view:?}");
    assert!(
        !view
            .health
            .as_deref()
            .unwrap_or_default()
            .contains("no longer Primary"),
        "{view:?}"
    );
    // With the mount, a Secondary has lost its device: still a problem.
    let mounted = MountView {
        directory: "/srv".into(),
        fstype: "ext4".into(),
        size_bytes: 1,
        used_bytes: 0,
        free_bytes: 1,
    };
    let view = drbd_view(
        &fixture("drbd84-kernel-drbdadm9-status-secondary.txt"),
        Some(mounted),
    );
    assert!(view.degraded, "{view:?}");
}
