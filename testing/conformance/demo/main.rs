//! A demo agent for the harness self-test: a Dummy-like resource whose "backend" is an
//! executable it runs on every action. `DEMO_AGENT_BUG=<rule>` makes it break one rule on purpose,
//! so the self-test proves the harness catches each violation. Never installed.

use std::path::PathBuf;
use std::process::ExitCode;

use clever_command::{CommandError, CommandLine, HostCommands, RunCommand};
use clever_ocf::{
    AbsolutePath, Action, ActionSpec, Agent, Context, Declaration, HasExitCode, OcfExitCode,
    Parameter, ParameterError, Parameters, Status,
};

static STATE_DIR: Parameter<AbsolutePath> = Parameter::new(
    "state_dir",
    "Directory of the state file",
    "Directory where the demo keeps one file per started instance.",
)
.required();
static BACKEND: Parameter<AbsolutePath> = Parameter::new(
    "backend",
    "Backend health check",
    "Executable run on start, stop and monitor when set; a hanging one stands for a stuck backend.",
);

#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error("backend check failed: {0}")]
    Backend(#[from] CommandError),
    #[error("state file {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("demo fault {0} is on")]
    Fault(&'static str),
}

impl HasExitCode for DemoError {
    fn exit_code(&self) -> OcfExitCode {
        OcfExitCode::ErrGeneric
    }
}

#[derive(Debug)]
struct Demo {
    state_dir: AbsolutePath,
    backend: Option<AbsolutePath>,
}

impl Agent for Demo {
    type Error = DemoError;

    fn configure(parameters: &Parameters) -> Result<Self, ParameterError> {
        Ok(Self {
            state_dir: STATE_DIR.get(parameters)?,
            backend: BACKEND.optional(parameters)?,
        })
    }

    fn check_host(&self, _context: &Context) -> Result<(), DemoError> {
        Ok(())
    }

    /// The demo's one way out to the machine: its backend program.
    type Host = HostCommands;

    fn host(&self, _context: &Context) -> HostCommands {
        HostCommands
    }
}

impl Demo {
    fn state_file(&self, context: &Context) -> PathBuf {
        self.state_dir
            .as_path()
            .join(format!("{}.state", context.instance))
    }

    fn running(&self, context: &Context) -> bool {
        self.state_file(context).exists()
    }

    fn backend(&self, context: &Context, host: &HostCommands) -> Result<(), DemoError> {
        if bug("stuck-in-kernel") && self.backend.is_some() {
            // Stands for a call no deadline can interrupt (I/O on a dead device): only the
            // framework's watchdog can still answer Pacemaker in time.
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
        if let Some(backend) = &self.backend {
            host.run_ok(&CommandLine::new(backend.as_path()), &context.deadline)?;
        }
        Ok(())
    }
}

fn bug(name: &str) -> bool {
    std::env::var("DEMO_AGENT_BUG").is_ok_and(|bug| bug == name)
}

fn start(demo: &Demo, context: &Context, host: &HostCommands) -> Result<Status, DemoError> {
    if demo.running(context) && bug("start-twice") {
        return Err(DemoError::Fault("start-twice"));
    }
    demo.backend(context, host)?;
    let path = demo.state_file(context);
    std::fs::write(&path, b"started\n").map_err(|source| DemoError::State { path, source })?;
    Ok(Status::Success)
}

fn stop(demo: &Demo, context: &Context, host: &HostCommands) -> Result<Status, DemoError> {
    if !demo.running(context) {
        return if bug("stop-twice") {
            Err(DemoError::Fault("stop-twice"))
        } else {
            Ok(Status::Success)
        };
    }
    demo.backend(context, host)?;
    let path = demo.state_file(context);
    std::fs::remove_file(&path).map_err(|source| DemoError::State { path, source })?;
    Ok(Status::Success)
}

fn monitor(demo: &Demo, context: &Context, host: &HostCommands) -> Result<Status, DemoError> {
    if bug("panic") {
        let empty: Vec<u8> = Vec::new();
        let _ = empty[usize::from(context.probe) + 1];
    }
    if !demo.running(context) {
        if context.probe && bug("probe-error") {
            return Err(DemoError::Fault("probe-error"));
        }
        if bug("monitor-stopped") {
            return Ok(Status::Success);
        }
        return Ok(Status::NotRunning);
    }
    demo.backend(context, host)?;
    Ok(Status::Success)
}

fn validate(_demo: &Demo, _context: &Context, _host: &HostCommands) -> Result<Status, DemoError> {
    Ok(Status::Success)
}

static DEMO: Declaration<Demo> = Declaration {
    name: "demo",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "Harness self-test agent",
    longdesc: "A Dummy-like agent used only to prove the conformance harness catches violations.",
    parameters: &[&STATE_DIR, &BACKEND],
    actions: &[
        ActionSpec::new(Action::Start, 20, start),
        ActionSpec::new(Action::Stop, 20, stop),
        ActionSpec::new(Action::Monitor, 20, monitor).interval(10),
        ActionSpec::new(Action::ValidateAll, 20, validate),
    ],
};

/// Faults that bypass the framework: they are exactly what the framework exists to prevent, so
/// only code outside it can commit them.
#[allow(
    clippy::exit,
    reason = "the demo imitates agents that exit on their own"
)]
fn bypass_framework() {
    let action = std::env::args().nth(1).unwrap_or_default();
    let bug = std::env::var("DEMO_AGENT_BUG").unwrap_or_default();
    match (bug.as_str(), action.as_str()) {
        ("metadata-invalid", "meta-data") => {
            print!("<?xml version=\"1.0\"?>\n<resource-agent name=\"demo\"><version>1.1</version></resource-agent>\n");
            std::process::exit(0);
        }
        ("unknown-action", a)
            if a.parse::<Action>().is_err() && a != "meta-data" && !a.is_empty() =>
        {
            std::process::exit(0);
        }
        ("validate-missing", "validate-all") => std::process::exit(0),
        ("silent-failure", "validate-all")
            if std::env::var_os("OCF_RESKEY_state_dir").is_none() =>
        {
            std::process::exit(6);
        }
        ("ignore-timeout", "start" | "stop" | "monitor")
            if std::env::var_os("OCF_RESKEY_backend").is_some() =>
        {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
        _ => {}
    }
}

fn main() -> ExitCode {
    bypass_framework();
    clever_ocf::run(&DEMO)
}
