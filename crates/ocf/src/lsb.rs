//! LSB init-script exit codes, for `clevervm`, which admins call as `service clevervm …`.
//!
//! LSB gives `status` its own numbering (3 means stopped), unlike every other action.

use std::fmt;

/// Exit codes of every LSB action except `status`.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LsbExitCode {
    Success = 0,
    Generic = 1,
    InvalidArgument = 2,
    Unimplemented = 3,
    InsufficientPrivilege = 4,
    NotInstalled = 5,
    NotConfigured = 6,
    NotRunning = 7,
}

/// Exit codes of the LSB `status` action.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LsbStatusCode {
    Running = 0,
    DeadWithPidFile = 1,
    DeadWithLockFile = 2,
    Stopped = 3,
    Unknown = 4,
}

impl LsbExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl LsbStatusCode {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<LsbExitCode> for std::process::ExitCode {
    fn from(code: LsbExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

impl From<LsbStatusCode> for std::process::ExitCode {
    fn from(code: LsbStatusCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

impl fmt::Display for LsbExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.code())
    }
}

impl fmt::Display for LsbStatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_lsb_ones() {
        assert_eq!(LsbStatusCode::Running.code(), 0);
        assert_eq!(LsbStatusCode::DeadWithPidFile.code(), 1);
        assert_eq!(LsbStatusCode::Stopped.code(), 3);
        assert_eq!(LsbStatusCode::Unknown.code(), 4);
        assert_eq!(LsbExitCode::InvalidArgument.code(), 2);
        assert_eq!(LsbExitCode::NotConfigured.code(), 6);
        assert_eq!(LsbExitCode::NotRunning.code(), 7);
    }
}
