//! The failures of gwping and, in one place, the exit codes they stand for.

use std::io;

use clever_command::CommandError;
use clever_ocf::{HasExitCode, OcfExitCode};

use crate::probe::ProbeError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum GwpingError {
    #[error("attrd_updater is not installed (not on $PATH, not /usr/sbin/attrd_updater)")]
    MissingAttrdUpdater,
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("cannot update node attribute {name}: {source}")]
    Attribute {
        name: String,
        #[source]
        source: CommandError,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("score {score} is below failure_score {failure_score}: {details}")]
    BelowFailureScore {
        score: i64,
        failure_score: i64,
        details: String,
    },
}

impl HasExitCode for GwpingError {
    fn exit_code(&self) -> OcfExitCode {
        match self {
            Self::MissingAttrdUpdater => OcfExitCode::ErrInstalled,
            Self::Probe(ProbeError::Permission { .. }) => OcfExitCode::ErrPerm,
            // The configured interface does not exist on this node.
            Self::Probe(ProbeError::Interface { .. }) => OcfExitCode::ErrInstalled,
            Self::Probe(ProbeError::Socket { .. }) => OcfExitCode::ErrGeneric,
            Self::Attribute { source, .. } => source.exit_code(),
            Self::State(StateError::Io { source, .. })
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                OcfExitCode::ErrPerm
            }
            Self::State(_) => OcfExitCode::ErrGeneric,
            Self::BelowFailureScore { .. } => OcfExitCode::ErrGeneric,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(GwpingError::MissingAttrdUpdater.exit_code().code(), 5);
        let perm = GwpingError::Probe(ProbeError::Permission {
            family: "IPv4",
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        });
        assert_eq!(perm.exit_code().code(), 4);
        let below = GwpingError::BelowFailureScore {
            score: 1,
            failure_score: 2,
            details: "1 of 2 hosts reachable".into(),
        };
        assert_eq!(below.exit_code().code(), 1);
        assert_eq!(
            below.to_string(),
            "score 1 is below failure_score 2: 1 of 2 hosts reachable"
        );
        let spawn = GwpingError::Attribute {
            name: "pingd".into(),
            source: CommandError::Spawn {
                command: "attrd_updater".into(),
                source: io::Error::from(io::ErrorKind::NotFound),
            },
        };
        assert_eq!(spawn.exit_code().code(), 5);
        let no_fork = GwpingError::Attribute {
            name: "pingd".into(),
            source: CommandError::Spawn {
                command: "attrd_updater".into(),
                source: io::Error::from_raw_os_error(nix::libc::EAGAIN),
            },
        };
        assert_eq!(no_fork.exit_code().code(), 1);
    }
}
