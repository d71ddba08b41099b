//! One static description per agent, from which everything Pacemaker sees is derived.

use std::collections::HashSet;
use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use crate::action::{Action, Role};
use crate::context::Context;
use crate::parameter::{ParameterError, ParameterSpec, Parameters};
use crate::status::{HasExitCode, Status};

/// The typed configuration of an agent and its host checks: the two stages between the raw
/// `OCF_RESKEY_*` values and a handler.
pub trait Agent: Sized + 'static {
    /// The agent's own failures; its `HasExitCode` impl is the one place they become exit codes.
    type Error: HasExitCode + 'static;

    /// Everything the handlers reach the machine through (programs, kernel calls, daemons,
    /// `/proc`): one seam per agent, so that unit tests hand the same handlers recorded fakes
    /// of the same type while production passes straight to the host.
    type Host;

    /// Stage one, pure: typed configuration from checked parameter values. Contradictions
    /// between parameters are reported here ([`ParameterError::Conflict`]).
    fn configure(parameters: &Parameters) -> Result<Self, ParameterError>;

    /// Stage two: whether this host has what `context.action` needs (binaries, devices).
    /// An `OCF_ERR_INSTALLED` answer to a probe is turned into "not running" by the framework:
    /// a node without the software cannot be running the resource.
    fn check_host(&self, context: &Context) -> Result<(), Self::Error>;

    /// The real host for this run, built once by the framework after both stages of checks and
    /// handed to the handler. Building it must not touch the machine (no connection, no
    /// program run): whatever can fail belongs in the handler, under the action's deadline and
    /// with the handler's error.
    fn host(&self, context: &Context) -> Self::Host;
}

/// The code behind one action: the configured agent, the run's context and the host the
/// framework built for it with [`Agent::host`].
pub type Handler<A> = fn(&A, &Context, &<A as Agent>::Host) -> Result<Status, <A as Agent>::Error>;

/// One `<action>` line of the metadata together with the code that performs it. An action that
/// appears several times (monitor per role or depth) names the same handler each time.
pub struct ActionSpec<A: Agent> {
    pub action: Action,
    /// Default timeout in seconds, offered to the admin in the metadata and used as the budget
    /// when the agent is run by hand without `OCF_RESKEY_CRM_meta_timeout`.
    pub timeout_secs: u32,
    pub interval_secs: Option<u32>,
    pub depth: Option<u32>,
    pub role: Option<Role>,
    pub handler: Handler<A>,
}

impl<A: Agent> ActionSpec<A> {
    pub const fn new(action: Action, timeout_secs: u32, handler: Handler<A>) -> Self {
        Self {
            action,
            timeout_secs,
            interval_secs: None,
            depth: None,
            role: None,
            handler,
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

    pub const fn role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_secs))
    }
}

impl<A: Agent> fmt::Debug for ActionSpec<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionSpec")
            .field("action", &self.action)
            .field("timeout_secs", &self.timeout_secs)
            .field("interval_secs", &self.interval_secs)
            .field("depth", &self.depth)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Everything about one agent: identity, parameters and actions with their handlers.
pub struct Declaration<A: Agent> {
    /// The type name in `ocf:clever:<name>`.
    pub name: &'static str,
    pub version: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    pub parameters: &'static [&'static dyn ParameterSpec],
    pub actions: &'static [ActionSpec<A>],
}

impl<A: Agent> fmt::Debug for Declaration<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Declaration")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

/// Timeout of the `meta-data` action, which the framework answers without any I/O.
pub const META_DATA_TIMEOUT_SECS: u32 = 5;

impl<A: Agent> Declaration<A> {
    /// The first declaration of `action`: its handler and default timeout.
    pub fn action(&self, action: Action) -> Option<&ActionSpec<A>> {
        self.actions.iter().find(|spec| spec.action == action)
    }

