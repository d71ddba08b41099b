//! `status --json` in unhealthy states. No public capture of those exists (see the fixtures'
//! SOURCES.md), so these documents are DERIVED from real text captures, following the printer
//! schema in SOURCES.md (`peer_devices` with an underscore, peer volumes listed for every
//! connection once the resource has devices and connections, `percent-resync-done` during a
//! resync). Values the text does not show are placeholders, marked as such; the real captures
//! stay untouched in `fixtures/`.

use clever_drbd::{
    mount_verdict, parse_status_json, parse_status_text, replication_health, Promotion,
};

use crate::support::{fixture, health_text, mount_text, render};

/// Derived from `drbd9-status-text-splitbrain-victim-outdated-standalone.txt`.
/// Placeholders: node ids, minor 1000, `peer-client`, statistics.
const SPLIT_BRAIN_VICTIM: &str = r#"[
{
  "name": "one-vm-8373-disk-2",
  "node-id": 0,
  "role": "Secondary",
  "suspended": false,
  "write-ordering": "flush",
  "devices": [
    {
      "volume": 0,
      "minor": 1000,
      "disk-state": "Outdated",
      "client": false,
      "quorum": false,
      "size": 0,
      "read": 0,
      "written": 0,
      "al-writes": 0,
      "bm-writes": 0,
      "upper-pending": 0,
      "lower-pending": 0
    } ],
  "connections": [
    {
      "peer-node-id": 1,
      "name": "m11c12",
      "connection-state": "Connected", 
      "congested": false,
      "peer-role": "Primary",
      "ap-in-flight": 0,
      "rs-in-flight": 0,
      "peer_devices": [
        {
          "volume": 0,
          "replication-state": "Established",
          "peer-disk-state": "Diskless",
          "peer-client": true,
          "resync-suspended": "no",
          "received": 0,
          "sent": 0,
          "out-of-sync": 0,
          "pending": 0,
          "unacked": 0,
          "has-sync-details": false,
          "has-online-verify-details": false,
          "percent-in-sync": 100.00
        } ]
    } ,
    {
      "peer-node-id": 2,
      "name": "m14c6",
      "connection-state": "StandAlone", 
      "congested": false,
      "peer-role": "Unknown",
      "ap-in-flight": 0,
      "rs-in-flight": 0,
      "peer_devices": [
        {
          "volume": 0,
          "replication-state": "Off",
          "peer-disk-state": "DUnknown",
          "peer-client": false,
          "resync-suspended": "no",
          "received": 0,
          "sent": 0,
          "out-of-sync": 0,
          "pending": 0,
          "unacked": 0,
          "has-sync-details": false,
          "has-online-verify-details": false,
          "percent-in-sync": 100.00
        } ]
    } ]
}
]
"#;

