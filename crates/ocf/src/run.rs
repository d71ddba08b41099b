//! The one entry point of every agent: the order of checks, the exit code, the exit reason.

use std::io::Write;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clever_deadline::Deadline;

use crate::action::Action;
use crate::context::{Context, Invocation};
use crate::declaration::{Agent, Declaration};
use crate::logging::{ClusterLog, LogSettings};
use crate::metadata::metadata_xml;
use crate::parameter::Parameters;
use crate::status::{HasExitCode, OcfExitCode};

/// The action being run, for the reason given when a signal ends it.
static RUNNING_ACTION: OnceLock<Action> = OnceLock::new();

/// The prefix Pacemaker looks for on stderr and shows in `crm_mon` as the failure's reason.
pub const EXIT_REASON_PREFIX: &str = "ocf-exit-reason:";

/// Runs the agent as Pacemaker calls it and returns the exit code for `main`.
///
/// Beyond [`run_with`], it installs what only a real process can have: the cluster logger, a
/// panic hook that still gives an exit reason, and a watchdog that ends the process just before
/// Pacemaker would kill it, so even a call stuck in the kernel yields an answer and a reason.
pub fn run<A: Agent>(declaration: &'static Declaration<A>) -> ExitCode {
    install_panic_hook(declaration.name);
    let invocation = Invocation::from_process();
    if is_framework_only(&invocation) {
        let code = run_with(
            declaration,
            &invocation,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        );
        return code.into();
    }
    // First, before any thread exists: the signal mask is inherited by threads started later.
    install_termination(declaration.name);
    ClusterLog::install(LogSettings::from_invocation(declaration.name, &invocation));
    dispatch(
        declaration,
        &invocation,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        &mut |action, deadline| {
            let _ = RUNNING_ACTION.set(action);
            start_watchdog(declaration.name, action, deadline);
        },
    )
    .into()
}

