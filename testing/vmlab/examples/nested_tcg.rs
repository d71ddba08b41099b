//! Is a TCG guest inside a VM node workable? Issue 9 item 3 wants `ocf:clever:vm` in the
//! VM-node cluster lab only if it is, so this measures it rather than guessing:
//!
//! ```text
//! cargo run --release -p clever-vmlab --example nested_tcg [-- --runs 3 --nested-runs 3]
//! ```
//!
//! The guest is the lab's own busybox image (Debian's kernel, the DRBD initramfs), booted,
//! saved and restored the way libvirt's managed save does it (pause, QMP `migrate` to
//! `exec:cat > FILE`; a new qemu with `-incoming`, QMP `migrate-incoming`, `cont`), first on
//! the host, then inside a VM node (alpha) with the host's qemu, its firmware and this very
//! binary copied in. The same code (`nested_tcg measure ...`) measures both levels, so the
//! table compares like with like. Each sample proves the restored guest runs by getting an
//! answer from its control loop.
//!
//! Boot ends when the guest's init prints its ready line on the console (the serial port, a
//! file). Load averages are printed with each sample: this machine is shared.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use clever_deadline::Deadline;
use clever_vmlab::{image, LabConfig, VmLab, VmLabError, DEFAULT_CACHE};

/// Where the nested run's files go in the node.
const GUEST_DIR: &str = "/opt/nested";

/// The host's qemu and what it opens for this machine type (seen with `strace -e openat`):
/// the TCG accelerator module, SeaBIOS and the option ROMs of `-kernel` boot. Guest paths are
/// the host's, since qemu finds them relative to its binary.
const QEMU_FILES: &[&str] = &[
    "/usr/bin/qemu-system-x86_64",
    "/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so",
    "/usr/share/seabios/bios-256k.bin",
    "/usr/share/qemu/kvmvapic.bin",
    "/usr/share/qemu/linuxboot_dma.bin",
];

/// The lab's kernel command line, without an address: the nested guest has no link.
const APPEND: &str = "console=ttyS0 loglevel=6 panic=-1 lab.name=nested";

/// What the guest's init prints on the console once it is up (testing/vmlab/src/guest/init.sh).
const READY: &str = "lab: nested ready, control on ";

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Lab(#[from] VmLabError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The measured guest or its qemu failed; the tails say how far it got.
    #[error("{problem}\n--- last console lines ---\n{console}\n--- qemu's stderr ---\n{stderr}")]
    Qemu {
        problem: String,
        console: String,
        stderr: String,
    },
    /// The measurement inside the VM node failed; its own error is in `output`.
    #[error("the nested run in VM node alpha failed (exit {code}):\n{output}")]
    Nested { code: i32, output: String },
}

