//! stop: unmount, ending whoever keeps the filesystem busy, and say 0 only when it is gone.

use std::time::Duration;

use clever_command::RunCommand;
use clever_deadline::Deadline;
use clever_drbd::DrbdStatusSource;
use clever_mounts::Holder;
use clever_ocf::Status;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::DrbdfsError;
use crate::filesystem::{is_mount_of, mounted_at, unmount};
use crate::host::{DrbdfsHost, Syscalls};
use crate::params::{Config, ForceUnmount};

/// How long holders get to react to TERM before KILL, at most.
const TERM_GRACE: Duration = Duration::from_secs(5);

pub fn stop<R: RunCommand, D: DrbdStatusSource, S: Syscalls>(
    config: &Config,
    host: &DrbdfsHost<R, D, S>,
    deadline: &Deadline,
) -> Result<Status, DrbdfsError> {
    let directory = config.directory.as_path();
    let mut terminated_at: Option<std::time::Instant> = None;
    let mut last_holders: Vec<Holder>;
    loop {
        let Some(entry) = mounted_at(host, directory)? else {
            log::info!("{} is not mounted", config.directory);
            return Ok(Status::Success);
        };
        if !is_mount_of(&entry, config.device.as_path()) {
            log::warn!(
                "{} has {} mounted, not {}: leaving it alone",
                config.directory,
                entry.source,
                config.device
            );
            return Ok(Status::Success);
        }
        match unmount(&host.syscalls, directory) {
            Ok(()) => {
                log::info!("unmounted {}", config.directory);
                continue;
            }
            Err(Errno::EBUSY) => {}
            // Gone between our look and the call: look again.
            Err(Errno::EINVAL | Errno::ENOENT) => continue,
            Err(errno) => {
                return Err(DrbdfsError::Unmount {
                    directory: directory.to_owned(),
                    errno,
                })
            }
        }
        last_holders = host.syscalls.holders(directory);
        if deadline.expired() {
            break;
        }
        if config.force_unmount == ForceUnmount::Refuse && !last_holders.is_empty() {
            break;
        }
        let signal = match terminated_at {
            Some(at) if at.elapsed() >= TERM_GRACE.min(deadline.timeout() / 4) => Signal::SIGKILL,
            Some(_) => {
                std::thread::sleep(Duration::from_millis(100).min(deadline.remaining()));
                continue;
            }
            None => Signal::SIGTERM,
        };
        if signal == Signal::SIGTERM {
            terminated_at = Some(std::time::Instant::now());
        }
        for holder in &last_holders {
            log::warn!(
                "{} busy: sending {signal} to {} (pid {}, {:?} {})",
                config.directory,
                holder.command,
                holder.pid,
                holder.how,
                holder.path.display()
            );
            if let Some(pid) = signalable(holder.pid) {
                // A holder that exited already is what we wanted.
                let _ = host.syscalls.kill(pid, signal);
            }
        }
        std::thread::sleep(Duration::from_millis(50).min(deadline.remaining()));
    }
    let holders = if last_holders.is_empty() {
        "no holder found in /proc (a kernel user such as a nested mount or swap file?)".to_owned()
    } else {
        last_holders
            .iter()
            .map(|h| format!("{} (pid {})", h.command, h.pid))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(DrbdfsError::StillBusy {
        directory: directory.to_owned(),
        holders,
    })
}

/// The pid to signal for a holder, unless it is init, this agent, or not a pid at all: the
/// scan already leaves those out, and this keeps it so whatever the scan returned, since
/// `kill(0)` and `kill(-1)` would reach a whole group or every process.
fn signalable(pid: u32) -> Option<Pid> {
    if pid <= 1 || pid == std::process::id() {
        return None;
    }
    i32::try_from(pid).ok().map(Pid::from_raw)
}

#[cfg(test)]
mod tests {
    //! stop's TERM → KILL sequence against a recording fake of the kernel calls: no root, no
    //! real mount, no real process. The integration tests run the same code on loop devices.

    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::path::{Path, PathBuf};

    use clever_command::HostCommands;
    use clever_drbd::{HostDrbd, Promotion};
    use clever_mounts::HoldKind;
    use clever_ocf::{AbsolutePath, HasExitCode, ParameterType};
    use nix::mount::MntFlags;

    use super::*;
    use crate::params::Fsck;

    const DEVICE: &str = "/dev/clever-fake0";
    const DIRECTORY: &str = "/srv/clever-fake";

    /// Which signal ends a fake holder.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Dies {
        OnTerm,
        OnKill,
        Never,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        Umount(PathBuf, MntFlags),
        Kill(i32, Signal),
        Holders,
    }

    /// The kernel as stop sees it: a mount busy while any holder lives, holders that die on
    /// the signal they are told to, errno values injected before that logic, every call kept.
    #[derive(Debug)]
    struct FakeSyscalls {
        /// The mountinfo the host reads; a successful unmount empties it.
        mountinfo: PathBuf,
        holders: RefCell<Vec<(u32, Dies)>>,
        /// Answered by the next unmount attempts, one each, before the busy check.
        injected: RefCell<VecDeque<Errno>>,
        calls: RefCell<Vec<Call>>,
    }

    impl Syscalls for FakeSyscalls {
        fn umount(&self, target: &Path, flags: MntFlags) -> Result<(), Errno> {
            self.calls
                .borrow_mut()
                .push(Call::Umount(target.to_owned(), flags));
            if let Some(errno) = self.injected.borrow_mut().pop_front() {
                return Err(errno);
            }
            if !self.holders.borrow().is_empty() {
                return Err(Errno::EBUSY);
            }
            std::fs::write(&self.mountinfo, "").map_err(|_| Errno::EIO)
        }

        fn kill(&self, pid: Pid, signal: Signal) -> Result<(), Errno> {
            self.calls
                .borrow_mut()
                .push(Call::Kill(pid.as_raw(), signal));
            let mut holders = self.holders.borrow_mut();
            let before = holders.len();
            holders.retain(|&(holder, dies)| {
                i64::from(holder) != i64::from(pid.as_raw())
                    || !matches!(
                        (dies, signal),
                        (Dies::OnTerm, _) | (Dies::OnKill, Signal::SIGKILL)
                    )
            });
            let known = before != holders.len()
                || holders
                    .iter()
                    .any(|&(holder, _)| i64::from(holder) == i64::from(pid.as_raw()));
            if known {
                Ok(())
            } else {
                Err(Errno::ESRCH)
            }
        }

        fn holders(&self, mount: &Path) -> Vec<Holder> {
            self.calls.borrow_mut().push(Call::Holders);
            self.holders
                .borrow()
                .iter()
                .map(|&(pid, _)| Holder {
                    pid,
                    command: format!("holder{pid}"),
                    how: HoldKind::OpenFile,
                    path: mount.join("file"),
                })
                .collect()
        }
    }

    /// A scratch `/proc` whose `self/mountinfo` shows [`DEVICE`] mounted on [`DIRECTORY`].
    struct Bench {
        proc_root: PathBuf,
    }

    impl Bench {
        fn new(name: &str) -> Self {
            let proc_root = std::env::temp_dir()
                .join(format!("clever-drbdfs-stop-{name}-{}", std::process::id()));
            std::fs::create_dir_all(proc_root.join("self")).unwrap();
            std::fs::write(
                proc_root.join("self/mountinfo"),
                format!("36 35 253:0 / {DIRECTORY} rw,noatime shared:1 - ext4 {DEVICE} rw\n"),
            )
            .unwrap();
            Self { proc_root }
        }

        fn host(
            &self,
            holders: &[(u32, Dies)],
            injected: &[Errno],
        ) -> DrbdfsHost<HostCommands, HostDrbd<HostCommands>, FakeSyscalls> {
            DrbdfsHost {
                commands: HostCommands,
                drbd: HostDrbd::new(HostCommands),
                syscalls: FakeSyscalls {
                    mountinfo: self.proc_root.join("self/mountinfo"),
                    holders: RefCell::new(holders.to_vec()),
                    injected: RefCell::new(injected.iter().copied().collect()),
                    calls: RefCell::default(),
                },
                root: PathBuf::from("/"),
                proc_root: self.proc_root.clone(),
            }
        }
    }

    impl Drop for Bench {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.proc_root);
        }
    }

    fn config(force_unmount: ForceUnmount) -> Config {
        Config {
            device: AbsolutePath::parse(DEVICE).unwrap(),
            directory: AbsolutePath::parse(DIRECTORY).unwrap(),
            fstype: "ext4".to_owned(),
            options: None,
            drbd_resource: None,
            promotion: Promotion::Explicit,
            fsck: Fsck::Never,
            force_unmount,
        }
    }

    fn within(millis: u64) -> Deadline {
        Deadline::after(Duration::from_millis(millis))
    }

    fn kills(syscalls: &FakeSyscalls) -> Vec<(i32, Signal)> {
        syscalls
            .calls
            .borrow()
            .iter()
            .filter_map(|call| match call {
                Call::Kill(pid, signal) => Some((*pid, *signal)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_idle_mount_is_unmounted_without_following_symlinks_and_no_one_is_signalled() {
        let bench = Bench::new("idle");
        let host = bench.host(&[], &[]);
        let status = stop(&config(ForceUnmount::Kill), &host, &within(2000)).unwrap();
        assert_eq!(status, Status::Success);
        assert_eq!(
            *host.syscalls.calls.borrow(),
            [Call::Umount(
                PathBuf::from(DIRECTORY),
                MntFlags::UMOUNT_NOFOLLOW
            )]
        );
    }

    /// Busy → TERM → still busy after the grace → KILL → unmounted.
    #[test]
    fn a_holder_that_ignores_term_gets_kill_after_the_grace() {
        let bench = Bench::new("kill");
        let host = bench.host(&[(4242, Dies::OnKill)], &[]);
        let started = std::time::Instant::now();
        let status = stop(&config(ForceUnmount::Kill), &host, &within(2000)).unwrap();
        assert_eq!(status, Status::Success);
        assert_eq!(
            kills(&host.syscalls),
            [(4242, Signal::SIGTERM), (4242, Signal::SIGKILL)]
        );
        // The grace of a 2 s stop is a quarter of it.
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert!(matches!(
            host.syscalls.calls.borrow().last(),
            Some(Call::Umount(..))
        ));
        assert_eq!(
            std::fs::read_to_string(bench.proc_root.join("self/mountinfo")).unwrap(),
            ""
        );
    }

    /// Holders that exit on TERM get no KILL; the one that stays does.
    #[test]
    fn holders_that_vanish_after_term_get_no_kill() {
        let bench = Bench::new("vanish");
        let host = bench.host(&[(4242, Dies::OnTerm), (4343, Dies::OnKill)], &[]);
        let status = stop(&config(ForceUnmount::Kill), &host, &within(2000)).unwrap();
        assert_eq!(status, Status::Success);
        assert_eq!(
            kills(&host.syscalls),
            [
                (4242, Signal::SIGTERM),
                (4343, Signal::SIGTERM),
                (4343, Signal::SIGKILL)
            ]
        );

        let bench = Bench::new("vanish-all");
        let host = bench.host(&[(4242, Dies::OnTerm)], &[]);
        let status = stop(&config(ForceUnmount::Kill), &host, &within(2000)).unwrap();
        assert_eq!(status, Status::Success);
        assert_eq!(kills(&host.syscalls), [(4242, Signal::SIGTERM)]);
    }

    /// A mount busy past the deadline fails the stop (1), naming who holds it.
    #[test]
    fn a_mount_busy_past_the_deadline_fails_naming_its_holders() {
        let bench = Bench::new("deadline");
        let host = bench.host(&[(4242, Dies::Never)], &[]);
        let err = stop(&config(ForceUnmount::Kill), &host, &within(800)).unwrap_err();
        assert!(
            matches!(&err, DrbdfsError::StillBusy { holders, .. } if holders == "holder4242 (pid 4242)"),
            "{err}"
        );
        assert_eq!(err.exit_code().code(), 1);
        let kills = kills(&host.syscalls);
        assert_eq!(kills.first(), Some(&(4242, Signal::SIGTERM)));
        assert!(kills.contains(&(4242, Signal::SIGKILL)), "{kills:?}");
        assert!(
            std::fs::read_to_string(bench.proc_root.join("self/mountinfo"))
                .unwrap()
                .contains(DIRECTORY)
        );
    }

    /// `force_unmount=no`: a busy mount fails the stop at once and no one is signalled.
    #[test]
    fn refusing_to_force_signals_no_one() {
        let bench = Bench::new("refuse");
        let host = bench.host(&[(4242, Dies::OnTerm)], &[]);
        let err = stop(&config(ForceUnmount::Refuse), &host, &within(2000)).unwrap_err();
        assert!(matches!(err, DrbdfsError::StillBusy { .. }), "{err}");
        assert_eq!(kills(&host.syscalls), []);
    }

    /// EINVAL (unmounted between the look and the call) looks again; any other errno but
    /// EBUSY fails the stop with it.
    #[test]
    fn unmount_errnos() {
        let bench = Bench::new("einval");
        let host = bench.host(&[], &[Errno::EINVAL]);
        let status = stop(&config(ForceUnmount::Kill), &host, &within(2000)).unwrap();
        assert_eq!(status, Status::Success);
        assert_eq!(host.syscalls.calls.borrow().len(), 2);

        let bench = Bench::new("eperm");
        let host = bench.host(&[(4242, Dies::OnTerm)], &[Errno::EPERM]);
        let err = stop(&config(ForceUnmount::Kill), &host, &within(2000)).unwrap_err();
        assert!(
            matches!(
                err,
                DrbdfsError::Unmount {
                    errno: Errno::EPERM,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.exit_code().code(), 1);
        assert_eq!(kills(&host.syscalls), []);
    }

    /// Whatever the scan returns, init, pid 0 (the whole group) and the agent itself are never
    /// signalled.
    #[test]
    fn init_the_group_and_the_agent_itself_are_never_signalled() {
        let bench = Bench::new("self");
        let own = std::process::id();
        let host = bench.host(
            &[
                (0, Dies::Never),
                (1, Dies::Never),
                (own, Dies::Never),
                (4242, Dies::OnTerm),
            ],
            &[],
        );
        let err = stop(&config(ForceUnmount::Kill), &host, &within(800)).unwrap_err();
        assert!(matches!(err, DrbdfsError::StillBusy { .. }), "{err}");
        assert_eq!(kills(&host.syscalls), [(4242, Signal::SIGTERM)]);
    }
}