/// The dispatch itself, on a given invocation and streams: what the unit tests exercise.
pub fn run_with<A: Agent>(
    declaration: &Declaration<A>,
    invocation: &Invocation,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> OcfExitCode {
    dispatch(declaration, invocation, out, err, &mut |_, _| {})
}

/// Dispatch, telling `on_deadline` the action's deadline as soon as it is known (the process
/// starts its watchdog there; tests do nothing).
fn dispatch<A: Agent>(
    declaration: &Declaration<A>,
    invocation: &Invocation,
    out: &mut dyn Write,
    err: &mut dyn Write,
    on_deadline: &mut dyn FnMut(Action, Deadline),
) -> OcfExitCode {
    let Some(word) = invocation.args().first() else {
        let _ = writeln!(err, "{}", declaration.usage());
        return OcfExitCode::ErrArgs;
    };
    let word = word.to_string_lossy();
    match word.as_ref() {
        "meta-data" => {
            return match metadata_xml(declaration) {
                Ok(xml) => match out.write_all(xml.as_bytes()) {
                    Ok(()) => OcfExitCode::Success,
                    Err(_) => OcfExitCode::ErrGeneric,
                },
                Err(e) => fail(err, OcfExitCode::ErrGeneric, &format!("metadata: {e}")),
            };
        }
        "usage" | "help" | "--help" | "-h" => {
            let _ = write!(out, "{}", declaration.help());
            return OcfExitCode::Success;
        }
        "version" | "--version" => {
            let _ = writeln!(out, "{} {}", declaration.name, declaration.version);
            return OcfExitCode::Success;
        }
        _ => {}
    }
    let Some(spec) = word
        .parse::<Action>()
        .ok()
        .and_then(|action| declaration.action(action))
    else {
        let reason = format!(
            "action {:?} is not implemented by {}",
            shorten(&word),
            declaration.name
        );
        return fail(err, OcfExitCode::ErrUnimplemented, &reason);
    };
    let action = spec.action;
    let deadline = match action_timeout(invocation, spec.timeout()) {
        Ok(timeout) => Deadline::from_timeout(timeout),
        Err(reason) => return fail(err, OcfExitCode::ErrConfigured, &reason),
    };
    on_deadline(action, deadline);
    let context = match Context::new(action, deadline, invocation, declaration.name) {
        Ok(context) => context,
        Err(reason) => return fail(err, OcfExitCode::ErrConfigured, &reason),
    };
    log::debug!(
        "{action} begins (timeout {:?}, probe {}, depth {})",
        deadline.timeout(),
        context.probe,
        context.check_level
    );
    let agent = match Parameters::load(declaration.parameters, |key| invocation.var_os(key))
        .and_then(|parameters| A::configure(&parameters))
    {
        Ok(agent) => agent,
        Err(e) => return fail(err, e.exit_code(), &e.to_string()),
    };
    if let Err(e) = agent.check_host(&context) {
        let code = e.exit_code();
        if code == OcfExitCode::ErrInstalled && context.probe {
            log::info!("probe: {e}; the resource cannot be running on this node");
            return OcfExitCode::NotRunning;
        }
        return fail(err, code, &e.to_string());
    }
    match (spec.handler)(&agent, &context) {
        Ok(status) => {
            let code = status.exit_code();
            match status.reason() {
                Some(reason) => {
                    log::warn!("{action}: {reason}");
                    exit_reason(err, reason);
                }
                None => log::debug!("{action} returns {code}"),
            }
            code
        }
        Err(e) => fail(err, e.exit_code(), &e.to_string()),
    }
}

/// The operation timeout Pacemaker gave, else the declared default (a run by hand).
fn action_timeout(invocation: &Invocation, declared: Duration) -> Result<Duration, String> {
    Ok(invocation
        .millis("OCF_RESKEY_CRM_meta_timeout")?
        .filter(|t| !t.is_zero())
        .unwrap_or(declared))
}

fn is_framework_only(invocation: &Invocation) -> bool {
    matches!(
        invocation.args().first().and_then(|a| a.to_str()),
        None | Some("meta-data" | "usage" | "help" | "--help" | "-h" | "version" | "--version")
    )
}

fn fail(err: &mut dyn Write, code: OcfExitCode, reason: &str) -> OcfExitCode {
    log::error!("{reason}");
    exit_reason(err, reason);
    code
}

/// Writes the exit reason as the single line Pacemaker parses.
fn exit_reason(err: &mut dyn Write, reason: &str) {
    let _ = writeln!(err, "{EXIT_REASON_PREFIX}{}", one_line(reason));
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

#[allow(
    clippy::exit,
    reason = "the panic hook must end the process with an OCF code"
)]
fn install_panic_hook(agent: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let reason = format!("internal error in {agent}: {info}");
        let _ = writeln!(
            std::io::stderr(),
            "{EXIT_REASON_PREFIX}{}",
            one_line(&reason)
        );
        std::process::exit(i32::from(OcfExitCode::ErrGeneric.code()));
    }));
}

/// An executor ends an agent at its timeout with SIGTERM (an admin with SIGINT or SIGHUP): the
/// programs it runs lead process groups of their own, which that signal does not reach, so they
/// are killed (by `clever_command`), and the answer says what happened.
fn install_termination(agent: &'static str) {
    clever_command::end_children_on_termination(move |signal| {
        let action = RUNNING_ACTION
            .get()
            .map_or_else(|| "action".to_owned(), ToString::to_string);
        end_action(&format!(
            "{agent} {action} was ended by {signal}; the programs it ran were killed"
        ));
    });
}

fn start_watchdog(agent: &'static str, action: Action, deadline: Deadline) {
    let hard_stop = deadline.hard_stop();
    let timeout = deadline.timeout();
    std::thread::spawn(move || {
        let now = Instant::now();
        if hard_stop > now {
            std::thread::sleep(hard_stop - now);
        }
        end_action(&format!(
            "{agent} {action} did not finish within its {timeout:?} timeout and was ended"
        ));
    });
}

/// Ends the process from a thread other than the action's: its children first (they lead
/// groups of their own, nothing else would end them), then the reason and exit code 1.
#[allow(
    clippy::exit,
    reason = "a stuck or signalled action still ends with an OCF code and a reason"
)]
fn end_action(reason: &str) -> ! {
    clever_command::end_children();
    log::error!("{reason}");
    let _ = writeln!(std::io::stderr(), "{EXIT_REASON_PREFIX}{reason}");
    std::process::exit(i32::from(OcfExitCode::ErrGeneric.code()));
}
