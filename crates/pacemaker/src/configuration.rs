//! The resources section of the CIB (`cibadmin --query --scope resources`): which primitives
//! exist, with which agent and parameters, inside which clone or group. crm_mon shows where
//! things run; only the configuration tells which domain a VM resource manages or which clone is
//! the promotable DRBD one.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::status::CrmMonError;

/// A configured primitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primitive {
    pub id: String,
    pub class: String,
    pub provider: Option<String>,
    /// The agent type (`vm`, `drbd`, `Dummy` …).
    pub agent_type: String,
    /// Instance attributes (the agent's parameters).
    pub parameters: BTreeMap<String, String>,
    /// The clone or group it sits in, innermost first.
    pub parents: Vec<String>,
    /// The id of the promotable clone it belongs to, if any.
    pub promotable_clone: Option<String>,
}

impl Primitive {
    /// `class:provider:type` as Pacemaker writes it.
    pub fn agent(&self) -> String {
        match &self.provider {
            Some(provider) => format!("{}:{provider}:{}", self.class, self.agent_type),
            None => format!("{}:{}", self.class, self.agent_type),
        }
    }

    /// The id admins act on: the outermost clone or group, else the primitive itself.
    pub fn top_level_id(&self) -> &str {
        self.parents.last().unwrap_or(&self.id)
    }
}

/// Parses a `<resources>` element.
pub fn parse_resources(xml: &str) -> Result<Vec<Primitive>, CrmMonError> {
    let raw: Resources = quick_xml::de::from_str(xml)?;
    let mut out = Vec::new();
    for item in raw.items {
        walk(item, &[], None, &mut out);
    }
    Ok(out)
}

fn walk(item: Item, parents: &[String], promotable: Option<&str>, out: &mut Vec<Primitive>) {
    match item {
        Item::Primitive(p) => out.push(Primitive {
            id: p.id,
            class: p.class,
            provider: p.provider,
            agent_type: p.kind,
            parameters: p
                .instance_attributes
                .into_iter()
                .flat_map(|set| set.nvpairs)
                .map(|nv| (nv.name, nv.value))
                .collect(),
            parents: parents.to_vec(),
            promotable_clone: promotable.map(str::to_owned),
        }),
        Item::Master(c) => collective(c, true, parents, promotable, out),
        Item::Clone(c) | Item::Group(c) | Item::Bundle(c) => {
            collective(c, false, parents, promotable, out);
        }
        Item::Other => {}
    }
}

/// Descends into a clone, group or bundle; a legacy `<master>` is promotable by definition.
fn collective(
    c: Collective,
    legacy_master: bool,
    parents: &[String],
    promotable: Option<&str>,
    out: &mut Vec<Primitive>,
) {
    let is_promotable = legacy_master
        || c.meta_attributes
            .iter()
            .flat_map(|set| &set.nvpairs)
            .any(|nv| nv.name == "promotable" && is_true(&nv.value));
    let promotable = if is_promotable {
        Some(c.id.as_str())
    } else {
        promotable
    };
    let mut inner = vec![c.id.clone()];
    inner.extend_from_slice(parents);
    for child in c.items {
        walk(child, &inner, promotable, out);
    }
}

fn is_true(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1" | "y"
    )
}

#[derive(Debug, Deserialize)]
struct Resources {
    #[serde(rename = "$value", default)]
    items: Vec<Item>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Item {
    Primitive(RawPrimitive),
    Clone(Collective),
    Master(Collective),
    Group(Collective),
    Bundle(Collective),
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct Collective {
    #[serde(rename = "@id")]
    id: String,
    #[serde(rename = "meta_attributes", default)]
    meta_attributes: Vec<NvSet>,
    #[serde(rename = "$value", default)]
    items: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct RawPrimitive {
    #[serde(rename = "@id")]
    id: String,
    #[serde(rename = "@class")]
    class: String,
    #[serde(rename = "@provider")]
    provider: Option<String>,
    #[serde(rename = "@type")]
    kind: String,
    #[serde(rename = "instance_attributes", default)]
    instance_attributes: Vec<NvSet>,
}

#[derive(Debug, Deserialize)]
struct NvSet {
    #[serde(rename = "nvpair", default)]
    nvpairs: Vec<NvPair>,
}

#[derive(Debug, Deserialize)]
struct NvPair {
    #[serde(rename = "@name")]
    name: String,
    #[serde(rename = "@value", default)]
    value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_primitives_parents_parameters_and_promotable_clones() {
        let xml = r#"<resources>
          <clone id="drbd-clone"><meta_attributes id="m"><nvpair id="p" name="promotable" value="true"/></meta_attributes>
            <primitive id="drbd" class="ocf" provider="linbit" type="drbd">
              <instance_attributes id="i"><nvpair id="r" name="drbd_resource" value="r0"/></instance_attributes>
            </primitive></clone>
          <group id="stack">
            <primitive id="fs" class="ocf" provider="clever" type="drbdfs"/>
            <primitive id="vm" class="ocf" provider="clever" type="vm">
              <instance_attributes id="v"><nvpair id="d" name="domain" value="clever"/></instance_attributes>
            </primitive>
          </group>
          <clone id="ping-clone"><primitive id="ping" class="ocf" provider="clever" type="gwping"/></clone>
          <primitive id="libvirtd" class="systemd" type="libvirtd"/>
        </resources>"#;
        let primitives = parse_resources(xml).unwrap();
        let by_id = |id: &str| primitives.iter().find(|p| p.id == id).unwrap();
        assert_eq!(
            by_id("drbd").promotable_clone.as_deref(),
            Some("drbd-clone")
        );
        assert_eq!(by_id("drbd").parameters["drbd_resource"], "r0");
        assert_eq!(by_id("vm").agent(), "ocf:clever:vm");
        assert_eq!(by_id("vm").top_level_id(), "stack");
        assert_eq!(by_id("ping").promotable_clone, None);
        assert_eq!(by_id("libvirtd").agent(), "systemd:libvirtd");
        assert_eq!(by_id("libvirtd").top_level_id(), "libvirtd");
    }
}
