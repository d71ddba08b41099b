//! Integration tests of clever-cib: description checking, the checked-in examples (kept in sync
//! and validated by `crm_verify`), and the scenario suite under Pacemaker's real scheduler.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod examples;
mod scenarios;
mod sim;
mod tools;
mod validation;
