//! What the cluster told this invocation, read once by the framework.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clever_deadline::Deadline;

use crate::action::Action;
use crate::run_dir;

/// The arguments and environment of one agent run. Production reads the process; tests build
/// one by hand, so no test has to change its own environment.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    args: Vec<OsString>,
    vars: BTreeMap<String, OsString>,
}

impl Invocation {
    pub fn from_process() -> Self {
        Self {
            args: std::env::args_os().skip(1).collect(),
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
                .collect(),
        }
    }

    pub fn new<A, K, V>(args: A, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        A: IntoIterator,
        A::Item: Into<OsString>,
        K: Into<String>,
        V: Into<OsString>,
    {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    pub fn var_os(&self, key: &str) -> Option<OsString> {
        self.vars.get(key).cloned()
    }

    /// A variable as text; `None` when unset, empty or not UTF-8.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .and_then(|v| v.to_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// A number of milliseconds as Pacemaker passes `CRM_meta_timeout` and `CRM_meta_interval`.
    pub(crate) fn millis(&self, key: &str) -> Result<Option<Duration>, String> {
        match self.var(key) {
            None => Ok(None),
            Some(text) => text
                .parse::<u64>()
                .map(|ms| Some(Duration::from_millis(ms)))
                .map_err(|_| format!("{key}={text:?} is not a number of milliseconds")),
        }
    }

    /// Every `OCF_RESKEY_CRM_meta_<name>` as `<name>` → value.
    pub(crate) fn meta(&self) -> BTreeMap<String, String> {
        const PREFIX: &str = "OCF_RESKEY_CRM_meta_";
        self.vars
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(PREFIX)?;
                Some((name.to_owned(), v.to_str()?.to_owned()))
            })
            .collect()
    }
}

/// Everything a handler needs to know about the run it is part of.
#[derive(Debug, Clone)]
pub struct Context {
    pub action: Action,
    /// The budget of this action: pass it to every wait and every external command.
    pub deadline: Deadline,
    /// A monitor with interval 0: Pacemaker asking "is it running here?" on a node where it may
    /// never have been configured. A probe must not fail for a resource that is simply absent.
    pub probe: bool,
    /// `OCF_CHECK_LEVEL`: how deep a monitor looks (0, 10, 20 by convention).
    pub check_level: u32,
    /// `OCF_RESOURCE_INSTANCE`, or the agent name when run by hand.
    pub instance: String,
    /// The recurring interval of this operation; zero for one-shot actions and probes.
    pub interval: Duration,
    /// Where node-local state and locks live (`HA_RSCTMP` by the rule of [`run_dir::resolve`]):
    /// always absolute, so no file lands where the agent happened to be started.
    pub run_dir: PathBuf,
    meta: BTreeMap<String, String>,
}

impl Context {
    /// Any other `OCF_RESKEY_CRM_meta_<name>` Pacemaker passed (`notify_type`, `on_node`, …).
    pub fn meta(&self, name: &str) -> Option<&str> {
        self.meta.get(name).map(String::as_str)
    }

    pub(crate) fn new(
        action: Action,
        deadline: Deadline,
        invocation: &Invocation,
        agent_name: &str,
    ) -> Result<Self, String> {
        let interval = invocation
            .millis("OCF_RESKEY_CRM_meta_interval")?
            .unwrap_or_default();
        // Pacemaker marks a probe with an explicit interval of 0; an unset interval (a run by
        // hand) is not a probe, as in ocf-shellfuncs' ocf_is_probe.
        let probe = action == Action::Monitor
            && invocation.var("OCF_RESKEY_CRM_meta_interval").is_some()
            && interval.is_zero();
        let check_level = match invocation.var("OCF_CHECK_LEVEL") {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| format!("OCF_CHECK_LEVEL={text:?} is not a number"))?,
        };
        Ok(Self {
            action,
            deadline,
            probe,
            check_level,
            instance: invocation
                .var("OCF_RESOURCE_INSTANCE")
                .unwrap_or(agent_name)
                .to_owned(),
            interval,
            run_dir: run_dir::resolve(invocation.var_os(run_dir::VARIABLE).as_deref()),
            meta: invocation.meta(),
        })
    }

    /// A context for unit tests of handlers.
    pub fn for_test(action: Action, deadline: Deadline) -> Self {
        Self {
            action,
            deadline,
            probe: false,
            check_level: 0,
            instance: "test".to_owned(),
            interval: Duration::ZERO,
            run_dir: PathBuf::from(run_dir::DEFAULT),
            meta: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_dir_with(vars: &[(&str, &str)]) -> PathBuf {
        let invocation = Invocation::new(["start"], vars.iter().copied());
        let deadline = Deadline::after(Duration::from_secs(1));
        Context::new(Action::Start, deadline, &invocation, "agent")
            .map(|context| context.run_dir)
            .unwrap_or_default()
    }

    #[test]
    fn the_run_dir_follows_ha_rsctmp_only_when_absolute() {
        assert_eq!(run_dir_with(&[]), PathBuf::from(run_dir::DEFAULT));
        assert_eq!(
            run_dir_with(&[("HA_RSCTMP", "")]),
            PathBuf::from(run_dir::DEFAULT)
        );
        assert_eq!(
            run_dir_with(&[("HA_RSCTMP", "run")]),
            PathBuf::from(run_dir::DEFAULT)
        );
        assert_eq!(
            run_dir_with(&[("HA_RSCTMP", "/tmp/rsc")]),
            PathBuf::from("/tmp/rsc")
        );
    }
}
