//! validate-all: parameters (checked by the framework), attrd_updater (check_host), names,
//! and whether ICMP sockets can be opened here.

use clever_ocf::{Context, Status};

use crate::error::GwpingError;
use crate::probe::{Outcome, ProbeSettings};
use crate::{Gwping, GwpingHost};

/// Resolves every name, warning about those that do not resolve (they count as unreachable
/// until they do), and opens the ICMP sockets the hosts need, bound to `interface` if set: a
/// probe with no attempts, so no packet is sent.
pub fn validate(
    agent: &Gwping,
    context: &Context,
    host: &GwpingHost<'_>,
) -> Result<Status, GwpingError> {
    let no_packets = ProbeSettings {
        attempts: 0,
        ..agent.probe_settings()
    };
    let hosts = &agent.settings.hosts;
    let outcomes = host.prober.probe(hosts, &no_packets, &context.deadline)?;
    for (spec, outcome) in hosts.iter().zip(&outcomes) {
        if let Outcome::Unresolved { reason } = outcome {
            log::warn!(
                "host {} does not resolve ({reason}); it counts as unreachable",
                spec.host
            );
        }
    }
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{Commands, Probes};
    use crate::monitor::tests::{agent, host, run_dir};
    use clever_ocf::{Action, Deadline};
    use std::time::Duration;

    #[test]
    fn unresolvable_names_are_warnings_and_nothing_is_written() {
        let dir = run_dir("validate");
        let commands = Commands::default();
        let probes = Probes {
            outcomes: vec![Outcome::Unresolved {
                reason: "no such name".into(),
            }],
            ..Probes::default()
        };
        let agent = agent(&[("host_list", "gw.invalid")]);
        let context =
            Context::for_test(Action::ValidateAll, Deadline::after(Duration::from_secs(5)));
        let status = validate(&agent, &context, &host(&commands, &probes, &dir));
        assert_eq!(status.unwrap(), Status::Success);
        assert_eq!(*probes.count.borrow(), 1);
        assert!(commands.seen.borrow().is_empty());
        assert!(!dir.exists(), "validate-all must not create state");
    }
}
