//! The harness proves itself on the demo agent: clean, it passes every rule (and ocf-tester);
//! with each fault switched on, the harness names the rule that fault breaks.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::BTreeMap;
use std::path::PathBuf;

use ocf_conformance::{check_agent, required_parameters, AgentUnderTest, Report, Rule};

/// A private state directory and a hanging backend script, removed on drop.
struct Backend {
    dir: PathBuf,
}

impl Backend {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ocf-conformance-selftest-{}-{label}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let hang = dir.join("hang");
        ocf_conformance::executable::write_executable(&hang, "#!/bin/sh\nexec sleep 3600\n")
            .unwrap();
        Self { dir }
    }

    fn agent(&self, bug: Option<&str>, run_ocf_tester: bool) -> AgentUnderTest {
        let mut environment = BTreeMap::new();
        if let Some(bug) = bug {
            environment.insert("DEMO_AGENT_BUG".to_owned(), bug.to_owned());
        }
        AgentUnderTest {
            path: PathBuf::from(env!("CARGO_BIN_EXE_clever-demo-agent")),
            instance: "demo1".to_owned(),
            parameters: BTreeMap::from([(
                "state_dir".to_owned(),
                self.dir.join("state").display().to_string(),
            )]),
            hanging: BTreeMap::from([(
                "backend".to_owned(),
                self.dir.join("hang").display().to_string(),
            )]),
            environment,
            run_ocf_tester,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn check(bug: Option<&str>, run_ocf_tester: bool) -> Report {
    let backend = Backend::new(bug.unwrap_or("clean"));
    check_agent(&backend.agent(bug, run_ocf_tester)).expect("the harness must be able to run")
}

#[test]
fn clean_demo_passes_every_rule_and_ocf_tester() {
    let report = check(None, true);
    assert!(report.passed(), "violations:\n{report}");
    assert_eq!(report.checked.len(), Rule::ALL.len(), "{report}");
    for rule in Rule::ALL {
        assert!(report.checked.contains(&rule), "{rule} was not checked");
    }
}

fn assert_catches(bug: &str, rules: &[Rule]) {
    let report = check(Some(bug), false);
    for rule in rules {
        assert!(
            report.broke(*rule),
            "fault {bug} should break {rule}; report:\n{report}"
        );
    }
    let unexpected: Vec<_> = report
        .violations
        .iter()
        .filter(|v| !rules.contains(&v.rule))
        .collect();
    assert!(
        unexpected.is_empty(),
        "fault {bug} also broke {unexpected:?}"
    );
}

#[test]
fn invalid_metadata_is_caught_by_both_grammars_and_ocf_tester() {
    let report = check(Some("metadata-invalid"), true);
    for rule in [Rule::MetadataDtd, Rule::MetadataOcf11, Rule::OcfTester] {
        assert!(report.broke(rule), "{rule} not broken:\n{report}");
    }
}

#[test]
fn monitor_that_says_running_when_stopped_is_caught() {
    assert_catches(
        "monitor-stopped",
        &[
            Rule::MonitorStoppedIs7,
            Rule::ProbeStoppedIs7,
            Rule::StopTwiceIs0,
        ],
    );
}

#[test]
fn probe_that_fails_on_an_absent_resource_is_caught() {
    assert_catches("probe-error", &[Rule::ProbeStoppedIs7]);
}

#[test]
fn start_that_fails_when_started_is_caught() {
    assert_catches("start-twice", &[Rule::StartTwiceIs0]);
}

#[test]
fn stop_that_fails_when_stopped_is_caught() {
    assert_catches(
        "stop-twice",
        &[Rule::StopNeverStartedIs0, Rule::StopTwiceIs0],
    );
}

#[test]
fn failure_without_exit_reason_is_caught() {
    assert_catches("silent-failure", &[Rule::ExitReasonOnFailure]);
}

#[test]
fn agent_that_ignores_its_timeout_is_caught() {
    assert_catches("ignore-timeout", &[Rule::ReturnsWithinTimeout]);
}

#[test]
fn unknown_action_answered_with_success_is_caught() {
    assert_catches("unknown-action", &[Rule::UnknownActionIs3]);
}

#[test]
fn validate_all_that_accepts_missing_parameters_is_caught() {
    assert_catches("validate-missing", &[Rule::MissingRequiredIs6]);
}

#[test]
fn required_parameters_are_read_from_metadata() {
    let xml = r#"<resource-agent name="x"><parameters>
        <parameter name="a" required="1"><content type="string"/></parameter>
        <parameter name="b"><content type="string"/></parameter>
        <parameter name="c" required="1" unique="1"><content type="string"/></parameter>
    </parameters></resource-agent>"#;
    assert_eq!(required_parameters(xml), ["a", "c"]);
}

#[test]
fn watchdog_answers_for_an_action_stuck_where_no_deadline_reaches() {
    let report = check(Some("stuck-in-kernel"), false);
    assert!(
        report.passed(),
        "the framework watchdog should keep every rule:\n{report}"
    );
}

#[test]
fn a_panic_still_gives_exit_1_and_a_reason() {
    let backend = Backend::new("panic");
    let agent = backend.agent(Some("panic"), false);
    let output = std::process::Command::new(&agent.path)
        .arg("monitor")
        .env("DEMO_AGENT_BUG", "panic")
        .env("HA_LOGFACILITY", "none")
        .env("OCF_RESKEY_state_dir", &agent.parameters["state_dir"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = stderr
        .lines()
        .find_map(|l| l.strip_prefix("ocf-exit-reason:"))
        .unwrap_or_else(|| panic!("no exit reason in {stderr}"));
    assert!(reason.starts_with("internal error in demo"), "{reason}");
}
