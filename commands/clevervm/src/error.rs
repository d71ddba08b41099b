//! clevervm's failures and the one mapping to LSB exit codes.

use clever_command::CommandError;
use clever_ocf::lsb::LsbExitCode;
use clever_pacemaker::PacemakerError;

#[derive(Debug, thiserror::Error)]
pub enum ClevervmError {
    #[error("the cluster does not answer: {0}")]
    Cluster(#[from] PacemakerError),
    #[error("no ocf:clever:vm resource is configured in the cluster")]
    NoVm,
    #[error("cannot tell which node this is (crm_node --name failed); use --node")]
    LocalNodeUnknown,
    #[error("node {0} is not a cluster node")]
    UnknownNode(String),
    #[error("{0}")]
    CannotMigrate(String),
    #[error("migration did not complete: {0}")]
    MigrationFailed(String),
    #[error("not confirmed: nothing was done")]
    NotConfirmed,
    /// Pacemaker has an operation on the VM in flight.
    #[error("{0}")]
    Busy(String),
    /// A direct verb cannot act on this node.
    #[error("{0}")]
    NotHere(String),
    #[error("virsh: {0}")]
    Virsh(CommandError),
}

impl ClevervmError {
    pub fn exit_code(&self) -> LsbExitCode {
        match self {
            // Pacemaker's tools are missing: the cluster is not installed here, not stopped.
            Self::Cluster(PacemakerError::Command(e)) if e.program_missing() => {
                LsbExitCode::NotInstalled
            }
            Self::Cluster(_) => LsbExitCode::NotRunning,
            Self::NoVm => LsbExitCode::NotConfigured,
            Self::UnknownNode(_) => LsbExitCode::InvalidArgument,
            Self::Virsh(e) if e.program_missing() => LsbExitCode::NotInstalled,
            Self::LocalNodeUnknown
            | Self::CannotMigrate(_)
            | Self::MigrationFailed(_)
            | Self::NotConfirmed
            | Self::Busy(_)
            | Self::NotHere(_)
            | Self::Virsh(_) => LsbExitCode::Generic,
        }
    }
}
