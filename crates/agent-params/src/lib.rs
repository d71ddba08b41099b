//! The half of each OCF agent that never touches a host: its parameters (names, types, checks,
//! defaults), the pure first stage that turns them into the agent's typed settings, and the
//! timeouts and intervals it advertises for its actions.
//!
//! The agents compose their one [`Declaration`](clever_ocf::Declaration) from these tables and
//! their handlers; the CIB generator (`clever-cib`) runs the parameters it writes through the same
//! first stage and takes its operation timeouts from the same values, so that a generated CIB
//! never holds a resource its agent would refuse at every start.

pub mod drbdfs;
pub mod gwping;
pub mod vm;

use std::ffi::OsString;

use clever_ocf::{
    Action, ActionSpec, Agent, Declaration, Handler, ParameterError, ParameterSpec, Parameters,
    Role,
};

/// One `<action>` line of an agent's metadata without its handler: what the agent advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertisedAction {
    pub action: Action,
    /// The default timeout, in seconds.
    pub timeout_secs: u32,
    /// The interval of a recurring monitor, in seconds.
    pub interval_secs: Option<u32>,
    /// The monitor's `OCF_CHECK_LEVEL`.
    pub depth: Option<u32>,
    pub role: Option<Role>,
}

impl AdvertisedAction {
    pub const fn new(action: Action, timeout_secs: u32) -> Self {
        Self {
            action,
            timeout_secs,
            interval_secs: None,
            depth: None,
            role: None,
        }
    }

    pub const fn interval(mut self, secs: u32) -> Self {
        self.interval_secs = Some(secs);
        self
    }

    pub const fn depth(mut self, depth: u32) -> Self {
        self.depth = Some(depth);
        self
    }

    /// The agent's declared action: this line with the code that performs it.
    pub const fn with<A: Agent>(self, handler: Handler<A>) -> ActionSpec<A> {
        ActionSpec {
            action: self.action,
            timeout_secs: self.timeout_secs,
            interval_secs: self.interval_secs,
            depth: self.depth,
            role: self.role,
            handler,
        }
    }

    /// Whether `spec` declares exactly this line (every field but the handler).
    pub fn matches<A: Agent>(&self, spec: &ActionSpec<A>) -> bool {
        self.action == spec.action
            && self.timeout_secs == spec.timeout_secs
            && self.interval_secs == spec.interval_secs
            && self.depth == spec.depth
            && self.role == spec.role
    }
}

/// Why an agent would refuse a resource's parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A name the agent does not declare: the agent would never read it.
    #[error("parameter {name} is not one the agent declares")]
    Undeclared { name: String },
    /// The agent's own first stage refuses the values (its exit code would be 6).
    #[error(transparent)]
    Parameter(#[from] ParameterError),
}

/// One agent as the generator needs it.
pub struct AgentParameters {
    /// The type name in `ocf:clever:<name>`.
    pub name: &'static str,
    pub parameters: &'static [&'static dyn ParameterSpec],
    pub actions: &'static [AdvertisedAction],
    /// The agent's first stage: typed settings from loaded parameters, the settings dropped.
    pub configure: fn(&Parameters) -> Result<(), ParameterError>,
}

