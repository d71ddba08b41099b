//! The checked-in examples in `pacemaker-cib/examples/`: each `<name>.toml` has its generated
//! `<name>/cib.xml`, `crm.txt` and `pcs.sh`, which must match what the generator makes now.
//! Regenerate them with `UPDATE_EXAMPLES=1 cargo test -p clever-cib --test tests examples`
//! (or one at a time: `cargo run -p clever-cib-cli -- generate pacemaker-cib/examples/<name>.toml
//! -o pacemaker-cib/examples/<name>`).

use std::fs;
use std::path::PathBuf;

use clever_cib::pacemaker::Resource;
use clever_cib::{build, Description};
use clever_command::CommandLine;

use crate::sim::{formed_status, parse_xml, run_tool, Lab};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../pacemaker-cib/examples")
}

/// Every example description, sorted by name.
fn examples() -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = fs::read_dir(examples_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, fs::read_to_string(&path).unwrap())
        })
        .collect();
    found.sort();
    found
}

#[test]
fn the_promised_examples_exist() {
    let names: Vec<String> = examples().into_iter().map(|(name, _)| name).collect();
    for expected in ["2-nodes", "3-nodes", "16-nodes-10-vms"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
}

#[test]
fn checked_in_outputs_match_the_generator() {
    let update = std::env::var_os("UPDATE_EXAMPLES").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, text) in examples() {
        let outputs = clever_cib::generate(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dir = examples_dir().join(&name);
        for (file, content) in [
            ("cib.xml", &outputs.cib_xml),
            ("crm.txt", &outputs.crm),
            ("pcs.sh", &outputs.pcs),
        ] {
            let path = dir.join(file);
            if update {
                fs::create_dir_all(&dir).unwrap();
                fs::write(&path, content).unwrap();
            } else if fs::read_to_string(&path).ok().as_ref() != Some(content) {
                stale.push(format!("{name}/{file}"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale examples {stale:?}: regenerate with \
         UPDATE_EXAMPLES=1 cargo test -p clever-cib --test tests examples"
    );
}

/// All nodes online and probed, with a gateway score and every DRBD promotion score.
fn online_status(description: &Description) -> String {
    let configuration = build(description).unwrap();
    let drbd: Vec<String> = configuration
        .resources
        .iter()
        .filter_map(|r| match r {
            Resource::Clone(clone) if clone.is_promotable() => Some(clone.child.id.clone()),
            _ => None,
        })
        .collect();
    formed_status(&configuration, &|_node| {
        let mut attributes = vec![(description.gwping.attribute.clone(), "1000".to_owned())];
        for primitive in &drbd {
            attributes.push((format!("master-{primitive}"), "10000".to_owned()));
        }
        attributes
    })
}

/// `crm_verify` accepts every example: schema (pacemaker-3.9) and configuration, with no
/// warning at all once the nodes are online; the bare file (empty status) has no error.
#[test]
fn examples_pass_crm_verify() {
    for (name, text) in examples() {
        let description = Description::from_toml(&text).unwrap();
        let outputs = clever_cib::generate(&text).unwrap();
        let lab = Lab::new(
            &format!("verify-{name}"),
            &outputs.cib_xml,
            &online_status(&description),
        );
        let output = run_tool(
            &CommandLine::new("crm_verify")
                .arg("-V")
                .arg("-x")
                .arg(lab.current()),
        );
        let said = format!("{}{}", output.stdout_text(), output.stderr_text());
        assert!(said.trim().is_empty(), "{name}: crm_verify said:\n{said}");
        lab.finish();

        let bare = examples_dir().join(&name).join("cib.xml");
        let output = clever_command::HostCommands.run_checked(
            &CommandLine::new("crm_verify")
                .arg("-V")
                .arg("-x")
                .arg(&bare),
        );
        let said = format!("{}{}", output.stdout_text(), output.stderr_text());
        assert!(
            !said.to_lowercase().contains("error"),
            "{name}: crm_verify on the bare file:\n{said}"
        );
    }
}

/// Each example, all nodes up: every VM stack starts (a smoke test; the scenarios go further).
#[test]
fn examples_place_every_vm() {
    for (name, text) in examples() {
        let description = Description::from_toml(&text).unwrap();
        let outputs = clever_cib::generate(&text).unwrap();
        let mut lab = Lab::new(
            &format!("place-{name}"),
            &outputs.cib_xml,
            &online_status(&description),
        );
        let step = lab.simulate("initial", &[]);
        for vm in &description.vms {
            for id in [
                format!("fs_{}", vm.name),
                format!("vm_{}", vm.name),
                format!("ip_{}", vm.name),
            ] {
                assert_eq!(
                    step.after.nodes_of(&id).len(),
                    1,
                    "{name}: {id} not running once"
                );
            }
        }
        lab.finish();
    }
}

/// The XML is well-formed and parses back.
#[test]
fn examples_are_well_formed() {
    for (name, text) in examples() {
        let outputs = clever_cib::generate(&text).unwrap();
        let root = parse_xml(&outputs.cib_xml);
        assert_eq!(root.name, "cib", "{name}");
        assert_eq!(root.attr("validate-with"), Some("pacemaker-3.9"), "{name}");
    }
}

trait RunChecked {
    fn run_checked(&self, command: &CommandLine) -> clever_command::Output;
}

impl RunChecked for clever_command::HostCommands {
    /// Runs a tool that may exit non-zero (crm_verify warns with 78), failing on anything else.
    fn run_checked(&self, command: &CommandLine) -> clever_command::Output {
        use clever_command::RunCommand as _;
        let deadline = clever_deadline::Deadline::after(crate::sim::TOOL_BUDGET);
        let output = self
            .run(command, &deadline)
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        assert!(
            matches!(output.code(), Some(0 | 78)),
            "{command}: exit {:?}: {}",
            output.code(),
            output.stderr_text()
        );
        output
    }
}

/// Our agents' resources in a rendered CIB: id, agent name, the instance attributes as written
/// and the operations (name, interval, timeout).
#[allow(clippy::type_complexity, reason = "a test's tuple")]
fn clever_primitives(
    cib_xml: &str,
) -> Vec<(
    String,
    String,
    Vec<(String, String)>,
    Vec<(String, String, String)>,
)> {
    let root = parse_xml(cib_xml);
    let mut primitives = Vec::new();
    root.descendants("primitive", &mut primitives);
    primitives
        .into_iter()
        .filter(|p| p.attr("class") == Some("ocf") && p.attr("provider") == Some("clever"))
        .map(|p| {
            let mut pairs = Vec::new();
            for attributes in p.children_named("instance_attributes") {
                for pair in attributes.children_named("nvpair") {
                    pairs.push((
                        pair.attr("name").unwrap().to_owned(),
                        pair.attr("value").unwrap().to_owned(),
                    ));
                }
            }
            let mut ops = Vec::new();
            if let Some(operations) = p.child("operations") {
                for op in operations.children_named("op") {
                    ops.push((
                        op.attr("name").unwrap().to_owned(),
                        op.attr("interval").unwrap().to_owned(),
                        op.attr("timeout").unwrap().to_owned(),
                    ));
                }
            }
            (
                p.attr("id").unwrap().to_owned(),
                p.attr("type").unwrap().to_owned(),
                pairs,
                ops,
            )
        })
        .collect()
}

/// Every resource of every example, with the parameters exactly as the CIB writes them, passes
/// its agent's own first stage: what `crm_verify` accepts, the agent starts.
#[test]
fn every_generated_resource_passes_its_agents_own_checks() {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (name, text) in examples() {
        let outputs = clever_cib::generate(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (id, agent_name, pairs, _) in clever_primitives(&outputs.cib_xml) {
            let agent = clever_agent_params::agent(&agent_name)
                .unwrap_or_else(|| panic!("{name}: {id} uses unknown ocf:clever:{agent_name}"));
            let values = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()));
            if let Err(refusal) = agent.check(values) {
                panic!("{name}: {id} (ocf:clever:{agent_name}) refused: {refusal}");
            }
            *seen.entry(agent_name).or_default() += 1;
        }
    }
    let agents: Vec<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(agents, ["drbdfs", "gwping", "vm"], "{seen:?}");
}

/// The operations of our agents' resources carry the timeouts and intervals the agents
/// advertise; only a VM's stop timeout and gwping's monitor interval may come from the
/// description.
#[test]
fn operations_take_the_agents_advertised_timeouts() {
    for (name, text) in examples() {
        let description = Description::from_toml(&text).unwrap();
        let outputs = clever_cib::generate(&text).unwrap();
        for (id, agent_name, _, ops) in clever_primitives(&outputs.cib_xml) {
            let agent = clever_agent_params::agent(&agent_name).unwrap();
            assert!(!ops.is_empty(), "{name}: {id} has no operations");
            for (op, interval, timeout) in ops {
                let advertised = agent
                    .actions
                    .iter()
                    .find(|a| a.action.as_str() == op)
                    .unwrap_or_else(|| {
                        panic!("{name}: {id} runs {op}, which it does not advertise")
                    });
                let secs = |secs: u32| format!("{secs}s");
                let expected_timeout = match (agent_name.as_str(), op.as_str()) {
                    ("vm", "stop") => description
                        .vms
                        .iter()
                        .find(|vm| id == clever_cib::build::vm_id(&vm.name))
                        .and_then(|vm| vm.stop_timeout.clone())
                        .unwrap_or_else(|| secs(advertised.timeout_secs)),
                    _ => secs(advertised.timeout_secs),
                };
                assert_eq!(timeout, expected_timeout, "{name}: {id} {op}");
                let expected_interval = match (agent_name.as_str(), op.as_str()) {
                    ("gwping", "monitor") => description
                        .gwping
                        .monitor_interval
                        .clone()
                        .unwrap_or_else(|| secs(advertised.interval_secs.unwrap_or(0))),
                    _ => secs(advertised.interval_secs.unwrap_or(0)),
                };
                assert_eq!(interval, expected_interval, "{name}: {id} {op}");
            }
        }
    }
}
