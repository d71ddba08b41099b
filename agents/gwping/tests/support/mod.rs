//! The test lab shared by the integration tests and the benchmark: network namespaces joined
//! by veth pairs, and a live single-node Pacemaker + Corosync inside one of them. Everything is
//! named per process and test, and removed on drop even when a test fails.

#![allow(dead_code, reason = "each user takes what it needs")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clever_agent_gwping::params::HostList;
use clever_agent_gwping::probe::{IcmpProber, Outcome, ProbeSettings, Prober};
use clever_ocf::{Deadline, ParameterType};

pub const AGENT: &str = env!("CARGO_BIN_EXE_gwping");

pub fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("cannot run ip: install iproute2 (and run the tests as root)");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn in_ns(ns: &str, program: &str, args: &[&str]) {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    ip(&all);
}

/// Two namespaces, `agent` and `host`, joined by a veth pair: agent 10.0.0.1/24 and
/// fd00::1/64, host 10.0.0.2/24 and fd00::2/64 (no duplicate address detection). Deleted on
/// drop, whatever happened.
pub struct Lab {
    pub agent: String,
    pub host: String,
    pub agent_if: String,
    pub host_if: String,
}

const AGENT_MAC: &str = "02:00:00:00:00:01";
const HOST_MAC: &str = "02:00:00:00:00:02";

