//! Mount state read from the kernel, never from `mount(8)` output.
//!
//! A filesystem agent's monitor runs every few seconds on every node; reading
//! `/proc/self/mountinfo` costs microseconds and no process, and it is the only source that
//! escapes paths unambiguously. Holders of a busy mount are found the way `fuser -m` does, by
//! scanning `/proc`, so that a stop can end them within its deadline.
//!
//! Both readers take a root path so tests feed them recorded or synthetic trees.

mod holders;
mod mountinfo;

pub use holders::{find_holders, HoldKind, Holder};
pub use mountinfo::{parse_mountinfo, MountEntry, MountinfoError};
