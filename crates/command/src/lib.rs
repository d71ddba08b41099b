//! The one way our agents run another program.
//!
//! Cluster tools hang: `crmadmin` against a dead DC, `drbdsetup` during a state change, anything
//! on a stuck filesystem. A child that outlives the operation timeout makes Pacemaker time the
//! whole action out, so every child here runs in its own process group, its output is drained on
//! separate threads (a full pipe must not stall it), and the whole group is killed when the
//! [`Deadline`] passes. No shell is ever involved: programs are spawned by argv.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use clever_deadline::Deadline;
use nix::sys::signal::{killpg, SigSet, Signal};
use nix::unistd::Pid;

/// Output kept per stream; beyond it a misbehaving tool's output is dropped, not buffered.
pub const OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// How long a killed group gets to be reaped before we stop waiting for it: a child stuck in
/// uninterruptible sleep cannot be reaped at all, and the agent must still answer.
const REAP_GRACE: Duration = Duration::from_millis(500);

/// How many children can be tracked for [`end_children`] at once; an agent runs one or two at a
/// time (a command and its pipe readers), so a child beyond this is only missed by the clean-up.
const TRACKED_GROUPS: usize = 64;

/// The process groups of the children running now, 0 in a free slot. Each child leads a group of
/// its own, so a signal to the agent's group (the executor ending it at the timeout) does not
/// reach them: whoever ends the agent early must end these too ([`end_children`]). Atomics, not
/// a lock: [`end_children`] runs in signal handlers.
static RUNNING: [AtomicI32; TRACKED_GROUPS] = [const { AtomicI32::new(0) }; TRACKED_GROUPS];

/// Spawns between fork and their entry in [`RUNNING`]. Without it, a signal arriving in that
/// window (the child already runs, the agent has not yet recorded its group) ended the agent and
/// left the child running.
static SPAWNING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread is in its spawn window ([`SpawnWindow`]). Atomics, const-initialised
    /// and without a destructor: a signal handler on this thread reads and writes them.
    static IN_SPAWN_WINDOW: AtomicBool = const { AtomicBool::new(false) };
    /// The ending signal that interrupted this thread's spawn window, 0 when none: raised again
    /// on this thread when the window closes.
    static DEFERRED_ENDING: AtomicI32 = const { AtomicI32::new(0) };
}

/// How long [`end_children`] waits for a spawn in progress on another thread to record its
/// child: a fork and an exec, which take milliseconds even on a loaded node. Past it the agent
/// still answers.
const SPAWN_WAIT: Duration = Duration::from_millis(500);

/// Set once [`end_children`] has begun killing the children: the process is ending, and its
/// answer is the ending's (exit reason, exit code), not the failure its other threads see when
/// their children die under them.
static ENDING: AtomicBool = AtomicBool::new(false);

/// How long a thread whose child died in an ending waits for the ending to exit the process
/// ([`HostCommands::run`]): the ending has one line to write. Past it the thread answers anyway.
pub const ENDING_GRACE: Duration = Duration::from_secs(2);

/// What a signal handler that called [`end_children`] does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum ChildrenEnded {
    /// Every recorded child group is killed: answer and exit.
    Yes,
    /// The signal interrupted this very thread between a fork and the child's record, where the
    /// child cannot be reached yet: return from the handler at once. The spawn raises the
    /// signal again on this thread as soon as the child is recorded.
    AfterTheSpawn,
}

