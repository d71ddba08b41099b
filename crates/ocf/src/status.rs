//! Exit codes an OCF agent may return, and the outcomes a handler reports.

use std::fmt;

use clever_command::CommandError;

/// Every exit code of the OCF resource agent API (1.1), with its numeric value fixed.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcfExitCode {
    Success = 0,
    ErrGeneric = 1,
    ErrArgs = 2,
    ErrUnimplemented = 3,
    ErrPerm = 4,
    ErrInstalled = 5,
    ErrConfigured = 6,
    NotRunning = 7,
    RunningPromoted = 8,
    FailedPromoted = 9,
    Degraded = 190,
    DegradedPromoted = 191,
}

impl OcfExitCode {
    pub const ALL: [OcfExitCode; 12] = [
        Self::Success,
        Self::ErrGeneric,
        Self::ErrArgs,
        Self::ErrUnimplemented,
        Self::ErrPerm,
        Self::ErrInstalled,
        Self::ErrConfigured,
        Self::NotRunning,
        Self::RunningPromoted,
        Self::FailedPromoted,
        Self::Degraded,
        Self::DegradedPromoted,
    ];

    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The name used by the OCF specification and `ocf-returncodes`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "OCF_SUCCESS",
            Self::ErrGeneric => "OCF_ERR_GENERIC",
            Self::ErrArgs => "OCF_ERR_ARGS",
            Self::ErrUnimplemented => "OCF_ERR_UNIMPLEMENTED",
            Self::ErrPerm => "OCF_ERR_PERM",
            Self::ErrInstalled => "OCF_ERR_INSTALLED",
            Self::ErrConfigured => "OCF_ERR_CONFIGURED",
            Self::NotRunning => "OCF_NOT_RUNNING",
            Self::RunningPromoted => "OCF_RUNNING_PROMOTED",
            Self::FailedPromoted => "OCF_FAILED_PROMOTED",
            Self::Degraded => "OCF_DEGRADED",
            Self::DegradedPromoted => "OCF_DEGRADED_PROMOTED",
        }
    }

    /// Whether Pacemaker wants an `ocf-exit-reason:` line with this code: every code but plain
    /// success and "not running", which are ordinary answers.
    pub fn wants_reason(self) -> bool {
        !matches!(
            self,
            Self::Success | Self::NotRunning | Self::RunningPromoted
        )
    }
}

impl From<OcfExitCode> for std::process::ExitCode {
    fn from(code: OcfExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

impl fmt::Display for OcfExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// What a handler found when it did not fail. Failures are errors, never a status: nothing is
/// success by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The action did what was asked; for monitor, the resource runs (unpromoted).
    Success,
    /// monitor: the resource is cleanly stopped here.
    NotRunning,
    /// monitor: the resource runs in the promoted role.
    RunningPromoted,
    /// monitor: the resource runs but something it depends on is impaired; the reason is shown by
    /// `crm_mon`.
    Degraded(String),
    /// monitor: as [`Status::Degraded`], in the promoted role.
    DegradedPromoted(String),
}

impl Status {
    pub fn exit_code(&self) -> OcfExitCode {
        match self {
            Self::Success => OcfExitCode::Success,
            Self::NotRunning => OcfExitCode::NotRunning,
            Self::RunningPromoted => OcfExitCode::RunningPromoted,
            Self::Degraded(_) => OcfExitCode::Degraded,
            Self::DegradedPromoted(_) => OcfExitCode::DegradedPromoted,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Degraded(reason) | Self::DegradedPromoted(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Errors that know which exit code they stand for. Each error enum implements it once, in its
/// own module: that impl is the only place where the enum meets exit codes.
pub trait HasExitCode: std::error::Error {
    fn exit_code(&self) -> OcfExitCode;
}

/// The one rule for a program an agent could not run: "not installed" (Pacemaker then keeps the
/// resource off this node) only when the program is missing here; a program that could not be
/// started for another reason, timed out, or failed is an ordinary error. Agents' exit maps call
/// this for every error that carries a [`CommandError`].
impl HasExitCode for CommandError {
    fn exit_code(&self) -> OcfExitCode {
        if self.program_missing() {
            OcfExitCode::ErrInstalled
        } else {
            OcfExitCode::ErrGeneric
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_ocf_ones() {
        let codes: Vec<u8> = OcfExitCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 190, 191]);
    }

    #[test]
    fn a_program_is_not_installed_only_when_missing() {
        let spawn = |errno| CommandError::Spawn {
            command: "tool".to_owned(),
            source: std::io::Error::from_raw_os_error(errno),
        };
        assert_eq!(
            spawn(nix::libc::ENOENT).exit_code(),
            OcfExitCode::ErrInstalled
        );
        assert_eq!(
            spawn(nix::libc::EACCES).exit_code(),
            OcfExitCode::ErrInstalled
        );
        assert_eq!(
            spawn(nix::libc::EAGAIN).exit_code(),
            OcfExitCode::ErrGeneric
        );
        let failed = CommandError::Failed {
            command: "tool".to_owned(),
            status: "exit status 5".to_owned(),
            stderr: String::new(),
        };
        assert_eq!(failed.exit_code(), OcfExitCode::ErrGeneric);
    }

    #[test]
    fn statuses_map_to_codes() {
        assert_eq!(Status::Success.exit_code().code(), 0);
        assert_eq!(Status::NotRunning.exit_code().code(), 7);
        assert_eq!(Status::RunningPromoted.exit_code().code(), 8);
        assert_eq!(Status::Degraded("x".into()).exit_code().code(), 190);
        assert_eq!(Status::DegradedPromoted("x".into()).exit_code().code(), 191);
        assert_eq!(
            Status::Degraded("peer gone".into()).reason(),
            Some("peer gone")
        );
    }
}
