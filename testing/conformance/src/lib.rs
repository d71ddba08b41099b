//! The conformance harness: what an OCF agent must do, checked on a real backend.
//!
//! resource-agents' `ocf-tester` covers the basics. Pacemaker relies on more than it checks: a
//! probe on a node that never had the resource must say "not running", not fail; every failure
//! needs an exit reason for `crm_mon`; and an agent must answer within the operation timeout even
//! when its backend hangs, or Pacemaker escalates to fencing. [`check_agent`] runs all of these
//! and reports each rule separately, so a regression names the rule it broke.

pub mod bench;
pub mod executable;
pub mod hostile;
pub mod namespace;
pub mod workspace_build;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clever_command::{CommandError, CommandLine, HostCommands, Output, RunCommand};
use clever_deadline::Deadline;
use quick_xml::events::Event;

/// The grammar `ocf-tester` validates against.
pub const RA_API_DTD: &str = "/usr/share/resource-agents/ra-api-1.dtd";
/// The OCF 1.1 RelaxNG grammar shipped by resource-agents (OCF 1.1 roles, `select` content).
pub const OCF_1_1_RNG: &str = "/usr/share/resource-agents/metadata.rng";
/// resource-agents' own tester.
pub const OCF_TESTER: &str = "/usr/sbin/ocf-tester";

/// Budget for one ordinary agent action in the harness; a conformant agent needs far less.
const ACTION_BUDGET: Duration = Duration::from_secs(30);
/// The operation timeout given to actions in the hang check.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(2);
/// How long past the hang timeout we wait before calling it a violation and killing the agent.
const HANG_GRACE: Duration = Duration::from_secs(2);

/// The rules, each checked and reported on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// `meta-data` exits 0 with an empty environment and validates against `ra-api-1.dtd`.
    MetadataDtd,
    /// The same document validates against the OCF 1.1 grammar.
    MetadataOcf11,
    /// No action: usage on stderr and exit 2.
    NoActionIs2,
    /// An unknown action exits 3.
    UnknownActionIs3,
    /// `validate-all` with the given parameters exits 0.
    ValidateAllAccepts,
    /// `validate-all` without each required parameter exits 6.
    MissingRequiredIs6,
    /// `stop` on a resource never started exits 0.
    StopNeverStartedIs0,
    /// `monitor` on a stopped resource exits 7.
    MonitorStoppedIs7,
    /// A probe of a resource that is not there exits 7, never an error.
    ProbeStoppedIs7,
    /// `start` twice exits 0 both times, and monitor then says running.
    StartTwiceIs0,
    /// `stop` twice exits 0 both times, and monitor then says stopped.
    StopTwiceIs0,
    /// Every exit other than 0, 7 and 8 carries an `ocf-exit-reason:` line.
    ExitReasonOnFailure,
    /// With `OCF_RESKEY_CRM_meta_timeout=T` and a hanging backend, each action returns within T.
    ReturnsWithinTimeout,
    /// resource-agents' `ocf-tester` passes.
    OcfTester,
}

