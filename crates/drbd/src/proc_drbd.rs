//! `/proc/drbd` of DRBD 8.3 and 8.4.
//!
//! It is the one status source that needs no userland tool, but it knows only minors: no
//! resource names, no volume numbers. So it parses into per-minor records, and
//! [`ProcDrbd::resources`] joins them with a minor → (resource, volume) map the caller gets
//! from the udev links ([`crate::minor_owners`]) or the configuration. DRBD 9 prints only the
//! version here; its minors list is empty.

use std::collections::BTreeMap;

use clever_command::{shorten, SHOWN_VALUE_LEN};

use crate::error::{DrbdParseError, Format};
use crate::model::{
    drbd_state, percent, Connection, ConnectionState, Device, DiskState, PeerDevice,
    ReplicationState, Resource, Role, UnknownStateError,
};

const FORMAT: Format = Format::ProcDrbd;

/// The name DRBD 8.4 tooling gives the single connection of a resource.
pub const DRBD84_PEER_NAME: &str = "peer";

drbd_state! {
    /// DRBD 8.x connection state (`cs:`), which mixes the network link and the replication of
    /// the minor into one value.
    pub enum Drbd8ConnState ("DRBD 8 connection state") {
        StandAlone = "StandAlone",
        Disconnecting = "Disconnecting",
        Unconnected = "Unconnected",
        Timeout = "Timeout",
        BrokenPipe = "BrokenPipe",
        NetworkFailure = "NetworkFailure",
        ProtocolError = "ProtocolError",
        TearDown = "TearDown",
        WFConnection = "WFConnection",
        WFReportParams = "WFReportParams",
        Connected = "Connected",
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

impl Drbd8ConnState {
    /// Splits the 8.x state the way drbd-utils 9 does for an 8.4 kernel (`drbd_conn_str9` /
    /// `drbd_repl_str9`), so `/proc/drbd`, `events2` and `status` agree: WFConnection is
    /// Connecting, WFReportParams (handshake) is Connected with replication Off, and every
    /// state from Connected on is a Connected link whose replication carries the name.
    pub fn split(self) -> (ConnectionState, ReplicationState) {
        use ConnectionState as C;
        use ReplicationState as R;
        match self {
            Self::StandAlone => (C::StandAlone, R::Off),
            Self::Disconnecting => (C::Disconnecting, R::Off),
            Self::Unconnected => (C::Unconnected, R::Off),
            Self::Timeout => (C::Timeout, R::Off),
            Self::BrokenPipe => (C::BrokenPipe, R::Off),
            Self::NetworkFailure => (C::NetworkFailure, R::Off),
            Self::ProtocolError => (C::ProtocolError, R::Off),
            Self::TearDown => (C::TearDown, R::Off),
            Self::WFConnection => (C::Connecting, R::Off),
            Self::WFReportParams => (C::Connected, R::Off),
            Self::Connected => (C::Connected, R::Established),
            Self::StartingSyncS => (C::Connected, R::StartingSyncS),
            Self::StartingSyncT => (C::Connected, R::StartingSyncT),
            Self::WFBitMapS => (C::Connected, R::WFBitMapS),
            Self::WFBitMapT => (C::Connected, R::WFBitMapT),
            Self::WFSyncUUID => (C::Connected, R::WFSyncUUID),
            Self::SyncSource => (C::Connected, R::SyncSource),
            Self::SyncTarget => (C::Connected, R::SyncTarget),
            Self::VerifyS => (C::Connected, R::VerifyS),
            Self::VerifyT => (C::Connected, R::VerifyT),
            Self::PausedSyncS => (C::Connected, R::PausedSyncS),
            Self::PausedSyncT => (C::Connected, R::PausedSyncT),
            Self::Ahead => (C::Connected, R::Ahead),
            Self::Behind => (C::Connected, R::Behind),
        }
    }
}

/// The parsed `/proc/drbd`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcDrbd {
    /// The module version (`8.4.11`, `9.2.12`), from the `version:` line.
    pub version: String,
    /// Minors in the order printed, unconfigured ones included.
    pub minors: Vec<ProcMinor>,
}

/// One `N: cs:...` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcMinor {
    pub minor: u32,
    /// `None` for `cs:Unconfigured`: the minor exists but no resource uses it.
    pub status: Option<MinorStatus>,
}