impl Lab {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let lab = Self {
            agent: format!("gwp{id}a"),
            host: format!("gwp{id}h"),
            agent_if: format!("gw{id}a"),
            host_if: format!("gw{id}h"),
        };
        assert!(lab.agent_if.len() < 16, "interface name too long");
        ip(&["netns", "add", &lab.agent]);
        // From here on, a failure still removes what exists.
        ip(&["netns", "add", &lab.host]);
        ip(&[
            "link",
            "add",
            &lab.agent_if,
            "address",
            AGENT_MAC,
            "netns",
            &lab.agent,
            "type",
            "veth",
            "peer",
            "name",
            &lab.host_if,
            "address",
            HOST_MAC,
            "netns",
            &lab.host,
        ]);
        // On a fresh veth pair the first neighbour solicitation is sometimes lost, and its
        // retransmission comes a second later: static IPv6 neighbours keep the timings exact.
        // (IPv4 keeps real ARP; the link-local test keeps real NDP.)
        ip(&[
            "-n",
            &lab.agent,
            "-6",
            "neigh",
            "add",
            "fd00::2",
            "lladdr",
            HOST_MAC,
            "dev",
            &lab.agent_if,
            "nud",
            "permanent",
        ]);
        ip(&[
            "-n",
            &lab.host,
            "-6",
            "neigh",
            "add",
            "fd00::1",
            "lladdr",
            AGENT_MAC,
            "dev",
            &lab.host_if,
            "nud",
            "permanent",
        ]);
        for (ns, dev, v4, v6) in [
            (&lab.agent, &lab.agent_if, "10.0.0.1/24", "fd00::1/64"),
            (&lab.host, &lab.host_if, "10.0.0.2/24", "fd00::2/64"),
        ] {
            ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
            ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // The kernel adds the IPv6 prefix route when the link comes up, from a work queue: on a
        // loaded machine a probe right after `link set up` can find no route yet and be
        // refused. Wait for the routes, not for the clock.
        let started = Instant::now();
        for (ns, dev) in [(&lab.agent, &lab.agent_if), (&lab.host, &lab.host_if)] {
            loop {
                let route = Command::new("ip")
                    .args(["-n", ns, "-6", "route", "show", "fd00::/64", "dev", dev])
                    .output()
                    .unwrap();
                if !route.stdout.is_empty() {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "no IPv6 route on {dev} in {ns} after 20 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        lab
    }

    /// Makes the host namespace a router towards 10.0.1.0/24 and fd01::/64, which it refuses
    /// with `prohibit` routes: the agent gets ICMP "administratively prohibited" back.
    pub fn host_rejects_beyond(&self) {
        ip(&[
            "-n",
            &self.agent,
            "route",
            "add",
            "10.0.1.0/24",
            "via",
            "10.0.0.2",
        ]);
        ip(&[
            "-n",
            &self.agent,
            "-6",
            "route",
            "add",
            "fd01::/64",
            "via",
            "fd00::2",
        ]);
        in_ns(&self.host, "sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        in_ns(
            &self.host,
            "sysctl",
            &["-qw", "net.ipv6.conf.all.forwarding=1"],
        );
        ip(&["-n", &self.host, "route", "add", "prohibit", "10.0.1.0/24"]);
        ip(&[
            "-n",
            &self.host,
            "-6",
            "route",
            "add",
            "prohibit",
            "fd01::/64",
        ]);
    }

    /// Runs `f` on a thread that has joined the agent's network namespace.
    pub fn in_agent<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = PathBuf::from("/var/run/netns").join(&self.agent);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    pub fn probe(
        &self,
        host_list: &str,
        attempts: u32,
        timeout_ms: u64,
    ) -> (Vec<Outcome>, Duration) {
        let hosts = HostList::parse(host_list).unwrap().0;
        self.in_agent(move || {
            let settings = ProbeSettings {
                attempts,
                timeout: Duration::from_millis(timeout_ms),
                interface: None,
            };
            let started = Instant::now();
            let outcomes = IcmpProber
                .probe(&hosts, &settings, &Deadline::after(Duration::from_secs(20)))
                .unwrap();
            (outcomes, started.elapsed())
        })
    }

    /// ICMP and ICMPv6 echo requests the host namespace has received so far.
    pub fn echo_requests_received(&self) -> (u64, u64) {
        let read = |file: &str| {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.host, "cat", file])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let snmp = read("/proc/net/snmp");
        let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
        let (names, values) = (icmp.next().unwrap(), icmp.next().unwrap());
        let position = names
            .split_whitespace()
            .position(|n| n == "InEchos")
            .unwrap();
        let v4 = values
            .split_whitespace()
            .nth(position)
            .unwrap()
            .parse()
            .unwrap();
        let v6 = read("/proc/net/snmp6")
            .lines()
            .find_map(|l| l.strip_prefix("Icmp6InEchos"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (v4, v6)
    }

    /// Runs the built agent in the agent namespace.
    pub fn agent_run(&self, action: &str, env: &[(&str, &str)]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.agent, AGENT, action])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HA_LOGFACILITY", "none")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end, and the peer with it.
        for ns in [&self.agent, &self.host] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gwping-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

// ---- A live single-node Pacemaker + Corosync ---------------------------------------------

/// Sets up the node's private directories, then becomes corosync's parent and pacemakerd.
/// Runs inside `unshare -m -u` in the lab's agent namespace, so nothing of the host's cluster
/// configuration, state, logs or `/run` is touched.
const NODE_SCRIPT: &str = r#"
set -e
T="$1"
make_missing_dirs "$T" /etc/corosync /var/lib/pacemaker /var/lib/corosync /var/log/pacemaker \
  /var/log/corosync
mount --bind "$T/etc-corosync" /etc/corosync
mount --bind "$T/lib-pacemaker" /var/lib/pacemaker
mount --bind "$T/lib-corosync" /var/lib/corosync
mount --bind "$T/log-pacemaker" /var/log/pacemaker
mount --bind "$T/log-corosync" /var/log/corosync
mount --bind "$T/run" /run
mount -t tmpfs tmpfs /dev/shm
hostname node1
corosync -f &
exec pacemakerd
"#;

const COROSYNC_CONF: &str = "totem {
  version: 2
  cluster_name: gwping-test
  transport: knet
  crypto_cipher: none
  crypto_hash: none
  token: 1000
}
nodelist {
  node {
    ring0_addr: 127.0.0.1
    name: node1
    nodeid: 1
  }
}
quorum {
  provider: corosync_votequorum
}
logging {
  to_logfile: yes
  logfile: /var/log/corosync/corosync.log
  to_syslog: no
  to_stderr: no
}
";

const CIB: &str = r#"<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="o1" name="stonith-enabled" value="false"/>
        <nvpair id="o2" name="no-quorum-policy" value="ignore"/>
        <nvpair id="o3" name="dc-deadtime" value="1s"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
"#;

/// One node, started in the namespace `netns`; stopped on drop, and every process left in the
/// namespace killed (by pid), so nothing survives a failed test.
pub struct Cluster {
    pub dir: PathBuf,
    netns: String,
    pacemakerd: std::process::Child,
}

impl Cluster {
    pub fn start(netns: &str) -> Self {
        for tool in [
            "corosync",
            "pacemakerd",
            "attrd_updater",
            "crm_attribute",
            "unshare",
        ] {
            let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .any(|dir| Path::new(dir).join(tool).exists());
            assert!(
                found,
                "{tool} is missing: install pacemaker, corosync and util-linux"
            );
        }
        let dir = scratch_dir(&format!("cluster-{netns}"));
        for sub in [
            "etc-corosync",
            "lib-pacemaker/cib",
            "lib-pacemaker/pengine",
            "lib-pacemaker/blackbox",
            "lib-pacemaker/cores",
            "lib-corosync",
            "log-pacemaker",
            "log-corosync",
            "run",
        ] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("etc-corosync/corosync.conf"), COROSYNC_CONF).unwrap();
        std::fs::write(dir.join("lib-pacemaker/cib/cib.xml"), CIB).unwrap();
        for owned in ["lib-pacemaker", "log-pacemaker"] {
            let status = Command::new("chown")
                .args(["-R", "hacluster:haclient"])
                .arg(dir.join(owned))
                .status()
                .unwrap();
            assert!(status.success(), "chown hacluster:haclient failed");
        }
        let node_script = format!(
            "{}{NODE_SCRIPT}",
            ocf_conformance::namespace::MAKE_MISSING_DIRS
        );
        let pacemakerd = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "unshare",
                "-m",
                "-u",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &node_script, "node"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let cluster = Self {
            dir,
            netns: netns.to_owned(),
            pacemakerd,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = cluster.tool("crm_mon", &["-1"]);
            let text = String::from_utf8_lossy(&status.stdout).into_owned();
            if text.contains("Current DC: node1") && text.contains("Online: [ node1 ]") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not come up:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        cluster
    }

    /// A process in the node's namespaces (pacemakerd), for `nsenter -t`.
    pub fn node_pid(&self) -> u32 {
        self.pacemakerd.id()
    }

    pub fn enter(&self) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg("-t")
            .arg(self.pacemakerd.id().to_string())
            .args(["-m", "-n", "-u", "--"]);
        command
    }

    pub fn tool(&self, program: &str, args: &[&str]) -> Output {
        self.enter().arg(program).args(args).output().unwrap()
    }

    /// The agent as the cluster node's execd would run it.
    pub fn agent(&self, action: &str, env: &[(&str, &str)]) -> Output {
        self.enter()
            .args([AGENT, action])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HA_LOGFACILITY", "none")
            .env("OCF_RESOURCE_INSTANCE", "gw")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// The node's pacemaker-attrd, when one runs.
    pub fn attrd_pid_if_any(&self) -> Option<i32> {
        self.processes_in_namespace().into_iter().find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "pacemaker-attrd")
        })
    }

