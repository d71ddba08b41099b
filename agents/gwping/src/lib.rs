//! `ocf:clever:gwping`: keeps a node attribute equal to how well this node reaches its
//! gateways, by ICMP echo sent from the agent itself.
//!
//! A clone runs on every node; location rules on the attribute (`pingd` by default) move
//! resources away from a node that lost its gateway. Unlike `ocf:pacemaker:ping` no `ping`
//! process is run: all hosts are probed at once and a monitor takes as long as the network
//! does. The one program run is `attrd_updater`.

pub mod attribute;
mod error;
pub mod monitor;
pub mod packet;
pub mod probe;
pub mod score;
pub mod start;
pub mod state;
pub mod stop;
pub mod validate;

/// The parameters and their first stage live in `clever-agent-params`, which the CIB generator
/// shares.
pub use clever_agent_params::gwping as params;

use std::path::PathBuf;
use std::time::Duration;

use clever_command::{HostCommands, RunCommand};
use clever_ocf::{Action, Agent, Context, Declaration, ParameterError, Parameters};

pub use error::GwpingError;
use params::Settings;
use probe::{IcmpProber, ProbeSettings, Prober};
use state::StateFile;

/// The agent's configuration, from the resource's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gwping {
    pub settings: Settings,
}

impl Gwping {
    pub fn probe_settings(&self) -> ProbeSettings {
        ProbeSettings {
            attempts: self.settings.attempts,
            timeout: self.settings.timeout,
            interface: self
                .settings
                .interface
                .as_ref()
                .map(|i| i.as_str().to_owned()),
        }
    }

    /// The state file: `pidfile` if set, else one per instance in the run directory.
    pub fn state_file(&self, context: &Context, host: &GwpingHost<'_>) -> StateFile {
        match &self.settings.pidfile {
            Some(path) => StateFile::new(path.as_path()),
            None => StateFile::for_instance(&host.run_dir, &context.instance),
        }
    }
}

impl Agent for Gwping {
    type Error = GwpingError;
    type Host = GwpingHost<'static>;

    fn configure(parameters: &Parameters) -> Result<Self, ParameterError> {
        Settings::from_parameters(parameters).map(|settings| Self { settings })
    }

    fn check_host(&self, context: &Context) -> Result<(), GwpingError> {
        // A stop must succeed without the tool (nothing can hold the attribute then); every
        // other action needs it.
        if context.action != Action::Stop && attribute::locate(std::env::var_os("PATH")).is_none() {
            return Err(GwpingError::MissingAttrdUpdater);
        }
        Ok(())
    }

    fn host(&self, context: &Context) -> GwpingHost<'static> {
        GwpingHost::real(context)
    }
}

/// gwping's seam to the machine: `attrd_updater` and ICMP on this host in production, recorded
/// fakes in unit tests.
pub struct GwpingHost<'a> {
    pub commands: &'a dyn RunCommand,
    pub prober: &'a dyn Prober,
    /// `attrd_updater`; `None` when it is not installed.
    pub attrd_updater: Option<PathBuf>,
    /// The run's [`Context::run_dir`].
    pub run_dir: PathBuf,
}

impl std::fmt::Debug for GwpingHost<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GwpingHost")
            .field("attrd_updater", &self.attrd_updater)
            .field("run_dir", &self.run_dir)
            .finish_non_exhaustive()
    }
}

impl GwpingHost<'static> {
    /// This host: real commands, real ICMP, the cluster's environment.
    pub fn real(context: &Context) -> Self {
        Self {
            commands: &HostCommands,
            prober: &IcmpProber,
            attrd_updater: attribute::locate(std::env::var_os("PATH")),
            run_dir: context.run_dir.clone(),
        }
    }
}

/// Time kept back from the probe for writing the attribute afterwards.
pub(crate) fn attribute_reserve(remaining: Duration) -> Duration {
    (remaining / 4).min(Duration::from_secs(3))
}

fn start(
    agent: &Gwping,
    context: &Context,
    host: &GwpingHost<'static>,
) -> Result<clever_ocf::Status, GwpingError> {
    start::start(agent, context, host)
}

fn stop(
    agent: &Gwping,
    context: &Context,
    host: &GwpingHost<'static>,
) -> Result<clever_ocf::Status, GwpingError> {
    stop::stop(agent, context, host)
}

