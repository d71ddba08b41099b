//! The host seam for DRBD state: which tool to ask, and how to fall back.
//!
//! `drbdsetup status RES --json` is the richest source, but only DRBD 9 has it; on an 8.4
//! kernel drbd-utils 9 answers `unrecognized option '--json'`, and `drbdsetup events2 --now
//! RES` gives the same objects. Agents take `&impl DrbdStatusSource` so unit tests can hand in
//! recorded states, while [`HostDrbd`] itself is tested with a fake [`RunCommand`] replaying
//! recorded tool output: the production path is the same code.

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clever_command::{describe_status, CommandError, CommandLine, Output, RunCommand};
use clever_deadline::Deadline;

use crate::error::DrbdStatusError;
use crate::events2::parse_events2;
use crate::json::parse_status_json;
use crate::model::Resource;
use crate::proc_drbd::{parse_proc_drbd, ProcDrbd};

/// drbdsetup's exit code for a resource the kernel does not know.
const EXIT_NO_SUCH_RESOURCE: i32 = 10;

/// Where agents get DRBD state from.
pub trait DrbdStatusSource {
    /// The current state of resource `name` on this node.
    fn resource(&self, name: &str, deadline: &Deadline) -> Result<Resource, DrbdStatusError>;

    /// The current `/proc/drbd` (per-minor state on 8.x, only the version on DRBD 9).
    fn proc_drbd(&self) -> Result<ProcDrbd, DrbdStatusError>;
}

/// Reads DRBD state on this host through `drbdsetup` and `/proc`.
#[derive(Debug)]
pub struct HostDrbd<R> {
    runner: R,
    root: PathBuf,
    drbdsetup: OsString,
    /// Set once `--json` was refused, so polling loops do not pay for the failed call again.
    json_unsupported: Cell<bool>,
}

impl<R: RunCommand> HostDrbd<R> {
    /// Uses `drbdsetup` from `PATH` and the real root.
    pub fn new(runner: R) -> Self {
        Self {
            runner,
            root: PathBuf::from("/"),
            drbdsetup: OsString::from("drbdsetup"),
            json_unsupported: Cell::new(false),
        }
    }

    /// Reads `/proc/drbd` under `root` instead of `/`.
    #[must_use]
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    /// Runs `program` as drbdsetup (an absolute path, or a wrapper).
    #[must_use]
    pub fn with_drbdsetup(mut self, program: impl AsRef<OsStr>) -> Self {
        self.drbdsetup = program.as_ref().to_owned();
        self
    }

    pub fn runner(&self) -> &R {
        &self.runner
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn status_json(
        &self,
        name: &str,
        deadline: &Deadline,
    ) -> Result<Option<Resource>, DrbdStatusError> {
        let command = CommandLine::new(&self.drbdsetup).args(["status", name, "--json"]);
        let output = self.runner.run(&command, deadline)?;
        if !output.status.success() {
            if json_unsupported(&output) {
                log::debug!("{command}: --json unsupported (DRBD 8.4 kernel), using events2");
                self.json_unsupported.set(true);
                return Ok(None);
            }
            return Err(failure(&command, &output, name));
        }
        let resources =
            parse_status_json(&output.stdout_text()).map_err(|source| DrbdStatusError::Parse {
                command: command.to_string(),
                source,
            })?;
        pick(resources, name).map(Some)
    }

    fn events2(&self, name: &str, deadline: &Deadline) -> Result<Resource, DrbdStatusError> {
        let command = CommandLine::new(&self.drbdsetup).args(["events2", "--now", name]);
        let output = self.runner.run(&command, deadline)?;
        if !output.status.success() {
            return Err(failure(&command, &output, name));
        }
        let resources =
            parse_events2(&output.stdout_text()).map_err(|source| DrbdStatusError::Parse {
                command: command.to_string(),
                source,
            })?;
        pick(resources, name)
    }
}

impl<R: RunCommand> DrbdStatusSource for HostDrbd<R> {
    fn resource(&self, name: &str, deadline: &Deadline) -> Result<Resource, DrbdStatusError> {
        // A name that looks like an option would be read as one by drbdsetup.
        if name.is_empty() || name.starts_with('-') {
            return Err(DrbdStatusError::NoSuchResource {
                name: name.to_owned(),
            });
        }
        if !self.json_unsupported.get() {
            if let Some(resource) = self.status_json(name, deadline)? {
                return Ok(resource);
            }
        }
        self.events2(name, deadline)
    }

    fn proc_drbd(&self) -> Result<ProcDrbd, DrbdStatusError> {
        let path = self.root.join("proc/drbd");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DrbdStatusError::NotLoaded { path })
            }
            Err(source) => return Err(DrbdStatusError::Read { path, source }),
        };
        parse_proc_drbd(&text).map_err(|source| DrbdStatusError::Parse {
            command: path.display().to_string(),
            source,
        })
    }
}

/// drbdsetup-84's getopt answer to `--json`.
fn json_unsupported(output: &Output) -> bool {
    let stderr = output.stderr_text();
    stderr.contains("unrecognized option") && stderr.contains("json")
}

fn failure(command: &CommandLine, output: &Output, name: &str) -> DrbdStatusError {
    let stderr = output.stderr_text();
    if output.code() == Some(EXIT_NO_SUCH_RESOURCE) || stderr.contains("No such resource") {
        return DrbdStatusError::NoSuchResource {
            name: name.to_owned(),
        };
    }
    DrbdStatusError::Command(CommandError::Failed {
        command: command.to_string(),
        status: describe_status(output.status),
        stderr,
    })
}

/// The named resource out of a tool's answer; an answer without it means the kernel does not
/// have it (drbdsetup prints `[` `]` for an unknown name before exiting 10).
fn pick(resources: Vec<Resource>, name: &str) -> Result<Resource, DrbdStatusError> {
    resources
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| DrbdStatusError::NoSuchResource {
            name: name.to_owned(),
        })
}
