//! A lab of private libvirtd "nodes" on this machine, with a tiny test guest built at test time.
//!
//! Each node is `unshare --mount --pid --fork --mount-proc --kill-child` running `tini` as its
//! PID 1, which bind-mounts private `/etc/libvirt`, `/var/lib/libvirt`, `/var/log/libvirt`,
//! `/run` (and an `/etc/passwd` naming `libvirt-qemu`, which libvirtd insists on) and then runs
//! `libvirtd` in the foreground. Every process of a node, qemu included, lives in the node's PID
//! namespace, so dropping the [`Node`] (killing `unshare`, whose death kills `tini`, whose death
//! kills the namespace) tears everything down, also when a test fails. The agent runs inside a
//! node through `nsenter`, as it would run on a real node. Images go to a directory under
//! `/dev/shm` (a tmpfs, so not the root filesystem) that nodes share like the DRBD filesystem,
//! bound over libvirt's save directory (the former layout, which the agent still accepts); or,
//! with [`NodeOptions::link_layout`], each VM has a filesystem of its own
//! ([`Lab::own_filesystem`]) and the agent links its image path in libvirt's directory.
//!
//! Nothing is skipped: a missing program or a daemon that does not come up fails the test.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the lab"
)]

use std::cell::RefCell;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub use clever_lab::guest::Serial;

/// The agent under test: the light build, which Pacemaker runs.
pub const AGENT: &str = env!("CARGO_BIN_EXE_vm");
/// Its libvirt-linked build, which `AGENT` finds next to itself and hands start, stop and the
/// monitor's fallback over to.
pub const LINKED: &str = env!("CARGO_BIN_EXE_vm-libvirt");

/// Serialises the tests: each runs TCG guests that take a CPU each.
pub fn serial_guard() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn run_ok(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e} (run make setup)"));
    assert!(
        output.status.success(),
        "{shown} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Directories of one test run; removed on drop.
pub struct Lab {
    /// Node state (configs, logs, /run) under /tmp.
    pub root: PathBuf,
    /// The "shared filesystem": images and domain XML files, on a tmpfs.
    pub shared: PathBuf,
    pub guest: PathBuf,
    /// libvirt's QEMU capability cache, kept across runs so only the first run pays ~8 s.
    pub cache: PathBuf,
    /// Filesystems mounted by [`Lab::own_filesystem`], unmounted on drop.
    mounts: RefCell<Vec<PathBuf>>,
}

impl Lab {
    pub fn new(test: &str) -> Lab {
        for program in [
            "setpriv", "unshare", "nsenter", "tini", "libvirtd", "virsh", "as", "ld",
        ] {
            let found = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join(program).exists()))
                .unwrap_or(false);
            assert!(
                found,
                "{program} is missing: run make setup (scripts/setup.sh)"
            );
        }
        assert!(
            Path::new("/usr/bin/qemu-system-x86_64").exists(),
            "qemu-system-x86 is missing: run make setup"
        );
        let tag = format!("clever-vm-{test}-{}", std::process::id());
        let root = std::env::temp_dir().join(&tag);
        let shared = PathBuf::from("/dev/shm").join(&tag);
        let _ = fs::remove_dir_all(&root);
        let _ = fs::remove_dir_all(&shared);
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&shared).unwrap();
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clever-vm-libvirt-cache");
        fs::create_dir_all(&cache).unwrap();
        // The one test guest of the project, shared with the live lab.
        let guest = clever_lab::guest::build(&root).unwrap();
        Lab {
            root,
            shared,
            guest,
            cache,
            mounts: RefCell::new(Vec::new()),
        }
    }

    /// A tmpfs of its own for VM `name`, as its DRBD filesystem would be, mounted on this
    /// machine under the shared directory so that every node started afterwards sees it (a
    /// node's mount namespace copies the mounts there are when it starts). Returns the VM's
    /// hibernation directory on it.
    pub fn own_filesystem(&self, name: &str) -> PathBuf {
        let mount_point = self.shared.join(format!("fs-{name}"));
        fs::create_dir_all(&mount_point).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=128m"])
                .arg(format!("clever-vm-{name}"))
                .arg(&mount_point),
        );
        self.mounts.borrow_mut().push(mount_point.clone());
        let hibernate_dir = mount_point.join("hibernate");
        fs::create_dir_all(&hibernate_dir).unwrap();
        hibernate_dir
    }

    /// Writes the XML of a test domain with `mib` of RAM to the shared directory.
    pub fn domain_xml(&self, name: &str, mib: u32) -> PathBuf {
        let xml = clever_lab::guest::domain_xml(name, mib, &self.guest, &self.serial_path(name));
        let path = self.shared.join(format!("{name}.xml"));
        fs::write(&path, xml).unwrap();
        path
    }

    pub fn serial_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.serial"))
    }

    /// The guest's console so far: how often it booted and the counter values printed.
    pub fn serial(&self, name: &str) -> Serial {
        Serial::read(&self.serial_path(name))
    }

    /// Waits until the guest printed a counter above `above`.
    pub fn wait_count_above(&self, name: &str, above: u64) -> u64 {
        let started = Instant::now();
        loop {
            if let Some(&last) = self.serial(name).counts.last() {
                if last > above {
                    return last;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "guest {name} printed nothing above {above} in 60 s: {:?}",
                self.serial(name)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn image(&self, name: &str) -> PathBuf {
        self.shared.join(format!("{name}.save"))
    }

    /// Files in the shared directory whose names start with `prefix`.
    pub fn shared_files(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.shared)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for mount_point in self.mounts.borrow().iter() {
            // Lazy: a node being torn down may still hold it for a moment.
            let _ = Command::new("umount").arg("-l").arg(mount_point).status();
        }
        let _ = fs::remove_dir_all(&self.root);
        let _ = fs::remove_dir_all(&self.shared);
    }
}

/// How a node is built.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// A tmpfs of this many MiB as the node's own hibernation directory instead of the lab's
    /// shared one (for the save-directory-full test).
    pub small_tmpfs_mib: Option<u32>,
    /// Nothing bound over libvirt's save directory: the agent links each domain's image path.
    pub link_layout: bool,
}

/// One private libvirtd "node".
pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    /// The directory the agent is given as hibernate_dir (as the node sees it).
    pub hibernate_dir: PathBuf,
    unshare: Child,
    /// Host pid of the node's PID 1 (tini).
    pub init_pid: u32,
}

