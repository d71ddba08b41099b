//! gwping against real ICMP in network namespaces, and the built agent as Pacemaker runs it.
//!
//! Each test builds its own namespaces (`ip netns add`) joined by veth pairs, with names unique
//! to the test and the process; a guard deletes them even when the test fails. The probe runs
//! in a thread that has joined the agent's namespace with `setns(2)` (a network namespace is
//! per thread), so it is the library's own code sending real echo requests; the binary's tests
//! run it with `ip netns exec`, or as user nobody through `setpriv` for the datagram-socket
//! path. One test starts a live single-node Pacemaker + Corosync in private namespaces (see
//! `support`) and checks the attribute in attrd and the CIB, then runs our conformance harness
//! and resource-agents' ocf-tester against the agent inside that node. Needs root, iproute2,
//! util-linux, pacemaker, corosync, resource-agents and libxml2-utils; a missing one fails
//! loudly.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod faults;
mod hostile;
mod support;

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use clever_agent_gwping::params::{Host, HostList, HostSpec};
use clever_agent_gwping::probe::{IcmpProber, Outcome, ProbeSettings, Prober};
use clever_agent_gwping::score::score;
use clever_ocf::{metadata_xml, Deadline, ParameterType};
use support::{alive, ip, scratch_dir, Cluster, Lab, AGENT};

fn up(outcome: &Outcome) -> bool {
    outcome.is_up()
}

fn refused(outcome: &Outcome) -> Option<&str> {
    match outcome {
        Outcome::Down { refused, .. } => refused.as_deref(),
        _ => None,
    }
}

/// The bounds on how long a probe takes tell apart what the design promises (an answer without
/// waiting; one timeout for every host and attempt) from what it must not do (wait for the
/// timeout; one wait per host or attempt), by margins of seconds: the probes' timeouts are made
/// long for that, so a loaded machine's scheduling delays cannot decide a test.
///
/// An answer that needs no waiting comes well within half of a 10 s timeout.
const AT_ONCE: Duration = Duration::from_secs(5);
/// Scheduling slack above a probe's timeout, far below the next multiple of it.
const SLACK: Duration = Duration::from_secs(1);

#[test]
fn reachable_host_answers_at_once() {
    let lab = Lab::new();
    let (outcomes, took) = lab.probe("10.0.0.2", 3, 10_000);
    assert!(up(&outcomes[0]), "{outcomes:?}");
    // No waiting for timeouts or further attempts.
    assert!(took < AT_ONCE, "took {took:?}");
    // Our own address and loopback by name (/etc/hosts) too.
    let (outcomes, _) = lab.probe("10.0.0.1 localhost", 1, 2000);
    assert!(outcomes.iter().all(up), "{outcomes:?}");
}

#[test]
fn host_behind_a_downed_link_counts_down_within_the_budget() {
    let lab = Lab::new();
    ip(&["-n", &lab.host, "link", "set", &lab.host_if, "down"]);
    let (outcomes, took) = lab.probe("10.0.0.2 fd00::2", 2, 3000);
    assert!(!up(&outcomes[0]) && !up(&outcomes[1]), "{outcomes:?}");
    // Down after timeout, however many attempts (one wait per host or attempt: 6 s or more).
    assert!(
        took >= Duration::from_millis(2990),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_millis(3000) + SLACK, "took {took:?}");
    // Our own link down: no route at all, refused without waiting.
    ip(&["-n", &lab.agent, "link", "set", &lab.agent_if, "down"]);
    let (outcomes, took) = lab.probe("10.0.0.2", 3, 10_000);
    assert!(refused(&outcomes[0]).is_some(), "{outcomes:?}");
    assert!(took < AT_ONCE, "took {took:?}");
}

