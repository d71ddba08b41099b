//! The framework seen from an agent: dispatch, parameters, exit codes and metadata.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::process::Command;

use clever_ocf::{
    choice, man_page, metadata_xml, run_with, AbsolutePath, Action, ActionSpec, Agent, Context,
    Declaration, HasExitCode, Invocation, OcfExitCode, Parameter, ParameterError, Parameters, Role,
    Status,
};

choice! {
    enum Flavour { Plain = "plain", Fancy = "fancy" }
}

static PATH: Parameter<AbsolutePath> = Parameter::new(
    "path",
    "Where it lives",
    "Absolute path of the sample's state.",
)
.required()
.unique();
static FLAVOUR: Parameter<Flavour> = Parameter::new(
    "flavour",
    "How it behaves",
    "Which behaviour the sample shows.",
)
.default("plain");
static OUTCOME: Parameter<String> = Parameter::new(
    "outcome",
    "What the handler answers",
    "ok, degraded, missing-tool or broken: lets the tests drive the handler.",
)
.default("ok");

#[derive(Debug, thiserror::Error)]
enum SampleError {
    #[error("sample tool /usr/bin/sample is not installed")]
    MissingTool,
    #[error("sample state at {0} is broken")]
    Broken(String),
}

impl HasExitCode for SampleError {
    fn exit_code(&self) -> OcfExitCode {
        match self {
            Self::MissingTool => OcfExitCode::ErrInstalled,
            Self::Broken(_) => OcfExitCode::ErrGeneric,
        }
    }
}

/// The sample's host: a label naming the run it was built for.
#[derive(Debug)]
struct SampleHost(String);

#[derive(Debug)]
struct Sample {
    path: AbsolutePath,
    outcome: String,
}

impl Agent for Sample {
    type Error = SampleError;
    /// What the framework built for this run: the handlers echo it to prove they get that one.
    type Host = SampleHost;

    fn configure(parameters: &Parameters) -> Result<Self, ParameterError> {
        let _ = FLAVOUR.get(parameters)?;
        Ok(Self {
            path: PATH.get(parameters)?,
            outcome: OUTCOME.get(parameters)?,
        })
    }

    fn check_host(&self, _context: &Context) -> Result<(), SampleError> {
        match self.outcome.as_str() {
            "missing-tool" => Err(SampleError::MissingTool),
            _ => Ok(()),
        }
    }

    fn host(&self, context: &Context) -> SampleHost {
        SampleHost(format!(
            "host of {} for {}",
            context.instance, context.action
        ))
    }
}

fn answer(sample: &Sample, context: &Context, host: &SampleHost) -> Result<Status, SampleError> {
    match sample.outcome.as_str() {
        "host" => Ok(Status::Degraded(host.0.clone())),
        "degraded" => Ok(Status::Degraded("peer unreachable".into())),
        "broken" => Err(SampleError::Broken(sample.path.to_string())),
        "timeout" => Ok(Status::Degraded(format!(
            "budget {:?}",
            context.deadline.timeout()
        ))),
        _ => Ok(Status::Success),
    }
}

fn not_running(_: &Sample, _: &Context, _: &SampleHost) -> Result<Status, SampleError> {
    Ok(Status::NotRunning)
}

static SAMPLE: Declaration<Sample> = Declaration {
    name: "sample",
    version: "1.0.0",
    shortdesc: "A sample agent",
    longdesc: "Exercises the framework in tests.",
    parameters: &[&PATH, &FLAVOUR, &OUTCOME],
    actions: &[
        ActionSpec::new(Action::Start, 20, answer),
        ActionSpec::new(Action::Stop, 20, answer),
        ActionSpec::new(Action::Monitor, 20, answer)
            .interval(10)
            .depth(0),
        ActionSpec::new(Action::Monitor, 20, answer)
            .interval(11)
            .role(Role::Promoted),
        ActionSpec::new(Action::Promote, 20, answer),
        ActionSpec::new(Action::Demote, 20, answer),
        ActionSpec::new(Action::ValidateAll, 5, answer),
    ],
};

struct Run {
    code: OcfExitCode,
    out: String,
    err: String,
}

