//! Every fixture file parses into exactly the state it shows (the whole model is compared
//! through `support::render`), except the JSON with a bare `nan`, which parses by decision.

use crate::support::{fixture, fixtures_dir, kind_of, parse, render};

/// (fixture, rendering of everything parsed). `/proc/drbd` fixtures are joined with minor
/// owners r0, r1, r4, r5, r6, r8 for minors 0, 1, 4, 5, 6, 8; their one connection is `peer`.
pub const EXPECTED: &[(&str, &str)] = &[
    (
        "drbd-status-text-secondary-connected-linbit-ug84.txt",
        r"
home Secondary
  vol0 UpToDate
  peer Connected Secondary
    vol0 Established UpToDate
",
    ),
    (
        "drbd-status-verbose-statistics-secondary-linbit-ug84.txt",
        r"
home Secondary
  vol0 minor0 UpToDate
  peer Connected Secondary
    vol0 Established UpToDate oos=0
",
    ),
    (
        "drbd84-kernel-drbdadm9-status-primary.txt",
        r"
r0 Primary
  vol0 UpToDate
  peer Connected Secondary
    vol0 Established UpToDate
",
    ),
    (
        "drbd84-kernel-drbdadm9-status-secondary.txt",
        r"
r0 Secondary
  vol0 UpToDate
  peer Connected Secondary
    vol0 Established UpToDate
",
    ),
    (
        "drbd9-events2-drbdutils-test-quorum-lost.txt",
        r"
some-resource Secondary
  vol0 minor1000 UpToDate client=false quorum=false
",
    ),
    (
        "drbd9-events2-drbdutils-test-sync-statistics.txt",
        r"
some-resource Secondary
  vol0 minor1000 UpToDate client=false quorum=true
  some-peer node1 Connected Secondary
    vol0 SyncSource Inconsistent client=false done=37.50 oos=2500
",
    ),
    (
        "drbd9-events2-now-statistics-secondary-3node.txt",
        r"
drbd1 Secondary
  vol0 minor1 UpToDate client=false quorum=true
  central-2004 node0 Connected Primary
    vol0 Established UpToDate client=false oos=0
  poller-2004-1 node1 Connected Secondary
    vol0 Established UpToDate client=false oos=0
",
    ),
    (
        "drbd9-events2-timestamps-statistics-lines-drbdtop-SUBSET.txt",
        r"
pvc-0a2826c9-7108-11e9-8f74-0026b954ca4c Secondary
  vol0 minor1016 UpToDate client=false quorum=true
  kubelet-b node2 Connected Secondary
    vol0 Established UpToDate client=false oos=0
",
    ),
    (
        "drbd9-status-json-primary-connected-2node.json",
        r"
beijing Primary
  vol0 minor5 UpToDate client=false quorum=true
  salt-node3 node2 Connected Secondary
    vol0 Established UpToDate client=false oos=0
",
    ),
    (
        "drbd9-status-json-secondary-connected-2node.json",
        r"
shanghai Secondary
  vol0 minor2 UpToDate client=false quorum=true
  dummytest-drbd02 node2 Connected Secondary
    vol0 Established UpToDate client=false oos=0
",
    ),
    (
        "drbd9-status-json-syncsource-start-nan-INVALID.json",
        r"
shanghai Primary
  vol0 minor2 UpToDate client=false quorum=true
  SLE12-sp4-node2 node2 Connected Secondary
    vol0 SyncSource Inconsistent client=false done=0.00 oos=409600
",
    ),
    (
        "drbd9-status-text-diskless-primary-peer-consistent.txt",
        r"
one-vm-6967-disk-0 Primary
  vol0 Diskless
  m13c15 Connected Secondary
    vol0 Established Consistent
  m14c40 Connected Secondary
    vol0 Established UpToDate
",
    ),
    (
        "drbd9-status-text-diskless-primary-peer-unconnected.txt",
        r"
one-vm-8760-disk-0 Primary
  vol0 Diskless
  m13c18 Unconnected Unknown
  m14c27 Connected Secondary
    vol0 Established UpToDate
",
    ),
    (
        "drbd9-status-text-diskless-quorum-lost-all-peers-connecting.txt",
        r"
one-vm-7792-disk-0 Secondary
  vol0 Diskless quorum=false
  m13c9 Connecting Unknown
  m14c13 Connecting Unknown
",
    ),
    (
        "drbd9-status-text-inconsistent-quorum-lost-peer-connecting.txt",
        r"
one-vm-7584-disk-0 Secondary
  vol0 Inconsistent quorum=false
  m11c24 Connected Primary
    vol0 Established Diskless
  m8c37 Connecting Unknown
",
    ),
    (
        "drbd9-status-text-outdated-peer-connecting.txt",
        r"
one-vm-7577-disk-2 Secondary
  vol0 Outdated
  m10c21 Connected Secondary
    vol0 Established Diskless
  m13c10 Connecting Unknown
",
    ),
    (
        "drbd9-status-text-outdated-peer-unconnected.txt",
        r"
one-vm-8760-disk-0 Secondary
  vol0 Outdated
  m14c27 Connected Secondary
    vol0 Established UpToDate
  m8c9 Unconnected Unknown
",
    ),
    (
        "drbd9-status-text-outdated-quorum-lost-peer-connecting.txt",
        r"
one-vm-8373-disk-2 Secondary
  vol0 Outdated quorum=false
  m11c12 Connected Primary
    vol0 Established Diskless
  m14c6 Connecting Unknown
",
    ),
    (
        "drbd9-status-text-outdated-quorum-lost-peer-standalone.txt",
        r"
one-vm-8536-disk-0 Secondary
  vol0 Outdated quorum=false
  m10c27 StandAlone Unknown
  m13c29 Connected Secondary
    vol0 Established Diskless
  m13c9 Connected Primary
    vol0 Established Diskless
",
    ),
    (
        "drbd9-status-text-primary-3node-2volumes-uptodate.txt",
        r"
beijing Primary
  vol0 UpToDate
  vol1 UpToDate
  node2 Connected Secondary
    vol0 Established UpToDate
    vol1 Established UpToDate
  node3 Connected Secondary
    vol0 Established UpToDate
    vol1 Established UpToDate
",
    ),
    (
        "drbd9-status-text-primary-3node-uptodate.txt",
        r"
pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71 Primary
  vol0 UpToDate
  kube-node-1 Connected Secondary
    vol0 Established UpToDate
  kube-node-6 Connected Secondary
    vol0 Established UpToDate
",
    ),
    (
        "drbd9-status-text-primary-syncsource-done.txt",
        r"
single Primary
  vol0 UpToDate
  opensuse-node2 Connected Secondary
    vol0 SyncSource Inconsistent done=96.47
",
    ),
    (
        "drbd9-status-text-secondary-3node-peer-primary.txt",
        r"
pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71 Secondary
  vol0 UpToDate
  kube-node-1 Connected Secondary
    vol0 Established UpToDate
  kube-node-2 Connected Primary
    vol0 Established UpToDate
",
    ),
    (
        "drbd9-status-text-secondary-3peers-one-connecting-linbit-ug9.txt",
        r"
home Secondary
  vol0 UpToDate
  nina Connected Secondary
    vol0 Established UpToDate
  nino Connected Secondary
    vol0 Established UpToDate
  nono Connecting Unknown
",
    ),
    (
        "drbd9-status-text-secondary-synctarget-2volumes-2peers.txt",
        r"
resource Secondary
  vol0 Inconsistent
  vol1 Inconsistent
  drbd-node1 Connected Primary
    vol0 SyncTarget UpToDate done=10.17
    vol1 SyncTarget UpToDate done=74.08
  drbd-node2 Connected Secondary
    vol0 Established Inconsistent
    vol1 Established Inconsistent
",
    ),
    (
        "drbd9-status-text-secondary-uptodate-4node-mixed-peers.txt",
        r"
one-vm-8586-disk-0 Secondary
  vol0 UpToDate
  m13c17 Connected Secondary
    vol0 Established Diskless
  m13c34 Connected Primary
    vol0 Established Diskless
  m15c36 Connected Secondary
    vol0 Established UpToDate
",
    ),
    (
        "drbd9-status-text-secondary-uptodate-diskless-primary-peer.txt",
        r"
one-vm-8373-disk-2 Secondary
  vol0 UpToDate
  m11c12 Connected Primary
    vol0 Established Diskless
  m13c23 Connected Secondary
    vol0 Established UpToDate
",
    ),
    (
        "drbd9-status-text-splitbrain-victim-outdated-standalone.txt",
        r"
one-vm-8373-disk-2 Secondary
  vol0 Outdated quorum=false
  m11c12 Connected Primary
    vol0 Established Diskless
  m14c6 StandAlone Unknown
",
    ),
    (
        "drbd9-status-text-syncsource-congested-stats.txt",
        r"
one-vm-8373-disk-2 Secondary
  vol0 UpToDate
  m11c12 Connected Primary
    vol0 Established Diskless
  m13c23 Connected Secondary
    vol0 SyncSource Inconsistent done=72.42
",
    ),
    (
        "drbd9-status-text-synctarget-done.txt",
        r"
one-vm-6372-disk-0 Secondary
  vol0 Inconsistent
  m10c17 Connected Secondary
    vol0 SyncTarget UpToDate done=51.52
  m8c10 Connected Primary
    vol0 Established Diskless
",
    ),
    (
        "drbd9-status-verbose-primary-diskless-client-peer-unconnected.txt",
        r"
one-vm-10154-disk-0 Primary
  vol0 minor3194 Diskless client=true quorum=true
  m11c37 node1 Connected Secondary
    vol0 Established UpToDate
  m8c11 node0 Unconnected Unknown
    vol0 Off Outdated
",
    ),
    (
        "drbd9-status-verbose-secondary-outdated-peer-unconnected.txt",
        r"
one-vm-10154-disk-0 Secondary
  vol0 minor3194 Outdated quorum=true
  m11c37 node1 Connected Secondary
    vol0 Established UpToDate
  m8c8 node3 Unconnected Unknown
    vol0 Off DUnknown
",
    ),
    (
        "drbd9-status-verbose-secondary-uptodate-peer-outdated-peer-diskless-client.txt",
        r"
one-vm-8760-disk-0 Secondary
  vol0 minor1016 UpToDate quorum=true
  m13c18 node0 Connected Secondary
    vol0 Established Outdated
  m8c9 node3 Connected Primary
    vol0 Established Diskless client=true
",
    ),
    (
        "proc-drbd-83-synctarget-want.txt",
        r"
r0 Secondary
  vol0 minor0 Inconsistent
  peer Connected Primary
    vol0 SyncTarget UpToDate done=44.40 oos=588416
",
    ),
    (
        "proc-drbd-84-3minors-connected-linbit-ug84.txt",
        r"
r0 Secondary
  vol0 minor0 UpToDate
  peer Connected Secondary
    vol0 Established UpToDate
",
    ),
    (
        "proc-drbd-84-connected-primary-secondary-uptodate.txt",
        r"
r1 Primary
  vol0 minor1 UpToDate
  peer Connected Secondary
    vol0 Established UpToDate oos=0
",
    ),
    (
        "proc-drbd-84-connected-secondary-secondary-inconsistent.txt",
        r"
r1 Secondary
  vol0 minor1 Inconsistent
  peer Connected Secondary
    vol0 Established Inconsistent oos=524236
",
    ),
    (
        "proc-drbd-84-multi-connected-wfconnection-diskless-standalone.txt",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer Connected Secondary
    vol0 Established UpToDate oos=0
r1 Secondary
  vol0 minor1 UpToDate
  peer Connected Primary
    vol0 Established UpToDate oos=0
r4 Primary
  vol0 minor4 UpToDate
  peer Connecting Unknown
    vol0 Off DUnknown oos=1048320
r6 Secondary
  vol0 minor6 Diskless
  peer Connected Primary
    vol0 Established UpToDate oos=0
r8 Secondary
  vol0 minor8 UpToDate
  peer StandAlone Unknown
    vol0 Off DUnknown oos=1048320
",
    ),
    (
        "proc-drbd-84-splitbrain-standalone-secondary-node1.txt",
        r"
r0 Secondary
  vol0 minor0 UpToDate
  peer StandAlone Unknown
    vol0 Off DUnknown oos=76
",
    ),
    (
        "proc-drbd-84-standalone-primary-peer-inconsistent-trinity.txt",
        r"
r1 Primary
  vol0 minor1 UpToDate
  peer StandAlone Unknown
    vol0 Off Inconsistent oos=40448716
",
    ),
    (
        "proc-drbd-84-syncsource-primary-progress.txt",
        r"
r1 Primary
  vol0 minor1 UpToDate
  peer Connected Secondary
    vol0 SyncSource Inconsistent done=8.60 oos=481052
",
    ),
    (
        "proc-drbd-84-syncsource-standalone-unconfigured.txt",
        r"
r0 Primary
  vol0 minor0 UpToDate
  peer StandAlone Unknown
    vol0 Off DUnknown oos=1048320
r5 Secondary
  vol0 minor5 UpToDate
  peer Connected Secondary
    vol0 SyncSource Inconsistent done=68.50 oos=335744
",
    ),
    (
        "proc-drbd-84-wfconnection-secondary-inconsistent-trinity.txt",
        r"
r1 Secondary
  vol0 minor1 Inconsistent
  peer Connecting Unknown
    vol0 Off DUnknown oos=40448704
",
    ),
    (
        "proc-drbd-84-wfconnection-secondary-inconsistent.txt",
        r"
r1 Secondary
  vol0 minor1 Inconsistent
  peer Connecting Unknown
    vol0 Off DUnknown oos=524236
",
    ),
];

#[test]
fn every_fixture_parses_to_its_exact_state() {
    for (name, expected) in EXPECTED {
        let parsed = parse(kind_of(name), &fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(render(&parsed), expected.trim_start_matches('\n'), "{name}");
    }
}

#[test]
fn the_table_covers_every_fixture_file() {
    let mut files: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n != "README.md")
        .collect();
    files.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed);
}
