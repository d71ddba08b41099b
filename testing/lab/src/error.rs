//! What can go wrong while building, driving or tearing down a lab.

use std::io;
use std::path::PathBuf;

use clever_command::CommandError;
use clever_deadline::DeadlineExceeded;
use clever_pacemaker::PacemakerError;
use ocf_conformance::executable::PlaceError;

/// A lab operation failed; every variant names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A file or directory operation on the lab's state failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A system call (namespaces, mounts, signals) failed.
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    /// An external program failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A program could not be placed in the lab.
    #[error(transparent)]
    Place(#[from] PlaceError),
    /// A Pacemaker tool failed.
    #[error(transparent)]
    Pacemaker(#[from] PacemakerError),
    /// Something did not happen in time.
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
    /// The lab state file is unreadable.
    #[error("lab state {}: {message}", path.display())]
    State { path: PathBuf, message: String },
    /// The CIB generator refused the lab's description.
    #[error("CIB generator: {0}")]
    Cib(String),
    /// The request does not fit the lab (unknown node, lab not up, already up …).
    #[error("{0}")]
    Usage(String),
    /// The machine lacks something the lab needs (a program, root, cgroup2).
    #[error("missing prerequisite: {0}")]
    Prerequisite(String),
    /// A soak run could not go on (the cluster did not converge, a fault could not be caused).
    #[error("soak run {run} ({fault}): {source}")]
    Soak {
        run: usize,
        fault: String,
        #[source]
        source: Box<LabError>,
    },
    /// A node or holder process could not set itself up.
    #[error("{what} failed to start: {message}")]
    Start { what: String, message: String },
}

impl LabError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }

    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let what = what.into();
        move |source| Self::Sys { what, source }
    }
}
