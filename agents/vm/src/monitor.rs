//! monitor: the domain's state through the libvirt API, with no process spawned. When libvirt
//! cannot say the domain runs, `/proc` is asked before answering "not running".

use std::fs;

use clever_ocf::{Context, Status};

use crate::hypervisor::{FastStatus, HypervisorError, Reason, State};
use crate::{image, process};
use crate::{Vm, VmError, VmHost};

pub fn monitor(vm: &Vm, context: &Context, host: &VmHost<'_>) -> Result<Status, VmError> {
    let name = match vm.domain_name(host, &context.instance)? {
        Some(name) => name,
        // Config unreadable and never started here since boot: nothing of it can run here.
        None if context.probe => return Ok(Status::NotRunning),
        None => return vm.read_config().map(|_| Status::NotRunning),
    };
    // A hung libvirtd must leave time to look for the qemu process and answer.
    let budget = context.deadline.remaining() * 3 / 4;
    let calls = context.deadline.capped(budget);
    let answer = match host.fast_status {
        Some(fast) => match fast(&vm.settings.uri, &name, &calls) {
            FastStatus::Answer(answer) => Some(answer),
            FastStatus::Fallback(why) => {
                log::debug!("{why}");
                None
            }
        },
        None => None,
    };
    let answer = match answer {
        Some(answer) => answer,
        None => match (host.connect)(&vm.settings.uri, &calls) {
            Ok(hv) => hv.status(&name),
            Err(e) => Err(e),
        },
    };
    let status = match answer {
        Ok(Some(status)) => status,
        Ok(None) => return not_running_unless_qemu(host, &name, "not defined"),
        Err(e @ (HypervisorError::Unavailable { .. } | HypervisorError::Library { .. })) => {
            return without_libvirt(host, &name, &e)
        }
        Err(e) => return Err(e.into()),
    };
    match status.state {
        State::Running | State::Blocked => {
            keep_stale_image_aside(vm, host, &name);
            Ok(Status::Success)
        }
        State::ShuttingDown => Ok(Status::Success),
        State::Paused => match status.reason {
            Reason::IoError | Reason::Watchdog | Reason::Crashed => Err(VmError::Failed {
                domain: name,
                state: status.to_string(),
            }),
            _ => Ok(Status::Degraded(format!("domain {name} is {status}"))),
        },
        State::PmSuspended => Ok(Status::Degraded(format!("domain {name} is {status}"))),
        State::Crashed => Err(VmError::Failed {
            domain: name,
            state: status.to_string(),
        }),
        State::NoState => {
            let pids = process::find_qemu(&host.proc_root, &name);
            if pids.is_empty() {
                Ok(Status::NotRunning)
            } else {
                Ok(Status::Degraded(format!(
                    "libvirt reports no state for {name}; qemu process {pids:?} is running"
                )))
            }
        }
        State::ShutOff => {
            let pids = process::find_qemu(&host.proc_root, &name);
            if !pids.is_empty() {
                return Err(VmError::Inconsistent {
                    domain: name,
                    state: status.to_string(),
                    pids,
                });
            }
            if status.reason == Reason::Crashed && !context.probe {
                return Err(VmError::Failed {
                    domain: name,
                    state: status.to_string(),
                });
            }
            Ok(Status::NotRunning)
        }
    }
}

/// An image of the running domain that is older than its qemu is stale: libvirt resumed the
/// domain from it behind the cluster's back (`virsh start`), and libvirt removes only the link
/// to it, not the image. Resumed again after a crash, it would put old RAM over a disk that has
/// moved on. So it is kept aside (renamed, never deleted) as soon as a monitor sees it. An image
/// written after qemu started is a hibernation under way (`virsh managedsave`), and stays.
fn keep_stale_image_aside(vm: &Vm, host: &VmHost<'_>, name: &str) {
    let path = image::image_path(vm.settings.hibernate_dir.as_path(), name);
    // One stat on the usual path: no image, nothing to do.
    let Ok(written) = fs::metadata(&path).and_then(|meta| meta.modified()) else {
        return;
    };
    let started = process::find_qemu(&host.proc_root, name)
        .into_iter()
        .filter_map(|pid| process::started_at(&host.proc_root, pid))
        .min();
    let Some(started) = started else { return };
    if written >= started {
        return;
    }
    match image::keep_aside(&path, "stale") {
        Ok(kept) => log::error!(
            "{} is an image of {name} older than its running qemu (resumed outside the              cluster, e.g. virsh start): kept aside as {}, so that it is never resumed again",
            path.display(),
            kept.display()
        ),
        Err(e) => log::error!(
            "{} is a stale image of the running {name}, and cannot be kept aside: {e}",
            path.display()
        ),
    }
}

fn not_running_unless_qemu(host: &VmHost<'_>, name: &str, what: &str) -> Result<Status, VmError> {
    let pids = process::find_qemu(&host.proc_root, name);
    if pids.is_empty() {
        Ok(Status::NotRunning)
    } else {
        Err(VmError::Inconsistent {
            domain: name.to_owned(),
            state: what.to_owned(),
            pids,
        })
    }
}

/// libvirtd is down: the qemu process alone tells whether the VM runs here.
fn without_libvirt(
    host: &VmHost<'_>,
    name: &str,
    error: &HypervisorError,
) -> Result<Status, VmError> {
    let pids = process::find_qemu(&host.proc_root, name);
    if pids.is_empty() {
        log::warn!("{error}; no qemu process of {name} is running here");
        Ok(Status::NotRunning)
    } else {
        Ok(Status::Degraded(format!(
            "{error}; qemu process {pids:?} of {name} is running"
        )))
    }
}
