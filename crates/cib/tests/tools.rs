//! The crm and pcs renderings, run through the real crmsh and pcs: each must build the same
//! configuration as the generated CIB XML (compared element by element, ids included, after
//! normalising what the tools spell differently).

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use clever_command::CommandLine;

use std::time::Duration;

use crate::sim::{parse_xml, run_tool, run_tool_within, Element};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../pacemaker-cib/examples")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clever-cib-tools-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn empty_cib(path: &PathBuf) {
    let output = run_tool(&CommandLine::new("cibadmin").arg("--empty"));
    fs::write(path, output.stdout).unwrap();
}

fn score(value: &str) -> String {
    match value {
        "inf" | "+inf" | "+INFINITY" | "INFINITY" => "INFINITY".to_owned(),
        "-inf" | "-INFINITY" => "-INFINITY".to_owned(),
        other => other.to_owned(),
    }
}

/// A role; `Started` means "any active role", as an absent role does (pcs writes it for the
/// dependent of a colocation with a role).
fn role(value: Option<&str>) -> String {
    match value {
        Some("Started") | None => "-".to_owned(),
        Some("Master") => "Promoted".to_owned(),
        Some("Slave") => "Unpromoted".to_owned(),
        Some(other) => other.to_owned(),
    }
}

fn pairs(out: &mut BTreeSet<String>, kind: &str, owner: &str, set: Option<&Element>) {
    for pair in set.into_iter().flat_map(|s| s.children_named("nvpair")) {
        out.insert(format!(
            "{kind} {owner} {}={}",
            pair.attr("name").unwrap(),
            pair.attr("value").unwrap_or_default()
        ));
    }
}

fn primitive(out: &mut BTreeSet<String>, p: &Element, parent: &str) {
    let id = p.attr("id").unwrap();
    out.insert(format!(
        "primitive {id} {}:{}:{} in {parent}",
        p.attr("class").unwrap(),
        p.attr("provider").unwrap_or("-"),
        p.attr("type").unwrap()
    ));
    pairs(out, "param", id, p.child("instance_attributes"));
    pairs(out, "meta", id, p.child("meta_attributes"));
    for op in p
        .child("operations")
        .into_iter()
        .flat_map(|o| o.children_named("op"))
    {
        out.insert(format!(
            "op {id} {} interval={} timeout={} role={}",
            op.attr("name").unwrap(),
            op.attr("interval").unwrap(),
            op.attr("timeout").unwrap_or("-"),
            role(op.attr("role"))
        ));
    }
}

/// The configuration as a set of comparable lines.
fn normalised(cib: &str, with_nodes: bool) -> BTreeSet<String> {
    let root = parse_xml(cib);
    let configuration = root.child("configuration").unwrap();
    let mut out = BTreeSet::new();
    for set in configuration
        .child("crm_config")
        .unwrap()
        .children_named("cluster_property_set")
    {
        pairs(&mut out, "property", "-", Some(set));
    }
    if let Some(defaults) = configuration.child("rsc_defaults") {
        for set in defaults.children_named("meta_attributes") {
            pairs(&mut out, "rsc_default", "-", Some(set));
        }
    }
    if with_nodes {
        for node in configuration.child("nodes").unwrap().children_named("node") {
            out.insert(format!(
                "node {} {}",
                node.attr("id").unwrap(),
                node.attr("uname").unwrap()
            ));
        }
    }
    for resource in &configuration.child("resources").unwrap().children {
        match resource.name.as_str() {
            "primitive" => primitive(&mut out, resource, "-"),
            "clone" => {
                let id = resource.attr("id").unwrap();
                pairs(
                    &mut out,
                    "clone-meta",
                    id,
                    resource.child("meta_attributes"),
                );
                primitive(&mut out, resource.child("primitive").unwrap(), id);
            }
            other => panic!("unexpected resource element {other}"),
        }
    }
    for constraint in &configuration.child("constraints").unwrap().children {
        let a = |name: &str| constraint.attr(name).unwrap_or("-").to_owned();
        let id = a("id");
        match constraint.name.as_str() {
            "rsc_location" => {
                out.insert(format!(
                    "location {id} {} discovery={} node={} score={}",
                    a("rsc"),
                    a("resource-discovery"),
                    a("node"),
                    score(&a("score"))
                ));
                for rule in constraint.children_named("rule") {
                    // crmsh puts the role on the rule, the others on the constraint.
                    let role = role(constraint.attr("role").or(rule.attr("role")));
                    out.insert(format!(
                        "rule {id} role={role} score={} op={}",
                        score(rule.attr("score").unwrap()),
                        rule.attr("boolean-op").unwrap_or("and")
                    ));
                    for e in rule.children_named("expression") {
                        out.insert(format!(
                            "expression {id} {} {} {} {}",
                            e.attr("attribute").unwrap(),
                            e.attr("operation").unwrap(),
                            e.attr("value").unwrap_or("-"),
                            e.attr("type").unwrap_or("string")
                        ));
                    }
                }
            }
            "rsc_colocation" => {
                out.insert(format!(
                    "colocation {id} {} role={} with {} role={} score={}",
                    a("rsc"),
                    role(constraint.attr("rsc-role")),
                    a("with-rsc"),
                    role(constraint.attr("with-rsc-role")),
                    score(&a("score"))
                ));
            }
            "rsc_order" => {
                out.insert(format!(
                    "order {id} {} {} then {} {} kind={} symmetrical={}",
                    a("first"),
                    constraint.attr("first-action").unwrap_or("start"),
                    a("then"),
                    constraint.attr("then-action").unwrap_or("start"),
                    constraint.attr("kind").unwrap_or("Mandatory"),
                    constraint.attr("symmetrical").unwrap_or("true")
                ));
            }
            other => panic!("unexpected constraint element {other}"),
        }
    }
    out
}