impl std::fmt::Debug for AgentParameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentParameters")
            .field("name", &self.name)
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl AgentParameters {
    /// What the agent says of a resource with these `name`, `value` pairs (the CIB's instance
    /// attributes): both stages of its parameter checks that need no host, exactly as it runs
    /// them when Pacemaker passes the pairs as `OCF_RESKEY_<name>`.
    pub fn check<'a>(
        &self,
        values: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), Refusal> {
        let values: Vec<(&str, &str)> = values.into_iter().collect();
        if let Some((name, _)) = values
            .iter()
            .find(|(name, _)| !self.parameters.iter().any(|p| p.name() == *name))
        {
            return Err(Refusal::Undeclared {
                name: (*name).to_owned(),
            });
        }
        let parameters = Parameters::load(self.parameters, lookup(&values))?;
        (self.configure)(&parameters)?;
        Ok(())
    }

    /// Where `declaration` (the agent's, with its handlers) says something else than this table:
    /// the agent's unit tests assert there is nothing, so the generator reads what the agent
    /// advertises.
    pub fn differences<A: Agent>(&self, declaration: &Declaration<A>) -> Vec<String> {
        let mut differences = Vec::new();
        if declaration.name != self.name {
            differences.push(format!("named {} here", declaration.name));
        }
        let names = |table: &[&dyn ParameterSpec]| -> Vec<&str> {
            table.iter().map(|p| p.name()).collect()
        };
        if names(declaration.parameters) != names(self.parameters) {
            differences.push("declares other parameters".to_owned());
        }
        if declaration.actions.len() != self.actions.len()
            || !self
                .actions
                .iter()
                .zip(declaration.actions)
                .all(|(advertised, spec)| advertised.matches(spec))
        {
            differences.push(format!(
                "declares other actions: {:?}, not {:?}",
                declaration.actions, self.actions
            ));
        }
        differences
    }

    /// The first advertised line of `action` (for monitor: the one at depth 0, if any).
    pub fn action(&self, action: Action) -> Option<&AdvertisedAction> {
        let mut lines = self.actions.iter().filter(|a| a.action == action);
        let first = lines.clone().next();
        lines.find(|a| a.depth.unwrap_or(0) == 0).or(first)
    }
}

/// Every agent of `ocf:clever`.
pub static AGENTS: [&AgentParameters; 3] = [&drbdfs::AGENT, &gwping::AGENT, &vm::AGENT];

/// The agent `ocf:clever:<name>`.
pub fn agent(name: &str) -> Option<&'static AgentParameters> {
    AGENTS.iter().copied().find(|agent| agent.name == name)
}

/// `name`, `value` pairs as the `OCF_RESKEY_*` lookup [`Parameters::load`] takes.
fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
    move |key| {
        let name = key.strip_prefix("OCF_RESKEY_")?;
        pairs
            .iter()
            .find(|(given, _)| *given == name)
            .map(|(_, value)| OsString::from(*value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agent_is_found_by_its_name() {
        for name in ["drbdfs", "gwping", "vm"] {
            assert_eq!(agent(name).map(|a| a.name), Some(name));
        }
        assert!(agent("Filesystem").is_none());
    }

    #[test]
    fn parameter_tables_are_sound() {
        for agent in AGENTS {
            let mut names: Vec<_> = agent.parameters.iter().map(|p| p.name()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), agent.parameters.len(), "{}", agent.name);
            for parameter in agent.parameters {
                assert!(!(parameter.required() && parameter.default().is_some()));
                if let Some(default) = parameter.default() {
                    assert_eq!(parameter.check(default), Ok(()), "{}", parameter.name());
                }
            }
            for action in [Action::Start, Action::Stop, Action::Monitor] {
                assert!(agent.action(action).is_some(), "{} {action}", agent.name);
            }
        }
    }

    #[test]
    fn the_monitor_at_depth_zero_is_the_one_a_cib_runs() {
        let monitor = drbdfs::AGENT.action(Action::Monitor).unwrap();
        assert_eq!((monitor.interval_secs, monitor.depth), (Some(20), Some(0)));
    }

    #[test]
    fn check_names_what_is_wrong() {
        let base = [
            ("device", "/dev/drbd0"),
            ("directory", "/srv/x"),
            ("fstype", "ext4"),
        ];
        assert_eq!(drbdfs::AGENT.check(base), Ok(()));
        let refusal = drbdfs::AGENT
            .check(base.into_iter().chain([("options", "ro,bind")]))
            .unwrap_err();
        assert!(
            refusal.to_string().contains("changes what the mount means"),
            "{refusal}"
        );
        let refusal = drbdfs::AGENT
            .check(base.into_iter().chain([("option", "ro")]))
            .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Undeclared {
                name: "option".to_owned()
            }
        );
        assert!(matches!(
            vm::AGENT.check([("config", "/x.xml")]),
            Err(Refusal::Parameter(ParameterError::Missing {
                name: "hibernate_dir"
            }))
        ));
    }
}
