//! `make bench` rows of drbdfs: our monitor at depths 0, 10 and 20 against
//! `ocf:heartbeat:Filesystem`'s, on the same mounted loop-device ext4 filesystem, same run.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;
use std::process::{Command, ExitCode};

use ocf_conformance::bench::{header, measure, shipped_binary, AgentCall, Row};

const RUNS: usize = 30;
const STOCK: &str = "/usr/lib/ocf/resource.d/heartbeat/Filesystem";

fn run(program: &str, args: &[&str]) -> Result<String, Box<dyn Error>> {
    let output = Command::new(program).args(args).output()?;
    if !output.status.success() {
        return Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn call(agent: &Path, action: &str, environment: &BTreeMap<String, String>) -> AgentCall {
    AgentCall {
        agent: agent.to_owned(),
        action: action.to_owned(),
        environment: environment.clone(),
    }
}

fn rows(device: &str, directory: &str) -> Vec<Row> {
    let ours = shipped_binary("drbdfs", env!("CARGO_BIN_EXE_drbdfs"));
    println!("ours: {}", ours.display());
    let mut rows = Vec::new();
    for depth in ["0", "10", "20"] {
        let environment: BTreeMap<String, String> = [
            ("OCF_ROOT", "/usr/lib/ocf"),
            ("OCF_RESOURCE_INSTANCE", "bench_fs"),
            ("OCF_RESKEY_device", device),
            ("OCF_RESKEY_directory", directory),
            ("OCF_RESKEY_fstype", "ext4"),
            ("OCF_RESKEY_CRM_meta_interval", "20000"),
            ("OCF_RESKEY_CRM_meta_timeout", "40000"),
            ("OCF_CHECK_LEVEL", depth),
            ("HA_LOGFACILITY", "none"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        rows.push(Row {
            label: format!("drbdfs: monitor depth {depth} (vs Filesystem)"),
            ours: call(&ours, "monitor", &environment),
            stock: call(Path::new(STOCK), "monitor", &environment),
            expected_code: 0,
        });
    }
    rows
}

fn bench(base: &Path) -> Result<(), Box<dyn Error>> {
    let image = base.join("disk.img");
    std::fs::File::create(&image)?.set_len(64 * 1024 * 1024)?;
    let device = run(
        "losetup",
        &["--find", "--show", &image.display().to_string()],
    )?;
    let directory = base.join("mnt").display().to_string();
    let result = (|| -> Result<(), Box<dyn Error>> {
        run("mkfs.ext4", &["-q", "-F", &device])?;
        std::fs::create_dir_all(&directory)?;
        run("mount", &["-t", "ext4", &device, &directory])?;
        let rows = rows(&device, &directory);
        println!("{}", header());
        for row in rows {
            println!("{}", measure(&row, RUNS)?);
        }
        Ok(())
    })();
    let _ = Command::new("umount").arg(&directory).status();
    let _ = Command::new("losetup").args(["-d", &device]).status();
    result
}

fn main() -> ExitCode {
    let base = std::env::temp_dir().join(format!("clever-bench-drbdfs-{}", std::process::id()));
    let outcome = std::fs::create_dir_all(&base)
        .map_err(Into::into)
        .and_then(|()| bench(&base));
    let _ = std::fs::remove_dir_all(&base);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench drbdfs: {e}");
            ExitCode::FAILURE
        }
    }
}
