//! The OCF resource-agent framework of clever-cluster.
//!
//! An agent is a [`Declaration`]: its parameters ([`Parameter`] statics), its actions with their
//! handlers ([`ActionSpec`]) and an [`Agent`] type that turns checked parameters into a typed
//! configuration. From that one value the framework derives the metadata XML, the usage text, the
//! parameter checks and the dispatch, and it alone turns outcomes into exit codes: an agent's
//! `main` is `clever_ocf::run(&DECLARATION)`.

mod action;
mod context;
mod declaration;
mod lock;
pub mod logging;
pub mod lsb;
mod manpage;
mod metadata;
mod parameter;
mod run;
pub mod run_dir;
mod status;
mod watchdog;

pub use action::{Action, Role};
pub use clever_command::{shorten, SHOWN_VALUE_LEN};
pub use clever_deadline::{Deadline, DeadlineExceeded};
pub use context::{Context, Invocation};
pub use declaration::{ActionSpec, Agent, Declaration, Handler, META_DATA_TIMEOUT_SECS};
pub use lock::{LockError, ResourceLock};
pub use manpage::man_page;
pub use metadata::{metadata_xml, OCF_VERSION};
pub use parameter::{
    AbsolutePath, ContentType, Parameter, ParameterError, ParameterSpec, ParameterType, Parameters,
    MAX_VALUE_LEN,
};
pub use run::{run, run_with, EXIT_REASON_PREFIX};
pub use status::{HasExitCode, OcfExitCode, Status};
