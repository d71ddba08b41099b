//! The seam between the web layer and the cluster: the live implementation calls clevervm's
//! library (the same checks, refusals and actions as the command); tests use a recording fake.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clever_command::HostCommands;
use clever_deadline::Deadline;
use clever_pacemaker::Pacemaker;
use clevervm::collect::{collect, Sources};
use clevervm::error::ClevervmError;
use clevervm::{verbs, StatusReport};
use serde::Serialize;

/// What a move would do, for the confirmation an admin reads before it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovePlan {
    /// Where the VM runs now (what a move without a target moves it away from).
    pub from: String,
    /// The nodes that may take it (one when a target was named).
    pub to: Vec<String>,
    /// The VM resources that will be hibernated and resumed.
    pub vms: Vec<String>,
    /// How long the VM was away during the last recorded move, if one is recorded.
    pub last_move: Option<Duration>,
}

/// Every call blocks (Pacemaker's tools run to completion); the server runs them on blocking
/// threads, one action at a time.
pub trait Cluster: Send + Sync + 'static {
    /// The same report as `clevervm status --json`.
    fn report(&self) -> StatusReport;
    /// Whether a move may start, and what it would do; refuses as `clevervm migrate` would.
    fn plan_migrate(&self, to: Option<&str>) -> Result<MovePlan, ClevervmError>;
    /// Places the constraints, then follows the move to its end, writing one line per change.
    fn migrate(&self, to: Option<&str>, progress: &mut dyn Write) -> Result<(), ClevervmError>;
    fn unmigrate(&self, progress: &mut dyn Write) -> Result<(), ClevervmError>;
    fn cleanup(&self, progress: &mut dyn Write) -> Result<(), ClevervmError>;
}

/// The cluster this node is part of, through Pacemaker's tools.
#[derive(Debug, Clone)]
pub struct LiveCluster {
    sources: Sources<HostCommands>,
    /// Act as if on this node (for a CIB file; else `crm_node --name`).
    node: Option<String>,
    timeout: Duration,
    move_timeout: Duration,
}

impl LiveCluster {
    pub fn new(
        cib_file: Option<PathBuf>,
        node: Option<String>,
        timeout: Duration,
        move_timeout: Duration,
    ) -> Self {
        let mut sources = Sources::live(HostCommands);
        if let Some(file) = cib_file {
            sources.pacemaker = Pacemaker::on_file(HostCommands, &file);
            sources.cib_on_disk = file;
        }
        Self {
            sources,
            node,
            timeout,
            move_timeout,
        }
    }

    fn deadline(&self) -> Deadline {
        Deadline::after(self.timeout)
    }

    fn local_node(&self, deadline: &Deadline) -> Result<String, ClevervmError> {
        match &self.node {
            Some(node) => Ok(node.clone()),
            None => self
                .sources
                .pacemaker
                .local_node(deadline)
                .map_err(|_| ClevervmError::LocalNodeUnknown),
        }
    }

    /// The plan and the stack it was made for.
    fn plan(
        &self,
        to: Option<&str>,
        deadline: &Deadline,
    ) -> Result<(MovePlan, verbs::Stack), ClevervmError> {
        let pacemaker = &self.sources.pacemaker;
        let stack = verbs::discover(pacemaker, deadline)?;
        let status = pacemaker.status(deadline)?;
        // The move is away from where the VM runs, whichever node serves this page.
        let from = match stack.vms.iter().find_map(|vm| {
            status
                .running_on(&vm.id, None)
                .first()
                .map(|n| (*n).to_owned())
        }) {
            Some(node) => node,
            None => self.local_node(deadline)?,
        };
        verbs::check_migrate(&status, &from, to)?;
        let to = match to {
            Some(target) => vec![target.to_owned()],
            None => status
                .nodes
                .iter()
                .filter(|n| {
                    n.name != from && n.online && !n.standby && !n.unclean && !n.maintenance
                })
                .map(|n| n.name.clone())
                .collect(),
        };
        let last_move =
            clevervm::timeline::last_migration_seconds(&self.report_with(deadline).status.timeline)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64);
        let plan = MovePlan {
            from,
            to,
            vms: stack.vms.iter().map(|vm| vm.id.clone()).collect(),
            last_move,
        };
        Ok((plan, stack))
    }

    fn report_with(&self, deadline: &Deadline) -> StatusReport {
        let mut snapshot = collect(&self.sources, deadline);
        if self.node.is_some() {
            snapshot.node.clone_from(&self.node);
        }
        StatusReport::of(snapshot)
    }
}

impl Cluster for LiveCluster {
    fn report(&self) -> StatusReport {
        self.report_with(&self.deadline())
    }

    fn plan_migrate(&self, to: Option<&str>) -> Result<MovePlan, ClevervmError> {
        self.plan(to, &self.deadline()).map(|(plan, _)| plan)
    }

    fn migrate(&self, to: Option<&str>, progress: &mut dyn Write) -> Result<(), ClevervmError> {
        let deadline = self.deadline();
        let (plan, stack) = self.plan(to, &deadline)?;
        verbs::migrate(
            &self.sources.pacemaker,
            &stack,
            &plan.from,
            to,
            progress,
            &deadline,
        )?;
        verbs::follow(
            &self.sources.pacemaker,
            &stack,
            &plan.from,
            to,
            self.move_timeout,
            progress,
        )
    }

    fn unmigrate(&self, progress: &mut dyn Write) -> Result<(), ClevervmError> {
        let deadline = self.deadline();
        let stack = verbs::discover(&self.sources.pacemaker, &deadline)?;
        verbs::unmigrate(&self.sources.pacemaker, &stack, progress, &deadline)
    }

    fn cleanup(&self, progress: &mut dyn Write) -> Result<(), ClevervmError> {
        verbs::cleanup(&self.sources.pacemaker, progress, &self.deadline())
    }
}
