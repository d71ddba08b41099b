//! One typed picture of a DRBD resource, whichever tool it was read from.
//!
//! The four sources (`status --json`, `status` text, `events2`, `/proc/drbd`) print the same
//! kernel state with different names and different gaps; the parsers fill this model so the
//! safety rules are written once. Fields a source cannot tell are `None`, never guessed.

/// A state name DRBD does not have: a newer DRBD, or not DRBD output at all. Either way the
/// state is unknown to us, and guessing it could mount stale data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownStateError {
    /// Which state was being read ("disk state", "role", ...).
    pub kind: &'static str,
    /// The value found, shortened to a readable length.
    pub value: String,
}

impl UnknownStateError {
    pub(crate) fn new(kind: &'static str, value: &str) -> Self {
        Self {
            kind,
            value: clever_command::shorten(value, clever_command::SHOWN_VALUE_LEN),
        }
    }
}

/// Declares a state enum whose names are DRBD's own spelling (from `drbd_strings.c`), so
/// `FromStr` and `Display` cannot drift from each other.
macro_rules! drbd_state {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($kind:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every state, in the kernel's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// DRBD's spelling of the state.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::model::UnknownStateError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::model::UnknownStateError::new($kind, text)),
                }
            }
        }
    };
}
pub(crate) use drbd_state;

drbd_state! {
    /// The role of a node for one resource.
    pub enum Role ("role") {
        /// Not known: the peer is not connected, or the resource is being set up.
        Unknown = "Unknown",
        Primary = "Primary",
        Secondary = "Secondary",
    }
}

drbd_state! {
    /// The state of a backing disk, local or as reported by a peer.
    pub enum DiskState ("disk state") {
        /// No backing disk: not attached, or an intentional diskless client.
        Diskless = "Diskless",
        Attaching = "Attaching",
        Detaching = "Detaching",
        /// An I/O error made DRBD give up the disk.
        Failed = "Failed",
        Negotiating = "Negotiating",
        /// Partly written: a resync target, or never synced.
        Inconsistent = "Inconsistent",
        /// Consistent but known to be older than a peer's copy.
        Outdated = "Outdated",
        /// The peer's disk when there is no connection to it.
        DUnknown = "DUnknown",
        /// Consistent, but nobody has yet confirmed that it is the newest copy.
        Consistent = "Consistent",
        UpToDate = "UpToDate",
    }
}

drbd_state! {
    /// The network connection to one peer (DRBD 9 names; DRBD 8.4's are mapped onto these).
    pub enum ConnectionState ("connection state") {
        StandAlone = "StandAlone",
        Disconnecting = "Disconnecting",
        Unconnected = "Unconnected",
        Timeout = "Timeout",
        BrokenPipe = "BrokenPipe",
        NetworkFailure = "NetworkFailure",
        ProtocolError = "ProtocolError",
        TearDown = "TearDown",
        Connecting = "Connecting",
        Connected = "Connected",
    }
}

drbd_state! {
    /// Replication of one volume to one peer.
    pub enum ReplicationState ("replication state") {
        Off = "Off",
        Established = "Established",
        StartingSyncS = "StartingSyncS",
        StartingSyncT = "StartingSyncT",
        WFBitMapS = "WFBitMapS",
        WFBitMapT = "WFBitMapT",
        WFSyncUUID = "WFSyncUUID",
        SyncSource = "SyncSource",
        SyncTarget = "SyncTarget",
        VerifyS = "VerifyS",
        VerifyT = "VerifyT",
        PausedSyncS = "PausedSyncS",
        PausedSyncT = "PausedSyncT",
        Ahead = "Ahead",
        Behind = "Behind",
    }
}

impl ReplicationState {
    /// A resync towards the peer is set up, running or paused: the peer is not a full copy yet.
    pub fn is_resync_source(self) -> bool {
        matches!(
            self,
            Self::StartingSyncS | Self::WFBitMapS | Self::SyncSource | Self::PausedSyncS
        )
    }

    /// A resync from the peer is set up, running or paused: the local disk is not a full copy
    /// yet.
    pub fn is_resync_target(self) -> bool {
        matches!(
            self,
            Self::StartingSyncT
                | Self::WFBitMapT
                | Self::WFSyncUUID
                | Self::SyncTarget
                | Self::PausedSyncT
        )
    }

    /// Either direction of resync: the only states in which a "done" percentage means anything.
    pub fn is_resync(self) -> bool {
        self.is_resync_source() || self.is_resync_target()
    }
}

/// One DRBD resource as seen from this node.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    /// This node's role.
    pub role: Role,
    /// I/O is frozen (user, no-data, fencing or quorum suspension).
    pub suspended: bool,
    /// The local volumes, in the order the tool printed them.
    pub devices: Vec<Device>,
    /// One per configured peer.
    pub connections: Vec<Connection>,
}

impl Resource {
    /// The resource's quorum: lost if any volume lost it, known only if a volume reported it.
    /// Text output prints quorum only once lost and DRBD 8.4 has none, hence the `Option`.
    pub fn quorum(&self) -> Option<bool> {
        let mut known = None;
        for device in &self.devices {
            match device.quorum {
                Some(false) => return Some(false),
                Some(true) => known = Some(true),
                None => {}
            }
        }
        known
    }

