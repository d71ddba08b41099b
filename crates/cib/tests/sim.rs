//! A harness around Pacemaker's real scheduler: each step runs `crm_simulate` on the previous
//! step's CIB and keeps what it computed: the executed transition (in order), the transition graph
//! (which action waits for which) and the resulting status, all read from Pacemaker's XML output.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clever_cib::pacemaker::{Configuration, Constraint, Expression, Placement, Resource};

use clever_command::{CommandLine, HostCommands, RunCommand};
use clever_deadline::Deadline;
use quick_xml::events::Event;
use quick_xml::Reader;

/// Longest any single Pacemaker tool may run before the test fails.
pub const TOOL_BUDGET: Duration = Duration::from_secs(30);

/// A parsed XML element: enough DOM for Pacemaker's outputs.
#[derive(Debug, Clone, Default)]
pub struct Element {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Every descendant (depth first) named `name`.
    pub fn descendants<'a>(&'a self, name: &str, found: &mut Vec<&'a Element>) {
        for child in &self.children {
            if child.name == name {
                found.push(child);
            }
            child.descendants(name, found);
        }
    }
}

/// Parses a whole document into its root element.
pub fn parse_xml(text: &str) -> Element {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(start) => stack.push(element_from(&start)),
            Event::Empty(start) => {
                let element = element_from(&start);
                stack.last_mut().unwrap().children.push(element);
            }
            Event::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut document = stack.pop().unwrap();
    assert!(stack.is_empty(), "unbalanced XML");
    assert_eq!(document.children.len(), 1, "one root element");
    document.children.pop().unwrap()
}

fn element_from(start: &quick_xml::events::BytesStart<'_>) -> Element {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let attrs = start
        .attributes()
        .map(|a| {
            let a = a.expect("attribute");
            (
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                a.unescape_value().expect("attribute value").into_owned(),
            )
        })
        .collect();
    Element {
        name,
        attrs,
        children: Vec::new(),
    }
}

/// Runs a tool, failing the test loudly when it is missing, times out or fails.
pub fn run_tool(command: &CommandLine) -> clever_command::Output {
    run_tool_within(command, TOOL_BUDGET)
}

/// [`run_tool`] with its own time budget.
pub fn run_tool_within(command: &CommandLine, budget: Duration) -> clever_command::Output {
    let output = HostCommands
        .run(command, &Deadline::after(budget))
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    assert!(
        output.status.success(),
        "{command} failed ({:?}):\n{}\n{}",
        output.code(),
        output.stderr_text(),
        output.stdout_text()
    );
    output
}

/// The installed Pacemaker's CIB feature set, as `cibadmin --empty` gives it.
pub fn feature_set() -> &'static str {
    static FEATURE_SET: OnceLock<String> = OnceLock::new();
    FEATURE_SET.get_or_init(|| {
        let output = run_tool(&CommandLine::new("cibadmin").arg("--empty"));
        let root = parse_xml(&output.stdout_text());
        root.attr("crm_feature_set")
            .expect("cibadmin --empty names crm_feature_set")
            .to_owned()
    })
}

