//! `HostDrbd`, the production path, driven by a fake runner that replays recorded tool output.

use std::time::Duration;

use clever_command::CommandError;
use clever_deadline::Deadline;
use clever_drbd::{
    DiskState, DrbdParseError, DrbdStatusError, DrbdStatusSource, HostDrbd, ReplicationState, Role,
};

use crate::support::{exit, fixture, transcript, Recorded, Reply};

const JSON_UNSUPPORTED: &str = "drbdsetup-84 status: unrecognized option '--json'\n";

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

/// The `events2 --now` output recorded on a real 8.4 node.
fn events2_84(file: &str, vm: &str) -> String {
    transcript(&fixture(file))
        .into_iter()
        .find(|c| c.vm == vm && c.command == "drbdsetup events2 --now r0")
        .unwrap()
        .output
}

#[test]
fn drbd9_reads_json() {
    let json = fixture("drbd9-status-json-primary-connected-2node.json");
    let drbd = HostDrbd::new(Recorded::new(vec![exit(0, &json, "")]));
    let r = drbd.resource("beijing", &deadline()).unwrap();
    assert_eq!(r.role, Role::Primary);
    assert_eq!(drbd.runner().calls(), ["drbdsetup status beijing --json"]);
}

#[test]
fn drbd84_falls_back_to_events2_once_and_remembers() {
    let events = events2_84(
        "real-drbd84-tcg/04-connected-primary-secondary-uptodate.txt",
        "alpha",
    );
    let drbd = HostDrbd::new(Recorded::new(vec![
        exit(20, "", JSON_UNSUPPORTED),
        exit(0, &events, ""),
        exit(0, &events, ""),
    ]))
    .with_drbdsetup("/usr/sbin/drbdsetup");
    for _ in 0..2 {
        let r = drbd.resource("r0", &deadline()).unwrap();
        assert_eq!(r.role, Role::Primary);
        assert_eq!(r.devices[0].disk, DiskState::UpToDate);
        assert_eq!(
            r.connections[0].peer_devices[0].replication,
            ReplicationState::Established
        );
    }
    assert_eq!(
        drbd.runner().calls(),
        [
            "/usr/sbin/drbdsetup status r0 --json",
            "/usr/sbin/drbdsetup events2 --now r0",
            "/usr/sbin/drbdsetup events2 --now r0",
        ]
    );
}

#[test]
fn unknown_resource_is_no_such_resource() {
    // drbdsetup 9: `[` `]` on stdout, exit 10.
    let drbd = HostDrbd::new(Recorded::new(vec![exit(
        10,
        "[\n]\n",
        "r9: No such resource\n",
    )]));
    let err = drbd.resource("r9", &deadline()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "DRBD resource r9 is not configured on this node (is it up?)"
    );
    // An answer that simply lacks the resource means the same.
    let drbd = HostDrbd::new(Recorded::new(vec![exit(0, "[\n]\n", "")]));
    let err = drbd.resource("r9", &deadline()).unwrap_err();
    assert!(
        matches!(err, DrbdStatusError::NoSuchResource { .. }),
        "{err}"
    );
    // DRBD 8.4 (`14-down-unconfigured`): events2 exits 10 as well.
    let drbd = HostDrbd::new(Recorded::new(vec![
        exit(20, "", JSON_UNSUPPORTED),
        exit(10, "", "r0: No such resource\n"),
    ]));
    let err = drbd.resource("r0", &deadline()).unwrap_err();
    assert!(
        matches!(err, DrbdStatusError::NoSuchResource { .. }),
        "{err}"
    );
}

#[test]
fn option_like_names_never_reach_drbdsetup() {
    let drbd = HostDrbd::new(Recorded::new(vec![]));
    for name in ["", "--all", "-v"] {
        let err = drbd.resource(name, &deadline()).unwrap_err();
        assert!(
            matches!(err, DrbdStatusError::NoSuchResource { .. }),
            "{err}"
        );
    }
    assert!(drbd.runner().calls().is_empty());
}

#[test]
fn tool_failures_carry_stderr() {
    let drbd = HostDrbd::new(Recorded::new(vec![exit(
        20,
        "",
        "Could not connect to 'drbd' generic netlink family\n",
    )]));
    let err = drbd.resource("r0", &deadline()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "drbdsetup status r0 --json failed (exit code 20): Could not connect to 'drbd' generic netlink family"
    );
    let drbd = HostDrbd::new(Recorded::new(vec![Reply::TimedOut]));
    let err = drbd.resource("r0", &deadline()).unwrap_err();
    assert!(
        matches!(err, DrbdStatusError::Command(CommandError::TimedOut { .. })),
        "{err}"
    );
}

#[test]
fn unparsable_output_names_the_command() {
    let drbd = HostDrbd::new(Recorded::new(vec![exit(0, "[{\"name\": \"r0\",", "")]));
    let err = drbd.resource("r0", &deadline()).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "drbdsetup status r0 --json: drbdsetup status --json output is not valid JSON"
        ),
        "{err}"
    );
    // events2 killed before its end marker: refused rather than judged half-seen.
    let drbd = HostDrbd::new(Recorded::new(vec![
        exit(20, "", JSON_UNSUPPORTED),
        exit(
            0,
            "exists resource name:r0 role:Secondary suspended:no\n",
            "",
        ),
    ]));
    let err = drbd.resource("r0", &deadline()).unwrap_err();
    assert!(
        matches!(
            err,
            DrbdStatusError::Parse {
                source: DrbdParseError::Incomplete { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn proc_drbd_is_read_under_the_root() {
    let root = std::env::temp_dir().join(format!("clever-drbd-proc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let drbd = HostDrbd::new(Recorded::new(vec![])).with_root(&root);
    let err = drbd.proc_drbd().unwrap_err();
    assert!(matches!(err, DrbdStatusError::NotLoaded { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("the DRBD kernel module is not loaded"),
        "{err}"
    );

    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(
        root.join("proc/drbd"),
        fixture("proc-drbd-84-syncsource-primary-progress.txt"),
    )
    .unwrap();
    let proc = drbd.proc_drbd().unwrap();
    assert_eq!(proc.version, "8.4.11-1");
    assert_eq!(proc.minors.len(), 1);
    assert_eq!(drbd.root(), root.as_path());

    std::fs::write(root.join("proc/drbd"), "garbage\n").unwrap();
    let err = drbd.proc_drbd().unwrap_err();
    assert!(err.to_string().contains("no `version:` line"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
