//! Faults at the boundaries, against the built agent: each program drbdfs runs (`mount`, `fsck`,
//! `drbdsetup`) failing, hanging with a grandchild, printing garbage or absent (fakes first on
//! `PATH`, the agent's only way to find them); SIGTERM (whoever ends the agent early) in the
//! middle of a start; two starts and two stops of one mount point at once; a full filesystem
//! under the depth-20 status file. Each answer is the right exit code with one exit reason,
//! within the operation timeout, with no process left behind and nothing mounted that should
//! not be.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clever_mounts::parse_mountinfo;
use nix::sys::signal::Signal;
use ocf_conformance::hostile::{
    all_at_once, fault_problems, faults, signal_while_hanging, Answer, Fake, FakeTools, Tally,
};

use super::LoopFs;

/// The operation timeout the faulty runs get: short, so a hang costs little.
const TIMEOUT_MS: u64 = 4000;

/// A resource whose DRBD state the fixture of a Primary, UpToDate, connected node gives.
const DRBD_RESOURCE: &str = "beijing";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/drbd/tests/fixtures")
        .join(name)
}

/// A loop filesystem, fakes for every program, and a run directory for the lock.
struct Bench {
    fs: LoopFs,
    fakes: FakeTools,
    run_dir: PathBuf,
}

impl Bench {
    fn new(label: &str) -> Self {
        let fs = LoopFs::new(label, "ext4");
        let fakes = FakeTools::new(fs.base.join("bin"), &[], &Fake::Fails);
        for tool in ["mount", "fsck"] {
            fakes.real(tool);
        }
        fakes.set(
            "drbdsetup",
            &Fake::Script(format!(
                "/bin/cat '{}'",
                fixture("drbd9-status-json-primary-connected-2node.json").display()
            )),
        );
        let run_dir = fs.base.join("run");
        Self { fs, fakes, run_dir }
    }

    fn command(&self, action: &str, extra: &[(&str, &str)], path: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_drbdfs"));
        command
            .arg(action)
            .env_clear()
            .env("PATH", path)
            .env("HA_LOGFACILITY", "none")
            .env("HA_RSCTMP", &self.run_dir)
            .env("OCF_RESOURCE_INSTANCE", "faulty")
            .env("OCF_RESKEY_CRM_meta_timeout", TIMEOUT_MS.to_string())
            .env("OCF_RESKEY_device", &self.fs.device)
            .env("OCF_RESKEY_directory", &self.fs.directory)
            .env("OCF_RESKEY_fstype", "ext4")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in extra {
            command.env(key, value);
        }
        command
    }

    fn run(&self, action: &str, extra: &[(&str, &str)], path: &str) -> Answer {
        Answer::of(&mut self.command(action, extra, path))
    }

    fn mounts_here(&self) -> usize {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        parse_mountinfo(&text)
            .unwrap()
            .iter()
            .filter(|m| m.mount_point == self.fs.directory)
            .count()
    }
}

fn restore(bench: &Bench, tool: &str) {
    match tool {
        "drbdsetup" => bench.fakes.set(
            "drbdsetup",
            &Fake::Script(format!(
                "/bin/cat '{}'",
                fixture("drbd9-status-json-primary-connected-2node.json").display()
            )),
        ),
        real => bench.fakes.real(real),
    }
}

/// Checks the answer and the host after one faulty run; records it.
fn judge(
    tally: &mut Tally,
    label: &str,
    answer: &Answer,
    (want, needle): (i32, &str),
    fakes: &FakeTools,
    unwanted_mount: bool,
) {
    let wrong = fault_problems(answer, want, needle, Duration::from_millis(TIMEOUT_MS));
    let mut side_effects = fakes.left_behind();
    if unwanted_mount {
        side_effects.push("the filesystem was mounted".to_owned());
    }
    tally.record_answer(label, answer, wrong, side_effects);
}