fn io_error(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Failure {
    let path = path.into();
    move |source| Failure::Io { what, path, source }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("measure") => measure_command(&args[1..]),
        _ => compare(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nested_tcg: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One boot, save and restore.
#[derive(Debug, Clone, Copy)]
struct Sample {
    boot: Duration,
    save: Duration,
    restore: Duration,
    /// From `cont` until the restored guest's control loop ran a script and answered.
    answer: Duration,
    image_bytes: u64,
}

impl Sample {
    fn to_line(self) -> String {
        format!(
            "RESULT boot={:.3} save={:.3} restore={:.3} answer={:.3} image={}",
            self.boot.as_secs_f64(),
            self.save.as_secs_f64(),
            self.restore.as_secs_f64(),
            self.answer.as_secs_f64(),
            self.image_bytes
        )
    }

    fn from_line(line: &str) -> Option<Self> {
        let mut fields = line.strip_prefix("RESULT ")?.split(' ');
        let mut next = |key: &str| -> Option<String> {
            fields
                .next()?
                .strip_prefix(key)?
                .strip_prefix('=')
                .map(str::to_owned)
        };
        let secs = |text: String| text.parse::<f64>().ok().map(Duration::from_secs_f64);
        Some(Self {
            boot: secs(next("boot")?)?,
            save: secs(next("save")?)?,
            restore: secs(next("restore")?)?,
            answer: secs(next("answer")?)?,
            image_bytes: next("image")?.parse().ok()?,
        })
    }
}

/// The host side: top level first (before the lab's VMs compete for the cores), then nested.
fn compare(args: &[String]) -> Result<(), Failure> {
    let options = Options::parse(args)?;
    for file in QEMU_FILES {
        if !Path::new(file).is_file() {
            return Err(Failure::Usage(format!(
                "{file} is missing: install qemu-system-x86 and seabios (scripts/setup.sh)"
            )));
        }
    }
    let cache = PathBuf::from(DEFAULT_CACHE);
    fs::create_dir_all(&cache).map_err(io_error("creating", &cache))?;
    let image = image::base_image(&cache, &Deadline::after(Duration::from_secs(900)))?;
    println!(
        "guest: {} + {} ({} MiB RAM), qemu TCG; {} top-level and {} nested sample(s)",
        image.kernel.display(),
        image.initrd.display(),
        options.memory_mib,
        options.runs,
        options.nested_runs
    );

    let mut top = Vec::new();
    let work = std::env::temp_dir().join(format!("nested-tcg-{}", std::process::id()));
    for run in 1..=options.runs {
        let before = load();
        let dir = work.join(format!("top-{run}"));
        let sample = measure(
            &image.kernel,
            &image.initrd,
            options.memory_mib,
            &dir,
            options.boot_timeout,
        );
        let _ = fs::remove_dir_all(&dir);
        let sample = sample?;
        println!(
            "top level {run}: {}  (load {before} -> {})",
            sample.to_line(),
            load()
        );
        top.push(sample);
    }
    let _ = fs::remove_dir_all(&work);

    let exe = std::env::current_exe().map_err(io_error("finding", "this program"))?;
    let mut files: Vec<(String, PathBuf)> = QEMU_FILES
        .iter()
        .map(|file| (file.to_string(), PathBuf::from(file)))
        .collect();
    files.push((format!("{GUEST_DIR}/nested_tcg"), exe));
    files.push((format!("{GUEST_DIR}/vmlinuz"), image.kernel.clone()));
    files.push((format!("{GUEST_DIR}/initrd.cpio"), image.initrd.clone()));
    let booted = Instant::now();
    let lab = VmLab::boot(&LabConfig {
        files,
        memory_mib: options.node_memory_mib,
        boot_timeout: Duration::from_secs(900),
        ..LabConfig::default()
    })?;
    println!(
        "VM nodes up in {:.1} s ({} MiB each)",
        booted.elapsed().as_secs_f64(),
        options.node_memory_mib
    );
    let alpha = lab
        .node("alpha")
        .ok_or_else(|| Failure::Usage("the lab has no node alpha".to_owned()))?;
    let mut nested = Vec::new();
    for run in 1..=options.nested_runs {
        let before = load();
        let script = format!(
            "{GUEST_DIR}/nested_tcg measure {GUEST_DIR}/vmlinuz {GUEST_DIR}/initrd.cpio {} \
             /tmp/nested-{run} {}",
            options.memory_mib,
            options.boot_timeout.as_secs()
        );
        // Boot, save, restore and answer each get the boot timeout.
        let started = Instant::now();
        let output = alpha.run(&script, options.boot_timeout.saturating_mul(4))?;
        let wall = started.elapsed();
        if !output.success() {
            return Err(Failure::Nested {
                code: output.code,
                output: format!("{}{}", output.stdout, output.stderr),
            });
        }
        let sample = output
            .stdout
            .lines()
            .find_map(Sample::from_line)
            .ok_or_else(|| Failure::Nested {
                code: output.code,
                output: format!("no RESULT line in:\n{}{}", output.stdout, output.stderr),
            })?;
        println!(
            "nested {run}: {}  (load {before} -> {}; {:.1} s by the host's clock)",
            sample.to_line(),
            load(),
            wall.as_secs_f64()
        );
        nested.push(sample);
    }
    drop(lab);
    println!("{}", table(&top, &nested));
    Ok(())
}

#[derive(Debug)]
struct Options {
    runs: usize,
    nested_runs: usize,
    memory_mib: u32,
    node_memory_mib: u32,
    boot_timeout: Duration,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, Failure> {
        let usage = || {
            Failure::Usage(
                "usage: nested_tcg [--runs N] [--nested-runs N] [--memory MIB] \
                 [--node-memory MIB] [--timeout SECONDS]"
                    .to_owned(),
            )
        };
        // 192 MiB: at 128 the Debian kernel keeps ~72 MiB reserved and init is OOM-killed.
        let mut options = Self {
            runs: 3,
            nested_runs: 3,
            memory_mib: 192,
            node_memory_mib: 1280,
            boot_timeout: Duration::from_secs(1800),
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value: u64 = args.next().and_then(|v| v.parse().ok()).ok_or_else(usage)?;
            match flag.as_str() {
                "--runs" => options.runs = usize::try_from(value).map_err(|_| usage())?,
                "--nested-runs" => {
                    options.nested_runs = usize::try_from(value).map_err(|_| usage())?;
                }
                "--memory" => options.memory_mib = u32::try_from(value).map_err(|_| usage())?,
                "--node-memory" => {
                    options.node_memory_mib = u32::try_from(value).map_err(|_| usage())?;
                }
                "--timeout" => options.boot_timeout = Duration::from_secs(value),
                _ => return Err(usage()),
            }
        }
        Ok(options)
    }
}

/// `/proc/loadavg`'s three averages.
fn load() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|text| text.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("(loadavg: {e})"))
}

fn median(samples: &[Sample], field: impl Fn(&Sample) -> Duration) -> Option<f64> {
    let mut values: Vec<f64> = samples.iter().map(|s| field(s).as_secs_f64()).collect();
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[middle]),
        _ => Some((values[middle - 1] + values[middle]) / 2.0),
    }
}

