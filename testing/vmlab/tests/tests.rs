//! Our DRBD code against real DRBD: Debian's kernel (DRBD 8.4.11 in-tree) and drbd-utils in two
//! qemu (TCG) VM nodes, built from Debian packages at test time.
//!
//! The nodes boot once and walk the states a two-node DRBD reaches, in order; at each one the
//! DRBD state reader (crates/drbd, run from the host through [`GuestCommands`]), the drbdfs agent
//! (run inside the guest, as Pacemaker would) and `clevervm status`'s DRBD section are checked
//! against what DRBD itself says (`/proc/drbd`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use ocf_conformance::workspace_build::release_binaries;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clever_command::{CommandError, CommandLine, HostCommands, Output, RunCommand};
use clever_deadline::Deadline;
use clever_drbd::{
    mount_verdict, parse_proc_drbd, replication_health, ConnectionState, DiskState,
    DrbdStatusSource, HostDrbd, MinorOwner, MountVerdict, Promotion, ReplicationHealth,
    ReplicationState, Resource, Role,
};
use clever_pacemaker::Pacemaker;
use clever_vmlab::{GuestCommands, LabConfig, ScriptOutput, Vm, VmLab, VmLabError, PROVISION_DRBD};
use clevervm::collect::{collect, Sources};
use clevervm::model::StorageView;
use clevervm::problems::{problems, Problem};

const RES: &str = "r0";
const DEVICE: &str = "/dev/drbd0";
const MOUNT: &str = "/mnt/data";
/// Where the agent runs from in the guests, as in the installed layout.
const AGENT: &str = "/usr/lib/ocf/resource.d/clever/drbdfs";
/// The device-mapper device put on the scratch disk (`/dev/vdb`, 32 MiB, not DRBD), whose table
/// is switched to failing targets under a mounted filesystem, and its mount point.
const FAULTY: &str = "/dev/mapper/faulty";
const FAULTY_MOUNT: &str = "/mnt/faulty";
/// The scratch disk's size in 512-byte sectors (`LabConfig::default().scratch_mib`).
const SCRATCH_SECTORS: u64 = 32 * 2048;

/// Our agent, built now (release, as installed), so the guests run the current code.
fn release_dir() -> PathBuf {
    release_binaries(&["clever-agent-drbdfs"])
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
    drbdfs_with(vm, action, "")
}

/// One drbdfs action with more environment (`OCF_CHECK_LEVEL=20`, a shorter timeout).
fn drbdfs_with(vm: &Vm, action: &str, environment: &str) -> ScriptOutput {
    let script = format!(
        "OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=fs_data HA_LOGFACILITY=none \
         OCF_RESKEY_CRM_meta_on_node={node} OCF_RESKEY_CRM_meta_timeout=20000 \
         OCF_RESKEY_device={DEVICE} OCF_RESKEY_directory={MOUNT} OCF_RESKEY_fstype=ext4 \
         {environment} {AGENT} {action}",
        node = vm.name()
    );
    vm.run(&script, Duration::from_secs(60)).unwrap()
}

/// Asserts an action's exit code, showing what the agent said otherwise.
#[track_caller]
fn expect(output: &ScriptOutput, code: i32, what: &str) {
    assert_eq!(output.code, code, "{what}: {output:#?}");
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

/// Our reader's view of the resource, read from the host through the guest's drbdsetup
/// (`status --json` is refused by the 8.4 tools, so this is the events2 path), checked against
/// our `/proc/drbd` reader on the same state: both sources must tell the same story.
fn read(vm: &Vm) -> Resource {
    let mut attempts = 0;
    loop {
        let resource = HostDrbd::new(GuestCommands::new(vm))
            .resource(RES, &Deadline::after(Duration::from_secs(30)))
            .unwrap();
        let proc = parse_proc_drbd(&sh(vm, "cat /proc/drbd")).unwrap();
        let owners = BTreeMap::from([(
            0,
            MinorOwner {
                resource: RES.to_owned(),
                volume: 0,
            },
        )]);
        let from_proc = proc.resources(&owners).remove(0);
        let summary = |r: &Resource| {
            let c = connection(r);
            (
                r.role,
                r.devices[0].disk,
                c.state,
                c.peer_role,
                c.peer_devices.first().map(|p| (p.replication, p.peer_disk)),
            )
        };
        // DRBD may change state between the two reads (a resync ending): read again then.
        attempts += 1;
        if summary(&resource) == summary(&from_proc) || attempts == 3 {
            assert_eq!(
                summary(&resource),
                summary(&from_proc),
                "{}: events2 and /proc/drbd disagree",
                vm.name()
            );
            return resource;
        }
    }
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

/// `clevervm status` on `vm` with no Pacemaker there: drbdsetup runs in the guest, the Pacemaker
/// tools on the host against a CIB file that configures r0's promotable clone and drbdfs.
#[derive(Debug, Clone, Copy)]
struct DrbdInGuest<'a>(GuestCommands<'a>);

impl RunCommand for DrbdInGuest<'_> {
    fn run(&self, command: &CommandLine, deadline: &Deadline) -> Result<Output, CommandError> {
        if command.program() == "drbdsetup" {
            self.0.run(command, deadline)
        } else {
            HostCommands.run(command, deadline)
        }
    }
}

