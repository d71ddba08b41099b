//! The seam between the agent and libvirt: a few domain operations by name.
//!
//! [`Libvirt`] passes straight to the `virt` crate (libvirt's C API, no process spawned). Two
//! traits of that crate are handled here once: its `Drop` impls panic when `virConnectClose` or
//! `virDomainFree` fail, so every handle is released explicitly with the error logged; and
//! `Domain::state` hides a failed call as an unknown state, which is turned back into an error.

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use clever_deadline::Deadline;
use virt::connect::Connect;
use virt::domain::{
    Domain, DomainPausedReason, DomainRunningReason, DomainShutoffReason, DomainState,
    DomainStateReason,
};
use virt::enumutil::Enum;
use virt::error::ErrorNumber;

/// How often a running hibernation logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long an aborted hibernation gets to return before we stop waiting for it.
const ABORT_GRACE: Duration = Duration::from_secs(10);

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

/// A connection whose release is explicit and never panics.
struct Conn(ManuallyDrop<Connect>);

impl Drop for Conn {
    fn drop(&mut self) {
        // The slot is taken exactly once, here, and never touched again.
        let connect = unsafe_free::take(&mut self.0);
        unsafe_free::close(connect);
    }
}

/// libvirt through its C API. Every call runs on a helper thread and is given up when the
/// deadline passes: a libvirtd that hangs mid-stop must leave the agent time to end qemu itself.
pub struct Libvirt {
    conn: Arc<Conn>,
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
        virt::error::clear_error_callback();
        let (done, opened) = mpsc::channel();
        let target = uri.to_owned();
        thread::spawn(move || {
            let result = Connect::open(Some(&target));
            if let Err(mpsc::SendError(Ok(late))) = done.send(result) {
                // The caller gave up; release the late connection without panicking.
                unsafe_free::close(late);
            }
        });
        let unavailable = |message: String| HypervisorError::Unavailable {
            uri: uri.to_owned(),
            message,
        };
        let wait = CONNECT_MAX.min(deadline.remaining() * 3 / 4);
        match opened.recv_timeout(wait) {
            Ok(Ok(connect)) => Ok(Self {
                conn: Arc::new(Conn(ManuallyDrop::new(connect))),
                uri: uri.to_owned(),
                calls: *deadline,
            }),
            Ok(Err(e)) => Err(unavailable(e.message().to_owned())),
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
        f: impl FnOnce(&Connect) -> Result<T, virt::error::Error> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        self.bounded_by(&self.calls, call, name, f)
    }

    /// As [`Libvirt::bounded`], waiting at most until `deadline`.
    fn bounded_by<T: Send + 'static>(
        &self,
        deadline: &Deadline,
        call: &'static str,
        name: &str,
        f: impl FnOnce(&Connect) -> Result<T, virt::error::Error> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        let (done, answer) = mpsc::channel();
        let conn = Arc::clone(&self.conn);
        thread::spawn(move || {
            let _ = done.send(f(&conn.0));
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

    /// Runs `f` on the domain (looked up on the helper thread) and releases the handle.
    fn with_domain<T: Send + 'static>(
        &self,
        name: &str,
        call: &'static str,
        f: impl FnOnce(&Domain) -> Result<T, virt::error::Error> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        let target = name.to_owned();
        self.bounded(call, name, move |conn| {
            let domain = conn.lookup_domain_by_name(&target)?;
            let result = f(&domain);
            unsafe_free::free_domain(domain);
            result
        })
    }
}

fn call_error(call: &'static str, domain: &str, error: &virt::error::Error) -> HypervisorError {
    HypervisorError::Call {
        call,
        domain: domain.to_owned(),
        message: error.message().to_owned(),
    }
}

impl Hypervisor for Libvirt {
    fn define(&self, xml: &str) -> Result<(), HypervisorError> {
        let xml = xml.to_owned();
        self.bounded("define", "from config", move |conn| {
            let domain = conn.define_domain_xml(&xml)?;
            unsafe_free::free_domain(domain);
            Ok(())
        })
    }

