//! libvirt's C API through the `virt` crate: the real [`Hypervisor`], in the libvirt-linked
//! build only (the `vm` binary Pacemaker runs must not load `libvirt.so`; see
//! `clever_agent_vm::linked`).
//!
//! Two habits of `virt` 0.5 are kept away from the agent:
//!
//! - its `Connect` and `Domain` release their libvirt reference in `Drop` and panic when that
//!   fails, and any panic ends the agent with an internal error (the framework's hook). The
//!   crate has no explicit close or free to call instead, so every connection and domain handle
//!   it hands over is wrapped in [`ManuallyDrop`] at once and never dropped: the references go
//!   with the process, which ends when the action does (one connection per action, one domain
//!   handle per call, a few hundred bytes each);
//! - `Domain::state` ignores a failed `virDomainGetState` and returns the `-1` it started from
//!   as an unknown state: that is read as the failure it is, with libvirt's message.
//!
//! Every call runs on a helper thread and is given up when the deadline passes: a libvirtd that
//! hangs mid-stop must leave the agent time to end qemu itself. libvirt's own printing of
//! errors is silenced; each error is returned and reported by the caller.

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use clever_agent_vm::hypervisor::{
    DomainStatus, Hypervisor, HypervisorError, SaveProgress, SaveWrites,
};
use clever_deadline::Deadline;
use virt::connect::Connect;
use virt::domain::{Domain, DomainStateReason, DomainStateReasonEnum};
use virt::enumutil::Enum;
use virt::error::{Error, ErrorNumber};

/// How often a running hibernation logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The most of a hibernation's budget kept back for aborting it and hearing libvirt's answer:
/// the abort comes early enough that the whole step, answer included, ends within the budget
/// the stop announced, because the steps after it (shutdown, power-off) were given only what
/// is left after that budget.
const ABORT_GRACE: Duration = Duration::from_secs(10);
/// Longest wait for the connection itself.
const CONNECT_MAX: Duration = Duration::from_secs(15);

/// The part of `budget` kept for the abort: [`ABORT_GRACE`] at most, a quarter of it at most,
/// so that a short budget still leaves the save most of its time.
fn abort_grace(budget: Duration) -> Duration {
    ABORT_GRACE.min(budget / 4)
}

/// A failed libvirt call, read on the thread that made it (libvirt keeps errors per thread).
#[derive(Debug)]
struct CallError {
    message: String,
    no_domain: bool,
}

impl From<Error> for CallError {
    fn from(error: Error) -> Self {
        Self {
            no_domain: error.code().is(ErrorNumber::NoDomain),
            message: error.message().to_owned(),
        }
    }
}

/// A connection, never dropped (see the module's documentation).
type Connection = ManuallyDrop<Connect>;

/// The domain `name`, as a handle that is never dropped.
fn lookup(conn: &Connect, name: &str) -> Result<ManuallyDrop<Domain>, CallError> {
    Ok(ManuallyDrop::new(conn.lookup_domain_by_name(name)?))
}

/// `virDomainGetState`'s raw state and reason; a failure hidden by the crate is a failure.
fn raw_state(domain: &Domain) -> Result<(i32, i32), CallError> {
    let (state, reason) = domain.state()?;
    match i32::try_from(state.to_raw()) {
        Ok(state) if state >= 0 => Ok((state, raw_reason(reason))),
        // The crate's initial -1 (as an unsigned state): libvirt's error is this thread's last.
        _ => Err(Error::last_error().into()),
    }
}

fn raw_reason(reason: DomainStateReasonEnum) -> i32 {
    let raw = match reason {
        Enum::Unknown(raw) => return raw,
        Enum::Known(known) => match known {
            DomainStateReason::NoState(r) => r.to_raw(),
            DomainStateReason::Running(r) => r.to_raw(),
            DomainStateReason::Blocked(r) => r.to_raw(),
            DomainStateReason::Paused(r) => r.to_raw(),
            DomainStateReason::Shutdown(r) => r.to_raw(),
            DomainStateReason::Shutoff(r) => r.to_raw(),
            DomainStateReason::Crashed(r) => r.to_raw(),
            DomainStateReason::PMSuspended(r) => r.to_raw(),
        },
    };
    i32::try_from(raw).unwrap_or(-1)
}

/// The [`clever_agent_vm::Connector`] of this build.
pub fn connect(uri: &str, deadline: &Deadline) -> Result<Box<dyn Hypervisor>, HypervisorError> {
    Libvirt::connect(uri, deadline).map(|l| Box::new(l) as Box<dyn Hypervisor>)
}

/// One connection to libvirt, shared with the helper threads.
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

