//! clever-drbd against recorded DRBD output: exact parses of every fixture, agreement of all
//! sources on our real DRBD 8.4 captures, verdicts with their exact reasons, the host seam with
//! a replaying runner, and hostile input.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod json_derived;
mod parse_fixtures;
mod real_drbd84;
mod required_states;
mod robustness;
mod safety_fixtures;
mod source;
mod support;
