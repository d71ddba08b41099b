//! What every hostile-input and fault test of a built agent needs: fake programs placed first on
//! the agent's `PATH` (recording every call, failing, hanging or printing garbage), a snapshot
//! of a scratch tree to prove a rejected input changed nothing, the checks one refused run must
//! pass, and the tally behind the summary line `make test` prints per agent.
//!
//! Agents find every program they run on `PATH` (`clever_command` spawns by name), so a
//! directory of fakes in front of the system's directories is the seam: no production path
//! changes for tests.

use std::collections::BTreeSet;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The system's program directories, after the fakes.
pub const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// How a fake program behaves once it has recorded its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fake {
    /// Exits 1 with a complaint on stderr.
    Fails,
    /// Never ends on its own, and leaves a grandchild that never ends either (in its process
    /// group), so a test can check the whole group is killed. Each process writes its pid to
    /// the pid log.
    Hangs,
    /// Prints bytes no tool prints (binary, control characters, a truncated document) and
    /// exits 0.
    Garbage,
    /// Runs this shell text (tests only) after recording the call.
    Script(String),
}

/// A directory of fake programs, each recording `name args…` as one line of a log.
#[derive(Debug)]
pub struct FakeTools {
    dir: PathBuf,
    log: PathBuf,
    pids: PathBuf,
}

impl FakeTools {
    /// Creates `dir` with one fake per name in `tools`, all behaving as `behaviour`.
    pub fn new(dir: impl Into<PathBuf>, tools: &[&str], behaviour: &Fake) -> Self {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let fakes = Self {
            log: dir.join("calls.log"),
            pids: dir.join("pids.log"),
            dir,
        };
        for tool in tools {
            fakes.set(tool, behaviour);
        }
        fakes
    }

