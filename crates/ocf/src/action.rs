//! The actions an agent can declare and the roles a monitor can check.

use std::fmt;
use std::str::FromStr;

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
