//! validate-all: the XML names the domain, and hibernation images would travel with the VM.

use std::path::Path;

use clever_ocf::{Context, Status};

use crate::{Vm, VmError};

/// Needs no libvirt; `libvirt_save_dir` is where libvirt writes managed-save images.
pub fn validate(vm: &Vm, _context: &Context, libvirt_save_dir: &Path) -> Result<Status, VmError> {
    let (_, name, _) = vm.read_config_with_uuid()?;
    // Refused, not warned: an image on the local root filesystem stays behind when the VM moves,
    // and resuming it later would run stale RAM over newer disks.
    vm.check_hibernate_dir()?;
    if let Err(e) = vm.check_bound(libvirt_save_dir) {
        // The bind mount is normally another resource's job and may not be active yet.
        log::warn!("{e}");
    }
    log::info!("domain {name}: configuration is valid");
    Ok(Status::Success)
}
