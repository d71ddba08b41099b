//! Whether this node may use a resource's data, and how well it is replicated while it does.
//!
//! Both answers are pure functions of the model so every rule is tested against recorded
//! states. Each verdict carries one line naming the resource and the state that decided it:
//! the agents put it in the OCF exit reason, which is what an admin sees in `crm_mon`.

use std::fmt;

use crate::model::{
    Connection, ConnectionState, Device, DiskState, PeerDevice, ReplicationState, Resource, Role,
};
use crate::proc_drbd::DRBD84_PEER_NAME;

/// How the node becomes Primary, which decides what a Secondary with good data means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// The agent runs `drbdadm primary` itself (DRBD 8.4, or `auto-promote no`): a Secondary
    /// is a promotion that has not settled yet.
    Explicit,
    /// DRBD 9 auto-promote: opening the device for writing promotes it, so a Secondary with
    /// UpToDate data and no Primary peer may simply be mounted.
    Auto,
}

/// The answer to "may this node mount and write the data now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountVerdict {
    /// Primary with UpToDate data.
    Allowed(String),
    /// Secondary with UpToDate data and no Primary peer: mounting will auto-promote.
    AllowedByAutoPromote(String),
    /// A transient state that settles by itself (promotion, attach, handshake, a resync onto
    /// this node): ask again until the action's deadline.
    Wait(String),
    /// Mounting now would serve stale, partial or foreign-owned data, or cannot work at all.
    Refuse(String),
}

impl MountVerdict {
    /// Whether the data may be mounted now.
    pub fn may_mount(&self) -> bool {
        matches!(self, Self::Allowed(_) | Self::AllowedByAutoPromote(_))
    }

    /// The one-line explanation for logs and the exit reason.
    pub fn reason(&self) -> &str {
        match self {
            Self::Allowed(r) | Self::AllowedByAutoPromote(r) | Self::Wait(r) | Self::Refuse(r) => r,
        }
    }
}

impl fmt::Display for MountVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Replication health of a resource this node has mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationHealth {
    /// Primary, local data UpToDate, and every diskful peer holds an UpToDate copy.
    Healthy(String),
    /// Still writable here, but a failure of this node now would lose or stall data.
    Degraded(String),
    /// This node is no longer Primary: the mounted filesystem lost its device.
    LostPrimary(String),
}

impl ReplicationHealth {
    /// The one-line explanation for logs and the exit reason.
    pub fn reason(&self) -> &str {
        match self {
            Self::Healthy(r) | Self::Degraded(r) | Self::LostPrimary(r) => r,
        }
    }
}

impl fmt::Display for ReplicationHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Decides whether this node may mount `resource` now.
///
/// Order of the rules: frozen I/O waits; lost quorum refuses; then each volume's local disk
/// (any refusal wins over any wait); then a Primary peer refuses; only then the local role.
///
/// A resync *onto* this node (Inconsistent, SyncTarget) waits rather than mounts, although
/// DRBD would allow a Primary SyncTarget by reading missing blocks from the peer: if the link
/// drops mid-resync, a filesystem on an Inconsistent disk gets I/O errors. The wait is bounded
/// by the start timeout, after which Pacemaker may place the resource on the UpToDate node.
/// Inconsistent without a running resync refuses: nothing will make it complete.
///
/// Auto-promote on a Secondary also needs to see that no peer is Primary: a peer that is not
/// connected could be one, so unless DRBD 9 confirms quorum, that waits for the peer.
pub fn mount_verdict(resource: &Resource, promotion: Promotion) -> MountVerdict {
    let name = &resource.name;
    if resource.devices.is_empty() {
        return MountVerdict::Refuse(format!(
            "DRBD {name} has no attached volume: nothing to mount"
        ));
    }
    if resource.suspended {
        return MountVerdict::Wait(format!(
            "DRBD {name} I/O is suspended: waiting for it to resume"
        ));
    }
    if resource.quorum() == Some(false) {
        return MountVerdict::Refuse(format!(
            "DRBD {name} has lost quorum: refusing to mount without quorum"
        ));
    }
    let mut wait = None;
    for device in &resource.devices {
        match disk_verdict(resource, device) {
            Some(refuse @ MountVerdict::Refuse(_)) => return refuse,
            Some(other) => {
                wait.get_or_insert(other);
            }
            None => {}
        }
    }
    if let Some(wait) = wait {
        return wait;
    }
    if let Some(peer) = resource.primary_peers().next() {
        return MountVerdict::Refuse(format!(
            "DRBD {name} {} is Primary: refusing to mount data another node is writing",
            peer_label(&peer.name)
        ));
    }
    match (resource.role, promotion) {
        (Role::Primary, _) => {
            MountVerdict::Allowed(format!("DRBD {name} is Primary with UpToDate data"))
        }
        (Role::Secondary, Promotion::Auto) => match unseen_peer(resource) {
            Some(peer) => MountVerdict::Wait(format!(
                "DRBD {name} {} is {} and quorum is not confirmed: \
                 waiting, a Primary there cannot be ruled out",
                peer_label(&peer.name),
                peer.state
            )),
            None => MountVerdict::AllowedByAutoPromote(format!(
                "DRBD {name} is Secondary with UpToDate data and no Primary peer: \
                 mounting will auto-promote it"
            )),
        },
        (Role::Secondary, Promotion::Explicit) => MountVerdict::Wait(format!(
            "DRBD {name} is still Secondary: waiting for the promotion to settle"
        )),
        (Role::Unknown, _) => MountVerdict::Wait(format!(
            "DRBD {name} role is Unknown: waiting for the state to settle"
        )),
    }
}