    /// Installs (or replaces) the fake `name`.
    pub fn set(&self, name: &str, behaviour: &Fake) {
        let body = match behaviour {
            Fake::Fails => format!("echo '{name}: simulated failure' >&2\nexit 1"),
            Fake::Hangs => format!(
                "echo $$ >> '{pids}'\nsleep 3600 &\necho $! >> '{pids}'\nwait",
                pids = self.pids.display()
            ),
            Fake::Garbage => "printf '\\377\\376<crm_mon \\033[2J{\"resource\": [1, \\000\\n'\n\
                 head -c 4096 /dev/urandom\nexit 0"
                .to_owned(),
            Fake::Script(text) => text.clone(),
        };
        let path = self.dir.join(name);
        // Written aside and renamed: a fake may be replaced while an earlier one still runs.
        let new = self.dir.join(format!(".{name}.new"));
        crate::executable::write_executable(
            &new,
            &format!(
                "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{body}\n",
                self.log.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&new, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Removes the fake `name`, so that only `PATH`'s later directories can provide it.
    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.dir.join(name));
    }

    /// Makes `name` the real program found on [`SYSTEM_PATH`] (a symlink to it).
    pub fn real(&self, name: &str) {
        let real = std::env::split_paths(SYSTEM_PATH)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{name} is not installed: make setup installs it"));
        self.remove(name);
        std::os::unix::fs::symlink(&real, self.dir.join(name))
            .unwrap_or_else(|e| panic!("linking {name}: {e}"));
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A `PATH` with the fakes first, then the system's directories.
    pub fn path(&self) -> String {
        format!("{}:{SYSTEM_PATH}", self.dir.display())
    }

    /// A `PATH` with the fakes only: a program without a fake (see [`FakeTools::real`]) is
    /// absent.
    pub fn path_alone(&self) -> String {
        self.dir.display().to_string()
    }

    /// The calls recorded since the last take, `None` when there were none.
    pub fn take_calls(&self) -> Option<String> {
        let calls = std::fs::read_to_string(&self.log).ok();
        let _ = std::fs::remove_file(&self.log);
        calls
    }

    /// Pids the hanging fakes wrote since the last take.
    pub fn take_pids(&self) -> Vec<i32> {
        let pids = std::fs::read_to_string(&self.pids).unwrap_or_default();
        let _ = std::fs::remove_file(&self.pids);
        pids.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// The processes of hanging fakes (taken as [`FakeTools::take_pids`]) still alive a moment
    /// after the agent answered: whoever killed the group, init still has to reap the orphans.
    pub fn survivors(&self) -> Vec<i32> {
        let pids = self.take_pids();
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_secs(3) && !pids.iter().all(|p| is_gone(*p)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        pids.into_iter().filter(|p| !is_gone(*p)).collect()
    }

    /// [`FakeTools::survivors`] as a side effect to report: empty when none is left.
    pub fn left_behind(&self) -> Vec<String> {
        let survivors = self.survivors();
        if survivors.is_empty() {
            Vec::new()
        } else {
            vec![format!("processes left behind: {survivors:?}")]
        }
    }

    /// Puts `fault` in place of `tool` (`None`: removes it) and returns the `PATH` to run with:
    /// without the system's directories when the program must be absent, so that only the
    /// fakes (and the real programs linked beside them with [`FakeTools::real`]) are found.
    pub fn install(&self, tool: &str, fault: Option<&Fake>) -> String {
        match fault {
            Some(fake) => {
                self.set(tool, fake);
                self.path()
            }
            None => {
                self.remove(tool);
                self.path_alone()
            }
        }
    }
}

/// The faults every program an agent runs is tried with; `None` is "absent".
pub fn faults() -> Vec<(&'static str, Option<Fake>)> {
    vec![
        ("fails", Some(Fake::Fails)),
        ("hangs", Some(Fake::Hangs)),
        ("prints garbage", Some(Fake::Garbage)),
        ("absent", None),
    ]
}

/// How one run of a program under test ended.
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Answer {
    /// Runs `command` to the end (its stdout and stderr piped).
    pub fn of(command: &mut Command) -> Self {
        let started = Instant::now();
        let output = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
        Self::from_output(&output, started)
    }

    /// The answer of a child that ran since `started`.
    pub fn from_output(output: &Output, started: Instant) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            took: started.elapsed(),
        }
    }
}

/// Starts every command before waiting for any: two instances of one agent at the same time.
pub fn all_at_once(commands: Vec<Command>) -> Vec<Answer> {
    let started = Instant::now();
    let children: Vec<Child> = commands
        .into_iter()
        .map(|mut command| {
            command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {command:?}: {e}"))
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            Answer::from_output(
                &child
                    .wait_with_output()
                    .unwrap_or_else(|e| panic!("waiting: {e}")),
                started,
            )
        })
        .collect()
}

/// Starts `command`, waits until the hanging fakes it runs have both written their pids (the
/// program and its grandchild), then sends `signal` to the command alone, as whoever ends an
/// agent early would; the answer is timed from the signal.
pub fn signal_while_hanging(fakes: &FakeTools, mut command: Command, signal: Signal) -> Answer {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let waiting = Instant::now();
    while std::fs::read_to_string(&fakes.pids).map_or(0, |t| t.lines().count()) < 2 {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "the hanging fake never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let signalled = Instant::now();
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    kill(pid, signal).unwrap_or_else(|e| panic!("{signal} to {pid}: {e}"));
    Answer::from_output(
        &child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting: {e}")),
        signalled,
    )
}

/// What is wrong with an agent's answer to a fault: exit `want` (for 0, nothing more; else
/// [`answer_problems`] with `needle`) before `timeout`. Empty when it was right.
pub fn fault_problems(answer: &Answer, want: i32, needle: &str, timeout: Duration) -> Vec<String> {
    let mut wrong = if want == 0 {
        match answer.code {
            Some(0) => Vec::new(),
            code => vec![format!("exit {code:?}, want 0")],
        }
    } else {
        answer_problems(answer.code, want, &answer.stderr, needle)
    };
    if want == 0 && panicked(&answer.stderr) {
        wrong.push("panicked".to_owned());
    }
    if answer.took >= timeout {
        wrong.push(format!(
            "answered after {:?}, timeout {timeout:?}",
            answer.took
        ));
    }
    wrong
}

/// Whether process `pid` is gone (or a zombie, which holds nothing and waits for its reaper).
pub fn is_gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| stat.contains(") Z "))
}

/// Every path under `root` with its mode, size and modification time: equal snapshots mean
/// nothing was created, removed or written.
pub fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            out.insert(format!(
                "{} {:o} {} {}.{}",
                path.display(),
                meta.mode(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec()
            ));
            if meta.is_dir() {
                walk(&path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, &mut out);
    out
}

/// The text after each `ocf-exit-reason:` on stderr.
pub fn exit_reasons(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(clever_ocf::EXIT_REASON_PREFIX))
        .collect()
}

/// Whether the output shows a Rust panic (the panic hook's reason, or the default message).
pub fn panicked(stderr: &str) -> bool {
    stderr.contains("panicked") || stderr.contains("internal error in")
}

/// What is wrong with one run that had to exit `want` with exactly one exit reason containing
/// `needle`, short enough for `crm_mon`, and no panic. Empty when the run was right.
pub fn answer_problems(code: Option<i32>, want: i32, stderr: &str, needle: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    if code != Some(want) {
        wrong.push(format!("exit {code:?}, want {want}"));
    }
    if panicked(stderr) {
        wrong.push("panicked".to_owned());
    }
    let reasons = exit_reasons(stderr);
    match reasons.as_slice() {
        [reason] if !reason.contains(needle) => wrong.push(format!("reason lacks {needle:?}")),
        [_] => {}
        _ => wrong.push(format!("{} exit reasons", reasons.len())),
    }
    if reasons.iter().any(|r| r.len() > 512) {
        wrong.push("exit reason over 512 bytes".to_owned());
    }
    wrong
}

/// The count behind one summary line: how many hostile inputs one test tried on one agent,
/// how many made it panic, how many rejected inputs had a side effect, how many got a wrong
/// answer otherwise.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub agent: String,
    pub test: String,
    pub tried: usize,
    pub panics: usize,
    pub side_effects: usize,
    pub wrong: usize,
    failures: Vec<String>,
}

