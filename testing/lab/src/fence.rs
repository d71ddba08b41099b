//! `fence_lab`: the lab's fence agent, in the protocol Pacemaker's fencer (stonith-ng) uses for
//! RHCS-style agents (fence-agents' FenceAgentAPI): the fencer runs `/usr/sbin/fence_<name>`
//! with no arguments and writes `name=value` lines on its stdin — `action` (off, reboot, on,
//! status, monitor, list, metadata, validate-all), the target in `port`/`plug` and `nodename`,
//! and the device's own parameters (here `lab_dir`). Exit 0 means done (for status: on), 2 for
//! status means off, 1 is a failure with the reason on stderr. For use by hand, the usual
//! `-o ACTION -n NODE --lab-dir DIR` options work too.
//!
//! Powering off a node kills every process of its cgroup at once (`cgroup.kill`): corosync,
//! Pacemaker, the resources' processes and anything they forked; its namespaces, and with them
//! its mounts, addresses and cable to the bridge, vanish with the last one. `reboot` does the
//! same and leaves the node off (a lab node does not boot again by itself). The fencer runs the
//! agent inside another node; the lab directory and the cgroup tree are visible there at the same
//! paths, which plays the part of the fence device's management network.

use std::collections::BTreeMap;
use std::io::Write;

use crate::cgroup::Cgroup;
use crate::lab::{power_off, LabState};
use crate::layout::Layout;

/// `fence_lab` in a VM lab node, through the host over a serial port.
mod port;

/// The agent's metadata, as the fencer and `stonith_admin --metadata` read it.
pub const METADATA: &str = r#"<?xml version="1.0" ?>
<resource-agent name="fence_lab" shortdesc="Fence agent for clever-lab nodes">
<longdesc>Powers a clever-lab node off by killing every process of its cgroup (cgroup.kill): its namespaces, mounts, addresses and link go with them; or, with serial_port, a VM lab node by asking the host to kill its qemu. reboot powers off and leaves the node off. For the labs only.</longdesc>
<vendor-url>https://clusterlabs.org</vendor-url>
<parameters>
	<parameter name="action" unique="0" required="1">
		<getopt mixed="-o, --action=[action]" />
		<content type="string" default="reboot" />
		<shortdesc lang="en">Fencing action</shortdesc>
	</parameter>
	<parameter name="plug" unique="0" required="1" obsoletes="port">
		<getopt mixed="-n, --plug=[node]" />
		<content type="string" />
		<shortdesc lang="en">The lab node to fence</shortdesc>
	</parameter>
	<parameter name="port" unique="0" required="1" deprecated="1">
		<getopt mixed="-n, --plug=[node]" />
		<content type="string" />
		<shortdesc lang="en">The lab node to fence</shortdesc>
	</parameter>
	<parameter name="lab_dir" unique="0" required="0">
		<getopt mixed="--lab-dir=[directory]" />
		<content type="string" default="/run/clever-lab" />
		<shortdesc lang="en">The lab directory (clever-lab --dir)</shortdesc>
	</parameter>
	<parameter name="serial_port" unique="0" required="0">
		<getopt mixed="--serial-port=[name]" />
		<content type="string" />
		<shortdesc lang="en">VM lab: the virtio serial port to the host that holds the power switch (instead of lab_dir)</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="off" />
	<action name="reboot" />
	<action name="status" />
	<action name="list" />
	<action name="monitor" />
	<action name="metadata" />
	<action name="validate-all" />
</actions>
</resource-agent>
"#;

/// Exit codes of the fence-agents API.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
/// `status` of a node that is off.
pub const EXIT_OFF: u8 = 2;

/// Parses the fencer's stdin: `name=value` lines; blank lines and `#` comments are skipped.
pub fn parse_stdin(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// Parses the command-line form (`-o off -n node2 --lab-dir /run/clever-lab`).
pub fn parse_args(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut options = BTreeMap::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let name = match flag {
            "-o" | "--action" => "action",
            "-n" | "--plug" | "--port" => "plug",
            "--lab-dir" | "--lab_dir" => "lab_dir",
            "--serial-port" | "--serial_port" => "serial_port",
            other => return Err(format!("unknown option {other}")),
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?,
        };
        options.insert(name.to_owned(), value);
    }
    Ok(options)
}

