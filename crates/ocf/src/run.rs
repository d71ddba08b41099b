//! The one entry point of every agent: the order of checks, the exit code, the exit reason.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clever_command::{shorten, SHOWN_VALUE_LEN};
use clever_deadline::Deadline;

use crate::action::Action;
use crate::context::{Context, Invocation};
use crate::declaration::{Agent, Declaration};
use crate::logging::{ClusterLog, LogSettings};
use crate::metadata::metadata_xml;
use crate::parameter::Parameters;
use crate::status::{HasExitCode, OcfExitCode};
use crate::watchdog;

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
    ClusterLog::install(LogSettings::from_invocation(declaration.name, &invocation));
    dispatch(
        declaration,
        &invocation,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        &mut |action, deadline| start_watchdog(declaration.name, action, deadline),
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
            shorten(&word, SHOWN_VALUE_LEN),
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
    let host = agent.host(&context);
    match (spec.handler)(&agent, &context, &host) {
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

/// Arms the watchdog that ends the process just before Pacemaker would kill it, and the
/// handlers of the signals with which an executor (at its timeout) or an admin ends it early. The
/// programs an action runs lead process groups of their own, which neither reaches, so both kill
/// them (`clever_command::end_children`) before answering with a reason.
fn start_watchdog(agent: &'static str, action: Action, deadline: Deadline) {
    let timeout = deadline.timeout();
    let line = |reason: String| format!("{EXIT_REASON_PREFIX}{reason}\n");
    let endings = watchdog::Endings {
        timeout: line(format!(
            "{agent} {action} did not finish within its {timeout:?} timeout and was ended"
        )),
        signalled: clever_command::TERMINATING.map(|signal| {
            (
                signal,
                line(format!(
                    "{agent} {action} was ended by {signal}; the programs it ran were killed"
                )),
            )
        }),
    };
    if let Err(e) = watchdog::arm(deadline.hard_stop(), endings) {
        // The action still has its own deadlines; only a stuck kernel call loses its reason.
        log::warn!("{agent} {action}: no watchdog ({e}); Pacemaker's timeout is the last resort");
    }
}
