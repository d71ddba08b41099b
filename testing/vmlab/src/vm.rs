//! One VM node: a qemu (TCG) process, its console log, the control channel on a virtio serial
//! port, and its QMP monitor.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use base64::Engine;
use clever_deadline::Deadline;

use crate::error::{io_error, VmLabError};

/// Time a script may take past its own guest-side timeout before the host gives up on the VM
/// (a TCG guest on a loaded host answers slowly).
const HOST_MARGIN: Duration = Duration::from_secs(30);

/// busybox `timeout -s KILL` reports a killed script as the shell does.
const KILLED: i32 = 128 + 9;

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    /// The address on the private link, with its prefix (`10.99.0.1/24`).
    pub address: String,
    pub mac: String,
    /// Size of the raw disk (`/dev/vda` in the guest).
    pub disk_mib: u64,
    /// Size of a second raw disk (`/dev/vdb`), kept out of DRBD: a plain device to put
    /// device-mapper targets on.
    pub scratch_mib: u64,
    pub memory_mib: u32,
    /// NICs after the private link, in order (`eth1`, `eth2` … in the guest).
    pub extra_nics: Vec<Nic>,
    /// Virtio serial ports besides the control channel, by name: the guest opens
    /// `/dev/virtio-ports/…` by that name, the host connects to [`Vm::port_path`].
    pub extra_ports: Vec<String>,
}

/// A NIC beyond the private link; `id` names it for [`Vm::set_nic_link`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nic {
    /// Another point-to-point link to the peer with its own pair of sockets, so that it can be
    /// cut while the private link stays up (DRBD's replication link apart from Corosync's).
    PeerLink { id: String, mac: String },
    /// qemu's user-mode network, restricted (nothing reaches the host or beyond): its virtual
    /// gateway [`USER_NET_GATEWAY`] answers ping, so it stands for a router the test can unplug.
    Gateway { id: String, mac: String },
}

/// The address qemu's user-mode network gives its virtual gateway.
pub const USER_NET_GATEWAY: &str = "10.0.2.2";

/// The end of a script run in a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ScriptOutput {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// A running VM node; dropping it kills its qemu.
#[derive(Debug)]
pub struct Vm {
    name: String,
    dir: PathBuf,
    child: Mutex<Child>,
    channel: Mutex<Channel>,
}

#[derive(Debug)]
struct Channel {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// A line read in part when a wait ended; the rest comes with the next read.
    pending: String,
    next_id: u64,
}

/// Paths of one VM's files under the lab's run directory.
#[derive(Debug, Clone)]
pub(crate) struct VmFiles {
    pub console: PathBuf,
    pub control: PathBuf,
    pub qmp: PathBuf,
    pub disk: PathBuf,
    pub scratch: PathBuf,
    /// This VM's end of the private link, and the peer's.
    pub link_local: PathBuf,
    pub link_remote: PathBuf,
    dir: PathBuf,
    name: String,
    peer: String,
}

impl VmFiles {
    pub(crate) fn new(dir: &Path, name: &str, peer: &str) -> Self {
        Self {
            console: dir.join(format!("{name}.console.log")),
            control: dir.join(format!("{name}.ctl")),
            qmp: dir.join(format!("{name}.qmp")),
            disk: dir.join(format!("{name}.img")),
            scratch: dir.join(format!("{name}.scratch.img")),
            link_local: dir.join(format!("{name}.net")),
            link_remote: dir.join(format!("{peer}.net")),
            dir: dir.to_path_buf(),
            name: name.to_owned(),
            peer: peer.to_owned(),
        }
    }

    /// This VM's and the peer's sockets of the point-to-point link `id`.
    fn peer_link(&self, id: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{}.{id}.net", self.name)),
            self.dir.join(format!("{}.{id}.net", self.peer)),
        )
    }

    fn port(&self, port: &str) -> PathBuf {
        port_path(&self.dir, &self.name, port)
    }
}

fn port_path(dir: &Path, name: &str, port: &str) -> PathBuf {
    dir.join(format!("{name}.{port}.port"))
}