#[test]
fn start_answers_every_fault_of_the_programs_it_runs() {
    let bench = Bench::new("faults-start");
    let mut tally = Tally::new("drbdfs", "faults-start");
    let drbd = [("OCF_RESKEY_drbd_resource", DRBD_RESOURCE)];
    let force = [("OCF_RESKEY_fsck", "force")];
    // (tool, fault, parameters, exit code, word in the reason); garbage from fsck with exit
    // 0 is a clean check, so that start mounts.
    let expected = |tool: &str, fault: &str| -> (i32, &'static str) {
        match (tool, fault) {
            (_, "hangs") => (1, "did not finish"),
            ("mount", "fails") => (1, "mount failed"),
            ("mount", "prints garbage") => (1, "is not mounted after mount"),
            ("fsck", "fails") => (1, "found errors"),
            ("fsck", "prints garbage") => (0, ""),
            ("drbdsetup", "fails" | "prints garbage") => (1, "DRBD"),
            (_, "absent") => (5, "cannot run"),
            _ => unreachable!(),
        }
    };
    for tool in ["mount", "fsck", "drbdsetup"] {
        let extra: &[(&str, &str)] = match tool {
            "fsck" => &force,
            "drbdsetup" => &drbd,
            _ => &[],
        };
        for (fault, fake) in faults() {
            // fsck's "errors left uncorrected" is exit 4; exit 1 means it repaired them.
            let fake = match (tool, fake) {
                ("fsck", Some(Fake::Fails)) => Some(Fake::Script(
                    "echo 'fsck: simulated damage' >&2; exit 4".to_owned(),
                )),
                (_, fake) => fake,
            };
            let path = bench.fakes.install(tool, fake.as_ref());
            let answer = bench.run("start", extra, &path);
            let (want, needle) = expected(tool, fault);
            let mounted = bench.mounts_here() > 0;
            judge(
                &mut tally,
                &format!("start, {tool} {fault}"),
                &answer,
                (want, needle),
                &bench.fakes,
                mounted && want != 0,
            );
            restore(&bench, tool);
            if mounted {
                let stop = bench.run("stop", extra, &bench.fakes.path());
                assert_eq!(stop.code, Some(0), "{stop:?}");
            }
            let _ = bench.fakes.take_calls();
        }
    }
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}

#[test]
fn monitor_answers_every_fault_of_drbdsetup() {
    let bench = Bench::new("faults-monitor");
    let mut tally = Tally::new("drbdfs", "faults-monitor");
    let drbd = [
        ("OCF_RESKEY_drbd_resource", DRBD_RESOURCE),
        ("OCF_RESKEY_CRM_meta_interval", "20000"),
    ];
    let started = bench.run("start", &drbd, &bench.fakes.path());
    assert_eq!(started.code, Some(0), "{started:?}");
    let healthy = bench.run("monitor", &drbd, &bench.fakes.path());
    assert_eq!(healthy.code, Some(0), "the control: {healthy:?}");
    for (fault, fake) in faults() {
        let path = bench.fakes.install("drbdsetup", fake.as_ref());
        let answer = bench.run("monitor", &drbd, &path);
        let (want, needle) = match fault {
            "hangs" => (1, "did not finish"),
            "absent" => (5, "cannot run drbdsetup"),
            _ => (1, "DRBD"),
        };
        judge(
            &mut tally,
            &format!("monitor, drbdsetup {fault}"),
            &answer,
            (want, needle),
            &bench.fakes,
            false,
        );
        restore(&bench, "drbdsetup");
        // A failing monitor must not have unmounted anything either.
        assert_eq!(bench.mounts_here(), 1, "monitor, drbdsetup {fault}");
    }
    let stop = bench.run("stop", &drbd, &bench.fakes.path());
    assert_eq!(stop.code, Some(0), "{stop:?}");
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}