fn assert_same(name: &str, tool: &str, expected: &BTreeSet<String>, built: &BTreeSet<String>) {
    let missing: Vec<&String> = expected.difference(built).collect();
    let extra: Vec<&String> = built.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{name}: {tool} built a different configuration\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
}

/// `crm configure load update crm.txt` (crmsh, on a file CIB) gives the CIB's configuration.
/// Agent metadata checks are off: the agents need not be installed where the tests run.
#[test]
fn crmsh_builds_the_same_configuration() {
    for name in ["2-nodes", "3-nodes", "16-nodes-10-vms"] {
        let dir = scratch(&format!("crm-{name}"));
        let cib = dir.join("cib.xml");
        empty_cib(&cib);
        let commands = dir.join("commands");
        let crm_txt = examples_dir().join(name).join("crm.txt");
        fs::write(
            &commands,
            format!(
                "options check-frequency never\nconfigure load update {}\n",
                crm_txt.display()
            ),
        )
        .unwrap();
        run_tool(
            &CommandLine::new("crm")
                .args(["-F", "-D", "plain", "-f"])
                .arg(&commands)
                .env("CIB_file", &cib)
                .env("HOME", &dir),
        );
        let expected = fs::read_to_string(examples_dir().join(name).join("cib.xml")).unwrap();
        assert_same(
            name,
            "crmsh",
            &normalised(&expected, true),
            &normalised(&fs::read_to_string(&cib).unwrap(), true),
        );
        let _ = fs::remove_dir_all(&dir);
    }
}

/// `pcs.sh` (pcs 0.11, every command on a file CIB) gives the CIB's configuration, nodes
/// aside (pcs takes them from corosync). For the test the script works on an empty file CIB
/// instead of the live one, and creating resources whose agents are not installed here needs
/// `--force`; every other line runs as generated. One example: pcs takes ~0.5 s a command.
#[test]
fn pcs_builds_the_same_configuration() {
    let name = "2-nodes";
    let dir = scratch("pcs");
    let cib = dir.join("cib.xml");
    empty_cib(&cib);
    let script = fs::read_to_string(examples_dir().join(name).join("pcs.sh")).unwrap();
    let mut adapted = String::new();
    for line in script.lines() {
        let line = match line {
            "CIB=$(mktemp)" => format!("CIB='{}'", cib.display()),
            l if l.starts_with("trap ") || l.starts_with("pcs cluster ") => continue,
            l => {
                let mut l = l.to_owned();
                for verb in ["create", "clone", "promotable"] {
                    l = l.replace(
                        &format!("\" resource {verb} "),
                        &format!("\" resource {verb} --force "),
                    );
                    l = l.replace(
                        &format!("\" stonith {verb} "),
                        &format!("\" stonith {verb} --force "),
                    );
                }
                l
            }
        };
        adapted.push_str(&line);
        adapted.push('\n');
    }
    assert!(
        adapted.contains("CIB='"),
        "the script makes its own CIB copy"
    );
    let adapted_path = dir.join("pcs.sh");
    fs::write(&adapted_path, adapted).unwrap();
    // About 30 pcs invocations of half a second each: a generous budget of its own.
    let output = run_tool_within(
        &CommandLine::new("sh").arg(&adapted_path).env("HOME", &dir),
        Duration::from_secs(180),
    );
    // What pcs deprecates today it refuses in a later release. (Its other warnings here come
    // from the agents this machine does not have.)
    assert!(
        !output.stderr_text().contains("Deprecation"),
        "pcs warned about the script:\n{}",
        output.stderr_text()
    );
    let expected = fs::read_to_string(examples_dir().join(name).join("cib.xml")).unwrap();
    assert_same(
        name,
        "pcs",
        &normalised(&expected, false),
        &normalised(&fs::read_to_string(&cib).unwrap(), false),
    );
    let _ = fs::remove_dir_all(&dir);
}
