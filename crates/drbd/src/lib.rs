//! DRBD state for clever-cluster's agents (`ocf:clever:drbdfs`) and `clevervm status`.
//!
//! Mounting a replicated filesystem is only safe on the node that holds the newest data and
//! is the only writer; that is DRBD's state, and each DRBD generation prints it differently.
//! This crate reads every form we meet in the field into one model ([`Resource`]):
//!
//! * `drbdsetup status --json` (DRBD 9): [`parse_status_json`],
//! * `drbdsetup status` text, plain or verbose (DRBD 9, and drbd-utils 9 on an 8.4 kernel):
//!   [`parse_status_text`],
//! * `drbdsetup events2 --now` (DRBD 9 and 8.4; the fallback where `--json` does not exist):
//!   [`parse_events2`],
//! * `/proc/drbd` (8.3/8.4, minors only): [`parse_proc_drbd`] and [`ProcDrbd::resources`],
//!
//! and judges it with pure functions ([`mount_verdict`], [`replication_health`]) whose reasons
//! are written for `crm_mon`. [`HostDrbd`] is the one place that runs tools.

mod device_path;
mod error;
mod events2;
mod fields;
mod json;
mod model;
mod proc_drbd;
mod safety;
mod source;
mod text;

pub use device_path::{minor_owners, resolve_device, DrbdDevice};
pub use error::{DrbdParseError, DrbdStatusError, Format};
pub use events2::parse_events2;
pub use json::parse_status_json;
pub use model::{
    Connection, ConnectionState, Device, DiskState, PeerDevice, ReplicationState, Resource, Role,
    UnknownStateError,
};
pub use proc_drbd::{
    parse_proc_drbd, Drbd8ConnState, MinorOwner, MinorStatus, ProcDrbd, ProcMinor, DRBD84_PEER_NAME,
};
pub use safety::{mount_verdict, replication_health, MountVerdict, Promotion, ReplicationHealth};
pub use source::{DrbdStatusSource, HostDrbd};
pub use text::parse_status_text;
