//! What can go wrong reading DRBD state. Every message names the tool output and where in it
//! the problem was, because the admin reads it as an exit reason, without the raw output.

use std::fmt;
use std::io;
use std::path::PathBuf;

use clever_command::CommandError;

use crate::model::UnknownStateError;

/// Which DRBD output a parser was reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    StatusJson,
    StatusText,
    Events2,
    ProcDrbd,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StatusJson => "drbdsetup status --json",
            Self::StatusText => "drbdsetup status",
            Self::Events2 => "drbdsetup events2",
            Self::ProcDrbd => "/proc/drbd",
        })
    }
}

/// DRBD tool output could not be read into the model.
#[derive(Debug, thiserror::Error)]
pub enum DrbdParseError {
    /// The JSON itself is broken (truncated output, or a drbd-utils bug beyond the NaN one we
    /// repair).
    #[error("{format} output is not valid JSON: {source}")]
    Json {
        format: Format,
        #[source]
        source: serde_json::Error,
    },
    /// A state value DRBD does not define.
    #[error("{format}, {location}: {source}")]
    UnknownState {
        format: Format,
        location: String,
        #[source]
        source: UnknownStateError,
    },
    /// A field every version of the tool prints is absent.
    #[error("{format}, {location}: {field} is missing")]
    Missing {
        format: Format,
        location: String,
        field: &'static str,
    },
    /// A field is there but its value has the wrong type or range.
    #[error("{format}, {location}: {field} has invalid value {value:?}")]
    InvalidValue {
        format: Format,
        location: String,
        field: String,
        value: String,
    },
    /// A line that fits nowhere in the format.
    #[error("{format}, line {line}: {problem}")]
    Malformed {
        format: Format,
        line: usize,
        problem: String,
    },
    /// The output stopped before the tool's own end marker: the tool was killed or crashed,
    /// and a partial picture (a resource without its peers) must not be judged.
    #[error("{format} output is incomplete: {problem}")]
    Incomplete {
        format: Format,
        problem: &'static str,
    },
}

/// Asking this host for the state of a DRBD resource failed.
#[derive(Debug, thiserror::Error)]
pub enum DrbdStatusError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{command}: {source}")]
    Parse {
        command: String,
        #[source]
        source: DrbdParseError,
    },
    /// The kernel does not know the resource: it is down, or the name is wrong.
    #[error("DRBD resource {name} is not configured on this node (is it up?)")]
    NoSuchResource { name: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The DRBD module is not loaded, so there is no `/proc/drbd`.
    #[error("{} does not exist: the DRBD kernel module is not loaded", path.display())]
    NotLoaded { path: PathBuf },
    /// A device path that is not a DRBD device we can name.
    #[error("{} is not a DRBD device path (/dev/drbdN or /dev/drbd/by-res/RES[/VOL])", path.display())]
    NotADrbdDevice { path: PathBuf },
    /// A `/dev/drbdN` that no udev by-res link points to.
    #[error("no link under {} points to drbd{minor}: are DRBD's udev rules installed?", by_res.display())]
    UnknownMinor { minor: u32, by_res: PathBuf },
}