#[test]
fn sigterm_mid_start_ends_the_hanging_mount_and_its_children() {
    let bench = Bench::new("faults-sigterm");
    bench.fakes.set("mount", &Fake::Hangs);
    let mut tally = Tally::new("drbdfs", "faults-sigterm");
    let command = bench.command(
        "start",
        &[("OCF_RESKEY_CRM_meta_timeout", "60000")],
        &bench.fakes.path(),
    );
    let answer = signal_while_hanging(&bench.fakes, command, Signal::SIGTERM);
    judge(
        &mut tally,
        "start, SIGTERM while mount hangs",
        &answer,
        (1, "ended by SIGTERM"),
        &bench.fakes,
        bench.mounts_here() > 0,
    );
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}

#[test]
fn two_starts_and_two_stops_at_once_mount_once_and_both_succeed() {
    let bench = Bench::new("faults-twice");
    // A slow mount widens the window in which both starts have found nothing mounted.
    bench.fakes.set(
        "mount",
        &Fake::Script("sleep 1\nexec /usr/bin/mount \"$@\"".to_owned()),
    );
    let extra = [("OCF_RESKEY_CRM_meta_timeout", "30000")];
    for action in ["start", "stop"] {
        let path = bench.fakes.path();
        for answer in all_at_once(vec![
            bench.command(action, &extra, &path),
            bench.command(action, &extra, &path),
        ]) {
            assert_eq!(answer.code, Some(0), "{action}: {answer:?}");
        }
        let calls = bench.fakes.take_calls().unwrap_or_default();
        match action {
            "start" => {
                assert_eq!(bench.mounts_here(), 1, "mounted twice");
                assert_eq!(calls.lines().count(), 1, "mount ran twice: {calls}");
            }
            _ => assert_eq!(bench.mounts_here(), 0, "still mounted"),
        }
    }
    let lock = std::fs::read_dir(&bench.run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<Vec<_>>();
    assert_eq!(lock.len(), 1, "{lock:?}");
    assert_eq!(
        std::fs::metadata(&lock[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Writes until the filesystem refuses, as root (so the reserved blocks go too).
fn fill(directory: &Path) -> PathBuf {
    let filler = directory.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    for chunk in [1 << 20, 4096, 512] {
        let block = vec![0xa5_u8; chunk];
        while file.write_all(&block).is_ok() {}
    }
    let _ = file.sync_all();
    filler
}

#[test]
fn a_full_filesystem_is_degraded_at_depth_20_with_the_reason() {
    let bench = Bench::new("faults-full");
    let mut tally = Tally::new("drbdfs", "faults-full");
    let path = bench.fakes.path();
    let depth = [
        ("OCF_CHECK_LEVEL", "20"),
        ("OCF_RESKEY_CRM_meta_interval", "61000"),
        ("OCF_RESKEY_CRM_meta_on_node", "node1"),
    ];
    assert_eq!(bench.run("start", &[], &path).code, Some(0));
    let status_dir = bench.fs.directory.join(clever_agent_drbdfs::STATUS_DIR);
    // Full before the status directory exists (mkdir fails), then with the directory but not
    // the file (creating it fails).
    for case in ["no status directory", "no status file"] {
        if case == "no status file" {
            let healthy = bench.run("monitor", &depth, &path);
            assert_eq!(healthy.code, Some(0), "the control: {healthy:?}");
            std::fs::remove_file(status_dir.join("node1.status")).unwrap();
        }
        let filler = fill(&bench.fs.directory);
        let answer = bench.run("monitor", &depth, &path);
        judge(
            &mut tally,
            &format!("monitor depth 20, filesystem full, {case}"),
            &answer,
            (190, "No space left on device"),
            &bench.fakes,
            false,
        );
        if !answer.stderr.contains("is full") {
            tally.record(
                case,
                false,
                false,
                &[format!("reason does not say full: {}", answer.stderr)],
            );
        }
        std::fs::remove_file(filler).unwrap();
        nix::unistd::sync();
    }
    let answer = bench.run("monitor", &depth, &path);
    assert_eq!(answer.code, Some(0), "room again: {answer:?}");
    assert_eq!(bench.run("stop", &[], &path).code, Some(0));
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}
