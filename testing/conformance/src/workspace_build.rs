//! Our binaries built now, in release as `make install` builds them, so that the labs (the
//! namespace lab, both VM tiers, the failover bench) install and run the current code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

/// Builds the binaries of the workspace `packages` in release and returns the directory they are
/// in. Each set of packages is built once per process; concurrent callers wait for that build
/// rather than run cargo side by side. A failed build panics with cargo's errors: a lab without
/// its agents has nothing to test.
pub fn release_binaries(packages: &[&str]) -> PathBuf {
    static BUILT: Mutex<BTreeMap<Vec<String>, PathBuf>> = Mutex::new(BTreeMap::new());
    let key: Vec<String> = packages.iter().map(|p| (*p).to_owned()).collect();
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(dir) = built.get(&key) {
        return dir.clone();
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--release", "--bins"]);
    for package in packages {
        command.args(["-p", package]);
    }
    let output = match command.current_dir(&workspace).output() {
        Ok(output) => output,
        Err(e) => panic!("running cargo to build {packages:?}: {e}"),
    };
    assert!(
        output.status.success(),
        "building {packages:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from)
        .join("release");
    built.insert(key, dir.clone());
    dir
}
