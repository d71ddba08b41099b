//! Our own captures from real DRBD 8.4.11 with drbd-utils 9.22 (`real-drbd84-tcg/`).
//!
//! Each transcript shows the same kernel state through `/proc/drbd`, `drbdadm status`,
//! `drbdsetup status --verbose --statistics`, `drbdsetup events2 --now` and `drbdadm
//! role/cstate/dstate`, taken within a second of each other. So besides the exact parse of
//! `/proc/drbd`, every parser must agree on the state (resync percentages aside, which moved
//! between the commands), and the verdicts are checked per node.

use clever_drbd::{
    mount_verdict, parse_events2, parse_proc_drbd, parse_status_text, replication_health,
    ConnectionState, MinorOwner, Promotion, Resource,
};

use crate::support::{fixture, fixtures_dir, health_text, mount_text, render, transcript};

/// (transcript, VM, `/proc/drbd` joined with minor 0 = r0, mount verdict with explicit
/// promotion as on 8.4, health verdict).
const NODES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "real-drbd84-tcg/01-wfconnection-peer-not-up.txt",
        "alpha",
        r"
r0 Secondary
  vol0 minor0 Inconsistent
  peer Connecting Unknown
    vol0 Off DUnknown oos=65496
",
        "Refuse: DRBD r0 local disk Inconsistent: refusing to mount incomplete data (no resync is running)",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "real-drbd84-tcg/02-connected-secondary-secondary-inconsistent.txt",
        "alpha",
        r"
r0 Secondary
  vol0 minor0 Inconsistent
  peer Connected Secondary
    vol0 Established Inconsistent oos=65496
",
        "Refuse: DRBD r0 local disk Inconsistent: refusing to mount incomplete data (no resync is running)",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "real-drbd84-tcg/02-connected-secondary-secondary-inconsistent.txt",
        "beta",
        r"
r0 Secondary
  vol0 minor0 Inconsistent
  peer Connected Secondary
    vol0 Established Inconsistent oos=65496
",
        "Refuse: DRBD r0 local disk Inconsistent: refusing to mount incomplete data (no resync is running)",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "real-drbd84-tcg/03-syncsource-synctarget-initial-sync-in-progress.txt",
        "alpha",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer Connected Secondary
    vol0 SyncSource Inconsistent done=25.00 oos=51000
