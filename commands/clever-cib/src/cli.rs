//! The `clever-cib` command line, declared once for parsing, `--help` and the man page.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Generate the Pacemaker configuration (CIB XML, crm configure, pcs) of a Clever cluster.
#[derive(Debug, Parser)]
#[command(name = "clever-cib", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a description; prints nothing but warnings when it is valid.
    Check {
        /// The cluster description (TOML).
        description: PathBuf,
    },
    /// Write cib.xml, crm.txt and pcs.sh into a directory, or one format to stdout.
    Generate {
        /// The cluster description (TOML).
        description: PathBuf,
        /// Directory for cib.xml, crm.txt and pcs.sh (created if missing).
        #[arg(long, short = 'o', conflicts_with = "format")]
        output_dir: Option<PathBuf>,
        /// Print only this format to stdout.
        #[arg(long, short = 'f', value_enum)]
        format: Option<Format>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Xml,
    Crm,
    Pcs,
}