#[test]
fn silently_dropped_requests_time_out() {
    let lab = Lab::new();
    // The host's replies go nowhere (blackhole), and .3 does not exist on the link at all.
    ip(&["-n", &lab.host, "route", "add", "blackhole", "10.0.0.1/32"]);
    ip(&[
        "-n",
        &lab.host,
        "-6",
        "route",
        "add",
        "blackhole",
        "fd00::1/128",
    ]);
    let before = lab.echo_requests_received();
    let (outcomes, took) = lab.probe("10.0.0.2 10.0.0.3 fd00::2", 3, 3000);
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Outcome::Down { refused: None, .. }),
            "{outcomes:?}"
        );
    }
    // One timeout for all of them (one per host would be 9 s).
    assert!(
        took >= Duration::from_millis(2990),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_millis(3000) + SLACK, "took {took:?}");
    // Every attempt reached the host, once per family.
    let after = lab.echo_requests_received();
    assert_eq!((after.0 - before.0, after.1 - before.1), (3, 3));
}

#[test]
fn a_host_answering_only_a_later_attempt_counts_up() {
    let lab = Lab::new();
    // Replies are blackholed until the first attempt has reached the host; the route is then
    // removed, so a later attempt (they leave at 0, 1000 and 2000 ms) is answered. The heal
    // follows the first request, not a timer, so a slow `ip` cannot make the first attempt
    // succeed or all of them fail.
    ip(&["-n", &lab.host, "route", "add", "blackhole", "10.0.0.1/32"]);
    let before = lab.echo_requests_received().0;
    let (outcomes, took) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let waited = Instant::now();
            while lab.echo_requests_received().0 == before {
                assert!(
                    waited.elapsed() < Duration::from_secs(3),
                    "no request arrived"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            ip(&["-n", &lab.host, "route", "del", "blackhole", "10.0.0.1/32"]);
        });
        lab.probe("10.0.0.2", 3, 3000)
    });
    assert!(up(&outcomes[0]), "{outcomes:?}");
    assert!(
        took >= Duration::from_millis(950),
        "answered by the first attempt: {took:?}"
    );
    assert!(took < Duration::from_millis(3000), "took {took:?}");
}

#[test]
fn rejected_requests_fail_fast() {
    let lab = Lab::new();
    lab.host_rejects_beyond();
    // Refused by a router on the way (ICMP/ICMPv6 administratively prohibited).
    let (outcomes, took) = lab.probe("10.0.1.9 fd01::9", 3, 10_000);
    for outcome in &outcomes {
        let reason = refused(outcome).unwrap_or_default();
        assert!(reason.contains("prohibited"), "{outcomes:?}");
        assert!(reason.contains("reported by"), "{outcomes:?}");
    }
    assert!(took < AT_ONCE, "took {took:?}");
    // Refused by our own routing table: the kernel will not even send.
    ip(&["-n", &lab.agent, "route", "add", "prohibit", "10.0.2.0/24"]);
    ip(&[
        "-n",
        &lab.agent,
        "-6",
        "route",
        "add",
        "prohibit",
        "fd02::/64",
    ]);
    let (outcomes, took) = lab.probe("10.0.2.9 fd02::9", 3, 10_000);
    assert!(
        outcomes.iter().all(|o| refused(o).is_some()),
        "{outcomes:?}"
    );
    assert!(took < AT_ONCE, "took {took:?}");
}

#[test]
fn ipv6_hosts_answer() {
    let lab = Lab::new();
    let (outcomes, took) = lab.probe("fd00::2 [fd00::1] ::1", 3, 10_000);
    assert!(outcomes.iter().all(up), "{outcomes:?}");
    assert!(took < AT_ONCE, "took {took:?}");
    // A link-local address with its zone, learnt from the host's interface.
    let link_local = link_local_of(&lab.host, &lab.host_if);
    let scoped = format!("{link_local}%{}", lab.agent_if);
    let (outcomes, _) = lab.probe(&scoped, 3, 2000);
    assert!(up(&outcomes[0]), "{scoped}: {outcomes:?}");
}

