//! The `clever-cib` binary: writes the three files, or one format to stdout; a bad description is
//! one `clever-cib: error:` line and a failure exit. What it writes is the library's output
//! (`crates/cib` tests the generator itself).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::Path;
use std::time::Duration;

use clever_command::{CommandLine, HostCommands, Output, RunCommand};
use clever_deadline::Deadline;

const BUDGET: Duration = Duration::from_secs(30);

fn run(command: &CommandLine) -> Output {
    HostCommands
        .run(command, &Deadline::after(BUDGET))
        .unwrap_or_else(|e| panic!("{command}: {e}"))
}

fn run_ok(command: &CommandLine) -> Output {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command} failed ({:?}):\n{}",
        output.code(),
        output.stderr_text()
    );
    output
}

#[test]
fn the_binary_generates_and_refuses() {
    let valid = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pacemaker-cib/examples/2-nodes.toml"),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("clever-cib-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, &valid).unwrap();
    let out = dir.join("out");
    let binary = env!("CARGO_BIN_EXE_clever-cib");
    let output = run_ok(
        &CommandLine::new(binary)
            .arg("generate")
            .arg(&good)
            .arg("-o")
            .arg(&out),
    );
    assert!(output
        .stderr_text()
        .contains("WARNING: FENCING IS NOT CONFIGURED"));
    let expected = clever_cib::generate(&valid).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("cib.xml")).unwrap(),
        expected.cib_xml
    );
    assert_eq!(
        std::fs::read_to_string(out.join("crm.txt")).unwrap(),
        expected.crm
    );
    assert_eq!(
        std::fs::read_to_string(out.join("pcs.sh")).unwrap(),
        expected.pcs
    );
    let output = run_ok(
        &CommandLine::new(binary)
            .args(["generate", "-f", "crm"])
            .arg(&good),
    );
    assert_eq!(output.stdout_text(), expected.crm);

    let bad = dir.join("bad.toml");
    assert!(valid.contains("192.168.1.10"));
    std::fs::write(&bad, valid.replace("192.168.1.10", "192.168.1.300")).unwrap();
    let output = run(&CommandLine::new(binary).arg("check").arg(&bad));
    assert_eq!(output.code(), Some(1));
    let stderr = output.stderr_text();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("clever-cib: error: "), "{stderr}");
    assert!(stderr.contains("not an IPv4 or IPv6 address"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
