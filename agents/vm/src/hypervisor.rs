//! The seam between the agent and libvirt: a few domain operations by name.
//!
//! The real [`Hypervisor`] passes straight to libvirt's C API through the `virt` crate; it lives
//! in the libvirt-linked build of the agent (`src/bin/vm-libvirt/libvirt.rs`), so that this
//! library, and the `vm` binary Pacemaker runs, never link `libvirt.so` (see [`crate::linked`]).
//! The monitor's one question, a domain's state, also has a road that needs no library at all:
//! [`fast_status`], over libvirt's remote protocol ([`crate::rpc`]).

use std::fmt;
use std::time::Duration;

use clever_deadline::Deadline;

use crate::rpc::{self, RpcError};

#[derive(Debug, thiserror::Error)]
pub enum HypervisorError {
    /// libvirtd cannot be reached (down, refusing, or not answering in time).
    #[error("cannot connect to libvirt at {uri}: {message}")]
    Unavailable { uri: String, message: String },
    /// A libvirt call failed.
    #[error("libvirt {call} of domain {domain} failed: {message}")]
    Call {
        call: &'static str,
        domain: String,
        message: String,
    },
    /// libvirt's C library cannot be used on this node: the agent's libvirt-linked build is
    /// missing or cannot be run.
    #[error("{message}")]
    Library { message: String },
    #[error("hibernation of {domain} did not finish within {budget:?} and was aborted")]
    SaveTimedOut { domain: String, budget: Duration },
}

/// The states of `virDomainGetState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    NoState,
    Running,
    Blocked,
    Paused,
    ShuttingDown,
    ShutOff,
    Crashed,
    PmSuspended,
}

/// The reasons the agent acts on; the others are kept by name for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Booted,
    Restored,
    Unpaused,
    SaveCanceled,
    IoError,
    Watchdog,
    Crashed,
    User,
    /// Paused while libvirt starts or restores it (`VIR_DOMAIN_PAUSED_STARTING_UP`).
    StartingUp,
    Saved,
    Failed,
    Shutdown,
    Destroyed,
    Other(i32),
}

/// A domain's state with its reason, as `virsh domstate --reason` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainStatus {
    pub state: State,
    pub reason: Reason,
}

impl DomainStatus {
    pub const fn new(state: State, reason: Reason) -> Self {
        Self { state, reason }
    }

    /// From `virDomainGetState`'s numbers (libvirt's `virDomainState` and reason enums, whose
    /// values never change); `None` for a state this libvirt is newer than.
    pub fn from_raw(state: i32, reason: i32) -> Option<Self> {
        let state = match state {
            0 => State::NoState,
            1 => State::Running,
            2 => State::Blocked,
            3 => State::Paused,
            4 => State::ShuttingDown,
            5 => State::ShutOff,
            6 => State::Crashed,
            7 => State::PmSuspended,
            _ => return None,
        };
        let reason = match (state, reason) {
            (State::Running, 1) => Reason::Booted,
            (State::Running, 3) => Reason::Restored,
            (State::Running, 5) => Reason::Unpaused,
            (State::Running, 7) => Reason::SaveCanceled,
            (State::Running, 9) | (State::Paused, 10) | (State::ShutOff, 3) => Reason::Crashed,
            (State::Crashed, _) => Reason::Crashed,
            (State::Paused, 1) => Reason::User,
            (State::Paused, 5) => Reason::IoError,
            (State::Paused, 6) => Reason::Watchdog,
            (State::Paused, 11) => Reason::StartingUp,
            (State::ShutOff, 1) => Reason::Shutdown,
            (State::ShutOff, 2) => Reason::Destroyed,
            (State::ShutOff, 5) => Reason::Saved,
            (State::ShutOff, 6) => Reason::Failed,
            (_, other) => Reason::Other(other),
        };
        Some(Self { state, reason })
    }

    /// Whether a qemu process exists for the domain in this state.
    pub fn is_active(&self) -> bool {
        !matches!(self.state, State::ShutOff | State::NoState)
    }
}

impl fmt::Display for DomainStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::NoState => "no state",
            State::Running => "running",
            State::Blocked => "blocked",
            State::Paused => "paused",
            State::ShuttingDown => "shutting down",
            State::ShutOff => "shut off",
            State::Crashed => "crashed",
            State::PmSuspended => "pmsuspended",
        };
        let reason = match self.reason {
            Reason::Booted => "booted".to_owned(),
            Reason::Restored => "restored".to_owned(),
            Reason::Unpaused => "unpaused".to_owned(),
            Reason::SaveCanceled => "save canceled".to_owned(),
            Reason::IoError => "I/O error".to_owned(),
            Reason::Watchdog => "watchdog".to_owned(),
            Reason::Crashed => "crashed".to_owned(),
            Reason::User => "user".to_owned(),
            Reason::StartingUp => "starting up".to_owned(),
            Reason::Saved => "saved".to_owned(),
            Reason::Failed => "failed".to_owned(),
            Reason::Shutdown => "shutdown".to_owned(),
            Reason::Destroyed => "destroyed".to_owned(),
            Reason::Other(code) => format!("reason {code}"),
        };
        write!(f, "{state} ({reason})")
    }
}