/// One column of [`Sample`], for the table's rows.
type Field = fn(&Sample) -> Duration;

fn table(top: &[Sample], nested: &[Sample]) -> String {
    let mut text = format!(
        "\nmedians ({} top-level, {} nested sample(s)), seconds:\n{:<10} {:>10} {:>10} {:>8}\n",
        top.len(),
        nested.len(),
        "",
        "top level",
        "nested",
        "ratio"
    );
    let rows: [(&str, Field); 4] = [
        ("boot", |s| s.boot),
        ("save", |s| s.save),
        ("restore", |s| s.restore),
        ("answer", |s| s.answer),
    ];
    for (name, field) in rows {
        let (a, b) = (median(top, field), median(nested, field));
        let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
        let ratio = match (a, b) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.1}x", b / a),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            text,
            "{name:<10} {:>10} {:>10} {ratio:>8}",
            show(a),
            show(b)
        );
    }
    let size = |s: &[Sample]| s.iter().map(|s| s.image_bytes).max().unwrap_or(0) / (1024 * 1024);
    let _ = writeln!(
        text,
        "save image: {} MiB top level, {} MiB nested (largest)",
        size(top),
        size(nested)
    );
    text
}

/// `measure KERNEL INITRD MEMORY_MIB WORKDIR TIMEOUT_SECONDS`: one sample, as a RESULT line.
fn measure_command(args: &[String]) -> Result<(), Failure> {
    let [kernel, initrd, memory, work, timeout] = args else {
        return Err(Failure::Usage(
            "usage: nested_tcg measure KERNEL INITRD MEMORY_MIB WORKDIR TIMEOUT_SECONDS".into(),
        ));
    };
    let memory = memory
        .parse()
        .map_err(|_| Failure::Usage(format!("bad memory size {memory:?}")))?;
    let timeout = timeout
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| Failure::Usage(format!("bad timeout {timeout:?}")))?;
    let work = Path::new(work);
    let sample = measure(Path::new(kernel), Path::new(initrd), memory, work, timeout);
    let _ = fs::remove_dir_all(work);
    println!("{}", sample?.to_line());
    Ok(())
}