/// The nodes' cluster as `clever-cib` describes it: the CIB `clevervm status` reads here is the
/// generator's (its drbdfs resource names the device, directory and DRBD resource of the nodes).
const DESCRIPTION: &str = r#"
[cluster]
name = "clever-vmlab"
[[node]]
name = "alpha"
[[node]]
name = "beta"
[fencing]
mode = "disabled"
reason = "clevervm status reads this CIB from a file: no cluster runs it"
[gwping]
host_list = ["10.0.2.2"]
[[drbd]]
name = "r0"
device = "/dev/drbd0"
[[vm]]
name = "clever"
drbd = "r0"
config = "/mnt/data/clever.xml"
mount = { directory = "/mnt/data", fstype = "ext4" }
address = { ip = "10.99.0.10", cidr_netmask = 24 }
"#;

/// The generated CIB, written once for this test process.
fn generated_cib() -> PathBuf {
    static CIB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CIB.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clever-vmlab-generated-cib.xml");
        std::fs::write(&path, clever_cib::generate(DESCRIPTION).unwrap().cib_xml).unwrap();
        path
    })
    .clone()
}

/// The DRBD section of `clevervm status` on `vm`, its problems, and the rendered text.
fn clevervm_status(vm: &Vm) -> (StorageView, Vec<Problem>, String) {
    let cib = generated_cib();
    let runner = DrbdInGuest(GuestCommands::new(vm));
    let sources = Sources {
        runner,
        pacemaker: Pacemaker::on_file(runner, &cib),
        cib_on_disk: cib.clone(),
        // The mount is in the guest: the host has no mount view of it.
        proc_root: PathBuf::from("/nonexistent"),
    };
    let snapshot = collect(&sources, &Deadline::after(Duration::from_secs(60)));
    let found = problems(&snapshot);
    let text = clevervm::render::render(&snapshot, &found);
    assert_eq!(snapshot.storage.len(), 1, "{text}");
    (snapshot.storage[0].clone(), found, text)
}

