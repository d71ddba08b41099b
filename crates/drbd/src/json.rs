//! `drbdsetup status --json` (DRBD 9).
//!
//! drbdsetup prints this JSON with `printf`, so its quirks are those of a hand-written printer:
//! `peer_devices` has an underscore, `quorum`/`client` were strings before drbd-utils 9.4, keys
//! come and go between versions, and before 9.6 a resync that had just started printed a bare
//! `nan`. We read only the keys the model needs and ignore the rest, so statistics that change
//! shape (or underflow to 2^64) cannot break the parse.

use serde_json::{Map, Value};

use clever_command::{shorten, SHOWN_VALUE_LEN};

use crate::error::{DrbdParseError, Format};
use crate::model::{percent, Connection, Device, PeerDevice, Resource};

const FORMAT: Format = Format::StatusJson;

type Object = Map<String, Value>;

/// Parses the whole output of `drbdsetup status [RES|all] --json`.
///
/// A bare `nan`/`inf` (drbd-utils < 9.6 during the first second of a resync) is read as a
/// missing value instead of failing: it only ever appears in rate and ETA statistics, and
/// rejecting it would make a healthy resync look like a broken tool to the monitor.
pub fn parse_status_json(text: &str) -> Result<Vec<Resource>, DrbdParseError> {
    let repaired = repair_non_finite(text);
    let value: Value = serde_json::from_str(&repaired).map_err(|source| DrbdParseError::Json {
        format: FORMAT,
        source,
    })?;
    let Value::Array(items) = value else {
        return Err(invalid(
            "top level",
            "type",
            "expected an array of resources",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| resource(item, &format!("resource #{index}")))
        .collect()
}

fn resource(value: &Value, location: &str) -> Result<Resource, DrbdParseError> {
    let object = object(value, location)?;
    let name = string(object, "name", location)?.to_owned();
    let location = format!("resource {name}");
    let devices = list(object, "devices", &location)?
        .iter()
        .enumerate()
        .map(|(i, d)| device(d, &format!("{location} devices[{i}]")))
        .collect::<Result<_, _>>()?;
    let connections = list(object, "connections", &location)?
        .iter()
        .enumerate()
        .map(|(i, c)| connection(c, &format!("{location} connections[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(Resource {
        role: state(object, "role", &location)?,
        suspended: suspended(object, &location)?,
        name,
        devices,
        connections,
    })
}

/// Frozen I/O. Since drbd-utils 9.21 the reasons have their own keys; any of them counts, so a
/// printer that stopped folding one into `suspended` cannot hide a freeze.
fn suspended(object: &Object, location: &str) -> Result<bool, DrbdParseError> {
    let mut frozen = false;
    for key in [
        "suspended",
        "suspended-user",
        "suspended-no-data",
        "suspended-fencing",
        "suspended-quorum",
    ] {
        frozen |= flag(object, key, location)?.unwrap_or(false);
    }
    Ok(frozen)
}

fn device(value: &Value, location: &str) -> Result<Device, DrbdParseError> {
    let object = object(value, location)?;
    Ok(Device {
        volume: number(object, "volume", location)?,
        minor: optional_number(object, "minor", location)?,
        disk: state(object, "disk-state", location)?,
        client: flag(object, "client", location)?,
        quorum: flag(object, "quorum", location)?,
    })
}

fn connection(value: &Value, location: &str) -> Result<Connection, DrbdParseError> {
    let object = object(value, location)?;
    let name = string(object, "name", location)?.to_owned();
    let location = format!("{location} ({name})");
    let peer_devices = list(object, "peer_devices", &location)?
        .iter()
        .enumerate()
        .map(|(i, p)| peer_device(p, &format!("{location} peer_devices[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(Connection {
        peer_node_id: optional_number(object, "peer-node-id", &location)?,
        state: state(object, "connection-state", &location)?,
        peer_role: state(object, "peer-role", &location)?,
        name,
        peer_devices,
    })
}

fn peer_device(value: &Value, location: &str) -> Result<PeerDevice, DrbdParseError> {
    let object = object(value, location)?;
    let replication = state(object, "replication-state", location)?;
    let done = match object.get("percent-resync-done") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64().and_then(percent),
        Some(other) => return Err(invalid(location, "percent-resync-done", &other.to_string())),
    };
    Ok(PeerDevice {
        volume: number(object, "volume", location)?,
        replication,
        peer_disk: state(object, "peer-disk-state", location)?,
        peer_client: flag(object, "peer-client", location)?,
        resync_done_percent: done.filter(|_| replication.is_resync()),
        out_of_sync_kib: optional_number(object, "out-of-sync", location)?,
    })
}

fn object<'a>(value: &'a Value, location: &str) -> Result<&'a Object, DrbdParseError> {
    value
        .as_object()
        .ok_or_else(|| invalid(location, "type", "expected an object"))
}

fn required<'a>(
    object: &'a Object,
    field: &'static str,
    location: &str,
) -> Result<&'a Value, DrbdParseError> {
    object.get(field).ok_or_else(|| DrbdParseError::Missing {
        format: FORMAT,
        location: location.to_owned(),
        field,
    })
}

fn string<'a>(
    object: &'a Object,
    field: &'static str,
    location: &str,
) -> Result<&'a str, DrbdParseError> {
    let value = required(object, field, location)?;
    value
        .as_str()
        .ok_or_else(|| invalid(location, field, &value.to_string()))
}