/// The verdict one volume's local disk forces, if any.
fn disk_verdict(resource: &Resource, device: &Device) -> Option<MountVerdict> {
    let disk = device.disk;
    let what = format!(
        "DRBD {} local disk {disk}",
        volume_label(resource, device.volume)
    );
    let refuse = |why: &str| Some(MountVerdict::Refuse(format!("{what}: {why}")));
    let wait = |why: &str| Some(MountVerdict::Wait(format!("{what}: {why}")));
    match disk {
        DiskState::UpToDate => None,
        DiskState::Outdated => refuse("refusing to mount stale data"),
        DiskState::Inconsistent => match resync_onto(resource, device.volume) {
            Some((peer, p)) => {
                let paused = if p.replication == ReplicationState::PausedSyncT {
                    ", paused"
                } else {
                    ""
                };
                wait(&format!(
                    "waiting for the resync from {} ({}{paused})",
                    peer_label(peer),
                    done_text(p)
                ))
            }
            None => refuse("refusing to mount incomplete data (no resync is running)"),
        },
        DiskState::Diskless => refuse("refusing to mount without a local copy of the data"),
        DiskState::Failed => refuse("refusing to mount a disk that failed with I/O errors"),
        DiskState::Detaching => refuse("refusing to mount a disk that is being detached"),
        DiskState::DUnknown => refuse("refusing to mount data of unknown state"),
        DiskState::Attaching | DiskState::Negotiating => {
            wait("waiting for the disk to finish attaching")
        }
        DiskState::Consistent => wait("waiting for the peers to confirm it is UpToDate"),
    }
}

/// A peer whose role we cannot see, when quorum does not vouch for us either: auto-promoting
/// past it could make a second Primary (split brain), which quorum exists to prevent.
fn unseen_peer(resource: &Resource) -> Option<&Connection> {
    if resource.quorum() == Some(true) {
        return None;
    }
    resource
        .connections
        .iter()
        .find(|c| c.state != ConnectionState::Connected)
}

/// The connected peer (and its volume) this node is resyncing from.
fn resync_onto(resource: &Resource, volume: u32) -> Option<(&str, &PeerDevice)> {
    resource
        .connections
        .iter()
        .filter(|c| c.state == ConnectionState::Connected)
        .find_map(|c| {
            c.peer_devices
                .iter()
                .find(|p| p.volume == volume && p.replication.is_resync_target())
                .map(|p| (c.name.as_str(), p))
        })
}

/// Judges replication of a resource this node has mounted (and so should be Primary).
///
/// A peer that is an intentional diskless client is not a replica and never degrades health;
/// but with no diskful peer holding an UpToDate copy, the data lives on this node alone.
pub fn replication_health(resource: &Resource) -> ReplicationHealth {
    let name = &resource.name;
    if resource.role != Role::Primary {
        return ReplicationHealth::LostPrimary(format!(
            "DRBD {name} is {}, no longer Primary: the mounted filesystem lost its writable device",
            resource.role
        ));
    }
    let mut problems = Vec::new();
    if resource.suspended {
        problems.push("I/O is suspended".to_owned());
    }
    if resource.quorum() == Some(false) {
        problems.push("lost quorum: writes will block or fail".to_owned());
    }
    for device in &resource.devices {
        if device.disk != DiskState::UpToDate {
            let volume = volume_prefix(resource, device.volume);
            problems.push(format!("{volume}local disk {}", device.disk));
        }
    }
    let mut replicas = Vec::new();
    let mut peer_problem = false;
    for connection in &resource.connections {
        let peer = peer_label(&connection.name);
        match connection.state {
            ConnectionState::Connected => {}
            ConnectionState::StandAlone => {
                peer_problem = true;
                problems.push(format!(
                    "{peer} StandAlone: replication stopped, possible split-brain \
                     (recover: on the victim stop what uses {name}, then `drbdadm secondary \
                     {name}` and `drbdadm connect --discard-my-data {name}`, which DRBD refuses \
                     on a Primary; then `drbdadm connect {name}` on the survivor)"
                ));
                continue;
            }
            other => {
                peer_problem = true;
                problems.push(format!(
                    "{peer} disconnected ({other}): data not replicated"
                ));
                continue;
            }
        }
        for p in &connection.peer_devices {
            let volume = volume_prefix(resource, p.volume);
            if let Some(problem) = peer_device_problem(&peer, &volume, p) {
                peer_problem = true;
                problems.push(problem);
            } else if p.peer_disk == DiskState::UpToDate && !replicas.contains(&peer) {
                replicas.push(peer.clone());
            }
        }
    }
    if !peer_problem && replicas.is_empty() {
        problems.push(if resource.connections.is_empty() {
            "no peer connection: data is not replicated".to_owned()
        } else {
            "no peer holds an UpToDate copy: data is not replicated".to_owned()
        });
    }
    if problems.is_empty() {
        ReplicationHealth::Healthy(format!(
            "DRBD {name} is Primary and UpToDate, replicated to {}",
            replicas.join(", ")
        ))
    } else {
        ReplicationHealth::Degraded(format!("DRBD {name} {}", problems.join("; ")))
    }
}

