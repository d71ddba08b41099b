//! validate-all: the XML names the domain, and hibernation images would travel with the VM.

use std::path::Path;

use clever_ocf::{Context, Status};

use crate::save_link::{self, LinkState};
use crate::{Vm, VmError};

/// Needs no libvirt and changes nothing; `libvirt_save_dir` is where libvirt writes
/// managed-save images.
pub fn validate(vm: &Vm, _context: &Context, libvirt_save_dir: &Path) -> Result<Status, VmError> {
    let (_, name, _) = vm.read_config_with_uuid()?;
    // Refused, not warned: an image on the local root filesystem stays behind when the VM moves,
    // and resuming it later would run stale RAM over newer disks.
    vm.check_hibernate_dir()?;
    let dir = vm.settings.hibernate_dir.as_path();
    let (link, target) = save_link::paths(libvirt_save_dir, dir, &name);
    // Start and stop make the link; what they would change is only reported here.
    match save_link::state(libvirt_save_dir, dir, &name) {
        Ok(LinkState::SameDirectory | LinkState::Right | LinkState::Absent) => {}
        Ok(LinkState::Elsewhere(was)) => log::warn!(
            "{} points at {}, not {}: start and stop will point it at the right image",
            link.display(),
            was.display(),
            target.display()
        ),
        Ok(LinkState::LocalFile) => log::warn!(
            "{} is a file on this node's own disk, not a link to {}: start and stop will keep \
             it aside and link",
            link.display(),
            target.display()
        ),
        Err(e) => log::warn!("cannot look at {}: {e}", link.display()),
    }
    log::info!("domain {name}: configuration is valid");
    Ok(Status::Success)
}
