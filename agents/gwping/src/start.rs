//! start: mark the resource started, then probe and write the score at once.

use clever_ocf::{Context, Status};

use crate::error::GwpingError;
use crate::monitor::{refresh, Write};
use crate::{Gwping, GwpingHost};

/// Creates the state file first, so that a failed start is cleaned up by the stop Pacemaker
/// sends next; then writes the first value without the dampening delay. Like the stock agent,
/// a score below `failure_score` fails the start.
pub fn start(
    agent: &Gwping,
    context: &Context,
    host: &GwpingHost<'_>,
) -> Result<Status, GwpingError> {
    agent.state_file(context, host).create()?;
    refresh(agent, context, host, Write::Immediate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{Commands, Probes};
    use crate::monitor::tests::{agent, host, outcomes, run_dir};
    use clever_ocf::{Action, Deadline};
    use std::time::Duration;

    #[test]
    fn start_writes_at_once_then_restores_the_delay() {
        let dir = run_dir("start");
        let commands = Commands::default();
        let probes = Probes {
            outcomes: outcomes(&[true, true]),
            ..Probes::default()
        };
        let agent = agent(&[
            ("host_list", "192.0.2.1 gw=4"),
            ("name", "gw"),
            ("dampen", "10s"),
        ]);
        let context = Context::for_test(Action::Start, Deadline::after(Duration::from_secs(10)));
        let b = host(&commands, &probes, &dir);
        assert_eq!(start(&agent, &context, &b).unwrap(), Status::Success);
        assert!(agent.state_file(&context, &b).exists().unwrap());
        assert_eq!(
            *commands.seen.borrow(),
            [
                "/usr/sbin/attrd_updater --name=gw --update-both=5 --delay=0s",
                "/usr/sbin/attrd_updater --name=gw --update-delay --delay=10s",
            ]
        );
        // A second start is harmless.
        assert_eq!(start(&agent, &context, &b).unwrap(), Status::Success);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