    fn status(&self, name: &str) -> Result<Option<DomainStatus>, HypervisorError> {
        let target = name.to_owned();
        self.bounded("state", name, move |conn| {
            let domain = match conn.lookup_domain_by_name(&target) {
                Ok(domain) => domain,
                Err(e) if e.code() == Enum::Known(ErrorNumber::NoDomain) => return Ok(None),
                Err(e) => return Err(e),
            };
            let status = match domain.state() {
                Ok((Enum::Known(state), Enum::Known(reason))) => Ok(Some(convert(state, reason))),
                // virt hides a failed virDomainGetState as an unknown state; libvirt's last
                // error is per thread, and this is the thread that made the call.
                Ok(_) => Err(virt::error::Error::last_error()),
                Err(e) => Err(e),
            };
            unsafe_free::free_domain(domain);
            status
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
            let result = conn.0.lookup_domain_by_name(&target).and_then(|worker| {
                let result = worker.managed_save(0);
                unsafe_free::free_domain(worker);
                result
            });
            let _ = done.send(result);
        });
        let budget = deadline.remaining();
        loop {
            match saved.recv_timeout(PROGRESS_EVERY.min(deadline.remaining())) {
                Ok(result) => return result.map_err(|e| call_error("managed save", name, &e)),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(HypervisorError::Call {
                        call: "managed save",
                        domain: name.to_owned(),
                        message: "the save thread ended without an answer".to_owned(),
                    })
                }
                Err(RecvTimeoutError::Timeout) if deadline.expired() => {
                    if let Err(e) = self.with_domain(name, "abort job", unsafe_free::abort_job) {
                        log::error!("cannot abort the hibernation of {name}: {e}");
                    }
                    let late = saved.recv_timeout(ABORT_GRACE.min(self.calls.remaining()));
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
                        let domain = conn.lookup_domain_by_name(&target)?;
                        let job = domain.job_info();
                        unsafe_free::free_domain(domain);
                        job
                    });
                    if let Err(e) = &job {
                        log::debug!("{e}");
                    }
                    let job = job.ok();
                    progress(SaveProgress {
                        processed: job.as_ref().and_then(|j| j.data_processed).unwrap_or(0),
                        total: job.as_ref().and_then(|j| j.data_total).unwrap_or(0),
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

fn convert(state: DomainState, reason: DomainStateReason) -> DomainStatus {
    let state = match state {
        DomainState::NoState => State::NoState,
        DomainState::Running => State::Running,
        DomainState::Blocked => State::Blocked,
        DomainState::Paused => State::Paused,
        DomainState::Shutdown => State::ShuttingDown,
        DomainState::Shutoff => State::ShutOff,
        DomainState::Crashed => State::Crashed,
        DomainState::PMSuspended => State::PmSuspended,
    };
    let reason = match reason {
        DomainStateReason::Running(Enum::Known(r)) => match r {
            DomainRunningReason::Booted => Reason::Booted,
            DomainRunningReason::Restored => Reason::Restored,
            DomainRunningReason::Unpaused => Reason::Unpaused,
            DomainRunningReason::SaveCancelled => Reason::SaveCanceled,
            DomainRunningReason::Crashed => Reason::Crashed,
            other => Reason::Other(other as i32),
        },
        DomainStateReason::Paused(Enum::Known(r)) => match r {
            DomainPausedReason::IOError => Reason::IoError,
            DomainPausedReason::Watchdog => Reason::Watchdog,
            DomainPausedReason::Crashed => Reason::Crashed,
            DomainPausedReason::User => Reason::User,
            other => Reason::Other(other as i32),
        },
        DomainStateReason::Shutoff(Enum::Known(r)) => match r {
            DomainShutoffReason::Crashed => Reason::Crashed,
            DomainShutoffReason::Saved => Reason::Saved,
            DomainShutoffReason::Failed => Reason::Failed,
            DomainShutoffReason::Shutdown => Reason::Shutdown,
            DomainShutoffReason::Destroyed => Reason::Destroyed,
            other => Reason::Other(other as i32),
        },
        DomainStateReason::Crashed(_) => Reason::Crashed,
        _ => Reason::Other(-1),
    };
    DomainStatus { state, reason }
}

/// The only unsafe code of the agent: releasing libvirt handles without the `virt` crate's
/// panicking `Drop`, and aborting a job, which `virt` 0.5 does not wrap.
#[allow(unsafe_code, reason = "virt 0.5 has no fallible close, free or abort")]
mod unsafe_free {
    use std::mem::ManuallyDrop;

    use virt::connect::Connect;
    use virt::domain::Domain;

    pub(super) fn take(slot: &mut ManuallyDrop<Connect>) -> Connect {
        // SAFETY: only called from `Conn::drop`, after which the slot is never used again.
        unsafe { ManuallyDrop::take(slot) }
    }

    /// Drops our reference on the connection, logging instead of panicking on failure.
    pub(super) fn close(connect: Connect) {
        // SAFETY: the pointer is valid while `connect` lives; we forget `connect` right after,
        // so the reference it owned is released exactly once, by the call below.
        let ptr = unsafe { connect.as_ptr() };
        std::mem::forget(connect);
        // SAFETY: `ptr` is a live connection whose one reference we own (see above).
        if unsafe { virt::sys::virConnectClose(ptr) } < 0 {
            log::warn!(
                "closing the libvirt connection failed: {}",
                virt::error::Error::last_error().message()
            );
        }
    }

    /// Drops our reference on the domain, logging instead of panicking on failure.
    pub(super) fn free_domain(domain: Domain) {
        // SAFETY: as in `close`: the owned reference is released once, by the call below.
        let ptr = unsafe { domain.as_ptr() };
        std::mem::forget(domain);
        // SAFETY: `ptr` is a live domain handle whose one reference we own.
        if unsafe { virt::sys::virDomainFree(ptr) } < 0 {
            log::warn!(
                "releasing a libvirt domain handle failed: {}",
                virt::error::Error::last_error().message()
            );
        }
    }

    /// virDomainAbortJob: cancels a running managed save (the VM keeps running).
    pub(super) fn abort_job(domain: &Domain) -> Result<(), virt::error::Error> {
        // SAFETY: `domain` is borrowed, so the handle stays valid during the call, and
        // virDomainAbortJob neither keeps nor frees it.
        if unsafe { virt::sys::virDomainAbortJob(domain.as_ptr()) } < 0 {
            Err(virt::error::Error::last_error())
        } else {
            Ok(())
        }
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
