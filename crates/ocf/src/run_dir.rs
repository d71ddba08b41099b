//! The node-local directory where agents keep what a reboot must forget: state files, the
//! domain last started, per-resource locks.
//!
//! Pacemaker exports it as `HA_RSCTMP`. Each agent used to read it with a rule of its own, and
//! one of them turned an empty value into a relative path: its lock file then landed in whatever
//! directory the agent was started from, where the next run (started elsewhere) never saw it.
//! Here is the one rule, applied once per run by [`Context`](crate::Context).

use std::ffi::OsStr;
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The variable Pacemaker sets to the run directory.
pub const VARIABLE: &str = "HA_RSCTMP";

/// The cluster's run directory when `HA_RSCTMP` gives none we can use: resource-agents' own
/// default (`$HA_VARRUN/resource-agents`), on a tmpfs emptied at boot.
pub const DEFAULT: &str = "/run/resource-agents";

/// File names stay well under NAME_MAX (255) even with an agent's prefix and suffix.
const NAME_LIMIT: usize = 200;

/// The run directory for a value of `HA_RSCTMP`: an absolute path is used as given; unset, empty
/// or relative means [`DEFAULT`]. A relative path would depend on the directory the agent was
/// started from, which nobody controls, so two runs would not find each other's files.
pub fn resolve(value: Option<&OsStr>) -> PathBuf {
    match value {
        None => PathBuf::from(DEFAULT),
        Some(value) if Path::new(value).is_absolute() => PathBuf::from(value),
        Some(value) => {
            log::debug!("{VARIABLE}={value:?} is not an absolute path; using {DEFAULT}");
            PathBuf::from(DEFAULT)
        }
    }
}

/// Creates the run directory if it is missing: a node where no agent ran since boot has none.
/// Mode 0755, as resource-agents makes it, so other agents can use it too.
pub fn create(run_dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(run_dir)
}

/// A file name of `<prefix>-<key>` that is one harmless path component whatever `key` holds
/// (an instance name such as `gw:0`, a mount point): ASCII letters, digits, `-`, `_` and `.` are
/// kept, anything else becomes `_`. A key too long for a file name keeps its end, where the parts
/// that tell resources apart (a clone's `:N`, a mount point's last directory) are.
pub fn file_name(prefix: &str, key: &str) -> String {
    let safe: Vec<char> = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let kept: String = safe[safe.len().saturating_sub(NAME_LIMIT)..]
        .iter()
        .collect();
    format!("{prefix}-{kept}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_absolute_value_is_used() {
        let resolve = |value: Option<&str>| resolve(value.map(OsStr::new));
        assert_eq!(resolve(None), Path::new(DEFAULT));
        assert_eq!(resolve(Some("")), Path::new(DEFAULT));
        assert_eq!(resolve(Some(" ")), Path::new(DEFAULT));
        assert_eq!(resolve(Some("tmp")), Path::new(DEFAULT));
        assert_eq!(resolve(Some("./run")), Path::new(DEFAULT));
        assert_eq!(resolve(Some("/var/run/x")), Path::new("/var/run/x"));
        assert_eq!(resolve(Some("/")), Path::new("/"));
    }

    #[test]
    fn file_names_are_one_safe_component() {
        assert_eq!(
            file_name("gwping", "gw:0/../../etc"),
            "gwping-gw_0_.._.._etc"
        );
        assert_eq!(file_name("vm", "vm_1"), "vm-vm_1");
        assert_eq!(file_name("vm", "a.b-c"), "vm-a.b-c");
        assert_eq!(file_name("drbdfs", "srv/clever"), "drbdfs-srv_clever");
        assert_eq!(file_name("x", "é\n\0"), "x-___");
        assert_eq!(file_name("x", ""), "x-");
        for name in [file_name("x", ".."), file_name("x", "/")] {
            assert!(!name.contains('/') && name != "..", "{name}");
        }
    }

    #[test]
    fn a_long_key_keeps_its_end() {
        let long = format!("{}:1", "a".repeat(1000));
        let name = file_name("gwping", &long);
        assert_eq!(name.len(), "gwping-".len() + NAME_LIMIT);
        assert!(name.ends_with("aaa_1"), "{name}");
    }
}
