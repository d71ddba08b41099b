//! `drbdsetup status` / `drbdadm status` text, plain or `--verbose --statistics`, from DRBD 9 and
//! from drbd-utils 9 driving a DRBD 8.4 kernel.
//!
//! The layout is positional: a resource line at column 0, its volumes and peers at 2, a peer's
//! volumes at 4. drbdsetup wraps lines at 80 columns when not writing to a terminal and indents
//! the continuation four columns deeper than the line it continues, so anything indented more
//! than two columns past the current line is joined back onto it.
//!
//! What the plain output leaves out is filled from the printer's rules: `connection:` only
//! appears when not Connected, `role:` only when Connected, `replication:` only past
//! Established, `quorum:` only when lost (so it stays unknown otherwise).

use crate::error::{DrbdParseError, Format};
use crate::fields::{self, Fields};
use crate::model::{
    percent, Connection, ConnectionState, Device, DiskState, PeerDevice, ReplicationState,
    Resource, Role,
};

const FORMAT: Format = Format::StatusText;

/// Parses the whole output of `drbdsetup status [RES|all] [--verbose] [--statistics]`.
/// No resources (an empty output, or drbdsetup's `# No currently configured DRBD found.`)
/// is an empty list.
pub fn parse_status_text(text: &str) -> Result<Vec<Resource>, DrbdParseError> {
    let mut resources: Vec<Resource> = Vec::new();
    let mut scope = Scope::None;
    for line in logical_lines(text)? {
        let mut tokens = line.text.split_whitespace();
        let Some(first) = tokens.next() else {
            continue;
        };
        let at = line.number;
        match line.indent {
            0 => {
                let fields = Fields::new(FORMAT, tokens, at)?;
                resources.push(fields.resource(first)?);
                scope = Scope::Resource;
            }
            2 => {
                let resource = resources
                    .last_mut()
                    .ok_or_else(|| malformed(at, "indented line before any resource"))?;
                if is_device_line(first) {
                    let fields = Fields::new(FORMAT, line.text.split_whitespace(), at)?;
                    resource.devices.push(fields.device()?);
                    scope = Scope::Device;
                } else {
                    let fields = Fields::new(FORMAT, tokens, at)?;
                    resource.connections.push(fields.connection(first)?);
                    scope = Scope::Connection;
                }
            }
            4 if matches!(scope, Scope::Connection | Scope::PeerDevice) => {
                let connection = resources
                    .last_mut()
                    .and_then(|r| r.connections.last_mut())
                    .ok_or_else(|| malformed(at, "peer volume line outside a connection"))?;
                let fields = Fields::new(FORMAT, line.text.split_whitespace(), at)?;
                let peer_device = fields.peer_device(connection.state)?;
                connection.peer_devices.push(peer_device);
                scope = Scope::PeerDevice;
            }
            indent => {
                return Err(malformed(
                    at,
                    &format!("unexpected indentation of {indent} columns"),
                ))
            }
        }
    }
    Ok(resources)
}

/// Where the last line belonged, which decides what an indented line can be.
#[derive(Debug, Clone, Copy)]
enum Scope {
    None,
    Resource,
    Device,
    Connection,
    PeerDevice,
}

/// A printed line with its wrapped continuations joined back on.
#[derive(Debug)]
struct Line {
    number: usize,
    indent: usize,
    text: String,
}

fn logical_lines(text: &str) -> Result<Vec<Line>, DrbdParseError> {
    let mut lines: Vec<Line> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index.saturating_add(1);
        let trimmed = raw.trim_start_matches(' ');
        let content = trimmed.trim_end();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if content.chars().any(char::is_control) {
            return Err(malformed(
                number,
                "control characters (colour codes or binary data)",
            ));
        }
        let indent = raw.len().saturating_sub(trimmed.len());
        match lines.last_mut() {
            Some(last) if indent > last.indent.saturating_add(2) => {
                last.text.push(' ');
                last.text.push_str(content);
            }
            _ => lines.push(Line {
                number,
                indent,
                text: content.to_owned(),
            }),
        }
    }
    Ok(lines)
}

/// Volumes start with a volume number, a minor or (single volume, 0) directly the disk state.
fn is_device_line(first: &str) -> bool {
    ["volume:", "minor:", "disk:"]
        .iter()
        .any(|prefix| first.starts_with(prefix))
}