/// Kills every child group still running (and what they started), for the last moments of the
/// process, when `ending` (a termination signal, the watchdog's) arrived. Async-signal-safe
/// (atomics, nanosleep(2) and kill(2)), so a signal handler may call it. A child being spawned
/// on another thread is waited for (up to [`SPAWN_WAIT`]) and killed too; one being spawned on
/// this thread is reached by deferring the signal ([`ChildrenEnded::AfterTheSpawn`]). Children
/// started afterwards are not covered. A thread whose child it kills does not answer for it
/// while the ending exits the process ([`ENDING_GRACE`]).
pub fn end_children(ending: Signal) -> ChildrenEnded {
    let interrupted_spawn = IN_SPAWN_WINDOW
        .try_with(|in_window| in_window.load(Ordering::SeqCst))
        .unwrap_or(false);
    if interrupted_spawn {
        let _ =
            DEFERRED_ENDING.try_with(|deferred| deferred.store(ending as i32, Ordering::SeqCst));
        return ChildrenEnded::AfterTheSpawn;
    }
    ENDING.store(true, Ordering::SeqCst);
    let mut waited = Duration::ZERO;
    while SPAWNING.load(Ordering::SeqCst) > 0 && waited < SPAWN_WAIT {
        const STEP: Duration = Duration::from_millis(1);
        thread::sleep(STEP);
        waited += STEP;
    }
    for slot in &RUNNING {
        let group = slot.load(Ordering::SeqCst);
        if group > 0 {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
    }
    ChildrenEnded::Yes
}

/// The signals with which an executor or an admin ends a program early.
pub const TERMINATING: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Makes a termination signal end the running children before the process goes: blocks
/// [`TERMINATING`] in the calling thread (and so in every thread it starts later: call it first
/// in `main`), and waits for them on a thread of its own, which ends the children and then
/// calls `last_words` (which is expected to exit). Children inherit the blocked mask (the
/// standard library's spawn keeps it); what ends them is SIGKILL, which no mask holds off.
pub fn end_children_on_termination(last_words: impl FnOnce(Signal) + Send + 'static) {
    let mut signals = SigSet::empty();
    for signal in TERMINATING {
        signals.add(signal);
    }
    if signals.thread_block().is_err() {
        // Without the mask the default action still ends the process; only the children's
        // clean-up is lost, which is what happened before.
        return;
    }
    thread::spawn(move || {
        if let Ok(signal) = signals.wait() {
            // This thread only waits, so it never interrupts a spawn of its own.
            let _ = end_children(signal);
            last_words(signal);
        }
    });
}

/// The window from just before a fork to the child's entry in [`RUNNING`], during which an
/// ending signal cannot reach the child: on another thread, [`end_children`] waits for the window
/// to close; on this one, the signal is deferred to its close. Blocking the signals instead would
/// pass the blocked mask on to the child, which the standard library's spawn keeps.
struct SpawnWindow;

impl SpawnWindow {
    fn open() -> Self {
        IN_SPAWN_WINDOW.with(|in_window| in_window.store(true, Ordering::SeqCst));
        SPAWNING.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for SpawnWindow {
    fn drop(&mut self) {
        SPAWNING.fetch_sub(1, Ordering::SeqCst);
        IN_SPAWN_WINDOW.with(|in_window| in_window.store(false, Ordering::SeqCst));
        let deferred = DEFERRED_ENDING.with(|deferred| deferred.swap(0, Ordering::SeqCst));
        if let Ok(ending) = Signal::try_from(deferred) {
            // The handler runs again here, now that the child is recorded, and ends the process.
            let _ = nix::sys::signal::raise(ending);
        }
    }
}

/// Keeps a child's group in [`RUNNING`] while [`HostCommands::run`] looks after it.
struct Registered(Option<&'static AtomicI32>);

impl Registered {
    fn new(group: i32) -> Self {
        Self(RUNNING.iter().find(|slot| {
            slot.compare_exchange(0, group, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        }))
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            slot.store(0, Ordering::SeqCst);
        }
    }
}

/// Running a program went wrong; each variant names the command line.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started: missing or not executable
    /// ([`CommandError::program_missing`]), or the system could not start a process at all
    /// (fork or memory exhausted).
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    /// The program was still running when the deadline passed and was killed.
    #[error("{command} did not finish within {budget:?} and was killed")]
    TimedOut { command: String, budget: Duration },
    /// The program ran and reported failure.
    #[error("{command} failed ({status}){}", stderr_suffix(stderr))]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    /// Waiting for the program failed at the OS level.
    #[error("waiting for {command}: {source}")]
    Wait {
        command: String,
        #[source]
        source: io::Error,
    },
}

impl CommandError {
    /// Whether the program is not there to run on this node: not found (ENOENT), or found but
    /// not executable (EACCES: no execute bit, a `noexec` mount, an unsearchable directory),
    /// as resource-agents' `check_binary` treats it. Another node may have it, so an agent
    /// says "not installed" and Pacemaker moves the resource. Any other failure to start a
    /// program (EAGAIN, ENOMEM: the node is short of processes or memory for a moment) says
    /// nothing about the node's installation and must not ban the resource from it.
    pub fn program_missing(&self) -> bool {
        match self {
            Self::Spawn { source, .. } => match source.raw_os_error() {
                Some(errno) => errno == nix::libc::ENOENT || errno == nix::libc::EACCES,
                None => source.kind() == io::ErrorKind::NotFound,
            },
            Self::TimedOut { .. } | Self::Failed { .. } | Self::Wait { .. } => false,
        }
    }
}

/// The program's complaint on one line: tools such as virsh put the cause on a second line.
fn stderr_suffix(stderr: &str) -> String {
    const SHOWN: usize = 400;
    let joined = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if joined.is_empty() {
        String::new()
    } else {
        format!(": {}", shorten(&joined, SHOWN))
    }
}

/// How much of an offending value a message repeats: enough to recognise it, never a megabyte
/// of garbage in `crm_mon`.
pub const SHOWN_VALUE_LEN: usize = 64;

/// `text` fit to quote in an exit reason: control characters (newlines among them) become
/// spaces, so the reason stays the one line Pacemaker reads, and beyond `max` characters it is
/// cut, with `…` saying so. It lives here, in the lowest crate that quotes what it was given (a
/// program's stderr), so that the DRBD and Pacemaker parsers, which do not depend on the OCF
/// framework, use the same rule as the framework and the agents.
pub fn shorten(text: &str, max: usize) -> String {
    let mut chars = text.chars().map(|c| if c.is_control() { ' ' } else { c });
    let mut shown: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

/// A program and its arguments, kept as argv so nothing is ever re-parsed by a shell.
#[derive(Clone, PartialEq, Eq)]
pub struct CommandLine {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl CommandLine {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds one variable to the child's environment (the rest is inherited).
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn program(&self) -> &OsStr {
        &self.program
    }

    pub fn arguments(&self) -> &[OsString] {
        &self.args
    }

    /// The variables added with [`CommandLine::env`], for runners that start the program
    /// elsewhere (in a VM node of the lab).
    pub fn environment(&self) -> &[(OsString, OsString)] {
        &self.env
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program.to_string_lossy())?;
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                write!(f, " '{arg}'")?;
            } else {
                write!(f, " {arg}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandLine({self})")
    }
}

/// What a finished program left behind.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The exit code, or `None` when a signal ended the program.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// The seam between agents and the programs they run: production code takes `&impl RunCommand`
/// so unit tests can hand it recorded outputs while the real path stays the same.
pub trait RunCommand {
    /// Runs `command` to completion or until `deadline`, whatever its exit status.
    fn run(&self, command: &CommandLine, deadline: &Deadline) -> Result<Output, CommandError>;

    /// Like [`RunCommand::run`], but a non-zero exit is an error carrying the program's stderr.
    fn run_ok(&self, command: &CommandLine, deadline: &Deadline) -> Result<Output, CommandError> {
        let output = self.run(command, deadline)?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(CommandError::Failed {
                command: command.to_string(),
                status: describe_status(output.status),
                stderr: output.stderr_text(),
            })
        }
    }
}

/// Runs programs on this host.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostCommands;

impl RunCommand for HostCommands {
    fn run(&self, command: &CommandLine, deadline: &Deadline) -> Result<Output, CommandError> {
        let ran = run_on_host(command, deadline);
        if ENDING.load(Ordering::SeqCst) {
            // Whatever happened to the child, an ending killed it or is about to: answering now
            // (a failed program, exit 7) could win the race against the ending's own answer.
            thread::sleep(ENDING_GRACE);
        }
        ran
    }
}

/// [`HostCommands::run`] without the ending's grace.
fn run_on_host(command: &CommandLine, deadline: &Deadline) -> Result<Output, CommandError> {
    let shown = command.to_string();
    if deadline.expired() {
        return Err(CommandError::TimedOut {
            command: shown,
            budget: Duration::ZERO,
        });
    }
    let budget = deadline.remaining();
    log::debug!("running {shown} (budget {budget:?})");
    let window = SpawnWindow::open();
    let mut child = Command::new(&command.program)
        .args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| CommandError::Spawn {
            command: shown.clone(),
            source,
        })?;
    let group = Pid::from_raw(child_pid(&child));
    let _registered = Registered::new(group.as_raw());
    drop(window);
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let exited = wait_in_background(child);

    let status = match exited.recv_timeout(deadline.remaining()) {
        Ok(Ok(status)) => status,
        Ok(Err(source)) => {
            kill_group(group);
            return Err(CommandError::Wait {
                command: shown,
                source,
            });
        }
        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
            kill_group(group);
            // Reap it if it goes quickly; a child in uninterruptible sleep is left behind.
            let _ = exited.recv_timeout(REAP_GRACE);
            return Err(CommandError::TimedOut {
                command: shown,
                budget,
            });
        }
    };
    // A grandchild that kept the pipes open must not hold the agent past its deadline: end
    // the group and keep what was read, since the child itself has already answered.
    let collect = |stream: Receiver<Vec<u8>>| match stream.recv_timeout(deadline.remaining()) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            kill_group(group);
            stream.recv_timeout(REAP_GRACE).ok()
        }
    };
    let (Some(stdout), Some(stderr)) = (collect(stdout), collect(stderr)) else {
        return Err(CommandError::TimedOut {
            command: shown,
            budget,
        });
    };
    log::debug!("{shown} exited: {}", describe_status(status));
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// A readable description of how a program ended ("exit code 3", "killed by signal 9").
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "unknown status".to_owned(),
    }
}