/// The status of a cluster that has formed and probed everything: every node online with the
/// given transient attributes, and a "not running" probe result for every primitive on every
/// node where it may be discovered (what a live cluster records in its first seconds).
pub fn formed_status(
    configuration: &Configuration,
    attributes: &dyn Fn(&str) -> Vec<(String, String)>,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let feature_set = feature_set();
    // Nodes each primitive may be discovered on, from resource-discovery=exclusive locations.
    let mut exclusive: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for constraint in &configuration.constraints {
        if let Constraint::Location(location) = constraint {
            if !location.exclusive {
                continue;
            }
            let Placement::Rule(rule) = &location.placement else {
                panic!("exclusive node locations are not used");
            };
            let primitive = configuration
                .resources
                .iter()
                .find(|r| r.id() == location.rsc)
                .map(|r| match r {
                    Resource::Primitive(p) => p.id.clone(),
                    Resource::Clone(c) => c.child.id.clone(),
                })
                .unwrap();
            let nodes = exclusive.entry(primitive).or_default();
            for expression in &rule.expressions {
                if let Expression::Compare { value, .. } = expression {
                    nodes.push(value.clone());
                }
            }
        }
    }
    let mut text = String::from("<status>");
    for node in &configuration.nodes {
        let (id, name) = (node.id, &node.name);
        let _ = write!(
            text,
            "<node_state id=\"{id}\" uname=\"{name}\" in_ccm=\"true\" crmd=\"online\" \
             join=\"member\" expected=\"member\"><transient_attributes id=\"{id}\">\
             <instance_attributes id=\"status-{id}\">"
        );
        for (attribute, value) in attributes(name) {
            let _ = write!(
                text,
                "<nvpair id=\"status-{id}-{attribute}\" name=\"{attribute}\" value=\"{value}\"/>"
            );
        }
        let _ = write!(
            text,
            "</instance_attributes></transient_attributes><lrm id=\"{id}\"><lrm_resources>"
        );
        for (call, primitive) in configuration.primitives().enumerate() {
            if exclusive
                .get(&primitive.id)
                .is_some_and(|nodes| !nodes.contains(name))
            {
                continue;
            }
            let provider = primitive
                .agent
                .provider()
                .map(|p| format!(" provider=\"{p}\""))
                .unwrap_or_default();
            let key = format!("{}:-1:7:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", call + 1);
            let _ = write!(
                text,
                "<lrm_resource id=\"{rsc}\" class=\"{class}\"{provider} type=\"{kind}\">\
                 <lrm_rsc_op id=\"{rsc}_last_0\" operation_key=\"{rsc}_monitor_0\" \
                 operation=\"monitor\" crm-debug-origin=\"clever-cib-tests\" \
                 crm_feature_set=\"{feature_set}\" transition-key=\"{key}\" \
                 transition-magic=\"0:7;{key}\" exit-reason=\"\" call-id=\"{call}\" \
                 rc-code=\"7\" op-status=\"0\" interval=\"0\" last-rc-change=\"{now}\" \
                 exec-time=\"0\" queue-time=\"0\"/></lrm_resource>",
                rsc = primitive.id,
                class = primitive.agent.class(),
                kind = primitive.agent.kind(),
                call = call + 1,
            );
        }
        text.push_str("</lrm_resources></lrm></node_state>");
    }
    text.push_str("</status>");
    text
}

/// A primitive's id without a clone instance suffix (`drbd_r0:1` → `drbd_r0`).
pub fn base_id(id: &str) -> &str {
    id.split_once(':').map_or(id, |(base, _)| base)
}

/// A resource instance placed on a node, as the status reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Placed {
    pub node: String,
    pub role: String,
}

/// The cluster status: per primitive id, where its instances are active and in which role.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub active: BTreeMap<String, Vec<Placed>>,
    pub online: BTreeSet<String>,
}

impl Status {
    fn from_xml(section: &Element) -> Self {
        let mut status = Status::default();
        if let Some(nodes) = section.child("nodes") {
            for node in nodes.children_named("node") {
                if node.attr("online") == Some("true") {
                    status.online.insert(node.attr("name").unwrap().to_owned());
                }
            }
        }
        let mut resources = Vec::new();
        if let Some(section) = section.child("resources") {
            section.descendants("resource", &mut resources);
        }
        for resource in resources {
            let id = base_id(resource.attr("id").unwrap()).to_owned();
            let role = resource.attr("role").unwrap_or_default().to_owned();
            let entry = status.active.entry(id).or_default();
            for node in resource.children_named("node") {
                entry.push(Placed {
                    node: node.attr("name").unwrap().to_owned(),
                    role: role.clone(),
                });
            }
        }
        status
    }

    /// Nodes where `id` is active in any role.
    pub fn nodes_of(&self, id: &str) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .active
            .get(id)
            .map(|v| v.iter().map(|p| p.node.clone()).collect())
            .unwrap_or_default();
        nodes.sort();
        nodes
    }

    /// Nodes where `id` is active in `role`.
    pub fn nodes_in_role(&self, id: &str, role: &str) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .active
            .get(id)
            .map(|v| {
                v.iter()
                    .filter(|p| p.role == role)
                    .map(|p| p.node.clone())
                    .collect()
            })
            .unwrap_or_default();
        nodes.sort();
        nodes
    }
}

/// One action of the simulated transition, in execution order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executed {
    Resource {
        rsc: String,
        op: String,
        node: String,
    },
    Fence {
        target: String,
    },
    Pseudo,
}

/// An action of the transition graph.
#[derive(Debug, Clone)]
pub struct GraphAction {
    pub rsc: Option<String>,
    pub op: String,
    pub node: Option<String>,
    pub inputs: Vec<String>,
}

/// The transition graph: action id → action with the ids it waits for.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub actions: BTreeMap<String, GraphAction>,
}