fn measure(
    kernel: &Path,
    initrd: &Path,
    memory_mib: u32,
    work: &Path,
    timeout: Duration,
) -> Result<Sample, Failure> {
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).map_err(io_error("creating", work))?;
    let saved = work.join("saved.img");

    let started = Instant::now();
    let mut first = Qemu::spawn(kernel, initrd, memory_mib, work, "boot", false, timeout)?;
    first.wait_console(READY, &Deadline::after(timeout))?;
    let boot = started.elapsed();

    // What libvirt's managed save does: pause, then migrate all of RAM into a file, unthrottled.
    let started = Instant::now();
    let deadline = Deadline::after(timeout);
    let mut qmp = first.qmp(&deadline)?;
    qmp.execute(
        "migrate-set-parameters",
        serde_json::json!({ "max-bandwidth": i64::MAX / 2 }),
    )?;
    qmp.execute("stop", serde_json::json!({}))?;
    let uri = format!("exec:cat > {}", saved.display());
    qmp.execute("migrate", serde_json::json!({ "uri": uri }))?;
    loop {
        let info = qmp.execute("query-migrate", serde_json::json!({}))?;
        match info["status"].as_str() {
            Some("completed") => break,
            Some("failed" | "cancelled") => {
                return Err(first.failure(format!("saving failed: {info}")));
            }
            _ if deadline.expired() => {
                return Err(first.failure(format!("saving took over {timeout:?}: {info}")));
            }
            _ => thread::sleep(Duration::from_millis(20)),
        }
    }
    let save = started.elapsed();
    let _ = qmp.execute("quit", serde_json::json!({}));
    drop(qmp);
    first.stop();
    let image_bytes = fs::metadata(&saved)
        .map_err(io_error("reading", &saved))?
        .len();

    // What libvirt's restore does: a new qemu waiting for its state, fed the file, resumed.
    let started = Instant::now();
    let deadline = Deadline::after(timeout);
    let mut second = Qemu::spawn(kernel, initrd, memory_mib, work, "restore", true, timeout)?;
    let mut qmp = second.qmp(&deadline)?;
    let uri = format!("exec:cat {}", saved.display());
    qmp.execute("migrate-incoming", serde_json::json!({ "uri": uri }))?;
    loop {
        let status = qmp.execute("query-status", serde_json::json!({}))?;
        match status["status"].as_str() {
            Some("inmigrate") if !deadline.expired() => thread::sleep(Duration::from_millis(20)),
            Some("paused") => break,
            _ => {
                return Err(second.failure(format!(
                    "restoring: expected the paused state it was saved in within {timeout:?}, \
                     got {status}"
                )));
            }
        }
    }
    qmp.execute("cont", serde_json::json!({}))?;
    let restore = started.elapsed();

    let started = Instant::now();
    second.expect_answer(&Deadline::after(timeout))?;
    let answer = started.elapsed();
    let _ = qmp.execute("quit", serde_json::json!({}));
    drop(qmp);
    second.stop();
    Ok(Sample {
        boot,
        save,
        restore,
        answer,
        image_bytes,
    })
}

/// A measured qemu, killed when dropped. Its control port is connected from the start: init
/// reads it, and a port with nobody at the host end reads as end-of-file (init would exit).
struct Qemu {
    child: Child,
    console: PathBuf,
    stderr: PathBuf,
    qmp_path: PathBuf,
    control: BufReader<UnixStream>,
}

