//! The seam between the agent and libvirt: a few domain operations by name.
//!
//! [`Libvirt`] passes straight to libvirt's C API ([`crate::capi`], loaded on first use; no
//! process spawned). The monitor's one question, a domain's state, also has a road that needs
//! no library at all: [`fast_status`], over libvirt's remote protocol ([`crate::rpc`]).

use std::fmt;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use clever_deadline::Deadline;

use crate::capi::{self, CallError, Connection};
use crate::rpc::{self, RpcError};

/// How often a running hibernation logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The most of a hibernation's budget kept back for aborting it and hearing libvirt's answer:
/// the abort comes early enough that the whole step, answer included, ends within the budget
/// the stop announced, because the steps after it (shutdown, power-off) were given only what
/// is left after that budget.
const ABORT_GRACE: Duration = Duration::from_secs(10);

/// The part of `budget` kept for the abort: [`ABORT_GRACE`] at most, a quarter of it at most,
/// so that a short budget still leaves the save most of its time.
fn abort_grace(budget: Duration) -> Duration {
    ABORT_GRACE.min(budget / 4)
}

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
    /// The C library cannot be loaded on this node.
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
/// the daemon needs the full client (the caller then uses [`Libvirt`]).
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

/// libvirt through its C API, loaded on first use (see [`crate::capi`]). Every call runs on a
/// helper thread and is given up when the deadline passes: a libvirtd that hangs mid-stop must
/// leave the agent time to end qemu itself.
pub struct Libvirt {
    conn: Arc<Connection>,
    uri: String,
    calls: Deadline,
}

impl fmt::Debug for Libvirt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Libvirt").field("uri", &self.uri).finish()
    }
}

/// Longest wait for the connection itself.
const CONNECT_MAX: Duration = Duration::from_secs(15);

impl Libvirt {
    /// Opens a connection to `uri`; every call on it, the opening included (at most 15 s and
    /// three quarters of the time left), gives up when `deadline` passes.
    pub fn connect(uri: &str, deadline: &Deadline) -> Result<Self, HypervisorError> {
        let api = capi::api().map_err(|message| HypervisorError::Library { message })?;
        let (done, opened) = mpsc::channel();
        let target = uri.to_owned();
        // A connection that comes too late is dropped (closed) by the thread's failed send.
        thread::spawn(move || {
            let _ = done.send(api.open(&target));
        });
        let unavailable = |message: String| HypervisorError::Unavailable {
            uri: uri.to_owned(),
            message,
        };
        let wait = CONNECT_MAX.min(deadline.remaining() * 3 / 4);
        match opened.recv_timeout(wait) {
            Ok(Ok(connection)) => Ok(Self {
                conn: Arc::new(connection),
                uri: uri.to_owned(),
                calls: *deadline,
            }),
            Ok(Err(e)) => Err(unavailable(e.message)),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                Err(unavailable(format!("no answer within {wait:.1?}")))
            }
        }
    }

    /// Runs `f` on the connection on a helper thread, waiting at most until the deadline.
    fn bounded<T: Send + 'static>(
        &self,
        call: &'static str,
        name: &str,
        f: impl FnOnce(&Connection) -> Result<T, CallError> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        self.bounded_by(&self.calls, call, name, f)
    }

    /// As [`Libvirt::bounded`], waiting at most until `deadline`.
    fn bounded_by<T: Send + 'static>(
        &self,
        deadline: &Deadline,
        call: &'static str,
        name: &str,
        f: impl FnOnce(&Connection) -> Result<T, CallError> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        let (done, answer) = mpsc::channel();
        let conn = Arc::clone(&self.conn);
        thread::spawn(move || {
            let _ = done.send(f(&conn));
        });
        match answer.recv_timeout(deadline.remaining().min(self.calls.remaining())) {
            Ok(result) => result.map_err(|e| call_error(call, name, &e)),
            Err(_) => Err(HypervisorError::Call {
                call,
                domain: name.to_owned(),
                message: "libvirtd did not answer in time".to_owned(),
            }),
        }
    }

    /// Runs `f` on the domain (looked up on the helper thread); the handle is released after.
    fn with_domain<T: Send + 'static>(
        &self,
        name: &str,
        call: &'static str,
        f: impl FnOnce(&capi::Domain<'_>) -> Result<T, CallError> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        let target = name.to_owned();
        self.bounded(call, name, move |conn| f(&conn.lookup(&target)?))
    }
}

