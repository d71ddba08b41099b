//! The domain's qemu process, found without libvirt: the last word when libvirtd is down.
//!
//! libvirt starts qemu with `-name guest=NAME,...` (commas in NAME doubled). Scanning
//! `/proc/*/cmdline` for that finds the process whatever libvirtd's state, so a probe never says
//! "not running" while the VM lives and a stop can end it when libvirtd cannot.
//!
//! Only processes in this process's network namespace count. `/proc` shows every process of the
//! PID namespace, and machines that share a kernel (containers, the namespace lab's nodes) share
//! it: there a scan without this rule saw the other node's qemu, so a node that had just booted
//! reported the VM running on it (Pacemaker then stopped it everywhere, and the stop ended the
//! other node's qemu). libvirt gives qemu a mount namespace of its own but never a network
//! namespace, so on a real node the VM's qemu always shares the agent's.

use std::fs;
use std::path::Path;
use std::time::Duration;

use clever_deadline::Deadline;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Pids under `proc_root` (normally `/proc`) of qemu processes running domain `name`.
pub fn find_qemu(proc_root: &Path, name: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let own_network = fs::read_link(proc_root.join("self/ns/net")).ok();
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            (runs_domain(&cmdline, name) && !other_machine(&own_network, &entry.path()))
                .then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// When process `pid` under `proc_root` started, from its `stat` (clock ticks since boot) and
/// the boot time in `proc_root/stat`; `None` when either cannot be read.
pub fn started_at(proc_root: &Path, pid: u32) -> Option<std::time::SystemTime> {
    let stat = fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let (_, fields) = stat.rsplit_once(')')?;
    // Field 22 of stat; the first after ')' is field 3 (state).
    let ticks: u64 = fields.split_whitespace().nth(19)?.parse().ok()?;
    let boot = fs::read_to_string(proc_root.join("stat")).ok()?;
    let boot_secs: u64 = boot
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)?;
    let since_boot = Duration::from_millis(ticks.saturating_mul(1000) / per_second);
    Some(std::time::UNIX_EPOCH + Duration::from_secs(boot_secs) + since_boot)
}

/// Whether the process at `process_dir` (`/proc/PID`) is in another network namespace than
/// ours: only when both are known and differ, so a process whose namespace cannot be read still
/// counts as this node's (a probe must not call a running VM stopped).
fn other_machine(own_network: &Option<std::path::PathBuf>, process_dir: &Path) -> bool {
    match (own_network, fs::read_link(process_dir.join("ns/net"))) {
        (Some(own), Ok(theirs)) => *own != theirs,
        _ => false,
    }
}

/// Whether a NUL-separated command line is a qemu running domain `name`.
pub fn runs_domain(cmdline: &[u8], name: &str) -> bool {
    let mut args = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let Some(program) = args.next() else {
        return false;
    };
    let base = program.rsplit('/').next().unwrap_or_default();
    if !base.starts_with("qemu") {
        return false;
    }
    let args: Vec<String> = args.collect();
    args.windows(2)
        .filter(|pair| pair.first().map(String::as_str) == Some("-name"))
        .filter_map(|pair| pair.get(1))
        .any(|value| name_option(value) == name)
}

/// The guest name in a `-name` value: `guest=NAME,opt=..` or the legacy `NAME,opt=..`, with
/// `,,` standing for a comma.
fn name_option(value: &str) -> String {
    let mut first = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                first.push(',');
            } else {
                break;
            }
        } else {
            first.push(c);
        }
    }
    match first.strip_prefix("guest=") {
        Some(name) => name.to_owned(),
        None => first,
    }
}

/// Ends every qemu of domain `name`: SIGTERM (qemu flushes and exits), then SIGKILL for what is
/// left after a few seconds or half the remaining budget. Returns the pids still alive at the
/// deadline, which is empty on success.
pub fn end_qemu(proc_root: &Path, name: &str, deadline: &Deadline) -> Vec<u32> {
    let pids = find_qemu(proc_root, name);
    if pids.is_empty() {
        return pids;
    }
    log::warn!("ending qemu process {pids:?} of domain {name} with SIGTERM");
    signal_all(&pids, Signal::SIGTERM);
    let gentle = deadline.capped((deadline.remaining() / 2).min(Duration::from_secs(5)));
    if wait_gone(proc_root, name, &gentle) {
        return Vec::new();
    }
    let left = find_qemu(proc_root, name);
    log::error!("qemu process {left:?} of domain {name} ignored SIGTERM; sending SIGKILL");
    signal_all(&left, Signal::SIGKILL);
    if wait_gone(proc_root, name, deadline) {
        return Vec::new();
    }
    find_qemu(proc_root, name)
}