impl Rule {
    pub const ALL: [Rule; 14] = [
        Self::MetadataDtd,
        Self::MetadataOcf11,
        Self::NoActionIs2,
        Self::UnknownActionIs3,
        Self::ValidateAllAccepts,
        Self::MissingRequiredIs6,
        Self::StopNeverStartedIs0,
        Self::MonitorStoppedIs7,
        Self::ProbeStoppedIs7,
        Self::StartTwiceIs0,
        Self::StopTwiceIs0,
        Self::ExitReasonOnFailure,
        Self::ReturnsWithinTimeout,
        Self::OcfTester,
    ];
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An agent and the backend it runs against.
#[derive(Debug, Clone)]
pub struct AgentUnderTest {
    pub path: PathBuf,
    pub instance: String,
    /// `OCF_RESKEY_<name>` values that make a working resource on this backend.
    pub parameters: BTreeMap<String, String>,
    /// Parameter overrides that make the backend hang (a stuck device, a dead daemon).
    pub hanging: BTreeMap<String, String>,
    /// Extra environment for every run (the demo agent's fault switch, a libvirt socket).
    pub environment: BTreeMap<String, String>,
    /// Whether to run resource-agents' `ocf-tester` as well.
    pub run_ocf_tester: bool,
}

/// One broken rule, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

/// What the harness found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checked: Vec<Rule>,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn broke(&self, rule: Rule) -> bool {
        self.violations.iter().any(|v| v.rule == rule)
    }

    fn violation(&mut self, rule: Rule, detail: impl Into<String>) {
        self.violations.push(Violation {
            rule,
            detail: detail.into(),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for rule in &self.checked {
            let broken: Vec<_> = self.violations.iter().filter(|v| v.rule == *rule).collect();
            if broken.is_empty() {
                writeln!(f, "ok    {rule}")?;
            }
            for violation in broken {
                writeln!(f, "FAIL  {violation}")?;
            }
        }
        Ok(())
    }
}

/// The harness could not run at all (as opposed to the agent breaking a rule).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what} is missing: {hint}")]
    Prerequisite { what: String, hint: &'static str },
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// One finished agent run.
#[derive(Debug, Clone)]
struct Answer {
    /// `None` when a signal ended the agent or the harness killed it.
    code: Option<i32>,
    /// The harness killed the agent after its budget.
    killed: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Answer {
    fn from_output(output: Output, took: Duration) -> Self {
        Self {
            code: output.code(),
            killed: false,
            stdout: output.stdout_text(),
            stderr: output.stderr_text(),
            took,
        }
    }

    fn has_reason(&self) -> bool {
        self.stderr.lines().any(|l| {
            l.starts_with(clever_ocf::EXIT_REASON_PREFIX)
                && l.len() > clever_ocf::EXIT_REASON_PREFIX.len()
        })
    }

    fn killed_after(budget: Duration) -> Self {
        Self {
            code: None,
            killed: true,
            stdout: String::new(),
            stderr: String::new(),
            took: budget,
        }
    }

    fn describe(&self) -> String {
        if self.killed {
            return format!("still running after {:?}, killed", self.took);
        }
        let code = self.code.map_or("a signal".to_owned(), |c| c.to_string());
        let stderr = self.stderr.trim();
        if stderr.is_empty() {
            format!("exit {code}")
        } else {
            format!("exit {code}, stderr: {}", stderr.replace('\n', " | "))
        }
    }
}

/// Checks that the machine has what the harness needs; a missing piece fails loudly.
pub fn check_prerequisites(run_ocf_tester: bool) -> Result<(), HarnessError> {
    let mut needed = vec![
        (RA_API_DTD, "install resource-agents (make setup)"),
        (OCF_1_1_RNG, "install resource-agents (make setup)"),
        ("/usr/bin/xmllint", "install libxml2-utils (make setup)"),
    ];
    if run_ocf_tester {
        needed.push((OCF_TESTER, "install resource-agents (make setup)"));
    }
    for (path, hint) in needed {
        if !Path::new(path).exists() {
            return Err(HarnessError::Prerequisite {
                what: path.to_owned(),
                hint,
            });
        }
    }
    Ok(())
}

struct Runner<'a> {
    agent: &'a AgentUnderTest,
    answers: Vec<(String, Answer)>,
}

impl Runner<'_> {
    /// Runs `action` with the agent's parameters, minus `without`, plus `overrides` and `meta`.
    fn run(
        &mut self,
        action: Option<&str>,
        without: Option<&str>,
        overrides: &BTreeMap<String, String>,
        meta: &[(&str, String)],
        budget: Duration,
    ) -> Result<Answer, CommandError> {
        let mut command = CommandLine::new(&self.agent.path);
        if let Some(action) = action {
            command = command.arg(action);
        }
        command = command.env("OCF_RESOURCE_INSTANCE", &self.agent.instance);
        command = command.env("OCF_ROOT", "/usr/lib/ocf");
        command = command.env("HA_LOGFACILITY", "none");
        for (key, value) in &self.agent.environment {
            command = command.env(key, value);
        }
        let mut parameters = self.agent.parameters.clone();
        parameters.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (name, value) in &parameters {
            if Some(name.as_str()) != without {
                command = command.env(format!("OCF_RESKEY_{name}"), value);
            }
        }
        for (name, value) in meta {
            command = command.env(format!("OCF_RESKEY_CRM_meta_{name}"), value);
        }
        let started = Instant::now();
        // An agent that hangs breaks a rule; it must not stop the harness.
        let answer = match HostCommands.run(&command, &Deadline::after(budget)) {
            Ok(output) => Answer::from_output(output, started.elapsed()),
            Err(CommandError::TimedOut { .. }) => Answer::killed_after(started.elapsed()),
            Err(e) => return Err(e),
        };
        let label = match (action, without) {
            (Some(a), Some(w)) => format!("{a} without {w}"),
            (Some(a), None) => a.to_owned(),
            (None, _) => "(no action)".to_owned(),
        };
        self.answers.push((label, answer.clone()));
        Ok(answer)
    }

    fn action(&mut self, action: &str, meta: &[(&str, String)]) -> Result<Answer, CommandError> {
        self.run(Some(action), None, &BTreeMap::new(), meta, ACTION_BUDGET)
    }
}

fn monitor_meta() -> Vec<(&'static str, String)> {
    vec![
        ("interval", "10000".to_owned()),
        ("timeout", "20000".to_owned()),
    ]
}

fn probe_meta() -> Vec<(&'static str, String)> {
    vec![
        ("interval", "0".to_owned()),
        ("timeout", "20000".to_owned()),
    ]
}

/// Runs every rule against `agent`. `Err` only when the harness itself cannot work.
pub fn check_agent(agent: &AgentUnderTest) -> Result<Report, HarnessError> {
    check_prerequisites(agent.run_ocf_tester)?;
    let mut report = Report::default();
    let mut runner = Runner {
        agent,
        answers: Vec::new(),
    };

    check_metadata(&mut runner, &mut report)?;
    check_dispatch(&mut runner, &mut report)?;
    check_lifecycle(&mut runner, &mut report)?;
    check_timeouts(&mut runner, &mut report)?;

    report.checked.push(Rule::ExitReasonOnFailure);
    for (label, answer) in &runner.answers {
        let quiet_ok = answer.killed || matches!(answer.code, Some(0 | 7 | 8));
        let framework_only = label == "meta-data" || label == "(no action)";
        if !quiet_ok && !framework_only && !answer.has_reason() {
            report.violation(
                Rule::ExitReasonOnFailure,
                format!(
                    "{label}: {} without an ocf-exit-reason line",
                    answer.describe()
                ),
            );
        }
    }

    if agent.run_ocf_tester {
        report.checked.push(Rule::OcfTester);
        let mut command = CommandLine::new(OCF_TESTER).arg("-n").arg(&agent.instance);
        for (name, value) in &agent.parameters {
            command = command.arg("-o").arg(format!("{name}={value}"));
        }
        command = command.arg(&agent.path).env("HA_LOGFACILITY", "none");
        for (key, value) in &agent.environment {
            command = command.env(key, value);
        }
        // ocf-tester has no timeout of its own and hangs on some agents: bound it.
        match HostCommands.run(&command, &Deadline::after(Duration::from_secs(300))) {
            Ok(output) if output.status.success() => {}
            Ok(output) => report.violation(
                Rule::OcfTester,
                format!(
                    "ocf-tester failed: {}",
                    output.stdout_text().trim().replace('\n', " | ")
                ),
            ),
            Err(e) => report.violation(Rule::OcfTester, e.to_string()),
        }
    }
    Ok(report)
}

fn check_metadata(runner: &mut Runner<'_>, report: &mut Report) -> Result<(), HarnessError> {
    report
        .checked
        .extend([Rule::MetadataDtd, Rule::MetadataOcf11]);
    // meta-data must work with nothing but the action: no parameters, no cluster variables.
    let command = CommandLine::new(&runner.agent.path).arg("meta-data");
    let bare = clear_environment(command, &runner.agent.environment);
    let started = Instant::now();
    let output = HostCommands.run(&bare, &Deadline::after(ACTION_BUDGET))?;
    let answer = Answer::from_output(output, started.elapsed());
    runner
        .answers
        .push(("meta-data".to_owned(), answer.clone()));
    if answer.code != Some(0) {
        let detail = format!("meta-data: {}", answer.describe());
        report.violation(Rule::MetadataDtd, detail.clone());
        report.violation(Rule::MetadataOcf11, detail);
        return Ok(());
    }
    for (rule, flag, grammar) in [
        (Rule::MetadataDtd, "--dtdvalid", RA_API_DTD),
        (Rule::MetadataOcf11, "--relaxng", OCF_1_1_RNG),
    ] {
        if let Err(problem) = validate(&answer.stdout, flag, grammar)? {
            report.violation(rule, problem);
        }
    }
    Ok(())
}

/// `env -i`-like: only PATH and the caller's extra variables survive.
fn clear_environment(command: CommandLine, extra: &BTreeMap<String, String>) -> CommandLine {
    // CommandLine adds to the inherited environment; run through env(1) with -i to clear it.
    let mut bare = CommandLine::new("/usr/bin/env")
        .arg("-i")
        .arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
    for (key, value) in extra {
        bare = bare.arg(format!("{key}={value}"));
    }
    bare.arg(command.program()).args(command.arguments())
}

/// Validates `xml` with xmllint; the outer error is the harness failing, the inner the document.
pub fn validate(xml: &str, flag: &str, grammar: &str) -> Result<Result<(), String>, HarnessError> {
    let dir = std::env::temp_dir().join(format!("ocf-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| HarnessError::Prerequisite {
        what: format!("a temporary directory ({e})"),
        hint: "check /tmp",
    })?;
    let file = dir.join(format!("metadata-{}.xml", unique_suffix()));
    std::fs::write(&file, xml).map_err(|e| HarnessError::Prerequisite {
        what: format!("a writable temporary file ({e})"),
        hint: "check /tmp",
    })?;
    let command = CommandLine::new("xmllint")
        .arg("--noout")
        .arg(flag)
        .arg(grammar)
        .arg(&file);
    let output = HostCommands.run(&command, &Deadline::after(ACTION_BUDGET));
    let _ = std::fs::remove_file(&file);
    let output = output?;
    Ok(if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "not valid against {grammar}: {}",
            output.stderr_text().trim().replace('\n', " | ")
        ))
    })
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The names of the parameters the metadata marks `required="1"`.
pub fn required_parameters(metadata: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(metadata);
    let mut required = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(element) | Event::Empty(element))
                if element.name().as_ref() == b"parameter" =>
            {
                let attribute = |name: &[u8]| {
                    element
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == name)
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                };
                if attribute(b"required").as_deref() == Some("1") {
                    if let Some(name) = attribute(b"name") {
                        required.push(name);
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    required
}

fn check_dispatch(runner: &mut Runner<'_>, report: &mut Report) -> Result<(), HarnessError> {
    report.checked.push(Rule::NoActionIs2);
    let answer = runner.run(None, None, &BTreeMap::new(), &[], ACTION_BUDGET)?;
    if answer.code != Some(2) {
        report.violation(Rule::NoActionIs2, answer.describe());
    }

    report.checked.push(Rule::UnknownActionIs3);
    let answer = runner.action("no-such-action", &[])?;
    if answer.code != Some(3) {
        report.violation(Rule::UnknownActionIs3, answer.describe());
    }

    report.checked.push(Rule::ValidateAllAccepts);
    let answer = runner.action("validate-all", &[])?;
    if answer.code != Some(0) {
        report.violation(Rule::ValidateAllAccepts, answer.describe());
    }

    report.checked.push(Rule::MissingRequiredIs6);
    let metadata = runner
        .answers
        .iter()
        .find(|(label, _)| label == "meta-data")
        .map(|(_, a)| a.stdout.clone())
        .unwrap_or_default();
    for name in required_parameters(&metadata) {
        let answer = runner.run(
            Some("validate-all"),
            Some(&name),
            &BTreeMap::new(),
            &[],
            ACTION_BUDGET,
        )?;
        if answer.code != Some(6) {
            report.violation(
                Rule::MissingRequiredIs6,
                format!("without {name}: {}", answer.describe()),
            );
        }
    }
    Ok(())
}

fn check_lifecycle(runner: &mut Runner<'_>, report: &mut Report) -> Result<(), HarnessError> {
    // Make sure we begin stopped; a failure here shows up in the rules below.
    runner.action("stop", &[])?;

    report.checked.push(Rule::StopNeverStartedIs0);
    let answer = runner.action("stop", &[])?;
    if answer.code != Some(0) {
        report.violation(Rule::StopNeverStartedIs0, answer.describe());
    }

    report.checked.push(Rule::MonitorStoppedIs7);
    let answer = runner.action("monitor", &monitor_meta())?;
    if answer.code != Some(7) {
        report.violation(Rule::MonitorStoppedIs7, answer.describe());
    }

    report.checked.push(Rule::ProbeStoppedIs7);
    let answer = runner.action("monitor", &probe_meta())?;
    if answer.code != Some(7) {
        report.violation(Rule::ProbeStoppedIs7, answer.describe());
    }

    report.checked.push(Rule::StartTwiceIs0);
    for attempt in ["first", "second"] {
        let answer = runner.action("start", &[])?;
        if answer.code != Some(0) {
            report.violation(
                Rule::StartTwiceIs0,
                format!("{attempt} start: {}", answer.describe()),
            );
        }
    }
    let answer = runner.action("monitor", &monitor_meta())?;
    if answer.code != Some(0) {
        report.violation(
            Rule::StartTwiceIs0,
            format!("monitor after start: {}", answer.describe()),
        );
    }

    report.checked.push(Rule::StopTwiceIs0);
    for attempt in ["first", "second"] {
        let answer = runner.action("stop", &[])?;
        if answer.code != Some(0) {
            report.violation(
                Rule::StopTwiceIs0,
                format!("{attempt} stop: {}", answer.describe()),
            );
        }
    }
    let answer = runner.action("monitor", &monitor_meta())?;
    if answer.code != Some(7) {
        report.violation(
            Rule::StopTwiceIs0,
            format!("monitor after stop: {}", answer.describe()),
        );
    }
    Ok(())
}

fn check_timeouts(runner: &mut Runner<'_>, report: &mut Report) -> Result<(), HarnessError> {
    report.checked.push(Rule::ReturnsWithinTimeout);
    let hanging = runner.agent.hanging.clone();
    let timeout = HANG_TIMEOUT.as_millis().to_string();
    for (action, interval) in [("start", "0"), ("monitor", "10000"), ("stop", "0")] {
        let meta = [
            ("timeout", timeout.clone()),
            ("interval", interval.to_owned()),
        ];
        let answer = runner.run(
            Some(action),
            None,
            &hanging,
            &meta,
            HANG_TIMEOUT + HANG_GRACE,
        )?;
        if answer.killed || answer.took > HANG_TIMEOUT {
            report.violation(
                Rule::ReturnsWithinTimeout,
                format!(
                    "{action} with a {HANG_TIMEOUT:?} timeout: {}",
                    answer.describe()
                ),
            );
        }
    }
    // Leave the backend as we found it: stopped, with the working parameters.
    runner.action("stop", &[])?;
    Ok(())
}