/// The problems `clevervm status` lists about DRBD.
fn drbd_problems(found: &[Problem]) -> Vec<&Problem> {
    found.iter().filter(|p| p.what.contains("DRBD")).collect()
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
    // A script past its timeout is killed in the guest and reported; the channel goes on.
    let late = alpha.run("sleep 30", Duration::from_secs(1));
    assert!(
        matches!(late, Err(VmLabError::ScriptTimedOut { .. })),
        "{late:?}"
    );
    let exit = alpha.run("echo out; echo err >&2; exit 3", Duration::from_secs(30));
    assert_eq!(
        exit.unwrap(),
        ScriptOutput {
            code: 3,
            stdout: "out\n".into(),
            stderr: "err\n".into()
        }
    );
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

    // 3. Initial sync in progress. Paused first, so the state is there to be read however fast
    //    the sync would run: alpha is SyncSource (PausedSyncS), beta SyncTarget (PausedSyncT).
    sh(alpha, "drbdadm pause-sync r0 && drbdadm primary --force r0");
    wait_proc(alpha, &["cs:PausedSyncS", "ro:Primary/Secondary"]);
    wait_proc(beta, &["cs:PausedSyncT", "ds:Inconsistent/UpToDate"]);
    let r = read(beta);
    assert_eq!(
        connection(&r).peer_devices[0].replication,
        ReplicationState::PausedSyncT
    );
    let verdict = mount_verdict(&r, Promotion::Explicit);
    assert!(
        matches!(&verdict, MountVerdict::Wait(reason) if reason.contains("resync") && reason.contains("paused")),
        "{verdict:?}"
    );
    let start = drbdfs_with(beta, "start", "OCF_RESKEY_CRM_meta_timeout=4000");
    expect(&start, 1, "start on a SyncTarget waits, then gives up");
    assert!(
        exit_reason(&start).contains("resync"),
        "{}",
        exit_reason(&start)
    );
    // No discard: DRBD 8.4 replicates a discard of the whole device, which ends the sync at once.
    sh(alpha, &format!("mkfs.ext4 -q -E nodiscard {DEVICE}"));
    wait_proc(beta, &["cs:PausedSyncT"]);
    // The SyncSource is Primary with UpToDate data: it mounts, and replication is degraded.
    expect(&drbdfs(alpha, "start"), 0, "start on the SyncSource");
    let monitor = drbdfs(alpha, "monitor");
    expect(&monitor, 190, "monitor during the resync");
    assert!(
        exit_reason(&monitor).contains("resync to peer"),
        "{}",
        exit_reason(&monitor)
    );
    sh(alpha, "drbdadm resume-sync r0");
    eprintln!("sync in progress checked at {:?}", started.elapsed());

    // 4. Primary/Secondary, UpToDate on both: mounted, monitor 0 at every depth.
    wait_proc(
        alpha,
        &[
            "cs:Connected",
            "ro:Primary/Secondary",
            "ds:UpToDate/UpToDate",
        ],
    );
    wait_proc(
        beta,
        &[
            "cs:Connected",
            "ro:Secondary/Primary",
            "ds:UpToDate/UpToDate",
        ],
    );
    let r = read(alpha);
    assert!(
        matches!(replication_health(&r), ReplicationHealth::Healthy(_)),
        "{:?}",
        replication_health(&r)
    );
    for level in ["0", "10", "20"] {
        let monitor = drbdfs_with(alpha, "monitor", &format!("OCF_CHECK_LEVEL={level}"));
        expect(
            &monitor,
            0,
            &format!("monitor depth {level}, UpToDate/UpToDate"),
        );
    }
    // The same mount named by udev's link (made by the provisioning here), as admins write it.
    let by_res = drbdfs_with(alpha, "monitor", "OCF_RESKEY_device=/dev/drbd/by-res/r0/0");
    expect(&by_res, 0, "monitor with device=/dev/drbd/by-res/r0/0");
    let (storage, found, text) = clevervm_status(alpha);
    assert_eq!(storage.local_role.as_deref(), Some("Primary"), "{text}");
    assert_eq!(storage.local_disk.as_deref(), Some("UpToDate"), "{text}");
    assert_eq!(storage.peers[0].connection, "Connected", "{text}");
    assert_eq!(storage.peers[0].role, "Secondary", "{text}");
    assert_eq!(storage.peers[0].disk, "UpToDate", "{text}");
    assert!(!storage.degraded && !storage.split_brain, "{text}");
    assert!(drbd_problems(&found).is_empty(), "{text}");
    sh(
        alpha,
        &format!("echo written-on-alpha > {MOUNT}/proof && sync"),
    );
    assert!(!sh(alpha, &format!("cat {MOUNT}/.clever-drbdfs/alpha.status")).is_empty());

    // 5. Secondary while the peer is Primary: start refused with the reason, monitor says
    //    not running.
    let start = drbdfs(beta, "start");
    expect(&start, 1, "start on the Secondary");
    assert!(
        exit_reason(&start).contains("peer is Primary"),
        "{}",
        exit_reason(&start)
    );
    expect(&drbdfs(beta, "monitor"), 7, "monitor on the Secondary");
    eprintln!("primary/secondary checked at {:?}", started.elapsed());

    // 6. Switchover: stop and demote on alpha, promote and start on beta; the data came along.
    expect(&drbdfs(alpha, "stop"), 0, "stop on alpha");
    expect(&drbdfs(alpha, "monitor"), 7, "monitor after stop");
    sh(alpha, "drbdadm secondary r0");
    sh(beta, "drbdadm primary r0");
    expect(
        &drbdfs(beta, "start"),
        0,
        "start on beta after the switchover",
    );
    assert_eq!(
        sh(beta, &format!("cat {MOUNT}/proof")).trim(),
        "written-on-alpha"
    );
    expect(&drbdfs(beta, "monitor"), 0, "monitor on beta");
    expect(&drbdfs(alpha, "start"), 1, "start on the new Secondary");
    eprintln!("switchover checked at {:?}", started.elapsed());

    // 7. The replication link is cut while beta has it mounted: degraded (190), writes go on.
    lab.set_link(false).unwrap();
    wait_proc(
        beta,
        &[
            "cs:WFConnection",
            "ro:Primary/Unknown",
            "ds:UpToDate/DUnknown",
        ],
    );
    let monitor = drbdfs(beta, "monitor");
    expect(&monitor, 190, "monitor with the link cut");
    assert!(
        exit_reason(&monitor).contains("disconnected"),
        "{}",
        exit_reason(&monitor)
    );
    let (storage, found, text) = clevervm_status(beta);
    assert!(storage.degraded && !storage.split_brain, "{text}");
    assert_eq!(storage.peers[0].connection, "Connecting", "{text}");
    assert!(
        drbd_problems(&found)
            .iter()
            .any(|p| p.what.contains("disconnected")),
        "{text}"
    );
    sh(
        beta,
        &format!("echo written-while-cut > {MOUNT}/cut && sync"),
    );
    let monitor = drbdfs_with(beta, "monitor", "OCF_CHECK_LEVEL=20");
    expect(&monitor, 190, "depth 20 monitor with the link cut");
    eprintln!("link cut checked at {:?}", started.elapsed());

    // 8. The link comes back: DRBD reconnects and resyncs what changed, monitor is 0 again.
    lab.set_link(true).unwrap();
    wait_proc(
        beta,
        &[
            "cs:Connected",
            "ro:Primary/Secondary",
            "ds:UpToDate/UpToDate",
        ],
    );
    wait_proc(alpha, &["cs:Connected", "ds:UpToDate/UpToDate"]);
    expect(&drbdfs(beta, "monitor"), 0, "monitor after the resync");
    eprintln!("reconnect and resync checked at {:?}", started.elapsed());

    // 9. StandAlone: alpha disconnects by hand; the Primary sees its peer gone.
    sh(alpha, "drbdadm disconnect r0");
    wait_proc(alpha, &["cs:StandAlone", "ro:Secondary/Unknown"]);
    let r = read(alpha);
    assert_eq!(connection(&r).state, ConnectionState::StandAlone, "{r:?}");
    wait_proc(beta, &["cs:WFConnection"]);
    expect(
        &drbdfs(beta, "monitor"),
        190,
        "monitor on the Primary of a StandAlone peer",
    );

    // 10. Outdated: alpha's data is marked stale; DRBD and drbdfs both refuse it.
    sh(alpha, "drbdadm outdate r0");
    wait_proc(alpha, &["ds:Outdated/DUnknown"]);
    let promote = alpha
        .run("drbdadm primary r0", Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        promote.code, 17,
        "DRBD refuses to promote Outdated data: {promote:?}"
    );
    let start = drbdfs(alpha, "start");
    expect(&start, 1, "start on Outdated data");
    assert!(
        exit_reason(&start).contains("Outdated: refusing to mount stale data"),
        "{}",
        exit_reason(&start)
    );
    sh(alpha, "drbdadm connect r0");
    wait_proc(alpha, &["cs:Connected", "ds:UpToDate/UpToDate"]);
    wait_proc(beta, &["cs:Connected", "ds:UpToDate/UpToDate"]);
    eprintln!("standalone and outdated checked at {:?}", started.elapsed());

    // 11. Split brain: while cut, alpha is promoted and mounted too, both write; when the link
    //     comes back DRBD drops the connection on both sides and waits for a human.
    lab.set_link(false).unwrap();
    wait_proc(alpha, &["cs:WFConnection", "ro:Secondary/Unknown"]);
    wait_proc(beta, &["cs:WFConnection", "ro:Primary/Unknown"]);
    sh(alpha, "drbdadm primary r0");
    expect(
        &drbdfs(alpha, "start"),
        0,
        "start on the partitioned node, promoted by hand",
    );
    sh(alpha, &format!("echo alpha-side > {MOUNT}/split && sync"));
    sh(beta, &format!("echo beta-side > {MOUNT}/split && sync"));
    lab.set_link(true).unwrap();
    wait_proc(alpha, &["cs:StandAlone", "ro:Primary/Unknown"]);
    wait_proc(beta, &["cs:StandAlone", "ro:Primary/Unknown"]);
    for vm in [alpha, beta] {
        let monitor = drbdfs(vm, "monitor");
        expect(&monitor, 190, "monitor in split brain");
        let reason = exit_reason(&monitor);
        assert!(reason.contains("split-brain"), "{reason}");
        assert!(reason.contains("drbdadm secondary r0"), "{reason}");
        assert!(
            reason.contains("drbdadm connect --discard-my-data r0"),
            "{reason}"
        );
    }
    for vm in [alpha, beta] {
        let (storage, found, text) = clevervm_status(vm);
        assert!(storage.split_brain, "{text}");
        assert_eq!(storage.peers[0].connection, "StandAlone", "{text}");
        let problem = drbd_problems(&found);
        assert!(
            problem
                .iter()
                .any(|p| p.what.contains("split brain") && p.fix.contains("--discard-my-data")),
            "{text}"
        );
        assert!(text.contains("split brain"), "{text}");
    }
    eprintln!("split brain checked at {:?}", started.elapsed());

    // 12. Recovery as the exit reason says: alpha's changes are discarded, beta's kept. The
    //     demotion it names first is needed: DRBD refuses to discard a Primary's data.
    let refused = alpha
        .run(
            "drbdadm connect --discard-my-data r0",
            Duration::from_secs(30),
        )
        .unwrap();
    assert!(
        refused.code != 0 && refused.stderr.contains("not allowed when primary"),
        "{refused:?}"
    );
    expect(&drbdfs(alpha, "stop"), 0, "stop on the split-brain victim");
    sh(
        alpha,
        "drbdadm secondary r0 && drbdadm connect --discard-my-data r0",
    );
    sh(beta, "drbdadm connect r0");
    wait_proc(
        alpha,
        &[
            "cs:Connected",
            "ro:Secondary/Primary",
            "ds:UpToDate/UpToDate",
        ],
    );
    wait_proc(
        beta,
        &[
            "cs:Connected",
            "ro:Primary/Secondary",
            "ds:UpToDate/UpToDate",
        ],
    );
    expect(
        &drbdfs(beta, "monitor"),
        0,
        "monitor after the split-brain recovery",
    );
    assert_eq!(sh(beta, &format!("cat {MOUNT}/split")).trim(), "beta-side");
    eprintln!("split-brain recovery checked at {:?}", started.elapsed());

    // 13. Real I/O errors under drbdfs on a plain disk (no DRBD), through device-mapper.
    device_mapper_faults(alpha);
    eprintln!("device-mapper faults checked at {:?}", started.elapsed());

    // Teardown leaves nothing behind: no qemu, no run directory.
    let dir = lab.dir().to_owned();
    let pids: Vec<u32> = lab.nodes().iter().filter_map(Vm::pid).collect();
    assert_eq!(pids.len(), 2);
    drop(lab);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "qemu {pid} is left behind"
        );
    }
}

