//! `ocf-conformance`: run one installed agent through the harness from a shell.
//!
//! ```text
//! ocf-conformance --agent /usr/lib/ocf/resource.d/clever/drbdfs --instance fs \
//!     -o device=/dev/loop0 -o directory=/mnt/x -o fstype=ext4 --hang device=/dev/stuck
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ocf_conformance::{check_agent, AgentUnderTest};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Checks a resource agent against ocf-tester and our OCF rules"
)]
struct Options {
    /// Path of the agent executable.
    #[arg(long)]
    agent: PathBuf,
    /// Resource instance name (OCF_RESOURCE_INSTANCE).
    #[arg(long, default_value = "conformance")]
    instance: String,
    /// A parameter of a working resource, as NAME=VALUE (repeatable).
    #[arg(short = 'o', value_parser = name_value)]
    parameter: Vec<(String, String)>,
    /// A parameter override that makes the backend hang, as NAME=VALUE (repeatable).
    #[arg(long, value_parser = name_value)]
    hang: Vec<(String, String)>,
    /// Skip resource-agents' ocf-tester (our own rules still run).
    #[arg(long)]
    without_ocf_tester: bool,
}

fn name_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))
}

fn main() -> ExitCode {
    let options = Options::parse();
    let agent = AgentUnderTest {
        path: options.agent,
        instance: options.instance,
        parameters: options.parameter.into_iter().collect(),
        hanging: options.hang.into_iter().collect(),
        environment: BTreeMap::new(),
        run_ocf_tester: !options.without_ocf_tester,
    };
    match check_agent(&agent) {
        Ok(report) => {
            print!("{report}");
            let failed = report.violations.len();
            let passed = report.checked.len().saturating_sub(
                report
                    .checked
                    .iter()
                    .filter(|rule| report.broke(**rule))
                    .count(),
            );
            println!("{passed} passed, {failed} failed");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("ocf-conformance: {e}");
            ExitCode::from(2)
        }
    }
}
