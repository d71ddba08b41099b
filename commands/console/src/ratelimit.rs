//! Failed logins are limited per client address and per user name: guessing a password costs
//! an attacker a window of waiting every few tries, from one address or many.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures allowed within the window before logins from that address (or for that name) wait.
pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys remembered at most; the table cannot be grown without bound by spoofed names.
const MAX_KEYS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    User(String),
}

#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: HashMap<Key, VecDeque<Instant>>,
}

impl LoginLimiter {
    fn keys(address: Option<IpAddr>, user: &str) -> Vec<Key> {
        address
            .map(Key::Address)
            .into_iter()
            .chain(std::iter::once(Key::User(user.to_owned())))
            .collect()
    }

    /// `Err(wait)` when this attempt must not be tried now.
    pub fn check(
        &mut self,
        address: Option<IpAddr>,
        user: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        self.prune(now);
        let mut wait = Duration::ZERO;
        for key in Self::keys(address, user) {
            if let Some(times) = self.failures.get(&key) {
                if times.len() >= MAX_FAILURES {
                    if let Some(oldest) = times.front() {
                        wait =
                            wait.max(WINDOW.saturating_sub(now.saturating_duration_since(*oldest)));
                    }
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.max(Duration::from_secs(1)))
        }
    }

    pub fn failed(&mut self, address: Option<IpAddr>, user: &str, now: Instant) {
        self.prune(now);
        if self.failures.len() >= MAX_KEYS {
            // Forget the names first: an address is the better key to keep.
            self.failures.retain(|k, _| matches!(k, Key::Address(_)));
        }
        for key in Self::keys(address, user) {
            let times = self.failures.entry(key).or_default();
            times.push_back(now);
            while times.len() > MAX_FAILURES {
                times.pop_front();
            }
        }
    }

    pub fn succeeded(&mut self, address: Option<IpAddr>, user: &str) {
        for key in Self::keys(address, user) {
            self.failures.remove(&key);
        }
    }

    fn prune(&mut self, now: Instant) {
        self.failures.retain(|_, times| {
            while times
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
            {
                times.pop_front();
            }
            !times.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_make_the_address_and_the_name_wait_for_the_window() {
        let mut limiter = LoginLimiter::default();
        let here: IpAddr = [192, 0, 2, 1].into();
        let there: IpAddr = [192, 0, 2, 2].into();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(limiter.check(Some(here), "alice", t0), Ok(()), "try {i}");
            limiter.failed(Some(here), "alice", t0);
        }
        let wait = limiter.check(Some(here), "bob", t0).unwrap_err();
        assert_eq!(wait, WINDOW);
        assert!(
            limiter.check(Some(there), "alice", t0).is_err(),
            "the name too"
        );
        assert_eq!(limiter.check(Some(there), "bob", t0), Ok(()));
        assert_eq!(limiter.check(Some(here), "alice", t0 + WINDOW), Ok(()));
    }

    #[test]
    fn success_clears_the_count() {
        let mut limiter = LoginLimiter::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            limiter.failed(None, "alice", t0);
        }
        limiter.succeeded(None, "alice");
        limiter.failed(None, "alice", t0);
        assert_eq!(limiter.check(None, "alice", t0), Ok(()));
    }
}
