//! validate-all: the XML names the domain, and hibernation images would travel with the VM.

use clever_ocf::{Context, Status};

use crate::{Host, Vm, VmError};

pub fn validate(vm: &Vm, _context: &Context, host: &Host<'_>) -> Result<Status, VmError> {
    let (_, name, _) = vm.read_config_with_uuid()?;
    // Refused, not warned: an image on the local root filesystem stays behind when the VM moves,
    // and resuming it later would run stale RAM over newer disks.
    vm.check_hibernate_dir()?;
    if let Err(e) = vm.check_bound(host) {
        // The bind mount is normally another resource's job and may not be active yet.
        log::warn!("{e}");
    }
    log::info!("domain {name}: configuration is valid");
    Ok(Status::Success)
}