const QEMU_CONF: &str = "user = \"root\"\ngroup = \"root\"\ncgroup_controllers = [ ]\n\
    security_driver = \"none\"\nremember_owner = 0\nstdio_handler = \"file\"\nnamespaces = [ ]\n";
const LIBVIRTD_CONF: &str = "unix_sock_dir = \"/run/libvirt\"\n\
    log_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n";

const NODE_INIT: &str = r#"set -eu
N=$1; SHARED=$2; CACHE=$3; SMALL=$4; LINK=$5
make_missing_dirs "$N" /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
mount --bind "$N/etc" /etc/libvirt
mount --bind "$N/lib" /var/lib/libvirt
mount --bind "$N/log" /var/log/libvirt
mount --bind "$CACHE" /var/cache/libvirt
mount --bind "$N/run" /run
mount --bind "$N/passwd" /etc/passwd
mount --bind "$N/group" /etc/group
if [ "$SMALL" != 0 ]; then
  mount -t tmpfs -o "size=${SMALL}m" clever-vm-small "$SHARED"
fi
if [ "$LINK" = 0 ]; then
  mount --bind "$SHARED" /var/lib/libvirt/qemu/save
fi
# libvirtd is orphaned to tini (PID 1), so it can exit (a test stops it) without ending the node.
(libvirtd &)
exec sleep infinity
"#;

