//! The parameters of `ocf:clever:vm` and the typed [`Settings`] built from them (stage one, pure).
//!
//! Defaults are what a plant admin wants from a VM that must keep running: hibernate on stop so
//! sessions survive a move, cold boot (keeping the image) when an image cannot be resumed, and
//! graceful shutdown then power-off only as fall-backs.

use std::time::Duration;

use clever_ocf::{
    choice, AbsolutePath, Action, Parameter, ParameterError, ParameterSpec, Parameters,
};

use crate::{AdvertisedAction, AgentParameters};

/// The type name: `ocf:clever:vm`.
pub const AGENT_NAME: &str = "vm";

/// A resume reads the whole image.
pub const START: AdvertisedAction = AdvertisedAction::new(Action::Start, 180);
/// A hibernation writes the whole RAM; 60 s are kept for a graceful shutdown, 10 s for power-off.
pub const STOP: AdvertisedAction = AdvertisedAction::new(Action::Stop, 300);
pub const MONITOR: AdvertisedAction = AdvertisedAction::new(Action::Monitor, 30)
    .interval(10)
    .depth(0);
pub const VALIDATE_ALL: AdvertisedAction = AdvertisedAction::new(Action::ValidateAll, 30);

/// Every action line of the metadata, in order.
pub static ACTIONS: &[AdvertisedAction] = &[START, STOP, MONITOR, VALIDATE_ALL];

/// Every parameter, in the order of the metadata.
pub static PARAMETERS: &[&dyn ParameterSpec] = &[
    &CONFIG,
    &DOMAIN,
    &HYPERVISOR,
    &HIBERNATE_DIR,
    &STOP_METHOD,
    &SHUTDOWN_TIMEOUT,
    &ON_RESTORE_FAILURE,
];

/// The agent as the generator checks it.
pub static AGENT: AgentParameters = AgentParameters {
    name: AGENT_NAME,
    parameters: PARAMETERS,
    actions: ACTIONS,
    configure,
};

fn configure(parameters: &Parameters) -> Result<(), ParameterError> {
    Settings::from_parameters(parameters).map(drop)
}

/// Where libvirt's QEMU driver writes and looks for managed-save images; no setting moves it.
pub const LIBVIRT_SAVE_DIR: &str = "/var/lib/libvirt/qemu/save";

/// Longest accepted `shutdown_timeout`.
pub const MAX_SHUTDOWN_TIMEOUT: u32 = 3600;

choice! {
    /// What `stop` tries first; each later step is the fall-back of the one before.
    pub enum StopMethod {
        /// Managed save (hibernate), then graceful shutdown, then power-off.
        Hibernate = "hibernate",
        /// Graceful shutdown, then power-off: the VM's RAM state is not kept.
        Shutdown = "shutdown",
        /// Power-off at once.
        Destroy = "destroy",
    }
}

choice! {
    /// What `start` does when a hibernation image exists but cannot be resumed.
    pub enum OnRestoreFailure {
        /// Keep the image aside and cold boot.
        Boot = "boot",
        /// Keep the image aside and fail the start so that an admin decides.
        Fail = "fail",
    }
}

pub static CONFIG: Parameter<AbsolutePath> = Parameter::new(
    "config",
    "Domain XML file",
    "Absolute path of the libvirt domain XML, normally on the shared filesystem. At every start \
     the persistent libvirt definition is created or refreshed from it (virsh define), so both \
     nodes always run the same definition. The file must name the domain (<name>) and give it \
     a fixed <uuid>: without one each node's libvirt invents its own UUID, and libvirt refuses \
     to resume an image written by a domain of another UUID.",
)
.required()
.unique();

pub static DOMAIN: Parameter<String> = Parameter::new(
    "domain",
    "Domain name",
    "The libvirt domain name. When empty, the <name> of the config XML is used; when that file \
     cannot be read (shared filesystem not mounted on this node), stop and monitor use the name \
     this node last started (kept in $HA_RSCTMP until reboot), and with none a stop succeeds \
     and a probe says not running, as nothing can run here. Setting it explicitly avoids the \
     question; it must match the XML.",
)
.unique();

