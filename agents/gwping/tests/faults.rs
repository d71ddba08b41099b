//! Faults at the boundary of the one program gwping runs, `attrd_updater`: failing, hanging with
//! a grandchild, printing garbage, absent (a fake first on `PATH`; for "absent", a private mount
//! namespace hides `/usr/sbin/attrd_updater`, the agent's fallback, under `/dev/null`), in
//! start, monitor and stop; SIGTERM while it hangs (whoever ends the agent early); two starts, monitors and
//! stops of one instance at once. Each answer: the right exit code with one exit reason, within
//! the operation timeout, nothing left running.

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use ocf_conformance::hostile::{
    all_at_once, fault_problems, faults, signal_while_hanging, Answer, Fake, Tally,
};

use super::hostile::Sandbox;

/// The operation timeout the faulty runs get.
const TIMEOUT_MS: u64 = 4000;
/// attrd_updater's Debian path, which the agent falls back to when `PATH` lacks it.
const FALLBACK: &str = "/usr/sbin/attrd_updater";

/// The hostile tests' scratch tree, with an attrd_updater that works until a test breaks it.
fn bench(label: &str) -> Sandbox {
    let bench = Sandbox::new(&format!("faults-{label}"));
    bench.working_attrd();
    bench
}

impl Sandbox {
    /// An attrd_updater that accepts every call (no cluster runs here).
    fn working_attrd(&self) {
        self.fakes
            .set("attrd_updater", &Fake::Script("exit 0".to_owned()));
    }

    /// The agent with `action`; with `hide_fallback`, inside a private mount namespace where
    /// `/usr/sbin/attrd_updater` is `/dev/null` (not a file, so not a program).
    fn command(&self, action: &str, path: &str, hide_fallback: bool) -> Command {
        let agent = env!("CARGO_BIN_EXE_gwping");
        let mut command = if hide_fallback {
            let mut command = Command::new("/usr/bin/unshare");
            command.args([
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                &format!("/usr/bin/mount --bind /dev/null {FALLBACK} && exec \"$0\" \"$@\""),
                agent,
                action,
            ]);
            command
        } else {
            let mut command = Command::new(agent);
            command.arg(action);
            command
        };
        command
            .env_clear()
            .env("PATH", path)
            .env("HA_LOGFACILITY", "none")
            .env("HA_RSCTMP", &self.run_dir)
            .env("OCF_RESOURCE_INSTANCE", "gw")
            .env("OCF_RESKEY_CRM_meta_timeout", TIMEOUT_MS.to_string())
            .env("OCF_RESKEY_host_list", "127.0.0.1")
            .env("OCF_RESKEY_timeout", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if action == "monitor" {
            command.env("OCF_RESKEY_CRM_meta_interval", "2000");
        }
        command
    }

    fn run_as(&self, action: &str, path: &str, hide_fallback: bool) -> Answer {
        Answer::of(&mut self.command(action, path, hide_fallback))
    }

    fn started(&self) -> bool {
        self.run_dir.join("gwping-gw").exists()
    }
}

#[test]
fn every_fault_of_attrd_updater_gets_its_answer() {
    let bench = bench("attrd");
    let mut tally = Tally::new("gwping", "faults-attrd");
    for action in ["start", "monitor", "stop"] {
        for (fault, fake) in faults() {
            // Monitor and stop act on a started instance.
            bench.working_attrd();
            if action != "start" {
                let start = bench.run_as("start", &bench.fakes.path(), false);
                assert_eq!(start.code, Some(0), "{start:?}");
            }
            let absent = fake.is_none();
            let path = bench.fakes.install("attrd_updater", fake.as_ref());
            let answer = bench.run_as(action, &path, absent);
            // stop never fails over the attribute (a failed stop gets the node fenced);
            // garbage on stdout with exit 0 is a success; a missing program is "not
            // installed".
            let (want, needle) = match (action, fault) {
                ("stop", _) | (_, "prints garbage") => (0, ""),
                (_, "absent") => (5, "attrd_updater is not installed"),
                (_, "hangs") => (1, "did not finish"),
                _ => (1, "cannot update node attribute pingd"),
            };
            let mut wrong =
                fault_problems(&answer, want, needle, Duration::from_millis(TIMEOUT_MS));
            if action == "stop" && fault != "prints garbage" && !answer.stderr.contains("WARNING") {
                wrong.push("stop gave no warning".to_owned());
            }
            if action == "stop" && bench.started() {
                wrong.push("the state file outlived the stop".to_owned());
            }
            tally.record_answer(
                &format!("{action}, attrd_updater {fault}"),
                &answer,
                wrong,
                bench.fakes.left_behind(),
            );
            bench.working_attrd();
            let _ = bench.run_as("stop", &bench.fakes.path(), false);
            let _ = bench.fakes.take_calls();
        }
    }
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}

#[test]
fn sigterm_while_attrd_updater_hangs_ends_it() {
    let bench = bench("sigterm");
    let mut tally = Tally::new("gwping", "faults-sigterm");
    bench.fakes.set("attrd_updater", &Fake::Hangs);
    let mut command = bench.command("start", &bench.fakes.path(), false);
    command.env("OCF_RESKEY_CRM_meta_timeout", "60000");
    let answer = signal_while_hanging(&bench.fakes, command, Signal::SIGTERM);
    tally.record_answer(
        "start, SIGTERM while attrd_updater hangs",
        &answer,
        fault_problems(&answer, 1, "ended by SIGTERM", Duration::from_secs(5)),
        bench.fakes.left_behind(),
    );
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}

/// Pacemaker runs one operation per resource at a time; an admin's `crm_resource
/// --force-start` does not ask. Two of each at once: both succeed, one state file, and a stop
/// leaves none.
#[test]
fn two_instances_at_once_are_harmless() {
    let bench = bench("twice");
    for action in ["start", "monitor", "stop"] {
        let path = bench.fakes.path();
        for answer in all_at_once(vec![
            bench.command(action, &path, false),
            bench.command(action, &path, false),
        ]) {
            assert_eq!(answer.code, Some(0), "{action}: {answer:?}");
        }
        let files: Vec<_> = std::fs::read_dir(&bench.run_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let want = usize::from(action != "stop");
        assert_eq!(files.len(), want, "{action}: {files:?}");
    }
}