impl Tally {
    pub fn new(agent: &str, test: &str) -> Self {
        Self {
            agent: agent.to_owned(),
            test: test.to_owned(),
            ..Self::default()
        }
    }

    /// Counts one run: `panicked` and `side_effects` are what the test saw, `problems` every
    /// wrong thing about it (a panic or side effect included), for the failure message.
    pub fn record(&mut self, label: &str, panicked: bool, side_effect: bool, problems: &[String]) {
        self.tried += 1;
        self.panics += usize::from(panicked);
        self.side_effects += usize::from(side_effect);
        if !problems.is_empty() {
            self.wrong += 1;
            self.failures
                .push(format!("{label}: {}", problems.join("; ")));
        }
    }

    /// Counts one run that gave `answer`: `wrong` is what is wrong with the answer itself,
    /// `side_effects` what it changed or left behind; a panic shows in its output.
    pub fn record_answer(
        &mut self,
        label: &str,
        answer: &Answer,
        mut wrong: Vec<String>,
        side_effects: Vec<String>,
    ) {
        let side_effect = !side_effects.is_empty();
        wrong.extend(side_effects);
        if !wrong.is_empty() {
            wrong.push(format!(
                "output: {} {}",
                answer.stdout.trim(),
                answer.stderr.trim()
            ));
        }
        let panic = panicked(&answer.stderr) || panicked(&answer.stdout);
        self.record(label, panic, side_effect, &wrong);
    }

    /// Writes the line `make test` collects (into `dir`, normally the test's
    /// `CARGO_TARGET_TMPDIR`), prints it, then fails the test if any run went wrong.
    pub fn finish(self, dir: &str) {
        let folder = Path::new(dir).join("hostile-summary");
        let _ = std::fs::create_dir_all(&folder);
        let _ = std::fs::write(
            folder.join(format!("{}.{}", self.agent, self.test)),
            format!(
                "{} {} {} {} {}\n",
                self.agent, self.tried, self.panics, self.side_effects, self.wrong
            ),
        );
        eprintln!("{self}");
        assert!(
            self.failures.is_empty(),
            "{} of {} hostile runs went wrong:\n{}",
            self.failures.len(),
            self.tried,
            self.failures.join("\n")
        );
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} hostile inputs tried, {} panics, {} side effects, {} wrong",
            self.agent, self.test, self.tried, self.panics, self.side_effects, self.wrong
        )
    }
}
