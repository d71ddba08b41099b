//! The actions an agent can declare and the metadata each declaration carries.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::context::Context;
use crate::declaration::Agent;
use crate::status::Status;

/// Every action name the OCF API defines for `argv[1]`, except `meta-data`, which the framework
/// answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    Promote,
    Demote,
    Notify,
    Reload,
    ReloadAgent,
    MigrateTo,
    MigrateFrom,
    ValidateAll,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Self::Start,
        Self::Stop,
        Self::Monitor,
        Self::Promote,
        Self::Demote,
        Self::Notify,
        Self::Reload,
        Self::ReloadAgent,
        Self::MigrateTo,
        Self::MigrateFrom,
        Self::ValidateAll,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Monitor => "monitor",
            Self::Promote => "promote",
            Self::Demote => "demote",
            Self::Notify => "notify",
            Self::Reload => "reload",
            Self::ReloadAgent => "reload-agent",
            Self::MigrateTo => "migrate_to",
            Self::MigrateFrom => "migrate_from",
            Self::ValidateAll => "validate-all",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
            .ok_or(())
    }
}

/// The role a recurring monitor checks, in OCF 1.1 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Promoted,
    Unpromoted,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promoted => "Promoted",
            Self::Unpromoted => "Unpromoted",
        }
    }
}

/// The code behind one action.
pub type Handler<A> = fn(&A, &Context) -> Result<Status, <A as Agent>::Error>;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
        }
        assert!("meta-data".parse::<Action>().is_err());
        assert!("START".parse::<Action>().is_err());
    }
}
