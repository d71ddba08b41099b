//! `drbdsetup events2` lines, DRBD 9 and DRBD 8.4 (through drbd-utils 9's `drbdsetup-84`).
//!
//! On an 8.4 kernel `status --json` does not exist, but `events2 --now` does and prints the same
//! objects (resource, connection, device, peer-device) as `key:value` words that are never
//! wrapped. A stream is folded into the model: `exists`/`create` add an object, `change`
//! updates only the keys it prints, `destroy` removes it. The `exists -` line ends the initial
//! dump; without it the output was cut short, and a resource seen without its peers would
//! look safer than it is, so that is an error.

use clever_command::{shorten, SHOWN_VALUE_LEN};

use crate::error::{DrbdParseError, Format};
use crate::fields::{self, Fields};
use crate::model::{
    percent, Connection, ConnectionState, Device, DiskState, PeerDevice, ReplicationState,
    Resource, Role,
};
use crate::proc_drbd::DRBD84_PEER_NAME;

const FORMAT: Format = Format::Events2;

/// Parses `drbdsetup events2 [--now] [--timestamps] [--statistics] [RES|all]` into the state it
/// describes at its last line.
pub fn parse_events2(text: &str) -> Result<Vec<Resource>, DrbdParseError> {
    let mut resources: Vec<Resource> = Vec::new();
    let mut initial_dump_done = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index.saturating_add(1);
        let mut words = raw.split_whitespace().peekable();
        let Some(mut first) = words.next() else {
            continue;
        };
        // `--timestamps` puts an ISO 8601 time first.
        if first.starts_with(|c: char| c.is_ascii_digit()) {
            first = words
                .next()
                .ok_or_else(|| malformed(line, "timestamp without an event"))?;
        }
        let event = match first {
            "exists" | "create" => Event::Exists,
            "change" => Event::Change,
            "destroy" => Event::Destroy,
            // Helper calls and their answers say nothing about state.
            "call" | "response" => continue,
            // drbdsetup reports lost events as "- skipped N": the stream is no longer a picture.
            "-" => return Err(malformed(line, "events were skipped")),
            other => {
                return Err(malformed(
                    line,
                    &format!("unknown event {:?}", shorten(other, SHOWN_VALUE_LEN)),
                ));
            }
        };
        let object = words
            .next()
            .ok_or_else(|| malformed(line, "event without an object"))?;
        if object == "-" {
            initial_dump_done = true;
            continue;
        }
        let fields = Fields::new(FORMAT, words, line)?;
        match object {
            "resource" => apply_resource(&mut resources, event, &fields)?,
            "device" => apply_device(&mut resources, event, &fields)?,
            "connection" => apply_connection(&mut resources, event, &fields)?,
            "peer-device" => apply_peer_device(&mut resources, event, &fields)?,
            // Paths, helpers and objects of newer DRBD versions do not affect the model.
            _ => {}
        }
    }
    if !initial_dump_done {
        return Err(DrbdParseError::Incomplete {
            format: FORMAT,
            problem: "no `exists -` line marking the end of the current state",
        });
    }
    Ok(resources)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// `exists` or `create`: a whole object, with its state keys.
    Exists,
    /// Only the keys that changed.
    Change,
    Destroy,
}

fn apply_resource(
    resources: &mut Vec<Resource>,
    event: Event,
    fields: &Fields<'_>,
) -> Result<(), DrbdParseError> {
    let name = fields.required("name")?;
    let position = resources.iter().position(|r| r.name == name);
    match (event, position) {
        (Event::Destroy, Some(index)) => {
            resources.remove(index);
        }
        (Event::Destroy, None) => {}
        (Event::Exists, None) => {
            let mut resource = Resource {
                name: name.to_owned(),
                role: fields.required_state("role")?,
                suspended: false,
                devices: Vec::new(),
                connections: Vec::new(),
            };
            fields.update_resource(&mut resource)?;
            resources.push(resource);
        }
        (_, Some(index)) => {
            if let Some(resource) = resources.get_mut(index) {
                fields.update_resource(resource)?;
            }
        }
        (Event::Change, None) => return Err(fields.unknown_object("resource", name)),
    }
    Ok(())
}

fn resource_mut<'r>(
    resources: &'r mut [Resource],
    fields: &Fields<'_>,
) -> Result<&'r mut Resource, DrbdParseError> {
    let name = fields.required("name")?;
    resources
        .iter_mut()
        .find(|r| r.name == name)
        .ok_or_else(|| fields.unknown_object("resource", name))
}