/// The state of one configured minor.
#[derive(Debug, Clone, PartialEq)]
pub struct MinorStatus {
    pub cs: Drbd8ConnState,
    pub role: Role,
    pub peer_role: Role,
    pub disk: DiskState,
    pub peer_disk: DiskState,
    /// Replication protocol letter; blank (None) when StandAlone.
    pub protocol: Option<char>,
    /// The first flag is `s` when I/O is suspended.
    pub suspended: bool,
    /// `oos:` in KiB.
    pub out_of_sync_kib: Option<u64>,
    /// The percentage after `sync'ed:` or `verified:`.
    pub progress_percent: Option<f64>,
}

/// Which resource and volume a minor belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MinorOwner {
    pub resource: String,
    pub volume: u32,
}

impl ProcDrbd {
    /// Whether the module is DRBD 9, whose `/proc/drbd` has no per-minor state.
    pub fn is_drbd9(&self) -> bool {
        self.version.starts_with("9.")
    }

    /// Builds resources from the minors that `owners` names; other and unconfigured minors are
    /// left out, so a resource that is down is simply absent. Role and connection are
    /// per resource in 8.4, so the first volume's are used, except that the least connected
    /// link wins when volumes disagree (a transient mid-state-change picture).
    pub fn resources(&self, owners: &BTreeMap<u32, MinorOwner>) -> Vec<Resource> {
        let mut resources: Vec<Resource> = Vec::new();
        for entry in &self.minors {
            let (Some(status), Some(owner)) = (&entry.status, owners.get(&entry.minor)) else {
                continue;
            };
            let (state, replication) = status.cs.split();
            let device = Device {
                volume: owner.volume,
                minor: Some(entry.minor),
                disk: status.disk,
                client: None,
                quorum: None,
            };
            let peer_device = PeerDevice {
                volume: owner.volume,
                replication,
                peer_disk: status.peer_disk,
                peer_client: None,
                resync_done_percent: status.progress_percent.filter(|_| replication.is_resync()),
                out_of_sync_kib: status.out_of_sync_kib,
            };
            if let Some(resource) = resources.iter_mut().find(|r| r.name == owner.resource) {
                resource.suspended |= status.suspended;
                resource.devices.push(device);
                if let Some(connection) = resource.connections.first_mut() {
                    connection.state = connection.state.min(state);
                    connection.peer_devices.push(peer_device);
                }
            } else {
                resources.push(Resource {
                    name: owner.resource.clone(),
                    role: status.role,
                    suspended: status.suspended,
                    devices: vec![device],
                    connections: vec![Connection {
                        peer_node_id: None,
                        name: DRBD84_PEER_NAME.to_owned(),
                        state,
                        peer_role: status.peer_role,
                        peer_devices: vec![peer_device],
                    }],
                });
            }
        }
        for resource in &mut resources {
            resource.devices.sort_by_key(|d| d.volume);
            for connection in &mut resource.connections {
                connection.peer_devices.sort_by_key(|p| p.volume);
            }
        }
        resources
    }
}

/// Parses `/proc/drbd`. Lines that are neither a version, a minor, nor one of a minor's
/// counter and progress lines are skipped (build information, copy artefacts); a file without
/// a `version:` line is not `/proc/drbd` at all.
pub fn parse_proc_drbd(text: &str) -> Result<ProcDrbd, DrbdParseError> {
    let mut version = None;
    let mut minors: Vec<ProcMinor> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index.saturating_add(1);
        let content = raw.trim();
        if let Some(rest) = content.strip_prefix("version:") {
            let number = rest.split_whitespace().next().unwrap_or_default();
            version = Some(number.to_owned());
            continue;
        }
        if let Some((minor, rest)) = minor_line(content) {
            let minor = minor.parse().map_err(|_| invalid(line, "minor", minor))?;
            minors.push(ProcMinor {
                minor,
                status: minor_status(rest, line)?,
            });
            continue;
        }
        let Some(status) = minors.last_mut().and_then(|m| m.status.as_mut()) else {
            continue;
        };
        if content.starts_with("ns:") {
            if let Some(oos) = content
                .split_whitespace()
                .find_map(|word| word.strip_prefix("oos:"))
            {
                status.out_of_sync_kib = Some(oos.parse().map_err(|_| invalid(line, "oos", oos))?);
            }
        } else if let Some(after) = content
            .split_once("sync'ed:")
            .or_else(|| content.split_once("verified:"))
            .map(|(_, after)| after)
        {
            let number = after
                .split_whitespace()
                .next()
                .and_then(|word| word.strip_suffix('%'))
                .ok_or_else(|| invalid(line, "progress", after))?;
            let value: f64 = number
                .parse()
                .map_err(|_| invalid(line, "progress", number))?;
            status.progress_percent =
                Some(percent(value).ok_or_else(|| invalid(line, "progress", number))?);
        }
    }
    let version = version.ok_or(DrbdParseError::Incomplete {
        format: FORMAT,
        problem: "no `version:` line",
    })?;
    Ok(ProcDrbd { version, minors })
}