impl Node {
    pub fn start(lab: &Lab, name: &str, options: &NodeOptions) -> Node {
        let dir = lab.root.join(format!("node-{name}"));
        for sub in ["etc", "lib/qemu/save", "log/qemu", "run"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("etc/qemu.conf"), QEMU_CONF).unwrap();
        fs::write(dir.join("etc/libvirtd.conf"), LIBVIRTD_CONF).unwrap();
        let mut passwd = fs::read_to_string("/etc/passwd").unwrap();
        let mut group = fs::read_to_string("/etc/group").unwrap();
        if !passwd.contains("\nlibvirt-qemu:") {
            passwd.push_str("libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin\n");
            group.push_str("libvirt-qemu:x:64055:\n");
        }
        fs::write(dir.join("passwd"), passwd).unwrap();
        fs::write(dir.join("group"), group).unwrap();
        fs::write(
            dir.join("init.sh"),
            format!(
                "{}{NODE_INIT}",
                ocf_conformance::namespace::MAKE_MISSING_DIRS
            ),
        )
        .unwrap();
        let (hibernate_dir, small) = match options.small_tmpfs_mib {
            Some(mib) => {
                let own = dir.join("hibernate");
                fs::create_dir_all(&own).unwrap();
                (own, mib)
            }
            None => (lab.shared.clone(), 0),
        };
        let log = fs::File::create(dir.join("node.out")).unwrap();
        // setpriv: a test process that dies without dropping the node (killed, or aborted)
        // takes unshare with it, and unshare's --kill-child the node; nothing is left running.
        let unshare = Command::new("setpriv")
            .args([
                "--pdeathsig",
                "KILL",
                "--",
                "unshare",
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                "--propagation",
                "private",
                "--",
                "tini",
                "--",
                "/bin/sh",
            ])
            .arg(dir.join("init.sh"))
            .arg(&dir)
            .arg(&hibernate_dir)
            .arg(&lab.cache)
            .arg(small.to_string())
            .arg(if options.link_layout { "1" } else { "0" })
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot run unshare: install util-linux");
        let mut node = Node {
            name: name.to_owned(),
            dir,
            hibernate_dir,
            init_pid: 0,
            unshare,
        };
        let started = Instant::now();
        loop {
            if node.init_pid == 0 {
                node.init_pid = child_of(node.unshare.id()).unwrap_or(0);
            }
            if node.init_pid != 0 && node.socket().exists() {
                let list = node.virsh(&["list", "--all"]);
                if list.status.success() {
                    break;
                }
            }
            if let Ok(Some(status)) = node.unshare.try_wait() {
                panic!("node {name} ended ({status}): {}", node.output());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "libvirtd of node {name} did not come up in 60 s: {}",
                node.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn output(&self) -> String {
        let mut text = fs::read_to_string(self.dir.join("node.out")).unwrap_or_default();
        text.push_str(&fs::read_to_string(self.dir.join("log/libvirtd.log")).unwrap_or_default());
        text
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/libvirt/libvirt-sock")
    }

    /// The URI that reaches this node's libvirtd from outside the node.
    pub fn uri(&self) -> String {
        format!("qemu:///system?socket={}", self.socket().display())
    }

    pub fn virsh(&self, args: &[&str]) -> Output {
        Command::new("virsh")
            .arg("-c")
            .arg(self.uri())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("virsh is missing: install libvirt-clients")
    }

    /// `virsh domstate --reason`, e.g. "running (restored)".
    pub fn domstate(&self, domain: &str) -> String {
        let out = self.virsh(&["domstate", "--reason", domain]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs the agent inside the node with `OCF_RESKEY_*` from `params` and other variables.
    pub fn agent(&self, action: &str, params: &[(&str, &str)], vars: &[(&str, &str)]) -> Run {
        let mut command = Command::new("nsenter");
        command
            .arg("-t")
            .arg(self.init_pid.to_string())
            .args(["-m", "-p", "--", AGENT, action])
            .env("HA_LOGFACILITY", "none")
            .env("OCF_RESOURCE_INSTANCE", format!("vm-{}", self.name))
            .stdin(Stdio::null());
        for (key, value) in params {
            command.env(format!("OCF_RESKEY_{key}"), value);
        }
        for (key, value) in vars {
            command.env(key, value);
        }
        let started = Instant::now();
        let output = command
            .output()
            .expect("nsenter is missing: install util-linux");
        let run = Run {
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            took: started.elapsed(),
        };
        eprintln!(
            "--- {} {action} on {} -> {} in {:.2?}\n{}",
            AGENT, self.name, output.status, run.took, run.stderr
        );
        if run.code.is_none() {
            // Ended by a signal: whether the node (its PID namespace) still stands tells a
            // namespace teardown from a signal aimed at the agent.
            eprintln!(
                "--- node {} after the signal: init {} alive: {}, libvirtd {:?}, processes {:?}\n{}",
                self.name,
                self.init_pid,
                Path::new(&format!("/proc/{}", self.init_pid)).exists(),
                self.libvirtd_pid(),
                self.processes(),
                self.output()
            );
        }
        run
    }

    /// Host pids of every process in the node's PID namespace.
    pub fn processes(&self) -> Vec<u32> {
        let Ok(ns) = fs::read_link(format!("/proc/{}/ns/pid", self.init_pid)) else {
            return Vec::new();
        };
        fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| fs::read_link(format!("/proc/{pid}/ns/pid")).ok().as_ref() == Some(&ns))
            .collect()
    }

    /// Host pids of the node's live qemu processes for `domain`.
    pub fn qemu_pids(&self, domain: &str) -> Vec<u32> {
        self.processes()
            .into_iter()
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| clever_agent_vm::process::runs_domain(&c, domain))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Host pid of the node's libvirtd.
    pub fn libvirtd_pid(&self) -> Option<u32> {
        self.processes().into_iter().find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == "libvirtd")
                .unwrap_or(false)
        })
    }

    /// libvirt's managed-save directory of this node, as seen from outside it.
    pub fn libvirt_save_dir(&self) -> PathBuf {
        self.dir.join("lib/qemu/save")
    }

    /// `path` as this node's mount namespace sees it (a filesystem unmounted there only).
    pub fn sees(&self, path: &Path) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.init_pid)).join(path.strip_prefix("/").unwrap())
    }

    /// Unmounts `path` in this node only, as a stopped DRBD filesystem would be.
    pub fn unmount(&self, path: &Path) {
        run_ok(
            Command::new("nsenter")
                .arg("-t")
                .arg(self.init_pid.to_string())
                .args(["-m", "--", "umount"])
                .arg(path),
        );
    }

    /// Stops libvirtd (SIGTERM: running VMs survive, as with a daemon restart or crash).
    pub fn stop_libvirtd(&self) {
        let pid = self.libvirtd_pid().expect("node has no libvirtd");
        signal(pid, "TERM");
        wait_until(Duration::from_secs(30), "libvirtd to exit", || {
            self.libvirtd_pid().is_none()
        });
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // unshare --kill-child: its death kills tini, PID 1 of the node, and with it every
        // process of the namespace, qemu included.
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        let gone = Instant::now();
        while !self.processes().is_empty() && gone.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn child_of(parent: u32) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
        let status = fs::read_to_string(e.path().join("status")).ok()?;
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))?
            .trim()
            .parse::<u32>()
            .ok()?;
        (ppid == parent).then_some(pid)
    })
}