/// Carries out one request; writes the answer on `out`, problems on `err`; returns the exit
/// code.
pub fn run(options: &BTreeMap<String, String>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let action = options.get("action").map_or("reboot", String::as_str);
    if action == "metadata" {
        return match out.write_all(METADATA.as_bytes()) {
            Ok(()) => EXIT_OK,
            Err(_) => EXIT_FAILED,
        };
    }
    let target = ["plug", "port", "nodename"]
        .iter()
        .find_map(|name| options.get(*name))
        .map(String::as_str);
    if let Some(port) = options.get("serial_port") {
        return port::run(port, action, target, out, err);
    }
    let lab_dir = options
        .get("lab_dir")
        .map_or(crate::layout::DEFAULT_DIR, String::as_str);
    let lab = Layout::new(lab_dir).and_then(|layout| {
        let state = LabState::read(&layout)?;
        Ok((layout, state))
    });
    let (layout, state) = match lab {
        Ok(lab) => lab,
        Err(e) => {
            let _ = writeln!(err, "fence_lab: {e}");
            return EXIT_FAILED;
        }
    };
    let known = |node: &str| state.nodes.iter().any(|n| n == node);
    let fail = |err: &mut dyn Write, message: String| {
        let _ = writeln!(err, "fence_lab: {message}");
        EXIT_FAILED
    };
    match action {
        "monitor" | "validate-all" => {
            if Cgroup::new(&state.cgroup).exists() {
                EXIT_OK
            } else {
                fail(
                    err,
                    format!("the lab's cgroup {} is gone", state.cgroup.display()),
                )
            }
        }
        "list" => {
            let mut text = String::new();
            for node in &state.nodes {
                text.push_str(node);
                text.push('\n');
            }
            match out.write_all(text.as_bytes()) {
                Ok(()) => EXIT_OK,
                Err(_) => EXIT_FAILED,
            }
        }
        "status" | "off" | "reboot" => {
            let Some(node) = target else {
                return fail(err, format!("{action} needs a node (plug=NODE)"));
            };
            if !known(node) {
                return fail(err, format!("no node {node:?} in the lab at {lab_dir}"));
            }
            if action == "status" {
                let on = Cgroup::new(&state.cgroup).child(node).populated();
                let _ = writeln!(out, "Status: {}", if on { "ON" } else { "OFF" });
                return if on { EXIT_OK } else { EXIT_OFF };
            }
            let by = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default();
            match power_off(
                &layout,
                &state,
                node,
                &format!("fence_lab {action} from {by}"),
            ) {
                Ok(()) => {
                    let _ = writeln!(out, "Success: {node} powered off");
                    EXIT_OK
                }
                Err(e) => fail(err, format!("powering {node} off: {e}")),
            }
        }
        other => fail(err, format!("unsupported action {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_lines_become_options() {
        let options =
            parse_stdin("action=off\nport=node2\n\n# comment\nnodename=node2\nlab_dir=/run/x\n");
        assert_eq!(options["action"], "off");
        assert_eq!(options["port"], "node2");
        assert_eq!(options["lab_dir"], "/run/x");
    }

    #[test]
    fn command_line_options() {
        let args: Vec<String> = ["-o", "status", "--plug=node1", "--lab-dir", "/run/x"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let options = parse_args(&args).unwrap();
        assert_eq!(options["action"], "status");
        assert_eq!(options["plug"], "node1");
        assert_eq!(options["lab_dir"], "/run/x");
        assert!(parse_args(&["--bogus".to_owned()]).is_err());
        assert!(parse_args(&["-o".to_owned()]).is_err());
    }

    #[test]
    fn metadata_needs_no_lab() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let options = parse_stdin("action=metadata\n");
        assert_eq!(run(&options, &mut out, &mut err), EXIT_OK);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#"<resource-agent name="fence_lab""#));
        assert!(text.contains(r#"<action name="off" />"#));
    }

    #[test]
    fn a_missing_lab_fails_with_a_reason() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let options = parse_stdin("action=off\nport=node1\nlab_dir=/nonexistent/lab\n");
        assert_eq!(run(&options, &mut out, &mut err), EXIT_FAILED);
        assert!(String::from_utf8(err).unwrap().contains("lab.json"));
    }

    #[test]
    fn unknown_actions_fail() {
        let dir = std::env::temp_dir().join(format!("fence-lab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = LabState {
            dir: dir.clone(),
            nodes: vec!["node1".into()],
            cgroup: dir.join("nocgroup"),
            loop_device: "/dev/loop9".into(),
            gwping_agent: String::new(),
            fs_agent: String::new(),
            clever_agents: Vec::new(),
            vm: false,
            vm_agent: String::new(),
            more_loop_devices: Vec::new(),
        };
        std::fs::write(dir.join("lab.json"), serde_json::to_string(&state).unwrap()).unwrap();
        let run_with = |text: &str| {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let text = format!("{text}\nlab_dir={}\n", dir.display());
            let code = run(&parse_stdin(&text), &mut out, &mut err);
            (code, String::from_utf8(out).unwrap())
        };
        assert_eq!(run_with("action=dance").0, EXIT_FAILED);
        assert_eq!(run_with("action=list"), (EXIT_OK, "node1\n".to_owned()));
        assert_eq!(run_with("action=status\nport=node1").0, EXIT_OFF);
        assert_eq!(run_with("action=status\nport=node7").0, EXIT_FAILED);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