    /// Mistakes in the declaration itself. Every agent's unit tests assert this is empty; the
    /// compiler already guarantees each declared action has a handler.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !valid_name(self.name) {
            problems.push(format!(
                "agent name {:?} is not a plain lowercase name",
                self.name
            ));
        }
        for text in [self.shortdesc, self.longdesc, self.version] {
            if text.trim().is_empty() {
                problems.push(format!(
                    "agent {} has an empty description or version",
                    self.name
                ));
            }
        }
        let mut names = HashSet::new();
        for spec in self.parameters {
            let name = spec.name();
            if !names.insert(name) {
                problems.push(format!("parameter {name} is declared twice"));
            }
            if !valid_name(name) {
                problems.push(format!(
                    "parameter name {name:?} is not a plain lowercase name"
                ));
            }
            if spec.shortdesc().trim().is_empty() || spec.longdesc().trim().is_empty() {
                problems.push(format!("parameter {name} lacks a description"));
            }
            if spec.required() && spec.default().is_some() {
                problems.push(format!("required parameter {name} has a default"));
            }
            if let Some(default) = spec.default() {
                if let Err(reason) = spec.check(default) {
                    problems.push(format!(
                        "default of {name} ({default:?}) is invalid: {reason}"
                    ));
                }
            }
        }
        for required in [
            Action::Start,
            Action::Stop,
            Action::Monitor,
            Action::ValidateAll,
        ] {
            if self.action(required).is_none() {
                problems.push(format!("mandatory action {required} is not declared"));
            }
        }
        let mut lines = HashSet::new();
        for spec in self.actions {
            if spec.timeout_secs == 0 {
                problems.push(format!("action {} has a zero timeout", spec.action));
            }
            if spec.interval_secs.is_some() && spec.action != Action::Monitor {
                problems.push(format!("only monitor may recur, not {}", spec.action));
            }
            if !lines.insert((spec.action, spec.interval_secs, spec.role, spec.depth)) {
                problems.push(format!("action {} is declared twice alike", spec.action));
            }
            if let Some(first) = self.action(spec.action) {
                if !std::ptr::fn_addr_eq(first.handler, spec.handler) {
                    problems.push(format!("action {} has different handlers", spec.action));
                }
            }
        }
        let intervals: Vec<_> = self
            .actions
            .iter()
            .filter(|s| s.action == Action::Monitor)
            .filter_map(|s| s.interval_secs)
            .collect();
        if intervals.iter().collect::<HashSet<_>>().len() != intervals.len() {
            problems.push("recurring monitors need distinct intervals".to_owned());
        }
        let has = |a| self.action(a).is_some();
        if has(Action::Promote) != has(Action::Demote) {
            problems.push("promote and demote must be declared together".to_owned());
        }
        if has(Action::MigrateTo) != has(Action::MigrateFrom) {
            problems.push("migrate_to and migrate_from must be declared together".to_owned());
        }
        problems
    }

    /// The one-line usage printed when no action is given.
    pub fn usage(&self) -> String {
        let mut actions: Vec<&str> = Vec::new();
        for spec in self.actions {
            if !actions.contains(&spec.action.as_str()) {
                actions.push(spec.action.as_str());
            }
        }
        actions.push("meta-data");
        format!("usage: {} {{{}}}", self.name, actions.join("|"))
    }

    /// The text for `help`: what an admin at a shell needs, from the same declaration.
    pub fn help(&self) -> String {
        let mut text = format!(
            "ocf:clever:{} {} - {}\n\n{}\n\n{}\n\nParameters (environment OCF_RESKEY_<name>):\n",
            self.name,
            self.version,
            self.shortdesc,
            self.longdesc.trim(),
            self.usage()
        );
        for spec in self.parameters {
            let mut flags = vec![spec.content_type().as_str().to_owned()];
            if spec.required() {
                flags.push("required".to_owned());
            }
            if spec.unique() {
                flags.push("unique".to_owned());
            }
            if let Some(default) = spec.default() {
                flags.push(format!("default {default:?}"));
            }
            if let Some(choices) = spec.choices() {
                flags.push(format!("one of {}", choices.join("|")));
            }
            let _ = writeln!(
                text,
                "  {:<18} {} [{}]",
                spec.name(),
                spec.shortdesc(),
                flags.join(", ")
            );
        }
        text.push_str("\nActions (default timeout):\n");
        for spec in self.actions {
            let _ = write!(
                text,
                "  {:<18} {}s",
                spec.action.as_str(),
                spec.timeout_secs
            );
            if let Some(interval) = spec.interval_secs {
                let _ = write!(text, ", every {interval}s");
            }
            if let Some(depth) = spec.depth {
                let _ = write!(text, ", depth {depth}");
            }
            if let Some(role) = spec.role {
                let _ = write!(text, ", role {}", role.as_str());
            }
            text.push('\n');
        }
        text
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}
