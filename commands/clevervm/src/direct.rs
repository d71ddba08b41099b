//! `start` / `stop`: libvirt directly on this node, behind Pacemaker's back, as the original
//! `service clevervm start|stop` did — but never where it would do harm.
//!
//! Only the node that holds the VM's storage can run it: elsewhere the domain XML and the
//! hibernation directory are not there (DRBD Secondary), the domain may never have been defined,
//! and a start would be a second copy of the VM. And libvirt only writes and reads hibernation
//! images in its fixed save directory, so an image lands in `hibernate_dir` (where the peer looks
//! for it) only through the per-domain link the vm agent keeps there
//! (`/var/lib/libvirt/qemu/save/<domain>.save` → `hibernate_dir/<domain>.save`); it is made
//! here too when missing, as the agent makes it. Both are checked before libvirt is touched, and
//! so is Pacemaker: acting while it is itself starting or stopping the VM races
//! its agent (a hibernation written while the agent finishes a resume is removed under
//! libvirt's feet).

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use clever_command::{CommandError, CommandLine, RunCommand};
use clever_deadline::Deadline;
use clever_pacemaker::{ClusterStatus, Pacemaker, Primitive, Role};

use crate::collect::domain_from_xml;
use crate::error::ClevervmError;
use crate::verbs::Stack;

/// libvirt's managed-save directory for `qemu:///system`: fixed, no setting moves it.
pub const LIBVIRT_SAVE_DIR: &str = "/var/lib/libvirt/qemu/save";

/// Where things are for the direct verbs.
#[derive(Debug, Clone)]
pub struct Host {
    /// This node's name in the cluster.
    pub node: String,
    /// libvirt's save directory as this node sees it.
    pub libvirt_save_dir: PathBuf,
}

/// What the VM resource says about its domain.
#[derive(Debug, Clone)]
struct Target<'a> {
    resource: &'a str,
    domain: String,
    uri: String,
    config: Option<&'a str>,
    hibernate_dir: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn of(vm: &'a Primitive) -> Self {
        let config = vm
            .parameters
            .get("config")
            .map(String::as_str)
            .filter(|c| !c.is_empty());
        let domain = vm
            .parameters
            .get("domain")
            .filter(|d| !d.is_empty())
            .cloned()
            .or_else(|| domain_from_xml(&fs::read_to_string(config?).ok()?))
            .unwrap_or_else(|| vm.id.clone());
        Self {
            resource: &vm.id,
            domain,
            uri: vm
                .parameters
                .get("hypervisor")
                .filter(|h| !h.is_empty())
                .cloned()
                .unwrap_or_else(|| "qemu:///system".to_owned()),
            config,
            hibernate_dir: vm
                .parameters
                .get("hibernate_dir")
                .map(String::as_str)
                .filter(|d| !d.is_empty()),
        }
    }

    fn virsh(&self, verb: &str) -> CommandLine {
        CommandLine::new("virsh").args(["--connect", &self.uri, verb])
    }
}

/// The domain's state on this node as `virsh domstate` says it; `None` when libvirt here does
/// not know the domain.
fn local_state<R: RunCommand>(
    runner: &R,
    target: &Target<'_>,
    deadline: &Deadline,
) -> Result<Option<String>, ClevervmError> {
    let command = target.virsh("domstate").arg(&target.domain);
    match runner.run_ok(&command, deadline) {
        Ok(output) => Ok(Some(output.stdout_text().trim().to_owned())),
        Err(CommandError::Failed { stderr, .. })
            if stderr.contains("failed to get domain") || stderr.contains("Domain not found") =>
        {
            Ok(None)
        }
        // libvirtd down or refusing: whether the VM runs here is unknown, so nothing is done.
        Err(e) => Err(ClevervmError::Virsh(e)),
    }
}

fn active(state: Option<&str>) -> bool {
    matches!(
        state,
        Some("running" | "paused" | "blocked" | "idle" | "in shutdown" | "pmsuspended")
    )
}

