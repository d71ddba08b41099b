//! start: define the domain from `config`, then resume it from its hibernation image when a
//! usable one exists, else cold boot. An image that is not resumed is kept aside, never deleted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clever_deadline::Deadline;
use clever_ocf::{Context, Status};

use crate::hypervisor::{DomainStatus, Hypervisor, Reason, State};
use crate::image::{self, ImageProblem, Inspection};
use crate::params::OnRestoreFailure;
use crate::{Vm, VmError, VmHost};

pub fn start(vm: &Vm, context: &Context, host: &VmHost<'_>) -> Result<Status, VmError> {
    let (xml, name, uuid) = vm.read_config_with_uuid()?;
    vm.check_hibernate_dir()?;
    // Before anything reaches libvirt: its managed-save path must lead to this VM's own image,
    // or libvirt would boot past it (or resume whatever a stale path holds).
    vm.link_image(&host.libvirt_save_dir, &name)?;
    let status = start_domain(vm, context, host, &xml, &name, &uuid)?;
    // libvirt removes the managed-save path (the link) after a restore: made again, so that a
    // hibernation behind the cluster's back (virsh managedsave) also lands in hibernate_dir.
    if let Err(e) = vm.link_image(&host.libvirt_save_dir, &name) {
        log::warn!("{e}");
    }
    Ok(status)
}

fn start_domain(
    vm: &Vm,
    context: &Context,
    host: &VmHost<'_>,
    xml: &str,
    name: &str,
    uuid: &str,
) -> Result<Status, VmError> {
    let deadline = &context.deadline;
    let (xml, name, uuid) = (xml, name.to_owned(), uuid);
    let hv = (host.connect)(&vm.settings.uri, deadline)?;
    vm.remember_started(host, &context.instance, &name);
    if let Some(status) = settled_status(&*hv, &name, deadline)? {
        match status.state {
            State::Running | State::Blocked => {
                log::info!("domain {name} is already {status}");
                let path = image::image_path(vm.settings.hibernate_dir.as_path(), &name);
                // A start interrupted after libvirt had resumed the image leaves its hold.
                match image::drop_hold(&path, "interrupted") {
                    Ok(Some(kept)) => log::warn!(
                        "kept the hold of an interrupted resume of {name} as {}",
                        kept.display()
                    ),
                    Ok(None) => {}
                    Err(e) => log::warn!("cannot end the hold of {}: {e}", path.display()),
                }
                if path.exists() {
                    log::error!(
                        "{} exists while {name} runs: it is stale and will be kept aside at the \
                         next stop; it is not resumed",
                        path.display()
                    );
                }
                return Ok(Status::Success);
            }
            State::ShutOff | State::NoState => {}
            _ => {
                return Err(VmError::Failed {
                    domain: name,
                    state: format!("{status}; stop the resource before starting it"),
                })
            }
        }
    }
    hv.define(xml)?;
    let path = image::image_path(vm.settings.hibernate_dir.as_path(), &name);
    let inspection =
        image::inspect(&path, &name, uuid).map_err(|source| VmError::ImageUnreadable {
            path: path.clone(),
            source,
        })?;
    match inspection {
        Inspection::Absent => {
            // A start was interrupted after libvirt consumed the image; keep its copy.
            match image::drop_hold(&path, "interrupted") {
                Ok(Some(kept)) => log::warn!(
                    "kept the hold of an interrupted resume as {}",
                    kept.display()
                ),
                Ok(None) => {}
                Err(e) => log::warn!("cannot end the hold of {}: {e}", path.display()),
            }
            log::info!(
                "no hibernation image {}: cold boot of {name}",
                path.display()
            );
            boot(&*hv, &name)
        }
        Inspection::Unusable(problem) => {
            refuse(vm, &path, &name, &problem)?;
            boot(&*hv, &name)
        }
        Inspection::Usable { size } => resume(vm, &*hv, &path, &name, size),
    }
}

