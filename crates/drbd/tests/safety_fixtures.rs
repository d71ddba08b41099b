//! The safety rules over every fixture: mount verdicts under both promotion modes and the
//! health verdict, each with its exact reason text (what an admin reads in crm_mon).

use clever_drbd::{mount_verdict, replication_health, Promotion};

use crate::support::{fixture, health_text, kind_of, mount_text, parse};

/// (fixture, resource, mount with auto-promote, mount with explicit promotion, health).
const VERDICTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "drbd-status-text-secondary-connected-linbit-ug84.txt",
        "home",
        "AllowedByAutoPromote: DRBD home is Secondary with UpToDate data and no Primary peer: mounting will auto-promote it",
        "Wait: DRBD home is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD home is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd-status-verbose-statistics-secondary-linbit-ug84.txt",
        "home",
        "AllowedByAutoPromote: DRBD home is Secondary with UpToDate data and no Primary peer: mounting will auto-promote it",
        "Wait: DRBD home is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD home is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd84-kernel-drbdadm9-status-primary.txt",
        "r0",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Healthy: DRBD r0 is Primary and UpToDate, replicated to peer",
    ),
    (
        "drbd84-kernel-drbdadm9-status-secondary.txt",
        "r0",
        "AllowedByAutoPromote: DRBD r0 is Secondary with UpToDate data and no Primary peer: mounting will auto-promote it",
        "Wait: DRBD r0 is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-events2-drbdutils-test-quorum-lost.txt",
        "some-resource",
        "Refuse: DRBD some-resource has lost quorum: refusing to mount without quorum",
        "Refuse: DRBD some-resource has lost quorum: refusing to mount without quorum",
        "LostPrimary: DRBD some-resource is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-events2-drbdutils-test-sync-statistics.txt",
        "some-resource",
        "AllowedByAutoPromote: DRBD some-resource is Secondary with UpToDate data and no Primary peer: mounting will auto-promote it",
        "Wait: DRBD some-resource is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD some-resource is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-events2-now-statistics-secondary-3node.txt",
        "drbd1",
        "Refuse: DRBD drbd1 peer central-2004 is Primary: refusing to mount data another node is writing",
        "Refuse: DRBD drbd1 peer central-2004 is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD drbd1 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-events2-timestamps-statistics-lines-drbdtop-SUBSET.txt",
        "pvc-0a2826c9-7108-11e9-8f74-0026b954ca4c",
        "AllowedByAutoPromote: DRBD pvc-0a2826c9-7108-11e9-8f74-0026b954ca4c is Secondary with UpToDate data and no Primary peer: mounting will auto-promote it",
        "Wait: DRBD pvc-0a2826c9-7108-11e9-8f74-0026b954ca4c is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD pvc-0a2826c9-7108-11e9-8f74-0026b954ca4c is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-json-primary-connected-2node.json",
        "beijing",
        "Allowed: DRBD beijing is Primary with UpToDate data",
        "Allowed: DRBD beijing is Primary with UpToDate data",
        "Healthy: DRBD beijing is Primary and UpToDate, replicated to peer salt-node3",
    ),
    (
        "drbd9-status-json-secondary-connected-2node.json",
        "shanghai",
        "AllowedByAutoPromote: DRBD shanghai is Secondary with UpToDate data and no Primary peer: mounting will auto-promote it",
        "Wait: DRBD shanghai is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD shanghai is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-json-syncsource-start-nan-INVALID.json",
        "shanghai",
        "Allowed: DRBD shanghai is Primary with UpToDate data",
        "Allowed: DRBD shanghai is Primary with UpToDate data",
        "Degraded: DRBD shanghai resync to peer SLE12-sp4-node2 0.00% done",
    ),
    (
        "drbd9-status-text-diskless-primary-peer-consistent.txt",
        "one-vm-6967-disk-0",
        "Refuse: DRBD one-vm-6967-disk-0 local disk Diskless: refusing to mount without a local copy of the data",
        "Refuse: DRBD one-vm-6967-disk-0 local disk Diskless: refusing to mount without a local copy of the data",
        "Degraded: DRBD one-vm-6967-disk-0 local disk Diskless; peer m13c15 disk Consistent",
    ),
    (
        "drbd9-status-text-diskless-primary-peer-unconnected.txt",
        "one-vm-8760-disk-0",
        "Refuse: DRBD one-vm-8760-disk-0 local disk Diskless: refusing to mount without a local copy of the data",
        "Refuse: DRBD one-vm-8760-disk-0 local disk Diskless: refusing to mount without a local copy of the data",
        "Degraded: DRBD one-vm-8760-disk-0 local disk Diskless; peer m13c18 disconnected (Unconnected): data not replicated",
    ),
    (
        "drbd9-status-text-diskless-quorum-lost-all-peers-connecting.txt",
        "one-vm-7792-disk-0",
        "Refuse: DRBD one-vm-7792-disk-0 has lost quorum: refusing to mount without quorum",
        "Refuse: DRBD one-vm-7792-disk-0 has lost quorum: refusing to mount without quorum",
        "LostPrimary: DRBD one-vm-7792-disk-0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-inconsistent-quorum-lost-peer-connecting.txt",
        "one-vm-7584-disk-0",
        "Refuse: DRBD one-vm-7584-disk-0 has lost quorum: refusing to mount without quorum",
        "Refuse: DRBD one-vm-7584-disk-0 has lost quorum: refusing to mount without quorum",
        "LostPrimary: DRBD one-vm-7584-disk-0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-outdated-peer-connecting.txt",
        "one-vm-7577-disk-2",
        "Refuse: DRBD one-vm-7577-disk-2 local disk Outdated: refusing to mount stale data",
        "Refuse: DRBD one-vm-7577-disk-2 local disk Outdated: refusing to mount stale data",
        "LostPrimary: DRBD one-vm-7577-disk-2 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-outdated-peer-unconnected.txt",
        "one-vm-8760-disk-0",
        "Refuse: DRBD one-vm-8760-disk-0 local disk Outdated: refusing to mount stale data",
        "Refuse: DRBD one-vm-8760-disk-0 local disk Outdated: refusing to mount stale data",
        "LostPrimary: DRBD one-vm-8760-disk-0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-outdated-quorum-lost-peer-connecting.txt",
        "one-vm-8373-disk-2",
        "Refuse: DRBD one-vm-8373-disk-2 has lost quorum: refusing to mount without quorum",
        "Refuse: DRBD one-vm-8373-disk-2 has lost quorum: refusing to mount without quorum",
        "LostPrimary: DRBD one-vm-8373-disk-2 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-outdated-quorum-lost-peer-standalone.txt",
        "one-vm-8536-disk-0",
        "Refuse: DRBD one-vm-8536-disk-0 has lost quorum: refusing to mount without quorum",
        "Refuse: DRBD one-vm-8536-disk-0 has lost quorum: refusing to mount without quorum",
        "LostPrimary: DRBD one-vm-8536-disk-0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-primary-3node-2volumes-uptodate.txt",
        "beijing",
        "Allowed: DRBD beijing is Primary with UpToDate data",
        "Allowed: DRBD beijing is Primary with UpToDate data",
        "Healthy: DRBD beijing is Primary and UpToDate, replicated to peer node2, peer node3",
    ),
    (
        "drbd9-status-text-primary-3node-uptodate.txt",
        "pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71",
        "Allowed: DRBD pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71 is Primary with UpToDate data",
        "Allowed: DRBD pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71 is Primary with UpToDate data",
        "Healthy: DRBD pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71 is Primary and UpToDate, replicated to peer kube-node-1, peer kube-node-6",
    ),
    (
        "drbd9-status-text-primary-syncsource-done.txt",
        "single",
        "Allowed: DRBD single is Primary with UpToDate data",
        "Allowed: DRBD single is Primary with UpToDate data",
        "Degraded: DRBD single resync to peer opensuse-node2 96.47% done",
    ),
    (
        "drbd9-status-text-secondary-3node-peer-primary.txt",
        "pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71",
        "Refuse: DRBD pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71 peer kube-node-2 is Primary: refusing to mount data another node is writing",
        "Refuse: DRBD pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71 peer kube-node-2 is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-secondary-3peers-one-connecting-linbit-ug9.txt",
        "home",
        "Wait: DRBD home peer nono is Connecting and quorum is not confirmed: waiting, a Primary there cannot be ruled out",
        "Wait: DRBD home is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD home is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-secondary-synctarget-2volumes-2peers.txt",
        "resource",
        "Wait: DRBD resource volume 0 local disk Inconsistent: waiting for the resync from peer drbd-node1 (10.17% done)",
        "Wait: DRBD resource volume 0 local disk Inconsistent: waiting for the resync from peer drbd-node1 (10.17% done)",
        "LostPrimary: DRBD resource is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-secondary-uptodate-4node-mixed-peers.txt",
        "one-vm-8586-disk-0",
        "Refuse: DRBD one-vm-8586-disk-0 peer m13c34 is Primary: refusing to mount data another node is writing",
        "Refuse: DRBD one-vm-8586-disk-0 peer m13c34 is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD one-vm-8586-disk-0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-secondary-uptodate-diskless-primary-peer.txt",
        "one-vm-8373-disk-2",
        "Refuse: DRBD one-vm-8373-disk-2 peer m11c12 is Primary: refusing to mount data another node is writing",
        "Refuse: DRBD one-vm-8373-disk-2 peer m11c12 is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD one-vm-8373-disk-2 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-splitbrain-victim-outdated-standalone.txt",
        "one-vm-8373-disk-2",
        "Refuse: DRBD one-vm-8373-disk-2 has lost quorum: refusing to mount without quorum",
        "Refuse: DRBD one-vm-8373-disk-2 has lost quorum: refusing to mount without quorum",
        "LostPrimary: DRBD one-vm-8373-disk-2 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-syncsource-congested-stats.txt",
        "one-vm-8373-disk-2",
        "Refuse: DRBD one-vm-8373-disk-2 peer m11c12 is Primary: refusing to mount data another node is writing",
        "Refuse: DRBD one-vm-8373-disk-2 peer m11c12 is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD one-vm-8373-disk-2 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-text-synctarget-done.txt",
        "one-vm-6372-disk-0",
        "Wait: DRBD one-vm-6372-disk-0 local disk Inconsistent: waiting for the resync from peer m10c17 (51.52% done)",
        "Wait: DRBD one-vm-6372-disk-0 local disk Inconsistent: waiting for the resync from peer m10c17 (51.52% done)",
        "LostPrimary: DRBD one-vm-6372-disk-0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-verbose-primary-diskless-client-peer-unconnected.txt",
        "one-vm-10154-disk-0",
        "Refuse: DRBD one-vm-10154-disk-0 local disk Diskless: refusing to mount without a local copy of the data",
        "Refuse: DRBD one-vm-10154-disk-0 local disk Diskless: refusing to mount without a local copy of the data",
        "Degraded: DRBD one-vm-10154-disk-0 local disk Diskless; peer m8c11 disconnected (Unconnected): data not replicated",
    ),
    (
        "drbd9-status-verbose-secondary-outdated-peer-unconnected.txt",
        "one-vm-10154-disk-0",
        "Refuse: DRBD one-vm-10154-disk-0 local disk Outdated: refusing to mount stale data",
        "Refuse: DRBD one-vm-10154-disk-0 local disk Outdated: refusing to mount stale data",
        "LostPrimary: DRBD one-vm-10154-disk-0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "drbd9-status-verbose-secondary-uptodate-peer-outdated-peer-diskless-client.txt",
        "one-vm-8760-disk-0",
        "Refuse: DRBD one-vm-8760-disk-0 peer m8c9 is Primary: refusing to mount data another node is writing",
        "Refuse: DRBD one-vm-8760-disk-0 peer m8c9 is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD one-vm-8760-disk-0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "proc-drbd-83-synctarget-want.txt",
        "r0",
        "Wait: DRBD r0 local disk Inconsistent: waiting for the resync from peer (44.40% done)",
        "Wait: DRBD r0 local disk Inconsistent: waiting for the resync from peer (44.40% done)",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "proc-drbd-84-3minors-connected-linbit-ug84.txt",
        "r0",
        "AllowedByAutoPromote: DRBD r0 is Secondary with UpToDate data and no Primary peer: mounting will auto-promote it",
        "Wait: DRBD r0 is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "proc-drbd-84-connected-primary-secondary-uptodate.txt",
        "r1",
        "Allowed: DRBD r1 is Primary with UpToDate data",
        "Allowed: DRBD r1 is Primary with UpToDate data",
        "Healthy: DRBD r1 is Primary and UpToDate, replicated to peer",
    ),
    (
        "proc-drbd-84-connected-secondary-secondary-inconsistent.txt",
        "r1",
        "Refuse: DRBD r1 local disk Inconsistent: refusing to mount incomplete data (no resync is running)",
        "Refuse: DRBD r1 local disk Inconsistent: refusing to mount incomplete data (no resync is running)",
        "LostPrimary: DRBD r1 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "proc-drbd-84-multi-connected-wfconnection-diskless-standalone.txt",
        "r0",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Healthy: DRBD r0 is Primary and UpToDate, replicated to peer",
    ),
    (
        "proc-drbd-84-multi-connected-wfconnection-diskless-standalone.txt",
        "r1",
        "Refuse: DRBD r1 peer is Primary: refusing to mount data another node is writing",
        "Refuse: DRBD r1 peer is Primary: refusing to mount data another node is writing",
        "LostPrimary: DRBD r1 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "proc-drbd-84-multi-connected-wfconnection-diskless-standalone.txt",
        "r4",
        "Allowed: DRBD r4 is Primary with UpToDate data",
        "Allowed: DRBD r4 is Primary with UpToDate data",
        "Degraded: DRBD r4 peer disconnected (Connecting): data not replicated",
    ),
    (
        "proc-drbd-84-multi-connected-wfconnection-diskless-standalone.txt",
        "r6",
        "Refuse: DRBD r6 local disk Diskless: refusing to mount without a local copy of the data",
        "Refuse: DRBD r6 local disk Diskless: refusing to mount without a local copy of the data",
        "LostPrimary: DRBD r6 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "proc-drbd-84-multi-connected-wfconnection-diskless-standalone.txt",
        "r8",
        "Wait: DRBD r8 peer is StandAlone and quorum is not confirmed: waiting, a Primary there cannot be ruled out",
        "Wait: DRBD r8 is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD r8 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "proc-drbd-84-splitbrain-standalone-secondary-node1.txt",
        "r0",
        "Wait: DRBD r0 peer is StandAlone and quorum is not confirmed: waiting, a Primary there cannot be ruled out",
        "Wait: DRBD r0 is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD r0 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "proc-drbd-84-standalone-primary-peer-inconsistent-trinity.txt",
        "r1",
        "Allowed: DRBD r1 is Primary with UpToDate data",
        "Allowed: DRBD r1 is Primary with UpToDate data",
        "Degraded: DRBD r1 peer StandAlone: replication stopped, possible split-brain (recover: on the victim stop what uses r1, then `drbdadm secondary r1` and `drbdadm connect --discard-my-data r1`, which DRBD refuses on a Primary; then `drbdadm connect r1` on the survivor)",
    ),
    (
        "proc-drbd-84-syncsource-primary-progress.txt",
        "r1",
        "Allowed: DRBD r1 is Primary with UpToDate data",
        "Allowed: DRBD r1 is Primary with UpToDate data",
        "Degraded: DRBD r1 resync to peer 8.60% done",
    ),
    (
        "proc-drbd-84-syncsource-standalone-unconfigured.txt",
        "r0",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Allowed: DRBD r0 is Primary with UpToDate data",
        "Degraded: DRBD r0 peer StandAlone: replication stopped, possible split-brain (recover: on the victim stop what uses r0, then `drbdadm secondary r0` and `drbdadm connect --discard-my-data r0`, which DRBD refuses on a Primary; then `drbdadm connect r0` on the survivor)",
    ),
    (
        "proc-drbd-84-syncsource-standalone-unconfigured.txt",
        "r5",
        "AllowedByAutoPromote: DRBD r5 is Secondary with UpToDate data and no Primary peer: mounting will auto-promote it",
        "Wait: DRBD r5 is still Secondary: waiting for the promotion to settle",
        "LostPrimary: DRBD r5 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "proc-drbd-84-wfconnection-secondary-inconsistent-trinity.txt",
        "r1",
        "Refuse: DRBD r1 local disk Inconsistent: refusing to mount incomplete data (no resync is running)",
        "Refuse: DRBD r1 local disk Inconsistent: refusing to mount incomplete data (no resync is running)",
        "LostPrimary: DRBD r1 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
    (
        "proc-drbd-84-wfconnection-secondary-inconsistent.txt",
        "r1",
        "Refuse: DRBD r1 local disk Inconsistent: refusing to mount incomplete data (no resync is running)",
        "Refuse: DRBD r1 local disk Inconsistent: refusing to mount incomplete data (no resync is running)",
        "LostPrimary: DRBD r1 is Secondary, no longer Primary: the mounted filesystem lost its writable device",
    ),
];

#[test]
fn every_fixture_gets_its_exact_verdicts() {
    let mut judged = 0;
    for (name, resource, auto, explicit, health) in VERDICTS {
        let resources = parse(kind_of(name), &fixture(name)).unwrap();
        let r = resources
            .iter()
            .find(|r| r.name == *resource)
            .unwrap_or_else(|| panic!("{name}: no resource {resource}"));
        assert_eq!(
            mount_text(&mount_verdict(r, Promotion::Auto)),
            *auto,
            "{name}"
        );
        assert_eq!(
            mount_text(&mount_verdict(r, Promotion::Explicit)),
            *explicit,
            "{name}"
        );
        assert_eq!(health_text(&replication_health(r)), *health, "{name}");
        judged += 1;
    }
    // Every resource of every fixture is in the table.
    let total: usize = crate::parse_fixtures::EXPECTED
        .iter()
        .map(|(name, _)| parse(kind_of(name), &fixture(name)).unwrap().len())
        .sum();
    assert_eq!(judged, total);
}
