//! `ocf:clever:vm`: keeps one libvirt domain running and moves it between nodes by hibernating
//! it (libvirt managed save) on one node and resuming it on the other, so that open sessions
//! inside it survive.
//!
//! The domain is persistent and defined from an XML file on the shared filesystem; hibernation
//! images live on the VM's own shared filesystem too, reached from libvirt's fixed save
//! directory through one symlink per domain ([`save_link`]).
//! Every decision about an image is taken from the file itself, never from libvirt's per-daemon
//! "has managed save" cache, and an image is never deleted on a failure path.

mod error;
pub mod hypervisor;
pub mod image;
pub mod linked;
pub mod monitor;
pub mod process;
pub mod rpc;
pub mod save_link;
pub mod start;
pub mod stop;
pub mod validate;
pub mod xml;

/// The parameters and their first stage live in `clever-agent-params`, which the CIB generator
/// shares.
pub use clever_agent_params::vm as params;

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use clever_deadline::Deadline;
use clever_ocf::{
    run_dir, Action, ActionSpec, Agent, Context, Declaration, Handler, LockError, ParameterError,
    Parameters, ResourceLock,
};

pub use error::VmError;
use hypervisor::{FastStatus, Hypervisor, HypervisorError};
use params::{Settings, LIBVIRT_SAVE_DIR};

/// One `ocf:clever:vm` resource, from its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    pub settings: Settings,
}

impl Vm {
    /// The domain XML and the name it gives, checked against the `domain` parameter.
    pub fn read_config(&self) -> Result<(String, String), VmError> {
        self.read_identity()
            .map(|(xml, identity)| (xml, identity.name))
    }

    /// The domain XML and the identity it gives, for start and validate-all: there the XML must
    /// also carry a `<uuid>`. Without one every node's libvirt invents its own, a redefinition
    /// fails, and libvirt refuses to resume an image on the node that did not write it.
    pub fn read_config_with_uuid(&self) -> Result<(String, String, String), VmError> {
        let (xml, identity) = self.read_identity()?;
        match identity.uuid {
            Some(uuid) => Ok((xml, identity.name, uuid)),
            None => Err(VmError::ConfigInvalid {
                path: self.settings.config.as_path().to_path_buf(),
                reason: "it has no <uuid>: give the domain a fixed UUID (uuidgen), so that \
                         every node defines the same domain and can resume its images"
                    .to_owned(),
            }),
        }
    }

    fn read_identity(&self) -> Result<(String, xml::Identity), VmError> {
        let path = self.settings.config.as_path();
        let xml = read_config_file(path)?;
        let identity = xml::domain_identity(&xml).map_err(|reason| VmError::ConfigInvalid {
            path: path.to_path_buf(),
            reason,
        })?;
        if let Some(given) = &self.settings.domain {
            if *given != identity.name {
                return Err(VmError::NameMismatch {
                    given: given.clone(),
                    in_xml: identity.name,
                    path: path.to_path_buf(),
                });
            }
        }
        Ok((xml, identity))
    }

    /// The domain name: the `domain` parameter, else the config XML's `<name>`, else (config
    /// unreadable: shared filesystem gone) the name this node last started, from `run_dir`.
    /// `Ok(None)` when none of them gives one: then this node has not started the resource
    /// since it booted, and no qemu of it can be running here.
    pub fn domain_name(
        &self,
        host: &VmHost<'_>,
        instance: &str,
    ) -> Result<Option<String>, VmError> {
        if let Some(name) = &self.settings.domain {
            return Ok(Some(name.clone()));
        }
        match self.read_config() {
            Ok((_, name)) => Ok(Some(name)),
            Err(e @ VmError::ConfigUnreadable { .. }) => {
                let cached = read_started(&started_file(host, instance))
                    .map(|n| n.trim().to_owned())
                    .filter(|n| params::check_domain_name(n).is_ok());
                match &cached {
                    Some(name) => log::warn!("{e}; using {name}, the domain last started here"),
                    None => log::warn!("{e}; and this node has not started it since boot"),
                }
                Ok(cached)
            }
            Err(e) => Err(e),
        }
    }

    /// Remembers which domain this node started, for a stop or monitor without the config.
    pub fn remember_started(&self, host: &VmHost<'_>, instance: &str, name: &str) {
        let path = started_file(host, instance);
        let written = run_dir::create(&host.run_dir).and_then(|()| {
            // Never through a planted symlink; only root reads it.
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&path)
                .and_then(|mut file| file.write_all(name.as_bytes()))
        });
        if let Err(e) = written {
            log::warn!(
                "cannot record the started domain in {}: {e}",
                path.display()
            );
        }
    }
}

/// The domain name remembered in `path`: not through a symlink, not from anything but a small
/// regular file.
fn read_started(path: &Path) -> Option<String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(1024).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Largest domain XML accepted; libvirt's own limit is 10 MiB.
const MAX_CONFIG_LEN: u64 = 10 * 1024 * 1024;

