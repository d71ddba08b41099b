//! What our agents say about the resources the generator writes for them.
//!
//! Every `ocf:clever:*` primitive's parameters, exactly as the CIB will pass them, go through the
//! agent's own first stage (`clever-agent-params`, the code the agent runs before any action):
//! a generated CIB that `crm_verify` accepts must not hold a resource its agent would refuse at
//! every start. The generator's own checks come first and give the description's terms; this one
//! has the last word.

use crate::error::DescriptionError;
use crate::pacemaker::{Agent, Configuration};

/// The provider of our agents, `ocf:clever:<agent>`.
pub const PROVIDER: &str = "clever";

/// Runs every `ocf:clever:*` primitive of `configuration` through its agent's first stage.
pub fn check(configuration: &Configuration) -> Result<(), DescriptionError> {
    for primitive in configuration.primitives() {
        let Agent::Ocf { provider, kind } = &primitive.agent else {
            continue;
        };
        if provider != PROVIDER {
            continue;
        }
        let refused = |reason: String| DescriptionError::AgentRefuses {
            resource: primitive.id.clone(),
            agent: primitive.agent.to_string(),
            reason,
        };
        let agent = clever_agent_params::agent(kind)
            .ok_or_else(|| refused("no such agent is built here".to_owned()))?;
        agent
            .check(
                primitive
                    .params
                    .iter()
                    .map(|pair| (pair.name.as_str(), pair.value.as_str())),
            )
            .map_err(|refusal| refused(refusal.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacemaker::{NvPair, Primitive, Resource};

    fn configuration(agent: Agent, params: &[(&str, &str)]) -> Configuration {
        Configuration {
            warnings: Vec::new(),
            properties: Vec::new(),
            nodes: Vec::new(),
            resources: vec![Resource::Primitive(Primitive {
                id: "r".to_owned(),
                agent,
                comment: None,
                params: params.iter().map(|(n, v)| NvPair::new(*n, *v)).collect(),
                meta: Vec::new(),
                ops: Vec::new(),
            })],
            constraints: Vec::new(),
            rsc_defaults: Vec::new(),
        }
    }

    #[test]
    fn only_our_agents_are_asked() {
        let stock = configuration(
            Agent::ocf("heartbeat", "Filesystem"),
            &[("options", "bind")],
        );
        assert_eq!(check(&stock), Ok(()));
        let ours = configuration(
            Agent::ocf(PROVIDER, "gwping"),
            &[("host_list", "192.0.2.1")],
        );
        assert_eq!(check(&ours), Ok(()));
    }

    #[test]
    fn a_refusal_names_resource_agent_parameter_and_reason() {
        let bad = configuration(Agent::ocf(PROVIDER, "gwping"), &[("host_list", "gw=0")]);
        let message = check(&bad).unwrap_err().to_string();
        assert!(
            message.starts_with("resource r: ocf:clever:gwping would refuse it")
                && message.contains("host_list")
                && message.contains("weight"),
            "{message}"
        );
        let undeclared = configuration(
            Agent::ocf(PROVIDER, "gwping"),
            &[("host_list", "192.0.2.1"), ("hostlist", "x")],
        );
        assert!(check(&undeclared)
            .unwrap_err()
            .to_string()
            .contains("hostlist is not one the agent declares"));
        let unknown = configuration(Agent::ocf(PROVIDER, "nfs"), &[]);
        assert!(check(&unknown).is_err());
    }
}
