//! The states the agents must recognise, each pinned with typed assertions on the fixture that
//! shows it (the exact whole-model parse is in `parse_fixtures`; this names what matters).

use clever_drbd::{
    mount_verdict, replication_health, ConnectionState as C, DiskState as D, MountVerdict,
    Promotion, ReplicationHealth, ReplicationState as R, Resource, Role,
};

use crate::support::{fixture, kind_of, parse};

fn one(name: &str) -> Resource {
    let mut resources = parse(kind_of(name), &fixture(name)).unwrap();
    assert_eq!(resources.len(), 1, "{name}");
    resources.remove(0)
}

#[test]
fn primary_uptodate_connected() {
    let r = one("drbd9-status-json-primary-connected-2node.json");
    assert_eq!(
        (r.role, r.devices[0].disk, r.quorum()),
        (Role::Primary, D::UpToDate, Some(true))
    );
    let c = &r.connections[0];
    assert_eq!((c.state, c.peer_role), (C::Connected, Role::Secondary));
    assert_eq!(
        (c.peer_devices[0].replication, c.peer_devices[0].peer_disk),
        (R::Established, D::UpToDate)
    );
    assert!(matches!(
        mount_verdict(&r, Promotion::Auto),
        MountVerdict::Allowed(_)
    ));
    assert!(matches!(
        replication_health(&r),
        ReplicationHealth::Healthy(_)
    ));
}

#[test]
fn secondary() {
    let r = one("drbd9-status-json-secondary-connected-2node.json");
    assert_eq!((r.role, r.devices[0].disk), (Role::Secondary, D::UpToDate));
    assert!(matches!(
        mount_verdict(&r, Promotion::Auto),
        MountVerdict::AllowedByAutoPromote(_)
    ));
    assert!(matches!(
        replication_health(&r),
        ReplicationHealth::LostPrimary(_)
    ));
}

#[test]
fn outdated_and_inconsistent_and_diskless_refuse() {
    for (name, disk) in [
        (
            "drbd9-status-text-outdated-peer-unconnected.txt",
            D::Outdated,
        ),
        (
            "proc-drbd-84-wfconnection-secondary-inconsistent.txt",
            D::Inconsistent,
        ),
        (
            "drbd9-status-text-diskless-primary-peer-unconnected.txt",
            D::Diskless,
        ),
    ] {
        let r = one(name);
        assert_eq!(r.devices[0].disk, disk, "{name}");
        assert!(
            matches!(mount_verdict(&r, Promotion::Auto), MountVerdict::Refuse(_)),
            "{name}"
        );
    }
}

#[test]
fn standalone_and_split_brain() {
    let r = one("drbd9-status-text-splitbrain-victim-outdated-standalone.txt");
    assert_eq!(r.connections[1].state, C::StandAlone);
    assert_eq!(r.quorum(), Some(false));
    let r = one("proc-drbd-84-standalone-primary-peer-inconsistent-trinity.txt");
    assert_eq!(
        (r.role, r.connections[0].state),
        (Role::Primary, C::StandAlone)
    );
    let ReplicationHealth::Degraded(reason) = replication_health(&r) else {
        panic!("StandAlone Primary must be degraded");
    };
    assert!(reason.contains("possible split-brain"), "{reason}");
    assert!(
        reason.contains("drbdadm connect --discard-my-data r1"),
        "{reason}"
    );
}

#[test]
fn resync_in_progress_with_percent() {
    let r = one("drbd9-status-text-primary-syncsource-done.txt");
    let p = &r.connections[0].peer_devices[0];
    assert_eq!(
        (p.replication, p.peer_disk, p.resync_done_percent),
        (R::SyncSource, D::Inconsistent, Some(96.47))
    );
    let r = one("proc-drbd-84-syncsource-primary-progress.txt");
    assert_eq!(
        r.connections[0].peer_devices[0].resync_done_percent,
        Some(8.6)
    );
    let r = one("drbd9-events2-drbdutils-test-sync-statistics.txt");
    assert_eq!(
        r.connections[0].peer_devices[0].resync_done_percent,
        Some(37.5)
    );
    let r = one("drbd9-status-text-synctarget-done.txt");
    assert_eq!(r.connections[0].peer_devices[0].replication, R::SyncTarget);
    assert!(matches!(
        mount_verdict(&r, Promotion::Auto),
        MountVerdict::Wait(_)
    ));
}

#[test]
fn peer_primary_refuses() {
    let r = one("drbd9-status-text-secondary-3node-peer-primary.txt");
    assert_eq!(r.connections[1].peer_role, Role::Primary);
    assert_eq!(r.primary_peers().count(), 1);
    assert!(matches!(
        mount_verdict(&r, Promotion::Auto),
        MountVerdict::Refuse(_)
    ));
}

#[test]
fn quorum_lost() {
    for name in [
        "drbd9-events2-drbdutils-test-quorum-lost.txt",
        "drbd9-status-text-outdated-quorum-lost-peer-standalone.txt",
        "drbd9-status-text-diskless-quorum-lost-all-peers-connecting.txt",
    ] {
        let r = one(name);
        assert_eq!(r.quorum(), Some(false), "{name}");
        assert_eq!(
            mount_verdict(&r, Promotion::Auto),
            MountVerdict::Refuse(format!(
                "DRBD {} has lost quorum: refusing to mount without quorum",
                r.name
            ))
        );
    }
}

#[test]
fn multi_volume_and_three_or_four_nodes() {
    let r = one("drbd9-status-text-primary-3node-2volumes-uptodate.txt");
    assert_eq!(r.devices.len(), 2);
    assert_eq!(r.connections.len(), 2);
    assert!(r.connections.iter().all(|c| c.peer_devices.len() == 2));
    let r = one("drbd9-status-text-secondary-uptodate-4node-mixed-peers.txt");
    assert_eq!(r.connections.len(), 3);
    let r = one("drbd9-status-text-primary-3node-uptodate.txt");
    assert_eq!(
        replication_health(&r),
        ReplicationHealth::Healthy(
            "DRBD pvc-1ed58414-0a3d-415d-8b20-80d4fae9cf71 is Primary and UpToDate, replicated to peer kube-node-1, peer kube-node-6".into()
        )
    );
}