fn apply_device(
    resources: &mut [Resource],
    event: Event,
    fields: &Fields<'_>,
) -> Result<(), DrbdParseError> {
    let resource = resource_mut(resources, fields)?;
    let volume: u32 = fields.required_number("volume")?;
    let position = resource.devices.iter().position(|d| d.volume == volume);
    match (event, position) {
        (Event::Destroy, Some(index)) => {
            resource.devices.remove(index);
        }
        (Event::Destroy, None) => {}
        (Event::Exists, None) => {
            let mut device = Device {
                volume,
                minor: None,
                disk: fields.required_state("disk")?,
                client: None,
                quorum: None,
            };
            fields.update_device(&mut device)?;
            resource.devices.push(device);
        }
        (_, Some(index)) => {
            if let Some(device) = resource.devices.get_mut(index) {
                fields.update_device(device)?;
            }
        }
        (Event::Change, None) => return Err(fields.unknown_object("device", &volume.to_string())),
    }
    Ok(())
}

fn apply_connection(
    resources: &mut [Resource],
    event: Event,
    fields: &Fields<'_>,
) -> Result<(), DrbdParseError> {
    let resource = resource_mut(resources, fields)?;
    let node: u32 = fields.required_number("peer-node-id")?;
    let position = resource
        .connections
        .iter()
        .position(|c| c.peer_node_id == Some(node));
    match (event, position) {
        (Event::Destroy, Some(index)) => {
            resource.connections.remove(index);
        }
        (Event::Destroy, None) => {}
        (Event::Exists, None) => {
            let mut connection = Connection {
                peer_node_id: Some(node),
                // Only drbd-utils' 8.4 printer omits conn-name (for a connection without a peer
                // address, i.e. StandAlone), and 8.4 tooling calls every connection "peer".
                name: DRBD84_PEER_NAME.to_owned(),
                state: fields.required_state("connection")?,
                peer_role: Role::Unknown,
                peer_devices: Vec::new(),
            };
            fields.update_connection(&mut connection)?;
            resource.connections.push(connection);
        }
        (_, Some(index)) => {
            if let Some(connection) = resource.connections.get_mut(index) {
                fields.update_connection(connection)?;
            }
        }
        (Event::Change, None) => {
            return Err(fields.unknown_object("connection", &format!("peer-node-id:{node}")))
        }
    }
    Ok(())
}

fn apply_peer_device(
    resources: &mut [Resource],
    event: Event,
    fields: &Fields<'_>,
) -> Result<(), DrbdParseError> {
    let resource = resource_mut(resources, fields)?;
    let node: u32 = fields.required_number("peer-node-id")?;
    let volume: u32 = fields.required_number("volume")?;
    let connection = resource
        .connections
        .iter_mut()
        .find(|c| c.peer_node_id == Some(node))
        .ok_or_else(|| fields.unknown_object("connection", &format!("peer-node-id:{node}")))?;
    let position = connection
        .peer_devices
        .iter()
        .position(|p| p.volume == volume);
    match (event, position) {
        (Event::Destroy, Some(index)) => {
            connection.peer_devices.remove(index);
        }
        (Event::Destroy, None) => {}
        (Event::Exists, None) => {
            let mut peer_device = PeerDevice {
                volume,
                replication: fields.required_state("replication")?,
                peer_disk: fields.required_state("peer-disk")?,
                peer_client: None,
                resync_done_percent: None,
                out_of_sync_kib: None,
            };
            fields.update_peer_device(&mut peer_device)?;
            connection.peer_devices.push(peer_device);
        }
        (_, Some(index)) => {
            if let Some(peer_device) = connection.peer_devices.get_mut(index) {
                fields.update_peer_device(peer_device)?;
            }
        }
        (Event::Change, None) => {
            return Err(fields.unknown_object("peer device", &format!("volume {volume}")))
        }
    }
    Ok(())
}

