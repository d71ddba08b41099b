//! The command line, declared once for parsing, `--help`, the man page and completions.

use std::time::Duration;

use clap::{Parser, Subcommand};

/// The longest `--timeout` / `--wait-timeout`: a week. `u64::MAX` seconds past now is no
/// `Instant` (adding it panicked).
pub const MAX_SECONDS: u64 = 7 * 24 * 3600;

/// Admin command of the Clever cluster: one VM kept running by Pacemaker on DRBD storage.
///
/// Works from either node. `forcestart`, `forcestop`, `cleanup`, `migrate` and `unmigrate` go
/// through Pacemaker; `start` and `stop` act on libvirt directly, as the original did, and
/// Pacemaker will fight them.
#[derive(Debug, Parser)]
#[command(
    name = "clevervm",
    version,
    propagate_version = true,
    after_help = "Examples:\n  \
      clevervm status              what runs where, and what is wrong (problems first)\n  \
      clevervm migrate --wait      move the VM away from this node and watch it resume\n  \
      clevervm unmigrate           allow this node again (nothing moves back by itself)\n  \
      clevervm forcestop           stop the VM through the cluster and keep it stopped\n  \
      clevervm cleanup             after fixing a failure, let the cluster retry"
)]
pub struct Cli {
    #[command(subcommand)]
    pub verb: Verb,
    /// Give up on any cluster call after this many seconds.
    // At most MAX_SECONDS: a larger number would overflow the deadline.
    #[arg(long, global = true, default_value = "30", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub timeout: u64,
    /// Act as if run on this node (default: `crm_node --name`).
    #[arg(long, global = true, value_name = "NODE")]
    pub node: Option<String>,
    /// Read and change this CIB file instead of the live cluster (for rehearsals and tests).
    #[arg(long, global = true, value_name = "FILE", hide = true)]
    pub cib_file: Option<std::path::PathBuf>,
}

impl Cli {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Cluster, DRBD storage and VM state on one screen, problems first (exit 0 running,
    /// 3 stopped, 4 unknown).
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Start (resume) the VM(s) directly with libvirt on this node, bypassing Pacemaker (not
    /// recommended); this node must hold the storage, and nothing is done when the VM runs.
    Start {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Start the VM(s) through Pacemaker (target-role=Started).
    Forcestart,
    /// Hibernate the VM(s) running on this node directly with libvirt; Pacemaker will start
    /// them again (not recommended).
    Stop {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Stop the VM(s) through Pacemaker and keep them stopped (target-role=Stopped).
    Forcestop,
    /// Forget recorded failures so resources may run again where they failed.
    Cleanup,
    /// Move the DRBD Primary, and with it the VM stack, away from this node.
    Migrate {
        /// Move to this node instead of just away from this one.
        #[arg(long, value_name = "NODE")]
        to: Option<String>,
        /// Follow the move to its end, showing its progress.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits for the move, in seconds.
        #[arg(long, default_value = "300", value_name = "SECONDS",
              value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
        wait_timeout: u64,
    },
    /// Remove the constraints left by migrate; stickiness keeps the VM where it now is.
    Unmigrate,
}
