//! The one fact the agent reads from a domain XML: the domain's name.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::params::check_domain_name;

/// What identifies a domain to libvirt: its name and UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    /// Normalised: 32 lowercase hex digits, no dashes.
    pub uuid: Option<String>,
}

/// The `<name>` of the `<domain>` document `text`, checked to be usable as a file name.
pub fn domain_name(text: &str) -> Result<String, String> {
    domain_identity(text).map(|identity| identity.name)
}

/// The `<name>` and `<uuid>` of the `<domain>` document `text`.
pub fn domain_identity(text: &str) -> Result<Identity, String> {
    let mut reader = Reader::from_str(text);
    let mut depth = 0_usize;
    let mut in_name = false;
    let mut in_uuid = false;
    let mut name: Option<String> = None;
    let mut uuid: Option<String> = None;
    let mut saw_root = false;
    loop {
        match reader.read_event() {
            Err(e) => {
                return Err(format!(
                    "not well-formed XML at byte {}: {e}",
                    reader.buffer_position()
                ))
            }
            Ok(Event::Eof) => break,
            Ok(Event::Start(element)) => {
                if depth == 0 {
                    if element.name().as_ref() != b"domain" {
                        return Err("the root element is not <domain>".to_owned());
                    }
                    saw_root = true;
                } else if depth == 1 && element.name().as_ref() == b"name" {
                    in_name = true;
                    name.get_or_insert_with(String::new);
                } else if depth == 1 && element.name().as_ref() == b"uuid" {
                    in_uuid = true;
                    uuid.get_or_insert_with(String::new);
                }
                depth += 1;
            }
            Ok(Event::Empty(element)) => {
                if depth == 0 {
                    return Err(if element.name().as_ref() == b"domain" {
                        "the <domain> element is empty".to_owned()
                    } else {
                        "the root element is not <domain>".to_owned()
                    });
                }
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                in_name = false;
                in_uuid = false;
                if depth == 0 {
                    break;
                }
            }
            Ok(Event::Text(content)) if in_name || in_uuid => {
                let piece = content
                    .unescape()
                    .map_err(|e| format!("bad text in <name> or <uuid>: {e}"))?;
                let target = if in_name {
                    name.as_mut()
                } else {
                    uuid.as_mut()
                };
                if let Some(target) = target {
                    target.push_str(&piece);
                }
            }
            Ok(_) => {}
        }
    }
    if !saw_root {
        return Err("no <domain> element".to_owned());
    }
    let name = name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| "<domain> has no <name>".to_owned())?;
    check_domain_name(&name).map_err(|reason| format!("domain name {name:?} {reason}"))?;
    let uuid = uuid.map(|u| normalise_uuid(&u)).transpose()?;
    Ok(Identity { name, uuid })
}

/// A UUID as libvirt accepts it (hex digits, dashes anywhere), as 32 lowercase hex digits.
pub fn normalise_uuid(text: &str) -> Result<String, String> {
    let digits: String = text
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if digits.len() == 32 && digits.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(digits)
    } else {
        Err(format!("<uuid> {:?} is not a UUID", text.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_name() {
        let xml = "<?xml version='1.0'?>\n<domain type='qemu'><name> clever&amp;co </name>\
                   <devices><name>not this</name></devices></domain>";
        assert_eq!(domain_name(xml).unwrap(), "clever&co");
    }

    #[test]
    fn reads_and_normalises_the_uuid() {
        let xml =
            "<domain><uuid>6FB5AC16-4415-4ea6-b8d5-6f8223e0212b</uuid><name>a</name></domain>";
        let identity = domain_identity(xml).unwrap();
        assert_eq!(
            identity.uuid.as_deref(),
            Some("6fb5ac1644154ea6b8d56f8223e0212b")
        );
        assert_eq!(
            domain_identity("<domain><name>a</name></domain>")
                .unwrap()
                .uuid,
            None
        );
        assert!(domain_identity("<domain><name>a</name><uuid>xyz</uuid></domain>").is_err());
    }

    #[test]
    fn refuses_what_names_no_domain() {
        for bad in [
            "",
            "<network><name>x</name></network>",
            "<domain type='qemu'></domain>",
            "<domain><name></name></domain>",
            "<domain><name>../etc</name></domain>",
            "<domain><name>a</nam></domain>",
            "<domain/>",
            "garbage <<<",
        ] {
            assert!(domain_name(bad).is_err(), "{bad:?}");
        }
    }
}
