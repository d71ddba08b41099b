//! monitor: started here? Then probe, write the score, and compare it with failure_score.

use clever_ocf::{Context, Status};

use crate::attribute::Attribute;
use crate::error::GwpingError;
use crate::probe::Outcome;
use crate::score::{score, Score};
use crate::{attribute_reserve, Gwping, GwpingHost};

/// 0 while started on this node (after updating the attribute), 7 when not started. A probe
/// on a node where the resource is not started costs one `stat`.
pub fn monitor(
    agent: &Gwping,
    context: &Context,
    host: &GwpingHost<'_>,
) -> Result<Status, GwpingError> {
    if !agent.state_file(context, host).exists()? {
        return Ok(Status::NotRunning);
    }
    refresh(agent, context, host, Write::Dampened)
}

/// How the new value reaches attrd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// At start: into the CIB at once.
    Immediate,
    /// After the dampening delay.
    Dampened,
}

/// Probes, writes the score and checks `failure_score`: the work of start and monitor.
pub(crate) fn refresh(
    agent: &Gwping,
    context: &Context,
    host: &GwpingHost<'_>,
    write: Write,
) -> Result<Status, GwpingError> {
    let settings = &agent.settings;
    let program = host
        .attrd_updater
        .as_deref()
        .ok_or(GwpingError::MissingAttrdUpdater)?;
    let remaining = context.deadline.remaining();
    let probe_deadline = context
        .deadline
        .capped(remaining.saturating_sub(attribute_reserve(remaining)));
    let outcomes = host
        .prober
        .probe(&settings.hosts, &agent.probe_settings(), &probe_deadline)?;
    report(agent, &outcomes);
    let result = score(&settings.hosts, &outcomes, settings.multiplier);
    let attribute = Attribute {
        program,
        name: &settings.name,
        dampen: settings.dampen,
    };
    let written = match write {
        Write::Immediate => attribute.set_now(host.commands, result.value, &context.deadline),
        Write::Dampened => attribute.update(host.commands, result.value, &context.deadline),
    };
    written.map_err(|source| GwpingError::Attribute {
        name: settings.name.to_string(),
        source,
    })?;
    let summary = summary(&result);
    if settings.verbose {
        log::info!("{}={} ({summary})", settings.name, result.value);
    } else {
        log::debug!("{}={} ({summary})", settings.name, result.value);
    }
    match settings.failure_score {
        Some(failure_score) if result.value < failure_score => {
            Err(GwpingError::BelowFailureScore {
                score: result.value,
                failure_score,
                details: summary,
            })
        }
        _ => Ok(Status::Success),
    }
}

fn summary(result: &Score) -> String {
    format!("{} of {} hosts reachable", result.reachable, result.total)
}