impl Fields<'_> {
    fn resource(&self, name: &str) -> Result<Resource, DrbdParseError> {
        Ok(Resource {
            name: name.to_owned(),
            role: self.state("role")?.ok_or_else(|| self.missing("role"))?,
            // "no", or the reasons joined by commas (user, no-data, fencing, quorum); printed
            // only when verbose or suspended.
            suspended: self.get("suspended").is_some_and(|s| s != "no"),
            devices: Vec::new(),
            connections: Vec::new(),
        })
    }

    fn device(&self) -> Result<Device, DrbdParseError> {
        Ok(Device {
            volume: self.number("volume")?.unwrap_or(0),
            minor: self.number("minor")?,
            disk: self.state("disk")?.ok_or_else(|| self.missing("disk"))?,
            client: self.yes_no("client")?,
            quorum: self.yes_no("quorum")?,
        })
    }

    fn connection(&self, name: &str) -> Result<Connection, DrbdParseError> {
        Ok(Connection {
            peer_node_id: self.number("node-id")?,
            name: name.to_owned(),
            state: self
                .state("connection")?
                .unwrap_or(ConnectionState::Connected),
            peer_role: self.state("role")?.unwrap_or(Role::Unknown),
            peer_devices: Vec::new(),
        })
    }

    fn peer_device(&self, connection: ConnectionState) -> Result<PeerDevice, DrbdParseError> {
        let unprinted = if connection == ConnectionState::Connected {
            ReplicationState::Established
        } else {
            ReplicationState::Off
        };
        let replication = self.state("replication")?.unwrap_or(unprinted);
        // drbd-utils 8.9 printed the peer's disk as `disk:`.
        let peer_disk = match self.state("peer-disk")? {
            Some(disk) => Some(disk),
            None => self.state("disk")?,
        };
        let done = self
            .number::<f64>("done")?
            .map(|value| percent(value).ok_or_else(|| self.invalid("done", &value.to_string())))
            .transpose()?;
        Ok(PeerDevice {
            volume: self.number("volume")?.unwrap_or(0),
            replication,
            peer_disk: peer_disk.unwrap_or(DiskState::DUnknown),
            peer_client: self.yes_no("peer-client")?,
            resync_done_percent: done.filter(|_| replication.is_resync()),
            out_of_sync_kib: self.number("out-of-sync")?,
        })
    }
}

fn malformed(line: usize, problem: &str) -> DrbdParseError {
    fields::malformed(FORMAT, line, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_continuations_are_joined() {
        let text = "r0 role:Secondary suspended:no\n    write-ordering:flush\n  volume:0 minor:7 disk:UpToDate\n      size:1 read:0\n  peer connection:Connected role:Primary\n      congested:no\n    volume:0 replication:Established peer-disk:UpToDate\n        resync-suspended:no\n";
        let lines = logical_lines(text).unwrap();
        let texts: Vec<_> = lines.iter().map(|l| (l.indent, l.text.as_str())).collect();
        assert_eq!(
            texts,
            [
                (0, "r0 role:Secondary suspended:no write-ordering:flush"),
                (2, "volume:0 minor:7 disk:UpToDate size:1 read:0"),
                (2, "peer connection:Connected role:Primary congested:no"),
                (
                    4,
                    "volume:0 replication:Established peer-disk:UpToDate resync-suspended:no"
                ),
            ]
        );
        let resources = parse_status_text(text).unwrap();
        assert_eq!(resources[0].devices[0].minor, Some(7));
        assert_eq!(resources[0].connections[0].peer_role, Role::Primary);
    }

    #[test]
    fn suspended_reasons_mean_suspended() {
        let resources =
            parse_status_text("r0 role:Primary suspended:fencing\n  disk:UpToDate\n").unwrap();
        assert!(resources[0].suspended);
    }

    #[test]
    fn no_resources() {
        assert!(parse_status_text("").unwrap().is_empty());
        assert!(parse_status_text("# No currently configured DRBD found.\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn structural_errors() {
        let err = parse_status_text("  disk:UpToDate\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "drbdsetup status, line 1: indented line before any resource"
        );
        let err = parse_status_text("r0 disk:UpToDate\n").unwrap_err();
        assert_eq!(err.to_string(), "drbdsetup status, line 1: role is missing");
        let err = parse_status_text("r0 role:Primary\n  disk:UpToDate\n    peer-disk:UpToDate\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "drbdsetup status, line 3: unexpected indentation of 4 columns"
        );
        let err = parse_status_text("r0 role:Primary\n  disk:Fine\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "drbdsetup status, line 2 disk: unknown disk state \"Fine\""
        );
        let err = parse_status_text(
            "r0 role:Primary\n  peer role:Secondary\n    peer-disk:UpToDate done:nan\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("done has invalid value"), "{err}");
        let err = parse_status_text("\x1b[1mr0\x1b[0m role:Primary\n").unwrap_err();
        assert!(err.to_string().contains("control characters"), "{err}");
    }
}