impl Qemu {
    /// `incoming`: start waiting for a saved state (`-incoming defer`) instead of booting.
    fn spawn(
        kernel: &Path,
        initrd: &Path,
        memory_mib: u32,
        work: &Path,
        name: &str,
        incoming: bool,
        timeout: Duration,
    ) -> Result<Self, Failure> {
        let console = work.join(format!("{name}.console.log"));
        let stderr = work.join(format!("{name}.qemu.log"));
        let qmp_path = work.join(format!("{name}.qmp"));
        let control = work.join(format!("{name}.ctl"));
        let log = fs::File::create(&stderr).map_err(io_error("creating", &stderr))?;
        // The lab's own qemu arguments (testing/vmlab/src/vm.rs), minus disks and network.
        let mut command = Command::new("qemu-system-x86_64");
        command
            .args(["-accel", "tcg,tb-size=256", "-cpu", "max", "-smp", "1"])
            .args(["-m", &memory_mib.to_string()])
            .args(["-nodefaults", "-display", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", APPEND])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-chardev")
            .arg(format!(
                "socket,id=ctl,path={},server=on,wait=off",
                control.display()
            ))
            .args(["-device", "virtio-serial-pci,id=serial"])
            .args([
                "-device",
                "virtserialport,bus=serial.0,chardev=ctl,name=lab.ctl",
            ])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_path.display()));
        if incoming {
            command.args(["-incoming", "defer"]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io_error(
                "running qemu-system-x86_64 (qemu-system-x86) in",
                work,
            ))?;
        let deadline = Deadline::after(timeout);
        let stream = loop {
            match UnixStream::connect(&control) {
                Ok(stream) => break stream,
                Err(error) => {
                    let exited = child.try_wait().ok().flatten();
                    if exited.is_some() || deadline.expired() {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(Failure::Qemu {
                            problem: format!(
                                "qemu in {} did not open its control socket ({error}; exit: \
                                 {exited:?})",
                                work.display()
                            ),
                            console: tail(&console),
                            stderr: tail(&stderr),
                        });
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            }
        };
        Ok(Self {
            child,
            console,
            stderr,
            qmp_path,
            control: BufReader::new(stream),
        })
    }

    fn failure(&mut self, problem: String) -> Failure {
        let exited = self.child.try_wait().ok().flatten();
        Failure::Qemu {
            problem: match exited {
                Some(status) => format!("{problem} (qemu exited: {status})"),
                None => problem,
            },
            console: tail(&self.console),
            stderr: tail(&self.stderr),
        }
    }

    fn wait_console(&mut self, wanted: &str, deadline: &Deadline) -> Result<(), Failure> {
        loop {
            let text = fs::read_to_string(&self.console).unwrap_or_default();
            if text.contains(wanted) {
                return Ok(());
            }
            if deadline.expired() {
                return Err(self.failure(format!(
                    "no {wanted:?} on the console within {:?}",
                    deadline.timeout()
                )));
            }
            if self.child.try_wait().ok().flatten().is_some() {
                return Err(self.failure(format!("qemu exited before {wanted:?}")));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn qmp(&mut self, deadline: &Deadline) -> Result<Qmp, Failure> {
        let stream = loop {
            match UnixStream::connect(&self.qmp_path) {
                Ok(stream) => break stream,
                Err(error) if deadline.expired() => {
                    return Err(self.failure(format!("connecting to QMP: {error}")));
                }
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        };
        let writer = stream
            .try_clone()
            .map_err(io_error("cloning the QMP socket", &self.qmp_path))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            deadline: *deadline,
        };
        qmp.execute("qmp_capabilities", serde_json::json!({}))?;
        Ok(qmp)
    }

    /// Runs `echo alive` through the guest's control loop (init.sh's protocol) and checks
    /// the answer: a restored guest that merely reports "running" could still be wedged.
    fn expect_answer(&mut self, deadline: &Deadline) -> Result<(), Failure> {
        let engine = base64::engine::general_purpose::STANDARD;
        let request = format!("1 60 {}\n", engine.encode("echo alive"));
        self.control
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(io_error("writing to the control socket", &self.console))?;
        let mut output = String::new();
        let mut section = false;
        let mut line = String::new();
        loop {
            if deadline.expired() {
                return Err(self.failure(format!(
                    "the restored guest did not answer within {:?}",
                    deadline.timeout()
                )));
            }
            let _ = self
                .control
                .get_ref()
                .set_read_timeout(Some(deadline.remaining().max(Duration::from_millis(1))));
            match self.control.read_line(&mut line) {
                Ok(0) => return Err(self.failure("control socket closed".to_owned())),
                Ok(_) if line.ends_with('\n') => {}
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) => return Err(self.failure(format!("control socket: {e}"))),
            }
            let text = std::mem::take(&mut line);
            let text = text.trim();
            if text == "@@OUT 1" {
                section = true;
            } else if text == "@@ERR 1" {
                section = false;
            } else if let Some(code) = text.strip_prefix("@@END 1 ") {
                let said = engine
                    .decode(&output)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_default();
                if code == "0" && said.trim() == "alive" {
                    return Ok(());
                }
                return Err(self.failure(format!(
                    "the restored guest answered exit {code}, output {said:?}"
                )));
            } else if section {
                output.push_str(text);
            }
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    deadline: Deadline,
}

impl Qmp {
    fn execute(
        &mut self,
        command: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let qmp_error = |problem: String| Failure::Qemu {
            problem: format!("QMP {command}: {problem}"),
            console: String::new(),
            stderr: String::new(),
        };
        let request = serde_json::json!({ "execute": command, "arguments": arguments });
        self.writer
            .write_all(format!("{request}\n").as_bytes())
            .map_err(|e| qmp_error(e.to_string()))?;
        let mut line = String::new();
        loop {
            if self.deadline.expired() {
                return Err(qmp_error(format!(
                    "no answer within {:?}",
                    self.deadline.timeout()
                )));
            }
            let _ = self.reader.get_ref().set_read_timeout(Some(
                self.deadline.remaining().max(Duration::from_millis(1)),
            ));
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(qmp_error("qemu closed the monitor".to_owned())),
                Ok(_) if line.ends_with('\n') => {}
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) => return Err(qmp_error(e.to_string())),
            }
            let text = std::mem::take(&mut line);
            let value: serde_json::Value =
                serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            if let Some(result) = value.get("return") {
                return Ok(result.clone());
            }
            if value.get("error").is_some() {
                return Err(qmp_error(text.trim().to_owned()));
            }
            // The greeting and events (STOP, RESUME, MIGRATION...) come in between.
        }
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
