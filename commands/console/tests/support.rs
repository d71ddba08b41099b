//! What the tests of the real binary share: accounts that only the console sees, an HTTPS
//! client (curl, by argv), and a console process that is killed when the test ends.
//!
//! PAM reads `/etc/passwd`, `/etc/shadow`, `/etc/group` and `/etc/pam.d`: the console runs in a
//! mount namespace of its own in which copies of them, with two test users added, are bound
//! over the originals. This machine's files are never changed.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clever_command::{CommandLine, RunCommand};
use clever_deadline::Deadline;
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// In haclient.
pub const ADMIN: &str = "cleveradmin";
/// Has a password, is not in haclient.
pub const VISITOR: &str = "clevervisitor";
pub const PASSWORD: &str = "correct horse 42";
/// `openssl passwd -6 -salt cleverconsole 'correct horse 42'`.
const HASH: &str =
    "$6$cleverconsole$.1ZOglmPCA/ihMdp6jndxyquQkXiMbuj3/edsKHkQP5mBXZKxXE0aAzaJW1ow61BtDpIBJP9Ul0o5L3Pwet5k/";

/// The copies, in `dir`.
pub struct Accounts {
    dir: PathBuf,
}

impl Accounts {
    /// Copies `root`'s account files (`/`, or a lab node's `/proc/PID/root`) and adds the users.
    pub fn new(dir: &Path, root: &Path) -> Self {
        let etc = root.join("etc");
        let read = |name: &str| fs::read_to_string(etc.join(name)).unwrap();
        let mut passwd = read("passwd");
        let mut shadow = read("shadow");
        let group = read("group");
        assert!(
            group.lines().any(|l| l.starts_with("haclient:")),
            "no haclient group in {}: is pacemaker installed? (scripts/setup.sh)",
            etc.display()
        );
        passwd.push_str(&format!(
            "{ADMIN}:x:64011:64011:Clever admin:/nonexistent:/usr/sbin/nologin\n\
             {VISITOR}:x:64012:64012:Clever visitor:/nonexistent:/usr/sbin/nologin\n"
        ));
        shadow.push_str(&format!(
            "{ADMIN}:{HASH}:19000:0:99999:7:::\n{VISITOR}:{HASH}:19000:0:99999:7:::\n"
        ));
        let mut group: String = group
            .lines()
            .map(|line| {
                if line.starts_with("haclient:") {
                    let separator = if line.ends_with(':') { "" } else { "," };
                    format!("{line}{separator}{ADMIN}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        group.push_str(&format!("{ADMIN}:x:64011:\n{VISITOR}:x:64012:\n"));
        fs::create_dir_all(dir.join("pam.d")).unwrap();
        fs::write(dir.join("passwd"), passwd).unwrap();
        fs::write(dir.join("shadow"), shadow).unwrap();
        fs::write(dir.join("group"), group).unwrap();
        for entry in fs::read_dir(etc.join("pam.d")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                fs::copy(entry.path(), dir.join("pam.d").join(entry.file_name())).unwrap();
            }
        }
        let packaged =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/clever-console.pam");
        fs::copy(packaged, dir.join("pam.d/clever-console")).unwrap();
        Self {
            dir: dir.to_owned(),
        }
    }

    /// Starts `program` in a mount namespace of its own where the copies are over /etc's;
    /// inside the network, UTS and mount namespaces of process `enter` first, when given (a
    /// lab node). Its output goes to `log`.
    pub fn spawn(
        &self,
        program: &Path,
        args: &[String],
        enter: Option<i32>,
        log: &Path,
    ) -> Console {
        let binds: Vec<(CString, CString)> = ["passwd", "shadow", "group", "pam.d"]
            .iter()
            .map(|name| {
                (
                    CString::new(self.dir.join(name).as_os_str().as_bytes()).unwrap(),
                    CString::new(format!("/etc/{name}")).unwrap(),
                )
            })
            .collect();
        let namespaces: Vec<(fs::File, CloneFlags)> = enter
            .map(|pid| {
                [
                    ("net", CloneFlags::CLONE_NEWNET),
                    ("uts", CloneFlags::CLONE_NEWUTS),
                    ("mnt", CloneFlags::CLONE_NEWNS),
                ]
                .into_iter()
                .map(|(name, flag)| {
                    (
                        fs::File::open(format!("/proc/{pid}/ns/{name}")).unwrap(),
                        flag,
                    )
                })
                .collect()
            })
            .unwrap_or_default();
        let out = fs::File::create(log).unwrap();
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let root = CString::new("/").unwrap();
        let errno = |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
        #[allow(unsafe_code)]
        // SAFETY: the hook runs in the forked child before exec and makes only system calls
        // (setns, unshare, mount) on values prepared before the fork; it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                for (file, flag) in &namespaces {
                    setns(file, *flag).map_err(errno)?;
                }
                unshare(CloneFlags::CLONE_NEWNS).map_err(errno)?;
                mount(
                    None::<&std::ffi::CStr>,
                    root.as_c_str(),
                    None::<&std::ffi::CStr>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&std::ffi::CStr>,
                )
                .map_err(errno)?;
                for (source, target) in &binds {
                    mount(
                        Some(source.as_c_str()),
                        target.as_c_str(),
                        None::<&std::ffi::CStr>,
                        MsFlags::MS_BIND,
                        None::<&std::ffi::CStr>,
                    )
                    .map_err(errno)?;
                }
                Ok(())
            });
        }
        Console {
            child: command.spawn().unwrap(),
            log: log.to_owned(),
        }
    }
}

/// The console process; killed and reaped on drop.
pub struct Console {
    child: Child,
    pub log: PathBuf,
}

impl Console {
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready` holds, failing with the console's output if it exits first.
    pub fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Deadline::after(Duration::from_secs(30));
        loop {
            if ready() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "clever-console exited ({status}) before {what}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                !deadline.expired(),
                "{what}: not within 30 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now (the kernel's pick, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// curl with a cookie jar, trusting only the console's certificate; run through `runner`
/// (this machine, or inside a lab node).
pub struct Curl<R> {
    pub runner: R,
    pub base: String,
    pub certificate: PathBuf,
    pub dir: PathBuf,
}

impl<R: RunCommand> Curl<R> {
    pub fn request(&self, method: &str, path: &str, form: &[(&str, &str)]) -> Answer {
        let headers = self.dir.join("curl-headers");
        let jar = self.dir.join("curl-cookies");
        let mut command = CommandLine::new("curl")
            .args(["-sS", "--max-time", "60", "-X", method, "--cacert"])
            .arg(&self.certificate)
            .arg("-c")
            .arg(&jar)
            .arg("-b")
            .arg(&jar)
            .arg("-D")
            .arg(&headers)
            .args(["-w", "\n%{http_code}"]);
        for (name, value) in form {
            command = command
                .arg("--data-urlencode")
                .arg(format!("{name}={value}"));
        }
        if method == "POST" && form.is_empty() {
            command = command.args(["-d", ""]);
        }
        let output = self
            .runner
            .run(
                &command.arg(format!("{}{path}", self.base)),
                &Deadline::after(Duration::from_secs(90)),
            )
            .unwrap();
        let text = output.stdout_text();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        Answer {
            status: status.trim().parse().unwrap_or(0),
            headers: fs::read_to_string(&headers).unwrap_or_default(),
            body: body.to_owned(),
        }
    }

    /// The session's CSRF token, from the page.
    pub fn csrf(&self) -> String {
        let page = self.request("GET", "/", &[]);
        assert_eq!(page.status, 200, "{page:?}");
        crate::csrf_of(&page.body)
    }
}
