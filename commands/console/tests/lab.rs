//! The console against the live namespace lab (a two-node Pacemaker cluster running the VM):
//! refused without a session, with a wrong password and without the CSRF token; then log in
//! through PAM inside a node, move the VM with one request, follow it to the end, and find the
//! move in the timeline. Run it alone machine-wide (it starts a cluster and libvirtd):
//! `flock /tmp/clever-lab-turn.lock cargo test -p clever-console -- lab::`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clever_command::RunCommand;
use clever_deadline::Deadline;
use clever_lab::config::ids;
use clever_lab::Lab;
use ocf_conformance::workspace_build::release_binaries;

use crate::support::{free_port, Accounts, Curl, ADMIN, PASSWORD};

/// The lab, torn down on drop (also when the test fails).
struct Running {
    binary: PathBuf,
    dir: PathBuf,
}

impl Running {
    fn lab(&self, args: &[&str]) -> String {
        let output = Command::new(&self.binary)
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "clever-lab {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new(&self.binary)
            .arg("--dir")
            .arg(&self.dir)
            .arg("down")
            .status();
    }
}

#[test]
fn lab_a_move_asked_of_the_console_is_performed_and_followed_to_the_end() {
    let release = release_binaries(&[
        "clever-lab",
        "clever-agent-gwping",
        "clever-agent-drbdfs",
        "clever-agent-vm",
        "clevervm",
        "clever-console",
    ]);
    let running = Running {
        binary: release.join("clever-lab"),
        dir: PathBuf::from("/run/clever-lab-test-console"),
    };
    running.lab(&["down"]);
    let up = running.lab(&[
        "up",
        "--nodes",
        "2",
        "--vm",
        "--agents",
        release.to_str().unwrap(),
    ]);
    eprintln!("{up}");
    let lab = Lab::open(&running.dir).unwrap();
    let deadline = Deadline::after(Duration::from_secs(300));
    let status = lab
        .wait_for("node1", "the stack to run", &deadline, |s| {
            let vm = s.settled_on(ids::VM, None);
            vm.len() == 1
                && s.settled_on(ids::FS, None) == vm
                && s.settled_on(ids::DRBD, Some(clever_pacemaker::Role::Promoted)) == vm
        })
        .unwrap();
    let first = status.running_on(ids::VM, None)[0].to_owned();
    let second = if first == "node1" { "node2" } else { "node1" }.to_owned();

    // The console runs on node1 whichever node has the VM, as an admin would start it there.
    let pid = lab.node_pid("node1").unwrap();
    let dir = PathBuf::from(format!("/tmp/clever-console-lab-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let accounts = Accounts::new(&dir, &PathBuf::from(format!("/proc/{pid}/root")));
    let port = free_port();
    let certificate = dir.join("cert.pem");
    let args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--certificate",
        certificate.to_str().unwrap(),
        "--key",
        dir.join("key.pem").to_str().unwrap(),
        "--move-timeout",
        "240",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut console = accounts.spawn(
        &release.join("clever-console"),
        &args,
        Some(pid),
        &dir.join("console.log"),
    );
    let curl = Curl {
        runner: lab.runner("node1").unwrap(),
        base: format!("https://localhost:{port}"),
        certificate,
        dir: dir.clone(),
    };
    console.wait_until("it answers in node1", || {
        curl.request("GET", "/login", &[]).status == 200
    });
    // Against the live cluster too: without a session nothing is done, a wrong password gets
    // none, and a session without the CSRF token moves nothing.
    for path in ["/migrate", "/unmigrate", "/cleanup"] {
        let answer = curl.request("POST", path, &[("csrf", "x")]);
        assert_eq!(answer.status, 401, "{path}: {answer:?}");
    }
    assert_eq!(curl.request("GET", "/api/status", &[]).status, 401);
    let answer = curl.request("POST", "/login", &[("user", ADMIN), ("password", "wrong")]);
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(curl.request("GET", "/api/status", &[]).status, 401);
    let answer = curl.request("POST", "/login", &[("user", ADMIN), ("password", PASSWORD)]);
    assert_eq!(answer.status, 303, "{answer:?}\n{}", console.log_text());
    let csrf = curl.csrf();
    for form in [vec![("to", "")], vec![("csrf", ""), ("to", "")]] {
        let answer = curl.request("POST", "/migrate", &form);
        assert_eq!(answer.status, 403, "{form:?}: {answer:?}");
    }
    let action: serde_json::Value =
        serde_json::from_str(&curl.request("GET", "/api/action", &[]).body).unwrap();
    assert!(action["what"].is_null(), "{action:#}");
    let page = curl.request("GET", "/", &[]).body;
    assert!(
        page.contains(&format!(
            "will be hibernated on {first} and resumed on {second}"
        )),
        "{page}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&curl.request("GET", "/api/status", &[]).body).unwrap();
    assert_eq!(
        report["report"]["status"]["vms"][0]["running_on"][0],
        first.as_str()
    );

    let answer = curl.request("POST", "/migrate", &[("csrf", &csrf), ("to", "")]);
    assert_eq!(answer.status, 303, "{answer:?}");
    let started = Instant::now();
    let action = loop {
        let action: serde_json::Value =
            serde_json::from_str(&curl.request("GET", "/api/action", &[]).body).unwrap();
        if !action["outcome"].is_null() {
            break action;
        }
        assert!(
            started.elapsed() < Duration::from_secs(280),
            "the move never ended: {action}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("after {:?}: {action:#}", started.elapsed());
    assert!(
        action["outcome"]["Ok"].is_string(),
        "{action:#}\n{}",
        console.log_text()
    );
    let lines = action["lines"].to_string();
    assert!(lines.contains("migration complete"), "{lines}");
    let status = lab.status_from(&second, &deadline).unwrap();
    assert_eq!(status.running_on(ids::VM, None), [second.as_str()]);

    // The move is in the timeline, with its phases, as the CIB's history recorded it.
    let report: serde_json::Value =
        serde_json::from_str(&curl.request("GET", "/api/status", &[]).body).unwrap();
    let latest = &report["report"]["status"]["timeline"][0];
    assert_eq!(latest["kind"], "migration", "{report:#}");
    assert_eq!(latest["from"], first.as_str());
    assert_eq!(latest["to"], second.as_str());
    let phases = latest["phases"].to_string();
    assert!(
        phases.contains("\"stop\"") && phases.contains("\"start\""),
        "{phases}"
    );
    let record = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-cib-status.xml");
    let history = lab
        .runner("node1")
        .unwrap()
        .run_ok(
            &clever_command::CommandLine::new("cibadmin").args(["--query", "--scope", "status"]),
            &deadline,
        )
        .unwrap();
    std::fs::write(&record, history.stdout_text()).unwrap();
    eprintln!(
        "the CIB status section after the move: {}",
        record.display()
    );

    // Unmigrate lifts the ban; nothing moves.
    let answer = curl.request("POST", "/unmigrate", &[("csrf", &csrf)]);
    assert_eq!(answer.status, 303, "{answer:?}");
    console.wait_until("unmigrate to finish", || {
        let action: serde_json::Value =
            serde_json::from_str(&curl.request("GET", "/api/action", &[]).body).unwrap();
        action["what"] == "unmigrate" && action["outcome"]["Ok"].is_string()
    });
    drop(console);
    std::fs::remove_dir_all(&dir).unwrap();
}