/// What is wrong with one connected peer volume, if anything.
fn peer_device_problem(peer: &str, volume: &str, p: &PeerDevice) -> Option<String> {
    use ReplicationState as R;
    let paused = matches!(p.replication, R::PausedSyncS | R::PausedSyncT);
    let paused = if paused { " (paused)" } else { "" };
    if p.replication.is_resync_source() {
        return Some(format!("{volume}resync to {peer}{paused} {}", done_text(p)));
    }
    if p.replication.is_resync_target() {
        return Some(format!(
            "{volume}resync from {peer}{paused} {}",
            done_text(p)
        ));
    }
    match p.replication {
        R::Off => return Some(format!("{volume}replication to {peer} is Off")),
        R::Ahead | R::Behind => {
            return Some(format!(
                "{volume}{peer} replication {}: the peer is lagging behind (congestion)",
                p.replication
            ))
        }
        _ => {}
    }
    match p.peer_disk {
        DiskState::UpToDate => None,
        DiskState::Diskless if p.peer_client == Some(true) => None,
        disk => Some(format!("{volume}{peer} disk {disk}")),
    }
}

/// `peer m14c6`, or just `peer` for DRBD 8.4, whose one connection is named "peer".
fn peer_label(name: &str) -> String {
    if name == DRBD84_PEER_NAME {
        name.to_owned()
    } else {
        format!("peer {name}")
    }
}

fn done_text(p: &PeerDevice) -> String {
    match p.resync_done_percent {
        Some(done) => format!("{done:.2}% done"),
        None => "in progress".to_owned(),
    }
}

/// `r0` for a single-volume resource, `r0 volume 1` otherwise: admins think in resources.
fn volume_label(resource: &Resource, volume: u32) -> String {
    if resource.devices.len() > 1 {
        format!("{} volume {volume}", resource.name)
    } else {
        resource.name.clone()
    }
}

