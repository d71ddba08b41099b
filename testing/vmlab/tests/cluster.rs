//! The whole system on VM nodes as an admin has it: two qemu (TCG) guests booting a Debian 12
//! root filesystem (debootstrap, cached) with systemd as PID 1; Corosync 3, Pacemaker 2.1 and
//! libvirtd as their systemd units; the README's install steps run word for word (our package
//! with `apt install`, the CIB from the packaged `clever-cib generate`, loaded with `crm configure
//! load update`); DRBD on its own link, a gateway to ping, real fencing and a real VM (the
//! namespace lab's counter guest, nested TCG). Then, each watched on both nodes for a double
//! activation: a controlled migration with `clevervm`, a replication-link cut, a gateway loss, a
//! killed qemu, a power cut under writes, and a package upgrade in place.
//!
//! `make vmcluster-test`, part of `make test` (which builds the package first).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use ocf_conformance::workspace_build::release_binaries;
use std::path::Path;
use std::time::{Duration, Instant};

use clever_lab::guest::{self, Serial};
use clever_vmlab::cluster::{
    ClusterConfig, ClusterLab, GATEWAY, GATEWAY_NIC, REPLICATION_ADDRESSES, REPLICATION_NIC,
};
use clever_vmlab::{Vm, NODES, PROVISION_CLUSTER, PROVISION_DRBD};
use std::path::PathBuf;

/// Runs a script that must succeed.
#[track_caller]
fn sh(vm: &Vm, script: &str) -> String {
    sh_within(vm, script, Duration::from_secs(120))
}

#[track_caller]
fn sh_within(vm: &Vm, script: &str, timeout: Duration) -> String {
    let output = vm.run(script, timeout).unwrap();
    assert!(
        output.success(),
        "{}: `{script}` exited {}\nstdout: {}\nstderr: {}\n--- console ---\n{}",
        vm.name(),
        output.code,
        output.stdout,
        output.stderr,
        vm.console_tail()
    );
    output.stdout
}

/// Writes `text` to `path` in the guest.
fn write(vm: &Vm, path: &str, text: &str) {
    sh(
        vm,
        &format!("mkdir -p \"$(dirname {path})\" && cat > {path} <<'LAB_EOF'\n{text}LAB_EOF\n"),
    );
}

/// The CIB a node starts with: no fencing yet, a short DC deadtime so the cluster forms in
/// seconds, not ~20 s.
const SEED_CIB: &str = r#"<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith" name="stonith-enabled" value="false"/>
        <nvpair id="opt-dc-deadtime" name="dc-deadtime" value="2s"/>
        <nvpair id="opt-no-quorum" name="no-quorum-policy" value="stop"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
"#;

/// Configures and starts Corosync, then Pacemaker, on one node, as the Vagrant lab does (through
/// systemd), with the seed CIB first.
fn start_cluster(vm: &Vm) {
    let nodes: Vec<String> = NODES
        .iter()
        .map(|(name, address)| format!("{name}={address}"))
        .collect();
    provision(
        vm,
        PROVISION_CLUSTER,
        &format!("corosync {} 1000", nodes.join(",")),
    );
    write(vm, "/var/lib/pacemaker/cib/cib.xml", SEED_CIB);
    // Pacemaker's CIB manager runs as hacluster.
    sh(
        vm,
        "chown hacluster:haclient /var/lib/pacemaker/cib/cib.xml && chmod 0600 /var/lib/pacemaker/cib/cib.xml \
         && rm -f /var/lib/pacemaker/cib/cib.xml.sig",
    );
    provision(vm, PROVISION_CLUSTER, "start");
}

/// What a failed wait prints from the guest.
const DIAGNOSE: &str = "ps -eo pid,rss,stat,args; free -m; systemctl --failed; \
    journalctl -n 60 --no-pager -u corosync -u pacemaker; \
    tail -n 30 /var/log/corosync/corosync.log; tail -n 60 /var/log/pacemaker/pacemaker.log";

/// Waits until crm_mon on `vm` shows both nodes online.
fn wait_online(vm: &Vm, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let output = vm
            .run("crm_mon -1 --output-as=xml", Duration::from_secs(60))
            .unwrap();
        let online = NODES
            .iter()
            .filter(|(name, _)| {
                output.stdout.lines().any(|line| {
                    line.contains(&format!("name=\"{name}\"")) && line.contains("online=\"true\"")
                })
            })
            .count();
        if online == NODES.len() {
            return output.stdout;
        }
        if start.elapsed() > timeout {
            let logs = vm.run(DIAGNOSE, Duration::from_secs(60)).unwrap();
            panic!(
                "{}: both nodes not online within {timeout:?} (crm_mon exited {}):\n{}\n{}\n\
                 --- diagnosis ---\n{}\n{}",
                vm.name(),
                output.code,
                output.stdout,
                output.stderr,
                logs.stdout,
                logs.stderr
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The cluster as the generator describes it, all of it real: the ocf:linbit:drbd promotable
/// clone, drbdfs, libvirtd as its systemd unit, the vm agent running the counter guest from the
/// DRBD filesystem, gwping, the address. Fencing is real too: the labs' fence agent (`fence_lab`
/// of testing/lab) asks the host over the `lab.fence` serial port to kill the target's qemu; a
/// fenced node stays down, so reboot is asked as off.
const DESCRIPTION: &str = r#"
[cluster]
name = "clever-vmlab"

[[node]]
name = "alpha"
[[node]]
name = "beta"

[fencing]
mode = "devices"
[[fencing.device]]
node = "alpha"
agent = "fence_lab"
params = { plug = "alpha", serial_port = "lab.fence", pcmk_reboot_action = "off" }
[[fencing.device]]
node = "beta"
agent = "fence_lab"
params = { plug = "beta", serial_port = "lab.fence", pcmk_reboot_action = "off" }

[gwping]
host_list = ["10.0.2.2"]
multiplier = 1000
dampen = "2s"

[libvirtd]
class = "systemd"

[[drbd]]
name = "r0"
device = "/dev/drbd0"

[[vm]]
name = "clever"
drbd = "r0"
config = "/mnt/data/clever.xml"
mount = { directory = "/mnt/data", fstype = "ext4" }
address = { ip = "10.99.0.10", cidr_netmask = 24, nic = "eth0" }

# Under TCG on a busy host one ocf:linbit:drbd monitor (a shell script spawning dozens of
# programs) took over 20 s of a node's single emulated CPU, a timeout counts as a failure, and at
# the agents' own intervals the monitors together left the cluster little CPU for the operations
# the scenarios wait for.
[operations]
timeout_floor = "120s"
monitor_interval_factor = 3
"#;

/// The README's "Install on a real cluster" block, word for word: the lines it runs on every
/// node, and those it runs on one.
fn install_steps() -> (String, String) {
    let readme = include_str!("../../../README.md");
    let block = readme
        .split_once("## Install on a real cluster")
        .and_then(|(_, section)| section.split_once("```sh\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("README.md has no sh block under \"Install on a real cluster\"");
    let (every_node, one_node) = block
        .split_once("# On one node")
        .expect("the README's install block says which lines run on one node");
    (every_node.to_owned(), format!("# On one node{one_node}"))
}

/// Runs `steps` (README lines) as a script in /root, failing on the first line that fails.
fn run_steps(vm: &Vm, name: &str, steps: &str) -> String {
    write(vm, &format!("/root/{name}.sh"), steps);
    sh_within(
        vm,
        &format!(
            "cd /root && DEBIAN_FRONTEND=noninteractive sh -ex /root/{name}.sh </dev/null 2>&1"
        ),
        Duration::from_secs(300),
    )
}

const DEVICE: &str = "/dev/drbd0";
const MOUNT: &str = "/mnt/data";

/// The labs' fence agent and writer, built now (release); our agents come with the package.
fn lab_binaries() -> PathBuf {
    release_binaries(&["clever-lab"])
}

/// Our Debian package as `make deb` built it: `CLEVER_VMLAB_DEB` (which `make vmcluster-test`
/// sets after building it), else the newest in the workspace's `build/deb/`. None is a failure:
/// the nodes get our agents only as an admin does, from the package.
fn package() -> PathBuf {
    if let Some(path) = std::env::var_os("CLEVER_VMLAB_DEB") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "CLEVER_VMLAB_DEB={path:?} is not a file");
        return path;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/deb");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| {
                            name.starts_with("clever-cluster_") && name.ends_with("_amd64.deb")
                        })
                })
                .collect()
        })
        .unwrap_or_default();
    debs.sort_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok());
    debs.pop().unwrap_or_else(|| {
        panic!(
            "no clever-cluster_*_amd64.deb in {}: build it with `make deb` (`make vmcluster-test` does)",
            dir.display()
        )
    })
}