/// Reads the domain XML, refusing what is not a regular file of sane size: `config` comes from
/// the CIB, and a FIFO would block the action, `/dev/zero` would fill the memory.
fn read_config_file(path: &Path) -> Result<String, VmError> {
    let unreadable = |source| VmError::ConfigUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let invalid = |reason: String| VmError::ConfigInvalid {
        path: path.to_path_buf(),
        reason,
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(invalid("it is not a regular file".to_owned()));
    }
    if meta.len() > MAX_CONFIG_LEN {
        return Err(invalid(format!(
            "it has {} bytes, more than a domain XML's {MAX_CONFIG_LEN}",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    String::from_utf8(bytes).map_err(|_| invalid("it is not UTF-8 text".to_owned()))
}

/// `run_dir/vm-<instance>.domain`, with the instance name made file-safe.
fn started_file(host: &VmHost<'_>, instance: &str) -> PathBuf {
    host.run_dir
        .join(format!("{}.domain", run_dir::file_name("vm", instance)))
}

/// How a handler opens the hypervisor: the real libvirt in production, a fake in unit tests.
pub type Connector = dyn Fn(&str, &Deadline) -> Result<Box<dyn Hypervisor>, HypervisorError>;

/// How the monitor asks for a domain's state without the C library; see
/// [`hypervisor::fast_status`]. Unit tests have none, so their fakes answer through `connect`.
pub type StatusQuery = dyn Fn(&str, &str, &Deadline) -> FastStatus;

/// The vm agent's seam to the machine: how libvirt is reached (which differs between the two
/// builds, see [`linked`]) and this host's paths. The framework builds it once per run
/// ([`Agent::host`]); unit tests build it with a fake connector.
pub struct VmHost<'a> {
    pub connect: &'a Connector,
    pub fast_status: Option<&'a StatusQuery>,
    /// `/proc`, where the domain's qemu is found without libvirt.
    pub proc_root: PathBuf,
    /// libvirt's managed-save directory, where each domain's image path is a link to its
    /// `hibernate_dir` ([`save_link`]).
    pub libvirt_save_dir: PathBuf,
    /// Node-local state that a reboot clears: the run's [`Context::run_dir`].
    pub run_dir: PathBuf,
}

impl fmt::Debug for VmHost<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VmHost")
            .field("proc_root", &self.proc_root)
            .field("libvirt_save_dir", &self.libvirt_save_dir)
            .field("run_dir", &self.run_dir)
            .finish_non_exhaustive()
    }
}

impl<'a> VmHost<'a> {
    /// This host: libvirt through `connect` (and `fast_status`, when given, for the monitor),
    /// the real `/proc`, the run directory of `context`.
    pub fn real(
        connect: &'a Connector,
        fast_status: Option<&'a StatusQuery>,
        context: &Context,
    ) -> Self {
        Self {
            connect,
            fast_status,
            proc_root: PathBuf::from("/proc"),
            libvirt_save_dir: PathBuf::from(LIBVIRT_SAVE_DIR),
            run_dir: context.run_dir.clone(),
        }
    }

    /// The same host, reaching libvirt another way: what the light build's start and stop act
    /// on once the hand-over to the linked build could not be done.
    pub fn connecting_through<'b>(
        &self,
        connect: &'b Connector,
        fast_status: Option<&'b StatusQuery>,
    ) -> VmHost<'b> {
        VmHost {
            connect,
            fast_status,
            proc_root: self.proc_root.clone(),
            libvirt_save_dir: self.libvirt_save_dir.clone(),
            run_dir: self.run_dir.clone(),
        }
    }
}

