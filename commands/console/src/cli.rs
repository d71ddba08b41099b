//! The command line, declared once for parsing and `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// The documented default: pcsd has 2224; this is the console's own.
pub const DEFAULT_PORT: u16 = 2227;

/// Web console of the Clever cluster: where the VM runs, whether it is safe, and one button
/// that moves it. HTTPS only; log in with an account of the haclient group.
#[derive(Debug, Parser)]
#[command(name = "clever-console", version)]
pub struct Cli {
    /// Address and port to listen on.
    #[arg(long, default_value = "[::]:2227", value_name = "ADDRESS:PORT")]
    pub listen: SocketAddr,
    /// PEM certificate (chain); with --key. Made, self-signed, at first start when neither
    /// file exists.
    #[arg(
        long,
        default_value = "/var/lib/clever-console/cert.pem",
        value_name = "FILE"
    )]
    pub certificate: PathBuf,
    /// PEM private key of the certificate.
    #[arg(
        long,
        default_value = "/var/lib/clever-console/key.pem",
        value_name = "FILE"
    )]
    pub key: PathBuf,
    /// Only members of this group may log in.
    #[arg(long, default_value = "haclient", value_name = "GROUP")]
    pub group: String,
    /// The PAM service that checks passwords (/etc/pam.d/SERVICE).
    #[arg(long, default_value = "clever-console", value_name = "SERVICE")]
    pub pam_service: String,
    /// Give up on any cluster call after this many seconds.
    #[arg(long, default_value = "30", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// How long a move is followed before it counts as failed, in seconds.
    #[arg(long, default_value = "600", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub move_timeout: u64,
    /// How often open pages are updated, in seconds.
    #[arg(long, default_value = "2", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub refresh: u64,
    /// Log debug messages too.
    #[arg(long)]
    pub debug: bool,
    /// Act as if on this node (for rehearsals on a CIB file).
    #[arg(long, value_name = "NODE", hide = true)]
    pub node: Option<String>,
    /// Read and change this CIB file instead of the live cluster (rehearsals and tests).
    #[arg(long, value_name = "FILE", hide = true)]
    pub cib_file: Option<PathBuf>,
}
