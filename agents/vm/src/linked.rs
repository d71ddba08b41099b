//! The agent's two builds, and how the light one hands an action over to the other.
//!
//! Loading `libvirt.so` and its ~56 libraries costs 25–50 ms at every exec here, more than the
//! whole depth-0 monitor may (`docs/vm-monitor.md`). So this crate is built twice:
//!
//! - `vm`, the binary Pacemaker runs, links no libvirt. It answers `meta-data` and
//!   `validate-all` itself, and the monitor through libvirt's remote protocol
//!   ([`crate::rpc`]);
//! - `vm-libvirt` links libvirt's C library through the `virt` crate. `vm` replaces itself with
//!   it (`exec`, the same argv and environment) for start, stop, and a monitor the remote
//!   protocol declines, so the exit code, the exit reason and the action's timeout are those of
//!   the one process Pacemaker started.
//!
//! `vm-libvirt` is looked for next to the running `vm` (the build tree, the test labs), then in
//! [`INSTALLED_DIR`] (`make install`, the Debian package): never in the OCF provider directory,
//! where Pacemaker would list it as an agent. When it cannot be run, the action goes on as it
//! would with libvirt unusable: start fails with "not installed" (5), stop ends qemu through
//! `/proc`, the monitor looks for qemu in `/proc` before answering.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clever_deadline::Deadline;

/// The file name of the libvirt-linked build.
pub const NAME: &str = "vm-libvirt";

/// Where `make install` and the package put the libvirt-linked build: `$(PREFIX)/lib/clever-cluster`,
/// given to the build as `CLEVER_LIBEXEC_DIR` by the Makefile; `/usr/lib/clever-cluster` otherwise.
pub const INSTALLED_DIR: &str = match option_env!("CLEVER_LIBEXEC_DIR") {
    Some(dir) => dir,
    None => "/usr/lib/clever-cluster",
};

/// Where the libvirt-linked build may be, in the order tried: next to the running executable,
/// then the installed place.
pub fn candidates() -> Vec<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(NAME)));
    beside
        .into_iter()
        .chain([Path::new(INSTALLED_DIR).join(NAME)])
        .collect()
}

/// Replaces this process with the libvirt-linked build found among [`candidates`], with this
/// process's argv and environment. Returns only when that cannot be done, with the reason.
pub fn hand_over(deadline: &Deadline) -> String {
    hand_over_from(&candidates(), deadline)
}

/// As [`hand_over`], with the places to look given.
pub fn hand_over_from(candidates: &[PathBuf], deadline: &Deadline) -> String {
    let Some(path) = candidates.iter().find(|path| path.exists()) else {
        let places: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        return format!(
            "libvirt's C library is reached through the agent's libvirt-linked build {NAME}, \
             which is not installed (none of {}); reinstall clever-cluster",
            places.join(", ")
        );
    };
    if !in_time(deadline) {
        return format!(
            "{:.1?} into the action, too late to hand it over to {} within its {:?} timeout",
            deadline.elapsed(),
            path.display(),
            deadline.timeout()
        );
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from(path));
    let error = Command::new(path).arg0(arg0).args(args).exec();
    format!(
        "cannot run the libvirt-linked build {}: {error}",
        path.display()
    )
}

/// Whether a process started now with this action's timeout would still be gone, at its own
/// watchdog's latest, before Pacemaker's timeout for this one runs out: the linked build takes
/// its deadline from the same environment, so the time spent here is not deducted from it.
/// The slack is half the deadline's margin (0.1 s or more for any timeout of 0.4 s or more);
/// the hand-over comes at once (start, stop) or as soon as the remote protocol declines
/// (monitor), well within it.
pub fn in_time(deadline: &Deadline) -> bool {
    let timeout = deadline.timeout();
    let fresh = Deadline::from_timeout(timeout);
    fresh.hard_stop() + deadline.elapsed() <= Instant::now() + timeout
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_missing_linked_build_is_named_with_every_place_looked_at() {
        let places = [
            PathBuf::from("/nonexistent/clever-a/vm-libvirt"),
            PathBuf::from("/nonexistent/clever-b/vm-libvirt"),
        ];
        let why = hand_over_from(&places, &Deadline::from_timeout(Duration::from_secs(20)));
        assert!(why.contains("not installed"), "{why}");
        assert!(why.contains("/nonexistent/clever-a/vm-libvirt"), "{why}");
        assert!(why.contains("/nonexistent/clever-b/vm-libvirt"), "{why}");
        assert!(!why.contains('\n'));
    }

    #[test]
    fn a_linked_build_that_cannot_run_says_why() {
        let dir = std::env::temp_dir().join(format!("clever-vm-linked-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let planted = dir.join(NAME);
        // Not executable: exec fails, and the reason names the file.
        std::fs::write(&planted, "#!/bin/sh\nexit 0\n").unwrap();
        let why = hand_over_from(
            std::slice::from_ref(&planted),
            &Deadline::from_timeout(Duration::from_secs(20)),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(why.contains("cannot run"), "{why}");
        assert!(why.contains(&planted.display().to_string()), "{why}");
    }

    #[test]
    fn the_hand_over_keeps_to_pacemakers_timeout() {
        assert!(in_time(&Deadline::from_timeout(Duration::from_secs(30))));
        // 100 ms: a margin of 50 ms, a hard stop at 75 ms; a process started 60 ms in would
        // outlive Pacemaker's timeout.
        let short = Deadline::from_timeout(Duration::from_millis(100));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!in_time(&short));
        let why = hand_over_from(&[std::env::current_exe().unwrap()], &short);
        assert!(why.contains("too late"), "{why}");
    }

    #[test]
    fn the_installed_place_is_tried_last() {
        let places = candidates();
        assert_eq!(places.len(), 2);
        assert_eq!(places[1], Path::new(INSTALLED_DIR).join(NAME));
        assert_eq!(
            places[0].parent(),
            std::env::current_exe().unwrap().parent()
        );
    }
}
