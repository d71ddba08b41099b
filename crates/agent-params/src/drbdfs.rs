//! The parameters of `ocf:clever:drbdfs`, the typed configuration built from them, and the
//! action timeouts it advertises.

use clever_drbd::Promotion;
use clever_ocf::{
    choice, AbsolutePath, Action, Parameter, ParameterError, ParameterSpec, Parameters,
};

use crate::{AdvertisedAction, AgentParameters};

/// The type name: `ocf:clever:drbdfs`.
pub const AGENT_NAME: &str = "drbdfs";

pub const START: AdvertisedAction = AdvertisedAction::new(Action::Start, 60);
pub const STOP: AdvertisedAction = AdvertisedAction::new(Action::Stop, 60);
/// The monitor a CIB runs: whether the filesystem is mounted and DRBD allows it.
pub const MONITOR: AdvertisedAction = AdvertisedAction::new(Action::Monitor, 40)
    .interval(20)
    .depth(0);
/// The deeper monitor: also reads the device's first block.
pub const MONITOR_READ: AdvertisedAction = AdvertisedAction::new(Action::Monitor, 40)
    .interval(61)
    .depth(10);
pub const VALIDATE_ALL: AdvertisedAction = AdvertisedAction::new(Action::ValidateAll, 20);

/// Every action line of the metadata, in order.
pub static ACTIONS: &[AdvertisedAction] = &[START, STOP, MONITOR, MONITOR_READ, VALIDATE_ALL];

/// Every parameter, in the order of the metadata.
pub static PARAMETERS: &[&dyn ParameterSpec] = &[
    &DEVICE,
    &DIRECTORY,
    &FSTYPE,
    &OPTIONS,
    &DRBD_RESOURCE,
    &DRBD_PROMOTION,
    &FSCK,
    &FORCE_UNMOUNT,
];

/// The agent as the generator checks it.
pub static AGENT: AgentParameters = AgentParameters {
    name: AGENT_NAME,
    parameters: PARAMETERS,
    actions: ACTIONS,
    configure,
};

fn configure(parameters: &Parameters) -> Result<(), ParameterError> {
    Config::from_parameters(parameters).map(drop)
}

choice! {
    /// When to check the filesystem before mounting.
    pub enum Fsck {
        /// Only filesystems without a journal; journaled ones recover on mount.
        Auto = "auto",
        Force = "force",
        Never = "no",
    }
}

choice! {
    /// What stop does with processes that keep the filesystem busy.
    pub enum ForceUnmount {
        /// TERM, then KILL, within the stop timeout.
        Kill = "yes",
        /// Never signal anyone: a busy filesystem fails the stop (and Pacemaker fences).
        Refuse = "no",
    }
}

choice! {
    /// How the DRBD resource becomes Primary.
    pub enum DrbdPromotion {
        /// Pacemaker promotes it (ocf:linbit:drbd promotable clone): mount only on a Primary.
        Explicit = "explicit",
        /// DRBD 9 auto-promote: a Secondary with UpToDate data and no Primary peer may mount.
        Auto = "auto",
    }
}

pub static DEVICE: Parameter<AbsolutePath> = Parameter::new(
    "device",
    "Block device to mount",
    "The block device: /dev/drbdN, /dev/drbd/by-res/RES[/VOL], or any other block device. \
     A DRBD device is mounted only where DRBD says this node may write it.",
)
.required()
.unique();

pub static DIRECTORY: Parameter<AbsolutePath> = Parameter::new(
    "directory",
    "Mount point",
    "Absolute path of the mount point (never /). It is created if missing.",
)
.required()
.unique();

pub static FSTYPE: Parameter<String> = Parameter::new(
    "fstype",
    "Filesystem type",
    "The filesystem type passed to mount -t, e.g. ext4 or xfs.",
)
.required();

pub static OPTIONS: Parameter<String> = Parameter::new(
    "options",
    "Mount options",
    "Comma-separated mount options (mount -o). Options that change what a mount means \
     (bind, rbind, move, remount, propagation changes) are refused.",
);

pub static DRBD_RESOURCE: Parameter<String> = Parameter::new(
    "drbd_resource",
    "DRBD resource name",
    "The DRBD resource behind the device. Found from the device when empty; set it when the \
     device path does not tell (e.g. an LVM volume on top of DRBD).",
);

pub static DRBD_PROMOTION: Parameter<DrbdPromotion> = Parameter::new(
    "drbd_promotion",
    "How DRBD becomes Primary",
    "explicit when Pacemaker promotes DRBD (ocf:linbit:drbd promotable clone, the usual \
     setup); auto for DRBD 9 auto-promote without a promotable clone.",
)
.default("explicit");

pub static FSCK: Parameter<Fsck> = Parameter::new(
    "fsck",
    "Filesystem check before mounting",
    "auto checks filesystems without a journal only (journaled ones recover on mount); force \
     always runs fsck -a; no never does. A check that leaves errors fails the start.",
)
.default("auto");

pub static FORCE_UNMOUNT: Parameter<ForceUnmount> = Parameter::new(
    "force_unmount",
    "End processes that keep the filesystem busy",
    "yes: on stop, processes holding the filesystem (open files, working directory, memory \
     maps such as a qemu with its disk image) get TERM, then KILL, within the stop timeout. \
     no: they are left alone and a busy filesystem fails the stop, which makes Pacemaker fence \
     the node.",
)
.default("yes");

/// Options that turn a mount of a filesystem into something else.
const FORBIDDEN_OPTIONS: &[&str] = &[
    "bind",
    "rbind",
    "move",
    "remount",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "unbindable",
    "runbindable",
];