/// One drbdfs action on the device-mapper device, at a monitor depth.
fn drbdfs_faulty(vm: &Vm, action: &str, level: u32) -> ScriptOutput {
    drbdfs_with(
        vm,
        action,
        &format!(
            "OCF_RESKEY_device={FAULTY} OCF_RESKEY_directory={FAULTY_MOUNT} \
             OCF_CHECK_LEVEL={level}"
        ),
    )
}

/// Replaces the device's table (one target a line) under whoever uses it, as a disk starting to
/// fail would. The guests have no udev: libdevmapper makes the `/dev/mapper` nodes itself.
/// `--nolockfs`: a filesystem whose journal aborted on an earlier error cannot be frozen.
fn dm_table(vm: &Vm, table: &str) {
    sh(
        vm,
        &format!(
            "export DM_DISABLE_UDEV=1\ndmsetup suspend --nolockfs faulty || exit 1\n\
             dmsetup load faulty <<'TABLE_EOF' || exit 1\n{table}\nTABLE_EOF\n\
             dmsetup resume faulty && dmsetup table faulty"
        ),
    );
}

/// A monitor that must fail (1) on the I/O fault, with one exit-reason line from the check at
/// `depth` naming what failed (not the watchdog: the error comes back, nothing hangs).
#[track_caller]
fn expect_io_failure(output: &ScriptOutput, depth: u32, wanted: &[&str], what: &str) -> String {
    expect(output, 1, what);
    let reason = exit_reason(output);
    assert_eq!(reason.lines().count(), 1, "{what}: {reason}");
    assert!(
        reason.contains(&format!("depth {depth} check of")),
        "{what}: {reason}"
    );
    assert!(
        wanted.iter().any(|w| reason.contains(w)),
        "{what}: wanted one of {wanted:?} in {reason}"
    );
    assert!(!reason.contains("no answer within"), "{what}: {reason}");
    reason
}

