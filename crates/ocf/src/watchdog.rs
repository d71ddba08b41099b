//! Ends an action that outlives its deadline, or that the executor or an admin ends with a
//! signal, with an exit reason and without leaving the programs it ran behind, even when the
//! action is stuck where no deadline reaches (a `stat` on a dead device, a blocking library call).
//!
//! A POSIX timer and signal handlers rather than a sleeping thread: creating and reaping a thread
//! costs about 0.2 ms per call here (a static Rust hello: 0.66 ms; with one sleeping thread:
//! 0.85 ms), a fifth of a whole depth-0 monitor, paid every few seconds on every node for as long
//! as the cluster runs. The price is this module's `unsafe`: a handler may only do what is
//! async-signal-safe, so the messages are prepared before anything is armed, and a handler kills
//! the child process groups (atomics and kill(2)), writes its message and calls `_exit`. The
//! cluster log gets the message through Pacemaker, which records what an agent prints on stderr.
#![allow(unsafe_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::signal::{
    sigaction, SaFlags, SigAction, SigEvent, SigHandler, SigSet, SigevNotify, Signal,
};
use nix::sys::time::TimeSpec;
use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
use nix::time::ClockId;

use crate::status::OcfExitCode;

/// The timer's own signal; it is not one anybody sends an agent to end it.
const TIMER_SIGNAL: Signal = Signal::SIGALRM;

/// What the handlers write (`ocf-exit-reason:…\n` lines), fixed before any handler is installed.
#[derive(Debug)]
pub(crate) struct Endings {
    /// When the hard stop passes.
    pub timeout: String,
    /// When one of these signals arrives.
    pub signalled: [(Signal, String); 3],
}

static ENDINGS: OnceLock<Endings> = OnceLock::new();

/// The exit code of an ended action: a generic failure, which Pacemaker handles like the
/// timeout it would otherwise have hit, minus the wait.
const EXIT_CODE: i32 = OcfExitCode::ErrGeneric.code() as i32;

extern "C" fn on_signal(number: libc::c_int) {
    if let Ok(signal) = Signal::try_from(number) {
        if clever_command::end_children(signal) == clever_command::ChildrenEnded::AfterTheSpawn {
            // This thread was spawning a child; it raises the signal again once the child is
            // recorded, and that call ends the process.
            return;
        }
    }
    if let Some(endings) = ENDINGS.get() {
        let message = if number == TIMER_SIGNAL as libc::c_int {
            Some(&endings.timeout)
        } else {
            endings
                .signalled
                .iter()
                .find(|(signal, _)| *signal as libc::c_int == number)
                .map(|(_, message)| message)
        };
        if let Some(message) = message {
            // SAFETY: write(2) is async-signal-safe; the buffer belongs to ENDINGS, set once
            // before any handler was installed and never changed or freed afterwards.
            unsafe {
                libc::write(libc::STDERR_FILENO, message.as_ptr().cast(), message.len());
            }
        }
    }
    // SAFETY: _exit(2) is async-signal-safe and ends the process without running anything else.
    unsafe { libc::_exit(EXIT_CODE) }
}

/// Arms the process's one watchdog for `hard_stop` and the handlers of the ending signals. A
/// second call does nothing (an agent runs one action per process).
pub(crate) fn arm(hard_stop: Instant, endings: Endings) -> nix::Result<()> {
    let signals: Vec<Signal> = endings.signalled.iter().map(|(s, _)| *s).collect();
    if ENDINGS.set(endings).is_err() {
        return Ok(());
    }
    // Every ending signal is blocked while a handler runs: the first one decides the answer.
    let mut mask = SigSet::empty();
    mask.add(TIMER_SIGNAL);
    for signal in &signals {
        mask.add(*signal);
    }
    let handler = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, mask);
    for signal in signals.iter().chain([&TIMER_SIGNAL]) {
        // SAFETY: the handler only calls async-signal-safe functions (see on_signal).
        unsafe { sigaction(*signal, &handler) }?;
    }
    let mut timer = Timer::new(
        ClockId::CLOCK_MONOTONIC,
        SigEvent::new(SigevNotify::SigevSignal {
            signal: TIMER_SIGNAL,
            si_value: 0,
        }),
    )?;
    // A zero expiration would disarm the timer: an action already past its hard stop gets the
    // shortest wait instead.
    let wait = hard_stop
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    timer.set(
        Expiration::OneShot(TimeSpec::from_duration(wait)),
        TimerSetTimeFlags::empty(),
    )?;
    // Dropping the timer would delete it; it must live as long as the process.
    std::mem::forget(timer);
    Ok(())
}