/// Derived from `drbd9-status-text-secondary-synctarget-2volumes-2peers.txt`.
/// Placeholders: node ids, minors 1000/1001, `peer-client`, out-of-sync, statistics.
const SYNC_TARGET_TWO_VOLUMES: &str = r#"[
{
  "name": "resource",
  "node-id": 2,
  "role": "Secondary",
  "suspended": false,
  "write-ordering": "flush",
  "devices": [
    { "volume": 0, "minor": 1000, "disk-state": "Inconsistent", "client": false, "quorum": true },
    { "volume": 1, "minor": 1001, "disk-state": "Inconsistent", "client": false, "quorum": true } ],
  "connections": [
    {
      "peer-node-id": 0,
      "name": "drbd-node1",
      "connection-state": "Connected", 
      "congested": false,
      "peer-role": "Primary",
      "peer_devices": [
        { "volume": 0, "replication-state": "SyncTarget", "peer-disk-state": "UpToDate",
          "peer-client": false, "resync-suspended": "no", "out-of-sync": 1000,
          "has-sync-details": false, "has-online-verify-details": false,
          "percent-in-sync": 10.17, "percent-resync-done": 10.17 },
        { "volume": 1, "replication-state": "SyncTarget", "peer-disk-state": "UpToDate",
          "peer-client": false, "resync-suspended": "no", "out-of-sync": 1000,
          "has-sync-details": false, "has-online-verify-details": false,
          "percent-in-sync": 74.08, "percent-resync-done": 74.08 } ]
    } ,
    {
      "peer-node-id": 1,
      "name": "drbd-node2",
      "connection-state": "Connected", 
      "congested": false,
      "peer-role": "Secondary",
      "peer_devices": [
        { "volume": 0, "replication-state": "Established", "peer-disk-state": "Inconsistent",
          "peer-client": false, "resync-suspended": "peer", "out-of-sync": 1000,
          "has-sync-details": false, "has-online-verify-details": false,
          "percent-in-sync": 0.00 },
        { "volume": 1, "replication-state": "Established", "peer-disk-state": "Inconsistent",
          "peer-client": false, "resync-suspended": "peer", "out-of-sync": 1000,
          "has-sync-details": false, "has-online-verify-details": false,
          "percent-in-sync": 0.00 } ]
    } ]
}
]
"#;

#[test]
fn split_brain_victim_in_json() {
    let resources = parse_status_json(SPLIT_BRAIN_VICTIM).unwrap();
    assert_eq!(
        render(&resources),
        "\
one-vm-8373-disk-2 Secondary
  vol0 minor1000 Outdated client=false quorum=false
  m11c12 node1 Connected Primary
    vol0 Established Diskless client=true oos=0
  m14c6 node2 StandAlone Unknown
    vol0 Off DUnknown client=false oos=0
"
    );
    // The same verdicts as for the text capture it was derived from.
    let text = parse_status_text(&fixture(
        "drbd9-status-text-splitbrain-victim-outdated-standalone.txt",
    ))
    .unwrap();
    for promotion in [Promotion::Auto, Promotion::Explicit] {
        assert_eq!(
            mount_text(&mount_verdict(&resources[0], promotion)),
            mount_text(&mount_verdict(&text[0], promotion))
        );
    }
    assert_eq!(
        mount_text(&mount_verdict(&resources[0], Promotion::Auto)),
        "Refuse: DRBD one-vm-8373-disk-2 has lost quorum: refusing to mount without quorum"
    );
}

#[test]
fn sync_target_with_two_volumes_in_json() {
    let resources = parse_status_json(SYNC_TARGET_TWO_VOLUMES).unwrap();
    assert_eq!(
        render(&resources),
        "\
resource Secondary
  vol0 minor1000 Inconsistent client=false quorum=true
  vol1 minor1001 Inconsistent client=false quorum=true
  drbd-node1 node0 Connected Primary
    vol0 SyncTarget UpToDate client=false done=10.17 oos=1000
    vol1 SyncTarget UpToDate client=false done=74.08 oos=1000
  drbd-node2 node1 Connected Secondary
    vol0 Established Inconsistent client=false oos=1000
    vol1 Established Inconsistent client=false oos=1000
"
    );
    assert_eq!(
        mount_text(&mount_verdict(&resources[0], Promotion::Auto)),
        "Wait: DRBD resource volume 0 local disk Inconsistent: \
         waiting for the resync from peer drbd-node1 (10.17% done)"
    );
    // Had this node been Primary during the resync (DRBD allows it), health says so per volume.
    let mut primary = resources[0].clone();
    primary.role = clever_drbd::Role::Primary;
    assert_eq!(
        health_text(&replication_health(&primary)),
        "Degraded: DRBD resource volume 0 local disk Inconsistent; volume 1 local disk Inconsistent; \
         volume 0 resync from peer drbd-node1 10.17% done; volume 1 resync from peer drbd-node1 74.08% done; \
         volume 0 peer drbd-node2 disk Inconsistent; volume 1 peer drbd-node2 disk Inconsistent"
    );
}