    pub fn attrd_pid(&self) -> i32 {
        self.attrd_pid_if_any()
            .expect("pacemaker-attrd runs in the node")
    }

    /// The value attrd holds for this node (`None`: no such attribute or empty).
    pub fn attrd_value(&self, name: &str) -> Option<String> {
        let output = self.tool("attrd_updater", &["-Q", "-n", name]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let value = text.split("value=\"").nth(1)?.split('"').next()?.to_owned();
        Some(value).filter(|v| !v.is_empty())
    }

    /// The value written to the CIB's status section.
    pub fn cib_value(&self, name: &str) -> Option<String> {
        let output = self.tool(
            "crm_attribute",
            &["-N", "node1", "-n", name, "-l", "reboot", "-G", "-q"],
        );
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Waits until the CIB holds `expected`; how long that took.
    pub fn cib_becomes(&self, name: &str, expected: Option<&str>, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let value = self.cib_value(name);
            if value.as_deref() == expected {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "CIB {name}={value:?}, expected {expected:?} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn processes_in_namespace(&self) -> Vec<i32> {
        let Ok(ns) = std::fs::metadata(Path::new("/var/run/netns").join(&self.netns)) else {
            return Vec::new();
        };
        use std::os::unix::fs::MetadataExt;
        let wanted = (ns.dev(), ns.ino());
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::metadata(format!("/proc/{pid}/ns/net"))
                    .map(|m| (m.dev(), m.ino()) == wanted)
                    .unwrap_or(false)
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let _ = self.enter().args(["pacemakerd", "--shutdown"]).output();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.pacemakerd.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        // corosync, and anything else still in the node's namespace: TERM, then KILL. A
        // process counts as gone once it is a zombie (PID 1 reaps orphans late here) or
        // reaped; a multi-threaded one can leave the namespace before it is gone, so the
        // signalled pids are watched too.
        let mut signalled: Vec<i32> = Vec::new();
        for signal in [Signal::SIGTERM, Signal::SIGKILL] {
            signalled.extend(self.processes_in_namespace());
            signalled.retain(|&pid| alive(pid));
            signalled.dedup();
            if signalled.is_empty() {
                break;
            }
            for &pid in &signalled {
                let _ = kill(Pid::from_raw(pid), signal);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline
                && (signalled.iter().any(|&pid| alive(pid))
                    || !self.processes_in_namespace().is_empty())
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.pacemakerd.kill();
        let _ = self.pacemakerd.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `pid` is a process that still runs (not reaped, not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X') | None)
        })
        .unwrap_or(false)
}