fn call_error(call: &'static str, domain: &str, error: &CallError) -> HypervisorError {
    HypervisorError::Call {
        call,
        domain: domain.to_owned(),
        message: error.message.clone(),
    }
}

impl Hypervisor for Libvirt {
    fn define(&self, xml: &str) -> Result<(), HypervisorError> {
        let xml = xml.to_owned();
        self.bounded("define", "from config", move |conn| {
            conn.define(&xml).map(drop)
        })
    }

    fn status(&self, name: &str) -> Result<Option<DomainStatus>, HypervisorError> {
        let target = name.to_owned();
        self.bounded("state", name, move |conn| {
            let domain = match conn.lookup(&target) {
                Ok(domain) => domain,
                Err(e) if e.code == capi::ERR_NO_DOMAIN => return Ok(None),
                Err(e) => return Err(e),
            };
            let (state, reason) = domain.state()?;
            DomainStatus::from_raw(state, reason)
                .map(Some)
                .ok_or_else(|| CallError {
                    code: -1,
                    message: format!("unknown domain state {state} (reason {reason})"),
                })
        })
    }

    fn start(&self, name: &str) -> Result<(), HypervisorError> {
        self.with_domain(name, "start", |d| d.create())
    }

    fn resume(&self, name: &str) -> Result<(), HypervisorError> {
        self.with_domain(name, "resume", |d| d.resume())
    }

    fn hibernate(
        &self,
        name: &str,
        deadline: &Deadline,
        progress: &mut dyn FnMut(SaveProgress),
    ) -> Result<(), HypervisorError> {
        let (done, saved) = mpsc::channel();
        let conn = Arc::clone(&self.conn);
        let target = name.to_owned();
        thread::spawn(move || {
            let result = conn.lookup(&target).and_then(|d| d.managed_save());
            let _ = done.send(result);
        });
        let budget = deadline.remaining();
        let abort_at = deadline.capped(budget.saturating_sub(abort_grace(budget)));
        loop {
            match saved.recv_timeout(PROGRESS_EVERY.min(abort_at.remaining())) {
                Ok(result) => return result.map_err(|e| call_error("managed save", name, &e)),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(HypervisorError::Call {
                        call: "managed save",
                        domain: name.to_owned(),
                        message: "the save thread ended without an answer".to_owned(),
                    })
                }
                Err(RecvTimeoutError::Timeout) if abort_at.expired() => {
                    let target = name.to_owned();
                    let aborted = self.bounded_by(deadline, "abort job", name, move |conn| {
                        conn.lookup(&target)?.abort_job()
                    });
                    if let Err(e) = aborted {
                        log::error!("cannot abort the hibernation of {name}: {e}");
                    }
                    let late = saved.recv_timeout(deadline.remaining().min(self.calls.remaining()));
                    if let Ok(Ok(())) = late {
                        // The save completed as the abort came: the image is whole.
                        return Ok(());
                    }
                    return Err(HypervisorError::SaveTimedOut {
                        domain: name.to_owned(),
                        budget,
                    });
                }
                Err(RecvTimeoutError::Timeout) => {
                    // A total of 0 tells the caller that libvirt gave no figures this time.
                    let target = name.to_owned();
                    let job = self.bounded_by(deadline, "job info", name, move |conn| {
                        conn.lookup(&target)?.job_info()
                    });
                    if let Err(e) = &job {
                        log::debug!("{e}");
                    }
                    let job = job.unwrap_or_default();
                    progress(SaveProgress {
                        processed: job.data_processed,
                        total: job.data_total,
                    });
                }
            }
        }
    }

    fn shutdown(&self, name: &str) -> Result<(), HypervisorError> {
        self.with_domain(name, "shutdown", |d| d.shutdown())
    }

    fn destroy(&self, name: &str) -> Result<(), HypervisorError> {
        self.with_domain(name, "destroy", |d| d.destroy())
    }
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

    #[test]
    fn unreachable_daemon_is_unavailable() {
        let result = Libvirt::connect(
            "qemu:///system?socket=/nonexistent/clever-vm-test.sock",
            &Deadline::after(Duration::from_secs(10)),
        );
        assert!(
            matches!(result, Err(HypervisorError::Unavailable { .. })),
            "{result:?}"
        );
    }
}