fn link_local_of(ns: &str, dev: &str) -> String {
    // Link-local addresses go through DAD: wait until it is usable.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("ip")
            .args([
                "-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !text.contains("tentative") {
            if let Some(addr) = text
                .split_whitespace()
                .skip_while(|w| *w != "inet6")
                .nth(1)
                .and_then(|a| a.split('/').next())
            {
                return addr.to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no usable link-local address: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mixed_list_with_weights_scores_the_reachable_ones() {
    let lab = Lab::new();
    lab.host_rejects_beyond();
    let list = "10.0.0.2=5 10.0.0.3=2 fd00::2=3 10.0.1.1=11 no-such-host.invalid=7 localhost";
    let (outcomes, took) = lab.probe(list, 2, 2000);
    let states: Vec<bool> = outcomes.iter().map(up).collect();
    assert_eq!(
        states,
        [true, false, true, false, false, true],
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[4], Outcome::Unresolved { .. }),
        "{outcomes:?}"
    );
    let hosts = HostList::parse(list).unwrap().0;
    let result = score(&hosts, &outcomes, 100);
    assert_eq!(result.value, (5 + 3 + 1) * 100);
    assert_eq!((result.reachable, result.total), (3, 6));
    // Bounded by the timeout for the silent host, not one wait per host or attempt (4 s).
    assert!(took < Duration::from_millis(2000) + SLACK, "took {took:?}");
}

#[test]
fn many_hosts_are_probed_concurrently() {
    let lab = Lab::new();
    // 50 silent hosts cost one timeout per attempt, not fifty.
    let silent: Vec<String> = (10..60).map(|i| format!("10.0.0.{i}")).collect();
    let (outcomes, took) = lab.probe(&format!("10.0.0.2 {}", silent.join(" ")), 1, 300);
    assert!(up(&outcomes[0]));
    assert_eq!(outcomes.iter().filter(|o| up(o)).count(), 1);
    assert!(took < Duration::from_millis(300) + SLACK, "took {took:?}");
}

#[test]
fn interface_binding_limits_the_path() {
    let lab = Lab::new();
    let hosts = vec![HostSpec {
        host: Host::Address("10.0.0.2".parse::<IpAddr>().unwrap()),
        weight: 1,
    }];
    let (bound_right, bound_lo) = {
        let dev = lab.agent_if.clone();
        let hosts = hosts.clone();
        lab.in_agent(move || {
            let run = |interface: &str| {
                let settings = ProbeSettings {
                    attempts: 1,
                    // Long enough that a loaded machine's reply still comes in time; the wrong
                    // interface never answers, whatever the timeout.
                    timeout: Duration::from_millis(3000),
                    interface: Some(interface.to_owned()),
                };
                IcmpProber.probe(&hosts, &settings, &Deadline::after(Duration::from_secs(5)))
            };
            (run(&dev).unwrap(), run("lo").unwrap())
        })
    };
    assert!(up(&bound_right[0]), "{bound_right:?}");
    assert!(!up(&bound_lo[0]), "{bound_lo:?}");
    // An interface that does not exist is an error, not a low score.
    let missing = lab.in_agent(move || {
        let settings = ProbeSettings {
            attempts: 1,
            timeout: Duration::from_millis(100),
            interface: Some("nosuchif0".to_owned()),
        };
        IcmpProber
            .probe(&hosts, &settings, &Deadline::after(Duration::from_secs(5)))
            .map(drop)
            .map_err(|e| e.to_string())
    });
    assert!(missing.unwrap_err().contains("nosuchif0"));
}

#[test]
fn the_op_deadline_bounds_the_probe() {
    let lab = Lab::new();
    let hosts = HostList::parse("10.0.0.3").unwrap().0;
    let took = lab.in_agent(move || {
        let settings = ProbeSettings {
            attempts: 5,
            timeout: Duration::from_secs(2),
            interface: None,
        };
        let started = Instant::now();
        let outcomes = IcmpProber
            .probe(
                &hosts,
                &settings,
                &Deadline::after(Duration::from_millis(400)),
            )
            .unwrap();
        assert!(!outcomes[0].is_up());
        started.elapsed()
    });
    assert!(took < Duration::from_millis(800), "took {took:?}");
}

/// The datagram ICMP sockets an unprivileged agent uses (`net.ipv4.ping_group_range`, which
/// is per network namespace). The test re-runs itself as user nobody inside the agent
/// namespace; the child's part is selected by an environment variable.
#[test]
fn unprivileged_probe_uses_datagram_sockets() {
    const CHILD: &str = "GWPING_UNPRIVILEGED_PROBE";
    if let Ok(list) = std::env::var(CHILD) {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").unwrap().uid();
        assert_ne!(uid, 0, "the child must not run as root");
        let hosts = HostList::parse(&list).unwrap().0;
        let settings = ProbeSettings {
            attempts: 2,
            timeout: Duration::from_millis(300),
            interface: None,
        };
        match IcmpProber.probe(&hosts, &settings, &Deadline::after(Duration::from_secs(5))) {
            Ok(outcomes) => {
                let states: Vec<&str> = outcomes
                    .iter()
                    .map(|o| if o.is_up() { "up" } else { "down" })
                    .collect();
                println!("RESULT {}", states.join(","));
            }
            Err(e) => println!("RESULT error: {e}"),
        }
        return;
    }
    let lab = Lab::new();
    let child = |range: &str| {
        support::in_ns(
            &lab.agent,
            "sysctl",
            &["-qw", &format!("net.ipv4.ping_group_range={range}")],
        );
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.agent,
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
            ])
            .args(["--clear-groups", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "unprivileged_probe_uses_datagram_sockets",
                "--nocapture",
            ])
            .env(CHILD, "10.0.0.2 fd00::2 10.0.0.3")
            .output()
            .expect("cannot run setpriv: install util-linux");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no result from the child: {stdout}"))
    };
    assert_eq!(child("0 2147483647"), "up,up,down");
    let refused = child("1 0");
    assert!(refused.contains("ping_group_range"), "{refused}");
}

// ---- The built agent -------------------------------------------------------------------

fn exit_reasons(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("ocf-exit-reason:"))
        .map(str::to_owned)
        .collect()
}

