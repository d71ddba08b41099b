//! stop: hibernate, else shut down, else power off, each within what is left of the stop
//! timeout; succeed only when no qemu process of the domain is left. A failed stop means
//! fencing, so libvirt errors are logged and the next step is tried rather than returned.

use std::time::{Duration, Instant};

use clever_deadline::Deadline;
use clever_ocf::{Context, Status};

use crate::hypervisor::{Hypervisor, SaveProgress};
use crate::image::{self, Inspection};
use crate::params::StopMethod;
use crate::process;
use crate::{Vm, VmError, VmHost};

/// Kept back from every earlier step for the power-off and the final process check.
pub const DESTROY_RESERVE: Duration = Duration::from_secs(10);
/// Kept back from every libvirt call for ending qemu through `/proc` when libvirtd hangs.
const PROCESS_RESERVE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Hibernate,
    Shutdown,
    Destroy,
}

fn steps(method: StopMethod) -> &'static [Step] {
    match method {
        StopMethod::Hibernate => &[Step::Hibernate, Step::Shutdown, Step::Destroy],
        StopMethod::Shutdown => &[Step::Shutdown, Step::Destroy],
        StopMethod::Destroy => &[Step::Destroy],
    }
}

pub fn stop(vm: &Vm, context: &Context, host: &VmHost<'_>) -> Result<Status, VmError> {
    let deadline = &context.deadline;
    let Some(name) = vm.domain_name(host, &context.instance)? else {
        // Config unreadable and never started here since boot: nothing to stop, and a failed
        // stop would mean fencing.
        return Ok(Status::Success);
    };
    // libvirt calls end a little before the stop deadline, so that a libvirtd hanging at any
    // point still leaves time to end qemu directly.
    let reserve = PROCESS_RESERVE.min(deadline.remaining() / 2);
    let calls = deadline.capped(deadline.remaining().saturating_sub(reserve));
    match (host.connect)(&vm.settings.uri, &calls) {
        Ok(hv) => through_libvirt(vm, &*hv, &name, deadline, host),
        Err(e) => log::error!(
            "{e}; libvirtd is not usable, so {name} is ended through its qemu process (its RAM \
             state is lost)"
        ),
    }
    let left = process::end_qemu(&host.proc_root, &name, deadline);
    if left.is_empty() {
        log::info!("domain {name} is stopped (no qemu process left)");
        Ok(Status::Success)
    } else {
        Err(VmError::QemuSurvived {
            domain: name,
            pids: left,
        })
    }
}

/// Whether libvirt knows the domain as inactive (or not at all).
fn stopped(hv: &dyn Hypervisor, name: &str) -> Option<bool> {
    match hv.status(name) {
        Ok(None) => Some(true),
        Ok(Some(status)) => Some(!status.is_active()),
        Err(e) => {
            log::warn!("{e}");
            None
        }
    }
}

fn through_libvirt(
    vm: &Vm,
    hv: &dyn Hypervisor,
    name: &str,
    deadline: &Deadline,
    host: &VmHost<'_>,
) {
    match hv.status(name) {
        Ok(None) => {
            log::info!("domain {name} is not defined here");
            return;
        }
        Ok(Some(status)) if !status.is_active() => {
            log::info!("domain {name} is already {status}");
            return;
        }
        Ok(Some(status)) => log::info!("stopping {name}, which is {status}"),
        Err(e) => log::warn!("{e}; trying to stop {name} anyway"),
    }
    for step in steps(vm.settings.stop_method) {
        match step {
            Step::Hibernate => hibernate(vm, hv, name, deadline, host),
            Step::Shutdown => shutdown(vm, hv, name, deadline),
            Step::Destroy => {
                log::warn!("powering off {name}");
                if let Err(e) = hv.destroy(name) {
                    log::error!("{e}");
                }
            }
        }
        if stopped(hv, name) == Some(true) {
            return;
        }
    }
}

