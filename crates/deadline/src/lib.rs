//! The time budget of one agent action.
//!
//! Pacemaker kills an agent whose operation outlives `OCF_RESKEY_CRM_meta_timeout` and records a
//! timeout, which on `stop` means fencing. An agent that notices the end of its budget itself can
//! still clean up and say *why* it failed, so every blocking call takes a [`Deadline`] and gives
//! up a little before Pacemaker would.

use std::fmt;
use std::time::{Duration, Instant};

/// Time kept back from the operation timeout so the agent can report and exit before Pacemaker
/// kills it: a tenth of the timeout, at least [`MIN_MARGIN`], at most [`MAX_MARGIN`].
pub const MIN_MARGIN: Duration = Duration::from_millis(200);
/// Upper bound of the margin: a long stop must not waste a minute of its budget.
pub const MAX_MARGIN: Duration = Duration::from_secs(5);

/// A wait ran out of its budget.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} did not finish within the {budget:?} left of the operation timeout")]
pub struct DeadlineExceeded {
    /// What was being waited for, in words an admin reads in the exit reason.
    pub what: String,
    /// The budget that was available when the wait began.
    pub budget: Duration,
}

/// An instant by which the current action must have finished its work.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    started: Instant,
    end: Instant,
    timeout: Duration,
}

impl Deadline {
    /// The working budget for an operation of `timeout`, starting now: the timeout less the
    /// reporting margin.
    pub fn from_timeout(timeout: Duration) -> Self {
        let started = Instant::now();
        let budget = timeout.saturating_sub(margin_for(timeout));
        Self {
            started,
            end: started + budget,
            timeout,
        }
    }

    /// A deadline `budget` from now, with no margin taken off: for waits nested inside an
    /// action that already has its own deadline.
    pub fn after(budget: Duration) -> Self {
        let started = Instant::now();
        Self {
            started,
            end: started + budget,
            timeout: budget,
        }
    }

    /// The earlier of this deadline and `budget` from now: a sub-step that must not take more
    /// than `budget` even when the action has more time.
    pub fn capped(&self, budget: Duration) -> Self {
        let capped_end = Instant::now() + budget;
        if capped_end < self.end {
            Self {
                end: capped_end,
                ..*self
            }
        } else {
            *self
        }
    }

    /// Time left before the deadline; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.end
    }

    /// The operation timeout this deadline was built from.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The instant at which the work must have finished.
    pub fn end(&self) -> Instant {
        self.end
    }

    /// How long the action has been running.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The instant by which the process must be gone for Pacemaker to read its answer: half of the
    /// margin after [`Deadline::end`]. The framework's watchdog uses it as a last resort.
    pub fn hard_stop(&self) -> Instant {
        self.end + (self.started + self.timeout).saturating_duration_since(self.end) / 2
    }

    /// An error naming `what` for a wait that found the deadline passed.
    pub fn exceeded(&self, what: impl Into<String>) -> DeadlineExceeded {
        DeadlineExceeded {
            what: what.into(),
            budget: self.end.saturating_duration_since(self.started),
        }
    }

    /// Retries `attempt` until it yields `Some`, sleeping between tries with a backoff that starts
    /// at `first_pause` and doubles up to one second, never past the deadline. Polling loops
    /// (a DRBD promotion settling, a process vanishing) all need exactly this shape.
    pub fn poll<T>(
        &self,
        what: &str,
        first_pause: Duration,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Result<T, DeadlineExceeded> {
        let mut pause = first_pause.max(Duration::from_millis(1));
        loop {
            if let Some(found) = attempt() {
                return Ok(found);
            }
            let left = self.remaining();
            if left.is_zero() {
                return Err(self.exceeded(what));
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("timeout", &self.timeout)
            .field("remaining", &self.remaining())
            .finish()
    }
}

fn margin_for(timeout: Duration) -> Duration {
    (timeout / 10)
        .clamp(MIN_MARGIN, MAX_MARGIN)
        .min(timeout / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_a_tenth_within_bounds() {
        assert_eq!(margin_for(Duration::from_secs(20)), Duration::from_secs(2));
        assert_eq!(margin_for(Duration::from_secs(600)), MAX_MARGIN);
        assert_eq!(margin_for(Duration::from_secs(1)), MIN_MARGIN);
        // A tiny timeout still leaves half of itself to work with.
        assert_eq!(
            margin_for(Duration::from_millis(100)),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn budget_is_timeout_less_margin_and_hard_stop_is_before_timeout() {
        let deadline = Deadline::from_timeout(Duration::from_secs(20));
        let budget = deadline.end() - deadline.started;
        assert_eq!(budget, Duration::from_secs(18));
        let hard = deadline.hard_stop() - deadline.started;
        assert_eq!(hard, Duration::from_secs(19));
        assert!(!deadline.expired());
    }

    #[test]
    fn capped_takes_the_earlier_end() {
        let long = Deadline::after(Duration::from_secs(60));
        let short = long.capped(Duration::from_millis(10));
        assert!(short.end() < long.end());
        let not_longer = short.capped(Duration::from_secs(60));
        assert_eq!(not_longer.end(), short.end());
    }

    #[test]
    fn poll_returns_value_or_times_out() {
        let deadline = Deadline::after(Duration::from_millis(50));
        let mut tries = 0;
        let found = deadline.poll("counter", Duration::from_millis(1), || {
            tries += 1;
            (tries == 3).then_some(tries)
        });
        assert_eq!(found, Ok(3));

        let started = Instant::now();
        let never: Result<(), _> = Deadline::after(Duration::from_millis(30)).poll(
            "nothing",
            Duration::from_millis(1),
            || None,
        );
        let err = never.unwrap_err();
        assert_eq!(err.what, "nothing");
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
