//! `make bench` rows of `ocf:clever:vm`, on one running test domain in a private libvirtd node:
//!
//! 1. monitor: ours against `ocf:heartbeat:VirtualDomain`'s (medians, ratio, processes spawned;
//!    target: 40x, none spawned), against our own `meta-data` (the start of the binary), against
//!    the same monitor in `vm-libvirt`, the build that links libvirt (what every monitor would
//!    cost without the remote-protocol road), and against its own fallback (the hand-over to
//!    `vm-libvirt`, whose exec the processes column counts); `meta-data` of both builds shows
//!    what loading `libvirt.so` alone costs;
//! 2. hibernate + resume of a 512 MiB guest: our stop + start against bare `virsh managedsave` +
//!    `virsh start` on the same guest, alternating.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code")]

#[path = "../tests/lab/mod.rs"]
mod lab;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lab::{Lab, Node, NodeOptions};
use ocf_conformance::bench::{header, measure, AgentCall, Row};

const RUNS: usize = 30;
const CYCLES: usize = 9;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() -> ExitCode {
    let lab = Lab::new("bench");
    let node = Node::start(&lab, "bench", &NodeOptions::default());
    let domain = "cvt-bench";
    let config = lab.domain_xml(domain, 512);
    let config_s = config.to_str().unwrap().to_owned();
    let params = vec![
        ("config", config_s.as_str()),
        ("hibernate_dir", node.hibernate_dir.to_str().unwrap()),
    ];
    let start = node.agent("start", &params, &[]);
    assert_eq!(start.code, Some(0), "{}", start.stderr);
    lab.wait_count_above(domain, 1);

    let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let uri = node.uri();
    let common = [
        ("OCF_ROOT", "/usr/lib/ocf"),
        ("OCF_RESOURCE_INSTANCE", "bench"),
        ("OCF_RESKEY_config", config_s.as_str()),
        ("OCF_RESKEY_hypervisor", uri.as_str()),
        ("OCF_RESKEY_CRM_meta_interval", "10000"),
        ("OCF_RESKEY_CRM_meta_timeout", "30000"),
        ("HA_LOGFACILITY", "none"),
    ];
    let mut ours_env = env(&common);
    ours_env.insert(
        "OCF_RESKEY_hibernate_dir".to_owned(),
        node.hibernate_dir.display().to_string(),
    );
    let row = Row {
        label: "vm: monitor, running (vm vs VirtualDomain)".to_owned(),
        ours: AgentCall {
            agent: PathBuf::from(lab::AGENT),
            action: "monitor".to_owned(),
            environment: ours_env,
        },
        stock: AgentCall {
            agent: PathBuf::from("/usr/lib/ocf/resource.d/heartbeat/VirtualDomain"),
            action: "monitor".to_owned(),
            environment: env(&common),
        },
        expected_code: 0,
    };
    // The floor: our own meta-data, which starts the binary and touches no libvirt. The
    // monitor's own work (config, one connection, four calls) is the difference.
    let floor = Row {
        label: "vm: monitor vs vm meta-data (startup floor)".to_owned(),
        ours: row.ours.clone(),
        stock: AgentCall {
            action: "meta-data".to_owned(),
            ..row.ours.clone()
        },
        expected_code: 0,
    };
    // What the design saves: the same monitor in the build that links libvirt, which asks the C
    // library (one binary linking libvirt would pay this at every monitor).
    let linked = Row {
        label: "vm: monitor, vm vs vm-libvirt (links libvirt)".to_owned(),
        ours: row.ours.clone(),
        stock: AgentCall {
            agent: PathBuf::from(lab::LINKED),
            ..row.ours.clone()
        },
        expected_code: 0,
    };
    // Loading libvirt.so and its libraries alone: meta-data touches no libvirt in either build.
    let loading = Row {
        label: "vm: meta-data, vm vs vm-libvirt (loading)".to_owned(),
        ours: floor.stock.clone(),
        stock: AgentCall {
            agent: PathBuf::from(lab::LINKED),
            ..floor.stock.clone()
        },
        expected_code: 0,
    };
    // The monitor's fallback: an option the remote-protocol client leaves to the C library
    // (libvirt ignores unknown URI options) makes vm hand the monitor over to vm-libvirt.
    let mut through_library = row.ours.clone();
    through_library.environment.insert(
        "OCF_RESKEY_hypervisor".to_owned(),
        format!("{uri}&clever_bench=library"),
    );
    let library = Row {
        label: "vm: monitor, RPC vs fallback to vm-libvirt".to_owned(),
        ours: row.ours.clone(),
        stock: through_library,
        expected_code: 0,
    };
    println!("{}", header());
    let mut failed = false;
    for row in [&row, &floor, &linked, &loading, &library] {
        match measure(row, RUNS) {
            Ok(measured) => println!("{measured}"),
            Err(e) => {
                eprintln!("bench: {e}");
                failed = true;
            }
        }
    }

    // Hibernate + resume: ours (stop + start through the agent) vs bare virsh, alternating.
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    for _ in 0..CYCLES {
        let began = Instant::now();
        let stop = node.agent("stop", &params, &[]);
        let start = node.agent("start", &params, &[]);
        ours.push(began.elapsed());
        if stop.code != Some(0) || start.code != Some(0) {
            eprintln!(
                "bench: agent stop/start failed: {}{}",
                stop.stderr, start.stderr
            );
            failed = true;
            break;
        }
        assert_eq!(node.domstate(domain), "running (restored)");
        let began = Instant::now();
        let save = node.virsh(&["managedsave", domain]);
        let resume = node.virsh(&["start", domain]);
        bare.push(began.elapsed());
        if !save.status.success() || !resume.status.success() {
            eprintln!("bench: virsh managedsave/start failed");
            failed = true;
            break;
        }
    }
    if !ours.is_empty() && ours.len() == bare.len() {
        let (o, b) = (median(ours), median(bare));
        println!(
            "{:<44} {:>10.2?} {:>10.2?} {:>8.2}x (512 MiB, {CYCLES} cycles; target: ours within 10%)",
            "vm: hibernate + resume (vm vs bare virsh)",
            o,
            b,
            b.as_secs_f64() / o.as_secs_f64().max(1e-9)
        );
    }
    let _ = node.agent("stop", &params, &[("OCF_RESKEY_stop_method", "destroy")]);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