/// `" 0: cs:..."` → `("0", "cs:...")`.
fn minor_line(content: &str) -> Option<(&str, &str)> {
    let (minor, rest) = content.split_once(':')?;
    let is_number = !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit());
    (is_number && (rest.is_empty() || rest.starts_with(' '))).then_some((minor, rest.trim()))
}

fn minor_status(rest: &str, line: usize) -> Result<Option<MinorStatus>, DrbdParseError> {
    let mut words = rest.split_whitespace();
    let cs = words
        .next()
        .and_then(|w| w.strip_prefix("cs:"))
        .ok_or_else(|| missing(line, "cs"))?;
    if cs == "Unconfigured" {
        return Ok(None);
    }
    let cs: Drbd8ConnState = state(cs, line, "cs")?;
    // 8.0 printed the roles as `st:`.
    let roles = words
        .next()
        .and_then(|w| w.strip_prefix("ro:").or_else(|| w.strip_prefix("st:")))
        .ok_or_else(|| missing(line, "ro"))?;
    let (role, peer_role) = pair(roles, line, "ro")?;
    let disks = words
        .next()
        .and_then(|w| w.strip_prefix("ds:"))
        .ok_or_else(|| missing(line, "ds"))?;
    let (disk, peer_disk) = pair(disks, line, "ds")?;
    // The protocol letter is left blank when StandAlone, so the next word may be the flags.
    let mut protocol = None;
    let mut flags = words.next();
    if let Some(word) = flags {
        if matches!(word, "A" | "B" | "C") {
            protocol = word.chars().next();
            flags = words.next();
        }
    }
    Ok(Some(MinorStatus {
        cs,
        role,
        peer_role,
        disk,
        peer_disk,
        protocol,
        suspended: flags.is_some_and(|f| f.starts_with('s')),
        out_of_sync_kib: None,
        progress_percent: None,
    }))
}

fn pair<T: std::str::FromStr<Err = UnknownStateError>>(
    text: &str,
    line: usize,
    field: &'static str,
) -> Result<(T, T), DrbdParseError> {
    let (local, peer) = text
        .split_once('/')
        .ok_or_else(|| invalid(line, field, text))?;
    Ok((state(local, line, field)?, state(peer, line, field)?))
}

fn state<T: std::str::FromStr<Err = UnknownStateError>>(
    text: &str,
    line: usize,
    field: &str,
) -> Result<T, DrbdParseError> {
    text.parse().map_err(|source| DrbdParseError::UnknownState {
        format: FORMAT,
        location: format!("line {line} {field}"),
        source,
    })
}

fn missing(line: usize, field: &'static str) -> DrbdParseError {
    DrbdParseError::Missing {
        format: FORMAT,
        location: format!("line {line}"),
        field,
    }
}

