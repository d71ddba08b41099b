//! Description checking: every bad description is refused with one clear line, no input panics,
//! and the three outputs describe the same resources and constraints.

use clever_cib::{generate, GenerateError};

const VALID: &str = r#"
[cluster]
name = "c"

[[node]]
name = "node1"

[[node]]
name = "node2"

[gwping]
host_list = ["192.0.2.1"]

[[drbd]]
name = "r0"
device = "/dev/drbd0"

[[vm]]
name = "web"
drbd = "r0"
config = "/srv/web/web.xml"
mount = { directory = "/srv/web" }
address = { ip = "192.0.2.10", cidr_netmask = 24 }
"#;

fn error_of(text: &str) -> String {
    match generate(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(GenerateError::Description(e)) => e.to_string(),
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

fn replaced(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "{from}");
    VALID.replacen(from, to, 1)
}

#[test]
fn the_base_description_is_valid() {
    let outputs = generate(VALID).unwrap();
    assert_eq!(outputs.warnings.len(), 1, "fencing placeholder warning");
}

#[test]
fn bad_descriptions_get_one_clear_line() {
    let second_vm = "\n[[vm]]\nname = \"db\"\ndrbd = \"r0\"\nconfig = \"/srv/db/db.xml\"\n\
                     mount = { directory = \"/srv/db\" }\naddress = { ip = \"192.0.2.11\" }\n";
    let cases: Vec<(String, &str)> = vec![
        (
            replaced("[[node]]\nname = \"node2\"\n", ""),
            "1 node(s) described",
        ),
        (
            replaced("name = \"node2\"", "name = \"node1\""),
            "duplicate node name \"node1\"",
        ),
        (
            replaced("name = \"node2\"", "name = \"node_2\""),
            "node name \"node_2\" is not valid",
        ),
        (
            replaced("192.0.2.10", "192.0.2.300"),
            "not an IPv4 or IPv6 address",
        ),
        (replaced("192.0.2.10", "127.0.0.1"), "loopback"),
        (
            replaced("cidr_netmask = 24", "cidr_netmask = 33"),
            "must be from 1 to 32",
        ),
        (
            replaced("drbd = \"r0\"", "drbd = \"r9\""),
            "uses drbd \"r9\", which is not a [[drbd]]",
        ),
        (format!("{VALID}{second_vm}"), "each VM needs its own"),
        (
            format!(
                "{VALID}{}",
                second_vm
                    .replace("r0", "r1")
                    .replace("192.0.2.11", "192.0.2.10")
            ) + "\n[[drbd]]\nname = \"r1\"\ndevice = \"/dev/drbd1\"\n",
            "duplicate address",
        ),
        (
            format!("{VALID}\n[[drbd]]\nname = \"r1\"\ndevice = \"/dev/drbd1\"\n"),
            "drbd \"r1\" is not used",
        ),
        (
            format!("{VALID}\n[[drbd]]\nname = \"r0\"\ndevice = \"/dev/drbd1\"\n"),
            "duplicate drbd name",
        ),
        (
            replaced("/dev/drbd0", "/tmp/drbd0"),
            "must be a device under /dev",
        ),
        (
            replaced("/srv/web\" }", "srv/web\" }"),
            "must be an absolute path",
        ),
        (replaced("/srv/web\" }", "/\" }"), "root directory"),
        (
            replaced(
                "config = \"/srv/web/web.xml\"",
                "config = \"/srv/web/web.xml\"\nhypervisor = \"qemu+ssh://root@peer/system\"",
            ),
            "must be the local QEMU system driver",
        ),
        (
            replaced("name = \"web\"", "name = \"9web\""),
            "must start with a letter",
        ),
        (
            replaced("name = \"web\"", "name = \"we b\""),
            "may hold only",
        ),
        (
            replaced("host_list = [\"192.0.2.1\"]", "host_list = []"),
            "at least one gateway",
        ),
        (
            replaced("host_list = [\"192.0.2.1\"]", "host_list = [\"a b\"]"),
            "not an IP address or host name",
        ),
        (
            replaced("host_list = [\"192.0.2.1\"]", "host_list = [\"gw=0\"]"),
            "weight",
        ),
        (
            replaced(
                "host_list = [\"192.0.2.1\"]",
                "host_list = [\"192.0.2.1\"]\nmultiplier = 0",
            ),
            "banned",
        ),
        (
            replaced(
                "name = \"c\"",
                "name = \"c\"\nfailure_timeout = \"10 minutes\"",
            ),
            "whole number",
        ),
        (
            replaced("name = \"c\"", "name = \"c\"\nmigration_threshold = 0"),
            "restart forever",
        ),
        (
            replaced("name = \"c\"", "name = \"c\"\nbogus = 1"),
            "unknown field `bogus`",
        ),
        (
            replaced("[[vm]]", "[[vm]]\nstop_timeout = \"0\""),
            "positive",
        ),
        (
            format!("{VALID}\n[fencing]\nmode = \"disabled\"\n"),
            "needs a reason",
        ),
        (
            format!("{VALID}\n[fencing]\nmode = \"devices\"\n"),
            "node \"node1\" has no [[fencing.device]]",
        ),
        (
            format!(
                "{VALID}\n[fencing]\nmode = \"devices\"\n[[fencing.device]]\nnode = \"node1\"\n\
                 agent = \"fence_ipmilan\"\n[[fencing.device]]\nnode = \"node3\"\n\
                 agent = \"fence_ipmilan\"\n"
            ),
            "refers to node \"node3\"",
        ),
        (
            format!("{VALID}\n[fencing]\nmode = \"sometimes\"\n"),
            "unknown variant",
        ),
        (
            replaced(
                "device = \"/dev/drbd0\"",
                "device = \"/dev/drbd0\"\nnodes = [\"node1\"]",
            ),
            "at least 2 nodes",
        ),
        (
            replaced(
                "device = \"/dev/drbd0\"",
                "device = \"/dev/drbd0\"\nnodes = [\"node1\", \"node7\"]",
            ),
            "refers to node \"node7\"",
        ),
        (
            VALID[..VALID.find("[[vm]]").unwrap()].to_owned(),
            "no [[vm]] described",
        ),
        ("".to_owned(), "missing field `cluster`"),
        ("[cluster\n".to_owned(), "line 1"),
        (
            format!("{VALID}\n[operations]\ntimeout_floor = \"2 min\"\n"),
            "operations.timeout_floor",
        ),
        (
            format!("{VALID}\n[operations]\nmonitor_interval_factor = 0\n"),
            "operations.monitor_interval_factor",
        ),
        (
            format!("{VALID}\n[operations]\nmonitor_interval_factor = 11\n"),
            "must be from 1 to 10",
        ),
        (
            format!("{VALID}\n[operations]\nslow = true\n"),
            "unknown field `slow`",
        ),
    ];
    for (text, expected) in cases {
        let message = error_of(&text);
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
        assert!(!message.contains('\n'), "not one line: {message:?}");
    }
}

/// What an agent refuses never reaches the CIB: the generator runs the parameters it writes
/// through the agent's own first stage and names the resource, the parameter and the agent's
/// reason. A CIB with `options=ro,bind` passes crm_verify, but drbdfs refuses it at every start
/// (exit 6), so the filesystem could never start.
#[test]
fn what_an_agent_would_refuse_is_refused_with_the_agents_reason() {
    for (from, to, expected) in [
        (
            "mount = { directory = \"/srv/web\" }",
            "mount = { directory = \"/srv/web\", options = \"ro,bind\" }",
            [
                "ocf:clever:drbdfs",
                "fs_web",
                "options=\"ro,bind\"",
                "changes what the mount means",
            ],
        ),
        (
            "mount = { directory = \"/srv/web\" }",
            "mount = { directory = \"/srv/web\", fstype = \"ext4,bind\" }",
            [
                "ocf:clever:drbdfs",
                "fs_web",
                "fstype=\"ext4,bind\"",
                "not a filesystem type name",
            ],
        ),
        (
            "config = \"/srv/web/web.xml\"",
            "config = \"/srv/web/web.xml\"\nhypervisor = \"qemu:///session\"",
            [
                "ocf:clever:vm",
                "vm_web",
                "hypervisor=\"qemu:///session\"",
                "must be the local QEMU system driver",
            ],
        ),
        (
            "host_list = [\"192.0.2.1\"]",
            "host_list = [\"192.0.2.1\"]\ndampen = \"2h\"",
            ["ocf:clever:gwping", "gwping", "dampen=\"2h\"", "at most 1h"],
        ),
    ] {
        let message = error_of(&replaced(from, to));
        for needle in expected {
            assert!(
                message.contains(needle),
                "expected {needle:?} in {message:?}"
            );
        }
        assert!(!message.contains('\n'), "not one line: {message:?}");
    }
}

#[test]
fn seventeen_to_thirty_two_nodes_work_and_thirty_three_do_not() {
    let nodes = |count: usize| {
        let mut text = VALID.replacen(
            "[[node]]\nname = \"node1\"\n\n[[node]]\nname = \"node2\"\n",
            "",
            1,
        );
        for i in 1..=count {
            text.push_str(&format!("\n[[node]]\nname = \"n{i}\"\n"));
        }
        text
    };
    assert!(generate(&nodes(32)).is_ok());
    assert!(error_of(&nodes(33)).contains("33 node(s)"));
}

/// No input panics: every single-character deletion and a few replacements of a valid
/// description give either a configuration or an error line.
#[test]
fn no_input_panics() {
    let chars: Vec<char> = VALID.chars().collect();
    for i in 0..chars.len() {
        for replacement in [
            None,
            Some('"'),
            Some('9'),
            Some('['),
            Some('-'),
            Some('\u{e9}'),
        ] {
            let mut mutated = chars.clone();
            match replacement {
                None => {
                    mutated.remove(i);
                }
                Some(c) => mutated[i] = c,
            }
            let text: String = mutated.into_iter().collect();
            if let Err(e) = generate(&text) {
                assert!(!e.to_string().contains('\n'), "{e}");
            }
        }
    }
}

#[test]
fn disabled_fencing_is_explicit_and_loud() {
    let text = format!("{VALID}\n[fencing]\nmode = \"disabled\"\nreason = \"lab without BMCs\"\n");
    let outputs = generate(&text).unwrap();
    assert!(outputs
        .cib_xml
        .contains("name=\"stonith-enabled\" value=\"false\""));
    assert!(outputs.warnings[0].contains("FENCING IS DISABLED"));
    assert!(outputs.warnings[0].contains("lab without BMCs"));
    assert!(outputs
        .cib_xml
        .contains("<!-- WARNING: FENCING IS DISABLED"));
    assert!(outputs.crm.contains("# WARNING: FENCING IS DISABLED"));
    assert!(outputs.pcs.contains("# WARNING: FENCING IS DISABLED"));
    assert!(outputs.pcs.contains("echo 'WARNING: FENCING IS DISABLED"));
    assert!(!outputs.cib_xml.contains("stonith:"), "no fence devices");
}

#[test]
fn placeholder_fencing_keeps_stonith_enabled() {
    let outputs = generate(VALID).unwrap();
    assert!(outputs
        .cib_xml
        .contains("name=\"stonith-enabled\" value=\"true\""));
    assert!(!outputs.cib_xml.contains("value=\"false\""));
    for node in ["node1", "node2"] {
        assert!(outputs
            .cib_xml
            .contains(&format!("id=\"fence_{node}\" class=\"stonith\"")));
        assert!(outputs
            .crm
            .contains(&format!("primitive fence_{node} stonith:fence_ipmilan")));
        assert!(outputs
            .pcs
            .contains(&format!("stonith create fence_{node} fence_ipmilan")));
    }
    assert!(outputs
        .cib_xml
        .contains("name=\"target-role\" value=\"Stopped\""));
    assert!(outputs
        .cib_xml
        .contains("<!-- WARNING: FENCING IS NOT CONFIGURED"));
}

#[test]
fn real_fence_devices_are_used_as_given() {
    let text = format!(
        "{VALID}\n[fencing]\nmode = \"devices\"\n\
         [[fencing.device]]\nnode = \"node1\"\nagent = \"fence_ipmilan\"\nparams = {{ ip = \"10.0.0.1\", password = \"it's\" }}\n\
         [[fencing.device]]\nnode = \"node2\"\nname = \"bmc2\"\nagent = \"fence_ipmilan\"\n"
    );
    let outputs = generate(&text).unwrap();
    assert!(outputs.warnings.is_empty());
    assert!(outputs.cib_xml.contains("id=\"fence_node1\""));
    assert!(outputs.cib_xml.contains("id=\"bmc2\""));
    assert!(!outputs.cib_xml.contains("target-role"));
    assert!(outputs
        .cib_xml
        .contains("rsc=\"bmc2\" node=\"node2\" score=\"-INFINITY\""));
    assert!(
        outputs.pcs.contains("'password=it'\\''s'"),
        "{}",
        outputs.pcs
    );
    assert!(outputs.crm.contains("password=\"it's\""), "{}", outputs.crm);
}

#[test]
fn one_device_may_fence_several_nodes() {
    let text = format!(
        "{VALID}\n[fencing]\nmode = \"devices\"\n\
         [[fencing.device]]\nname = \"sbd\"\nnodes = [\"node1\", \"node2\"]\nagent = \"fence_sbd\"\n"
    );
    let outputs = generate(&text).unwrap();
    assert!(outputs
        .cib_xml
        .contains("name=\"pcmk_host_list\" value=\"node1 node2\""));
    assert!(
        !outputs.cib_xml.contains("loc_sbd_avoid"),
        "may run on any node"
    );
    let unnamed = text.replace("name = \"sbd\"\n", "");
    assert!(error_of(&unnamed).contains("needs a name"));
    let both = text.replace("name = \"sbd\"\n", "name = \"sbd\"\nnode = \"node1\"\n");
    assert!(error_of(&both).contains("either node or a non-empty nodes list"));
}

/// crm and pcs create exactly the resources and constraints the CIB has.
#[test]
fn the_three_outputs_agree() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../pacemaker-cib/examples/3-nodes.toml"),
    )
    .unwrap();
    let description = clever_cib::Description::from_toml(&text).unwrap();
    let configuration = clever_cib::build(&description).unwrap();
    let outputs = generate(&text).unwrap();
    for primitive in configuration.primitives() {
        let id = &primitive.id;
        assert!(
            outputs.cib_xml.contains(&format!("<primitive id=\"{id}\"")),
            "xml {id}"
        );
        assert!(
            outputs
                .crm
                .contains(&format!("primitive {id} {}", primitive.agent)),
            "crm {id}"
        );
        assert!(outputs.pcs.contains(&format!(" create {id} ")), "pcs {id}");
    }
    for constraint in &configuration.constraints {
        let id = constraint.id();
        assert!(
            outputs.cib_xml.contains(&format!("id=\"{id}\"")),
            "xml {id}"
        );
        assert!(outputs.crm.contains(&format!(" {id} ")), "crm {id}");
        assert!(
            outputs.pcs.contains(&format!("id={id}\n"))
                || outputs.pcs.contains(&format!("constraint-id={id} "))
                || outputs.pcs.contains(&format!("location add {id} ")),
            "pcs {id}"
        );
    }
}