fn state<T>(object: &Object, field: &'static str, location: &str) -> Result<T, DrbdParseError>
where
    T: std::str::FromStr<Err = crate::model::UnknownStateError>,
{
    string(object, field, location)?
        .parse()
        .map_err(|source| DrbdParseError::UnknownState {
            format: FORMAT,
            location: format!("{location} {field}"),
            source,
        })
}

/// A list that older drbd-utils leave out when empty (no volumes before 9.12, no peer devices
/// when a resource has no devices or no connections).
fn list<'a>(
    object: &'a Object,
    field: &'static str,
    location: &str,
) -> Result<&'a [Value], DrbdParseError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(invalid(location, field, &other.to_string())),
    }
}

fn number(object: &Object, field: &'static str, location: &str) -> Result<u32, DrbdParseError> {
    optional_number(object, field, location)?.ok_or_else(|| DrbdParseError::Missing {
        format: FORMAT,
        location: location.to_owned(),
        field,
    })
}

fn optional_number<T: TryFrom<u64>>(
    object: &Object,
    field: &'static str,
    location: &str,
) -> Result<Option<T>, DrbdParseError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| T::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid(location, field, &value.to_string())),
    }
}

/// A boolean, also in the string spelling of drbd-utils before 9.4.
fn flag(
    object: &Object,
    field: &'static str,
    location: &str,
) -> Result<Option<bool>, DrbdParseError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "yes" || s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "no" || s == "false" => Ok(Some(false)),
        Some(other) => Err(invalid(location, field, &other.to_string())),
    }
}

fn invalid(location: &str, field: &str, value: &str) -> DrbdParseError {
    DrbdParseError::InvalidValue {
        format: FORMAT,
        location: location.to_owned(),
        field: field.to_owned(),
        value: shorten(value, SHOWN_VALUE_LEN),
    }
}

/// Replaces bare `nan`, `-nan`, `inf`, `-inf` (any case) outside strings with `null`. Only
/// whole words are touched, and nothing inside a string, so a resource called "nan" survives.
fn repair_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let len = c.len_utf8();
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            out.push(c);
            rest = rest.get(len..).unwrap_or("");
            continue;
        }
        if c == '"' {
            in_string = true;
            out.push(c);
            rest = rest.get(len..).unwrap_or("");
            continue;
        }
        if c == '-' || c.is_ascii_alphabetic() {
            let word_len = rest
                .char_indices()
                .skip(1)
                .find(|(_, ch)| !ch.is_ascii_alphanumeric())
                .map_or(rest.len(), |(i, _)| i);
            let word = rest.get(..word_len).unwrap_or("");
            let bare = word.strip_prefix('-').unwrap_or(word).to_ascii_lowercase();
            if matches!(bare.as_str(), "nan" | "inf" | "infinity") {
                out.push_str("null");
            } else {
                out.push_str(word);
            }
            rest = rest.get(word_len..).unwrap_or("");
            continue;
        }
        out.push(c);
        rest = rest.get(len..).unwrap_or("");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DiskState, Role};

    #[test]
    fn repair_touches_only_bare_non_finite_words() {
        assert_eq!(
            repair_non_finite(r#"{"a": nan, "b": -inf, "c": "nan", "d": -1.5e3, "e": true}"#),
            r#"{"a": null, "b": null, "c": "nan", "d": -1.5e3, "e": true}"#
        );
        assert_eq!(
            repair_non_finite(r#"["x\"nan", NaN]"#),
            r#"["x\"nan", null]"#
        );
        assert_eq!(
            repair_non_finite("\"unterminated nan"),
            "\"unterminated nan"
        );
        assert_eq!(repair_non_finite("ünïcödé nan"), "ünïcödé null");
    }

    #[test]
    fn minimal_resource_without_lists() {
        let resources =
            parse_status_json(r#"[{"name": "r0", "role": "Secondary", "suspended": false}]"#)
                .unwrap();
        assert_eq!(resources.len(), 1);
        assert_eq!(resources[0].role, Role::Secondary);
        assert!(resources[0].devices.is_empty());
        assert!(resources[0].connections.is_empty());
    }

    #[test]
    fn any_suspension_reason_means_suspended() {
        let text =
            r#"[{"name": "r0", "role": "Primary", "suspended": false, "suspended-quorum": true}]"#;
        assert!(parse_status_json(text).unwrap()[0].suspended);
    }

    #[test]
    fn old_string_booleans_are_read() {
        let text = r#"[{"name": "r0", "role": "Primary", "suspended": false, "devices": [
            {"volume": 0, "minor": 1, "disk-state": "UpToDate", "client": "no", "quorum": "yes"}]}]"#;
        let device = &parse_status_json(text).unwrap()[0].devices[0];
        assert_eq!(device.client, Some(false));
        assert_eq!(device.quorum, Some(true));
        assert_eq!(device.disk, DiskState::UpToDate);
    }

    #[test]
    fn errors_name_the_place() {
        let err = parse_status_json(r#"[{"name": "r0", "role": "Boss"}]"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "drbdsetup status --json, resource r0 role: unknown role \"Boss\""
        );
        let err =
            parse_status_json(r#"[{"name": "r0", "role": "Primary", "devices": [{"volume": 0}]}]"#)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "drbdsetup status --json, resource r0 devices[0]: disk-state is missing"
        );
        let err = parse_status_json(r#"{"name": "r0"}"#).unwrap_err();
        assert!(matches!(err, DrbdParseError::InvalidValue { .. }), "{err}");
        let err = parse_status_json(
            r#"[{"name": "r0", "role": "Primary", "devices": [{"volume": -1, "disk-state": "UpToDate"}]}]"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("volume has invalid value \"-1\""),
            "{err}"
        );
    }
}