fn invalid(line: usize, field: &str, value: &str) -> DrbdParseError {
    DrbdParseError::InvalidValue {
        format: FORMAT,
        location: format!("line {line}"),
        field: field.to_owned(),
        value: shorten(value, SHOWN_VALUE_LEN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_matches_drbd_utils_names() {
        for cs in Drbd8ConnState::ALL {
            let (conn, repl) = cs.split();
            // Where the name survives, it survives unchanged in one of the two halves.
            let same = conn.as_str() == cs.as_str() || repl.as_str() == cs.as_str();
            let renamed = matches!(
                cs,
                Drbd8ConnState::WFConnection
                    | Drbd8ConnState::WFReportParams
                    | Drbd8ConnState::Connected
            );
            assert!(same || renamed, "{cs}");
        }
        assert_eq!(
            Drbd8ConnState::WFConnection.split(),
            (ConnectionState::Connecting, ReplicationState::Off)
        );
    }

    #[test]
    fn minor_lines_are_told_from_other_lines() {
        assert_eq!(minor_line("0: cs:Connected"), Some(("0", "cs:Connected")));
        assert_eq!(minor_line("12:"), Some(("12", "")));
        assert_eq!(minor_line("2 23:52:00"), None);
        assert_eq!(minor_line("version: 8.4"), None);
        assert_eq!(minor_line("ns:0 nr:0"), None);
    }

    #[test]
    fn errors() {
        let cases = [
            ("", "no `version:` line"),
            ("hello world\n", "no `version:` line"),
            ("version: 8.4.11\n 0: cs:Conn\n", "unknown DRBD 8 connection state \"Conn\""),
            ("version: 8.4.11\n 0: cs:Connected\n", "ro is missing"),
            ("version: 8.4.11\n 0: cs:Connected ro:Primary ds:UpToDate/UpToDate\n", "ro has invalid value"),
            ("version: 8.4.11\n 0:\n", "cs is missing"),
            ("version: 8.4.11\n 99999999999: cs:Unconfigured\n", "minor has invalid value"),
            (
                "version: 8.4.11\n 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n\t[>...] sync'ed: x% (1/2)K\n",
                "progress has invalid value",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_proc_drbd(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn minors_of_one_resource_become_its_volumes() {
        let proc = parse_proc_drbd(
            "version: 8.4.11 (api:1/proto:86-101)\n\
             \x20 7: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n\
             \x20   ns:0 nr:0 dw:0 dr:0 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:100\n\
             \x20\t[==>.................] sync'ed: 12.5% (100/800)K\n\
             \x20 3: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C s-----\n\
             \x20 9: cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate C r-----\n",
        )
        .unwrap();
        let owner = |resource: &str, volume| MinorOwner {
            resource: resource.into(),
            volume,
        };
        let owners = BTreeMap::from([(3, owner("r0", 0)), (7, owner("r0", 1))]);
        let resources = proc.resources(&owners);
        assert_eq!(resources.len(), 1, "minor 9 has no owner and is left out");
        let r0 = &resources[0];
        assert!(r0.suspended, "minor 3 is suspended");
        let volumes: Vec<_> = r0.devices.iter().map(|d| (d.volume, d.minor)).collect();
        assert_eq!(volumes, [(0, Some(3)), (1, Some(7))]);
        let peer = &r0.connections[0];
        assert_eq!(peer.state, ConnectionState::Connected);
        let replication: Vec<_> = peer
            .peer_devices
            .iter()
            .map(|p| (p.volume, p.replication, p.resync_done_percent))
            .collect();
        assert_eq!(
            replication,
            [
                (0, ReplicationState::Established, None),
                (1, ReplicationState::SyncSource, Some(12.5))
            ]
        );
    }

    #[test]
    fn the_least_connected_volume_decides_the_link() {
        let proc = parse_proc_drbd(
            "version: 8.4.11\n 0: cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown C r-----\n \
             1: cs:StandAlone ro:Primary/Unknown ds:UpToDate/DUnknown   r-----\n",
        )
        .unwrap();
        let owners = BTreeMap::from([
            (
                0,
                MinorOwner {
                    resource: "r0".into(),
                    volume: 0,
                },
            ),
            (
                1,
                MinorOwner {
                    resource: "r0".into(),
                    volume: 1,
                },
            ),
        ]);
        let r0 = &proc.resources(&owners)[0];
        assert_eq!(r0.connections[0].state, ConnectionState::StandAlone);
        assert_eq!(r0.connections[0].peer_devices.len(), 2);
    }

    #[test]
    fn drbd9_has_only_a_version() {
        let proc = parse_proc_drbd("version: 9.2.12 (api:2/proto:86-122)\nGIT-hash: abc\nTransports (api:21): tcp (9.2.12)\n").unwrap();
        assert!(proc.is_drbd9());
        assert!(proc.minors.is_empty());
    }
}