/// Nodes where the storage the VMs need is (the promoted anchors), for messages.
fn storage_nodes(status: &ClusterStatus, stack: &Stack) -> Vec<String> {
    let mut nodes: Vec<String> = stack
        .anchors
        .iter()
        .flat_map(|(anchor, promoted_only)| {
            status
                .resources
                .iter()
                .filter(|r| r.parent.as_deref() == Some(anchor.as_str()) || r.id == *anchor)
                .filter(|r| r.active && (!promoted_only || r.role == Role::Promoted))
                .flat_map(|r| r.nodes.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

fn same_directory(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Makes libvirt's managed-save path of `domain` lead to its image in `hibernate_dir`, as the vm
/// agent does at every start and stop (see its `save_link` module): a link made under a
/// temporary name and renamed into place. A file already there is an image written on this
/// node's own disk: it is left alone and the verb refuses, so that nothing is overwritten.
fn link_image(libvirt_save_dir: &Path, hibernate_dir: &Path, domain: &str) -> Result<(), String> {
    if same_directory(libvirt_save_dir, hibernate_dir) {
        // hibernate_dir bound over libvirt's directory (the former layout).
        return Ok(());
    }
    let link = libvirt_save_dir.join(format!("{domain}.save"));
    let target = hibernate_dir.join(format!("{domain}.save"));
    match fs::symlink_metadata(&link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if fs::read_link(&link).is_ok_and(|to| to == target) {
                return Ok(());
            }
        }
        Ok(_) => {
            return Err(format!(
                "{} is a file on this node's own disk, not a link to {}: an image written \
                 outside the VM's storage; move it aside (the vm agent keeps it aside at its next \
                 start or stop), then try again",
                link.display(),
                target.display()
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot look at {}: {e}", link.display())),
    }
    let temporary = libvirt_save_dir.join(format!(".{domain}.save.link-{}", std::process::id()));
    let made = fs::create_dir_all(libvirt_save_dir)
        .and_then(|()| match fs::symlink_metadata(&temporary) {
            Ok(meta) if meta.file_type().is_symlink() => fs::remove_file(&temporary),
            _ => Ok(()),
        })
        .and_then(|()| std::os::unix::fs::symlink(&target, &temporary))
        .and_then(|()| {
            fs::rename(&temporary, &link).inspect_err(|_| {
                let _ = fs::remove_file(&temporary);
            })
        });
    made.map_err(|e| {
        format!(
            "cannot link {} to {}: {e}",
            link.display(),
            target.display()
        )
    })
}

/// Refuses when Pacemaker has an operation on the VM in flight.
fn check_not_busy(status: &ClusterStatus, resource: &str) -> Result<(), ClevervmError> {
    if let Some(instance) = status
        .resources
        .iter()
        .find(|r| r.id == resource && r.role.is_transition())
    {
        return Err(ClevervmError::Busy(format!(
            "Pacemaker is {} {resource} on {} right now: wait until it has finished \
             (clevervm status), then try again",
            match instance.role {
                Role::Starting => "starting",
                Role::Stopping => "stopping",
                Role::Migrating => "migrating",
                Role::Promoting => "promoting",
                _ => "demoting",
            },
            instance.nodes.join(",")
        )));
    }
    Ok(())
}

/// The checks that libvirt here can run the VM with its storage: the domain XML readable,
/// `hibernate_dir` mounted, and libvirt's managed-save path of the domain linked to it.
fn check_storage_here(
    target: &Target<'_>,
    host: &Host,
    storage: &[String],
) -> Result<(), ClevervmError> {
    let elsewhere = if storage.is_empty() || storage.contains(&host.node) {
        String::new()
    } else {
        format!(
            "; the storage is active on {}: run it there, or use clevervm forcestart",
            storage.join(",")
        )
    };
    if let Some(config) = target.config {
        if let Err(e) = fs::metadata(config) {
            return Err(ClevervmError::NotHere(format!(
                "{}: its domain XML {config} is not readable on {} ({e}): the VM's storage is \
                 not mounted here{elsewhere}",
                target.resource, host.node
            )));
        }
    }
    if let Some(dir) = target.hibernate_dir {
        let dir = Path::new(dir);
        // Off the root filesystem, as the vm agent demands: an image written through the link
        // into an unmounted mount point would stay on this node's own disk.
        let mounted = fs::metadata(dir)
            .ok()
            .filter(fs::Metadata::is_dir)
            .zip(fs::metadata("/").ok())
            .is_some_and(|(dir, root)| dir.dev() != root.dev());
        if !mounted {
            return Err(ClevervmError::NotHere(format!(
                "{}: hibernate_dir {} is not a directory on the VM's own filesystem on {} (the \
                 VM's storage is not mounted here), so libvirt would not find or write the \
                 hibernation image there{elsewhere}",
                target.resource,
                dir.display(),
                host.node
            )));
        }
        link_image(&host.libvirt_save_dir, dir, &target.domain).map_err(|why| {
            ClevervmError::NotHere(format!("{}: {why}{elsewhere}", target.resource))
        })?;
    }
    Ok(())
}

/// `start`: resumes (or boots) each VM here with libvirt, where it can run.
pub fn start<R: RunCommand>(
    runner: &R,
    pacemaker: &Pacemaker<R>,
    stack: &Stack,
    host: &Host,
    out: &mut dyn Write,
    deadline: &Deadline,
) -> Result<(), ClevervmError> {
    let status = pacemaker.status(deadline)?;
    let storage = storage_nodes(&status, stack);
    for vm in &stack.vms {
        let target = Target::of(vm);
        check_not_busy(&status, &vm.id)?;
        let state = local_state(runner, &target, deadline)?;
        if active(state.as_deref()) {
            let _ = writeln!(
                out,
                "{}: already {} on {}; nothing to do",
                target.domain,
                state.as_deref().unwrap_or_default(),
                host.node
            );
            continue;
        }
        let elsewhere: Vec<&str> = status
            .running_on(&vm.id, None)
            .into_iter()
            .filter(|n| *n != host.node)
            .collect();
        if !elsewhere.is_empty() {
            let _ = writeln!(
                out,
                "{}: already runs on {}; nothing to do (starting it here too would run it twice)",
                target.domain,
                elsewhere.join(",")
            );
            continue;
        }
        check_storage_here(&target, host, &storage)?;
        let image = target
            .hibernate_dir
            .map(|dir| Path::new(dir).join(format!("{}.save", target.domain)))
            .filter(|image| image.exists());
        // Which file is resumed: libvirt removes only its link after the restore, so the image
        // is removed here, as the vm agent does, lest a later start resume it a second time.
        let resumed_inode = image
            .as_ref()
            .and_then(|image| fs::symlink_metadata(image).ok())
            .map(|m| (m.dev(), m.ino()));
        if let Some(config) = target.config {
            // This node may never have run the VM: libvirt here must know the same definition.
            runner
                .run_ok(&target.virsh("define").arg(config), deadline)
                .map_err(ClevervmError::Virsh)?;
        }
        runner
            .run_ok(&target.virsh("start").arg(&target.domain), deadline)
            .map_err(ClevervmError::Virsh)?;
        if let (Some(image), Some(inode)) = (&image, resumed_inode) {
            release_resumed(runner, &target, image, inode, deadline);
        }
        let _ = match image {
            Some(image) => writeln!(
                out,
                "{}: resumed on {} from {}",
                target.domain,
                host.node,
                image.display()
            ),
            None => writeln!(
                out,
                "{}: booted on {} (no hibernation image)",
                target.domain, host.node
            ),
        };
    }
    Ok(())
}

/// Removes the image a `virsh start` resumed from, once libvirt says the domain runs
/// "restored", and only if the file is still the one resumed (a newer image is never touched).
/// Anything unclear leaves the image: the vm agent keeps it aside as stale at its next stop.
fn release_resumed<R: RunCommand>(
    runner: &R,
    target: &Target<'_>,
    image: &Path,
    inode: (u64, u64),
    deadline: &Deadline,
) {
    let command = target.virsh("domstate").args(["--reason", &target.domain]);
    let restored = runner
        .run_ok(&command, deadline)
        .is_ok_and(|o| o.stdout_text().trim() == "running (restored)");
    let same = fs::symlink_metadata(image).is_ok_and(|m| (m.dev(), m.ino()) == inode);
    if restored && same {
        let _ = fs::remove_file(image);
    }
}

/// `stop`: hibernates each VM that runs here with libvirt's managed save.
pub fn stop<R: RunCommand>(
    runner: &R,
    pacemaker: &Pacemaker<R>,
    stack: &Stack,
    host: &Host,
    out: &mut dyn Write,
    deadline: &Deadline,
) -> Result<(), ClevervmError> {
    let status = pacemaker.status(deadline)?;
    let storage = storage_nodes(&status, stack);
    for vm in &stack.vms {
        let target = Target::of(vm);
        check_not_busy(&status, &vm.id)?;
        let state = local_state(runner, &target, deadline)?;
        if !active(state.as_deref()) {
            let elsewhere: Vec<&str> = status
                .running_on(&vm.id, None)
                .into_iter()
                .filter(|n| *n != host.node)
                .collect();
            if !elsewhere.is_empty() {
                return Err(ClevervmError::NotHere(format!(
                    "{} runs on {}, not on {}: run clevervm stop there (or clevervm forcestop \
                     from any node)",
                    target.domain,
                    elsewhere.join(","),
                    host.node
                )));
            }
            let _ = writeln!(
                out,
                "{}: not running on {}; nothing to do",
                target.domain, host.node
            );
            continue;
        }
        check_storage_here(&target, host, &storage)?;
        runner
            .run_ok(&target.virsh("managedsave").arg(&target.domain), deadline)
            .map_err(ClevervmError::Virsh)?;
        let _ = writeln!(
            out,
            "{}: hibernated on {} into {}; Pacemaker's next monitor finds it stopped and \
             resumes it",
            target.domain,
            host.node,
            target
                .hibernate_dir
                .map(|dir| Path::new(dir).join(format!("{}.save", target.domain)))
                .unwrap_or_else(|| host
                    .libvirt_save_dir
                    .join(format!("{}.save", target.domain)))
                .display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_is_made_kept_or_refused_never_over_a_file() {
        let dir = std::env::temp_dir().join(format!("clevervm-link-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (libvirt, one, two) = (dir.join("libvirt"), dir.join("one"), dir.join("two"));
        for d in [&one, &two] {
            fs::create_dir_all(d).unwrap();
        }
        let link = libvirt.join("a.save");
        link_image(&libvirt, &one, "a").unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), one.join("a.save"));
        link_image(&libvirt, &one, "a").unwrap();
        // Another domain's link is its own; a link pointing elsewhere is replaced.
        link_image(&libvirt, &two, "b").unwrap();
        link_image(&libvirt, &two, "a").unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), two.join("a.save"));
        assert_eq!(
            fs::read_link(libvirt.join("b.save")).unwrap(),
            two.join("b.save")
        );
        // A file written on the node's own disk is left as it is.
        fs::remove_file(&link).unwrap();
        fs::write(&link, b"local image").unwrap();
        let why = link_image(&libvirt, &one, "a").unwrap_err();
        assert!(why.contains("own disk"), "{why}");
        assert_eq!(fs::read(&link).unwrap(), b"local image");
        // The former layout: libvirt's directory is hibernate_dir.
        link_image(&one, &one, "c").unwrap();
        assert!(fs::symlink_metadata(one.join("c.save")).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
