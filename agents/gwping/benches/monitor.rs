//! Monitor cost of gwping against the stock `ocf:pacemaker:ping`, same host, same run.
//!
//! A lab namespace pair (the gateway 10.0.0.2 in its own namespace) and a live single-node
//! Pacemaker + Corosync in the agent's namespace, so both agents really write their attribute.
//! Each agent is started, its monitor timed `RUNS` times with the gateway reachable and
//! `SLOW_RUNS` times with the gateway's link down, then stopped. One more monitor of each runs
//! under `strace -f -e trace=execve` to count the programs it executes. Every run goes
//! through the same `nsenter` into the node, whose own cost (measured with `true`) is reported
//! and subtracted. Exits 1 when a target of issue 5 is missed.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench code")]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use support::{ip, Cluster, Lab, AGENT};

const STOCK: &str = "/usr/lib/ocf/resource.d/pacemaker/ping";
const RUNS: usize = 21;
const SLOW_RUNS: usize = 5;

struct Subject {
    label: &'static str,
    program: &'static str,
    env: Vec<(&'static str, &'static str)>,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn run(cluster: &Cluster, program: &str, action: &str, env: &[(&str, &str)]) -> (Duration, Output) {
    let mut command = cluster.enter();
    command
        .args([program, action])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("HA_LOGFACILITY", "none")
        .env("OCF_RESOURCE_INSTANCE", "bench")
        .env("OCF_RESKEY_CRM_meta_timeout", "20000")
        .env("OCF_RESKEY_CRM_meta_interval", "10000")
        .envs(env.iter().copied());
    let started = Instant::now();
    let output = command.output().unwrap();
    (started.elapsed(), output)
}

fn timed(cluster: &Cluster, subject: &Subject, runs: usize, baseline: Duration) -> Duration {
    let samples = (0..runs)
        .map(|_| {
            let (took, output) = run(cluster, subject.program, "monitor", &subject.env);
            assert_eq!(
                output.status.code(),
                Some(0),
                "{}: {output:?}",
                subject.label
            );
            took.saturating_sub(baseline)
        })
        .collect();
    median(samples)
}

/// Programs executed by one monitor, the agent itself included.
fn programs(cluster: &Cluster, subject: &Subject) -> usize {
    let trace = format!("/tmp/gwping-bench-strace-{}", std::process::id());
    let mut command = cluster.enter();
    command
        .args(["strace", "-f", "-qq", "-e", "trace=execve", "-o", &trace])
        .args([subject.program, "monitor"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("HA_LOGFACILITY", "none")
        .env("OCF_RESOURCE_INSTANCE", "bench")
        .env("OCF_RESKEY_CRM_meta_interval", "10000")
        .envs(subject.env.iter().copied());
    let output = command.output().expect("strace is missing: install strace");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}: {output:?}",
        subject.label
    );
    // The trace file is written inside the node's mount namespace, where /tmp is the host's.
    let text = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    // Successful execve calls only: a shell's $PATH search fails a few times per program.
    text.lines()
        .filter(|l| l.contains("execve(") && l.trim_end().ends_with("= 0"))
        .count()
}

fn main() {
    assert!(
        std::path::Path::new(STOCK).exists(),
        "{STOCK} is missing: install pacemaker"
    );
    assert!(
        ["/usr/bin/ping", "/bin/ping"]
            .iter()
            .any(|p| std::path::Path::new(p).exists()),
        "ping is missing: install iputils-ping (the stock agent needs it)"
    );
    let lab = Lab::new();
    let cluster = Cluster::start(&lab.agent);
    let shipped = ocf_conformance::bench::shipped_binary("gwping", AGENT);
    println!("ours: {}", shipped.display());
    // A bench binary runs once: leaking one path is simpler than a lifetime on every Subject.
    let program: &'static str = Box::leak(shipped.to_string_lossy().into_owned().into_boxed_str());
    let ours = Subject {
        label: "ocf:clever:gwping",
        program,
        env: vec![
            ("OCF_RESKEY_host_list", "10.0.0.2"),
            ("OCF_RESKEY_name", "gwping_bench"),
        ],
    };
    let stock = Subject {
        label: "ocf:pacemaker:ping",
        program: STOCK,
        env: vec![
            ("OCF_RESKEY_host_list", "10.0.0.2"),
            ("OCF_RESKEY_name", "ping_bench"),
            ("OCF_RESKEY_pidfile", "/run/ping-bench"),
        ],
    };
    let baseline = median(
        (0..RUNS)
            .map(|_| run(&cluster, "/bin/true", "", &[]).0)
            .collect(),
    );
    // What one attrd_updater call costs here: most of our monitor.
    let attrd = median(
        (0..RUNS)
            .map(|_| {
                let mut command = cluster.enter();
                command.args(["attrd_updater", "--name=gwping_bench_cost", "--update=1"]);
                let started = Instant::now();
                let output = command.output().unwrap();
                assert!(output.status.success(), "{output:?}");
                started.elapsed().saturating_sub(baseline)
            })
            .collect(),
    );
    // Our own start-up: a monitor that finds the resource stopped (no probe, no attrd).
    let startup = median(
        (0..RUNS)
            .map(|_| {
                let (took, output) = run(&cluster, program, "monitor", &ours.env);
                assert_eq!(output.status.code(), Some(7), "{output:?}");
                took.saturating_sub(baseline)
            })
            .collect(),
    );
    let mut results = Vec::new();
    for subject in [&ours, &stock] {
        let (_, output) = run(&cluster, subject.program, "start", &subject.env);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{} start: {output:?}",
            subject.label
        );
        let reachable = timed(&cluster, subject, RUNS, baseline);
        let spawned = programs(&cluster, subject);
        ip(&["-n", &lab.host, "link", "set", &lab.host_if, "down"]);
        let unreachable = timed(&cluster, subject, SLOW_RUNS, baseline);
        ip(&["-n", &lab.host, "link", "set", &lab.host_if, "up"]);
        let (_, output) = run(&cluster, subject.program, "stop", &subject.env);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{} stop: {output:?}",
            subject.label
        );
        results.push((subject.label, reachable, unreachable, spawned));
    }
    println!("gwping monitor benchmark: defaults (attempts 3, timeout 2s), one host, live attrd");
    println!("nsenter baseline (subtracted): {baseline:?}, {RUNS} runs reachable, {SLOW_RUNS} unreachable");
    println!(
        "one attrd_updater call alone: {attrd:.1?}; gwping monitor of a stopped resource: {startup:.1?}"
    );
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "{:<20} {:>16} {:>18} {:>18}",
        "agent", "reachable median", "unreachable median", "programs executed"
    );
    for (label, reachable, unreachable, spawned) in &results {
        println!("{label:<20} {reachable:>16.1?} {unreachable:>18.1?} {spawned:>18}");
    }
    let (_, our_fast, our_slow, our_programs) = results[0];
    let (_, stock_fast, stock_slow, _) = results[1];
    let ratio = stock_fast.as_secs_f64() / our_fast.as_secs_f64().max(1e-6);
    println!(
        "reachable: stock / gwping = {ratio:.0}x; unreachable: {:.2}x",
        stock_slow.as_secs_f64() / our_slow.as_secs_f64()
    );
    drop(cluster);
    drop(lab);
    let mut missed = Vec::new();
    if ratio < 50.0 {
        missed.push(format!(
            "reachable median only {ratio:.0}x lower (target 50x)"
        ));
    }
    if our_slow > Duration::from_millis(2200) {
        missed.push(format!(
            "unreachable gateway cost {our_slow:?} (target: the 2s timeout)"
        ));
    }
    // The agent itself plus attrd_updater.
    if our_programs > 2 {
        missed.push(format!(
            "{} programs spawned per monitor (target 1)",
            our_programs - 1
        ));
    }
    if !missed.is_empty() {
        eprintln!("targets missed: {}", missed.join("; "));
        std::process::exit(1);
    }
    println!(
        "targets met: >= 50x faster when reachable, unreachable <= timeout, 1 process spawned"
    );
}