/// The typed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub device: AbsolutePath,
    pub directory: AbsolutePath,
    pub fstype: String,
    pub options: Option<String>,
    /// The DRBD resource as configured; a DRBD device path without it is resolved at run time.
    pub drbd_resource: Option<String>,
    pub promotion: Promotion,
    pub fsck: Fsck,
    pub force_unmount: ForceUnmount,
}

impl Config {
    /// Stage one: parameters to a configuration, checking what needs no host.
    pub fn from_parameters(parameters: &Parameters) -> Result<Self, ParameterError> {
        let device = DEVICE.get(parameters)?;
        let directory = DIRECTORY.get(parameters)?;
        if directory.as_path().parent().is_none() {
            return Err(invalid(&DIRECTORY, directory.to_string(), "must not be /"));
        }
        let fstype = FSTYPE.get(parameters)?;
        let fstype_ok = fstype.len() <= 32
            && fstype
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
        if !fstype_ok {
            return Err(invalid(&FSTYPE, fstype, "not a filesystem type name"));
        }
        let options = OPTIONS.optional(parameters)?;
        if let Some(options) = &options {
            check_options(options)?;
        }
        let drbd_resource = DRBD_RESOURCE.optional(parameters)?;
        if let Some(name) = &drbd_resource {
            // A leading '-' would reach drbdsetup as an option.
            let name_ok = name.len() <= 64
                && !name.starts_with('-')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !name_ok {
                return Err(invalid(
                    &DRBD_RESOURCE,
                    name.clone(),
                    "not a DRBD resource name",
                ));
            }
        }
        let promotion = match DRBD_PROMOTION.get(parameters)? {
            DrbdPromotion::Explicit => Promotion::Explicit,
            DrbdPromotion::Auto => Promotion::Auto,
        };
        Ok(Self {
            device,
            directory,
            fstype,
            options,
            drbd_resource,
            promotion,
            fsck: FSCK.get(parameters)?,
            force_unmount: FORCE_UNMOUNT.get(parameters)?,
        })
    }

    /// Whether the device is replicated by DRBD, by its path or by an explicit resource name.
    pub fn is_drbd(&self) -> bool {
        self.drbd_resource.is_some() || is_drbd_path(self.device.as_path())
    }
}

/// `/dev/drbdN` or `/dev/drbd/by-res/…`: DRBD by name, even before udev created the link.
pub fn is_drbd_path(device: &std::path::Path) -> bool {
    let text = device.to_string_lossy();
    text.starts_with("/dev/drbd/")
        || text
            .strip_prefix("/dev/drbd")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

fn check_options(options: &str) -> Result<(), ParameterError> {
    if options.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            &OPTIONS,
            options.to_owned(),
            "must not contain spaces or control characters",
        ));
    }
    for option in options.split(',') {
        if option.is_empty() {
            return Err(invalid(&OPTIONS, options.to_owned(), "has an empty option"));
        }
        let name = option.split('=').next().unwrap_or(option);
        if FORBIDDEN_OPTIONS.contains(&name) || name.starts_with("make-") {
            return Err(invalid(
                &OPTIONS,
                options.to_owned(),
                "changes what the mount means (bind/move/remount/propagation)",
            ));
        }
    }
    Ok(())
}

fn invalid<T>(parameter: &Parameter<T>, value: String, reason: &str) -> ParameterError
where
    T: clever_ocf::ParameterType,
{
    ParameterError::invalid(parameter.name(), &value, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ParameterError> {
        let parameters = Parameters::load(PARAMETERS, |key| {
            pairs
                .iter()
                .find(|(k, _)| format!("OCF_RESKEY_{k}") == key)
                .map(|(_, v)| OsString::from(*v))
        })?;
        Config::from_parameters(&parameters)
    }

    const BASE: [(&str, &str); 3] = [
        ("device", "/dev/drbd0"),
        ("directory", "/srv/clever"),
        ("fstype", "ext4"),
    ];

    #[test]
    fn defaults_and_drbd_detection() {
        let config = config(&BASE).unwrap();
        assert!(config.is_drbd());
        assert_eq!(config.fsck, Fsck::Auto);
        assert_eq!(config.force_unmount, ForceUnmount::Kill);
        assert_eq!(config.promotion, Promotion::Explicit);
        let plain = super::tests::config(&[
            ("device", "/dev/loop3"),
            ("directory", "/mnt/x"),
            ("fstype", "xfs"),
        ])
        .unwrap();
        assert!(!plain.is_drbd());
        assert!(is_drbd_path(std::path::Path::new("/dev/drbd/by-res/r0/0")));
        assert!(!is_drbd_path(std::path::Path::new("/dev/drbdx")));
    }

    #[test]
    fn bad_values_are_refused_with_the_parameter_named() {
        let cases: &[(&str, &str, &str)] = &[
            ("directory", "/", "must not be /"),
            ("directory", "relative", "absolute"),
            ("fstype", "ext4 -o bind", "filesystem type"),
            ("options", "noatime,bind", "changes what the mount means"),
            ("options", "ro,make-shared", "changes what the mount means"),
            ("options", "ro\nrw", "control"),
            ("options", "ro,,rw", "empty option"),
            ("drbd_resource", "r0;reboot", "resource name"),
            ("fsck", "sometimes", "expected one of"),
        ];
        for (name, value, reason) in cases {
            let mut pairs = BASE.to_vec();
            pairs.retain(|(k, _)| k != name);
            pairs.push((name, value));
            let err = config(&pairs).unwrap_err().to_string();
            assert!(
                err.contains(name) && err.contains(reason),
                "{name}={value:?}: {err}"
            );
        }
    }
}
