//! `fence_lab` in a VM lab node: the power switch is the host's, reached over a virtio serial
//! port (see [`super`] for the line protocol). Requests from several fencer calls are
//! serialised by a lock file; an answer left on the port by a request that gave up is skipped
//! by its id.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clever_deadline::Deadline;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::{EXIT_FAILED, EXIT_OFF, EXIT_OK};

/// How long one request may wait for the port and the host's answer (killing a qemu takes
/// milliseconds; the fencer's own timeout is longer).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

const LOCK_FILE: &str = "/run/fence_lab.lock";

/// Carries out `action` through the host on port `port`; returns the fence-agents exit code.
pub fn run(
    port: &str,
    action: &str,
    target: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let fail = |err: &mut dyn Write, message: String| {
        let _ = writeln!(err, "fence_lab: {message}");
        EXIT_FAILED
    };
    let needs_target = match action {
        "monitor" | "validate-all" | "list" => false,
        "status" | "off" | "reboot" => true,
        other => return fail(err, format!("unsupported action {other}")),
    };
    let target = match (needs_target, target) {
        (true, None) => return fail(err, format!("{action} needs a node (plug=NODE)")),
        (_, target) => target.unwrap_or("-"),
    };
    // validate-all asks the host the same as monitor: is the switch there.
    let asked = if action == "validate-all" {
        "monitor"
    } else {
        action
    };
    let answer = match ask_host(port, asked, target, &Deadline::after(ANSWER_TIMEOUT)) {
        Ok(answer) => answer,
        Err(e) => return fail(err, e),
    };
    let (result, detail) = answer.split_once(' ').unwrap_or((answer.as_str(), ""));
    let written = match (action, result) {
        ("off" | "reboot", "ok") => writeln!(out, "Success: {target} powered off"),
        ("monitor" | "validate-all", "ok") => Ok(()),
        ("status", "on") => writeln!(out, "Status: ON"),
        ("status", "off") => {
            let _ = writeln!(out, "Status: OFF");
            return EXIT_OFF;
        }
        ("list", "list") => detail
            .split_whitespace()
            .try_for_each(|node| writeln!(out, "{node}")),
        _ => {
            return fail(
                err,
                format!("the host answered {action} {target}: {answer}"),
            )
        }
    };
    match written {
        Ok(()) => EXIT_OK,
        Err(_) => EXIT_FAILED,
    }
}

/// Sends one request and returns the host's answer without its id.
fn ask_host(port: &str, action: &str, target: &str, deadline: &Deadline) -> Result<String, String> {
    let device = find_port(Path::new("/sys/class/virtio-ports"), port)?;
    let lock = File::create(LOCK_FILE).map_err(|e| format!("{LOCK_FILE}: {e}"))?;
    let _lock = lock_until(lock, deadline)?;
    let mut channel = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&device)
        .map_err(|e| format!("opening {}: {e}", device.display()))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("{}.{nanos}", std::process::id());
    channel
        .write_all(format!("{id} {action} {target}\n").as_bytes())
        .map_err(|e| format!("writing to {}: {e}", device.display()))?;
    let prefix = format!("{id} ");
    let mut received = Vec::new();
    loop {
        while let Some(end) = received.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = received.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(answer) = line.trim_end().strip_prefix(&prefix) {
                return Ok(answer.to_owned());
            }
        }
        let remaining = deadline.remaining();
        if remaining.is_zero() {
            return Err(format!(
                "no answer from the host on {} within {:?}",
                device.display(),
                deadline.timeout()
            ));
        }
        let wait = PollTimeout::try_from(remaining).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(channel.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, wait) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("waiting on {}: {e}", device.display())),
        }
        let mut chunk = [0u8; 512];
        match channel.read(&mut chunk) {
            Ok(0) => thread::sleep(Duration::from_millis(50)),
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading {}: {e}", device.display())),
        }
    }
}

/// The device of the virtio serial port called `name` (its name is in sysfs; there is no udev
/// to make /dev/virtio-ports links).
fn find_port(sysfs: &Path, name: &str) -> Result<PathBuf, String> {
    let entries = fs::read_dir(sysfs).map_err(|e| format!("{}: {e}", sysfs.display()))?;
    for entry in entries.filter_map(Result::ok) {
        let named = fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if named.trim() == name {
            return Ok(Path::new("/dev").join(entry.file_name()));
        }
    }
    Err(format!(
        "no virtio serial port named {name} (is this a VM lab node?)"
    ))
}

fn lock_until(file: File, deadline: &Deadline) -> Result<Flock<File>, String> {
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((_, e)) if e != Errno::EWOULDBLOCK && e != Errno::EINTR => {
                return Err(format!("locking {LOCK_FILE}: {e}"));
            }
            Err((returned, _)) if !deadline.expired() => {
                file = returned;
                thread::sleep(Duration::from_millis(50));
            }
            Err(_) => return Err(format!("{LOCK_FILE} stayed locked by another request")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_found_by_its_sysfs_name() {
        let dir = std::env::temp_dir().join(format!("fence-port-{}", std::process::id()));
        for (device, name) in [("vport1p1", "lab.ctl"), ("vport1p2", "lab.fence")] {
            fs::create_dir_all(dir.join(device)).unwrap();
            fs::write(dir.join(device).join("name"), format!("{name}\n")).unwrap();
        }
        assert_eq!(
            find_port(&dir, "lab.fence").unwrap(),
            Path::new("/dev/vport1p2")
        );
        assert!(find_port(&dir, "lab.other")
            .unwrap_err()
            .contains("no virtio serial port named lab.other"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn outside_a_vm_node_the_agent_fails_with_a_reason() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run("lab.fence-none", "off", Some("beta"), &mut out, &mut err);
        assert_eq!(code, EXIT_FAILED);
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("fence_lab: "), "{err}");
        assert_eq!(
            run("lab.fence", "off", None, &mut out, &mut Vec::new()),
            EXIT_FAILED
        );
        assert_eq!(
            run(
                "lab.fence",
                "dance",
                Some("beta"),
                &mut out,
                &mut Vec::new()
            ),
            EXIT_FAILED
        );
    }
}