/// drbdfs's depth 10 and 20 checks against a device that really fails: a dm-linear device on
/// the scratch disk carries ext4 and is mounted by drbdfs; its table is then switched to
/// dm-flakey dropping writes (acknowledged, never stored), the `error` target past the first
/// block, and the `error` target everywhere. stop must still unmount.
fn device_mapper_faults(vm: &Vm) {
    assert_eq!(
        sh(vm, "blockdev --getsz /dev/vdb").trim(),
        SCRATCH_SECTORS.to_string(),
        "/dev/vdb is the scratch disk"
    );
    let sectors = SCRATCH_SECTORS;
    sh(
        vm,
        &format!(
            "export DM_DISABLE_UDEV=1; dmsetup create faulty --table '0 {sectors} linear /dev/vdb 0' \
             && test -b {FAULTY} && mkfs.ext4 -q -E nodiscard {FAULTY}"
        ),
    );
    expect(&drbdfs_faulty(vm, "start", 0), 0, "start on dm-linear");
    for level in [0, 10, 20] {
        expect(
            &drbdfs_faulty(vm, "monitor", level),
            0,
            &format!("monitor depth {level} on dm-linear"),
        );
    }

    // Writes acknowledged and dropped: the page cache holds them, the disk does not. Depth 10
    // only reads; depth 20 reads its status file back with O_DIRECT and sees the loss.
    dm_table(
        vm,
        &format!("0 {sectors} flakey /dev/vdb 0 0 1 1 drop_writes"),
    );
    expect(
        &drbdfs_faulty(vm, "monitor", 10),
        0,
        "depth 10 with dropped writes",
    );
    let reason = expect_io_failure(
        &drbdfs_faulty(vm, "monitor", 20),
        20,
        &["does not keep"],
        "depth 20 with dropped writes",
    );
    eprintln!("dropped writes: {reason}");

    // Everything past the first 4 KiB fails (dm-flakey's error_writes cannot show this: on
    // Debian 12's kernel it fails reads too). Depth 10 reads only the first block, so it passes;
    // depth 20's write and fsync reach the failing part and get the error (or ext4 has aborted
    // its journal on it already and made the filesystem read-only).
    dm_table(
        vm,
        &format!("0 8 linear /dev/vdb 0\n8 {} error", sectors - 8),
    );
    expect(
        &drbdfs_faulty(vm, "monitor", 10),
        0,
        "depth 10 with the first block readable, the rest failing",
    );
    let reason = expect_io_failure(
        &drbdfs_faulty(vm, "monitor", 20),
        20,
        &["Input/output error", "Read-only file system"],
        "depth 20 with the first block readable, the rest failing",
    );
    eprintln!("failing past the first block: {reason}");

    // Everything fails: depth 0 looks at the mount table only and still says running; depth 10
    // (and so 20, which runs it first) reads the device with O_DIRECT and gets EIO.
    dm_table(vm, &format!("0 {sectors} error"));
    expect(
        &drbdfs_faulty(vm, "monitor", 0),
        0,
        "depth 0 on the error target",
    );
    for level in [10, 20] {
        let reason = expect_io_failure(
            &drbdfs_faulty(vm, "monitor", level),
            10,
            &["Input/output error"],
            &format!("depth {level} on the error target"),
        );
        eprintln!("error target, depth {level}: {reason}");
    }

    // stop unmounts a filesystem whose device fails every I/O.
    let stop = drbdfs_faulty(vm, "stop", 0);
    expect(&stop, 0, "stop on the error target");
    expect(
        &drbdfs_faulty(vm, "monitor", 0),
        7,
        "monitor after stop on the error target",
    );
    assert!(!sh(vm, "cat /proc/mounts").contains(FAULTY_MOUNT));
    sh(vm, "export DM_DISABLE_UDEV=1; dmsetup remove faulty");
}
