//! What can go wrong building, booting and driving VM nodes; each variant says what to do.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use clever_command::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum VmLabError {
    /// A host tool the tier needs is missing or failed (apt-get, dpkg-deb, depmod, ldd, qemu).
    #[error("{0} (scripts/setup.sh installs what the VM tier needs)")]
    Host(#[from] CommandError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The package archive did not give what the recipe expects (a renamed package, a kernel
    /// without DRBD).
    #[error("Debian packages: {0}")]
    Packages(String),
    /// A VM did not come up or stopped answering; the console tail tells why.
    #[error("VM {node}: {problem}\n--- last console lines ---\n{console}")]
    Guest {
        node: String,
        problem: String,
        console: String,
    },
    /// A script in a VM ran past its time and was killed there.
    #[error("VM {node}: script did not finish within {budget:?}: {script}")]
    ScriptTimedOut {
        node: String,
        budget: Duration,
        script: String,
    },
    /// QEMU's monitor refused a command.
    #[error("VM {node}: QMP {command}: {answer}")]
    Qmp {
        node: String,
        command: String,
        answer: String,
    },
}

pub(crate) fn io_error(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> VmLabError {
    let path = path.into();
    move |source| VmLabError::Io { what, path, source }
}
