//! `clever-docgen OUTDIR`: man pages (`man7/ocf_clever_<agent>.7`, `man8/clevervm.8`,
//! `man8/clever-cib.8`) and
//! completions (`completions/clevervm.{bash,zsh,fish}`), generated from the same declarations
//! that give the metadata and the command line, for `make install` and the Debian package.
//!
//! `clever-docgen --parameters FILE`: the Markdown parameter reference of every agent, committed
//! as `docs/parameters.md` (`make docs` writes it; a test fails when it is out of date).

mod parameters;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

fn write(path: &Path, content: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, content).map_err(|e| format!("{}: {e}", path.display()))
}

fn generate(out: &Path) -> Result<(), String> {
    let agents = [
        (
            clever_agent_drbdfs::DECLARATION.name,
            clever_ocf::man_page(&clever_agent_drbdfs::DECLARATION),
        ),
        (
            clever_agent_gwping::DECLARATION.name,
            clever_ocf::man_page(&clever_agent_gwping::DECLARATION),
        ),
        (
            clever_agent_vm::DECLARATION.name,
            clever_ocf::man_page(&clever_agent_vm::DECLARATION),
        ),
    ];
    for (name, page) in agents {
        write(
            &out.join(format!("man7/ocf_clever_{name}.7")),
            page.as_bytes(),
        )?;
    }
    let command = clevervm::cli::Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .section("8")
        .render(&mut page)
        .map_err(|e| format!("clevervm man page: {e}"))?;
    write(&out.join("man8/clevervm.8"), &page)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(clever_cib_cli::cli::Cli::command())
        .section("8")
        .render(&mut page)
        .map_err(|e| format!("clever-cib man page: {e}"))?;
    write(&out.join("man8/clever-cib.8"), &page)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(clever_console::cli::Cli::command())
        .section("8")
        .render(&mut page)
        .map_err(|e| format!("clever-console man page: {e}"))?;
    write(&out.join("man8/clever-console.8"), &page)?;
    for (shell, file) in [
        (Shell::Bash, "clevervm.bash"),
        (Shell::Zsh, "_clevervm"),
        (Shell::Fish, "clevervm.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command.clone(), "clevervm", &mut script);
        write(&out.join("completions").join(file), &script)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let result = match args.as_slice() {
        [flag, file] if flag == "--parameters" => {
            write(Path::new(file), parameters::reference().as_bytes())
        }
        [out] if out != "--parameters" => generate(&PathBuf::from(out)),
        _ => {
            eprintln!("usage: clever-docgen OUTDIR | clever-docgen --parameters FILE");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clever-docgen: {e}");
            ExitCode::FAILURE
        }
    }
}