/// Runs one of the provisioning scripts, as the Vagrantfile does.
fn provision(vm: &Vm, script: &str, args: &str) -> String {
    sh(
        vm,
        &format!(
            "cat > /tmp/provision.sh <<'LAB_EOF'\n{script}LAB_EOF\nDRBD_FAST_TIMERS=1 sh /tmp/provision.sh {args}"
        ),
    )
}

/// Polls `check` (a script) on `vm` until it exits 0.
fn wait_for(vm: &Vm, check: &str, what: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let output = vm.run(check, Duration::from_secs(60)).unwrap();
        if output.success() {
            return;
        }
        if start.elapsed() > timeout {
            let logs = vm.run(DIAGNOSE_STACK, Duration::from_secs(60)).unwrap();
            let history = vm.run(DRBD_HISTORY, Duration::from_secs(60)).unwrap();
            panic!(
                "{}: {what} not reached within {timeout:?} (`{check}`: {} {})\n--- diagnosis ---\n{}\n{}\n{}",
                vm.name(),
                output.stdout,
                output.stderr,
                logs.stdout,
                logs.stderr,
                history.stdout
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every operation result and action Pacemaker logged on a node for the DRBD clone and the
/// filesystem, with DRBD's kernel messages: why a node is not what the test expected.
const DRBD_HISTORY: &str = "grep -E 'Result of .*(drbd_r0|fs_clever)|Actions: .*(drbd_r0|fs_clever)|crm-fence-peer|crm-unfence-peer' /var/log/pacemaker/pacemaker.log | tail -n 80; dmesg | grep -i drbd | tail -n 40";

const DIAGNOSE_STACK: &str = "crm_mon -1 -A -f 2>&1; cat /proc/drbd; grep /mnt /proc/mounts; \
    virsh list --all; tail -n 20 /var/log/libvirt/qemu/clever.log; \
    journalctl -n 30 --no-pager -u libvirtd; \
    grep -E 'error|warning|drbd|fs_clever|vm_clever' /var/log/pacemaker/pacemaker.log | tail -n 60";

/// One node's activation as the kernel sees it: DRBD role, whether the filesystem is mounted,
/// whether a qemu of the guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Activation {
    primary: bool,
    mounted: bool,
    qemu: bool,
}

impl Activation {
    /// Whether `self` and `other` hold anything at the same time.
    fn overlaps(self, other: Self) -> bool {
        (self.primary && other.primary)
            || (self.mounted && other.mounted)
            || (self.qemu && other.qemu)
    }
}

const ACTIVE: Activation = Activation {
    primary: true,
    mounted: true,
    qemu: true,
};
const PASSIVE: Activation = Activation {
    primary: false,
    mounted: false,
    qemu: false,
};

/// The guest's libvirt name; its qemu runs with `-name guest=clever,…`.
const DOMAIN: &str = "clever";
/// The guest's RAM: its hibernation image is that size, on the DRBD filesystem.
const GUEST_MIB: u32 = 32;
/// The guest's console, on the DRBD filesystem: it moves with the VM, so one file holds the
/// counter across every node the guest ran on.
const GUEST_CONSOLE: &str = "/mnt/data/console.log";

fn activation(vm: &Vm) -> Activation {
    observe(vm).0
}

/// A node's activation and its DRBD state line (`cs:… ro:… ds:…`, or nothing while DRBD is
/// down), for timelines.
fn observe(vm: &Vm) -> (Activation, String) {
    let out = sh(
        vm,
        &format!(
            "cat /proc/drbd; echo; if pgrep -f 'guest={DOMAIN},' >/dev/null; then echo qemu-running; fi; \
             grep -c ' {MOUNT} ' /proc/mounts || true"
        ),
    );
    let state = out
        .lines()
        .find_map(|line| line.split_once(" cs:"))
        .map(|(_, rest)| format!("cs:{}", rest.split(" C ").next().unwrap_or(rest).trim()))
        .unwrap_or_else(|| "DRBD down".to_owned());
    let activation = Activation {
        primary: out.contains("ro:Primary/"),
        mounted: out.lines().last().is_some_and(|l| l.trim() != "0"),
        qemu: out.lines().any(|l| l == "qemu-running"),
    };
    (activation, state)
}

/// Which node runs `resource` according to crm_mon on `vm` (None while stopped or moving).
fn located(vm: &Vm, resource: &str) -> Vec<String> {
    let out = sh(
        vm,
        &format!("crm_resource --locate -r {resource} 2>&1 || true"),
    );
    out.lines()
        .filter_map(|l| l.split("running on: ").nth(1))
        .map(|n| n.split_whitespace().next().unwrap_or_default().to_owned())
        .collect()
}

/// Whether DRBD's fence-peer handler's constraint (forbidding promotion of the outdated peer)
/// is in the CIB.
fn fence_constraint(vm: &Vm) -> bool {
    sh(
        vm,
        "cibadmin --query --scope constraints | grep -c drbd-fence-by-handler || true",
    )
    .trim()
        != "0"
}

/// Between two samples of a timeline.
const SAMPLE_PAUSE: Duration = Duration::from_millis(300);

/// A timeline of both nodes' activation, sampled until `target` runs the whole stack and
/// `source` nothing. The target is sampled first: a target found active stays active, so a
/// source found active after it means both were active at that moment.
fn watch_move(observer: &Vm, source: &Vm, target: &Vm, what: &str) -> Duration {
    let began = Instant::now();
    let mut timeline: Vec<(Duration, Activation, String, Activation, String)> = Vec::new();
    loop {
        let (t, t_state) = observe(target);
        let (s, s_state) = observe(source);
        let changed = timeline
            .last()
            .is_none_or(|(_, ls, lss, lt, lts)| (ls, lss, lt, lts) != (&s, &s_state, &t, &t_state));
        if changed {
            timeline.push((began.elapsed(), s, s_state, t, t_state));
        }
        assert!(!t.overlaps(s), "{what}: double activation: {timeline:#?}");
        if t == ACTIVE && s == PASSIVE && located(observer, "ip_clever") == [target.name()] {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "{what} did not finish: {timeline:#?}\n{}",
            sh(observer, DIAGNOSE_STACK)
        );
        // Each sample runs programs in both guests: leave their single CPUs to the cluster.
        std::thread::sleep(SAMPLE_PAUSE);
    }
    eprintln!(
        "{what}: {} -> {} in {:?}; timeline of changes (elapsed, source, target):",
        source.name(),
        target.name(),
        began.elapsed()
    );
    for (at, s, s_state, t, t_state) in &timeline {
        eprintln!("  {at:>10.2?} source {s:?} {s_state} | target {t:?} {t_state}");
    }
    for resource in ["fs_clever", "vm_clever", "ip_clever"] {
        assert_eq!(located(observer, resource), [target.name()], "{resource}");
    }
    sh(target, &format!("grep -q data {MOUNT}/marker"));
    began.elapsed()
}

/// What the guest printed so far, read on the node that has the filesystem mounted.
fn guest_serial(vm: &Vm) -> Serial {
    Serial::parse(&sh(vm, &format!("cat {GUEST_CONSOLE} 2>/dev/null || true")))
}

/// Waits until the guest, read on `vm`, has printed a count after `before`'s last one (and,
/// with `boots`, after that many boots), so that it runs now; the guest's vCPU is scheduled
/// idle, so its counter advances only when the node has CPU to spare.
fn wait_counter(vm: &Vm, before: &Serial, boots: usize, what: &str) -> Serial {
    let began = Instant::now();
    loop {
        let now = guest_serial(vm);
        if now.boots == boots && now.counts.len() > before.counts.len() {
            return now;
        }
        assert!(
            now.boots <= boots && began.elapsed() < Duration::from_secs(600),
            "{what}: the guest on {} printed {} boots and {} counts (before: {} boots, {} counts, last {:?}); last counts {:?}\n{}",
            vm.name(),
            now.boots,
            now.counts.len(),
            before.boots,
            before.counts.len(),
            before.last(),
            now.counts.iter().rev().take(5).collect::<Vec<_>>(),
            sh(vm, DIAGNOSE_STACK)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The guest resumed rather than rebooted: no new boot, and every count printed since `before`
/// continues its counter.
fn assert_resumed(before: &Serial, after: &Serial, what: &str) {
    let last = before.last().unwrap_or(0);
    let since = &after.counts[before.counts.len()..];
    assert!(
        after.boots == before.boots
            && since.iter().all(|&count| count > last)
            && since.windows(2).all(|pair| pair[0] < pair[1]),
        "{what}: the guest did not resume: before {} boots, last count {last}; after {} boots, counts since {since:?}",
        before.boots,
        after.boots
    );
    eprintln!(
        "{what}: the guest resumed: counter {last} before, {:?} after",
        after.last()
    );
}

/// `deb` again, with its version raised (`+lab1`) and nothing else changed, built into `dir`: what
/// an upgrade in place installs.
fn newer_package(deb: &Path, dir: &Path) -> PathBuf {
    let tree = dir.join("upgrade-tree");
    let run = |command: &mut std::process::Command| {
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(std::process::Command::new("dpkg-deb")
        .arg("-R")
        .arg(deb)
        .arg(&tree));
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let version = text
        .lines()
        .find_map(|line| line.strip_prefix("Version: "))
        .unwrap()
        .to_owned();
    std::fs::write(
        &control,
        text.replace(
            &format!("Version: {version}"),
            &format!("Version: {version}+lab1"),
        ),
    )
    .unwrap();
    let newer = dir.join(format!("clever-cluster_{version}+lab1_amd64.deb"));
    run(std::process::Command::new("dpkg-deb")
        .args(["--root-owner-group", "-b"])
        .arg(&tree)
        .arg(&newer));
    newer
}

/// `clevervm status` on `vm` while the stack runs on `active`: it names the VM running there and
/// this node as the observer; its DRBD storage (role, disk, connection, and on the active node
/// the mount's size/used/free) and the VM's libvirt state agree with what this node's own tools
/// say at about the same time. `/etc/init.d/clevervm status` is the same command: the script
/// opts out of Debian's redirect to systemctl (`SYSTEMCTL_SKIP_REDIRECT`), which `service
/// clevervm status` still goes through on a systemd node.
fn check_status(vm: &Vm, active: &str) {
    let node = vm.name();
    let text = sh(vm, "clevervm status");
    eprintln!("clevervm status on {node}:\n{text}");
    assert!(text.contains(&format!("running on {active}")), "{text}");
    assert!(text.contains(&format!("seen from {node}")), "{text}");
    // A healthy cluster, seen from either node (the passive one once warned its Secondary was
    // "no longer Primary").
    assert!(text.contains("No problems."), "{text}");
    let script = sh(vm, "/etc/init.d/clevervm status");
    assert!(script.contains(&format!("running on {active}")), "{script}");
    let service = vm
        .run("service clevervm status", Duration::from_secs(60))
        .unwrap();
    eprintln!(
        "service clevervm status on {node} (exit {}): {}",
        service.code,
        service
            .stdout
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    // As the README says: on a systemd node `service` hands `status` to systemctl, which shows
    // the unit systemd generated from the LSB script (never started: Pacemaker owns the VM).
    assert!(
        service.stdout.contains("clevervm.service") && service.stdout.contains("/etc/init.d/clevervm"),
        "service clevervm status is no longer systemctl's: the README's clevervm section is wrong\n{}",
        service.stdout
    );

    // `status --json` prints the problems and, under `status`, the snapshot the text shows.
    let report: serde_json::Value =
        serde_json::from_str(&sh(vm, "clevervm status --json")).unwrap();
    let json = &report["status"];
    let live = sh(
        vm,
        &format!(
            "drbdadm role r0; drbdadm dstate r0; drbdadm cstate r0; \
             virsh -c qemu:///system domstate {DOMAIN} --reason 2>/dev/null || echo undefined; \
             df -B1 --output=size,used,avail {MOUNT} | tail -n 1"
        ),
    );
    // virsh ends its answer with an empty line.
    let live: Vec<&str> = live
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(live.len(), 5, "{live:?}");
    let storage = &json["storage"][0];
    let mine = |pair: &str| pair.split('/').next().unwrap_or_default().to_lowercase();
    let field = |value: &serde_json::Value| value.as_str().unwrap_or("none").to_lowercase();
    assert_eq!(field(&storage["local_role"]), mine(live[0]), "{storage:#}");
    assert_eq!(field(&storage["local_disk"]), mine(live[1]), "{storage:#}");
    assert_eq!(
        field(&storage["peers"][0]["connection"]),
        live[2].to_lowercase(),
        "{storage:#}"
    );
    let vm_view = &json["vms"][0];
    assert_eq!(
        vm_view["running_on"],
        serde_json::json!([active]),
        "{vm_view:#}"
    );
    let state = vm_view["local_state"].as_str().unwrap_or("undefined");
    assert_eq!(
        state.split_whitespace().next(),
        live[3].split_whitespace().next(),
        "{node}: clevervm says the VM is {state:?}, virsh {:?}",
        live[3]
    );
    if node == active {
        let df: Vec<u64> = live[4]
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        let mount = &storage["mount"];
        // The guest's console on that filesystem grows meanwhile: a few blocks at most.
        let near = |key: &str, value: u64| {
            let shown = mount[key].as_u64().unwrap();
            assert!(
                shown.abs_diff(value) <= 1 << 20,
                "{node}: clevervm says {key} {shown}, df {value}: {mount:#}"
            );
        };
        near("size_bytes", df[0]);
        near("used_bytes", df[1]);
        near("free_bytes", df[2]);
    } else {
        assert!(storage["mount"].is_null(), "{storage:#}");
    }
}

/// Whether the console `text` shows `boots` boots and a count printed after the last one.
///
/// A power cut can leave the console file ending in the middle of a line (what the dead node
/// printed last had not all reached the disk), so the next boot's `boot` may follow a number
/// on the same line: such a line counts as a boot.
fn counted_since_boot(text: &str, boots: usize) -> bool {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let is_boot = |line: &str| line.ends_with("boot");
    let seen = lines.iter().filter(|line| is_boot(line)).count();
    let after_last = lines
        .iter()
        .rposition(|line| is_boot(line))
        .map_or(&[][..], |at| &lines[at + 1..]);
    // The last line may be cut in the middle of a number.
    let complete = after_last.len().saturating_sub(1);
    seen == boots
        && after_last[..complete]
            .iter()
            .any(|line| line.parse::<u64>().is_ok())
}

/// The vm agent's operations with their run times, as Pacemaker recorded them: what hibernating
/// and resuming the nested guest cost.
const VM_OPERATIONS: &str =
    "crm_mon -1 --include=operations --timing-details 2>&1 | sed -n '/Operations/,$p'";

/// How much the measured writes of the replication cost are: the DRBD disk has 128 MiB.
const PROBE_MIB: u32 = 32;

/// Seconds `vm` takes to write [`PROBE_MIB`] MiB to the DRBD filesystem and `fsync` them, as dd
/// reports it; the file is removed after.
fn write_seconds(vm: &Vm) -> f64 {
    let report = sh_within(
        vm,
        &format!(
            "dd if=/dev/zero of={MOUNT}/replication-probe bs=1M count={PROBE_MIB} conv=fsync 2>&1; rm -f {MOUNT}/replication-probe; sync"
        ),
        Duration::from_secs(300),
    );
    report
        .lines()
        .find_map(|line| {
            let (_, after) = line.split_once(" copied, ")?;
            after.split_whitespace().next()?.parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("no time in dd's report: {report}"))
}

/// The records the power-cut scenario's writer appends, on the DRBD filesystem.
const RECORDS: &str = "/mnt/data/records";
/// What the writer's acknowledgements start with on the console, among the kernel's lines.
const ACK_PREFIX: &str = "records-acked";

/// The highest record number `vm`'s writer acknowledged on its console; a line the power cut
/// left unfinished does not count.
fn acknowledged(vm: &Vm) -> u64 {
    let text = vm.console_text();
    let finished = text.rsplit_once('\n').map_or("", |(lines, _)| lines);
    finished
        .lines()
        .filter_map(|line| line.split_once(ACK_PREFIX))
        .filter_map(|(_, number)| number.trim().parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn stack_on_vm_nodes() {
    let started = Instant::now();
    let lab_dir = lab_binaries();
    let deb = package();
    let deb_name = deb.file_name().unwrap().to_str().unwrap().to_owned();
    let guest_dir = std::env::temp_dir().join(format!("clever-vmlab-guest-{}", std::process::id()));
    std::fs::create_dir_all(&guest_dir).unwrap();
    let guest_elf = guest::build(&guest_dir).unwrap();
    let upgrade = newer_package(&deb, &guest_dir);
    let config = ClusterConfig {
        files: vec![
            (format!("/root/{deb_name}"), deb.clone()),
            ("/usr/sbin/fence_lab".to_owned(), lab_dir.join("fence_lab")),
            (
                "/usr/local/sbin/clever-lab".to_owned(),
                lab_dir.join("clever-lab"),
            ),
            ("/root/guest.elf".to_owned(), guest_elf),
            (
                format!(
                    "/root/upgrade/{}",
                    upgrade.file_name().unwrap().to_str().unwrap()
                ),
                upgrade.clone(),
            ),
        ],
        // Room for the guest's hibernation image besides the data.
        disk_mib: 128,
        // The nested guest's qemu and libvirtd besides the cluster (512 MiB was enough without).
        memory_mib: 1024,
        ..ClusterConfig::default()
    };
    let lab = ClusterLab::boot(&config).unwrap();
    eprintln!(
        "image ready and both nodes booted in {:?}",
        started.elapsed()
    );
    let alpha = lab.node("alpha").unwrap();
    let beta = lab.node("beta").unwrap();
    let _ = std::fs::remove_dir_all(&guest_dir);
    for vm in [alpha, beta] {
        assert_eq!(
            sh(vm, "readlink /proc/1/exe").trim(),
            "/usr/lib/systemd/systemd",
            "{}: PID 1 is not systemd",
            vm.name()
        );
    }

    // Our package, as the README says, its dependencies resolved by apt from what the node has
    // (no network: the root image holds them).
    let install = Instant::now();
    let (on_every_node, on_one_node) = install_steps();
    assert!(
        deb_name.starts_with("clever-cluster_") && deb_name.ends_with("_amd64.deb"),
        "{deb_name}"
    );
    for vm in [alpha, beta] {
        let out = run_steps(vm, "install-every-node", &on_every_node);
        assert!(out.contains("Setting up clever-cluster"), "{out}");
        sh(
            vm,
            "dpkg -s clever-cluster | grep -q '^Status: install ok installed'",
        );
    }
    eprintln!(
        "package {deb_name} installed on both nodes in {:?}",
        install.elapsed()
    );

    // DRBD under its own tools first (as an admin would before handing it to Pacemaker), with
    // the fencing handlers in the common section, replicating over its own link.
    let drbd = Instant::now();
    let [alpha_replication, beta_replication] = REPLICATION_ADDRESSES;
    for vm in [alpha, beta] {
        provision(vm, PROVISION_DRBD, "fencing resource-and-stonith");
        provision(
            vm,
            PROVISION_DRBD,
            &format!("config r0 0 /dev/vda alpha {alpha_replication} beta {beta_replication}"),
        );
        provision(vm, PROVISION_DRBD, "create r0");
        sh(vm, &format!("mkdir -p {MOUNT}"));
    }
    wait_for(
        alpha,
        "grep -q 'cs:Connected' /proc/drbd",
        "DRBD connected",
        Duration::from_secs(120),
    );
    provision(alpha, PROVISION_DRBD, "first-primary r0 ext4");
    wait_for(
        alpha,
        "grep -q 'ds:UpToDate/UpToDate' /proc/drbd",
        "initial sync",
        Duration::from_secs(300),
    );
    sh(
        alpha,
        &format!(
            "drbdadm primary r0 && mount {DEVICE} {MOUNT} && mkdir {MOUNT}/hibernate && echo data > {MOUNT}/marker \
             && cp /root/guest.elf {MOUNT}/guest.elf && cat > {MOUNT}/clever.xml <<'LAB_EOF'\n{xml}LAB_EOF\n\
             umount {MOUNT} && drbdadm secondary r0",
            xml = guest::idle_vcpu(&guest::domain_xml(
                DOMAIN,
                GUEST_MIB,
                Path::new(&format!("{MOUNT}/guest.elf")),
                Path::new(GUEST_CONSOLE),
            ))
        ),
    );
    eprintln!("DRBD provisioned and synced in {:?}", drbd.elapsed());

    let formed = Instant::now();
    for vm in lab.nodes() {
        start_cluster(vm);
    }
    for vm in lab.nodes() {
        let status = wait_online(vm, Duration::from_secs(180));
        assert!(status.contains("<current_dc present=\"true\""), "{status}");
    }
    eprintln!("cluster formed in {:?}", formed.elapsed());

    // libvirtd's first start on a node probes qemu's capabilities (qemu itself under TCG here)
    // and caches them; measured once, outside Pacemaker, so that the clone's first start is an
    // ordinary one.
    for vm in [alpha, beta] {
        let probe = Instant::now();
        let defaults = sh_within(
            vm,
            "grep -v '^#' /etc/default/libvirtd || true; systemctl start libvirtd && virsh -c qemu:///system domcapabilities >/dev/null \
             && systemctl stop libvirtd.service libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket",
            Duration::from_secs(600),
        );
        eprintln!(
            "{}: libvirtd's first start and qemu capability probe took {:?}; /etc/default/libvirtd: {}",
            vm.name(),
            probe.elapsed(),
            defaults.trim()
        );
    }

    // The CIB from the packaged generator, loaded with crmsh: the rest of the README's block.
    write(alpha, "/root/cluster.toml", DESCRIPTION);
    let loaded = Instant::now();
    let out = run_steps(alpha, "install-one-node", &on_one_node);
    eprintln!("{out}");
    // The package's clever-cib is this tree's: the same description gives the same text.
    assert_eq!(
        sh(alpha, "cat /root/out/crm.txt"),
        clever_cib::generate(DESCRIPTION).unwrap().crm,
        "the packaged clever-cib generates another configuration than this tree's"
    );
    wait_for(
        alpha,
        "crm_resource --locate -r ip_clever 2>&1 | grep -q 'running on'",
        "the whole stack started",
        Duration::from_secs(1200),
    );
    eprintln!(
        "stack started {:?} after the CIB was loaded; operations:\n{}\nthrottling:\n{}",
        loaded.elapsed(),
        sh(
            alpha,
            "crm_mon -1 --include=operations --show-detail --timing-details 2>&1 | sed -n '/Operations/,$p'"
        ),
        sh(
            alpha,
            "grep -i throttl /var/log/pacemaker/pacemaker.log | tail -n 8 || true"
        )
    );
    let active = located(alpha, "fs_clever");
    assert_eq!(active.len(), 1, "fs_clever on {active:?}");
    let (first, second) = if active[0] == "alpha" {
        (alpha, beta)
    } else {
        (beta, alpha)
    };
    for resource in ["vm_clever", "ip_clever"] {
        assert_eq!(located(alpha, resource), active, "{resource}");
    }
    assert_eq!(activation(first), ACTIVE);
    assert_eq!(activation(second), PASSIVE);
    // gwping reaches the gateway from both nodes (the rule keeps the stack off a node without).
    for vm in [alpha, beta] {
        wait_for(
            vm,
            "attrd_updater --query --name pingd --node \"$(hostname)\" | grep -q 'value=\"1000\"'",
            &format!("gateway {GATEWAY} scored"),
            Duration::from_secs(120),
        );
    }
    sh(first, &format!("grep -q data {MOUNT}/marker"));
    sh(
        first,
        "ip -o addr show dev eth0 | grep -q ' 10.99.0.10/' || { ip -o addr; crm_mon -1; exit 1; }",
    );
    // The guest booted once and counts.
    let booted = wait_counter(first, &Serial::default(), 1, "the guest's first boot");
    eprintln!(
        "the guest counts on {} ({:?} after the CIB was loaded): {:?}",
        first.name(),
        loaded.elapsed(),
        booted.last()
    );

    for vm in [first, second] {
        eprintln!(
            "{}: memory with the stack up (MiB): {}",
            vm.name(),
            sh(vm, "free -m | sed -n 2p").trim()
        );
    }

    // The admin's view, from either node, against what that node's own tools say.
    for vm in [first, second] {
        check_status(vm, first.name());
    }

    // 1. Controlled migration as the admin does it: `service clevervm migrate --wait` (the LSB
    // script, which Debian's `service` runs for a verb systemd has no use for) on the active
    // node (in the background there, so that the host samples both nodes meanwhile), then
    // `service clevervm unmigrate` (the stack stays, by stickiness). The guest hibernates on
    // the DRBD filesystem and resumes on the other node: its counter continues.
    let before = guest_serial(first);
    sh(
        first,
        "rm -f /root/migrate.out /root/migrate.rc; setsid sh -c 'service clevervm migrate --wait --wait-timeout 900 \
         >/root/migrate.out 2>&1; echo $? >/root/migrate.rc' </dev/null >/dev/null 2>&1 &",
    );
    watch_move(alpha, first, second, "controlled migration");
    wait_for(
        first,
        "test -s /root/migrate.rc",
        "service clevervm migrate --wait to return",
        Duration::from_secs(300),
    );
    let out = sh(first, "cat /root/migrate.out");
    let code = sh(first, "cat /root/migrate.rc");
    eprintln!(
        "service clevervm migrate --wait (exit {}):\n{out}",
        code.trim()
    );
    assert_eq!(code.trim(), "0", "{out}");
    assert!(out.contains("migration complete"), "{out}");
    let moved = guest_serial(second);
    let after = wait_counter(second, &moved, before.boots, "controlled migration");
    assert_resumed(&before, &after, "controlled migration");
    eprintln!("{}", sh(alpha, VM_OPERATIONS));
    let out = sh(second, "clevervm status");
    assert!(out.contains("left by clevervm migrate"), "{out}");
    // Debian's `service` runs the LSB script for a verb systemd has no use for.
    sh(second, "service clevervm unmigrate");
    let out = sh(first, "clevervm status");
    assert!(!out.contains("left by clevervm migrate"), "{out}");
    assert_eq!(located(alpha, "vm_clever"), [second.name()]);
    check_status(second, second.name());
    // Cleanup forgets the operation history, so Pacemaker probes every resource again: the
    // stack must come out of it where it was.
    sh(first, "clevervm cleanup");
    wait_for(
        alpha,
        &format!(
            "crm_resource --locate -r ip_clever 2>&1 | grep -q 'running on: {}'",
            second.name()
        ),
        "the stack found where it runs after clevervm cleanup",
        Duration::from_secs(300),
    );
    assert_eq!(activation(second), ACTIVE);
    assert_eq!(activation(first), PASSIVE);

    // What replication costs a hibernation: the same write on the Primary, connected (protocol
    // C: each write completes once the peer's disk has it too) and, below, with the link cut.
    let connected = write_seconds(second);

    // 2. Replication link cut, Corosync still up: the Primary (`second` now) freezes I/O, its
    // fence-peer handler forbids promoting the peer, I/O resumes. Asked to move, Pacemaker
    // must not promote the outdated peer; the resync after the link returns lifts the ban.
    let cut = Instant::now();
    lab.set_nic_link(REPLICATION_NIC, false).unwrap();
    wait_for(
        second,
        "grep -q 'cs:WFConnection' /proc/drbd && cibadmin --query --scope constraints | grep -q drbd-fence-by-handler",
        "fence-peer constraint after the replication link cut",
        Duration::from_secs(180),
    );
    eprintln!(
        "replication link cut: constraint placed after {:?}:\n{}\n{}",
        cut.elapsed(),
        sh(second, "cat /proc/drbd"),
        sh(
            second,
            "cibadmin --query --scope constraints | grep -A6 drbd-fence-by-handler"
        )
    );
    // The data goes on being written: I/O is not left frozen.
    sh(
        second,
        &format!("echo written-while-cut > {MOUNT}/after-cut && sync"),
    );
    let alone = write_seconds(second);
    let per_gib = |seconds: f64| seconds * 1024.0 / f64::from(PROBE_MIB);
    eprintln!(
        "replication cost: {PROBE_MIB} MiB written and fsync'd in {connected:.2} s connected \
         (protocol C) against {alone:.2} s with the link cut: {:.0} s against {:.0} s per GiB \
         under TCG",
        per_gib(connected),
        per_gib(alone)
    );
    sh_within(
        alpha,
        &format!(
            "crm_resource --move --promoted -r drbd_r0-clone -N {} && crm_resource --wait --timeout=240s",
            first.name()
        ),
        Duration::from_secs(300),
    );
    // The transition is over: had the ban been missing, the outdated node would be Primary now.
    assert_eq!(
        activation(first),
        PASSIVE,
        "the outdated peer was activated"
    );
    assert_eq!(activation(second), ACTIVE);
    assert!(fence_constraint(second));
    sh(alpha, "crm_resource --clear -r drbd_r0-clone");
    let restored = Instant::now();
    lab.set_nic_link(REPLICATION_NIC, true).unwrap();
    wait_for(
        second,
        "grep -q 'cs:Connected.*ds:UpToDate/UpToDate' /proc/drbd && ! cibadmin --query --scope constraints | grep -q drbd-fence-by-handler",
        "resync and the ban lifted",
        Duration::from_secs(240),
    );
    eprintln!(
        "replication link restored: resynced and ban lifted after {:?}",
        restored.elapsed()
    );
    assert_eq!(activation(second), ACTIVE);

    // 3. Gateway loss on the active node: gwping scores it 0, the location rule moves the stack
    // to the node that still reaches the gateway; the data written while the link was cut
    // came over with the resync.
    let before = guest_serial(second);
    second.set_nic_link(GATEWAY_NIC, false).unwrap();
    watch_move(alpha, second, first, "gateway loss");
    let moved = guest_serial(first);
    let after = wait_counter(first, &moved, before.boots, "gateway loss");
    assert_resumed(&before, &after, "gateway loss");
    // Only the Promoted role left: DRBD stays up there, replicating.
    let (_, state) = observe(second);
    assert!(
        state.starts_with("cs:Connected ro:Secondary/Primary"),
        "DRBD on {} after losing its gateway: {state}",
        second.name()
    );
    sh(
        first,
        &format!("grep -q written-while-cut {MOUNT}/after-cut"),
    );
    second.set_nic_link(GATEWAY_NIC, true).unwrap();
    // The gateway back: gwping scores the node again, and once the cluster has acted on it the
    // stack is still where it went (stickiness, no move back: no flapping).
    wait_for(
        second,
        "attrd_updater --query --name pingd --node \"$(hostname)\" | grep -q 'value=\"1000\"'",
        "the restored gateway scored",
        Duration::from_secs(120),
    );
    sh_within(
        alpha,
        "crm_resource --wait --timeout=240s",
        Duration::from_secs(300),
    );
    assert_eq!(located(alpha, "ip_clever"), [first.name()]);
    assert_eq!(activation(second), PASSIVE, "the stack moved back");

    // The guest's qemu killed on the active node (`first`): the vm agent's monitor finds the
    // domain crashed, and Pacemaker restarts it in place (one failure, under the migration
    // threshold): a cold boot, as no hibernation image was written; the rest of the stack stays.
    let boots = guest_serial(first).boots;
    let killed = Instant::now();
    sh(first, &format!("kill -KILL $(pgrep -f 'guest={DOMAIN},')"));
    let mut timeline: Vec<(Duration, Activation, Activation)> = Vec::new();
    loop {
        let (here, there) = (activation(first), activation(second));
        if timeline
            .last()
            .is_none_or(|(_, h, t)| (h, t) != (&here, &there))
        {
            timeline.push((killed.elapsed(), here, there));
        }
        assert!(
            here.primary && here.mounted && there == PASSIVE,
            "the stack left {} after its qemu was killed: {timeline:#?}",
            first.name()
        );
        if here.qemu && counted_since_boot(&sh(first, &format!("cat {GUEST_CONSOLE}")), boots + 1) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(600),
            "the guest was not restarted on {}: {timeline:#?}\n{}",
            first.name(),
            sh(first, DIAGNOSE_STACK)
        );
        std::thread::sleep(SAMPLE_PAUSE);
    }
    eprintln!(
        "qemu killed on {}: the guest booted again in place and counts after {:?}; timeline (elapsed, {}, {}):",
        first.name(),
        killed.elapsed(),
        first.name(),
        second.name()
    );
    for (at, here, there) in &timeline {
        eprintln!("  {at:>10.2?} {here:?} | {there:?}");
    }
    assert_eq!(located(alpha, "ip_clever"), [first.name()]);
    sh(first, "clevervm cleanup");

    // 4. Power cut of the active node (`first`): the survivor's fencer confirms the node is off
    // through the lab's fence device, then the survivor promotes DRBD and starts the stack.
    let survivor = second;
    wait_for(
        survivor,
        "attrd_updater --query --name pingd --node \"$(hostname)\" | grep -q 'value=\"1000\"'",
        "gateway reachable again",
        Duration::from_secs(120),
    );
    // The survivor can take over only with good data: DRBD connected, both sides UpToDate.
    wait_for(
        survivor,
        "grep -q 'cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate' /proc/drbd",
        "DRBD connected and UpToDate on both nodes before the power cut",
        Duration::from_secs(240),
    );
    // A writer on the Primary appends numbered records to the DRBD filesystem, each fsync'd
    // before its number goes out on the node's serial console, which the host keeps. Protocol C
    // completes a write only once the peer's disk has it, so every number the host saw must be
    // on the survivor after the cut.
    sh(
        first,
        &format!(
            "setsid sh -c 'clever-lab soak-writer --file {RECORDS} --from 1 | sed -u \"s/^/{ACK_PREFIX} /\" > /dev/ttyS0' </dev/null >/dev/null 2>&1 &"
        ),
    );
    let writing = Instant::now();
    while acknowledged(first) < 100 {
        assert!(
            writing.elapsed() < Duration::from_secs(120),
            "the writer acknowledged {} records in 2 min: {}",
            acknowledged(first),
            first.console_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let boots_before = guest_serial(first).boots;
    let fenced_before = lab.fence_events().len();
    let cut_at = Instant::now();
    first.power_off().unwrap();
    let mut timeline: Vec<(Duration, Activation, String)> = Vec::new();
    loop {
        let (now, state) = observe(survivor);
        if timeline
            .last()
            .is_none_or(|(_, last, last_state)| (last, last_state) != (&now, &state))
        {
            timeline.push((cut_at.elapsed(), now, state));
        }
        if now == ACTIVE && located(survivor, "ip_clever") == [survivor.name()] {
            break;
        }
        std::thread::sleep(SAMPLE_PAUSE);
        assert!(
            cut_at.elapsed() < Duration::from_secs(600),
            "no recovery after the power cut: {timeline:#?}\nfence events: {:#?}\n{}\n{}",
            lab.fence_events(),
            sh(survivor, DIAGNOSE_STACK),
            sh(survivor, DRBD_HISTORY)
        );
    }
    let fenced: Vec<_> = lab.fence_events()[fenced_before..]
        .iter()
        .filter(|event| {
            event.target == first.name()
                && matches!(event.action.as_str(), "off" | "reboot")
                && event.answer == "ok"
        })
        .cloned()
        .collect();
    assert!(
        fenced
            .iter()
            .any(|event| event.requester == survivor.name()),
        "the survivor recovered without fencing {}: {:#?}",
        first.name(),
        lab.fence_events()
    );
    eprintln!(
        "power cut of {}: recovered on {} in {:?}; fenced after {:?}; timeline (elapsed, survivor):",
        first.name(),
        survivor.name(),
        cut_at.elapsed(),
        fenced[0].at.duration_since(cut_at)
    );
    for (at, activation, state) in &timeline {
        eprintln!("  {at:>10.2?} {activation:?} {state}");
    }
    sh(
        survivor,
        &format!(
            "stonith_admin --history {} | grep -q successful && grep -q data {MOUNT}/marker && grep -q written-while-cut {MOUNT}/after-cut",
            first.name()
        ),
    );
    let acked = acknowledged(first);
    let records = sh(survivor, &format!("cat {RECORDS}"));
    let lost = clever_lab::soak::missing_records(&records, acked);
    eprintln!(
        "records: {acked} acknowledged by the Primary before its power cut, {lost} of them missing on the survivor"
    );
    assert_eq!(lost, 0, "acknowledged records lost in the power cut");
    // No hibernation image could be written: the guest booted anew on the survivor.
    let began = Instant::now();
    loop {
        let text = sh(survivor, &format!("cat {GUEST_CONSOLE}"));
        if counted_since_boot(&text, boots_before + 1) {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "the guest did not boot anew on {} after the power cut (boots before: {boots_before}):\n{}\n{}",
            survivor.name(),
            text.lines().rev().take(10).collect::<Vec<_>>().join("\n"),
            sh(survivor, DIAGNOSE_STACK)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!(
        "power cut: the guest cold-booted on {} and counts, {:?} after the cut",
        survivor.name(),
        cut_at.elapsed()
    );

    // An upgrade of our package in place while the stack runs (on the survivor, the only node
    // left): dpkg replaces the agents and clevervm by rename and the package has no maintainer
    // scripts, so nothing is restarted: no operation in Pacemaker's log, the same qemu, the
    // guest's counter going on.
    let upgrade_name = upgrade.file_name().unwrap().to_str().unwrap();
    // The recovery's transition may still be starting what follows the VM (the address): the
    // count is taken once the cluster is idle, so that only the upgrade can change it.
    sh_within(
        survivor,
        "crm_resource --wait --timeout=300s",
        Duration::from_secs(320),
    );
    let operations_logged = "grep -E 'Result of (start|stop|promote|demote) operation' /var/log/pacemaker/pacemaker.log";
    let operations = format!("{operations_logged} | wc -l");
    let last_operations = format!("{operations_logged} | tail -n 5");
    let guest_pid = format!("pgrep -f 'guest={DOMAIN},'");
    let (ops_before, pid_before) = (sh(survivor, &operations), sh(survivor, &guest_pid));
    let before = guest_serial(survivor);
    let out = sh_within(
        survivor,
        &format!("cd /root/upgrade && DEBIAN_FRONTEND=noninteractive apt install -y ./{upgrade_name} 2>&1"),
        Duration::from_secs(300),
    );
    assert!(out.contains("Setting up clever-cluster"), "{out}");
    let after = wait_counter(survivor, &before, before.boots, "the package upgrade");
    assert_resumed(&before, &after, "the package upgrade");
    assert_eq!(
        sh(survivor, &operations),
        ops_before,
        "an operation ran during the upgrade; the last ones:\n{}",
        sh(survivor, &last_operations)
    );
    assert_eq!(
        sh(survivor, &guest_pid),
        pid_before,
        "the guest's qemu changed"
    );
    let version = sh(survivor, "dpkg-query -W -f '${Version}' clever-cluster");
    assert!(version.ends_with("+lab1"), "{version}");
    sh(survivor, "clevervm status >/dev/null");
    eprintln!(
        "package upgraded in place to {version} on {}: nothing restarted",
        survivor.name()
    );

    // The pcs rendering, on a configuration made empty: the admin stops everything (the guest
    // hibernates), erases the configuration and runs the generator's `out/pcs.sh` as generated
    // (pcs builds on a copy of the live CIB and pushes it once). The stack comes back from what
    // pcs made, and the guest resumes from its image.
    let before = guest_serial(survivor);
    let stopped = Instant::now();
    sh_within(
        survivor,
        "crm_attribute --type crm_config --name stop-all-resources --update true \
         && crm_resource --wait --timeout=600s",
        Duration::from_secs(660),
    );
    let (state, drbd) = observe(survivor);
    assert_eq!(
        state, PASSIVE,
        "stop-all-resources left something active: {drbd}"
    );
    // Everything the configuration had but the nodes: constraints (DRBD's fence-peer ban on the
    // powered-off node among them; first, as the schema refuses references to resources that
    // are gone), resources (all stopped) and the cluster properties.
    sh(
        survivor,
        "cibadmin --replace --scope constraints --xml-text '<constraints/>' \
         && cibadmin --replace --scope resources --xml-text '<resources/>' \
         && cibadmin --replace --scope crm_config --xml-text '<crm_config/>' \
         && crm_resource --wait --timeout=120s",
    );
    write(survivor, "/root/cluster.toml", DESCRIPTION);
    let pcs = Instant::now();
    let out = sh_within(
        survivor,
        "cd /root && clever-cib generate cluster.toml -o out/ && sh out/pcs.sh </dev/null 2>&1",
        Duration::from_secs(900),
    );
    assert!(
        !out.contains("Deprecation"),
        "pcs deprecates what the script does:\n{out}"
    );
    eprintln!(
        "sh out/pcs.sh took {:?} ({} pcs commands):\n{out}",
        pcs.elapsed(),
        sh(survivor, "grep -c '^pcs ' /root/out/pcs.sh").trim()
    );
    wait_for(
        survivor,
        "crm_resource --locate -r ip_clever 2>&1 | grep -q 'running on'",
        "the stack started from the pcs rendering",
        Duration::from_secs(600),
    );
    assert_eq!(activation(survivor), ACTIVE);
    let after = wait_counter(survivor, &before, before.boots, "the reload with pcs");
    assert_resumed(&before, &after, "the reload with pcs");
    assert!(
        sh(survivor, "cibadmin --query --scope constraints").contains("ord_clever_drbd_then_ip"),
        "the pcs rendering's constraints are not in the CIB"
    );
    eprintln!(
        "configuration replaced by the pcs rendering: stack stopped, erased, reloaded and the guest \
         resumed in {:?}",
        stopped.elapsed()
    );
    eprintln!("whole test {:?}", started.elapsed());
}