fn invoke(args: &[&str], vars: &[(&str, &str)]) -> Run {
    let invocation = Invocation::new(args.iter().copied(), vars.iter().copied());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(&SAMPLE, &invocation, &mut out, &mut err);
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

const CONFIGURED: (&str, &str) = ("OCF_RESKEY_path", "/var/lib/sample");

fn exit_reasons(err: &str) -> Vec<&str> {
    err.lines()
        .filter_map(|l| l.strip_prefix("ocf-exit-reason:"))
        .collect()
}

#[test]
fn declaration_has_no_problems() {
    assert_eq!(SAMPLE.problems(), Vec::<String>::new());
}

#[test]
fn bad_declarations_are_reported() {
    static REQUIRED_WITH_DEFAULT: Parameter<String> =
        Parameter::new("x", "x", "x").required().default("1");
    static BAD_DEFAULT: Parameter<u32> = Parameter::new("y", "y", "y").default("many");
    static BAD: Declaration<Sample> = Declaration {
        name: "Bad Name",
        version: "1",
        shortdesc: "bad",
        longdesc: "bad",
        parameters: &[&REQUIRED_WITH_DEFAULT, &BAD_DEFAULT, &BAD_DEFAULT],
        actions: &[
            ActionSpec::new(Action::Start, 0, answer),
            ActionSpec::new(Action::Stop, 20, answer).interval(5),
            ActionSpec::new(Action::Promote, 20, answer),
            ActionSpec::new(Action::Monitor, 20, answer).interval(10),
            ActionSpec::new(Action::Monitor, 20, not_running)
                .interval(10)
                .depth(10),
        ],
    };
    let problems = BAD.problems().join("\n");
    for expected in [
        "agent name",
        "required parameter x has a default",
        "default of y",
        "parameter y is declared twice",
        "mandatory action validate-all",
        "start has a zero timeout",
        "only monitor may recur",
        "promote and demote",
        "monitor has different handlers",
        "distinct intervals",
    ] {
        assert!(
            problems.contains(expected),
            "missing {expected:?} in:\n{problems}"
        );
    }
}

#[test]
fn no_action_prints_usage_and_exits_2() {
    let run = invoke(&[], &[]);
    assert_eq!(run.code, OcfExitCode::ErrArgs);
    assert!(
        run.err
            .contains("usage: sample {start|stop|monitor|promote|demote|validate-all|meta-data}"),
        "{}",
        run.err
    );
}

#[test]
fn unknown_and_undeclared_actions_exit_3_with_a_reason() {
    for action in ["frobnicate", "notify", "migrate_to", "", "START"] {
        let run = invoke(&[action], &[CONFIGURED]);
        assert_eq!(run.code, OcfExitCode::ErrUnimplemented, "{action}");
        assert_eq!(exit_reasons(&run.err).len(), 1, "{action}: {}", run.err);
    }
}

#[test]
fn help_comes_from_the_declaration() {
    let run = invoke(&["help"], &[]);
    assert_eq!(run.code, OcfExitCode::Success);
    for needle in [
        "path",
        "required",
        "one of plain|fancy",
        "monitor",
        "every 10s",
    ] {
        assert!(run.out.contains(needle), "{needle} not in {}", run.out);
    }
}

#[test]
fn missing_or_invalid_parameters_exit_6_with_a_reason() {
    let run = invoke(&["start"], &[]);
    assert_eq!(run.code, OcfExitCode::ErrConfigured);
    assert_eq!(
        exit_reasons(&run.err),
        ["required parameter path is not set"]
    );

    let run = invoke(
        &["validate-all"],
        &[CONFIGURED, ("OCF_RESKEY_flavour", "sour")],
    );
    assert_eq!(run.code, OcfExitCode::ErrConfigured);
    assert!(exit_reasons(&run.err)[0].contains("flavour"), "{}", run.err);

    let run = invoke(
        &["monitor"],
        &[CONFIGURED, ("OCF_RESKEY_CRM_meta_timeout", "soon")],
    );
    assert_eq!(run.code, OcfExitCode::ErrConfigured);
}

#[test]
fn handler_outcomes_become_exit_codes() {
    let run = invoke(&["start"], &[CONFIGURED]);
    assert_eq!((run.code, run.err.as_str()), (OcfExitCode::Success, ""));

    let run = invoke(
        &["monitor"],
        &[CONFIGURED, ("OCF_RESKEY_outcome", "degraded")],
    );
    assert_eq!(run.code, OcfExitCode::Degraded);
    assert_eq!(exit_reasons(&run.err), ["peer unreachable"]);

    let run = invoke(&["stop"], &[CONFIGURED, ("OCF_RESKEY_outcome", "broken")]);
    assert_eq!(run.code, OcfExitCode::ErrGeneric);
    assert_eq!(
        exit_reasons(&run.err),
        ["sample state at /var/lib/sample is broken"]
    );
}

/// The handler gets the host the agent built for this very run, after the checks.
#[test]
fn the_handler_gets_the_host_built_for_its_run() {
    let run = invoke(
        &["start"],
        &[
            CONFIGURED,
            ("OCF_RESKEY_outcome", "host"),
            ("OCF_RESOURCE_INSTANCE", "db"),
        ],
    );
    assert_eq!(run.code, OcfExitCode::Degraded);
    assert_eq!(exit_reasons(&run.err), ["host of db for start"]);
}

#[test]
fn missing_software_is_5_but_not_running_for_a_probe() {
    let missing = ("OCF_RESKEY_outcome", "missing-tool");
    let run = invoke(&["start"], &[CONFIGURED, missing]);
    assert_eq!(run.code, OcfExitCode::ErrInstalled);
    assert_eq!(exit_reasons(&run.err).len(), 1);

    let probe = ("OCF_RESKEY_CRM_meta_interval", "0");
    let run = invoke(&["monitor"], &[CONFIGURED, missing, probe]);
    assert_eq!(run.code, OcfExitCode::NotRunning);

    // A recurring monitor is no probe: the software vanished under a running resource.
    let recurring = ("OCF_RESKEY_CRM_meta_interval", "10000");
    let run = invoke(&["monitor"], &[CONFIGURED, missing, recurring]);
    assert_eq!(run.code, OcfExitCode::ErrInstalled);
}

#[test]
fn the_operation_timeout_sets_the_budget() {
    let timeout = ("OCF_RESKEY_CRM_meta_timeout", "30000");
    let run = invoke(
        &["start"],
        &[CONFIGURED, timeout, ("OCF_RESKEY_outcome", "timeout")],
    );
    assert_eq!(exit_reasons(&run.err), ["budget 30s"]);
    // Without one (a run by hand) the declared default applies.
    let run = invoke(
        &["validate-all"],
        &[CONFIGURED, ("OCF_RESKEY_outcome", "timeout")],
    );
    assert_eq!(exit_reasons(&run.err), ["budget 5s"]);
}

#[test]
fn exit_reasons_are_one_line() {
    let run = invoke(&["start"], &[("OCF_RESKEY_path", "not\nabsolute")]);
    assert_eq!(run.code, OcfExitCode::ErrConfigured);
    let reasons = exit_reasons(&run.err);
    assert_eq!(reasons.len(), 1, "{}", run.err);
    assert!(reasons[0].contains("must be an absolute path"));
}

#[test]
fn meta_data_needs_no_environment() {
    let run = invoke(&["meta-data"], &[]);
    assert_eq!(run.code, OcfExitCode::Success);
    assert_eq!(run.out, metadata_xml(&SAMPLE).unwrap());
    assert!(
        run.out
            .contains(r#"<parameter name="path" required="1" unique="1">"#),
        "{}",
        run.out
    );
    assert!(run
        .out
        .contains(r#"<content type="string" default="plain"/>"#));
    assert!(run.out.contains("Allowed values: plain, fancy."));
    assert!(run
        .out
        .contains(r#"<action name="monitor" timeout="20s" interval="11s" role="Promoted"/>"#));
    assert!(run
        .out
        .contains(r#"<action name="meta-data" timeout="5s"/>"#));
}

/// Validates with xmllint against the grammar files the resource-agents package installs. A
/// missing xmllint or grammar is a failure: set-up installs both.
fn xmllint(xml: &str, schema_flag: &str, schema: &str) -> Result<(), String> {
    use std::io::Write;
    assert!(
        std::path::Path::new(schema).exists(),
        "{schema} is missing: install resource-agents (make setup)"
    );
    let mut child = Command::new("xmllint")
        .args(["--noout", schema_flag, schema, "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("xmllint is missing: install libxml2-utils (make setup)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn metadata_is_valid_against_both_grammars() {
    let xml = metadata_xml(&SAMPLE).unwrap();
    xmllint(
        &xml,
        "--dtdvalid",
        "/usr/share/resource-agents/ra-api-1.dtd",
    )
    .unwrap();
    xmllint(&xml, "--relaxng", "/usr/share/resource-agents/metadata.rng").unwrap();
}

#[test]
fn grammar_check_catches_a_broken_document() {
    // The check above must be able to fail: a metadata without actions is invalid in both.
    let broken = metadata_xml(&SAMPLE).unwrap().replace(
        r#"<action name="start" timeout="20s"/>"#,
        r#"<action name="start"/>"#,
    );
    assert!(xmllint(
        &broken,
        "--dtdvalid",
        "/usr/share/resource-agents/ra-api-1.dtd"
    )
    .is_err());
    assert!(xmllint(
        &broken,
        "--relaxng",
        "/usr/share/resource-agents/metadata.rng"
    )
    .is_err());
}

#[test]
fn man_page_renders_with_every_parameter_and_action() {
    use std::io::Write;
    let page = man_page(&SAMPLE);
    let path = std::env::temp_dir().join(format!("ocf_clever_sample-{}.7", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let output = Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        .expect("man is missing: install man-db (make setup)");
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    // Drop overstrike (bold is "X\bX", underline "_\bX"): keep the character after each backspace.
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    for needle in [
        "ocf_clever_sample",
        "path (string, required, unique)",
        "Allowed values: plain, fancy.",
        "validate-all",
        "timeout 20s, interval 11s, role Promoted",
    ] {
        assert!(plain.contains(needle), "{needle:?} not in:\n{plain}");
    }
}