/// Waits until no qemu of `name` is left; false when the deadline passed first.
pub fn wait_gone(proc_root: &Path, name: &str, deadline: &Deadline) -> bool {
    deadline
        .poll("qemu exit", Duration::from_millis(20), || {
            find_qemu(proc_root, name).is_empty().then_some(())
        })
        .is_ok()
}

fn signal_all(pids: &[u32], signal: Signal) {
    for pid in pids {
        let Ok(raw) = i32::try_from(*pid) else {
            continue;
        };
        // Never signal init or ourselves, whatever a strange /proc says.
        if raw <= 1 || *pid == std::process::id() {
            continue;
        }
        if let Err(e) = kill(Pid::from_raw(raw), signal) {
            log::debug!("signal {signal} to {pid}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmdline(args: &[&str]) -> Vec<u8> {
        args.join("\0").into_bytes()
    }

    #[test]
    fn recognises_libvirt_qemu_command_lines() {
        let line = cmdline(&[
            "/usr/bin/qemu-system-x86_64",
            "-name",
            "guest=clever,debug-threads=on",
            "-S",
        ]);
        assert!(runs_domain(&line, "clever"));
        assert!(!runs_domain(&line, "clever2"));
        assert!(!runs_domain(&line, "clev"));
        let comma = cmdline(&["qemu-kvm", "-name", "guest=a,,b,debug-threads=on"]);
        assert!(runs_domain(&comma, "a,b"));
        let legacy = cmdline(&["/usr/bin/qemu-system-x86_64", "-name", "clever,process=x"]);
        assert!(runs_domain(&legacy, "clever"));
        let not_qemu = cmdline(&["/usr/bin/vim", "-name", "guest=clever"]);
        assert!(!runs_domain(&not_qemu, "clever"));
        assert!(!runs_domain(b"", "clever"));
    }

    #[test]
    fn a_qemu_in_another_network_namespace_is_another_machines() {
        use std::os::unix::fs::symlink;
        let root = std::env::temp_dir().join(format!("clever-vm-proc-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let qemu = cmdline(&["/usr/bin/qemu-system-x86_64", "-name", "guest=clever"]);
        for (pid, net) in [
            ("10", Some("net:[1]")),
            ("20", Some("net:[2]")),
            ("30", None),
        ] {
            let dir = root.join(pid);
            fs::create_dir_all(dir.join("ns")).unwrap();
            fs::write(dir.join("cmdline"), &qemu).unwrap();
            if let Some(net) = net {
                symlink(net, dir.join("ns/net")).unwrap();
            }
        }
        // Without our own namespace known (a recorded /proc), every qemu counts.
        assert_eq!(find_qemu(&root, "clever"), [10, 20, 30]);
        fs::create_dir_all(root.join("self/ns")).unwrap();
        symlink("net:[1]", root.join("self/ns/net")).unwrap();
        // Ours, and the one whose namespace cannot be read; never the other machine's.
        assert_eq!(find_qemu(&root, "clever"), [10, 30]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_process_started_between_boot_and_now() {
        let started = started_at(Path::new("/proc"), std::process::id()).unwrap();
        let now = std::time::SystemTime::now();
        assert!(started <= now, "{started:?} after {now:?}");
        assert!(now.duration_since(started).unwrap() < Duration::from_secs(24 * 3600));
        assert!(started_at(Path::new("/nonexistent"), 1).is_none());
    }

    #[test]
    fn finds_nothing_for_an_unknown_domain() {
        assert!(find_qemu(Path::new("/proc"), "clever-vm-no-such-domain").is_empty());
        assert!(find_qemu(Path::new("/nonexistent"), "x").is_empty());
    }
}