impl Graph {
    fn from_xml(root: &Element) -> Self {
        let mut graph = Graph::default();
        for synapse in root.children_named("synapse") {
            let inputs: Vec<String> = synapse
                .child("inputs")
                .map(|inputs| {
                    inputs
                        .children_named("trigger")
                        .flat_map(|t| t.children.iter())
                        .filter_map(|a| a.attr("id").map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let Some(set) = synapse.child("action_set") else {
                continue;
            };
            for action in &set.children {
                let id = action.attr("id").unwrap().to_owned();
                let rsc = action
                    .child("primitive")
                    .and_then(|p| p.attr("id"))
                    .map(|id| base_id(id).to_owned());
                graph.actions.insert(
                    id,
                    GraphAction {
                        rsc,
                        op: action.attr("operation").unwrap_or_default().to_owned(),
                        node: action.attr("on_node").map(str::to_owned),
                        inputs: inputs.clone(),
                    },
                );
            }
        }
        graph
    }

    /// The id of the (non-recurring) action `op` of `rsc` on `node`.
    pub fn find(&self, rsc: &str, op: &str, node: &str) -> Option<&str> {
        self.actions
            .iter()
            .find(|(_, a)| {
                a.rsc.as_deref() == Some(rsc) && a.op == op && a.node.as_deref() == Some(node)
            })
            .map(|(id, _)| id.as_str())
    }

    /// The id of the fencing of `target`.
    pub fn find_fencing(&self, target: &str) -> Option<&str> {
        self.actions
            .iter()
            .find(|(_, a)| a.op == "stonith" && a.node.as_deref() == Some(target))
            .map(|(id, _)| id.as_str())
    }

    /// Whether `later` waits, directly or through other actions, for `earlier`.
    pub fn waits_for(&self, later: &str, earlier: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut todo = vec![later.to_owned()];
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(action) = self.actions.get(&id) {
                for input in &action.inputs {
                    if input == earlier {
                        return true;
                    }
                    todo.push(input.clone());
                }
            }
        }
        false
    }
}

/// What one `crm_simulate` run computed.
#[derive(Debug, Clone)]
pub struct Step {
    pub label: String,
    pub before: Status,
    pub after: Status,
    pub executed: Vec<Executed>,
    pub graph: Graph,
}

impl Step {
    /// Index of the first executed `op` of `rsc` on `node`.
    pub fn position(&self, rsc: &str, op: &str, node: &str) -> Option<usize> {
        self.executed.iter().position(|e| {
            matches!(e, Executed::Resource { rsc: r, op: o, node: n }
                if r == rsc && o == op && n == node)
        })
    }

    pub fn did(&self, rsc: &str, op: &str, node: &str) -> bool {
        self.position(rsc, op, node).is_some()
    }

    /// Asserts that `then` (when it happens) happens after `first`, both in the graph and in
    /// the executed order. Returns whether `then` happened.
    pub fn assert_after(&self, first: (&str, &str, &str), then: (&str, &str, &str)) -> bool {
        let Some(then_at) = self.position(then.0, then.1, then.2) else {
            return false;
        };
        let first_at = self.position(first.0, first.1, first.2).unwrap_or_else(|| {
            panic!(
                "{}: {then:?} ran without {first:?} in the same transition",
                self.label
            )
        });
        assert!(
            first_at < then_at,
            "{}: {then:?} executed before {first:?}",
            self.label
        );
        let (Some(a), Some(b)) = (
            self.graph.find(first.0, first.1, first.2),
            self.graph.find(then.0, then.1, then.2),
        ) else {
            panic!(
                "{}: {first:?} or {then:?} missing from the graph",
                self.label
            );
        };
        assert!(
            self.graph.waits_for(b, a),
            "{}: in the graph {then:?} does not wait for {first:?}",
            self.label
        );
        true
    }

    /// Every node fenced in this transition.
    pub fn fenced(&self) -> Vec<String> {
        self.executed
            .iter()
            .filter_map(|e| match e {
                Executed::Fence { target } => Some(target.clone()),
                _ => None,
            })
            .collect()
    }
}

static LAB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A simulated cluster whose state lives in a series of CIB files.
#[derive(Debug)]
pub struct Lab {
    dir: PathBuf,
    current: PathBuf,
    steps: usize,
    /// Every step so far, for the report when an assertion fails.
    pub history: Vec<Step>,
}

/// An event given to `crm_simulate`.
#[derive(Debug, Clone)]
pub enum Ev<'a> {
    Up(&'a str),
    Fail(&'a str),
    /// `-i rsc_op_interval@node=rc`.
    Inject(String),
    /// `-F rsc_op_interval@node=rc`: the action fails if the transition runs it.
    FailOp(String),
    /// `-t`: the scheduler's "now", this many seconds from the real now.
    Later(u64),
}

/// `secs` since the epoch as ISO 8601 UTC (what `crm_simulate -t` takes).
pub fn iso8601(secs: u64) -> String {
    // Days to civil date: H. Hinnant's algorithm, for dates after 1970.
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Lab {
    /// A lab from a generated CIB whose status is set to `status_xml` (a `<status>` element).
    pub fn new(name: &str, cib_xml: &str, status_xml: &str) -> Self {
        assert!(
            cib_xml.contains("<status/>"),
            "generated CIB has an empty status"
        );
        // What the DC adds on a live cluster: quorum and its feature set (without which the
        // scheduler reads fail counts the pre-1.1.17 way and never sees them).
        let cib = cib_xml.replace("<status/>", status_xml).replacen(
            "num_updates=\"0\"",
            &format!(
                "num_updates=\"0\" have-quorum=\"1\" crm_feature_set=\"{}\"",
                feature_set()
            ),
            1,
        );
        Self::from_cib(name, &cib)
    }

    /// A lab continuing from a complete CIB (configuration and status).
    pub fn from_cib(name: &str, cib: &str) -> Self {
        let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "clever-cib-tests-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let current = dir.join("step-00.xml");
        fs::write(&current, cib).unwrap();
        Lab {
            dir,
            current,
            steps: 0,
            history: Vec::new(),
        }
    }

    /// The current CIB text.
    pub fn cib(&self) -> String {
        fs::read_to_string(&self.current).unwrap()
    }

    pub fn current(&self) -> &Path {
        &self.current
    }

    /// Runs one transition with `events` and returns what Pacemaker computed.
    pub fn simulate(&mut self, label: &str, events: &[Ev<'_>]) -> Step {
        self.steps += 1;
        let next = self.dir.join(format!("step-{:02}.xml", self.steps));
        let graph_file = self.dir.join(format!("graph-{:02}.xml", self.steps));
        let mut command = CommandLine::new("crm_simulate")
            .arg("--simulate")
            .arg("--output-as=xml")
            .arg("-x")
            .arg(&self.current)
            .arg("-O")
            .arg(&next)
            .arg("-G")
            .arg(&graph_file);
        for event in events {
            command = match event {
                Ev::Up(node) => command.arg("-u").arg(node),
                Ev::Fail(node) => command.arg("-f").arg(node),
                Ev::Inject(spec) => command.arg("-i").arg(spec),
                Ev::FailOp(spec) => command.arg("-F").arg(spec),
                Ev::Later(seconds) => {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                    command.arg("-t").arg(iso8601(now.as_secs() + seconds))
                }
            };
        }
        let output = run_tool(&command);
        let root = parse_xml(&output.stdout_text());
        let status = root.child("status").and_then(|s| s.attr("code"));
        assert_eq!(status, Some("0"), "{label}: crm_simulate status");
        let before = Status::from_xml(root.child("cluster_status").expect("cluster_status"));
        let after = Status::from_xml(
            root.child("revised_cluster_status")
                .expect("revised_cluster_status"),
        );
        let executed = root
            .child("transition")
            .map(|t| {
                t.children
                    .iter()
                    .map(|a| match a.name.as_str() {
                        "rsc_action" => Executed::Resource {
                            rsc: base_id(a.attr("resource").unwrap()).to_owned(),
                            op: a.attr("op").unwrap().to_owned(),
                            node: a.attr("node").unwrap_or_default().to_owned(),
                        },
                        "fencing_action" => Executed::Fence {
                            target: a.attr("target").unwrap().to_owned(),
                        },
                        _ => Executed::Pseudo,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let graph = Graph::from_xml(&parse_xml(&fs::read_to_string(&graph_file).unwrap()));
        self.current = next;
        let step = Step {
            label: label.to_owned(),
            before,
            after,
            executed,
            graph,
        };
        self.history.push(step.clone());
        step
    }

    /// Sets (`Some`) or deletes (`None`) a transient node attribute, as gwping or the DRBD agent
    /// would, with `crm_attribute` on the current CIB file.
    pub fn node_attribute(&self, node: &str, name: &str, value: Option<&str>) {
        let mut command = CommandLine::new("crm_attribute")
            .env("CIB_file", &self.current)
            .args(["-N", node, "-n", name, "-l", "reboot"]);
        command = match value {
            Some(value) => command.args(["-v", value]),
            None => command.arg("-D"),
        };
        run_tool(&command);
    }

    /// Runs `crm_resource` with `args` on the current CIB file (move, ban, clear).
    pub fn crm_resource(&self, args: &[&str]) {
        run_tool(
            &CommandLine::new("crm_resource")
                .env("CIB_file", &self.current)
                .args(args),
        );
    }

    /// Removes the lab's files (call at the end of a passing scenario) unless `KEEP_LABS=1`.
    pub fn finish(self) {
        if std::env::var_os("KEEP_LABS").is_none_or(|v| v != "1") {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    /// A readable account of every step, for assertion messages.
    pub fn report(&self) -> String {
        let mut text = format!("lab files in {}\n", self.dir.display());
        for step in &self.history {
            let _ = writeln!(text, "{}: {:?}", step.label, step.after.active);
        }
        text
    }
}
