//! drbdfs against real filesystems on loop devices, real processes holding them, and DRBD states
//! recorded from real clusters (the kernel module is not available here).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod faults;
mod hostile;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use clever_agent_drbdfs::{
    monitor, start, stop, Config, DrbdfsError, DrbdfsHost, HostSyscalls, DECLARATION, STATUS_DIR,
};
use clever_command::HostCommands;
use clever_deadline::Deadline;
use clever_drbd::{
    parse_status_json, parse_status_text, DrbdStatusError, DrbdStatusSource, ProcDrbd, Resource,
};
use clever_ocf::{Action, Context, Parameters, Status};

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is missing ({e}): make setup installs it"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A filesystem on a loop device and a mount point for it, all removed on drop.
struct LoopFs {
    base: PathBuf,
    device: PathBuf,
    directory: PathBuf,
    fstype: &'static str,
}

impl LoopFs {
    fn new(label: &str, fstype: &'static str) -> Self {
        let base =
            std::env::temp_dir().join(format!("clever-drbdfs-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let image = base.join("disk.img");
        // xfs refuses filesystems under 300 MiB; the file is sparse either way.
        let size = if fstype == "xfs" { 320 } else { 64 } * 1024 * 1024;
        std::fs::File::create(&image)
            .unwrap()
            .set_len(size)
            .unwrap();
        let device = PathBuf::from(run(
            "losetup",
            &["--find", "--show", image.to_str().unwrap()],
        ));
        match fstype {
            "xfs" => run("mkfs.xfs", &["-q", "-f", device.to_str().unwrap()]),
            _ => run("mkfs.ext4", &["-q", "-F", device.to_str().unwrap()]),
        };
        Self {
            directory: base.join("mnt"),
            base,
            device,
            fstype,
        }
    }

    fn pairs(&self) -> Vec<(String, String)> {
        vec![
            ("device".into(), self.device.display().to_string()),
            ("directory".into(), self.directory.display().to_string()),
            ("fstype".into(), self.fstype.into()),
        ]
    }

    fn config(&self, extra: &[(&str, &str)]) -> Config {
        let mut pairs = self.pairs();
        pairs.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let parameters = Parameters::load(DECLARATION.parameters, |key| {
            pairs
                .iter()
                .find(|(k, _)| format!("OCF_RESKEY_{k}") == key)
                .map(|(_, v)| OsString::from(v))
        })
        .unwrap();
        Config::from_parameters(&parameters).unwrap()
    }

    fn mounted(&self) -> bool {
        mounted(&self.directory)
    }
}

fn mounted(directory: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    clever_mounts::parse_mountinfo(&text)
        .unwrap()
        .iter()
        .any(|m| m.mount_point == directory)
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        for _ in 0..5 {
            if !mounted(&self.directory) {
                break;
            }
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.directory)
                .status();
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// A recorded DRBD state standing in for `drbdsetup`.
struct Recorded(Resource);

impl DrbdStatusSource for Recorded {
    fn resource(&self, _name: &str, _deadline: &Deadline) -> Result<Resource, DrbdStatusError> {
        Ok(self.0.clone())
    }

    fn proc_drbd(&self) -> Result<ProcDrbd, DrbdStatusError> {
        Err(DrbdStatusError::NotLoaded {
            path: PathBuf::from("/proc/drbd"),
        })
    }
}

fn fixture(name: &str) -> Resource {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/drbd/tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let resources = if name.ends_with(".json") {
        parse_status_json(&text).unwrap()
    } else {
        parse_status_text(&text).unwrap()
    };
    resources.into_iter().next().unwrap()
}

fn host<D: DrbdStatusSource>(drbd: D) -> DrbdfsHost<HostCommands, D> {
    DrbdfsHost {
        commands: HostCommands,
        drbd,
        syscalls: HostSyscalls {
            proc_root: PathBuf::from("/proc"),
        },
        root: PathBuf::from("/"),
        proc_root: PathBuf::from("/proc"),
    }
}

fn plain() -> DrbdfsHost<HostCommands, Recorded> {
    // A plain device never consults DRBD; a recorded state that refuses everything proves it.
    host(Recorded(fixture(
        "drbd9-status-text-outdated-peer-connecting.txt",
    )))
}

fn deadline(secs: u64) -> Deadline {
    Deadline::after(Duration::from_secs(secs))
}

fn context(check_level: u32) -> Context {
    let mut context = Context::for_test(Action::Monitor, deadline(20));
    context.check_level = check_level;
    context
}

#[test]
fn declaration_is_sound() {
    assert_eq!(DECLARATION.problems(), Vec::<String>::new());
}

#[test]
fn ext4_lifecycle_at_every_depth() {
    let fs = LoopFs::new("ext4", "ext4");
    let config = fs.config(&[]);
    let host = plain();
    assert_eq!(
        monitor(&config, &host, &context(0)).unwrap(),
        Status::NotRunning
    );
    for _ in 0..2 {
        assert_eq!(
            start(&config, &host, &deadline(30)).unwrap(),
            Status::Success
        );
        assert!(fs.mounted());
    }
    for depth in [0, 10, 20] {
        assert_eq!(
            monitor(&config, &host, &context(depth)).unwrap(),
            Status::Success,
            "depth {depth}"
        );
    }
    let status_dir = fs.directory.join(STATUS_DIR);
    let metadata = std::fs::symlink_metadata(&status_dir).unwrap();
    assert_eq!(metadata.mode() & 0o777, 0o700);
    // A DirEntry keeps its directory open, which would keep the mount busy: take what we need.
    let file_mode = {
        let entry = std::fs::read_dir(&status_dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        entry.metadata().unwrap().mode()
    };
    assert_eq!(file_mode & 0o777, 0o600);
    for _ in 0..2 {
        assert_eq!(
            stop(&config, &host, &deadline(30)).unwrap(),
            Status::Success
        );
        assert!(!fs.mounted());
    }
    assert_eq!(
        monitor(&config, &host, &context(0)).unwrap(),
        Status::NotRunning
    );
}

#[test]
fn xfs_mounts_with_options_and_unmounts() {
    let fs = LoopFs::new("xfs", "xfs");
    let config = fs.config(&[("options", "noatime,nodev")]);
    let host = plain();
    start(&config, &host, &deadline(30)).unwrap();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let entry = clever_mounts::parse_mountinfo(&text)
        .unwrap()
        .into_iter()
        .find(|m| m.mount_point == fs.directory)
        .unwrap();
    assert_eq!(entry.fs_type, "xfs");
    assert!(entry.has_option("noatime") && entry.has_option("nodev"));
    assert_eq!(
        monitor(&config, &host, &context(20)).unwrap(),
        Status::Success
    );
    stop(&config, &host, &deadline(30)).unwrap();
    assert!(!fs.mounted());
}

#[test]
fn refuses_to_mount_over_another_mount() {
    let fs = LoopFs::new("occupied", "ext4");
    std::fs::create_dir_all(&fs.directory).unwrap();
    run(
        "mount",
        &["-t", "tmpfs", "other", fs.directory.to_str().unwrap()],
    );
    let config = fs.config(&[]);
    let err = start(&config, &plain(), &deadline(30)).unwrap_err();
    assert!(
        matches!(err, DrbdfsError::DirectoryOccupied { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("already has other (tmpfs) mounted"),
        "{err}"
    );
    // Someone else's mount is not ours: monitor says stopped, stop leaves it alone.
    assert_eq!(
        monitor(&config, &plain(), &context(0)).unwrap(),
        Status::NotRunning
    );
    assert_eq!(
        stop(&config, &plain(), &deadline(30)).unwrap(),
        Status::Success
    );
    assert!(fs.mounted(), "the other mount must survive");
}

fn stubborn_holder(directory: &Path) -> Child {
    Command::new("/bin/sh")
        .args(["-c", "trap '' TERM; while :; do sleep 1; done"])
        .current_dir(directory)
        .spawn()
        .unwrap()
}

fn is_gone(child: &mut Child) -> bool {
    Deadline::after(Duration::from_secs(5))
        .poll("holder exit", Duration::from_millis(10), || {
            child.try_wait().unwrap()
        })
        .is_ok()
}

#[test]
fn stop_ends_a_holder_that_ignores_term() {
    let fs = LoopFs::new("busy", "ext4");
    let config = fs.config(&[]);
    start(&config, &plain(), &deadline(30)).unwrap();
    let mut holder = stubborn_holder(&fs.directory);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        stop(
            &config,
            &plain(),
            &Deadline::from_timeout(Duration::from_secs(20))
        )
        .unwrap(),
        Status::Success
    );
    assert!(!fs.mounted());
    assert!(is_gone(&mut holder), "the holder was not ended");
}

#[test]
fn stop_ends_a_holder_that_only_maps_a_file() {
    let fs = LoopFs::new("mapped", "ext4");
    let config = fs.config(&[]);
    start(&config, &plain(), &deadline(30)).unwrap();
    // Run a copy of sleep through the dynamic loader: its file is then only mapped, neither an
    // open descriptor, nor the executable, nor the working directory.
    let copy = fs.directory.join("sleep");
    ocf_conformance::executable::copy_executable(Path::new("/bin/sleep"), &copy).unwrap();
    let mut holder = Command::new("/lib64/ld-linux-x86-64.so.2")
        .arg(&copy)
        .arg("600")
        .current_dir("/")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let holders =
        clever_mounts::find_holders(Path::new("/proc"), &fs.directory, std::process::id());
    assert!(
        holders
            .iter()
            .any(|h| h.how == clever_mounts::HoldKind::MemoryMap),
        "{holders:?}"
    );
    assert_eq!(
        stop(&config, &plain(), &deadline(20)).unwrap(),
        Status::Success
    );
    assert!(!fs.mounted());
    assert!(is_gone(&mut holder));
}

#[test]
fn stop_that_may_not_kill_fails_within_its_deadline_and_names_the_holder() {
    let fs = LoopFs::new("refuse", "ext4");
    let config = fs.config(&[("force_unmount", "no")]);
    start(&config, &plain(), &deadline(30)).unwrap();
    let mut holder = stubborn_holder(&fs.directory);
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let err = stop(&config, &plain(), &deadline(3)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("still busy: sh (pid"), "{err}");
    assert!(fs.mounted());
    assert!(
        holder.try_wait().unwrap().is_none(),
        "force_unmount=no must not signal"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn depth_20_never_follows_a_planted_symlink() {
    let fs = LoopFs::new("symlink", "ext4");
    let config = fs.config(&[]);
    start(&config, &plain(), &deadline(30)).unwrap();
    let target = fs.base.join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&target, fs.directory.join(STATUS_DIR)).unwrap();
    let err = monitor(&config, &plain(), &context(20)).unwrap_err();
    assert!(
        err.to_string().contains("not a directory (symlink?)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "nothing may be written through it"
    );
    stop(&config, &plain(), &deadline(30)).unwrap();
}

#[test]
fn drbd_primary_uptodate_mounts_and_monitor_follows_replication() {
    let fs = LoopFs::new("drbd-primary", "ext4");
    let config = fs.config(&[("drbd_resource", "beijing")]);
    let primary = host(Recorded(fixture(
        "drbd9-status-json-primary-connected-2node.json",
    )));
    assert_eq!(
        start(&config, &primary, &deadline(30)).unwrap(),
        Status::Success
    );
    assert_eq!(
        monitor(&config, &primary, &context(0)).unwrap(),
        Status::Success
    );

    let disconnected = host(Recorded(fixture(
        "drbd9-status-text-diskless-primary-peer-unconnected.txt",
    )));
    assert_eq!(
        monitor(&config, &disconnected, &context(0)).unwrap(),
        Status::Degraded(
            "DRBD one-vm-8760-disk-0 local disk Diskless; peer m13c18 disconnected (Unconnected): \
             data not replicated"
                .to_owned()
        )
    );
    let resyncing = host(Recorded(fixture(
        "drbd9-status-text-primary-syncsource-done.txt",
    )));
    let status = monitor(&config, &resyncing, &context(0)).unwrap();
    assert_eq!(
        status,
        Status::Degraded("DRBD single resync to peer opensuse-node2 96.47% done".to_owned())
    );

    let split = host(Recorded(fixture(
        "drbd9-status-text-splitbrain-victim-outdated-standalone.txt",
    )));
    let err = monitor(&config, &split, &context(0)).unwrap_err();
    assert!(matches!(err, DrbdfsError::LostPrimary(_)), "{err}");
    assert!(err.to_string().contains("no longer Primary"), "{err}");
    stop(&config, &primary, &deadline(30)).unwrap();
}

#[test]
fn drbd_outdated_is_refused_with_the_state_named() {
    let fs = LoopFs::new("drbd-outdated", "ext4");
    let config = fs.config(&[("drbd_resource", "r0")]);
    let outdated = host(Recorded(fixture(
        "drbd9-status-text-outdated-peer-connecting.txt",
    )));
    let err = start(&config, &outdated, &deadline(30)).unwrap_err();
    assert!(matches!(err, DrbdfsError::DrbdRefused(_)), "{err}");
    assert!(err.to_string().contains("Outdated"), "{err}");
    assert!(!fs.mounted());
}

/// A state that makes start wait, then a drbdsetup the deadline killed (a slow node).
struct WaitThenTimeout {
    calls: std::cell::Cell<u32>,
    waiting: Resource,
}

impl DrbdStatusSource for WaitThenTimeout {
    fn resource(&self, _name: &str, deadline: &Deadline) -> Result<Resource, DrbdStatusError> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() == 1 {
            return Ok(self.waiting.clone());
        }
        Err(DrbdStatusError::Command(
            clever_command::CommandError::TimedOut {
                command: "drbdsetup events2 --now r0".into(),
                budget: deadline.remaining(),
            },
        ))
    }

    fn proc_drbd(&self) -> Result<ProcDrbd, DrbdStatusError> {
        Recorded(self.waiting.clone()).proc_drbd()
    }
}

/// Seen on real DRBD in a loaded VM: the last poll's drbdsetup outlived the start deadline,
/// and the exit reason named the killed tool instead of the state start was waiting for.
#[test]
fn drbd_a_wait_cut_short_by_a_slow_drbdsetup_names_the_state_waited_for() {
    let fs = LoopFs::new("drbd-slow-wait", "ext4");
    let config = fs.config(&[("drbd_resource", "shanghai")]);
    let slow = host(WaitThenTimeout {
        calls: std::cell::Cell::new(0),
        waiting: fixture("drbd9-status-json-secondary-connected-2node.json"),
    });
    let err = start(&config, &slow, &deadline(5)).unwrap_err();
    assert!(matches!(err, DrbdfsError::DrbdNotReady { .. }), "{err}");
    assert!(err.to_string().contains("Secondary"), "{err}");
    assert!(!fs.mounted());
}

#[test]
fn drbd_secondary_waits_for_promotion_then_gives_up_before_the_deadline() {
    let fs = LoopFs::new("drbd-secondary", "ext4");
    let config = fs.config(&[("drbd_resource", "shanghai")]);
    let secondary = host(Recorded(fixture(
        "drbd9-status-json-secondary-connected-2node.json",
    )));
    let started = Instant::now();
    let err = start(&config, &secondary, &deadline(1)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, DrbdfsError::DrbdNotReady { .. }), "{err}");
    assert!(!fs.mounted());

    // With DRBD 9 auto-promote the same state may mount.
    let auto = fs.config(&[("drbd_resource", "shanghai"), ("drbd_promotion", "auto")]);
    assert_eq!(
        start(&auto, &secondary, &deadline(30)).unwrap(),
        Status::Success
    );
    stop(&auto, &secondary, &deadline(30)).unwrap();
}

#[test]
fn drbd_secondary_with_a_primary_peer_is_refused() {
    let fs = LoopFs::new("drbd-peer-primary", "ext4");
    let config = fs.config(&[("drbd_resource", "r0"), ("drbd_promotion", "auto")]);
    let peer_primary = host(Recorded(fixture(
        "drbd9-status-text-secondary-3node-peer-primary.txt",
    )));
    let err = start(&config, &peer_primary, &deadline(30)).unwrap_err();
    assert!(err.to_string().contains("Primary"), "{err}");
    assert!(!fs.mounted());
}

/// Programs that cannot be started, for a reason given as an errno.
struct CannotStart(i32);

impl clever_command::RunCommand for CannotStart {
    fn run(
        &self,
        command: &clever_command::CommandLine,
        _: &Deadline,
    ) -> Result<clever_command::Output, clever_command::CommandError> {
        Err(clever_command::CommandError::Spawn {
            command: command.to_string(),
            source: std::io::Error::from_raw_os_error(self.0),
        })
    }
}

/// A fork that fails for want of resources (EAGAIN) once made drbdfs answer "not installed",
/// on which Pacemaker bans the resource from the node. Only a missing program (or one that may
/// not be executed) is that; any other failure to start one is an ordinary error.
#[test]
fn a_program_that_cannot_start_is_not_installed_only_when_it_is_missing() {
    use clever_ocf::HasExitCode;
    let base = std::env::temp_dir().join(format!("clever-drbdfs-{}-spawn", std::process::id()));
    let pairs = |fsck: &str| {
        [
            ("device", "/dev/clever-drbdfs-none".to_owned()),
            ("directory", base.join("mnt").display().to_string()),
            ("fstype", "ext4".to_owned()),
            ("fsck", fsck.to_owned()),
        ]
    };
    for fsck in ["no", "force"] {
        let pairs = pairs(fsck);
        let parameters = Parameters::load(DECLARATION.parameters, |key| {
            pairs
                .iter()
                .find(|(k, _)| format!("OCF_RESKEY_{k}") == key)
                .map(|(_, v)| OsString::from(v))
        })
        .unwrap();
        let config = Config::from_parameters(&parameters).unwrap();
        for (errno, code) in [
            (nix::libc::EAGAIN, 1),
            (nix::libc::ENOMEM, 1),
            (nix::libc::ENOENT, 5),
            (nix::libc::EACCES, 5),
        ] {
            let host = DrbdfsHost {
                commands: CannotStart(errno),
                drbd: Recorded(fixture("drbd9-status-text-outdated-peer-connecting.txt")),
                syscalls: HostSyscalls {
                    proc_root: PathBuf::from("/proc"),
                },
                root: PathBuf::from("/"),
                proc_root: PathBuf::from("/proc"),
            };
            let err = start(&config, &host, &deadline(10)).unwrap_err();
            let which = match fsck {
                "no" => matches!(err, DrbdfsError::Mount(_)),
                _ => matches!(err, DrbdfsError::Fsck(_)),
            };
            assert!(which, "fsck={fsck}: {err}");
            assert_eq!(err.exit_code().code(), code, "errno {errno}: {err}");
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn conformance_harness_and_ocf_tester_pass_on_a_loop_device() {
    let fs = LoopFs::new("conformance", "ext4");
    // A drbdsetup that never answers stands for a DRBD stuck in a state change.
    let tools = fs.base.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let hanging = tools.join("drbdsetup");
    ocf_conformance::executable::write_executable(&hanging, "#!/bin/sh\nexec sleep 3600\n")
        .unwrap();
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", tools.display());
    let agent = ocf_conformance::AgentUnderTest {
        path: PathBuf::from(env!("CARGO_BIN_EXE_drbdfs")),
        instance: "fs_conformance".to_owned(),
        parameters: fs.pairs().into_iter().collect(),
        hanging: BTreeMap::from([("drbd_resource".to_owned(), "r0".to_owned())]),
        environment: BTreeMap::from([("PATH".to_owned(), path)]),
        run_ocf_tester: true,
    };
    let report = ocf_conformance::check_agent(&agent).unwrap();
    assert!(report.passed(), "{report}");
    assert!(!fs.mounted());
}

#[test]
fn fsck_force_refuses_a_filesystem_it_cannot_repair() {
    let fs = LoopFs::new("fsck", "ext4");
    // Zero the primary superblock and every backup: nothing left for e2fsck to repair from.
    let device = std::fs::OpenOptions::new()
        .write(true)
        .open(&fs.device)
        .unwrap();
    let zeros = vec![0_u8; 64 * 1024 * 1024];
    std::os::unix::fs::FileExt::write_all_at(&device, &zeros, 0).unwrap();
    device.sync_all().unwrap();
    drop(device);
    let config = fs.config(&[("fsck", "force")]);
    let err = start(&config, &plain(), &deadline(30)).unwrap_err();
    assert!(matches!(err, DrbdfsError::FsckFailed { .. }), "{err}");
    assert!(!fs.mounted());
}

#[test]
fn fsck_force_passes_a_clean_filesystem() {
    let fs = LoopFs::new("fsck-clean", "ext4");
    let config = fs.config(&[("fsck", "force")]);
    assert_eq!(
        start(&config, &plain(), &deadline(30)).unwrap(),
        Status::Success
    );
    stop(&config, &plain(), &deadline(30)).unwrap();
}

fn agent(action: &str, vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_drbdfs"))
        .arg(action)
        .env_clear()
        .env("HA_LOGFACILITY", "none")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_node_without_the_device_is_not_installed_but_probes_say_stopped() {
    let vars = [
        ("OCF_RESKEY_device", "/dev/drbd/by-res/absent/0"),
        ("OCF_RESKEY_directory", "/srv/clever-absent"),
        ("OCF_RESKEY_fstype", "ext4"),
    ];
    let (code, stderr) = agent("start", &vars);
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains("ocf-exit-reason:device /dev/drbd/by-res/absent/0 does not exist"),
        "{stderr}"
    );
    let mut probe = vars.to_vec();
    probe.push(("OCF_RESKEY_CRM_meta_interval", "0"));
    assert_eq!(agent("monitor", &probe).0, Some(7));
    assert_eq!(agent("stop", &vars).0, Some(0));
}

/// `HA_RSCTMP` set but empty (as a hand-made environment has it) once made the lock path
/// relative: start succeeded and left `drbdfs-….lock` in whatever directory it was run from,
/// where a run from anywhere else would never see it. The lock belongs in the cluster's run
/// directory.
#[test]
fn an_empty_ha_rsctmp_locks_in_the_run_directory_not_the_working_one() {
    let fs = LoopFs::new("rsctmp-empty", "ext4");
    let cwd = fs.base.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    for action in ["start", "stop"] {
        let output = Command::new(env!("CARGO_BIN_EXE_drbdfs"))
            .arg(action)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HA_LOGFACILITY", "none")
            .env("HA_RSCTMP", "")
            .env("OCF_RESKEY_device", &fs.device)
            .env("OCF_RESKEY_directory", &fs.directory)
            .env("OCF_RESKEY_fstype", "ext4")
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{action}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(!fs.mounted());
    let left: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in the working directory: {left:?}");
    // The mount point's path names this test alone: its lock is this run's.
    let label = format!("drbdfs-{}-rsctmp-empty", std::process::id());
    let locks: Vec<PathBuf> = std::fs::read_dir("/run/resource-agents")
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    let name = p.to_string_lossy();
                    name.contains(&label) && name.ends_with(".lock")
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(locks.len(), 1, "no lock in /run/resource-agents: {locks:?}");
    std::fs::remove_file(&locks[0]).unwrap();
}

#[test]
fn a_regular_file_as_device_is_a_configuration_error() {
    let fs = LoopFs::new("regular", "ext4");
    let file = fs.base.join("disk.img");
    let vars = [
        ("OCF_RESKEY_device", file.to_str().unwrap()),
        ("OCF_RESKEY_directory", fs.directory.to_str().unwrap()),
        ("OCF_RESKEY_fstype", "ext4"),
    ];
    let (code, stderr) = agent("validate-all", &vars);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("is not a block device"), "{stderr}");
    assert!(!fs.mounted());
}

#[test]
fn a_directory_that_is_a_symlink_is_refused() {
    let fs = LoopFs::new("dirlink", "ext4");
    let link = fs.base.join("link");
    std::os::unix::fs::symlink("/", &link).unwrap();
    let vars = [
        ("OCF_RESKEY_device", fs.device.to_str().unwrap()),
        ("OCF_RESKEY_directory", link.to_str().unwrap()),
        ("OCF_RESKEY_fstype", "ext4"),
    ];
    let (code, stderr) = agent("start", &vars);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("resolves to /"), "{stderr}");
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts = clever_mounts::parse_mountinfo(&text).unwrap();
    assert!(
        !mounts.iter().any(|m| Path::new(&m.source) == fs.device),
        "nothing may be mounted"
    );
}