",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Degraded: DRBD r0 resync to peer 25.00% done",
    ),
    (
        "real-drbd84-tcg/03-syncsource-synctarget-initial-sync-in-progress.txt",
        "beta",
        r"
r0 Secondary
  vol0 minor0 Inconsistent
  peer Connected Primary
    vol0 SyncTarget UpToDate done=31.30 oos=45280
",
        "Wait: DRBD r0 local disk Inconsistent: waiting for the resync from peer (31.30% done)",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "real-drbd84-tcg/04-connected-primary-secondary-uptodate.txt",
        "alpha",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer Connected Secondary
    vol0 Established UpToDate oos=0
",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Healthy: DRBD r0 is Primary and UpToDate, replicated to peer",
    ),
    (
        "real-drbd84-tcg/04-connected-primary-secondary-uptodate.txt",
        "beta",
        r"
r0 Secondary
  vol0 minor0 UpToDate
  peer Connected Primary
    vol0 Established UpToDate oos=0
",
        "Refuse: DRBD r0 peer is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "real-drbd84-tcg/05-switched-over-beta-primary.txt",
        "alpha",
        r"
r0 Secondary
  vol0 minor0 UpToDate
  peer Connected Primary
    vol0 Established UpToDate oos=0
",
        "Refuse: DRBD r0 peer is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "real-drbd84-tcg/05-switched-over-beta-primary.txt",
        "beta",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer Connected Secondary
    vol0 Established UpToDate oos=0
",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Healthy: DRBD r0 is Primary and UpToDate, replicated to peer",
    ),
    (
        "real-drbd84-tcg/06-online-verify-in-progress.txt",
        "beta",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer Connected Secondary
    vol0 VerifyS UpToDate oos=0
",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Healthy: DRBD r0 is Primary and UpToDate, replicated to peer",
    ),
    (
        "real-drbd84-tcg/06-online-verify-in-progress.txt",
        "alpha",
        r"
r0 Secondary
  vol0 minor0 UpToDate
  peer Connected Primary
    vol0 VerifyT UpToDate oos=0
",
        "Refuse: DRBD r0 peer is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "real-drbd84-tcg/08-reconnected-after-link-loss-resynced.txt",
        "beta",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer Connected Secondary
    vol0 Established UpToDate oos=0
",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Healthy: DRBD r0 is Primary and UpToDate, replicated to peer",
    ),
    (
        "real-drbd84-tcg/08-reconnected-after-link-loss-resynced.txt",
        "alpha",
        r"
r0 Secondary
  vol0 minor0 UpToDate
  peer Connected Primary
    vol0 Established UpToDate oos=0
",
        "Refuse: DRBD r0 peer is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "real-drbd84-tcg/09-standalone-after-drbdadm-disconnect.txt",
        "alpha",
        r"
r0 Secondary
  vol0 minor0 UpToDate
  peer StandAlone Unknown
    vol0 Off DUnknown oos=0
",
        "Wait: DRBD r0 is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "real-drbd84-tcg/09-standalone-after-drbdadm-disconnect.txt",
        "beta",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer Connecting Unknown
    vol0 Off DUnknown oos=0
",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Degraded: DRBD r0 peer disconnected (Connecting): data not replicated",
    ),
    (
        "real-drbd84-tcg/10-outdated-secondary.txt",
        "alpha",
        r"
r0 Secondary
  vol0 minor0 Outdated
  peer StandAlone Unknown
    vol0 Off DUnknown oos=0
",
        "Refuse: DRBD r0 local disk Outdated: refusing to mount stale data",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "real-drbd84-tcg/10-outdated-secondary.txt",
        "beta",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer Connecting Unknown
    vol0 Off DUnknown oos=0
",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Degraded: DRBD r0 peer disconnected (Connecting): data not replicated",
    ),
    (
        "real-drbd84-tcg/11-both-primary-while-partitioned.txt",
        "alpha",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer Connecting Unknown
    vol0 Off DUnknown oos=2048
",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Degraded: DRBD r0 peer disconnected (Connecting): data not replicated",
    ),
    (
        "real-drbd84-tcg/11-both-primary-while-partitioned.txt",
        "beta",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer Connecting Unknown
    vol0 Off DUnknown oos=2048
",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Degraded: DRBD r0 peer disconnected (Connecting): data not replicated",
    ),
    (
        "real-drbd84-tcg/13-split-brain-resolved-discard-my-data.txt",
        "alpha",
        r"
r0 Secondary
  vol0 minor0 UpToDate
  peer Connected Primary
    vol0 Established UpToDate oos=0
",
        "Refuse: DRBD r0 peer is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "real-drbd84-tcg/13-split-brain-resolved-discard-my-data.txt",
        "beta",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer Connected Secondary
    vol0 Established UpToDate oos=0
",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Healthy: DRBD r0 is Primary and UpToDate, replicated to peer",
    ),
    (
        "real-drbd84-tcg/14-down-unconfigured.txt",
        "alpha",
        r"
",
        "-",
        "-",
    ),
    (
        "real-drbd84-tcg/14-down-unconfigured.txt",
        "beta",
        r"
",
        "-",
        "-",
    ),
];

fn owners() -> std::collections::BTreeMap<u32, MinorOwner> {
    [(
        0,
        MinorOwner {
            resource: "r0".into(),
            volume: 0,
        },
    )]
    .into_iter()
    .collect()
}

/// The state every source prints, without what only some print (node ids, minors,
/// statistics, percentages taken at different instants).
fn core(resources: &[Resource]) -> String {
    resources
        .iter()
        .map(|r| {
            let disks: Vec<String> = r
                .devices
                .iter()
                .map(|d| format!("{}:{}", d.volume, d.disk))
                .collect();
            let peers: Vec<String> = r
                .connections
                .iter()
                .map(|c| {
                    let volumes: Vec<String> = c
                        .peer_devices
                        .iter()
                        .map(|p| format!("{}:{}/{}", p.volume, p.replication, p.peer_disk))
                        .collect();
                    format!(
                        "{} {} {} [{}]",
                        c.name,
                        c.state,
                        c.peer_role,
                        volumes.join(" ")
                    )
                })
                .collect();
            format!(
                "{} {} suspended={} disks[{}] peers[{}]",
                r.name,
                r.role,
                r.suspended,
                disks.join(" "),
                peers.join(", ")
            )
        })
        .collect()
}