fn hibernate(vm: &Vm, hv: &dyn Hypervisor, name: &str, deadline: &Deadline, host: &VmHost<'_>) {
    let budget = deadline
        .remaining()
        .saturating_sub(vm.settings.shutdown_timeout)
        .saturating_sub(DESTROY_RESERVE);
    if budget < Duration::from_secs(1) {
        log::error!(
            "no time left to hibernate {name} ({:?} remain, shutdown_timeout {:?} and {:?} for \
             power-off kept back): raise the stop timeout",
            deadline.remaining(),
            vm.settings.shutdown_timeout,
            DESTROY_RESERVE
        );
        return;
    }
    // Never an image in the wrong place: with hibernate_dir unmounted, libvirt would write
    // through the link onto the mount point's own filesystem (or fail half way). The next steps
    // (shutdown, power-off) lose the RAM state, never data.
    if let Err(e) = vm
        .check_hibernate_dir()
        .and_then(|()| vm.link_image(&host.libvirt_save_dir, name))
    {
        log::error!("not hibernating {name}: {e}");
        return;
    }
    let path = image::image_path(vm.settings.hibernate_dir.as_path(), name);
    // The hold of an interrupted resume would otherwise sit beside the new image.
    match image::drop_hold(&path, "stale") {
        Ok(Some(kept)) => log::warn!(
            "kept the hold of an earlier resume of {name} as {}",
            kept.display()
        ),
        Ok(None) => {}
        Err(e) => log::warn!("cannot end the hold of {}: {e}", path.display()),
    }
    if path.exists() {
        // An image while the domain runs is stale; libvirt would overwrite it.
        match image::keep_aside(&path, "stale") {
            Ok(kept) => log::error!(
                "a hibernation image of running {name} already existed; kept as {}",
                kept.display()
            ),
            Err(e) => {
                log::error!("not hibernating {name}: cannot keep the old image aside: {e}");
                return;
            }
        }
    }
    log::info!(
        "hibernating {name} into {} (budget {budget:.0?})",
        path.display()
    );
    let started = Instant::now();
    let mut report = |p: SaveProgress| {
        if p.total == 0 {
            log::info!(
                "hibernating {name}: still writing after {:.0?} (no figures from libvirt)",
                started.elapsed()
            );
        } else {
            log::info!(
                "hibernating {name}: {} of {} MiB written after {:.0?}",
                p.processed / (1024 * 1024),
                p.total / (1024 * 1024),
                started.elapsed()
            );
        }
    };
    let writes = image::save_writes(vm.settings.hibernate_dir.as_path());
    match hv.hibernate(name, writes, &deadline.capped(budget), &mut report) {
        Ok(()) => match image::inspect(&path, name, "") {
            Ok(Inspection::Usable { size }) => log::info!(
                "hibernated {name} in {:.1?}: {} MiB in {}",
                started.elapsed(),
                size / (1024 * 1024),
                path.display()
            ),
            Ok(other) => log::error!("{name} was hibernated but its image looks wrong: {other:?}"),
            Err(e) => log::error!("{name} was hibernated but its image is unreadable: {e}"),
        },
        Err(e) => log::error!(
            "{e} (the step took {:.1?} of its {budget:.1?}); falling back to a graceful \
             shutdown of {name}",
            started.elapsed()
        ),
    }
}

fn shutdown(vm: &Vm, hv: &dyn Hypervisor, name: &str, deadline: &Deadline) {
    let budget = deadline
        .remaining()
        .saturating_sub(DESTROY_RESERVE)
        .min(vm.settings.shutdown_timeout.max(Duration::from_secs(1)));
    if budget.is_zero() {
        return;
    }
    log::warn!("shutting {name} down gracefully (up to {budget:.0?}); its RAM state is lost");
    if let Err(e) = hv.shutdown(name) {
        log::error!("{e}");
        return;
    }
    let waited =
        deadline
            .capped(budget)
            .poll("graceful shutdown", Duration::from_millis(100), || {
                (stopped(hv, name) == Some(true)).then_some(())
            });
    if let Err(e) = waited {
        log::error!("{name}: {e}; powering it off");
    }
}
