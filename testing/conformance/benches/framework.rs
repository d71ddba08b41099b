//! `make bench` row of the framework: the demo agent (a Dummy written on our framework) against
//! resource-agents' `ocf:heartbeat:Dummy`, both keeping their state in a file on the same tmpfs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use ocf_conformance::bench::{header, measure, AgentCall, Row};

const RUNS: usize = 30;

fn main() -> ExitCode {
    let dir = std::env::temp_dir().join(format!("clever-bench-framework-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("bench: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let ours = |action: &str| AgentCall {
        agent: PathBuf::from(env!("CARGO_BIN_EXE_clever-demo-agent")),
        action: action.to_owned(),
        environment: BTreeMap::from([
            ("OCF_RESOURCE_INSTANCE".to_owned(), "bench".to_owned()),
            ("OCF_RESKEY_state_dir".to_owned(), dir.display().to_string()),
            (
                "OCF_RESKEY_CRM_meta_interval".to_owned(),
                "10000".to_owned(),
            ),
            ("HA_LOGFACILITY".to_owned(), "none".to_owned()),
        ]),
    };
    let stock = |action: &str| AgentCall {
        agent: PathBuf::from("/usr/lib/ocf/resource.d/heartbeat/Dummy"),
        action: action.to_owned(),
        environment: BTreeMap::from([
            ("OCF_ROOT".to_owned(), "/usr/lib/ocf".to_owned()),
            ("OCF_RESOURCE_INSTANCE".to_owned(), "bench".to_owned()),
            (
                "OCF_RESKEY_state".to_owned(),
                dir.join("dummy.state").display().to_string(),
            ),
            (
                "OCF_RESKEY_CRM_meta_interval".to_owned(),
                "10000".to_owned(),
            ),
            ("HA_LOGFACILITY".to_owned(), "none".to_owned()),
        ]),
    };
    let rows = [
        Row {
            label: "framework: meta-data (demo vs Dummy)".to_owned(),
            ours: ours("meta-data"),
            stock: stock("meta-data"),
            expected_code: 0,
        },
        Row {
            label: "framework: monitor, stopped (demo vs Dummy)".to_owned(),
            ours: ours("monitor"),
            stock: stock("monitor"),
            expected_code: 7,
        },
    ];
    println!("{}", header());
    let mut failed = false;
    for row in &rows {
        match measure(row, RUNS) {
            Ok(measured) => println!("{measured}"),
            Err(e) => {
                eprintln!("bench: {e}");
                failed = true;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