pub static HYPERVISOR: Parameter<String> = Parameter::new(
    "hypervisor",
    "libvirt URI",
    "The libvirt connection URI. Only the QEMU system driver supports managed save at the fixed \
     path this agent checks; a socket may be given as qemu:///system?socket=/path.",
)
.default("qemu:///system");

pub static HIBERNATE_DIR: Parameter<AbsolutePath> = Parameter::new(
    "hibernate_dir",
    "Hibernation image directory (shared)",
    "Directory on the VM's own shared (DRBD) filesystem that holds its hibernation images \
     (NAME.save). libvirt always writes and reads managed-save images at \
     /var/lib/libvirt/qemu/save/NAME.save, so start and stop make that path a symlink to \
     NAME.save here (a file found there instead is kept aside, never deleted). libvirt follows \
     the link to save and restore, and removes only the link, never the image; any number of \
     VMs, each with its own directory, hibernate and resume on one node at once. A bind mount \
     of this directory over libvirt's (the former layout) is still accepted. stop hibernates \
     only when this directory exists and is not on the root filesystem (else it shuts the VM \
     down), so an image never lands on a node's own disk; validate-all refuses a directory on \
     the root filesystem, because an image there would not travel with the VM and a stale one \
     could later be resumed over newer disk contents. Images that cannot be resumed are kept \
     here as NAME.save.kept-TIMESTAMP-REASON and never deleted by the agent.",
)
.required();

pub static STOP_METHOD: Parameter<StopMethod> = Parameter::new(
    "stop_method",
    "How stop ends the VM",
    "hibernate (default): managed save, so the VM resumes with its RAM, open sessions and all, \
     where it starts next; if the save fails (full disk: the VM keeps running) or runs out of \
     time, graceful shutdown, then power-off. shutdown: graceful shutdown, then power-off. \
     destroy: power-off at once. Every step is bounded by the stop timeout; stop returns \
     success only when no qemu process of the domain is left. Values: hibernate, shutdown, \
     destroy.",
)
.default("hibernate");

pub static SHUTDOWN_TIMEOUT: Parameter<u32> = Parameter::new(
    "shutdown_timeout",
    "Seconds kept for graceful shutdown",
    "Seconds of the stop timeout kept back for a graceful shutdown when hibernation fails; the \
     hibernation gets the rest of the stop timeout less 10 seconds for the power-off. The \
     default of 60 s lets a server OS shut down cleanly; with the default stop timeout of 300 s \
     a hibernation may take up to 230 s (several GiB of RAM at disk speed).",
)
.default("60");

pub static ON_RESTORE_FAILURE: Parameter<OnRestoreFailure> = Parameter::new(
    "on_restore_failure",
    "What start does with an image that cannot be resumed",
    "An image that is partial, truncated, empty, for another domain or that libvirt fails to \
     restore is never deleted: it is renamed to NAME.save.kept-TIMESTAMP-REASON and logged as \
     an error. Then boot (default) cold-boots the VM, because the plant needs its server \
     running and the kept image stays available for analysis; fail makes start fail with \
     OCF_ERR_CONFIGURED, so the cluster starts the VM nowhere until an admin has looked and \
     cleaned up the resource (which then cold boots). Values: boot, fail.",
)
.default("boot");

/// The configuration of one `ocf:clever:vm` resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub config: AbsolutePath,
    pub domain: Option<String>,
    pub uri: String,
    pub hibernate_dir: AbsolutePath,
    pub stop_method: StopMethod,
    pub shutdown_timeout: Duration,
    pub on_restore_failure: OnRestoreFailure,
}