fn monitor(
    agent: &Gwping,
    context: &Context,
    host: &GwpingHost<'static>,
) -> Result<clever_ocf::Status, GwpingError> {
    monitor::monitor(agent, context, host)
}

fn validate_all(
    agent: &Gwping,
    context: &Context,
    host: &GwpingHost<'static>,
) -> Result<clever_ocf::Status, GwpingError> {
    validate::validate(agent, context, host)
}

/// Everything Pacemaker sees of `ocf:clever:gwping`.
pub static DECLARATION: Declaration<Gwping> = Declaration {
    name: params::AGENT_NAME,
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "Node connectivity score by ICMP echo, as a node attribute",
    longdesc: "Every monitor sends ICMP echo requests from the agent itself to all hosts of \
        host_list at once and sets a node attribute (name, default pingd) to the summed \
        weights of the hosts that answered times multiplier, with attrd_updater and the dampen \
        delay. start sets the attribute at once, stop deletes it so that 'not_defined' rules \
        apply. Run it as a clone on every node and add a location rule on the attribute. It \
        is a drop-in replacement for ocf:pacemaker:ping (same parameter names and defaults) \
        that answers as fast as the network does and adds per-host weights (host=weight) and \
        interface binding. Raw ICMP sockets need root; otherwise datagram ICMP sockets are \
        used, which need net.ipv4.ping_group_range to include the agent's group.",
    parameters: params::PARAMETERS,
    actions: &[
        params::START.with(start),
        params::STOP.with(stop),
        params::MONITOR.with(monitor),
        params::VALIDATE_ALL.with(validate_all),
    ],
};

#[cfg(test)]
pub(crate) mod fakes {
    //! Recording fakes of the two seams, for the handlers' unit tests.

    use std::cell::RefCell;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use clever_command::{CommandError, CommandLine, Output, RunCommand};
    use clever_deadline::Deadline;

    use crate::params::HostSpec;
    use crate::probe::{Outcome, ProbeError, ProbeSettings, Prober};

    /// Answers every command with `exit`, or fails to start it with `cannot_start` (an errno),
    /// remembering the command lines.
    #[derive(Debug, Default)]
    pub struct Commands {
        pub exit: i32,
        pub cannot_start: Option<i32>,
        pub seen: RefCell<Vec<String>>,
    }

    impl RunCommand for Commands {
        fn run(&self, command: &CommandLine, _: &Deadline) -> Result<Output, CommandError> {
            self.seen.borrow_mut().push(command.to_string());
            if let Some(errno) = self.cannot_start {
                return Err(CommandError::Spawn {
                    command: command.to_string(),
                    source: std::io::Error::from_raw_os_error(errno),
                });
            }
            Ok(Output {
                status: ExitStatus::from_raw(self.exit << 8),
                stdout: Vec::new(),
                stderr: b"connection refused".to_vec(),
            })
        }
    }

    /// Gives fixed outcomes and counts the probes.
    #[derive(Debug, Default)]
    pub struct Probes {
        pub outcomes: Vec<Outcome>,
        pub count: RefCell<usize>,
    }

    impl Prober for Probes {
        fn probe(
            &self,
            hosts: &[HostSpec],
            _: &ProbeSettings,
            _: &Deadline,
        ) -> Result<Vec<Outcome>, ProbeError> {
            *self.count.borrow_mut() += 1;
            assert_eq!(hosts.len(), self.outcomes.len());
            Ok(self.outcomes.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declaration_has_no_problems() {
        assert_eq!(DECLARATION.problems(), Vec::<String>::new());
    }

    /// The generator reads this agent's parameters and timeouts from `clever-agent-params`.
    #[test]
    fn declaration_is_the_shared_table() {
        assert_eq!(
            params::AGENT.differences(&DECLARATION),
            Vec::<String>::new()
        );
    }

    #[test]
    fn reserve_for_the_attribute() {
        assert_eq!(
            attribute_reserve(Duration::from_secs(4)),
            Duration::from_secs(1)
        );
        assert_eq!(
            attribute_reserve(Duration::from_secs(60)),
            Duration::from_secs(3)
        );
    }
}
