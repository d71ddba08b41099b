//! stop: forget the started state and delete the attribute.

use clever_ocf::{Context, Status};

use crate::attribute::Attribute;
use crate::error::GwpingError;
use crate::state::StateError;
use crate::{Gwping, GwpingHost};

/// Removes the state file, then deletes the attribute so `not_defined` rules apply. A failed
/// deletion is logged but does not fail the stop: a failed stop gets the node fenced, a stale
/// attribute does not (the stock agent decides the same).
pub fn stop(
    agent: &Gwping,
    context: &Context,
    host: &GwpingHost<'_>,
) -> Result<Status, GwpingError> {
    match agent.state_file(context, host).remove() {
        Ok(()) => {}
        // Not ours (a pidfile pointing elsewhere): leave it, as a started gwping never had it.
        Err(e @ (StateError::Foreign { .. } | StateError::NotRegular { .. })) => {
            log::warn!("{e}");
        }
        Err(e) => return Err(e.into()),
    }
    let settings = &agent.settings;
    match host.attrd_updater.as_deref() {
        None => log::warn!(
            "attrd_updater is not installed: node attribute {} not deleted",
            settings.name
        ),
        Some(program) => {
            let attribute = Attribute {
                program,
                name: &settings.name,
                dampen: settings.dampen,
            };
            if let Err(e) = attribute.delete(host.commands, &context.deadline) {
                log::warn!("node attribute {} not deleted: {e}", settings.name);
            }
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
    fn stop_removes_state_and_deletes_even_when_not_started() {
        let dir = run_dir("stop");
        let (commands, probes) = (Commands::default(), Probes::default());
        let agent = agent(&[("host_list", "192.0.2.1")]);
        let context = Context::for_test(Action::Stop, Deadline::after(Duration::from_secs(10)));
        let b = host(&commands, &probes, &dir);
        agent.state_file(&context, &b).create().unwrap();
        assert_eq!(stop(&agent, &context, &b).unwrap(), Status::Success);
        assert!(!agent.state_file(&context, &b).exists().unwrap());
        assert_eq!(stop(&agent, &context, &b).unwrap(), Status::Success);
        assert_eq!(
            *commands.seen.borrow(),
            ["/usr/sbin/attrd_updater --name=pingd --delete"; 2]
        );
        assert_eq!(*probes.count.borrow(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_delete_does_not_fail_the_stop() {
        let dir = run_dir("stop-fail");
        let commands = Commands {
            exit: 1,
            ..Commands::default()
        };
        let probes = Probes::default();
        let agent = agent(&[("host_list", "192.0.2.1")]);
        let context = Context::for_test(Action::Stop, Deadline::after(Duration::from_secs(10)));
        assert_eq!(
            stop(&agent, &context, &host(&commands, &probes, &dir)).unwrap(),
            Status::Success
        );
    }
}
