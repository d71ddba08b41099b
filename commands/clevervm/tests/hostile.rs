//! Hostile options to the built `clevervm`, table-driven: out-of-range and non-numeric numbers,
//! node names that are not cluster nodes (empty, paths, option-like, control characters, long,
//! not UTF-8). Each must exit non-zero with a reason and without a panic, and change nothing:
//! the CIB file `clevervm` works on stays byte for byte the same, and `virsh` (a recorder first
//! on `PATH`) is never run.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::Command;

use ocf_conformance::hostile::{self, Fake, FakeTools, Tally};

use super::{cluster, scratch};

/// (arguments after `--cib-file CIB`, the exit code when it is a usage error, else `None`
/// for any refusal other than 0).
fn cases() -> Vec<(Vec<OsString>, Option<i32>)> {
    let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
    let mut cases = vec![
        (
            args(&["--timeout", "18446744073709551615", "status"]),
            Some(2),
        ),
        (
            args(&["--timeout", "18446744073709551616", "status"]),
            Some(2),
        ),
        (args(&["--timeout", "604801", "status"]), Some(2)),
        (args(&["--timeout", "-1", "status"]), Some(2)),
        (args(&["--timeout", "1e3", "status"]), Some(2)),
        (args(&["--timeout", "", "status"]), Some(2)),
        (args(&["--timeout", "abc", "forcestop"]), Some(2)),
        (
            args(&[
                "migrate",
                "--wait",
                "--wait-timeout",
                "18446744073709551615",
            ]),
            Some(2),
        ),
        (args(&["migrate", "--wait-timeout", "-5"]), Some(2)),
        (
            vec![
                "migrate".into(),
                "--to".into(),
                OsString::from_vec(b"node\xff".to_vec()),
            ],
            Some(2),
        ),
    ];
    for node in [
        "",
        " ",
        "node3",
        "../node1",
        "node1/..",
        "-INFINITY",
        "--force",
        "node1\nnode2",
        "node1 node2",
        "node1\u{1b}[2J",
        &"n".repeat(100_000),
    ] {
        cases.push((args(&["migrate", "--to", node]), None));
        // Away from a "this node" that is not a cluster node: nothing to ban it from.
        cases.push((args(&["--node", node, "migrate"]), None));
    }
    cases
}

#[test]
fn hostile_options_are_refused_and_change_nothing() {
    let dir = scratch("hostile");
    let cib = cluster(&dir.0);
    let fakes = FakeTools::new(dir.0.join("bin"), &["virsh"], &Fake::Fails);
    let path = fakes.path();
    let before = std::fs::read(&cib).unwrap();
    let mut tally = Tally::new("clevervm", "options");
    let cases = cases();
    for (args, usage) in &cases {
        let output = Command::new(env!("CARGO_BIN_EXE_clevervm"))
            .arg("--cib-file")
            .arg(&cib)
            .args(args)
            .env("PATH", &path)
            .env("CIB_file", &cib)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let code = output.status.code();
        let mut wrong = Vec::new();
        match usage {
            Some(want) if code != Some(*want) => wrong.push(format!("exit {code:?}, want {want}")),
            None if matches!(code, Some(0) | Some(101) | None) => {
                wrong.push(format!("exit {code:?}, want a refusal"));
            }
            _ => {}
        }
        let panic = hostile::panicked(&text);
        if panic {
            wrong.push("panicked".to_owned());
        }
        if text.trim().is_empty() {
            wrong.push("no reason given".to_owned());
        }
        let mut side_effect = false;
        if std::fs::read(&cib).unwrap() != before {
            wrong.push("the CIB changed".to_owned());
            std::fs::write(&cib, &before).unwrap();
            side_effect = true;
        }
        if let Some(calls) = fakes.take_calls() {
            wrong.push(format!("ran {calls:?}"));
            side_effect = true;
        }
        if !wrong.is_empty() {
            wrong.push(text.trim().chars().take(300).collect::<String>());
        }
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().chars().take(30).collect())
            .collect();
        tally.record(&format!("{shown:?}"), panic, side_effect, &wrong);
    }
    // The control: a legitimate migrate does change the CIB, so the checks above can see it.
    let output = Command::new(env!("CARGO_BIN_EXE_clevervm"))
        .arg("--cib-file")
        .arg(&cib)
        .args(["--node", "node1", "migrate"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_ne!(
        std::fs::read(&cib).unwrap(),
        before,
        "the control changed nothing"
    );
    tally.finish(env!("CARGO_TARGET_TMPDIR"));
}