fn child_pid(child: &Child) -> i32 {
    // Linux pids fit in i32 (pid_max is at most 2^22); the conversion cannot fail in practice.
    i32::try_from(child.id()).unwrap_or(i32::MAX)
}

fn kill_group(group: Pid) {
    // The group may be gone already; that is the outcome we wanted.
    let _ = killpg(group, Signal::SIGKILL);
}

fn drain(stream: Option<impl Read + Send + 'static>) -> Receiver<Vec<u8>> {
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut stream) = stream {
            let mut chunk = [0_u8; 8192];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                        kept.extend_from_slice(&chunk[..n.min(room)]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        let _ = done.send(kept);
    });
    result
}

fn wait_in_background(mut child: Child) -> Receiver<io::Result<ExitStatus>> {
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(script: &str) -> CommandLine {
        // Tests only: a shell is the easiest way to make a child misbehave on purpose.
        CommandLine::new("/bin/sh").arg("-c").arg(script)
    }

    /// Whether `signal` is pending for the calling thread alone.
    fn pending_on_this_thread(signal: Signal) -> bool {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let mask = status
            .lines()
            .find_map(|line| line.strip_prefix("SigPnd:"))
            .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
            .unwrap();
        mask & (1 << (signal as u32 - 1)) != 0
    }

    #[test]
    fn an_ending_on_the_spawning_thread_is_raised_again_once_the_child_is_recorded() {
        // A signal whose raise stays pending while blocked, so the test sees it without a handler.
        let watched = Signal::SIGWINCH;
        let mut blocked = SigSet::empty();
        blocked.add(watched);
        blocked.thread_block().unwrap();
        let window = SpawnWindow::open();
        assert_eq!(end_children(watched), ChildrenEnded::AfterTheSpawn);
        assert!(!pending_on_this_thread(watched), "raised inside the window");
        drop(window);
        assert!(
            pending_on_this_thread(watched),
            "not raised when the window closed"
        );
        assert_eq!(blocked.wait().unwrap(), watched);
        blocked.thread_unblock().unwrap();
    }

    #[test]
    fn a_child_starts_with_no_signal_blocked() {
        // The spawn window defers endings instead of blocking them: a child inheriting a blocked
        // SIGTERM would outlive the executor's attempt to end it.
        let deadline = Deadline::after(Duration::from_secs(10));
        let status = HostCommands
            .run(&sh("grep '^SigBlk:' /proc/self/status"), &deadline)
            .unwrap();
        assert_eq!(status.stdout_text(), "SigBlk:\t0000000000000000\n");
    }

    #[test]
    fn captures_stdout_stderr_and_status() {
        let deadline = Deadline::after(Duration::from_secs(10));
        let out = HostCommands
            .run(&sh("echo out; echo err >&2; exit 3"), &deadline)
            .unwrap();
        assert_eq!(out.stdout_text(), "out\n");
        assert_eq!(out.stderr_text(), "err\n");
        assert_eq!(out.code(), Some(3));
    }

    #[test]
    fn run_ok_puts_stderr_in_the_error() {
        let deadline = Deadline::after(Duration::from_secs(10));
        let err = HostCommands
            .run_ok(&sh("echo 'disk on fire' >&2; exit 2"), &deadline)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exit code 2"), "{text}");
        assert!(text.contains("disk on fire"), "{text}");
    }

    #[test]
    fn only_a_program_that_is_not_there_is_missing() {
        let spawn = |errno| CommandError::Spawn {
            command: "x".to_owned(),
            source: io::Error::from_raw_os_error(errno),
        };
        for errno in [nix::libc::ENOENT, nix::libc::EACCES] {
            assert!(spawn(errno).program_missing(), "{errno}");
        }
        for errno in [nix::libc::EAGAIN, nix::libc::ENOMEM, nix::libc::EMFILE] {
            assert!(!spawn(errno).program_missing(), "{errno}");
        }
        let timed_out = CommandError::TimedOut {
            command: "x".to_owned(),
            budget: Duration::ZERO,
        };
        assert!(!timed_out.program_missing());
        let deadline = Deadline::after(Duration::from_secs(5));
        let absent = HostCommands
            .run(&CommandLine::new("/nonexistent/clever-tool"), &deadline)
            .unwrap_err();
        assert!(absent.program_missing(), "{absent}");
        let plain =
            std::env::temp_dir().join(format!("clever-command-plain-{}", std::process::id()));
        std::fs::write(&plain, "not a program").unwrap();
        let not_executable = HostCommands
            .run(&CommandLine::new(&plain), &deadline)
            .unwrap_err();
        let _ = std::fs::remove_file(&plain);
        assert!(not_executable.program_missing(), "{not_executable}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let deadline = Deadline::after(Duration::from_secs(10));
        let err = HostCommands
            .run(&CommandLine::new("/nonexistent/tool"), &deadline)
            .unwrap_err();
        assert!(matches!(err, CommandError::Spawn { .. }), "{err}");
    }

    #[test]
    fn hanging_child_and_its_group_are_killed_at_the_deadline() {
        let marker = std::env::temp_dir().join(format!("clever-command-{}", std::process::id()));
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        let started = Instant::now();
        let err = HostCommands
            .run(&sh(&script), &Deadline::after(Duration::from_millis(300)))
            .unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        let grandchild: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = std::fs::remove_file(&marker);
        // The background sleep was in the same group and must be gone too (or a zombie of init).
        let gone = Deadline::after(Duration::from_secs(3)).poll(
            "grandchild",
            Duration::from_millis(5),
            || {
                let stat =
                    std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
                (stat.is_empty() || stat.contains(") Z ")).then_some(())
            },
        );
        assert!(gone.is_ok(), "grandchild {grandchild} survived");
    }

    #[test]
    fn grandchild_holding_the_pipe_does_not_hold_the_caller() {
        // The child exits at once; a background grandchild keeps stdout open. The runner waits
        // for the pipes only until the deadline, then ends the group and returns what the child
        // said and how it exited.
        let started = Instant::now();
        let output = HostCommands
            .run(
                &sh("echo done; sleep 30 & exit 0"),
                &Deadline::after(Duration::from_millis(300)),
            )
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(output.status.success());
        assert_eq!(output.stdout_text(), "done\n");
    }

    #[test]
    fn expired_deadline_spawns_nothing() {
        let deadline = Deadline::after(Duration::ZERO);
        let err = HostCommands
            .run(&CommandLine::new("/nonexistent/tool"), &deadline)
            .unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }));
    }

    #[test]
    fn shortened_text_is_one_line_of_at_most_the_limit() {
        assert_eq!(shorten("short", 64), "short");
        assert_eq!(shorten("a\nb\tc\0", 64), "a b c ");
        assert_eq!(
            shorten(&"x".repeat(10_000), 64),
            format!("{}…", "x".repeat(64))
        );
        assert_eq!(shorten(&"é".repeat(65), 64), format!("{}…", "é".repeat(64)));
        assert_eq!(shorten(&"x".repeat(64), 64), "x".repeat(64));
        assert_eq!(shorten("", 0), "");
    }

    #[test]
    fn display_quotes_arguments_with_spaces() {
        let line = CommandLine::new("crm_resource").args(["--resource", "a b", ""]);
        assert_eq!(line.to_string(), "crm_resource --resource 'a b' ''");
    }
}
