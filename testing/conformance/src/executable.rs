//! Placing programs that a multi-threaded test binary then runs.
//!
//! A test binary runs its tests on many threads. While one thread holds a file open for writing,
//! every child another thread forks inherits that descriptor until the child execs, and executing
//! the file in that window fails with ETXTBSY ("Text file busy"). `install` writes the file in
//! its own short-lived process, so no descriptor of ours ever refers to a program we run.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clever_command::{CommandError, CommandLine, HostCommands, RunCommand};
use clever_deadline::Deadline;

/// `install` copies a file in milliseconds; this only bounds a wedged one.
const INSTALL_BUDGET: Duration = Duration::from_secs(30);

/// Why a program could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Install(#[from] CommandError),
}

/// Copies `source` to `target` as an executable (mode 0755).
pub fn copy_executable(source: &Path, target: &Path) -> Result<(), PlaceError> {
    let install = CommandLine::new("install")
        .arg("-m")
        .arg("0755")
        .arg("-T")
        .arg(source)
        .arg(target);
    HostCommands.run_ok(&install, &Deadline::after(INSTALL_BUDGET))?;
    Ok(())
}

/// Writes `text` (a script) to `target` as an executable (mode 0755).
pub fn write_executable(target: &Path, text: &str) -> Result<(), PlaceError> {
    // The text goes through a file that is never executed, so our descriptor on it is harmless.
    let mut draft = target.as_os_str().to_owned();
    draft.push(".draft");
    let draft = PathBuf::from(draft);
    fs::write(&draft, text).map_err(|source| PlaceError::Write {
        path: draft.clone(),
        source,
    })?;
    let placed = copy_executable(&draft, target);
    let _ = fs::remove_file(&draft);
    placed
}
