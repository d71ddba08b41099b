//! The metadata XML, written from the declaration.
//!
//! It must satisfy two grammars that disagree (see `docs/metadata.md`): resource-agents'
//! `ra-api-1.dtd`, which `ocf-tester` enforces, and the OCF 1.1 RelaxNG grammar
//! (`metadata.rng`). We emit the intersection: OCF 1.1 roles, `lang` on every description,
//! choices as `string` with the accepted values spelled out in the long description.

use std::io;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::declaration::{Agent, Declaration, META_DATA_TIMEOUT_SECS};

/// The OCF API version our metadata follows.
pub const OCF_VERSION: &str = "1.1";

/// Writes the metadata document for `declaration`.
pub fn metadata_xml<A: Agent>(declaration: &Declaration<A>) -> io::Result<String> {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", None, None)))?;
    writer.write_event(Event::DocType(BytesText::from_escaped(
        "resource-agent SYSTEM \"ra-api-1.dtd\"",
    )))?;
    writer
        .create_element("resource-agent")
        .with_attribute(("name", declaration.name))
        .with_attribute(("version", declaration.version))
        .write_inner_content(|w| {
            w.create_element("version")
                .write_text_content(BytesText::new(OCF_VERSION))?;
            description(w, "longdesc", declaration.longdesc.trim())?;
            description(w, "shortdesc", declaration.shortdesc.trim())?;
            w.create_element("parameters").write_inner_content(|w| {
                for spec in declaration.parameters {
                    let mut element = w
                        .create_element("parameter")
                        .with_attribute(("name", spec.name()));
                    if spec.required() {
                        element = element.with_attribute(("required", "1"));
                    }
                    if spec.unique() {
                        element = element.with_attribute(("unique", "1"));
                    }
                    element.write_inner_content(|w| {
                        let mut long = spec.longdesc().trim().to_owned();
                        if let Some(choices) = spec.choices() {
                            long.push_str(&format!("\nAllowed values: {}.", choices.join(", ")));
                        }
                        description(w, "longdesc", &long)?;
                        description(w, "shortdesc", spec.shortdesc().trim())?;
                        let mut content = w
                            .create_element("content")
                            .with_attribute(("type", spec.content_type().as_str()));
                        if let Some(default) = spec.default() {
                            content = content.with_attribute(("default", default));
                        }
                        content.write_empty()?;
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
            w.create_element("actions").write_inner_content(|w| {
                for spec in declaration.actions {
                    let timeout = format!("{}s", spec.timeout_secs);
                    let interval = spec.interval_secs.map(|s| format!("{s}s"));
                    let depth = spec.depth.map(|d| d.to_string());
                    let mut element = w
                        .create_element("action")
                        .with_attribute(("name", spec.action.as_str()))
                        .with_attribute(("timeout", timeout.as_str()));
                    if let Some(interval) = &interval {
                        element = element.with_attribute(("interval", interval.as_str()));
                    }
                    if let Some(depth) = &depth {
                        element = element.with_attribute(("depth", depth.as_str()));
                    }
                    if let Some(role) = spec.role {
                        element = element.with_attribute(("role", role.as_str()));
                    }
                    element.write_empty()?;
                }
                let timeout = format!("{META_DATA_TIMEOUT_SECS}s");
                w.create_element("action")
                    .with_attribute(("name", "meta-data"))
                    .with_attribute(("timeout", timeout.as_str()))
                    .write_empty()?;
                Ok(())
            })?;
            Ok(())
        })?;
    let mut xml = String::from_utf8(writer.into_inner())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    xml.push('\n');
    Ok(xml)
}

fn description(w: &mut Writer<Vec<u8>>, tag: &str, text: &str) -> io::Result<()> {
    w.create_element(tag)
        .with_attribute(("lang", "en"))
        .write_text_content(BytesText::new(text))?;
    Ok(())
}