#[test]
fn libvirtd_class_is_chosen_by_the_description() {
    let systemd = generate(VALID).unwrap();
    assert!(systemd
        .cib_xml
        .contains("<primitive id=\"libvirtd\" class=\"systemd\" type=\"libvirtd\">"));
    let lsb = generate(&format!("{VALID}\n[libvirtd]\nclass = \"lsb\"\n")).unwrap();
    assert!(lsb
        .cib_xml
        .contains("<primitive id=\"libvirtd\" class=\"lsb\" type=\"libvirtd\">"));
    assert!(lsb.crm.contains("primitive libvirtd lsb:libvirtd"));
    assert!(lsb.pcs.contains("resource create libvirtd lsb:libvirtd"));
}

/// `[operations]` for slow nodes: every timeout below the floor is raised to it, every recurring
/// monitor stretched by the factor, and nothing else changes (probes, start, stop keep their
/// interval 0; timeouts above the floor stay).
#[test]
fn slow_nodes_get_longer_timeouts_and_rarer_monitors() {
    let normal = generate(VALID).unwrap().crm;
    let slow = generate(&format!(
        "{VALID}\n[operations]\ntimeout_floor = \"2min\"\nmonitor_interval_factor = 3\n"
    ))
    .unwrap()
    .crm;
    let operations = |crm: &str| -> Vec<(String, u64, u64)> {
        crm.lines()
            .map(str::trim)
            .filter_map(|line| line.strip_prefix("op "))
            .map(|op| {
                let field = |key: &str| {
                    op.split(' ')
                        .find_map(|word| word.strip_prefix(key))
                        .map(|value| {
                            let (number, unit) =
                                value.split_at(value.find(|c: char| !c.is_ascii_digit()).unwrap());
                            let n: u64 = number.parse().unwrap();
                            match unit {
                                "s" => n,
                                "min" => n * 60,
                                other => panic!("unit {other} in {op}"),
                            }
                        })
                        .unwrap()
                };
                (
                    op.split(' ').next().unwrap().to_owned(),
                    field("interval="),
                    field("timeout="),
                )
            })
            .collect()
    };
    let (before, after) = (operations(&normal), operations(&slow));
    assert_eq!(before.len(), after.len());
    assert!(before.iter().any(|(_, _, timeout)| *timeout < 120));
    assert!(before.iter().any(|(_, _, timeout)| *timeout > 120));
    let mut stretched = 0;
    for ((name, interval, timeout), (slow_name, slow_interval, slow_timeout)) in
        before.iter().zip(&after)
    {
        assert_eq!(name, slow_name);
        assert_eq!(*slow_timeout, (*timeout).max(120), "{name} timeout");
        if name == "monitor" && *interval > 0 {
            assert_eq!(*slow_interval, interval * 3, "{name} interval");
            stretched += 1;
        } else {
            assert_eq!(slow_interval, interval, "{name} interval");
        }
    }
    assert!(stretched >= 5, "{stretched} monitors stretched:\n{slow}");
}