fn run_agent(action: &str, env: &[(&str, &str)]) -> Output {
    Command::new(AGENT)
        .arg(action)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HA_LOGFACILITY", "none")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn bad_parameters_exit_6_with_a_reason() {
    for (key, value, needle) in [
        ("OCF_RESKEY_host_list", "10.0.0.1:3", "host=weight"),
        ("OCF_RESKEY_host_list", "", "host_list"),
        ("OCF_RESKEY_attempts", "0", "attempts"),
        ("OCF_RESKEY_options", "-I eth0", "interface"),
    ] {
        let mut env = vec![("OCF_RESKEY_host_list", "10.0.0.1")];
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
        for action in ["start", "monitor", "validate-all"] {
            let output = run_agent(action, &env);
            assert_eq!(output.status.code(), Some(6), "{action} {key}={value}");
            let reasons = exit_reasons(&output);
            assert_eq!(reasons.len(), 1, "{reasons:?}");
            assert!(reasons[0].contains(needle), "{reasons:?}");
        }
    }
}

#[test]
fn monitor_is_7_when_not_started() {
    let dir = scratch_dir("monitor7");
    let run_dir = dir.to_string_lossy().into_owned();
    for interval in ["0", "2000"] {
        let output = run_agent(
            "monitor",
            &[
                ("OCF_RESKEY_host_list", "10.0.0.1"),
                ("HA_RSCTMP", &run_dir),
                ("OCF_RESOURCE_INSTANCE", "gw"),
                ("OCF_RESKEY_CRM_meta_interval", interval),
            ],
        );
        assert_eq!(output.status.code(), Some(7), "{output:?}");
    }
}

