//! The status parser and the admin verbs against Pacemaker's real tools: CIBs computed by
//! `crm_simulate`, read back by `crm_mon`, changed by `crm_resource` (all on CIB files).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clever_command::HostCommands;
use clever_deadline::Deadline;
use clever_pacemaker::{parse_crm_mon, ClusterStatus, CrmMonError, Pacemaker, Role, TargetRole};

const CONFIGURATION: &str = r#"<crm_config><cluster_property_set id="opts">
      <nvpair id="o1" name="stonith-enabled" value="false"/>
      <nvpair id="o2" name="no-quorum-policy" value="ignore"/></cluster_property_set></crm_config>
    <nodes><node id="1" uname="node1"/><node id="2" uname="node2"/></nodes>
    <resources>
      <primitive id="dummy" class="ocf" provider="heartbeat" type="Dummy">
        <operations><op id="d-mon" name="monitor" interval="10s"/></operations></primitive>
      <clone id="ping-clone"><primitive id="ping" class="ocf" provider="pacemaker" type="ping">
        <instance_attributes id="p-ia"><nvpair id="p-h" name="host_list" value="192.0.2.1"/></instance_attributes>
      </primitive></clone>
      <clone id="drbd-clone"><meta_attributes id="dc-meta">
          <nvpair id="dc-p" name="promotable" value="true"/><nvpair id="dc-n" name="notify" value="true"/>
        </meta_attributes>
        <primitive id="drbd" class="ocf" provider="pacemaker" type="Stateful"/></clone>
      <group id="stack"><primitive id="fs" class="ocf" provider="heartbeat" type="Dummy"/>
        <primitive id="ip" class="ocf" provider="heartbeat" type="Dummy"/></group>
    </resources>
    <constraints/>"#;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(label: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("clever-pacemaker-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn tool(program: &str, args: &[&str], cib_file: Option<&Path>) {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(file) = cib_file {
        command.env("CIB_file", file);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{program} is missing ({e}): make setup installs pacemaker"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A 2-node cluster after Pacemaker's scheduler started everything: a CIB file.
fn running_cluster(dir: &Path) -> PathBuf {
    let empty = Command::new("cibadmin").arg("--empty").output().unwrap();
    let empty = String::from_utf8(empty.stdout).unwrap();
    let start = empty.find("<crm_config/>").unwrap();
    let end = empty.find("</configuration>").unwrap();
    let cib = format!("{}{CONFIGURATION}\n  {}", &empty[..start], &empty[end..]);
    let input = dir.join("cib.xml");
    std::fs::write(&input, cib).unwrap();
    tool("crm_verify", &["-x", input.to_str().unwrap()], None);
    let output = dir.join("running.xml");
    simulate(&input, &output, &["-u", "node1", "-u", "node2"]);
    output
}

fn simulate(input: &Path, output: &Path, extra: &[&str]) {
    let mut args = vec![
        "-S",
        "-x",
        input.to_str().unwrap(),
        "-O",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    tool("crm_simulate", &args, None);
}

fn status(cib: &Path) -> ClusterStatus {
    Pacemaker::on_file(HostCommands, cib)
        .status(&Deadline::after(Duration::from_secs(30)))
        .unwrap()
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

#[test]
fn reads_nodes_resources_roles_and_placement() {
    let dir = scratch("placement");
    let cib = running_cluster(&dir.0);
    // Give node2 the promotion score the DRBD agent would set, then let the scheduler act.
    tool(
        "crm_attribute",
        &[
            "-N",
            "node2",
            "-n",
            "master-drbd",
            "-v",
            "10",
            "-l",
            "reboot",
        ],
        Some(&cib),
    );
    let promoted = dir.0.join("promoted.xml");
    simulate(&cib, &promoted, &[]);

    let cluster = status(&promoted);
    assert_eq!(cluster.nodes.len(), 2);
    assert!(cluster
        .nodes
        .iter()
        .all(|n| n.online && !n.standby && !n.unclean));
    assert_eq!(cluster.stonith_enabled, Some(false));
    assert_eq!(cluster.running_on("ping", None), ["node1", "node2"]);
    assert_eq!(cluster.running_on("drbd", Some(Role::Promoted)), ["node2"]);
    assert_eq!(
        cluster.running_on("drbd", Some(Role::Unpromoted)),
        ["node1"]
    );
    assert_eq!(cluster.running_on("dummy", None).len(), 1);
    let fs = cluster.running_on("fs", None);
    assert_eq!(fs.len(), 1);
    assert_eq!(
        cluster.running_on("ip", None),
        fs,
        "a group runs on one node"
    );
    let ping = cluster.resources.iter().find(|r| r.id == "ping").unwrap();
    assert_eq!(ping.parent.as_deref(), Some("ping-clone"));
    assert_eq!(ping.agent, "ocf:pacemaker:ping");
    assert_eq!(cluster.attribute("node2", "master-drbd"), Some("10"));

    // Banning the promoted role moves the promotion and keeps the unpromoted instance running.
    let pacemaker = Pacemaker::on_file(HostCommands, &promoted);
    tool(
        "crm_attribute",
        &[
            "-N",
            "node1",
            "-n",
            "master-drbd",
            "-v",
            "5",
            "-l",
            "reboot",
        ],
        Some(&promoted),
    );
    pacemaker
        .ban("drbd-clone", "node2", true, &deadline())
        .unwrap();
    let switched = dir.0.join("switched.xml");
    simulate(&promoted, &switched, &[]);
    let after = status(&switched);
    assert_eq!(after.running_on("drbd", Some(Role::Promoted)), ["node1"]);
    assert_eq!(after.running_on("drbd", Some(Role::Unpromoted)), ["node2"]);

    let primitives = Pacemaker::on_file(HostCommands, &promoted)
        .primitives(&deadline())
        .unwrap();
    let drbd = primitives.iter().find(|p| p.id == "drbd").unwrap();
    assert_eq!(drbd.promotable_clone.as_deref(), Some("drbd-clone"));
    let ping = primitives.iter().find(|p| p.id == "ping").unwrap();
    assert_eq!(ping.parameters["host_list"], "192.0.2.1");
    assert_eq!(ping.top_level_id(), "ping-clone");
}

#[test]
fn reads_failures_fail_counts_and_bans_and_the_verbs_change_them() {
    let dir = scratch("verbs");
    let cib = running_cluster(&dir.0);
    let where_dummy = status(&cib).running_on("dummy", None)[0].to_owned();
    let failed = dir.0.join("failed.xml");
    simulate(
        &cib,
        &failed,
        &["-i", &format!("dummy_monitor_10000@{where_dummy}=7")],
    );

    let cluster = status(&failed);
    let failure = cluster
        .failures
        .iter()
        .find(|f| f.op_key == "dummy_monitor_10000")
        .unwrap();
    assert_eq!(
        (failure.node.as_str(), failure.exit_code),
        (where_dummy.as_str(), 7)
    );
    assert_eq!(failure.task, "monitor");
    let count = cluster
        .fail_counts
        .iter()
        .find(|c| c.resource == "dummy")
        .unwrap();
    assert_eq!(count.fail_count, 1);

    let pacemaker = Pacemaker::on_file(HostCommands, &failed);
    pacemaker
        .ban("dummy", &where_dummy, false, &deadline())
        .unwrap();
    let ban = status(&failed)
        .bans
        .into_iter()
        .find(|b| b.resource == "dummy")
        .unwrap();
    assert_eq!(ban.id, format!("cli-ban-dummy-on-{where_dummy}"));
    assert_eq!(ban.weight, -1_000_000);
    let moved = dir.0.join("moved.xml");
    simulate(&failed, &moved, &[]);
    assert_ne!(
        status(&moved).running_on("dummy", None),
        [where_dummy.as_str()]
    );

    let pacemaker = Pacemaker::on_file(HostCommands, &moved);
    assert_eq!(pacemaker.cli_constraints(&deadline()).unwrap().len(), 1);
    pacemaker.clear("dummy", &deadline()).unwrap();
    assert!(status(&moved).bans.is_empty());
    assert!(pacemaker.cli_constraints(&deadline()).unwrap().is_empty());
    // `crm_resource --cleanup` on a CIB file is only a dry run (and crashes in 2.1.5), so
    // cleanup is proven against the live cluster, not here.

    let stack_on = status(&moved).running_on("fs", None)[0].to_owned();
    let other = if stack_on == "node1" {
        "node2"
    } else {
        "node1"
    };
    pacemaker
        .move_to("stack", other, false, &deadline())
        .unwrap();
    let pinned = pacemaker.cli_constraints(&deadline()).unwrap();
    assert!(
        pinned
            .iter()
            .any(|c| c.id == "cli-prefer-stack" && c.node.as_deref() == Some(other)),
        "{pinned:?}"
    );
    let relocated = dir.0.join("relocated.xml");
    simulate(&moved, &relocated, &[]);
    assert_eq!(status(&relocated).running_on("ip", None), [other]);
    let pacemaker = Pacemaker::on_file(HostCommands, &relocated);

    pacemaker
        .set_target_role("stack", TargetRole::Stopped, &deadline())
        .unwrap();
    let stopped = dir.0.join("stopped.xml");
    simulate(&relocated, &stopped, &[]);
    let cluster = status(&stopped);
    assert!(cluster.running_on("fs", None).is_empty());
    assert!(cluster.running_on("ip", None).is_empty());
}

#[test]
fn a_failed_or_garbled_answer_is_an_error() {
    let failed = r#"<pacemaker-result api-version="2.25"><status code="102" message="Not connected"/></pacemaker-result>"#;
    assert!(matches!(
        parse_crm_mon(failed),
        Err(CrmMonError::Failed { code: 102, .. })
    ));
    assert!(parse_crm_mon("<pacemaker-result><resources><resource").is_err());
    // What crm_mon 2.1 prints, with exit code 0, when it cannot reach the CIB.
    let unreachable = r#"<pacemaker-result api-version="2.25" request="crm_mon -1 --output-as=xml">
      <status code="0" message="OK"><errors>
        <error>Could not connect to the CIB: Transport endpoint is not connected</error>
      </errors></status></pacemaker-result>"#;
    match parse_crm_mon(unreachable) {
        Err(CrmMonError::Failed { message, .. }) => assert!(message.contains("Could not connect")),
        other => panic!("{other:?}"),
    }
    assert!(parse_crm_mon("not xml at all").is_err());
    let odd_role = r#"<pacemaker-result><resources><resource id="x" role="Dancing"/></resources></pacemaker-result>"#;
    assert!(matches!(
        parse_crm_mon(odd_role),
        Err(CrmMonError::UnknownRole(_))
    ));
}

#[test]
fn legacy_role_names_and_unknown_elements_are_understood() {
    let xml = r#"<pacemaker-result api-version="2.0">
      <summary><current_dc present="true" name="a" with_quorum="true"/><future-thing x="1"/></summary>
      <resources>
        <clone id="ms"><resource id="d" role="Master" active="true"><node name="a"/></resource>
          <resource id="d" role="Slave" active="true"><node name="b"/></resource></clone>
        <something-new id="z"/>
      </resources>
    </pacemaker-result>"#;
    let cluster = parse_crm_mon(xml).unwrap();
    assert_eq!(cluster.dc.as_deref(), Some("a"));
    assert_eq!(cluster.quorum, Some(true));
    assert_eq!(cluster.running_on("d", Some(Role::Promoted)), ["a"]);
    assert_eq!(cluster.running_on("d", Some(Role::Unpromoted)), ["b"]);
}

#[test]
fn an_operation_in_flight_counts_as_running_but_not_as_settled() {
    let dir = scratch("pending");
    let cib = running_cluster(&dir.0);
    let on = status(&cib).running_on("ip", None)[0].to_owned();
    // What the controller records while a start runs (record-pending): status -1, rc 193.
    let node_state = format!(
        r#"<node_state id="{id}" uname="{on}"><lrm id="{id}"><lrm_resources><lrm_resource id="ip" type="IPaddr2" class="ocf" provider="heartbeat"><lrm_rsc_op id="ip_last_0" operation_key="ip_start_0" operation="start" crm-debug-origin="test" crm_feature_set="3.16.2" transition-key="1:1:0:00000000-0000-0000-0000-000000000000" transition-magic="-1:193;1:1:0:00000000-0000-0000-0000-000000000000" call-id="-1" rc-code="193" op-status="-1" interval="0" on_node="{on}"/></lrm_resource></lrm_resources></lrm></node_state>"#,
        id = if on == "node1" { 1 } else { 2 },
    );
    tool(
        "cibadmin",
        &["--modify", "--scope", "status", "--xml-text", &node_state],
        Some(&cib),
    );
    let cluster = status(&cib);
    assert_eq!(cluster.running_on("ip", None), [on.as_str()], "{cluster:?}");
    let ip = cluster.resources.iter().find(|r| r.id == "ip").unwrap();
    assert_eq!(ip.role, Role::Starting);
    assert!(cluster.settled_on("ip", None).is_empty(), "{cluster:?}");
    assert_eq!(cluster.settled_on("fs", None), [on.as_str()]);
}