impl Settings {
    pub fn from_parameters(parameters: &Parameters) -> Result<Self, ParameterError> {
        let domain = DOMAIN.optional(parameters)?;
        if let Some(name) = &domain {
            check_domain_name(name)
                .map_err(|reason| ParameterError::invalid(DOMAIN.name(), name, reason))?;
        }
        let uri = HYPERVISOR.get(parameters)?;
        check_uri(&uri).map_err(|reason| {
            ParameterError::invalid(HYPERVISOR.name(), &uri.escape_default().to_string(), reason)
        })?;
        let shutdown_timeout = SHUTDOWN_TIMEOUT.get(parameters)?;
        if shutdown_timeout > MAX_SHUTDOWN_TIMEOUT {
            return Err(ParameterError::invalid(
                SHUTDOWN_TIMEOUT.name(),
                &shutdown_timeout.to_string(),
                format!("must be at most {MAX_SHUTDOWN_TIMEOUT}"),
            ));
        }
        Ok(Self {
            config: CONFIG.get(parameters)?,
            domain,
            uri,
            hibernate_dir: HIBERNATE_DIR.get(parameters)?,
            stop_method: STOP_METHOD.get(parameters)?,
            shutdown_timeout: Duration::from_secs(u64::from(shutdown_timeout)),
            on_restore_failure: ON_RESTORE_FAILURE.get(parameters)?,
        })
    }
}

/// The local QEMU system driver (`qemu:///system` or `qemu+unix:///system`, with any options
/// after `?`, such as `socket=`): its managed-save images are the files in this node's
/// `/var/lib/libvirt/qemu/save` that the agent inspects and keeps aside. Another host (ssh, tls,
/// tcp) would write them where the agent cannot see them and open a network connection as
/// root from a CIB value; the session driver saves elsewhere.
pub fn check_uri(uri: &str) -> Result<(), String> {
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a libvirt URI has no spaces or control characters".to_owned());
    }
    let local_system = uri
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "qemu" | "qemu+unix"))
        .map(|(_, rest)| rest.split_once('?').map_or(rest, |(path, _)| path))
        == Some("/system");
    if local_system {
        Ok(())
    } else {
        Err(
            "must be the local QEMU system driver, qemu:///system (optionally \
             ?socket=/path): managed-save images are read and kept aside on this node"
                .to_owned(),
        )
    }
}

/// A domain name becomes a file name (`NAME.save`) and a qemu argument: no path separators, no
/// control characters, not `.` or `..`, and libvirt's own limit of 255 bytes.
pub fn check_domain_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err("must be 1 to 255 bytes".to_owned());
    }
    if name == "." || name == ".." || name.contains('/') || name.chars().any(char::is_control) {
        return Err("must not contain '/' or control characters, nor be '.' or '..'".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ParameterError> {
        let params = Parameters::load(PARAMETERS, |key| {
            pairs
                .iter()
                .find(|(k, _)| format!("OCF_RESKEY_{k}") == key)
                .map(|(_, v)| OsString::from(*v))
        })?;
        Settings::from_parameters(&params)
    }

    #[test]
    fn defaults() {
        let s = load(&[
            ("config", "/srv/vm/clever.xml"),
            ("hibernate_dir", "/srv/vm/hib"),
        ])
        .unwrap();
        assert_eq!(s.uri, "qemu:///system");
        assert_eq!(s.domain, None);
        assert_eq!(s.stop_method, StopMethod::Hibernate);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(60));
        assert_eq!(s.on_restore_failure, OnRestoreFailure::Boot);
    }

    #[test]
    fn local_system_uris_are_accepted() {
        for uri in [
            "qemu:///system",
            "qemu+unix:///system",
            "qemu:///system?socket=/run/lab/libvirt-sock",
            "qemu:///system?socket=/x&mode=legacy",
        ] {
            assert_eq!(check_uri(uri), Ok(()), "{uri}");
        }
    }

    #[test]
    fn refusals() {
        let base = [
            ("config", "/srv/vm/clever.xml"),
            ("hibernate_dir", "/srv/vm/hib"),
        ];
        assert!(load(&[("config", "/srv/vm/clever.xml")]).is_err());
        for bad in [
            ("domain", "a/b"),
            ("domain", ".."),
            ("stop_method", "suspend"),
            ("on_restore_failure", "delete"),
            ("shutdown_timeout", "99999"),
            ("hypervisor", "qemu:///system x"),
            ("hypervisor", "qemu+ssh://root@evil/system"),
            ("hypervisor", "qemu://evil/system"),
            ("hypervisor", "qemu:///session"),
            ("hypervisor", "xen:///system"),
            ("hypervisor", "qemu:///system/../session"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push(bad);
            assert!(load(&pairs).is_err(), "{bad:?}");
        }
    }
}
