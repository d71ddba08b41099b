//! The Pacemaker configuration of a Clever cluster, generated from one typed description.
//!
//! A [`Description`] (TOML) names the nodes, fencing, the gateways to ping, and each VM with its
//! DRBD resource, mount and address. [`build::build`] checks it and turns it into one
//! [`Configuration`] in Pacemaker's own terms; [`xml`], [`crm`] and [`pcs`] render that single
//! model as a CIB for `cibadmin`, as `crm configure` input and as a `pcs` script.
//!
//! Per VM the stack is: the `ocf:linbit:drbd` promotable clone (`notify=true`) → the
//! `ocf:clever:drbdfs` mount → the `ocf:clever:vm` domain → the `ocf:heartbeat:IPaddr2` address,
//! colocated with INFINITY and ordered mandatorily (so stops run in reverse), the VM also after
//! the libvirtd clone. The Promoted role is banned from nodes whose gateway score (the
//! `ocf:clever:gwping` clone's attribute) is undefined or ≤ 0.

pub mod agents;
pub mod build;
pub mod crm;
pub mod description;
pub mod error;
pub mod pacemaker;
pub mod pcs;
pub mod xml;

pub use build::build;
pub use description::Description;
pub use error::{DescriptionError, GenerateError};
pub use pacemaker::Configuration;

/// The three renderings of one description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    /// The CIB (`cib.xml`).
    pub cib_xml: String,
    /// `crm configure` input (`crm.txt`).
    pub crm: String,
    /// The `pcs` script (`pcs.sh`).
    pub pcs: String,
    /// Warnings an admin must see (fencing placeholders or fencing disabled).
    pub warnings: Vec<String>,
}

/// Parses, checks and renders a TOML description.
pub fn generate(toml_text: &str) -> Result<Outputs, GenerateError> {
    let description = Description::from_toml(toml_text)?;
    let configuration = build(&description)?;
    Ok(Outputs {
        cib_xml: xml::render(&configuration)?,
        crm: crm::render(&configuration),
        pcs: pcs::render(&configuration),
        warnings: configuration.warnings,
    })
}
