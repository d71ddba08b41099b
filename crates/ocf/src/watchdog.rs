//! Ends an action that outlives its deadline, with an exit reason, even when the action is stuck
//! where no deadline reaches (a `stat` on a dead device, a blocking library call).
//!
//! A POSIX timer and a signal handler rather than a sleeping thread: creating and reaping a
//! thread costs about 0.2 ms per call here (a static Rust hello: 0.66 ms; with one sleeping thread:
//! 0.85 ms), a fifth of a whole depth-0 monitor, paid every few seconds on every node for as long
//! as the cluster runs. The price is this module's `unsafe`: the handler may only do what is
//! async-signal-safe, so the message is prepared before the timer is armed, and the handler
//! writes it and calls `_exit`. The cluster log gets it through Pacemaker, which records what an
//! agent prints on stderr.
#![allow(unsafe_code)]

use std::sync::OnceLock;
use std::time::Instant;

use nix::libc;
use nix::sys::signal::{
    sigaction, SaFlags, SigAction, SigEvent, SigHandler, SigSet, SigevNotify, Signal,
};
use nix::sys::time::TimeSpec;
use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
use nix::time::ClockId;

use crate::status::OcfExitCode;

/// What the handler writes: `ocf-exit-reason:…\n`, fixed before the timer can fire.
static MESSAGE: OnceLock<Box<[u8]>> = OnceLock::new();

/// The exit code of an action ended by the watchdog: a generic failure, which Pacemaker handles
/// like the timeout it would otherwise have hit, minus the wait.
const EXIT_CODE: i32 = OcfExitCode::ErrGeneric.code() as i32;

extern "C" fn on_timer(_signal: libc::c_int) {
    if let Some(message) = MESSAGE.get() {
        // SAFETY: write(2) is async-signal-safe; the buffer is a 'static allocation that is never
        // freed or changed after MESSAGE was set, which happened before the timer was armed.
        unsafe {
            libc::write(libc::STDERR_FILENO, message.as_ptr().cast(), message.len());
        }
    }
    // SAFETY: _exit(2) is async-signal-safe and ends the process without running anything else.
    unsafe { libc::_exit(EXIT_CODE) }
}

/// Arms the process's one watchdog: at `hard_stop`, `message` goes to stderr and the process
/// exits. A second call does nothing (an agent runs one action per process).
pub(crate) fn arm(hard_stop: Instant, message: String) -> nix::Result<()> {
    if MESSAGE
        .set(message.into_bytes().into_boxed_slice())
        .is_err()
    {
        return Ok(());
    }
    let handler = SigAction::new(
        SigHandler::Handler(on_timer),
        SaFlags::SA_RESTART,
        SigSet::all(),
    );
    // SAFETY: the handler only calls async-signal-safe functions (see on_timer).
    unsafe { sigaction(Signal::SIGALRM, &handler) }?;
    let mut timer = Timer::new(
        ClockId::CLOCK_MONOTONIC,
        SigEvent::new(SigevNotify::SigevSignal {
            signal: Signal::SIGALRM,
            si_value: 0,
        }),
    )?;
    // A zero expiration would disarm the timer: an action already past its hard stop gets the
    // shortest wait instead.
    let wait = hard_stop
        .saturating_duration_since(Instant::now())
        .max(std::time::Duration::from_millis(1));
    timer.set(
        Expiration::OneShot(TimeSpec::from_duration(wait)),
        TimerSetTimeFlags::empty(),
    )?;
    // Dropping the timer would delete it; it must live as long as the process.
    std::mem::forget(timer);
    Ok(())
}