impl Fields<'_> {
    fn update_resource(&self, resource: &mut Resource) -> Result<(), DrbdParseError> {
        if let Some(role) = self.state("role")? {
            resource.role = role;
        }
        // "no", or the reasons joined by commas (user, no-data, fencing, quorum).
        if let Some(suspended) = self.get("suspended") {
            resource.suspended = suspended != "no";
        }
        Ok(())
    }

    fn update_device(&self, device: &mut Device) -> Result<(), DrbdParseError> {
        if let Some(minor) = self.number("minor")? {
            device.minor = Some(minor);
        }
        if let Some(disk) = self.state::<DiskState>("disk")? {
            device.disk = disk;
        }
        if let Some(client) = self.yes_no("client")? {
            device.client = Some(client);
        }
        if let Some(quorum) = self.yes_no("quorum")? {
            device.quorum = Some(quorum);
        }
        Ok(())
    }

    fn update_connection(&self, connection: &mut Connection) -> Result<(), DrbdParseError> {
        if let Some(name) = self.get("conn-name") {
            name.clone_into(&mut connection.name);
        }
        if let Some(state) = self.state::<ConnectionState>("connection")? {
            connection.state = state;
        }
        if let Some(role) = self.state("role")? {
            connection.peer_role = role;
        }
        Ok(())
    }

    fn update_peer_device(&self, peer_device: &mut PeerDevice) -> Result<(), DrbdParseError> {
        if let Some(replication) = self.state::<ReplicationState>("replication")? {
            peer_device.replication = replication;
        }
        if let Some(disk) = self.state("peer-disk")? {
            peer_device.peer_disk = disk;
        }
        if let Some(client) = self.yes_no("peer-client")? {
            peer_device.peer_client = Some(client);
        }
        if let Some(done) = self.number::<f64>("done")? {
            let done = percent(done).ok_or_else(|| self.invalid("done", &done.to_string()))?;
            peer_device.resync_done_percent = Some(done);
        }
        if let Some(oos) = self.number("out-of-sync")? {
            peer_device.out_of_sync_kib = Some(oos);
        }
        // events2 prints only what changed, so a finished resync would keep its last percentage.
        if !peer_device.replication.is_resync() {
            peer_device.resync_done_percent = None;
        }
        Ok(())
    }

    fn unknown_object(&self, kind: &str, name: &str) -> DrbdParseError {
        malformed(
            self.line(),
            &format!(
                "event for {kind} {:?} that was never announced",
                shorten(name, SHOWN_VALUE_LEN)
            ),
        )
    }
}

fn malformed(line: usize, problem: &str) -> DrbdParseError {
    fields::malformed(FORMAT, line, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_and_destroy_fold_into_the_state() {
        let text = "exists resource name:r0 role:Secondary suspended:no\n\
            exists connection name:r0 peer-node-id:1 conn-name:b connection:Connecting role:Unknown\n\
            exists device name:r0 volume:0 minor:3 disk:UpToDate\n\
            exists -\n\
            change connection name:r0 peer-node-id:1 connection:Connected role:Secondary\n\
            create peer-device name:r0 peer-node-id:1 conn-name:b volume:0 replication:SyncSource peer-disk:Inconsistent done:12.5\n\
            change peer-device name:r0 peer-node-id:1 conn-name:b volume:0 replication:Established peer-disk:UpToDate\n\
            change resource name:r0 role:Primary suspended:fencing\n\
            create resource name:r1 role:Secondary\n\
            destroy resource name:r1\n";
        let resources = parse_events2(text).unwrap();
        assert_eq!(resources.len(), 1);
        let r0 = &resources[0];
        assert_eq!(r0.role, Role::Primary);
        assert!(r0.suspended);
        assert_eq!(r0.connections[0].name, "b");
        assert_eq!(r0.connections[0].state, ConnectionState::Connected);
        let peer = &r0.connections[0].peer_devices[0];
        assert_eq!(peer.replication, ReplicationState::Established);
        assert_eq!(peer.peer_disk, DiskState::UpToDate);
        assert_eq!(peer.resync_done_percent, None);
    }

    #[test]
    fn errors() {
        let cases = [
            ("exists resource name:r0 role:Secondary\n", "no `exists -` line"),
            ("exists -\nchange resource name:r0 role:Primary\n", "never announced"),
            ("exists resource name:r0\nexists -\n", "role is missing"),
            ("exists resource name:r0 role:Boss\nexists -\n", "unknown role \"Boss\""),
            ("hello world\n", "unknown event \"hello\""),
            ("exists\n", "event without an object"),
            ("exists resource name:r0 role:Primary junk\nexists -\n", "expected key:value"),
            ("exists -\n- skipped 3\n", "events were skipped"),
            (
                "exists resource name:r0 role:Primary\nexists peer-device name:r0 peer-node-id:1 volume:0 replication:Off peer-disk:DUnknown\nexists -\n",
                "connection \"peer-node-id:1\" that was never announced",
            ),
            (
                "exists resource name:r0 role:Primary\nexists device name:r0 volume:x disk:UpToDate\nexists -\n",
                "volume has invalid value \"x\"",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_events2(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
