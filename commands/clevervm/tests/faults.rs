//! Faults at the boundaries of `clevervm`: each program it runs (`crm_mon`, `cibadmin`,
//! `crm_resource`, `crm_node`, `virsh`) failing, hanging with a grandchild, printing garbage or
//! absent (fakes first on `PATH`; the real Pacemaker tools, on a CIB file, stand beside them),
//! for `status` and the verbs that use it; SIGINT (an admin's Ctrl-C) while one hangs. Each
//! answer: the right LSB code with a reason on one line, within `--timeout`, nothing left
//! running, the CIB unchanged where the verb failed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use ocf_conformance::hostile::{faults, signal_while_hanging, Answer, Fake, FakeTools, Tally};

use super::{cluster, scratch};

/// `--timeout`: every cluster call shares it.
const TIMEOUT_S: u64 = 3;
/// What a process needs to start and print after its deadline.
const SLACK: Duration = Duration::from_secs(1);
const TOOLS: [&str; 5] = [
    "crm_mon",
    "cibadmin",
    "crm_resource",
    "crm_node",
    "crm_simulate",
];

fn fakes(dir: &Path) -> FakeTools {
    let fakes = FakeTools::new(dir.join("bin"), &["virsh"], &Fake::Fails);
    for tool in TOOLS {
        fakes.real(tool);
    }
    fakes
}

fn clevervm(cib: &Path, path: &str, timeout: u64, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clevervm"));
    command
        .arg("--cib-file")
        .arg(cib)
        .args(["--timeout", &timeout.to_string(), "--node", "node1"])
        .args(args)
        .env_clear()
        .env("PATH", path);
    command
}

/// The LSB code and a word of the reason each verb must give when `tool` has `fault`; `None`
/// when the verb does not run that tool.
fn expected(verb: &str, tool: &str, fault: &str) -> Option<(i32, &'static str)> {
    let absent = fault == "absent";
    Some(match (verb, tool) {
        // status reads everything it can and says what it could not; the cluster's own state
        // decides the code: 4 (unknown) when crm_mon cannot tell.
        ("status", "crm_mon") => (4, "does not answer"),
        ("status", "cibadmin") => (4, "cannot read the cluster configuration"),
        ("status", "virsh") => (0, ""),
        ("forcestop", "cibadmin" | "crm_resource") if absent => (5, "cannot run"),
        ("forcestop", "crm_resource") if fault == "prints garbage" => (0, ""),
        ("forcestop", "cibadmin" | "crm_resource") => (7, "does not answer"),
        _ => return None,
    })
}

#[test]
fn every_fault_of_the_programs_it_runs_gets_its_answer() {
    let dir = scratch("faults");
    let cib = cluster(&dir.0);
    let fakes = fakes(&dir.0);
    let pristine = std::fs::read(&cib).unwrap();
    let mut tally = Tally::new("clevervm", "faults");
    let timeout = Duration::from_secs(TIMEOUT_S) + SLACK;
    for verb in ["status", "forcestop"] {
        for tool in ["crm_mon", "cibadmin", "crm_resource", "virsh"] {
            for (fault, fake) in faults() {
                let Some((want, needle)) = expected(verb, tool, fault) else {
                    continue;
                };
                let path = fakes.install(tool, fake.as_ref());
                let answer = Answer::of(&mut clevervm(&cib, &path, TIMEOUT_S, &[verb]));
                let text = format!("{}{}", answer.stdout, answer.stderr);
                let mut wrong = Vec::new();
                if answer.code != Some(want) {
                    wrong.push(format!("exit {:?}, want {want}", answer.code));
                }
                if !text.contains(needle) {
                    wrong.push(format!("no {needle:?} in the output"));
                }
                if want != 0 && verb != "status" && answer.stderr.lines().count() != 1 {
                    wrong.push("the reason is not one line on stderr".to_owned());
                }
                if answer.took >= timeout {
                    wrong.push(format!("answered after {:?}", answer.took));
                }
                let mut side_effects = fakes.left_behind();
                if want != 0 && std::fs::read(&cib).unwrap() != pristine {
                    side_effects.push("the CIB changed".to_owned());
                }
                tally.record_answer(
                    &format!("{verb}, {tool} {fault}"),
                    &answer,
                    wrong,
                    side_effects,
                );
                match tool {
                    "virsh" => fakes.set("virsh", &Fake::Fails),
                    real => fakes.real(real),
                }
                std::fs::write(&cib, &pristine).unwrap();
                let _ = fakes.take_calls();
            }
        }
    }
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}

#[test]
fn ctrl_c_while_crm_resource_hangs_ends_it() {
    let dir = scratch("sigint");
    let cib: PathBuf = cluster(&dir.0);
    let fakes = fakes(&dir.0);
    fakes.set("crm_resource", &Fake::Hangs);
    let mut tally = Tally::new("clevervm", "faults-sigint");
    let command = clevervm(&cib, &fakes.path(), 60, &["forcestop"]);
    let answer = signal_while_hanging(&fakes, command, Signal::SIGINT);
    let mut wrong = Vec::new();
    if answer.code != Some(1) || !answer.stderr.contains("ended by SIGINT") {
        wrong.push(format!("{answer:?}"));
    }
    if answer.took >= SLACK * 3 {
        wrong.push(format!("answered {:?} after the signal", answer.took));
    }
    tally.record_answer(
        "forcestop, SIGINT while crm_resource hangs",
        &answer,
        wrong,
        fakes.left_behind(),
    );
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}