fn volume_prefix(resource: &Resource, volume: u32) -> String {
    if resource.devices.len() > 1 {
        format!("volume {volume} ")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(role: Role, disk: DiskState) -> Resource {
        Resource {
            name: "r0".into(),
            role,
            suspended: false,
            devices: vec![Device {
                volume: 0,
                minor: Some(0),
                disk,
                client: None,
                quorum: None,
            }],
            connections: vec![Connection {
                peer_node_id: Some(1),
                name: "beta".into(),
                state: ConnectionState::Connected,
                peer_role: Role::Secondary,
                peer_devices: vec![PeerDevice {
                    volume: 0,
                    replication: ReplicationState::Established,
                    peer_disk: DiskState::UpToDate,
                    peer_client: None,
                    resync_done_percent: None,
                    out_of_sync_kib: None,
                }],
            }],
        }
    }

    #[test]
    fn every_local_disk_state_has_a_verdict() {
        for disk in DiskState::ALL {
            let verdict = mount_verdict(&resource(Role::Primary, *disk), Promotion::Explicit);
            let expected_mount = *disk == DiskState::UpToDate;
            assert_eq!(verdict.may_mount(), expected_mount, "{disk}: {verdict}");
            assert!(verdict.reason().starts_with("DRBD r0 "), "{verdict}");
            if *disk != DiskState::UpToDate {
                assert!(verdict.reason().contains(disk.as_str()), "{verdict}");
            }
        }
    }

    #[test]
    fn transient_disk_states_wait() {
        for disk in [
            DiskState::Attaching,
            DiskState::Negotiating,
            DiskState::Consistent,
        ] {
            let verdict = mount_verdict(&resource(Role::Primary, disk), Promotion::Explicit);
            assert!(matches!(verdict, MountVerdict::Wait(_)), "{verdict:?}");
        }
    }

    #[test]
    fn suspended_waits_and_unknown_role_waits() {
        let mut r = resource(Role::Primary, DiskState::UpToDate);
        r.suspended = true;
        assert_eq!(
            mount_verdict(&r, Promotion::Auto),
            MountVerdict::Wait("DRBD r0 I/O is suspended: waiting for it to resume".into())
        );
        let r = resource(Role::Unknown, DiskState::UpToDate);
        assert_eq!(
            mount_verdict(&r, Promotion::Auto),
            MountVerdict::Wait("DRBD r0 role is Unknown: waiting for the state to settle".into())
        );
    }

    #[test]
    fn auto_promote_past_a_disconnected_peer_needs_quorum() {
        let mut r = resource(Role::Secondary, DiskState::UpToDate);
        r.connections[0].state = ConnectionState::Connecting;
        r.connections[0].peer_role = Role::Unknown;
        assert_eq!(
            mount_verdict(&r, Promotion::Auto),
            MountVerdict::Wait(
                "DRBD r0 peer beta is Connecting and quorum is not confirmed: \
                 waiting, a Primary there cannot be ruled out"
                    .into()
            )
        );
        r.devices[0].quorum = Some(true);
        assert!(matches!(
            mount_verdict(&r, Promotion::Auto),
            MountVerdict::AllowedByAutoPromote(_)
        ));
    }

    #[test]
    fn a_connected_primary_peer_refuses_even_a_primary() {
        let mut r = resource(Role::Primary, DiskState::UpToDate);
        r.connections[0].peer_role = Role::Primary;
        assert_eq!(
            mount_verdict(&r, Promotion::Explicit),
            MountVerdict::Refuse(
                "DRBD r0 peer beta is Primary: refusing to mount data another node is writing"
                    .into()
            )
        );
    }

    #[test]
    fn explicit_promotion_waits_for_secondary() {
        let r = resource(Role::Secondary, DiskState::UpToDate);
        assert_eq!(
            mount_verdict(&r, Promotion::Explicit),
            MountVerdict::Wait(
                "DRBD r0 is still Secondary: waiting for the promotion to settle".into()
            )
        );
    }

    #[test]
    fn health_flags_each_peer_problem() {
        let mut r = resource(Role::Primary, DiskState::UpToDate);
        assert_eq!(
            replication_health(&r),
            ReplicationHealth::Healthy(
                "DRBD r0 is Primary and UpToDate, replicated to peer beta".into()
            )
        );
        let cases = [
            (
                ReplicationState::Off,
                DiskState::DUnknown,
                "DRBD r0 replication to peer beta is Off",
            ),
            (
                ReplicationState::Behind,
                DiskState::Outdated,
                "DRBD r0 peer beta replication Behind: the peer is lagging behind (congestion)",
            ),
            (
                ReplicationState::Established,
                DiskState::Outdated,
                "DRBD r0 peer beta disk Outdated",
            ),
            (
                ReplicationState::PausedSyncS,
                DiskState::Inconsistent,
                "DRBD r0 resync to peer beta (paused) in progress",
            ),
            (
                ReplicationState::Established,
                DiskState::Diskless,
                "DRBD r0 peer beta disk Diskless",
            ),
        ];
        for (replication, peer_disk, expected) in cases {
            let peer = &mut r.connections[0].peer_devices[0];
            peer.replication = replication;
            peer.peer_disk = peer_disk;
            assert_eq!(
                replication_health(&r),
                ReplicationHealth::Degraded(expected.into())
            );
        }
        // An intentional diskless client is not a replica: alone it leaves the data unreplicated.
        let peer = &mut r.connections[0].peer_devices[0];
        peer.replication = ReplicationState::Established;
        peer.peer_client = Some(true);
        assert_eq!(
            replication_health(&r),
            ReplicationHealth::Degraded(
                "DRBD r0 no peer holds an UpToDate copy: data is not replicated".into()
            )
        );
        r.connections.clear();
        assert_eq!(
            replication_health(&r),
            ReplicationHealth::Degraded(
                "DRBD r0 no peer connection: data is not replicated".into()
            )
        );
    }

    #[test]
    fn verify_is_healthy() {
        let mut r = resource(Role::Primary, DiskState::UpToDate);
        r.connections[0].peer_devices[0].replication = ReplicationState::VerifyS;
        assert!(matches!(
            replication_health(&r),
            ReplicationHealth::Healthy(_)
        ));
    }
}