impl Vm {
    /// Starts qemu; [`Vm::wait_ready`] then waits for the guest. `extra_drives` come after
    /// DRBD's `/dev/vda` and the scratch disk (when the spec has one): the cluster nodes' roots.
    pub(crate) fn boot(
        spec: &VmSpec,
        files: &VmFiles,
        kernel: &Path,
        initrd: &Path,
        extra_drives: &[PathBuf],
        deadline: &Deadline,
    ) -> Result<Self, VmLabError> {
        for (path, mib) in [
            (&files.disk, spec.disk_mib),
            (&files.scratch, spec.scratch_mib),
        ] {
            if mib == 0 {
                continue;
            }
            let disk = fs::File::create(path).map_err(io_error("creating", path))?;
            disk.set_len(mib.saturating_mul(1024 * 1024))
                .map_err(io_error("sizing", path))?;
        }
        let append = format!(
            "console=ttyS0 loglevel=6 panic=-1 lab.name={} lab.ip={}",
            spec.name, spec.address
        );
        let path = |p: &Path| p.to_string_lossy().into_owned();
        // setpriv gives qemu a parent-death signal: a test process that dies without unwinding
        // (SIGKILL, abort) takes its VMs with it rather than leaving them running.
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "KILL", "--", "qemu-system-x86_64"])
            .args(["-accel", "tcg,tb-size=256", "-cpu", "max", "-smp", "1"])
            .args(["-m", &spec.memory_mib.to_string()])
            .args(["-nodefaults", "-display", "none", "-no-reboot"])
            .args(["-name", &format!("clever-vmlab-{}", spec.name)])
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", &append])
            .args(["-serial", &format!("file:{}", path(&files.console))])
            .args([
                "-chardev",
                &format!(
                    "socket,id=ctl,path={},server=on,wait=off",
                    path(&files.control)
                ),
            ])
            .args(["-device", "virtio-serial-pci,id=serial"])
            .args([
                "-device",
                "virtserialport,bus=serial.0,chardev=ctl,name=lab.ctl",
            ])
            .args([
                "-qmp",
                &format!("unix:{},server=on,wait=off", path(&files.qmp)),
            ])
            .args([
                "-drive",
                &format!(
                    "file={},format=raw,if=virtio,cache=unsafe",
                    path(&files.disk)
                ),
            ])
            .args([
                "-netdev",
                &format!(
                    "dgram,id=link,local.type=unix,local.path={},remote.type=unix,remote.path={}",
                    path(&files.link_local),
                    path(&files.link_remote)
                ),
            ])
            .args([
                "-device",
                &format!("virtio-net-pci,netdev=link,mac={}", spec.mac),
            ]);
        for (index, nic) in spec.extra_nics.iter().enumerate() {
            let (id, mac) = match nic {
                Nic::PeerLink { id, mac } => {
                    let (local, remote) = files.peer_link(id);
                    command.args([
                        "-netdev",
                        &format!(
                            "dgram,id={id},local.type=unix,local.path={},remote.type=unix,remote.path={}",
                            path(&local),
                            path(&remote)
                        ),
                    ]);
                    (id, mac)
                }
                Nic::Gateway { id, mac } => {
                    command.args(["-netdev", &format!("user,id={id},restrict=on")]);
                    (id, mac)
                }
            };
            // Explicit slots after the private link's keep the guest's eth numbering in order.
            command.args([
                "-device",
                &format!(
                    "virtio-net-pci,netdev={id},mac={mac},addr={:#x}",
                    0x10 + index
                ),
            ]);
        }
        for port in &spec.extra_ports {
            command
                .args([
                    "-chardev",
                    &format!(
                        "socket,id=port-{port},path={},server=on,wait=off",
                        path(&files.port(port))
                    ),
                ])
                .args([
                    "-device",
                    &format!("virtserialport,bus=serial.0,chardev=port-{port},name={port}"),
                ]);
        }
        let scratch = (spec.scratch_mib > 0).then_some(&files.scratch);
        for drive in scratch.into_iter().chain(extra_drives) {
            command.args([
                "-drive",
                &format!("file={},format=raw,if=virtio,cache=unsafe", path(drive)),
            ]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(files.console.with_extension("qemu.log")).map_err(io_error(
                    "creating",
                    files.console.with_extension("qemu.log"),
                ))?,
            ))
            .spawn()
            .map_err(io_error(
                "running qemu-system-x86_64 (qemu-system-x86) for",
                &files.disk,
            ))?;
        let mut child = child;
        let stream = loop {
            match UnixStream::connect(&files.control) {
                Ok(stream) => break stream,
                Err(_) if !deadline.expired() => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(VmLabError::Guest {
                            node: spec.name.clone(),
                            problem: format!("qemu exited at start ({status})"),
                            console: tail(&files.console.with_extension("qemu.log")),
                        });
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                Err(source) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(VmLabError::Io {
                        what: "connecting to the control socket",
                        path: files.control.clone(),
                        source,
                    });
                }
            }
        };
        let writer = stream
            .try_clone()
            .map_err(io_error("cloning the control socket", &files.control))?;
        let vm = Self {
            name: spec.name.clone(),
            dir: files
                .console
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            child: Mutex::new(child),
            channel: Mutex::new(Channel {
                reader: BufReader::new(stream),
                writer,
                pending: String::new(),
                next_id: 1,
            }),
        };
        Ok(vm)
    }

    /// Waits until the guest's control loop answers (booting takes 10–20 s under TCG).
    pub(crate) fn wait_ready(&self, deadline: &Deadline) -> Result<(), VmLabError> {
        self.wait_for_line("@@READY", deadline)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The qemu process (through setpriv, which execs it).
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().ok().map(|child| child.id())
    }

    /// The control channel's socket; its path is on qemu's command line and unique to the lab.
    pub fn control_path(&self) -> PathBuf {
        self.dir.join(format!("{}.ctl", self.name))
    }

    fn console_path(&self) -> PathBuf {
        self.dir.join(format!("{}.console.log", self.name))
    }

    fn qmp_path(&self) -> PathBuf {
        self.dir.join(format!("{}.qmp", self.name))
    }

    /// Everything the node wrote to its serial console since it booted. It is the host's file,
    /// so what reached it survives the node's power cut.
    pub fn console_text(&self) -> String {
        fs::read(self.console_path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last lines the kernel and init printed, for error messages.
    pub fn console_tail(&self) -> String {
        tail(&self.console_path())
    }

    fn guest_error(&self, problem: impl Into<String>) -> VmLabError {
        VmLabError::Guest {
            node: self.name.clone(),
            problem: problem.into(),
            console: self.console_tail(),
        }
    }

    fn wait_for_line(&self, wanted: &str, deadline: &Deadline) -> Result<(), VmLabError> {
        let mut channel = self.lock_channel()?;
        let Channel {
            reader, pending, ..
        } = &mut *channel;
        loop {
            let line = self.read_line(reader, pending, deadline)?;
            if line.trim() == wanted {
                return Ok(());
            }
        }
    }

    fn lock_channel(&self) -> Result<std::sync::MutexGuard<'_, Channel>, VmLabError> {
        self.channel
            .lock()
            .map_err(|_| self.guest_error("control channel poisoned by a panic"))
    }

    fn read_line(
        &self,
        reader: &mut BufReader<UnixStream>,
        line: &mut String,
        deadline: &Deadline,
    ) -> Result<String, VmLabError> {
        loop {
            let remaining = deadline.remaining();
            if remaining.is_zero() {
                return Err(self.guest_error(format!(
                    "no answer on the control channel within {:?}",
                    deadline.timeout()
                )));
            }
            let _ = reader.get_ref().set_read_timeout(Some(remaining));
            match reader.read_line(line) {
                Ok(0) => return Err(self.guest_error("control channel closed: qemu exited")),
                Ok(_) if line.ends_with('\n') => return Ok(std::mem::take(line)),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.guest_error(format!("control channel: {e}"))),
            }
        }
    }

    /// Runs `script` with `sh` in the guest, killed there after `timeout`.
    pub fn run(&self, script: &str, timeout: Duration) -> Result<ScriptOutput, VmLabError> {
        let engine = base64::engine::general_purpose::STANDARD;
        let deadline = Deadline::after(timeout.saturating_add(HOST_MARGIN));
        let mut channel = self.lock_channel()?;
        let id = channel.next_id;
        channel.next_id = id.saturating_add(1);
        let seconds = timeout.as_secs().max(1);
        let request = format!("{id} {seconds} {}\n", engine.encode(script));
        channel
            .writer
            .write_all(request.as_bytes())
            .map_err(|e| self.guest_error(format!("writing to the control channel: {e}")))?;
        let (out_marker, err_marker) = (format!("@@OUT {id}"), format!("@@ERR {id}"));
        let end_marker = format!("@@END {id} ");
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let mut section = None;
        loop {
            let Channel {
                reader, pending, ..
            } = &mut *channel;
            let line = self.read_line(reader, pending, &deadline)?;
            let line = line.trim();
            if line == out_marker {
                section = Some(&mut stdout);
            } else if line == err_marker {
                section = Some(&mut stderr);
            } else if let Some(code) = line.strip_prefix(&end_marker) {
                let code: i32 = code
                    .parse()
                    .map_err(|_| self.guest_error(format!("bad end line {line:?}")))?;
                let decode = |text: &str| -> Result<String, VmLabError> {
                    let bytes = engine
                        .decode(text)
                        .map_err(|e| self.guest_error(format!("bad base64 from the guest: {e}")))?;
                    Ok(String::from_utf8_lossy(&bytes).into_owned())
                };
                if code == KILLED {
                    return Err(VmLabError::ScriptTimedOut {
                        node: self.name.clone(),
                        budget: timeout,
                        script: script.to_owned(),
                    });
                }
                return Ok(ScriptOutput {
                    code,
                    stdout: decode(&stdout)?,
                    stderr: decode(&stderr)?,
                });
            } else if let Some(text) = section.as_mut() {
                text.push_str(line);
            }
        }
    }

    /// Brings this VM's end of the private link up or down (QMP `set_link`): the guest sees its
    /// NIC lose carrier, and nothing passes either way.
    pub fn set_link(&self, up: bool) -> Result<(), VmLabError> {
        self.set_nic_link("link", up)
    }

    /// As [`Vm::set_link`], for the NIC `id` of [`VmSpec::extra_nics`].
    pub fn set_nic_link(&self, id: &str, up: bool) -> Result<(), VmLabError> {
        self.qmp(&serde_json::json!({
            "execute": "set_link",
            "arguments": { "name": id, "up": up }
        }))
        .map(|_| ())
    }

    /// The host end of the serial port `port` of [`VmSpec::extra_ports`] (a socket qemu listens
    /// on; one client at a time).
    pub fn port_path(&self, port: &str) -> PathBuf {
        port_path(&self.dir, &self.name, port)
    }

    /// Ends the guest at once, as a power cut would.
    pub fn power_off(&self) -> Result<(), VmLabError> {
        let mut child = self
            .child
            .lock()
            .map_err(|_| self.guest_error("process handle poisoned by a panic"))?;
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }

    fn qmp(&self, command: &serde_json::Value) -> Result<serde_json::Value, VmLabError> {
        let path = self.qmp_path();
        let deadline = Deadline::after(Duration::from_secs(10));
        let stream = UnixStream::connect(&path).map_err(io_error("connecting to QMP", &path))?;
        let mut writer = stream
            .try_clone()
            .map_err(io_error("cloning the QMP socket", &path))?;
        let mut reader = BufReader::new(stream);
        let mut pending = String::new();
        let name = command["execute"].as_str().unwrap_or_default().to_owned();
        let mut answer = |request: &serde_json::Value| -> Result<serde_json::Value, VmLabError> {
            writer
                .write_all(format!("{request}\n").as_bytes())
                .map_err(io_error("writing to QMP", &path))?;
            loop {
                let line = self.read_line(&mut reader, &mut pending, &deadline)?;
                let value: serde_json::Value =
                    serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
                if let Some(result) = value.get("return") {
                    return Ok(result.clone());
                }
                if value.get("error").is_some() {
                    return Err(VmLabError::Qmp {
                        node: self.name.clone(),
                        command: name.clone(),
                        answer: line.trim().to_owned(),
                    });
                }
                // The greeting and asynchronous events come first; skip them.
            }
        };
        answer(&serde_json::json!({ "execute": "qmp_capabilities" }))?;
        answer(command)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