/// Progress of a hibernation, from libvirt's job info; `total` is 0 when libvirt had none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveProgress {
    pub processed: u64,
    pub total: u64,
}

/// How libvirt writes a hibernation image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveWrites {
    /// Past the page cache (`virsh managedsave --bypass-cache`, O_DIRECT): about twice as fast a
    /// save of the lab's guest (docs/benchmarks.md), and when it returns the image is on the
    /// device (on DRBD, replicated), not in dirty pages the unmount would still have to write.
    BypassCache,
    /// Through the page cache, where the filesystem has no direct I/O (libvirt would fail the
    /// save).
    PageCache,
}

/// The domain operations the handlers need, by domain name.
pub trait Hypervisor {
    /// Creates or refreshes the persistent definition.
    fn define(&self, xml: &str) -> Result<(), HypervisorError>;
    /// The domain's state; `None` when no domain of that name is defined.
    fn status(&self, name: &str) -> Result<Option<DomainStatus>, HypervisorError>;
    /// Starts the domain; libvirt restores it when a managed-save image file exists.
    fn start(&self, name: &str) -> Result<(), HypervisorError>;
    /// Resumes a paused domain.
    fn resume(&self, name: &str) -> Result<(), HypervisorError>;
    /// Managed save, aborted when `deadline` passes; `progress` is called now and then.
    fn hibernate(
        &self,
        name: &str,
        writes: SaveWrites,
        deadline: &Deadline,
        progress: &mut dyn FnMut(SaveProgress),
    ) -> Result<(), HypervisorError>;
    /// Asks the guest to shut down (ACPI); returns at once.
    fn shutdown(&self, name: &str) -> Result<(), HypervisorError>;
    /// Powers the domain off.
    fn destroy(&self, name: &str) -> Result<(), HypervisorError>;
}

/// A domain's state through libvirt's remote protocol, without the C library: the monitor's
/// road. `Ok(None)` when the domain is not defined; [`FastStatus::Fallback`] when the URI or
/// the daemon needs the full client (the caller then asks the C library).
pub fn fast_status(uri: &str, name: &str, deadline: &Deadline) -> FastStatus {
    match rpc::domain_state(uri, name, deadline) {
        Ok(None) => FastStatus::Answer(Ok(None)),
        Ok(Some((state, reason))) => FastStatus::Answer(
            DomainStatus::from_raw(state, reason)
                .map(Some)
                .ok_or_else(|| HypervisorError::Call {
                    call: "state",
                    domain: name.to_owned(),
                    message: format!("unknown domain state {state} (reason {reason})"),
                }),
        ),
        Err(RpcError::Unsupported(why)) => FastStatus::Fallback(why),
        Err(RpcError::Unavailable(message)) => {
            FastStatus::Answer(Err(HypervisorError::Unavailable {
                uri: uri.to_owned(),
                message,
            }))
        }
        Err(RpcError::Failed { message, .. }) => FastStatus::Answer(Err(HypervisorError::Call {
            call: "state",
            domain: name.to_owned(),
            message,
        })),
    }
}

/// What [`fast_status`] found.
#[derive(Debug)]
pub enum FastStatus {
    Answer(Result<Option<DomainStatus>, HypervisorError>),
    /// Why the C library must answer instead.
    Fallback(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_like_virsh() {
        let status = DomainStatus::new(State::Running, Reason::Restored);
        assert_eq!(status.to_string(), "running (restored)");
        assert!(status.is_active());
        assert!(!DomainStatus::new(State::ShutOff, Reason::Saved).is_active());
    }

    #[test]
    fn raw_states_map_as_libvirt_numbers_them() {
        let raw = |s, r| DomainStatus::from_raw(s, r).unwrap().to_string();
        assert_eq!(raw(1, 3), "running (restored)");
        assert_eq!(raw(1, 1), "running (booted)");
        assert_eq!(raw(3, 5), "paused (I/O error)");
        assert_eq!(raw(5, 3), "shut off (crashed)");
        assert_eq!(raw(5, 5), "shut off (saved)");
        assert_eq!(raw(6, 1), "crashed (crashed)");
        assert_eq!(raw(1, 42), "running (reason 42)");
        assert_eq!(raw(3, 11), "paused (starting up)");
        assert_eq!(DomainStatus::from_raw(8, 0), None);
        assert_eq!(DomainStatus::from_raw(-1, 0), None);
    }
}