pub fn signal(pid: u32, name: &str) {
    run_ok(
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string()),
    );
}

pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One agent run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    pub fn exit_reason(&self) -> Option<&str> {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("ocf-exit-reason:"))
    }
}

/// Whether a path is on a different filesystem than `/`.
pub fn off_root(path: &Path) -> bool {
    fs::metadata(path).unwrap().dev() != fs::metadata("/").unwrap().dev()
}

/// Overwrites `bytes` at `offset` in `path`.
pub fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom};
    let mut file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
}

/// Shared once per test binary.
pub fn once<T>(cell: &'static OnceLock<T>, init: impl FnOnce() -> T) -> &'static T {
    cell.get_or_init(init)
}

/// A CPU throttle the test controls: processes held in it get 1% of a CPU, so a step they do
/// (a hibernation) lasts as long as the test decides, whatever this machine's speed. A cgroup of
/// the cpu controller: v1's CFS quota where the machine mounts it (hybrid hosts), v2's
/// `cpu.max` otherwise; neither available fails the test.
pub struct CpuThrottle {
    dir: PathBuf,
}

impl CpuThrottle {
    /// 1 ms of CPU per 100 ms.
    const QUOTA_US: u32 = 1_000;
    const PERIOD_US: u32 = 100_000;

    pub fn new(test: &str) -> CpuThrottle {
        let name = format!("clever-vm-{test}-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let v2 = Path::new("/sys/fs/cgroup");
        let dir = if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(&name);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("cpu.cfs_period_us"), Self::PERIOD_US.to_string()).unwrap();
            fs::write(dir.join("cpu.cfs_quota_us"), Self::QUOTA_US.to_string()).unwrap();
            dir
        } else {
            let controllers = fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
            assert!(
                controllers.split_whitespace().any(|c| c == "cpu"),
                "no cpu cgroup controller (v1 /sys/fs/cgroup/cpu or v2 cpu) to throttle with"
            );
            fs::write(v2.join("cgroup.subtree_control"), "+cpu").unwrap();
            let dir = v2.join(&name);
            fs::create_dir_all(&dir).unwrap();
            fs::write(
                dir.join("cpu.max"),
                format!("{} {}", Self::QUOTA_US, Self::PERIOD_US),
            )
            .unwrap();
            dir
        };
        CpuThrottle { dir }
    }

    /// Holds `pid` (all of its threads) in the throttle.
    pub fn hold(&self, pid: u32) {
        // A process that just ended cannot be moved; that is fine.
        let _ = fs::write(self.dir.join("cgroup.procs"), pid.to_string());
    }

    /// Lets every held process run at full speed again.
    pub fn release(&self) {
        let Some(parent) = self.dir.parent() else {
            return;
        };
        let held = fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in held.lines() {
            let _ = fs::write(parent.join("cgroup.procs"), pid.trim());
        }
    }

    /// How many processes are held now.
    pub fn held(&self) -> usize {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for CpuThrottle {
    fn drop(&mut self) {
        self.release();
        let _ = fs::remove_dir(&self.dir);
    }
}

/// A `Duration`'s `Debug` text as the agent logs it ("1.7s", "850.2ms"), back to seconds.
pub fn debug_seconds(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("µs") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ns") {
        (n, 1e-9)
    } else {
        (text.strip_suffix('s')?, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}
