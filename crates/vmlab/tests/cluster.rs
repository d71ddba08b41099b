//! The cluster stack on VM nodes: two qemu (TCG) guests booting a Debian 12 root filesystem
//! (debootstrap, cached) with Corosync 3 and Pacemaker 2.1 started without systemd, forming a
//! cluster over the private link.
//!
//! `make test-vmcluster`; not part of `make test` (the first run builds the root image, a
//! debootstrap of a few minutes).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::{Duration, Instant};

use clever_vmlab::cluster::{corosync_conf, hosts, ClusterConfig, ClusterLab};
use clever_vmlab::{Vm, NODES};

/// Runs a script that must succeed.
#[track_caller]
fn sh(vm: &Vm, script: &str) -> String {
    let output = vm.run(script, Duration::from_secs(120)).unwrap();
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

/// Configures and starts Corosync, then pacemakerd, on one node (no systemd: both in the
/// background, in their own sessions so the control loop's timeout cannot reach them).
fn start_cluster(vm: &Vm) {
    write(vm, "/etc/corosync/corosync.conf", &corosync_conf());
    write(vm, "/etc/hosts", &hosts());
    write(vm, "/var/lib/pacemaker/cib/cib.xml", SEED_CIB);
    sh(
        vm,
        "chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker \
         && chmod 0600 /var/lib/pacemaker/cib/cib.xml \
         && rm -f /var/lib/pacemaker/cib/cib.xml.sig \
         && setsid -f corosync -f >/var/log/corosync/stdout 2>&1 </dev/null",
    );
    // pacemakerd needs corosync's IPC up.
    sh(
        vm,
        "for i in $(seq 120); do corosync-cmapctl -g totem.cluster_name >/dev/null 2>&1 && exit 0; \
         sleep 0.5; done; cat /var/log/corosync/corosync.log /var/log/corosync/stdout; exit 1",
    );
    sh(
        vm,
        "setsid -f pacemakerd >/var/log/pacemaker/stdout 2>&1 </dev/null",
    );
}

/// What a failed wait prints from the guest.
const DIAGNOSE: &str = "ps -eo pid,rss,stat,args; free -m; \
    tail -n 30 /var/log/corosync/corosync.log /var/log/corosync/stdout; \
    tail -n 60 /var/log/pacemaker/stdout /var/log/pacemaker/pacemaker.log";

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

#[test]
fn cluster_forms_on_vm_nodes() {
    let started = Instant::now();
    let lab = ClusterLab::boot(&ClusterConfig::default()).unwrap();
    eprintln!(
        "image ready and both nodes booted in {:?}",
        started.elapsed()
    );
    let formed = Instant::now();
    for vm in lab.nodes() {
        start_cluster(vm);
    }
    for vm in lab.nodes() {
        let status = wait_online(vm, Duration::from_secs(180));
        assert!(status.contains("<current_dc present=\"true\""), "{status}");
    }
    eprintln!("cluster formed in {:?}", formed.elapsed());
    for vm in lab.nodes() {
        eprintln!(
            "{} memory:\n{}",
            vm.name(),
            sh(vm, "free -m; ps -eo rss,comm --sort=-rss | head -12")
        );
    }
}