/// What `status` can show of a state: drbd-utils 9 does not list a StandAlone 8.4 connection,
/// and without `--verbose` lists a peer's volumes only while connected.
fn as_status_shows(resources: &[Resource], verbose: bool) -> Vec<Resource> {
    let mut resources = resources.to_vec();
    for r in &mut resources {
        r.connections
            .retain(|c| c.state != ConnectionState::StandAlone);
        for c in &mut r.connections {
            if !verbose && c.state != ConnectionState::Connected {
                c.peer_devices.clear();
            }
        }
    }
    resources
}

fn transcripts() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir().join("real-drbd84-tcg"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".txt"))
        .map(|n| format!("real-drbd84-tcg/{n}"))
        .collect();
    names.sort();
    names
}

/// One node of one transcript: every capture parsed and checked against `/proc/drbd`.
struct Node {
    file: String,
    vm: String,
    resources: Vec<Resource>,
}

fn nodes() -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for file in transcripts() {
        for capture in transcript(&fixture(&file)) {
            let at = format!("{file} {} `{}`", capture.vm, capture.command);
            if capture.command == "cat /proc/drbd" {
                let proc = parse_proc_drbd(&capture.output).unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_eq!(proc.version, "8.4.11", "{at}");
                nodes.push(Node {
                    file: file.clone(),
                    vm: capture.vm.clone(),
                    resources: proc.resources(&owners()),
                });
                continue;
            }
            let node = nodes
                .iter()
                .rev()
                .find(|n| n.file == file && n.vm == capture.vm)
                .unwrap_or_else(|| panic!("{at}: no /proc/drbd before it"));
            let expected = core(&node.resources);
            match capture.command.as_str() {
                "drbdadm status r0" | "drbdsetup status r0 --verbose --statistics" => {
                    let parsed = parse_status_text(&capture.output);
                    if capture.output.contains("No such resource") {
                        // The resource is down: the capture holds drbdadm's error message.
                        assert!(node.resources.is_empty(), "{at}");
                        assert!(parsed.is_err(), "{at}");
                    } else {
                        let parsed = parsed.unwrap_or_else(|e| panic!("{at}: {e}"));
                        let verbose = capture.command.contains("--verbose");
                        let shown = as_status_shows(&node.resources, verbose);
                        assert_eq!(core(&parsed), core(&shown), "{at}");
                    }
                }
                "drbdsetup events2 --now r0" => {
                    let parsed =
                        parse_events2(&capture.output).unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert_eq!(core(&parsed), expected, "{at}");
                }
                "drbdadm role r0; drbdadm cstate r0; drbdadm dstate r0" => {
                    let r = &node.resources[0];
                    let c = &r.connections[0];
                    let p = &c.peer_devices[0];
                    let lines: Vec<&str> = capture.output.lines().collect();
                    assert_eq!(lines[0], format!("{}/{}", r.role, c.peer_role), "{at}");
                    let (state, replication) = lines[1]
                        .parse::<clever_drbd::Drbd8ConnState>()
                        .unwrap()
                        .split();
                    assert_eq!((state, replication), (c.state, p.replication), "{at}");
                    assert_eq!(
                        lines[2],
                        format!("{}/{}", r.devices[0].disk, p.peer_disk),
                        "{at}"
                    );
                }
                // dmesg excerpts and a failing `drbdadm primary`: not state output.
                _ => {}
            }
        }
    }
    nodes
}

#[test]
fn every_capture_parses_and_all_sources_agree() {
    let nodes = nodes();
    let listed: Vec<(&str, &str)> = NODES.iter().map(|(f, vm, ..)| (*f, *vm)).collect();
    let found: Vec<(&str, &str)> = nodes
        .iter()
        .map(|n| (n.file.as_str(), n.vm.as_str()))
        .collect();
    assert_eq!(found, listed);
}

#[test]
fn proc_drbd_state_and_verdicts_per_node() {
    for (node, (file, vm, state, mount, health)) in nodes().iter().zip(NODES) {
        assert_eq!((node.file.as_str(), node.vm.as_str()), (*file, *vm));
        assert_eq!(
            render(&node.resources),
            state.trim_start_matches('\n'),
            "{file} {vm}"
        );
        let (mount_found, health_found) = match node.resources.first() {
            Some(r) => (
                mount_text(&mount_verdict(r, Promotion::Explicit)),
                health_text(&replication_health(r)),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        assert_eq!(mount_found, *mount, "{file} {vm}");
        assert_eq!(health_found, *health, "{file} {vm}");
    }
}