/// Logs what each host did: unresolvable names always as warnings, unreachable hosts at info,
/// everything with `debug`.
fn report(agent: &Gwping, outcomes: &[Outcome]) {
    for (spec, outcome) in agent.settings.hosts.iter().zip(outcomes) {
        match outcome {
            Outcome::Unresolved { .. } => {
                log::warn!("{}: {outcome}; counted as unreachable", spec.host);
            }
            Outcome::Down { .. } => log::info!("{}: {outcome}", spec.host),
            Outcome::Up { .. } if agent.settings.verbose => {
                log::info!("{}: {outcome}", spec.host);
            }
            Outcome::Up { .. } => log::debug!("{}: {outcome}", spec.host),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fakes::{Commands, Probes};
    use crate::params::Settings;
    use clever_ocf::{Action, Deadline, Parameters};
    use std::ffi::OsString;
    use std::path::PathBuf;
    use std::time::Duration;

    pub(crate) fn agent(pairs: &[(&str, &str)]) -> Gwping {
        let parameters = Parameters::load(crate::DECLARATION.parameters, |key| {
            pairs
                .iter()
                .find(|(k, _)| format!("OCF_RESKEY_{k}") == key)
                .map(|(_, v)| OsString::from(*v))
        })
        .unwrap();
        Gwping {
            settings: Settings::from_parameters(&parameters).unwrap(),
        }
    }

    pub(crate) fn outcomes(up: &[bool]) -> Vec<Outcome> {
        up.iter()
            .map(|&up| {
                let address = "192.0.2.1".parse().unwrap();
                if up {
                    Outcome::Up {
                        address,
                        rtt: Duration::from_millis(1),
                    }
                } else {
                    Outcome::Down {
                        address,
                        refused: None,
                    }
                }
            })
            .collect()
    }

    pub(crate) fn run_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gwping-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    pub(crate) fn host<'a>(
        commands: &'a Commands,
        probes: &'a Probes,
        dir: &std::path::Path,
    ) -> GwpingHost<'a> {
        GwpingHost {
            commands,
            prober: probes,
            attrd_updater: Some(PathBuf::from("/usr/sbin/attrd_updater")),
            run_dir: dir.to_path_buf(),
        }
    }

    fn context(action: Action) -> Context {
        Context::for_test(action, Deadline::after(Duration::from_secs(10)))
    }

    #[test]
    fn not_started_is_7_without_probing() {
        let dir = run_dir("monitor-stopped");
        let (commands, probes) = (Commands::default(), Probes::default());
        let agent = agent(&[("host_list", "192.0.2.1")]);
        let status = monitor(
            &agent,
            &context(Action::Monitor),
            &host(&commands, &probes, &dir),
        );
        assert_eq!(status.unwrap(), Status::NotRunning);
        assert_eq!(*probes.count.borrow(), 0);
        assert!(commands.seen.borrow().is_empty());
    }

    #[test]
    fn started_monitor_writes_the_dampened_score() {
        let dir = run_dir("monitor-started");
        let commands = Commands::default();
        let probes = Probes {
            outcomes: outcomes(&[true, false, true]),
            ..Probes::default()
        };
        let agent = agent(&[
            ("host_list", "192.0.2.1=5 192.0.2.2 192.0.2.3=2"),
            ("multiplier", "10"),
        ]);
        let b = host(&commands, &probes, &dir);
        agent
            .state_file(&context(Action::Monitor), &b)
            .create()
            .unwrap();
        assert_eq!(
            monitor(&agent, &context(Action::Monitor), &b).unwrap(),
            Status::Success
        );
        assert_eq!(
            *commands.seen.borrow(),
            ["/usr/sbin/attrd_updater --name=pingd --update-both=70 --delay=5s"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn below_failure_score_fails_after_writing() {
        let dir = run_dir("monitor-failure");
        let commands = Commands::default();
        let probes = Probes {
            outcomes: outcomes(&[false, true]),
            ..Probes::default()
        };
        let agent = agent(&[
            ("host_list", "192.0.2.1=3 192.0.2.2"),
            ("failure_score", "2"),
        ]);
        let b = host(&commands, &probes, &dir);
        agent
            .state_file(&context(Action::Monitor), &b)
            .create()
            .unwrap();
        let err = monitor(&agent, &context(Action::Monitor), &b).unwrap_err();
        assert!(matches!(
            err,
            GwpingError::BelowFailureScore {
                score: 1,
                failure_score: 2,
                ..
            }
        ));
        assert_eq!(commands.seen.borrow().len(), 1);
        // At the threshold is not below it.
        let probes = Probes {
            outcomes: outcomes(&[true, false]),
            ..Probes::default()
        };
        let b = host(&commands, &probes, &dir);
        assert_eq!(
            monitor(&agent, &context(Action::Monitor), &b).unwrap(),
            Status::Success
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Only a missing attrd_updater (or one that may not be executed) is "not installed", on
    /// which Pacemaker bans the resource from the node; a fork that fails for want of resources
    /// is an ordinary error.
    #[test]
    fn attrd_updater_that_cannot_start_is_not_installed_only_when_missing() {
        use clever_ocf::HasExitCode;
        let dir = run_dir("monitor-cannot-start");
        let agent = agent(&[("host_list", "192.0.2.1")]);
        for (errno, code) in [
            (nix::libc::EAGAIN, 1),
            (nix::libc::ENOMEM, 1),
            (nix::libc::ENOENT, 5),
            (nix::libc::EACCES, 5),
        ] {
            let commands = Commands {
                cannot_start: Some(errno),
                ..Commands::default()
            };
            let probes = Probes {
                outcomes: outcomes(&[true]),
                ..Probes::default()
            };
            let b = host(&commands, &probes, &dir);
            agent
                .state_file(&context(Action::Monitor), &b)
                .create()
                .unwrap();
            let err = monitor(&agent, &context(Action::Monitor), &b).unwrap_err();
            assert!(matches!(err, GwpingError::Attribute { .. }), "{err}");
            assert_eq!(err.exit_code().code(), code, "errno {errno}: {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn attrd_failure_is_an_error_with_its_stderr() {
        let dir = run_dir("monitor-attrd");
        let commands = Commands {
            exit: 1,
            ..Commands::default()
        };
        let probes = Probes {
            outcomes: outcomes(&[true]),
            ..Probes::default()
        };
        let agent = agent(&[("host_list", "192.0.2.1")]);
        let b = host(&commands, &probes, &dir);
        agent
            .state_file(&context(Action::Monitor), &b)
            .create()
            .unwrap();
        let err = monitor(&agent, &context(Action::Monitor), &b).unwrap_err();
        assert!(err.to_string().contains("connection refused"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