/// The domain's state once no start or restore is under way: an earlier start that the executor
/// ended at its timeout leaves libvirt restoring the image, and this one must see the outcome,
/// not the transition.
fn settled_status(
    hv: &dyn Hypervisor,
    name: &str,
    deadline: &Deadline,
) -> Result<Option<DomainStatus>, VmError> {
    let starting = |status: &Option<DomainStatus>| {
        status.is_some_and(|s| s.state == State::Paused && s.reason == Reason::StartingUp)
    };
    let status = hv.status(name)?;
    if !starting(&status) {
        return Ok(status);
    }
    log::info!("domain {name} is still being started or restored by libvirt; waiting for it");
    let settled = deadline.poll(
        "libvirt to finish starting the domain",
        Duration::from_millis(100),
        || match hv.status(name) {
            Ok(status) if starting(&status) => None,
            other => Some(other),
        },
    )?;
    settled.map_err(VmError::from)
}

/// Cold boot (no image file is left, so libvirt boots) and check the domain runs.
fn boot(hv: &dyn Hypervisor, name: &str) -> Result<Status, VmError> {
    hv.start(name)?;
    let status = current(hv, name)?;
    if matches!(status.state, State::Running | State::Blocked) {
        log::info!("domain {name} is {status}");
        Ok(Status::Success)
    } else {
        Err(VmError::NotRunningAfterStart {
            domain: name.to_owned(),
            state: status.to_string(),
        })
    }
}

fn current(hv: &dyn Hypervisor, name: &str) -> Result<DomainStatus, VmError> {
    hv.status(name)?
        .ok_or_else(|| VmError::NotRunningAfterStart {
            domain: name.to_owned(),
            state: "not defined".to_owned(),
        })
}

/// Keeps an image aside and logs it loudly; fails the start when the policy says so.
fn refuse(vm: &Vm, path: &Path, name: &str, problem: &ImageProblem) -> Result<(), VmError> {
    let kept = image::keep_aside(path, problem.tag()).map_err(|source| VmError::KeepAside {
        path: path.to_path_buf(),
        source,
    })?;
    log::error!(
        "HIBERNATION IMAGE OF {name} NOT RESUMED: {problem}; the image is kept as {} (nothing \
         was deleted); on_restore_failure={}",
        kept.display(),
        vm.settings.on_restore_failure
    );
    match vm.settings.on_restore_failure {
        OnRestoreFailure::Boot => {
            log::warn!("cold boot of {name}: its RAM state from the hibernation is lost");
            Ok(())
        }
        OnRestoreFailure::Fail => Err(VmError::ImageRefused {
            domain: name.to_owned(),
            problem: problem.to_string(),
            kept,
        }),
    }
}

fn resume(
    vm: &Vm,
    hv: &dyn Hypervisor,
    path: &Path,
    name: &str,
    size: u64,
) -> Result<Status, VmError> {
    log::info!(
        "resuming {name} from {} ({} MiB)",
        path.display(),
        size / (1024 * 1024)
    );
    let held = match image::hold(path) {
        Ok(held) => held,
        Err(e) => {
            log::warn!("cannot hold {} during the resume: {e}", path.display());
            None
        }
    };
    let started = std::time::Instant::now();
    let outcome = hv.start(name);
    let status = match &outcome {
        Ok(()) => match hv.status(name) {
            Ok(status) => status,
            Err(e) => {
                // libvirt took the image but what it made of it is unknown: the hold is not
                // left behind as a second image, nor deleted, but kept aside.
                if held.is_some() {
                    match image::drop_hold(path, "unverified") {
                        Ok(Some(kept)) => log::error!(
                            "resume of {name} not verified; its image is kept as {}",
                            kept.display()
                        ),
                        Ok(None) => {}
                        Err(e) => log::error!("cannot end the hold of {}: {e}", path.display()),
                    }
                }
                return Err(e.into());
            }
        },
        Err(_) => None,
    };
    match (outcome, status) {
        (Ok(()), Some(status)) if resumed(&status) || paused_after_restore(&status) => {
            log::info!(
                "domain {name} resumed from its hibernation image in {:.1?}",
                started.elapsed()
            );
            // The RAM state lives in the domain now: no image of it may stay behind, whatever
            // happens next.
            release(path, held.as_deref());
            if status.state == State::Paused {
                log::info!("{name} was hibernated while paused; resuming its CPUs");
                hv.resume(name)?;
            }
            Ok(Status::Success)
        }
        (Ok(()), Some(status)) if status.is_active() => {
            // libvirt booted instead of restoring and deleted the image; the hold kept it.
            let problem = ImageProblem::NotResumed(status.to_string());
            let still = surviving(path, held.as_deref());
            match still {
                Some(image) => refuse(vm, &image, name, &problem).inspect_err(|_| {
                    // on_restore_failure=fail: the cold-booted domain must not stay up.
                    let _ = hv.destroy(name);
                })?,
                None => log::error!(
                    "{name}: {problem}, and the image is gone (no hard link could hold it)"
                ),
            }
            Ok(Status::Success)
        }
        (outcome, status) => {
            let why = match (outcome, status) {
                (Err(e), _) => e.to_string(),
                (Ok(()), Some(status)) => format!("the domain is {status}"),
                (Ok(()), None) => "the domain vanished".to_owned(),
            };
            let problem = ImageProblem::RestoreFailed(why);
            match surviving(path, held.as_deref()) {
                Some(image) => refuse(vm, &image, name, &problem)?,
                None => log::error!("{name}: {problem}, and the image is gone"),
            }
            boot(hv, name)
        }
    }
}

