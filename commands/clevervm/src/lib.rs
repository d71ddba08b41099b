//! `clevervm`: what admins of the Clever cluster type, from either node.
//!
//! `status` reads Pacemaker, DRBD, the mounts, libvirt and the hibernation images and puts the
//! problems first; the other verbs act through Pacemaker (`forcestart`, `forcestop`, `cleanup`,
//! `migrate`, `unmigrate`) or, with a warning, directly on libvirt (`start`, `stop`). It is an
//! LSB init script too: exit codes follow LSB, and `status` answers 0 running, 3 stopped,
//! 4 unknown.

pub mod cli;
pub mod collect;
pub mod direct;
pub mod error;
pub mod model;
pub mod problems;
pub mod render;
pub mod timeline;
pub mod verbs;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use clever_command::{HostCommands, RunCommand};
use clever_deadline::Deadline;
use clever_ocf::lsb::{LsbExitCode, LsbStatusCode};
use clever_pacemaker::{Pacemaker, TargetRole};

use crate::cli::{Cli, Verb};
use crate::collect::{collect, Sources};
use crate::error::ClevervmError;
use crate::model::{ClusterView, Snapshot};

/// The process entry point.
pub fn main() -> ExitCode {
    // Before any thread starts (the mask is inherited): Ctrl-C or an init system's SIGTERM
    // must not leave a crm_resource or virsh running in its own process group.
    clever_command::end_children_on_termination(last_words);
    let cli = Cli::parse();
    let mut sources = Sources::live(HostCommands);
    if let Some(file) = &cli.cib_file {
        sources.pacemaker = Pacemaker::on_file(HostCommands, file);
        sources.cib_on_disk.clone_from(file);
    }
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let code = run(
        &cli,
        &sources,
        &mut std::io::stdout(),
        &mut stdin.lock(),
        interactive,
    );
    ExitCode::from(code)
}

#[allow(
    clippy::exit,
    reason = "a termination signal ends clevervm with a reason once its children are gone"
)]
fn last_words(signal: nix::sys::signal::Signal) {
    let _ = writeln!(
        std::io::stderr(),
        "clevervm: ended by {signal}; the programs it ran were killed"
    );
    std::process::exit(i32::from(LsbExitCode::Generic.code()));
}

/// Runs one verb; returns the LSB exit code. Errors are reported here, in one place.
pub fn run<R: RunCommand + Clone>(
    cli: &Cli,
    sources: &Sources<R>,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
    interactive: bool,
) -> u8 {
    if let Verb::Status { json } = cli.verb {
        return status(cli, sources, json, out).code();
    }
    match act(cli, sources, out, input, interactive) {
        Ok(()) => LsbExitCode::Success.code(),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "clevervm: {e}");
            e.exit_code().code()
        }
    }
}

fn status<R: RunCommand + Clone>(
    cli: &Cli,
    sources: &Sources<R>,
    json: bool,
    out: &mut dyn Write,
) -> LsbStatusCode {
    let mut snapshot = collect(sources, &Deadline::after(cli.timeout()));
    if cli.node.is_some() {
        snapshot.node.clone_from(&cli.node);
    }
    let code = status_code(&snapshot);
    let report = StatusReport::of(snapshot);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => {
                let _ = writeln!(out, "{text}");
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "clevervm: {e}");
                return LsbStatusCode::Unknown;
            }
        }
    } else {
        let _ = write!(out, "{}", render::render(&report.status, &report.problems));
    }
    code
}

/// What `status --json` prints and the web console shows: one model for both, so neither ever
/// reads the other's rendering.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StatusReport {
    pub problems: Vec<problems::Problem>,
    pub status: Snapshot,
}

impl StatusReport {
    pub fn of(snapshot: Snapshot) -> Self {
        Self {
            problems: problems::problems(&snapshot),
            status: snapshot,
        }
    }
}

/// LSB status: 0 when every VM runs, 3 when one is stopped, 4 when the cluster cannot tell (or
/// its configuration cannot be read, so whether a VM is configured is unknown).
pub fn status_code(snapshot: &Snapshot) -> LsbStatusCode {
    match &snapshot.cluster {
        ClusterView::Down { .. } => LsbStatusCode::Unknown,
        ClusterView::Up(_) if snapshot.configuration_error.is_some() => LsbStatusCode::Unknown,
        ClusterView::Up(_) if snapshot.vms.is_empty() => LsbStatusCode::Stopped,
        ClusterView::Up(_) if snapshot.vms.iter().all(|vm| !vm.running_on.is_empty()) => {
            LsbStatusCode::Running
        }
        ClusterView::Up(_) => LsbStatusCode::Stopped,
    }
}

fn act<R: RunCommand + Clone>(
    cli: &Cli,
    sources: &Sources<R>,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
    interactive: bool,
) -> Result<(), ClevervmError> {
    let deadline = Deadline::after(cli.timeout());
    let pacemaker = &sources.pacemaker;
    let this_node = || -> Result<String, ClevervmError> {
        match &cli.node {
            Some(node) => Ok(node.clone()),
            None => pacemaker
                .local_node(&deadline)
                .map_err(|_| ClevervmError::LocalNodeUnknown),
        }
    };
    match &cli.verb {
        Verb::Status { .. } => Ok(()),
        Verb::Forcestart => {
            let stack = verbs::discover(pacemaker, &deadline)?;
            verbs::set_target_role(pacemaker, &stack, TargetRole::Started, out, &deadline)
        }
        Verb::Forcestop => {
            let stack = verbs::discover(pacemaker, &deadline)?;
            verbs::set_target_role(pacemaker, &stack, TargetRole::Stopped, out, &deadline)
        }
        Verb::Cleanup => verbs::cleanup(pacemaker, out, &deadline),
        Verb::Migrate {
            to,
            wait,
            wait_timeout,
        } => {
            let stack = verbs::discover(pacemaker, &deadline)?;
            let node = this_node()?;
            verbs::migrate(pacemaker, &stack, &node, to.as_deref(), out, &deadline)?;
            if *wait {
                verbs::follow(
                    pacemaker,
                    &stack,
                    &node,
                    to.as_deref(),
                    std::time::Duration::from_secs(*wait_timeout),
                    out,
                )?;
            }
            Ok(())
        }
        Verb::Unmigrate => {
            let stack = verbs::discover(pacemaker, &deadline)?;
            verbs::unmigrate(pacemaker, &stack, out, &deadline)
        }
        Verb::Start { yes } => {
            let stack = verbs::discover(pacemaker, &deadline)?;
            verbs::confirm(
                "start bypasses Pacemaker: if the cluster has the VM stopped, this creates an \
                 inconsistency you must clean up by hand (clevervm forcestart is the safe way)",
                *yes,
                interactive,
                input,
                out,
            )?;
            direct::start(
                &sources.runner,
                pacemaker,
                &stack,
                &direct_host(this_node()?),
                out,
                &deadline,
            )
        }
        Verb::Stop { yes } => {
            let stack = verbs::discover(pacemaker, &deadline)?;
            verbs::confirm(
                "stop bypasses Pacemaker: the cluster will start the VM again (clevervm \
                 forcestop is the safe way)",
                *yes,
                interactive,
                input,
                out,
            )?;
            direct::stop(
                &sources.runner,
                pacemaker,
                &stack,
                &direct_host(this_node()?),
                out,
                &deadline,
            )
        }
    }
}

fn direct_host(node: String) -> direct::Host {
    direct::Host {
        node,
        libvirt_save_dir: std::path::PathBuf::from(direct::LIBVIRT_SAVE_DIR),
    }
}
