//! The admin verbs, as `crm_resource`/`crm_mon` command lines run through the bounded runner.

use std::ffi::OsString;
use std::path::PathBuf;

use clever_command::{CommandError, CommandLine, RunCommand};
use clever_deadline::Deadline;

use crate::configuration::{parse_resources, Primitive};
use crate::status::{
    parse_crm_mon, parse_location_constraints, ClusterStatus, CrmMonError, LocationConstraint,
};

/// A Pacemaker command failed.
#[derive(Debug, thiserror::Error)]
pub enum PacemakerError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Status(#[from] CrmMonError),
}

/// What `forcestart`/`forcestop` ask of Pacemaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRole {
    Started,
    Stopped,
}

impl TargetRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "Started",
            Self::Stopped => "Stopped",
        }
    }
}

/// Pacemaker's command-line tools, against the live cluster or a CIB file.
#[derive(Debug, Clone)]
pub struct Pacemaker<R> {
    runner: R,
    /// When set, every tool works on this file (`CIB_file`) instead of the live CIB: how the
    /// scenario tests and `crm_simulate` results are read.
    cib_file: Option<PathBuf>,
}

impl<R: RunCommand> Pacemaker<R> {
    pub fn live(runner: R) -> Self {
        Self {
            runner,
            cib_file: None,
        }
    }

    pub fn on_file(runner: R, cib_file: impl Into<PathBuf>) -> Self {
        Self {
            runner,
            cib_file: Some(cib_file.into()),
        }
    }

    fn command(&self, program: &str) -> CommandLine {
        let command = CommandLine::new(program);
        match &self.cib_file {
            Some(file) => command.env("CIB_file", OsString::from(file.as_os_str())),
            None => command,
        }
    }

    /// The whole cluster state, including fail counts and bans.
    pub fn status(&self, deadline: &Deadline) -> Result<ClusterStatus, PacemakerError> {
        let command =
            self.command("crm_mon")
                .args(["--one-shot", "--output-as=xml", "--include=all"]);
        let output = self.runner.run_ok(&command, deadline)?;
        Ok(parse_crm_mon(&output.stdout_text())?)
    }

    /// Sets the `target-role` meta attribute: Pacemaker then starts or stops the resource.
    pub fn set_target_role(
        &self,
        resource: &str,
        role: TargetRole,
        deadline: &Deadline,
    ) -> Result<(), PacemakerError> {
        let command = self.command("crm_resource").args([
            "--resource",
            resource,
            "--meta",
            "--set-parameter",
            "target-role",
            "--parameter-value",
            role.as_str(),
        ]);
        self.runner.run_ok(&command, deadline)?;
        Ok(())
    }

    /// Forgets failures so the resource may run again where it reached its threshold.
    pub fn cleanup(
        &self,
        resource: Option<&str>,
        node: Option<&str>,
        deadline: &Deadline,
    ) -> Result<(), PacemakerError> {
        let mut command = self.command("crm_resource").arg("--cleanup");
        if let Some(resource) = resource {
            command = command.args(["--resource", resource]);
        }
        if let Some(node) = node {
            command = command.args(["--node", node]);
        }
        self.runner.run_ok(&command, deadline)?;
        Ok(())
    }

    /// Forbids `resource` on `node` (a `cli-ban-…` constraint) until [`Pacemaker::clear`].
    /// With `promoted_only`, only the promoted role is banned: the way to move DRBD's Primary
    /// without also stopping the Secondary that keeps replicating.
    pub fn ban(
        &self,
        resource: &str,
        node: &str,
        promoted_only: bool,
        deadline: &Deadline,
    ) -> Result<(), PacemakerError> {
        let mut command =
            self.command("crm_resource")
                .args(["--ban", "--resource", resource, "--node", node]);
        if promoted_only {
            command = command.arg("--promoted");
        }
        self.runner.run_ok(&command, deadline)?;
        Ok(())
    }

    /// Prefers `node` for `resource` (a `cli-prefer-…` constraint) until [`Pacemaker::clear`];
    /// with `promoted_only`, for the promoted role of a promotable clone.
    pub fn move_to(
        &self,
        resource: &str,
        node: &str,
        promoted_only: bool,
        deadline: &Deadline,
    ) -> Result<(), PacemakerError> {
        let mut command =
            self.command("crm_resource")
                .args(["--move", "--resource", resource, "--node", node]);
        if promoted_only {
            command = command.arg("--promoted");
        }
        self.runner.run_ok(&command, deadline)?;
        Ok(())
    }

    /// Location constraints left by the admin verbs (`cli-ban-…`, `cli-prefer-…`). crm_mon lists
    /// bans only, but a forgotten `cli-prefer` pins a resource just as surely.
    pub fn cli_constraints(
        &self,
        deadline: &Deadline,
    ) -> Result<Vec<LocationConstraint>, PacemakerError> {
        let command = self
            .command("cibadmin")
            .args(["--query", "--scope", "constraints"]);
        let output = self.runner.run_ok(&command, deadline)?;
        Ok(parse_location_constraints(&output.stdout_text())?
            .into_iter()
            .filter(|c| c.id.starts_with("cli-"))
            .collect())
    }

    /// Every configured primitive with its agent, parameters and enclosing clone/group.
    pub fn primitives(&self, deadline: &Deadline) -> Result<Vec<Primitive>, PacemakerError> {
        let command = self
            .command("cibadmin")
            .args(["--query", "--scope", "resources"]);
        let output = self.runner.run_ok(&command, deadline)?;
        Ok(parse_resources(&output.stdout_text())?)
    }

    /// The CIB's status section as XML: each node's operation history (`lrm_rsc_op`).
    pub fn status_section(&self, deadline: &Deadline) -> Result<String, PacemakerError> {
        let command = self
            .command("cibadmin")
            .args(["--query", "--scope", "status"]);
        Ok(self.runner.run_ok(&command, deadline)?.stdout_text())
    }

    /// The name of the node this runs on, as the cluster knows it.
    pub fn local_node(&self, deadline: &Deadline) -> Result<String, PacemakerError> {
        let output = self
            .runner
            .run_ok(&self.command("crm_node").arg("--name"), deadline)?;
        Ok(output.stdout_text().trim().to_owned())
    }

    /// Removes every `cli-ban-…`/`cli-prefer-…` constraint of `resource`.
    pub fn clear(&self, resource: &str, deadline: &Deadline) -> Result<(), PacemakerError> {
        let command = self
            .command("crm_resource")
            .args(["--clear", "--resource", resource]);
        self.runner.run_ok(&command, deadline)?;
        Ok(())
    }
}