#[test]
fn validate_all_warns_about_unresolvable_names() {
    let lab = Lab::new();
    let output = lab.agent_run(
        "validate-all",
        &[("OCF_RESKEY_host_list", "10.0.0.2 no-such-host.invalid=3")],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no-such-host.invalid does not resolve"),
        "{stderr}"
    );
    let output = lab.agent_run(
        "validate-all",
        &[
            ("OCF_RESKEY_host_list", "10.0.0.2"),
            ("OCF_RESKEY_interface", "nosuchif0"),
        ],
    );
    assert_eq!(output.status.code(), Some(5), "{output:?}");
    assert!(exit_reasons(&output)[0].contains("nosuchif0"));
}

#[test]
fn start_without_a_cluster_fails_and_stop_cleans_up() {
    // attrd is not running here: start must fail with attrd_updater's reason, and the stop
    // Pacemaker would send next must succeed and remove the state.
    let lab = Lab::new();
    let dir = scratch_dir("nocluster");
    let run_dir = dir.to_string_lossy().into_owned();
    let env = [
        ("OCF_RESKEY_host_list", "10.0.0.2"),
        ("HA_RSCTMP", run_dir.as_str()),
        ("OCF_RESOURCE_INSTANCE", "gw:0"),
        ("OCF_RESKEY_CRM_meta_timeout", "10000"),
    ];
    let started = Instant::now();
    let output = lab.agent_run("start", &env);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        exit_reasons(&output)[0].contains("attrd_updater"),
        "{output:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(9));
    let state = dir.join("gwping-gw_0");
    assert!(state.is_file());
    let output = lab.agent_run("stop", &env);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(!state.exists());
    let output = lab.agent_run("monitor", &env);
    assert_eq!(output.status.code(), Some(7), "{output:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Validates with xmllint against the grammar files resource-agents installs; a missing
/// xmllint or grammar is a failure.
fn xmllint(xml: &str, schema_flag: &str, schema: &str) -> Result<(), String> {
    use std::io::Write;
    assert!(
        Path::new(schema).exists(),
        "{schema} is missing: install resource-agents (make setup)"
    );
    let mut child = Command::new("xmllint")
        .args(["--noout", schema_flag, schema, "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xmllint is missing: install libxml2-utils (make setup)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn metadata_is_valid_and_complete() {
    let output = run_agent("meta-data", &[]);
    assert_eq!(output.status.code(), Some(0));
    let xml = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        xml,
        metadata_xml(&clever_agent_gwping::DECLARATION).unwrap()
    );
    xmllint(
        &xml,
        "--dtdvalid",
        "/usr/share/resource-agents/ra-api-1.dtd",
    )
    .unwrap();
    xmllint(&xml, "--relaxng", "/usr/share/resource-agents/metadata.rng").unwrap();
    assert_eq!(
        clever_agent_gwping::DECLARATION.problems(),
        Vec::<String>::new()
    );
    for needle in [
        r#"<resource-agent name="gwping""#,
        r#"<parameter name="host_list" required="1">"#,
        r#"<content type="string" default="pingd"/>"#,
        r#"<content type="integer" default="1"/>"#,
        r#"<content type="string" default="5s"/>"#,
        r#"<content type="integer" default="3"/>"#,
        r#"<content type="string" default="2"/>"#,
        r#"<parameter name="failure_score">"#,
        r#"<action name="monitor" timeout="20s" interval="2s" depth="0"/>"#,
    ] {
        assert!(xml.contains(needle), "{needle} not in:\n{xml}");
    }
}

#[test]
fn every_stock_parameter_is_accepted() {
    // An admin swapping ocf:pacemaker:ping for gwping keeps these names.
    let stock = [
        "pidfile",
        "dampen",
        "name",
        "multiplier",
        "host_list",
        "attempts",
        "timeout",
        "options",
        "failure_score",
        "use_fping",
        "debug",
    ];
    let ours: Vec<&str> = clever_agent_gwping::DECLARATION
        .parameters
        .iter()
        .map(|p| p.name())
        .collect();
    for name in stock {
        assert!(ours.contains(&name), "{name} is missing");
    }
}

/// attrd forgets everything when it restarts (and erases the node's transient attributes from
/// the CIB), so the next monitor creates the attribute anew. Pacemaker 2.1.5, Debian 12's,
/// ignores `--delay` given with `--update` (fixed in 2.1.7): a monitor that relied on it would
/// leave the attribute undampened from then on, and one lost ping would move the stack.
#[test]
fn dampening_survives_an_attrd_restart() {
    let lab = Lab::new();
    let cluster = Cluster::start(&lab.agent);
    let env = [
        ("OCF_RESKEY_host_list", "10.0.0.2"),
        ("OCF_RESKEY_name", "gwrestart"),
        ("OCF_RESKEY_multiplier", "100"),
        ("OCF_RESKEY_dampen", "3s"),
        ("OCF_RESKEY_attempts", "1"),
        ("OCF_RESKEY_timeout", "300ms"),
        ("OCF_RESKEY_CRM_meta_timeout", "20000"),
    ];
    let monitor_env: Vec<_> = env
        .iter()
        .copied()
        .chain([("OCF_RESKEY_CRM_meta_interval", "2000")])
        .collect();
    let output = cluster.agent("start", &env);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    cluster.cib_becomes("gwrestart", Some("100"), Duration::from_secs(10));

    let old = cluster.attrd_pid();
    let killed = Command::new("kill")
        .args(["-KILL", &old.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "kill pacemaker-attrd {old}");
    // pacemakerd starts a new attrd, which erases the node's attributes from the CIB.
    let deadline = Instant::now() + Duration::from_secs(60);
    // attrd_updater exits 102 while it cannot connect; 105 (no such attribute) once it can.
    while cluster.attrd_pid_if_any().is_none_or(|pid| pid == old)
        || cluster
            .tool("attrd_updater", &["-Q", "-n", "gwrestart"])
            .status
            .code()
            == Some(102)
    {
        assert!(
            Instant::now() < deadline,
            "no new pacemaker-attrd within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.cib_becomes("gwrestart", None, Duration::from_secs(30));

    // The next monitor creates the attribute again; the one after that changes it, and that
    // change must still wait for the dampening delay.
    let output = cluster.agent("monitor", &monitor_env);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    cluster.cib_becomes("gwrestart", Some("100"), Duration::from_secs(10));
    ip(&["-n", &lab.host, "link", "set", &lab.host_if, "down"]);
    let output = cluster.agent("monitor", &monitor_env);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(cluster.attrd_value("gwrestart").as_deref(), Some("0"));
    assert_eq!(
        cluster.cib_value("gwrestart").as_deref(),
        Some("100"),
        "not dampened after attrd restarted"
    );
    let took = cluster.cib_becomes("gwrestart", Some("0"), Duration::from_secs(10));
    assert!(
        took > Duration::from_millis(1500),
        "dampening lost after attrd restarted: {took:?}"
    );
    let output = cluster.agent("stop", &env);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn attribute_lifecycle_in_a_live_cluster() {
    let lab = Lab::new();
    let cluster = Cluster::start(&lab.agent);
    let env = [
        ("OCF_RESKEY_host_list", "10.0.0.2=3 10.0.0.3"),
        ("OCF_RESKEY_name", "gwtest"),
        ("OCF_RESKEY_multiplier", "100"),
        ("OCF_RESKEY_dampen", "3s"),
        ("OCF_RESKEY_attempts", "1"),
        ("OCF_RESKEY_timeout", "300ms"),
        ("OCF_RESKEY_CRM_meta_timeout", "20000"),
    ];
    let recurring = ("OCF_RESKEY_CRM_meta_interval", "2000");
    let monitor_env: Vec<_> = env.iter().copied().chain([recurring]).collect();

    let output = cluster.agent("monitor", &monitor_env);
    assert_eq!(output.status.code(), Some(7), "{output:?}");

    // start: the first value reaches the CIB at once, not after the dampening delay.
    let output = cluster.agent("start", &env);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(cluster.attrd_value("gwtest").as_deref(), Some("300"));
    let took = cluster.cib_becomes("gwtest", Some("300"), Duration::from_secs(10));
    assert!(
        took < Duration::from_millis(1500),
        "start's value took {took:?} to reach the CIB"
    );

    // The gateway goes away: attrd has the new value at once, the CIB after the delay.
    ip(&["-n", &lab.host, "link", "set", &lab.host_if, "down"]);
    let output = cluster.agent("monitor", &monitor_env);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(cluster.attrd_value("gwtest").as_deref(), Some("0"));
    assert_eq!(
        cluster.cib_value("gwtest").as_deref(),
        Some("300"),
        "not dampened"
    );
    let took = cluster.cib_becomes("gwtest", Some("0"), Duration::from_secs(10));
    assert!(
        took > Duration::from_millis(1500),
        "dampening ignored: {took:?}"
    );

    // Below failure_score the monitor fails, with the attribute still written.
    let strict: Vec<_> = monitor_env
        .iter()
        .copied()
        .chain([("OCF_RESKEY_failure_score", "100")])
        .collect();
    let output = cluster.agent("monitor", &strict);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        exit_reasons(&output)[0].contains("below failure_score 100"),
        "{output:?}"
    );

    // Back up, then stop: the attribute is deleted (after the delay), monitor says stopped.
    ip(&["-n", &lab.host, "link", "set", &lab.host_if, "up"]);
    let output = cluster.agent("monitor", &monitor_env);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let output = cluster.agent("stop", &env);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(cluster.attrd_value("gwtest"), None);
    cluster.cib_becomes("gwtest", None, Duration::from_secs(10));
    let output = cluster.agent("monitor", &monitor_env);
    assert_eq!(output.status.code(), Some(7), "{output:?}");

    // A restart right after a stop is again written at once.
    let output = cluster.agent("start", &env);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let took = cluster.cib_becomes("gwtest", Some("300"), Duration::from_secs(10));
    assert!(
        took < Duration::from_millis(1500),
        "restart's value took {took:?}"
    );
    let output = cluster.agent("stop", &env);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    // Our conformance harness, through a wrapper that runs the agent inside the node (its
    // attrd is reachable only there). A silent host with a 300 s timeout is what "hangs".
    let wrapper = cluster.dir.join("gwping-in-node");
    ocf_conformance::executable::write_executable(
        &wrapper,
        &format!(
            // meta-data needs nothing, and ocf-tester runs it as nobody (no nsenter then).
            "#!/bin/sh\n[ \"$1\" = meta-data ] && exec {AGENT} \"$@\"\n\
             exec /usr/bin/nsenter -t {} -m -n -u -- {AGENT} \"$@\"\n",
            cluster.node_pid()
        ),
    )
    .unwrap();
    let agent = ocf_conformance::AgentUnderTest {
        path: wrapper,
        instance: "gw_conformance".to_owned(),
        parameters: [("host_list", "10.0.0.2"), ("timeout", "300ms")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        hanging: [("host_list", "10.0.0.3"), ("timeout", "300")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        environment: std::collections::BTreeMap::new(),
        run_ocf_tester: true,
    };
    let report = ocf_conformance::check_agent(&agent).unwrap();
    assert!(report.passed(), "{report}");

    let corosync: i32 = std::fs::read_to_string(cluster.dir.join("run/corosync.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(corosync));
    drop(cluster);
    // Nothing of the node is left.
    assert!(
        !alive(corosync),
        "corosync {corosync} survived the cluster's teardown"
    );
}
