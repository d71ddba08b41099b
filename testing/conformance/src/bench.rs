//! Benchmark rows: our agent's action against the stock agent's same action, same backend, same
//! run. Runs alternate between the two so that machine noise hits both alike; each row reports
//! medians, their ratio, and how many processes each action spawned (counted with strace).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clever_command::{CommandError, CommandLine, HostCommands, RunCommand};
use clever_deadline::Deadline;

/// One side of a row: an agent, an action and its environment.
#[derive(Debug, Clone)]
pub struct AgentCall {
    pub agent: PathBuf,
    pub action: String,
    pub environment: BTreeMap<String, String>,
}

impl AgentCall {
    fn command(&self) -> CommandLine {
        let mut command = CommandLine::new(&self.agent).arg(&self.action);
        for (key, value) in &self.environment {
            command = command.env(key, value);
        }
        command
    }
}

/// A comparison to measure.
#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub ours: AgentCall,
    pub stock: AgentCall,
    /// The exit code both sides must give; a benchmark of a failing action measures nothing.
    pub expected_code: i32,
}

/// What one row measured.
#[derive(Debug, Clone)]
pub struct Measured {
    pub label: String,
    pub runs: usize,
    pub ours_median: Duration,
    pub stock_median: Duration,
    pub ours_processes: usize,
    pub stock_processes: usize,
}

impl Measured {
    /// How many times faster ours is (stock median / our median).
    pub fn speedup(&self) -> f64 {
        self.stock_median.as_secs_f64() / self.ours_median.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Measured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<44} {:>10.2?} {:>10.2?} {:>8.1}x {:>6} {:>6}",
            self.label,
            self.ours_median,
            self.stock_median,
            self.speedup(),
            self.ours_processes,
            self.stock_processes
        )
    }
}

/// The header matching [`Measured`]'s display.
pub fn header() -> String {
    format!(
        "{:<44} {:>10} {:>10} {:>9} {:>6} {:>6}",
        "row (runs alternate)", "ours", "stock", "speedup", "procs", "stock"
    )
}

/// A benchmark could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{label}: {side} gave exit code {got:?}, expected {expected}: {stderr}")]
    WrongAnswer {
        label: String,
        side: &'static str,
        got: Option<i32>,
        expected: i32,
        stderr: String,
    },
    #[error(transparent)]
    Command(#[from] CommandError),
}

const CALL_BUDGET: Duration = Duration::from_secs(120);

/// Times one call with as little harness overhead as possible: no pipes, no helper threads
/// (both sides would pay them, which hides the difference between a fast agent and a slow one).
fn time_once(row: &Row, side: &'static str, call: &AgentCall) -> Result<Duration, BenchError> {
    let mut command = std::process::Command::new(&call.agent);
    command
        .arg(&call.action)
        .envs(&call.environment)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let started = Instant::now();
    let status = command.status().map_err(|source| CommandError::Spawn {
        command: call.command().to_string(),
        source,
    })?;
    let took = started.elapsed();
    if status.code() != Some(row.expected_code) {
        // Run it again through the bounded runner to show why.
        let output = HostCommands.run(&call.command(), &Deadline::after(CALL_BUDGET))?;
        return Err(BenchError::WrongAnswer {
            label: row.label.clone(),
            side,
            got: output.code(),
            expected: row.expected_code,
            stderr: output.stderr_text().trim().to_owned(),
        });
    }
    Ok(took)
}

/// Processes a call spawns besides itself, from strace's record of successful execve calls.
pub fn processes_spawned(call: &AgentCall) -> Result<usize, BenchError> {
    let trace = std::env::temp_dir().join(format!("clever-bench-{}.strace", std::process::id()));
    let mut command = CommandLine::new("strace")
        .args(["-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o"])
        .arg(&trace)
        .arg(&call.agent)
        .arg(&call.action);
    for (key, value) in &call.environment {
        command = command.env(key, value);
    }
    HostCommands
        .run_ok(&command, &Deadline::after(CALL_BUDGET))
        .or_else(|e| match e {
            // The traced action's own exit code is not strace's concern here.
            CommandError::Failed { .. } => Ok(clever_command::Output {
                status: std::process::ExitStatus::default(),
                stdout: Vec::new(),
                stderr: Vec::new(),
            }),
            other => Err(other),
        })?;
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_file(&trace);
    let execs = text
        .lines()
        .filter(|l| l.contains("execve(") && l.trim_end().ends_with("= 0"))
        .count();
    Ok(execs.saturating_sub(1))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Measures `row` with `runs` alternating runs per side after one warm-up each.
pub fn measure(row: &Row, runs: usize) -> Result<Measured, BenchError> {
    time_once(row, "ours", &row.ours)?;
    time_once(row, "stock", &row.stock)?;
    let mut ours = Vec::with_capacity(runs);
    let mut stock = Vec::with_capacity(runs);
    for _ in 0..runs {
        ours.push(time_once(row, "ours", &row.ours)?);
        stock.push(time_once(row, "stock", &row.stock)?);
    }
    Ok(Measured {
        label: row.label.clone(),
        runs,
        ours_median: median(ours),
        stock_median: median(stock),
        ours_processes: processes_spawned(&row.ours)?,
        stock_processes: processes_spawned(&row.stock)?,
    })
}

/// The binary `make install` ships as `name`: the statically linked build when the Makefile made
/// one (it exports `CLEVER_STATIC_DIR`), else `built`, cargo's own build for the bench. A bench
/// must time what admins run, and the two differ by the dynamic loader's work.
pub fn shipped_binary(name: &str, built: &str) -> PathBuf {
    std::env::var_os("CLEVER_STATIC_DIR")
        .map(|dir| PathBuf::from(dir).join(name))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(built))
}