fn resumed(status: &DomainStatus) -> bool {
    matches!(status.state, State::Running | State::Blocked) && status.reason == Reason::Restored
}

fn paused_after_restore(status: &DomainStatus) -> bool {
    status.state == State::Paused && !matches!(status.reason, Reason::IoError | Reason::Crashed)
}

/// After a successful resume: the hold goes, and so does the image if libvirt left it.
/// Drops the hold after a resume, and the image if libvirt left it behind. A file at `path` is
/// removed only when it is the very image resumed (the hold pins its inode, so a same inode
/// means the same file): a new image written there meanwhile — a hibernation behind the
/// cluster's back (`clevervm stop`) right after this resume — is libvirt's to finish, and
/// removing it made that save fail ("Failed to open file …save: No such file").
fn release(path: &Path, held: Option<&Path>) {
    let Some(held) = held else {
        // Without a hold nothing tells the resumed image from a newer one; libvirt removes the
        // image it restored from, so there is nothing to tidy.
        return;
    };
    if same_file(path, held) {
        remove(path);
    } else if path.exists() {
        log::info!(
            "{} is a newer image than the one resumed: kept",
            path.display()
        );
    }
    remove(held);
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn remove(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => log::debug!("removed {}", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove {}: {e}", path.display()),
    }
}

/// The name under which the image still exists after a failed resume: the image path if libvirt
/// kept it (the hold is then dropped, the data stays), else the hold.
fn surviving(path: &Path, held: Option<&Path>) -> Option<PathBuf> {
    if path.exists() {
        if let Some(held) = held {
            if let Err(e) = fs::remove_file(held) {
                log::warn!("cannot remove the hold {}: {e}", held.display());
            }
        }
        return Some(path.to_path_buf());
    }
    let held = held?;
    held.exists().then(|| {
        // Give the kept name the image's own base name.
        match fs::rename(held, path) {
            Ok(()) => path.to_path_buf(),
            Err(_) => held.to_path_buf(),
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("clever-vm-start-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    #[test]
    fn release_removes_the_resumed_image_but_never_a_newer_one() {
        let dir = scratch("release");
        let path = dir.0.join("clever.save");

        // libvirt left the image it resumed from: it goes, with the hold.
        fs::write(&path, b"resumed").unwrap();
        let held = image::hold(&path).unwrap().unwrap();
        release(&path, Some(&held));
        assert!(!path.exists() && !held.exists());

        // A hibernation behind the cluster's back wrote a new image meanwhile: it stays.
        fs::write(&path, b"resumed").unwrap();
        let held = image::hold(&path).unwrap().unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(&path, b"new image being written").unwrap();
        release(&path, Some(&held));
        assert_eq!(fs::read(&path).unwrap(), b"new image being written");
        assert!(!held.exists());

        // Without a hold nothing is removed.
        release(&path, None);
        assert!(path.exists());
    }
}
