//! Sessions after a login, each with its CSRF token. Kept in memory: a restart logs everyone
//! out, which is what an admin expects of a restarted security-relevant service.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;

/// The cookie's name; `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const COOKIE: &str = "__Host-clever-session";

/// Idle sessions end after this long.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// No session outlives a shift.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept; the oldest goes first, so a login flood cannot grow memory.
pub const MAX_SESSIONS: usize = 256;

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
}

#[derive(Debug, thiserror::Error)]
#[error("the system's random source failed: {0}")]
pub struct RandomError(getrandom::Error);

/// 256 random bits, URL-safe.
pub fn random_token() -> Result<String, RandomError> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// A new session for `user`: its cookie token.
    pub fn create(&mut self, user: &str, now: Instant) -> Result<String, RandomError> {
        self.expire(now);
        while self.by_token.len() >= MAX_SESSIONS {
            let oldest = self
                .by_token
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(t, _)| t.clone());
            match oldest {
                Some(token) => self.by_token.remove(&token),
                None => break,
            };
        }
        let token = random_token()?;
        self.by_token.insert(
            token.clone(),
            Session {
                user: user.to_owned(),
                csrf: random_token()?,
                created: now,
                last_seen: now,
            },
        );
        Ok(token)
    }

    /// The live session of `token`, refreshed.
    pub fn touch(&mut self, token: &str, now: Instant) -> Option<Session> {
        self.expire(now);
        let session = self.by_token.get_mut(token)?;
        session.last_seen = now;
        Some(session.clone())
    }

    /// The live session of `token`, not refreshed: what a long-lived event stream checks, so
    /// an open page alone does not keep a session alive forever.
    pub fn peek(&mut self, token: &str, now: Instant) -> Option<Session> {
        self.expire(now);
        self.by_token.get(token).cloned()
    }

    pub fn remove(&mut self, token: &str) {
        self.by_token.remove(token);
    }

    fn expire(&mut self, now: Instant) {
        self.by_token.retain(|_, s| {
            now.saturating_duration_since(s.last_seen) < IDLE
                && now.saturating_duration_since(s.created) < LIFETIME
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_or_old_and_tokens_differ() {
        let mut sessions = Sessions::default();
        let t0 = Instant::now();
        let a = sessions.create("alice", t0).unwrap();
        let b = sessions.create("alice", t0).unwrap();
        assert_ne!(a, b);
        let session = sessions.touch(&a, t0).unwrap();
        assert_eq!(session.user, "alice");
        assert_ne!(session.csrf, sessions.touch(&b, t0).unwrap().csrf);
        // Kept alive by use, until the lifetime ends.
        let mut now = t0;
        while now.duration_since(t0) + IDLE / 2 < LIFETIME {
            now += IDLE / 2;
            assert!(sessions.touch(&a, now).is_some());
        }
        assert!(sessions.touch(&a, t0 + LIFETIME).is_none());
        assert!(sessions.touch(&b, t0 + LIFETIME).is_none(), "b was idle");
        let c = sessions.create("bob", t0).unwrap();
        assert!(sessions.peek(&c, t0 + IDLE / 2).is_some());
        assert!(
            sessions.touch(&c, t0 + IDLE).is_none(),
            "peek does not refresh"
        );
    }

    #[test]
    fn the_session_table_is_bounded() {
        let mut sessions = Sessions::default();
        let now = Instant::now();
        let first = sessions.create("u", now).unwrap();
        for i in 0..MAX_SESSIONS {
            sessions
                .create(
                    "u",
                    now + Duration::from_millis(u64::try_from(i).unwrap() + 1),
                )
                .unwrap();
        }
        assert!(sessions.by_token.len() <= MAX_SESSIONS);
        assert!(
            sessions.peek(&first, now).is_none(),
            "the oldest went first"
        );
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }
}