impl Libvirt {
    /// Opens a connection to `uri`; every call on it, the opening included (at most 15 s and
    /// three quarters of the time left), gives up when `deadline` passes.
    pub fn connect(uri: &str, deadline: &Deadline) -> Result<Self, HypervisorError> {
        let unavailable = |message: String| HypervisorError::Unavailable {
            uri: uri.to_owned(),
            message,
        };
        // The crate unwraps the URI into a C string: a NUL byte would be a panic there.
        if uri.contains('\0') {
            return Err(unavailable("the URI contains a NUL byte".to_owned()));
        }
        virt::error::clear_error_callback();
        let (done, opened) = mpsc::channel();
        let target = uri.to_owned();
        // A connection that comes too late is left to the process's exit.
        thread::spawn(move || {
            let _ = done.send(Connect::open(Some(&target)).map(ManuallyDrop::new));
        });
        let wait = CONNECT_MAX.min(deadline.remaining() * 3 / 4);
        match opened.recv_timeout(wait) {
            Ok(Ok(connection)) => Ok(Self {
                conn: Arc::new(connection),
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
        f: impl FnOnce(&Connect) -> Result<T, CallError> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        self.bounded_by(&self.calls, call, name, f)
    }

    /// As [`Libvirt::bounded`], waiting at most until `deadline`.
    fn bounded_by<T: Send + 'static>(
        &self,
        deadline: &Deadline,
        call: &'static str,
        name: &str,
        f: impl FnOnce(&Connect) -> Result<T, CallError> + Send + 'static,
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

    /// Runs `f` on the domain (looked up on the helper thread).
    fn with_domain<T: Send + 'static>(
        &self,
        name: &str,
        call: &'static str,
        f: impl FnOnce(&Domain) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        let target = name.to_owned();
        self.bounded(call, name, move |conn| Ok(f(&*lookup(conn, &target)?)?))
    }

    /// Aborts the domain's job (the managed save) on this connection, waiting at most until
    /// `deadline`. `virt` 0.5 wraps no `virDomainAbortJob`; its sys crate (`virt::sys`,
    /// maintained with it) binds it, so no second connection or client process is needed.
    fn abort_job(&self, name: &str, deadline: &Deadline) -> Result<(), HypervisorError> {
        let target = name.to_owned();
        self.bounded_by(deadline, "abort job", name, move |conn| {
            let domain = lookup(conn, &target)?;
            #[allow(unsafe_code, reason = "the one libvirt call virt 0.5 does not wrap")]
            // SAFETY: the pointer is `domain`'s own handle, valid for the whole call: the handle
            // is never freed (`lookup` keeps it in ManuallyDrop) and is used by this thread only.
            let code = unsafe { virt::sys::virDomainAbortJob(domain.as_ptr()) };
            if code < 0 {
                Err(Error::last_error().into())
            } else {
                Ok(())
            }
        })
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
            conn.define_domain_xml(&xml).map(ManuallyDrop::new)?;
            Ok(())
        })
    }

    fn status(&self, name: &str) -> Result<Option<DomainStatus>, HypervisorError> {
        let target = name.to_owned();
        self.bounded("state", name, move |conn| {
            let domain = match lookup(conn, &target) {
                Ok(domain) => domain,
                Err(e) if e.no_domain => return Ok(None),
                Err(e) => return Err(e),
            };
            let (state, reason) = raw_state(&domain)?;
            DomainStatus::from_raw(state, reason)
                .map(Some)
                .ok_or_else(|| CallError {
                    message: format!("unknown domain state {state} (reason {reason})"),
                    no_domain: false,
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
        writes: SaveWrites,
        deadline: &Deadline,
        progress: &mut dyn FnMut(SaveProgress),
    ) -> Result<(), HypervisorError> {
        let flags = match writes {
            SaveWrites::BypassCache => virt::sys::VIR_DOMAIN_SAVE_BYPASS_CACHE,
            SaveWrites::PageCache => 0,
        };
        let (done, saved) = mpsc::channel();
        let conn = Arc::clone(&self.conn);
        let target = name.to_owned();
        thread::spawn(move || {
            let result =
                lookup(&conn, &target).and_then(|d| d.managed_save(flags).map_err(CallError::from));
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
                    if let Err(e) = self.abort_job(name, deadline) {
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
                        Ok(lookup(conn, &target)?.job_info()?)
                    });
                    let job = match job {
                        Ok(job) => SaveProgress {
                            processed: job.data_processed.unwrap_or(0),
                            total: job.data_total.unwrap_or(0),
                        },
                        Err(e) => {
                            log::debug!("{e}");
                            SaveProgress {
                                processed: 0,
                                total: 0,
                            }
                        }
                    };
                    progress(job);
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

    #[test]
    fn a_nul_byte_in_the_uri_is_refused_before_the_crate_sees_it() {
        let result = Libvirt::connect(
            "qemu:///sys\0tem",
            &Deadline::after(Duration::from_secs(10)),
        );
        assert!(
            matches!(&result, Err(HypervisorError::Unavailable { message, .. }) if message.contains("NUL")),
            "{result:?}"
        );
    }

    #[test]
    fn the_abort_keeps_a_quarter_of_a_short_budget_and_ten_seconds_of_a_long_one() {
        assert_eq!(abort_grace(Duration::from_secs(8)), Duration::from_secs(2));
        assert_eq!(abort_grace(Duration::from_secs(300)), ABORT_GRACE);
    }
}
