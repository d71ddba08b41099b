//! `clever-cib`: writes a Clever cluster's Pacemaker configuration from its description.

use std::fs;
use std::io::{self, Write as _};
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use clever_cib_cli::cli::{Cli, Command, Format};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("clever-cib: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Check { description } => {
            let outputs = generate(&description)?;
            warn(&outputs.warnings);
            Ok(())
        }
        Command::Generate {
            description,
            output_dir,
            format,
        } => {
            let outputs = generate(&description)?;
            warn(&outputs.warnings);
            match (output_dir, format) {
                (Some(dir), _) => write_all(&dir, &outputs),
                (None, format) => {
                    let text = match format.unwrap_or(Format::Xml) {
                        Format::Xml => &outputs.cib_xml,
                        Format::Crm => &outputs.crm,
                        Format::Pcs => &outputs.pcs,
                    };
                    io::stdout()
                        .write_all(text.as_bytes())
                        .map_err(|e| format!("writing to stdout: {e}"))
                }
            }
        }
    }
}

fn generate(path: &Path) -> Result<clever_cib::Outputs, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    clever_cib::generate(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn warn(warnings: &[String]) {
    for warning in warnings {
        eprintln!("clever-cib: WARNING: {warning}");
    }
}

/// Writes the three files, each by rename so a reader never sees half a file.
fn write_all(dir: &Path, outputs: &clever_cib::Outputs) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for (name, text) in [
        ("cib.xml", &outputs.cib_xml),
        ("crm.txt", &outputs.crm),
        ("pcs.sh", &outputs.pcs),
    ] {
        let path = dir.join(name);
        let temporary = dir.join(format!(".{name}.new"));
        fs::write(&temporary, text)
            .and_then(|()| fs::rename(&temporary, &path))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