impl Vm {
    /// `hibernate_dir` exists here and is not on the root filesystem.
    pub fn check_hibernate_dir(&self) -> Result<(), VmError> {
        let path = self.settings.hibernate_dir.as_path();
        let missing = |source| VmError::HibernateDirMissing {
            path: path.to_path_buf(),
            source,
        };
        let meta = fs::metadata(path).map_err(missing)?;
        if !meta.is_dir() {
            return Err(missing(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        let root = fs::metadata("/").map_err(missing)?;
        if meta.dev() == root.dev() {
            return Err(VmError::HibernateDirOnRoot {
                path: path.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Points libvirt's managed-save path of `name` at its image in `hibernate_dir`
    /// ([`save_link`]); the caller has checked `hibernate_dir` ([`Self::check_hibernate_dir`]).
    pub fn link_image(&self, libvirt_save_dir: &Path, name: &str) -> Result<(), VmError> {
        let dir = self.settings.hibernate_dir.as_path();
        let (link, target) = save_link::paths(libvirt_save_dir, dir, name);
        match save_link::ensure(libvirt_save_dir, dir, name) {
            Ok(save_link::Linked::SameDirectory) => log::debug!(
                "{} is hibernate_dir itself (bind mount): no link needed",
                libvirt_save_dir.display()
            ),
            Ok(save_link::Linked::Already) => {}
            Ok(save_link::Linked::Made { replaced }) => match replaced {
                Some(was) => log::warn!(
                    "{} pointed at {}; it now points at {}",
                    link.display(),
                    was.display(),
                    target.display()
                ),
                None => log::info!("linked {} to {}", link.display(), target.display()),
            },
            Ok(save_link::Linked::KeptLocal { kept }) => log::error!(
                "A HIBERNATION IMAGE OF {name} WAS ON THIS NODE'S OWN DISK at {}: it is kept as                  {} (nothing was deleted) and is not resumed; {} now points at {}",
                link.display(),
                kept.display(),
                link.display(),
                target.display()
            ),
            Err(source) => return Err(VmError::SaveLink { link, target, source }),
        }
        Ok(())
    }
}

impl Agent for Vm {
    type Error = VmError;
    type Host = VmHost<'static>;

    fn configure(parameters: &Parameters) -> Result<Self, ParameterError> {
        Settings::from_parameters(parameters).map(|settings| Self { settings })
    }

    fn check_host(&self, context: &Context) -> Result<(), VmError> {
        // Only start needs the shared storage in place; stop and monitor must work without it
        // (a failed stop means fencing, a failed probe a wrong picture of the cluster).
        if context.action == Action::Start {
            self.check_hibernate_dir()?;
        }
        Ok(())
    }

    /// The light build's host: the monitor asks libvirt's remote protocol first and hands over
    /// to the linked build when it declines; start and stop hand over at once (see [`start`]).
    fn host(&self, context: &Context) -> VmHost<'static> {
        VmHost::real(
            &through_linked_build,
            Some(&hypervisor::fast_status),
            context,
        )
    }
}

impl AsRef<Vm> for Vm {
    fn as_ref(&self) -> &Vm {
        self
    }
}

/// start on `host`, one at a time per resource on this node.
pub fn start_on(
    vm: &Vm,
    context: &Context,
    host: &VmHost<'_>,
) -> Result<clever_ocf::Status, VmError> {
    // A configuration that start would refuse leaves nothing behind, not even the lock file.
    vm.read_config_with_uuid()?;
    let _lock = exclusive(host, &context.instance, &context.deadline, true)?;
    start::start(vm, context, host)
}

/// stop on `host`, one at a time per resource on this node (waiting for the lock at most half
/// the stop timeout).
pub fn stop_on(
    vm: &Vm,
    context: &Context,
    host: &VmHost<'_>,
) -> Result<clever_ocf::Status, VmError> {
    // Half the stop timeout at most: a hung holder must not turn this stop into fencing.
    let wait = context.deadline.capped(context.deadline.remaining() / 2);
    let _lock = exclusive(host, &context.instance, &wait, false)?;
    stop::stop(vm, context, host)
}

/// One start or stop of a resource at a time on this node ([`ResourceLock`]): two hibernations
/// of one domain would each take the other's image for a stale one. `required`: fail when it
/// cannot be had before `deadline` (start); otherwise go on with a warning (stop: a failed stop
/// is fencing). A lock that cannot even be opened (a read-only run directory) is only a warning
/// either way: it guards against an admin's mistake, and must not be one more way to fail.
fn exclusive(
    host: &VmHost<'_>,
    instance: &str,
    deadline: &Deadline,
    required: bool,
) -> Result<Option<ResourceLock>, VmError> {
    match ResourceLock::acquire(&host.run_dir, "vm", instance, deadline) {
        Ok(lock) => Ok(Some(lock)),
        Err(LockError::Deadline(e)) if required => Err(e.into()),
        Err(LockError::Deadline(e)) => {
            log::error!("{e}; stopping anyway");
            Ok(None)
        }
        Err(e @ (LockError::Open { .. } | LockError::Flock { .. })) => {
            log::warn!("{e}; going on unlocked");
            Ok(None)
        }
    }
}

// The light build's handlers (the `vm` binary): start and stop go to the libvirt-linked build
// at once, the monitor only when libvirt's remote protocol declines. When the linked build
// cannot be run, the action goes on as with libvirt unusable (see [`linked`]).

/// The light build's road to libvirt's C library: the hand-over, which returns only to say why
/// it could not be done.
fn through_linked_build(
    _uri: &str,
    deadline: &Deadline,
) -> Result<Box<dyn Hypervisor>, HypervisorError> {
    Err(HypervisorError::Library {
        message: linked::hand_over(deadline),
    })
}

/// Runs `action` on `host` with its libvirt unusable for `why`.
fn without_linked_build<T>(
    why: String,
    host: &VmHost<'_>,
    action: impl FnOnce(&VmHost<'_>) -> T,
) -> T {
    let unusable = move |_: &str, _: &Deadline| -> Result<Box<dyn Hypervisor>, HypervisorError> {
        Err(HypervisorError::Library {
            message: why.clone(),
        })
    };
    action(&host.connecting_through(&unusable, None))
}

/// Hands over before taking the resource's lock: the linked build takes it itself, and an
/// `exec` with the lock held would leave it waiting for its own former self.
fn start(
    vm: &Vm,
    context: &Context,
    host: &VmHost<'static>,
) -> Result<clever_ocf::Status, VmError> {
    let why = linked::hand_over(&context.deadline);
    without_linked_build(why, host, |host| start_on(vm, context, host))
}

fn stop(vm: &Vm, context: &Context, host: &VmHost<'static>) -> Result<clever_ocf::Status, VmError> {
    let why = linked::hand_over(&context.deadline);
    without_linked_build(why, host, |host| stop_on(vm, context, host))
}

fn monitor(
    vm: &Vm,
    context: &Context,
    host: &VmHost<'static>,
) -> Result<clever_ocf::Status, VmError> {
    monitor::monitor(vm, context, host)
}

/// validate-all needs no libvirt: the same in both builds.
fn validate_all<A: AsRef<Vm>>(
    agent: &A,
    context: &Context,
    host: &VmHost<'static>,
) -> Result<clever_ocf::Status, VmError> {
    validate::validate(agent.as_ref(), context, &host.libvirt_save_dir)
}

/// The actions Pacemaker sees, with one build's handlers for those that reach libvirt; names,
/// timeouts and intervals are the ones the agent advertises (`clever-agent-params`). Generic
/// over the agent type because each build is its own [`Agent`], differing only in the host it
/// builds (how it reaches libvirt).
pub const fn actions<A>(
    start: Handler<A>,
    stop: Handler<A>,
    monitor: Handler<A>,
) -> [ActionSpec<A>; 4]
where
    A: Agent<Error = VmError, Host = VmHost<'static>> + AsRef<Vm>,
{
    [
        params::START.with(start),
        params::STOP.with(stop),
        params::MONITOR.with(monitor),
        params::VALIDATE_ALL.with(validate_all::<A>),
    ]
}

/// The light build's actions.
static ACTIONS: [ActionSpec<Vm>; 4] = actions(start, stop, monitor);

/// Everything Pacemaker sees of `ocf:clever:vm`, as the `vm` binary answers it.
pub static DECLARATION: Declaration<Vm> = declaration(&ACTIONS);

/// Everything Pacemaker sees of `ocf:clever:vm`, with one build's actions: both builds answer
/// the same metadata.
pub const fn declaration<A: Agent>(actions: &'static [ActionSpec<A>]) -> Declaration<A> {
    Declaration {
        name: params::AGENT_NAME,
        version: env!("CARGO_PKG_VERSION"),
        shortdesc: "Keeps a libvirt VM running; moves it by hibernate and resume",
        longdesc:
            "Manages one persistent libvirt domain, defined at every start from the XML file \
        given by config. stop hibernates the VM (libvirt managed save) into hibernate_dir on \
        the VM's own shared filesystem, through a symlink from libvirt's fixed save directory \
        that start and stop make, and the next start, on this node or the other, resumes it with \
        its RAM, so that open sessions inside the VM survive a move. Whether an image exists \
        is decided from the file, never from libvirt's per-daemon 'has managed save' flag, \
        which is stale on shared storage; after a resume the agent checks that the domain runs \
        with reason 'restored' and only then is the image gone. An image that is partial, \
        truncated, empty or that libvirt fails to restore is never deleted: it is renamed to \
        NAME.save.kept-TIMESTAMP-REASON, logged as an error, and on_restore_failure decides \
        between a cold boot (default) and a failed start. If hibernation fails or runs out of \
        time, stop shuts the VM down gracefully and then powers it off; it succeeds only when \
        no qemu process of the domain is left, and it ends that process directly when libvirtd \
        is down. monitor asks libvirt through its API and spawns no process: running or \
        blocked is success, shut off is not running, crashed or paused by an I/O error is a \
        failure; when libvirt cannot tell, the qemu process is looked up in /proc, so a probe \
        never reports 'not running' while the VM lives. There is no live migration \
        (migrate_to/migrate_from): with single-Primary DRBD under the VM's disks a move is stop \
        (hibernate) followed by start (resume). meta-data needs no libvirt connection. Default \
        timeouts: start 180 s (a resume reads the whole image), stop 300 s (a hibernation \
        writes the whole RAM, with 60 s kept for a graceful shutdown and 10 s for power-off).",
        parameters: params::PARAMETERS,
        actions,
    }
}

#[cfg(test)]
pub(crate) mod fakes {
    //! A recording fake of the hypervisor seam and a scratch "shared filesystem" on /dev/shm,
    //! for the handlers' unit tests. The integration tests run the real libvirt.

    use std::cell::RefCell;
    use std::path::PathBuf;
    use std::rc::Rc;

    use clever_deadline::Deadline;

    use crate::hypervisor::{DomainStatus, Hypervisor, HypervisorError, SaveProgress, SaveWrites};
    use crate::hypervisor::{Reason, State};

    /// What the fake does when asked to start.
    #[derive(Debug, Clone)]
    pub enum OnStart {
        Becomes(DomainStatus),
        Fails,
    }

    #[derive(Debug, Default)]
    pub struct Fake {
        pub status: RefCell<Option<DomainStatus>>,
        pub on_start: RefCell<Vec<OnStart>>,
        pub save_fails: bool,
        pub obeys_shutdown: bool,
        /// status fails once start has been called (libvirtd went away mid-resume).
        pub status_fails_after_start: bool,
        /// A file that start deletes, as libvirt does with an image it boots past.
        pub start_deletes: Option<PathBuf>,
        /// Where a successful hibernation writes an image, following a symlink as libvirt does.
        pub save_writes: Option<PathBuf>,
        /// How each hibernation was asked to write its image.
        pub save_modes: RefCell<Vec<SaveWrites>>,
        pub calls: RefCell<Vec<&'static str>>,
    }

    #[derive(Debug, Clone)]
    pub struct Shared(pub Rc<Fake>);

    fn err(call: &'static str) -> HypervisorError {
        HypervisorError::Call {
            call,
            domain: "fake".to_owned(),
            message: "injected failure".to_owned(),
        }
    }

    impl Hypervisor for Shared {
        fn define(&self, _: &str) -> Result<(), HypervisorError> {
            self.0.calls.borrow_mut().push("define");
            let mut status = self.0.status.borrow_mut();
            if status.is_none() {
                *status = Some(DomainStatus::new(State::ShutOff, Reason::Other(0)));
            }
            Ok(())
        }
        fn status(&self, _: &str) -> Result<Option<DomainStatus>, HypervisorError> {
            if self.0.status_fails_after_start && self.0.calls.borrow().contains(&"start") {
                return Err(err("state"));
            }
            Ok(*self.0.status.borrow())
        }
        fn start(&self, _: &str) -> Result<(), HypervisorError> {
            self.0.calls.borrow_mut().push("start");
            if let Some(path) = &self.0.start_deletes {
                std::fs::remove_file(path).unwrap();
            }
            let next = self.0.on_start.borrow_mut().remove(0);
            match next {
                OnStart::Becomes(status) => {
                    *self.0.status.borrow_mut() = Some(status);
                    Ok(())
                }
                OnStart::Fails => Err(err("start")),
            }
        }
        fn resume(&self, _: &str) -> Result<(), HypervisorError> {
            self.0.calls.borrow_mut().push("resume");
            *self.0.status.borrow_mut() = Some(DomainStatus::new(State::Running, Reason::Unpaused));
            Ok(())
        }
        fn hibernate(
            &self,
            _: &str,
            writes: SaveWrites,
            _: &Deadline,
            progress: &mut dyn FnMut(SaveProgress),
        ) -> Result<(), HypervisorError> {
            self.0.calls.borrow_mut().push("hibernate");
            self.0.save_modes.borrow_mut().push(writes);
            progress(SaveProgress {
                processed: 1,
                total: 2,
            });
            if self.0.save_fails {
                return Err(err("managed save"));
            }
            if let Some(path) = &self.0.save_writes {
                std::fs::write(path, image_bytes()).unwrap();
            }
            *self.0.status.borrow_mut() = Some(DomainStatus::new(State::ShutOff, Reason::Saved));
            Ok(())
        }
        fn shutdown(&self, _: &str) -> Result<(), HypervisorError> {
            self.0.calls.borrow_mut().push("shutdown");
            if self.0.obeys_shutdown {
                *self.0.status.borrow_mut() =
                    Some(DomainStatus::new(State::ShutOff, Reason::Shutdown));
            }
            Ok(())
        }
        fn destroy(&self, _: &str) -> Result<(), HypervisorError> {
            self.0.calls.borrow_mut().push("destroy");
            *self.0.status.borrow_mut() =
                Some(DomainStatus::new(State::ShutOff, Reason::Destroyed));
            Ok(())
        }
    }

    /// A directory on /dev/shm (not the root filesystem), removed on drop.
    #[derive(Debug)]
    pub struct Scratch(pub PathBuf);

    impl Scratch {
        pub fn new(name: &str) -> Self {
            let dir = PathBuf::from("/dev/shm")
                .join(format!("clever-vm-unit-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub const UUID: &str = "6fb5ac16-4415-4ea6-b8d5-6f8223e0212b";

    /// A header-valid image of domain `clever` with [`UUID`].
    pub fn image_bytes() -> Vec<u8> {
        let xml = format!("<domain><name>clever</name><uuid>{UUID}</uuid></domain>");
        let data_len = u32::try_from(xml.len() + 8).unwrap();
        let mut bytes = crate::image::MAGIC_SAVE.to_vec();
        for word in [2, data_len, 1, 0, 0] {
            bytes.extend_from_slice(&u32::to_ne_bytes(word));
        }
        bytes.resize(92, 0);
        bytes.extend_from_slice(xml.as_bytes());
        bytes.resize(92 + data_len as usize, 0);
        bytes.extend_from_slice(b"QEVM\0\0\0\x03");
        bytes
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use super::fakes::{image_bytes, Fake, OnStart, Scratch, Shared, UUID};
    use super::*;
    use crate::hypervisor::{DomainStatus, Reason, State};
    use crate::params::{OnRestoreFailure, StopMethod};
    use clever_ocf::{AbsolutePath, HasExitCode, ParameterType, Status};

    #[test]
    fn declaration_has_no_problems() {
        assert_eq!(DECLARATION.problems(), Vec::<String>::new());
    }

    /// The generator reads this agent's parameters and timeouts from `clever-agent-params`.
    #[test]
    fn declaration_is_the_shared_table() {
        assert_eq!(
            params::AGENT.differences(&DECLARATION),
            Vec::<String>::new()
        );
    }

    fn vm(scratch: &Scratch, policy: OnRestoreFailure) -> Vm {
        let config = scratch.0.join("clever.xml");
        fs::write(
            &config,
            format!("<domain type='qemu'><name>clever</name><uuid>{UUID}</uuid></domain>"),
        )
        .unwrap();
        Vm {
            settings: Settings {
                config: AbsolutePath::parse(config.to_str().unwrap()).unwrap(),
                domain: None,
                uri: "fake:///".to_owned(),
                hibernate_dir: AbsolutePath::parse(scratch.0.to_str().unwrap()).unwrap(),
                stop_method: StopMethod::Hibernate,
                shutdown_timeout: Duration::from_secs(1),
                on_restore_failure: policy,
            },
        }
    }

    fn run<T>(
        fake: &Rc<Fake>,
        scratch: &Scratch,
        action: Action,
        probe: bool,
        handler: impl FnOnce(&Context, &VmHost<'_>) -> T,
    ) -> T {
        run_with_save_dir(fake, scratch, &scratch.0, action, probe, handler)
    }

    /// [`run`] with libvirt's save directory apart from the VM's `hibernate_dir`.
    fn run_with_save_dir<T>(
        fake: &Rc<Fake>,
        scratch: &Scratch,
        libvirt_save_dir: &Path,
        action: Action,
        probe: bool,
        handler: impl FnOnce(&Context, &VmHost<'_>) -> T,
    ) -> T {
        let shared = Shared(Rc::clone(fake));
        let connect =
            move |_: &str, _: &Deadline| -> Result<Box<dyn Hypervisor>, HypervisorError> {
                Ok(Box::new(shared.clone()))
            };
        let empty_proc = scratch.0.join("proc");
        fs::create_dir_all(&empty_proc).unwrap();
        let host = VmHost {
            connect: &connect,
            fast_status: None,
            proc_root: empty_proc,
            libvirt_save_dir: libvirt_save_dir.to_path_buf(),
            run_dir: scratch.0.join("run"),
        };
        let mut context = Context::for_test(action, Deadline::after(Duration::from_secs(30)));
        context.probe = probe;
        handler(&context, &host)
    }

    fn monitor_with(status: Option<DomainStatus>, probe: bool) -> Result<Status, VmError> {
        let scratch = Scratch::new("monitor");
        let vm = vm(&scratch, OnRestoreFailure::Boot);
        let fake = Rc::new(Fake {
            status: status.into(),
            ..Fake::default()
        });
        run(&fake, &scratch, Action::Monitor, probe, |c, h| {
            monitor::monitor(&vm, c, h)
        })
    }

    #[test]
    fn monitor_maps_states() {
        let s = |state, reason| Some(DomainStatus::new(state, reason));
        assert_eq!(
            monitor_with(s(State::Running, Reason::Restored), false).unwrap(),
            Status::Success
        );
        assert_eq!(
            monitor_with(s(State::Blocked, Reason::Other(0)), true).unwrap(),
            Status::Success
        );
        assert_eq!(
            monitor_with(s(State::ShutOff, Reason::Saved), true).unwrap(),
            Status::NotRunning
        );
        assert_eq!(monitor_with(None, true).unwrap(), Status::NotRunning);
        assert_eq!(
            monitor_with(s(State::ShutOff, Reason::Crashed), true).unwrap(),
            Status::NotRunning
        );
        let crashed = monitor_with(s(State::ShutOff, Reason::Crashed), false).unwrap_err();
        assert_eq!(crashed.exit_code().code(), 1);
        let io = monitor_with(s(State::Paused, Reason::IoError), false).unwrap_err();
        assert!(io.to_string().contains("I/O error"), "{io}");
        assert_eq!(
            monitor_with(s(State::Crashed, Reason::Crashed), true)
                .unwrap_err()
                .exit_code()
                .code(),
            1
        );
        assert!(matches!(
            monitor_with(s(State::Paused, Reason::User), false).unwrap(),
            Status::Degraded(_)
        ));
    }

    /// An image older than the running domain's qemu (resumed by `virsh start`, which removes
    /// only the link) is kept aside by the monitor; one written after qemu started (a
    /// hibernation under way) stays.
    #[test]
    fn monitor_keeps_an_image_older_than_the_running_qemu_aside() {
        use std::time::{SystemTime, UNIX_EPOCH};
        let scratch = Scratch::new("stale");
        let vm = vm(&scratch, OnRestoreFailure::Boot);
        let fake = Rc::new(Fake {
            status: Some(DomainStatus::new(State::Running, Reason::Restored)).into(),
            ..Fake::default()
        });
        // A qemu of the domain that started 1000 s after a boot 2000 s ago.
        let proc_root = scratch.0.join("proc");
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 2000;
        fs::create_dir_all(proc_root.join("4242")).unwrap();
        fs::write(proc_root.join("stat"), format!("cpu 1 2 3\nbtime {boot}\n")).unwrap();
        fs::write(
            proc_root.join("4242/cmdline"),
            "/usr/bin/qemu-system-x86_64\0-name\0guest=clever,debug-threads=on\0",
        )
        .unwrap();
        let ticks = 1000
            * nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .unwrap()
                .unwrap();
        let mut stat = "4242 (qemu-system-x86) S".to_owned();
        for field in 4..=21 {
            stat.push_str(&format!(" {field}"));
        }
        stat.push_str(&format!(" {ticks} 0 0"));
        fs::write(proc_root.join("4242/stat"), stat).unwrap();
        let qemu_started = UNIX_EPOCH + Duration::from_secs(boot + 1000);
        let image = scratch.0.join("clever.save");
        let monitor = || {
            run(&fake, &scratch, Action::Monitor, false, |c, h| {
                monitor::monitor(&vm, c, h)
            })
            .unwrap()
        };

        // Written after qemu started: a hibernation under way, left alone.
        fs::write(&image, image_bytes()).unwrap();
        assert_eq!(monitor(), Status::Success);
        assert!(image.exists());

        // Written before: stale, kept aside with its bytes, nothing deleted.
        fs::File::options()
            .write(true)
            .open(&image)
            .unwrap()
            .set_modified(qemu_started - Duration::from_secs(60))
            .unwrap();
        assert_eq!(monitor(), Status::Success);
        assert!(!image.exists());
        let kept: Vec<_> = fs::read_dir(&scratch.0)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".kept-"))
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].file_name().to_string_lossy().ends_with("-stale"));
        assert_eq!(fs::read(kept[0].path()).unwrap(), image_bytes());
    }

    /// The monitor takes the fast path's answer, and asks the library only when told to.
    #[test]
    fn monitor_routes_between_the_fast_path_and_the_library() {
        let scratch = Scratch::new("route");
        let vm = vm(&scratch, OnRestoreFailure::Boot);
        let empty_proc = scratch.0.join("proc");
        fs::create_dir_all(&empty_proc).unwrap();
        let fake = Rc::new(Fake {
            status: Some(DomainStatus::new(State::Running, Reason::Booted)).into(),
            ..Fake::default()
        });
        let shared = Shared(Rc::clone(&fake));
        let connect =
            move |_: &str, _: &Deadline| -> Result<Box<dyn Hypervisor>, HypervisorError> {
                Ok(Box::new(shared.clone()))
            };
        let context = Context::for_test(Action::Monitor, Deadline::after(Duration::from_secs(30)));
        let monitor_with = |fast: &StatusQuery| {
            let host = VmHost {
                connect: &connect,
                fast_status: Some(fast),
                proc_root: empty_proc.clone(),
                libvirt_save_dir: scratch.0.clone(),
                run_dir: scratch.0.join("run"),
            };
            monitor::monitor(&vm, &context, &host)
        };
        let shut_off = |_: &str, _: &str, _: &Deadline| {
            FastStatus::Answer(Ok(Some(DomainStatus::new(State::ShutOff, Reason::Saved))))
        };
        assert_eq!(monitor_with(&shut_off).unwrap(), Status::NotRunning);
        let down = |uri: &str, _: &str, _: &Deadline| {
            FastStatus::Answer(Err(HypervisorError::Unavailable {
                uri: uri.to_owned(),
                message: "down".to_owned(),
            }))
        };
        // libvirtd down and no qemu in /proc: not running, and the library is not asked.
        assert_eq!(monitor_with(&down).unwrap(), Status::NotRunning);
        let failed = |_: &str, name: &str, _: &Deadline| {
            FastStatus::Answer(Err(HypervisorError::Call {
                call: "state",
                domain: name.to_owned(),
                message: "internal error".to_owned(),
            }))
        };
        assert_eq!(monitor_with(&failed).unwrap_err().exit_code().code(), 1);
        let fallback = |_: &str, _: &str, _: &Deadline| FastStatus::Fallback("test".to_owned());
        // The fake library says running.
        assert_eq!(monitor_with(&fallback).unwrap(), Status::Success);
    }

    /// The light build without its libvirt-linked build: start is "not installed" with one
    /// line that says so, stop and the monitor go on as with libvirt unusable (`/proc`).
    #[test]
    fn without_the_linked_build_start_is_not_installed_and_stop_and_monitor_ask_proc() {
        let scratch = Scratch::new("nolinked");
        let vm = vm(&scratch, OnRestoreFailure::Boot);
        let proc_root = scratch.0.join("proc");
        fs::create_dir_all(&proc_root).unwrap();
        let why = linked::hand_over_from(
            &[scratch.0.join(linked::NAME)],
            &Deadline::after(Duration::from_secs(30)),
        );
        let unusable =
            move |_: &str, _: &Deadline| -> Result<Box<dyn Hypervisor>, HypervisorError> {
                Err(HypervisorError::Library {
                    message: why.clone(),
                })
            };
        let fallback = |_: &str, _: &str, _: &Deadline| FastStatus::Fallback("test".to_owned());
        let host = VmHost {
            connect: &unusable,
            fast_status: Some(&fallback),
            proc_root,
            libvirt_save_dir: scratch.0.clone(),
            run_dir: scratch.0.join("run"),
        };
        let context = |action| Context::for_test(action, Deadline::after(Duration::from_secs(30)));
        let err = start_on(&vm, &context(Action::Start), &host).unwrap_err();
        assert_eq!(err.exit_code().code(), 5, "{err}");
        let reason = err.to_string();
        assert!(
            reason.contains("vm-libvirt") && reason.contains("not installed"),
            "{reason}"
        );
        assert!(!reason.contains('\n'), "{reason}");
        vm.remember_started(&host, "test", "clever");
        assert_eq!(
            stop_on(&vm, &context(Action::Stop), &host).unwrap(),
            Status::Success
        );
        assert_eq!(
            monitor::monitor(&vm, &context(Action::Monitor), &host).unwrap(),
            Status::NotRunning
        );
    }

    /// Both builds answer the same metadata; only the handlers differ.
    #[test]
    fn another_builds_declaration_has_the_same_metadata() {
        fn other(_: &Vm, _: &Context, _: &VmHost<'static>) -> Result<Status, VmError> {
            Ok(Status::Success)
        }
        static OTHER: [ActionSpec<Vm>; 4] = actions(other, other, other);
        let linked = declaration(&OTHER);
        assert_eq!(linked.problems(), Vec::<String>::new());
        assert_eq!(
            clever_ocf::metadata_xml(&linked).unwrap(),
            clever_ocf::metadata_xml(&DECLARATION).unwrap()
        );
    }

    #[test]
    fn stop_falls_back_from_a_failed_save_to_shutdown_then_power_off() {
        let scratch = Scratch::new("stop");
        let vm = vm(&scratch, OnRestoreFailure::Boot);
        let fake = Rc::new(Fake {
            status: Some(DomainStatus::new(State::Running, Reason::Booted)).into(),
            save_fails: true,
            ..Fake::default()
        });
        let status = run(&fake, &scratch, Action::Stop, false, |c, h| {
            stop::stop(&vm, c, h)
        });
        assert_eq!(status.unwrap(), Status::Success);
        assert_eq!(*fake.calls.borrow(), ["hibernate", "shutdown", "destroy"]);

        let obeys = Rc::new(Fake {
            status: Some(DomainStatus::new(State::Running, Reason::Booted)).into(),
            save_fails: true,
            obeys_shutdown: true,
            ..Fake::default()
        });
        run(&obeys, &scratch, Action::Stop, false, |c, h| {
            stop::stop(&vm, c, h)
        })
        .unwrap();
        assert_eq!(*obeys.calls.borrow(), ["hibernate", "shutdown"]);
    }

    #[test]
    fn without_the_config_the_name_last_started_here_is_used() {
        let scratch = Scratch::new("noconfig");
        let vm = vm(&scratch, OnRestoreFailure::Boot);
        fs::remove_file(vm.settings.config.as_path()).unwrap();
        let running = || {
            Rc::new(Fake {
                status: Some(DomainStatus::new(State::Running, Reason::Booted)).into(),
                ..Fake::default()
            })
        };
        // Never started here since boot: stop has nothing to do, a probe says not running.
        let fake = running();
        let status = run(&fake, &scratch, Action::Stop, false, |c, h| {
            stop::stop(&vm, c, h)
        });
        assert_eq!(status.unwrap(), Status::Success);
        assert!(fake.calls.borrow().is_empty());
        let probe = run(&fake, &scratch, Action::Monitor, true, |c, h| {
            monitor::monitor(&vm, c, h)
        });
        assert_eq!(probe.unwrap(), Status::NotRunning);
        // Started here before: the remembered name is stopped.
        fs::create_dir_all(scratch.0.join("run")).unwrap();
        fs::write(scratch.0.join("run/vm-test.domain"), "clever").unwrap();
        let fake = running();
        let probe = run(&fake, &scratch, Action::Monitor, true, |c, h| {
            monitor::monitor(&vm, c, h)
        });
        assert_eq!(probe.unwrap(), Status::Success);
        run(&fake, &scratch, Action::Stop, false, |c, h| {
            stop::stop(&vm, c, h)
        })
        .unwrap();
        assert_eq!(*fake.calls.borrow(), ["hibernate"]);
    }

    #[test]
    fn the_remembered_name_is_never_written_or_read_through_a_symlink() {
        let scratch = Scratch::new("symlink");
        let vm = vm(&scratch, OnRestoreFailure::Boot);
        let victim = scratch.0.join("victim");
        fs::write(&victim, "precious").unwrap();
        let run = scratch.0.join("run");
        fs::create_dir_all(&run).unwrap();
        std::os::unix::fs::symlink(&victim, run.join("vm-test.domain")).unwrap();
        let connect = |_: &str, _: &Deadline| -> Result<Box<dyn Hypervisor>, HypervisorError> {
            Err(HypervisorError::Library {
                message: "unused".to_owned(),
            })
        };
        let host = VmHost {
            connect: &connect,
            fast_status: None,
            proc_root: scratch.0.join("proc"),
            libvirt_save_dir: scratch.0.clone(),
            run_dir: run.clone(),
        };
        vm.remember_started(&host, "test", "clever");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        // Config gone: the planted link is not taken for the name last started here.
        fs::remove_file(vm.settings.config.as_path()).unwrap();
        fs::write(&victim, "clever").unwrap();
        assert_eq!(vm.domain_name(&host, "test").unwrap(), None);
    }

    #[test]
    fn stop_keeps_a_stale_image_aside_before_hibernating() {
        let scratch = Scratch::new("stale");
        let vm = vm(&scratch, OnRestoreFailure::Boot);
        fs::write(scratch.0.join("clever.save"), b"old").unwrap();
        let fake = Rc::new(Fake {
            status: Some(DomainStatus::new(State::Running, Reason::Booted)).into(),
            ..Fake::default()
        });
        run(&fake, &scratch, Action::Stop, false, |c, h| {
            stop::stop(&vm, c, h)
        })
        .unwrap();
        assert_eq!(*fake.calls.borrow(), ["hibernate"]);
        let kept: Vec<_> = fs::read_dir(&scratch.0)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("-stale"))
            .collect();
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn failed_restore_keeps_the_image_and_cold_boots() {
        let scratch = Scratch::new("restore");
        let vm = vm(&scratch, OnRestoreFailure::Boot);
        fs::write(scratch.0.join("clever.save"), image_bytes()).unwrap();
        let fake = Rc::new(Fake {
            on_start: vec![
                OnStart::Fails,
                OnStart::Becomes(DomainStatus::new(State::Running, Reason::Booted)),
            ]
            .into(),
            ..Fake::default()
        });
        let status = run(&fake, &scratch, Action::Start, false, |c, h| {
            start::start(&vm, c, h)
        });
        assert_eq!(status.unwrap(), Status::Success);
        assert_eq!(*fake.calls.borrow(), ["define", "start", "start"]);
        let names: Vec<String> = fs::read_dir(&scratch.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n == "clever.save" || n.ends_with(".resuming")),
            "{names:?}"
        );
        let kept = names
            .iter()
            .find(|n| n.ends_with("-restore-failed"))
            .unwrap();
        assert_eq!(fs::read(scratch.0.join(kept)).unwrap(), image_bytes());
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_resume_leaves_no_image_and_no_hold_beside_the_running_domain() {
        let scratch = Scratch::new("leftover");
        let vm = vm(&scratch, OnRestoreFailure::Boot);
        let image = scratch.0.join("clever.save");
        // A hold left by an earlier interrupted resume, older than the image now there.
        fs::write(scratch.0.join("clever.save.resuming"), b"older").unwrap();
        fs::write(&image, image_bytes()).unwrap();
        let fake = Rc::new(Fake {
            on_start: vec![OnStart::Becomes(DomainStatus::new(
                State::Running,
                Reason::Restored,
            ))]
            .into(),
            start_deletes: Some(image.clone()),
            ..Fake::default()
        });
        let status = run(&fake, &scratch, Action::Start, false, |c, h| {
            start::start(&vm, c, h)
        });
        assert_eq!(status.unwrap(), Status::Success);
        let names = names_in(&scratch.0);
        assert!(
            !names
                .iter()
                .any(|n| n == "clever.save" || n.ends_with(".resuming")),
            "{names:?}"
        );
        // The older hold was not deleted, only renamed.
        assert!(
            names.iter().any(|n| n.ends_with("-interrupted")),
            "{names:?}"
        );

        // libvirt resumed (and consumed the image) but its state cannot be read back: the
        // start fails, and the hold is kept aside rather than left as a second image.
        fs::write(&image, image_bytes()).unwrap();
        let fake = Rc::new(Fake {
            on_start: vec![OnStart::Becomes(DomainStatus::new(
                State::Running,
                Reason::Restored,
            ))]
            .into(),
            start_deletes: Some(image),
            status_fails_after_start: true,
            ..Fake::default()
        });
        let failed = run(&fake, &scratch, Action::Start, false, |c, h| {
            start::start(&vm, c, h)
        });
        assert!(failed.is_err());
        let names = names_in(&scratch.0);
        assert!(
            !names
                .iter()
                .any(|n| n == "clever.save" || n.ends_with(".resuming")),
            "{names:?}"
        );
        let kept = names.iter().find(|n| n.ends_with("-unverified")).unwrap();
        assert_eq!(fs::read(scratch.0.join(kept)).unwrap(), image_bytes());
    }

    #[test]
    fn silent_cold_boot_is_caught_and_fail_policy_refuses() {
        let scratch = Scratch::new("silent");
        let vm = vm(&scratch, OnRestoreFailure::Fail);
        let image = scratch.0.join("clever.save");
        fs::write(&image, image_bytes()).unwrap();
        // libvirt boots instead of restoring and deletes the image: the hold keeps it.
        let fake = Rc::new(Fake {
            on_start: vec![OnStart::Becomes(DomainStatus::new(
                State::Running,
                Reason::Booted,
            ))]
            .into(),
            start_deletes: Some(image),
            ..Fake::default()
        });
        let err = run(&fake, &scratch, Action::Start, false, |c, h| {
            start::start(&vm, c, h)
        })
        .unwrap_err();
        assert_eq!(err.exit_code().code(), 6, "{err}");
        assert_eq!(*fake.calls.borrow(), ["define", "start", "destroy"]);
        let names: Vec<String> = fs::read_dir(&scratch.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.ends_with("-not-resumed")),
            "{names:?}"
        );
    }

    /// The per-domain link: the image goes to `hibernate_dir` through it, libvirt's removal of
    /// the managed-save path after a resume removes only the link, and the agent's own release
    /// removes the resumed image.
    #[test]
    fn hibernation_and_resume_go_through_the_link_to_hibernate_dir() {
        let scratch = Scratch::new("link");
        let hibernate_dir = scratch.0.join("hib");
        fs::create_dir_all(&hibernate_dir).unwrap();
        let mut vm = vm(&scratch, OnRestoreFailure::Boot);
        vm.settings.hibernate_dir = AbsolutePath::parse(hibernate_dir.to_str().unwrap()).unwrap();
        let libvirt = scratch.0.join("libvirt-save");
        let link = libvirt.join("clever.save");
        let image = hibernate_dir.join("clever.save");

        let fake = Rc::new(Fake {
            status: Some(DomainStatus::new(State::Running, Reason::Booted)).into(),
            save_writes: Some(link.clone()),
            ..Fake::default()
        });
        run_with_save_dir(&fake, &scratch, &libvirt, Action::Stop, false, |c, h| {
            stop::stop(&vm, c, h)
        })
        .unwrap();
        assert_eq!(*fake.calls.borrow(), ["hibernate"]);
        assert_eq!(fs::read_link(&link).unwrap(), image);
        assert_eq!(fs::read(&image).unwrap(), image_bytes());

        let fake = Rc::new(Fake {
            on_start: vec![OnStart::Becomes(DomainStatus::new(
                State::Running,
                Reason::Restored,
            ))]
            .into(),
            start_deletes: Some(link.clone()),
            ..Fake::default()
        });
        let status = run_with_save_dir(&fake, &scratch, &libvirt, Action::Start, false, |c, h| {
            start::start(&vm, c, h)
        });
        assert_eq!(status.unwrap(), Status::Success);
        assert_eq!(*fake.calls.borrow(), ["define", "start"]);
        // The resumed image is gone, and so is its hold; nothing else was there to remove.
        assert_eq!(names_in(&hibernate_dir), Vec::<String>::new());
        // The link libvirt removed after the restore is made again.
        assert_eq!(fs::read_link(&link).unwrap(), image);
    }

    /// With `hibernate_dir` unmounted (missing here) stop writes no image anywhere: it falls
    /// back to shutdown and power-off, and libvirt's directory gains nothing.
    #[test]
    fn stop_never_hibernates_without_hibernate_dir() {
        let scratch = Scratch::new("unmounted");
        let mut vm = vm(&scratch, OnRestoreFailure::Boot);
        let gone = scratch.0.join("not-mounted/hib");
        vm.settings.hibernate_dir = AbsolutePath::parse(gone.to_str().unwrap()).unwrap();
        let libvirt = scratch.0.join("libvirt-save");
        fs::create_dir_all(&libvirt).unwrap();
        // A link from an earlier run on this node now dangles.
        std::os::unix::fs::symlink(gone.join("clever.save"), libvirt.join("clever.save")).unwrap();
        let fake = Rc::new(Fake {
            status: Some(DomainStatus::new(State::Running, Reason::Booted)).into(),
            ..Fake::default()
        });
        run_with_save_dir(&fake, &scratch, &libvirt, Action::Stop, false, |c, h| {
            stop::stop(&vm, c, h)
        })
        .unwrap();
        assert_eq!(*fake.calls.borrow(), ["shutdown", "destroy"]);
        assert!(!gone.exists());
        assert_eq!(names_in(&libvirt), ["clever.save"]);
        assert!(fs::symlink_metadata(libvirt.join("clever.save"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