    pub fn device(&self, volume: u32) -> Option<&Device> {
        self.devices.iter().find(|d| d.volume == volume)
    }

    /// The volume behind `/dev/drbd<minor>`, when the source reported minors.
    pub fn device_by_minor(&self, minor: u32) -> Option<&Device> {
        self.devices.iter().find(|d| d.minor == Some(minor))
    }

    /// Connected peers that are Primary: with one, this node must not write.
    pub fn primary_peers(&self) -> impl Iterator<Item = &Connection> {
        self.connections
            .iter()
            .filter(|c| c.state == ConnectionState::Connected && c.peer_role == Role::Primary)
    }
}

/// One local volume of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub volume: u32,
    /// The N of `/dev/drbdN`; plain `drbdadm status` does not print it.
    pub minor: Option<u32>,
    pub disk: DiskState,
    /// An intentionally diskless node (DRBD 9 client); unknown when not printed.
    pub client: Option<bool>,
    /// DRBD 9 quorum of this volume; `None` when the tool did not say.
    pub quorum: Option<bool>,
}

/// The link to one peer node.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub peer_node_id: Option<u32>,
    /// The connection name: normally the peer's host name; always `peer` under DRBD 8.4
    /// (which is also what events2 omitting the name on a StandAlone 8.4 connection means).
    pub name: String,
    pub state: ConnectionState,
    /// `Unknown` while not connected.
    pub peer_role: Role,
    /// Per-volume replication; empty when the tool does not list it (text status of a peer
    /// that is not connected).
    pub peer_devices: Vec<PeerDevice>,
}

/// Replication of one volume to one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerDevice {
    pub volume: u32,
    pub replication: ReplicationState,
    /// The peer's disk as last reported; stale once the connection is gone.
    pub peer_disk: DiskState,
    /// The peer is an intentional diskless client, not a replica.
    pub peer_client: Option<bool>,
    /// Resync progress, 0–100, only while a resync runs and the tool printed it.
    pub resync_done_percent: Option<f64>,
    /// KiB still to be synced, when statistics were printed.
    pub out_of_sync_kib: Option<u64>,
}

/// Turns a printed percentage into a sane one: DRBD computes it as `100 * (1 - oos/size)`,
/// which overshoots by rounding; a non-finite value is not a percentage at all.
pub(crate) fn percent(value: f64) -> Option<f64> {
    value.is_finite().then(|| value.clamp(0.0, 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_name() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>(), Ok(*role));
        }
        for disk in DiskState::ALL {
            assert_eq!(disk.to_string().parse::<DiskState>(), Ok(*disk));
        }
        for conn in ConnectionState::ALL {
            assert_eq!(conn.to_string().parse::<ConnectionState>(), Ok(*conn));
        }
        for repl in ReplicationState::ALL {
            assert_eq!(repl.to_string().parse::<ReplicationState>(), Ok(*repl));
        }
    }

    #[test]
    fn unknown_state_names_the_kind_and_shortens_the_value() {
        let err = "UpToDat".parse::<DiskState>().unwrap_err();
        assert_eq!(err.to_string(), "unknown disk state \"UpToDat\"");
        let long = "x".repeat(10_000);
        let err = long.parse::<Role>().unwrap_err();
        assert_eq!(
            err.value,
            format!("{}…", "x".repeat(clever_command::SHOWN_VALUE_LEN))
        );
        // Case matters: DRBD never prints lower-case states, so this is not DRBD output.
        assert!("primary".parse::<Role>().is_err());
    }

    #[test]
    fn resync_classification() {
        use ReplicationState as R;
        let sources: Vec<_> = R::ALL.iter().filter(|r| r.is_resync_source()).collect();
        let targets: Vec<_> = R::ALL.iter().filter(|r| r.is_resync_target()).collect();
        assert_eq!(
            sources,
            [
                &R::StartingSyncS,
                &R::WFBitMapS,
                &R::SyncSource,
                &R::PausedSyncS
            ]
        );
        assert_eq!(
            targets,
            [
                &R::StartingSyncT,
                &R::WFBitMapT,
                &R::WFSyncUUID,
                &R::SyncTarget,
                &R::PausedSyncT
            ]
        );
        assert!(!R::VerifyS.is_resync() && !R::Ahead.is_resync() && !R::Established.is_resync());
    }

    #[test]
    fn percent_is_clamped_and_finite() {
        assert_eq!(percent(100.004), Some(100.0));
        assert_eq!(percent(-0.0), Some(0.0));
        assert_eq!(percent(f64::NAN), None);
        assert_eq!(percent(f64::INFINITY), None);
    }

    #[test]
    fn quorum_is_lost_if_any_volume_lost_it() {
        let device = |volume, quorum| Device {
            volume,
            minor: None,
            disk: DiskState::UpToDate,
            client: None,
            quorum,
        };
        let mut resource = Resource {
            name: "r0".into(),
            role: Role::Secondary,
            suspended: false,
            devices: vec![device(0, None), device(1, None)],
            connections: vec![],
        };
        assert_eq!(resource.quorum(), None);
        resource.devices = vec![device(0, Some(true)), device(1, None)];
        assert_eq!(resource.quorum(), Some(true));
        resource.devices = vec![device(0, Some(true)), device(1, Some(false))];
        assert_eq!(resource.quorum(), Some(false));
    }
}
