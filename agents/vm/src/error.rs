//! The failures of the vm agent and, in one place, the exit codes they stand for.

use std::io;
use std::path::PathBuf;

use clever_deadline::DeadlineExceeded;
use clever_ocf::{HasExitCode, OcfExitCode};

use crate::hypervisor::HypervisorError;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The domain XML cannot be read on this node (shared filesystem not mounted?).
    #[error("cannot read domain XML {path}: {source}")]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("domain XML {path} is not usable: {reason}")]
    ConfigInvalid { path: PathBuf, reason: String },
    #[error("parameter domain={given:?} does not match the name {in_xml:?} in {path}")]
    NameMismatch {
        given: String,
        in_xml: String,
        path: PathBuf,
    },
    #[error("hibernate_dir {path} is not usable on this node: {source}")]
    HibernateDirMissing {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "hibernate_dir {path} is on the root filesystem: hibernation images there would not \
         travel with the VM, and a stale one could later be resumed over newer disks"
    )]
    HibernateDirOnRoot { path: PathBuf },
    /// libvirt's managed-save path of the domain cannot be made to point at its image.
    #[error("cannot link libvirt's managed-save path {link} to the image {target}: {source}")]
    SaveLink {
        link: PathBuf,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
    #[error(
        "hibernation image of {domain} was not resumed ({problem}); it is kept as {kept} and \
         on_restore_failure=fail: clean up the resource to cold boot"
    )]
    ImageRefused {
        domain: String,
        problem: String,
        kept: PathBuf,
    },
    #[error("cannot keep the hibernation image {path} aside: {source}")]
    KeepAside {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the hibernation image {path}: {source}")]
    ImageUnreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("domain {domain} is {state} after start, not running")]
    NotRunningAfterStart { domain: String, state: String },
    #[error("domain {domain} has failed: {state}")]
    Failed { domain: String, state: String },
    #[error(
        "domain {domain}: libvirt says {state} but qemu process {pids:?} is alive; stop the \
         resource to end it"
    )]
    Inconsistent {
        domain: String,
        state: String,
        pids: Vec<u32>,
    },
    #[error("qemu process {pids:?} of domain {domain} is still alive after stop")]
    QemuSurvived { domain: String, pids: Vec<u32> },
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
}

impl HasExitCode for VmError {
    fn exit_code(&self) -> OcfExitCode {
        match self {
            // Node-local: another node may have the shared filesystem, or a writable libvirt
            // directory.
            Self::ConfigUnreadable { .. }
            | Self::HibernateDirMissing { .. }
            | Self::SaveLink { .. } => OcfExitCode::ErrInstalled,
            // libvirt's client library is missing here.
            Self::Hypervisor(HypervisorError::Library { .. }) => OcfExitCode::ErrInstalled,
            Self::ConfigInvalid { .. }
            | Self::NameMismatch { .. }
            | Self::HibernateDirOnRoot { .. }
            // Nowhere until an admin decides: the next node would cold boot.
            | Self::ImageRefused { .. } => OcfExitCode::ErrConfigured,
            Self::Hypervisor(_)
            | Self::KeepAside { .. }
            | Self::ImageUnreadable { .. }
            | Self::NotRunningAfterStart { .. }
            | Self::Failed { .. }
            | Self::Inconsistent { .. }
            | Self::QemuSurvived { .. }
            | Self::Deadline(_) => OcfExitCode::ErrGeneric,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let refused = VmError::ImageRefused {
            domain: "clever".into(),
            problem: "image is empty".into(),
            kept: "/srv/hib/clever.save.kept-x".into(),
        };
        assert_eq!(refused.exit_code().code(), 6);
        assert_eq!(
            VmError::SaveLink {
                link: "/var/lib/libvirt/qemu/save/clever.save".into(),
                target: "/srv/hib/clever.save".into(),
                source: io::Error::from(io::ErrorKind::PermissionDenied),
            }
            .exit_code()
            .code(),
            5
        );
        assert_eq!(
            VmError::QemuSurvived {
                domain: "x".into(),
                pids: vec![1]
            }
            .exit_code()
            .code(),
            1
        );
    }
}
