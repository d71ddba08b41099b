//! The per-domain link from libvirt's managed-save directory to the domain's own hibernation
//! directory.
//!
//! libvirt's QEMU driver writes and reads a domain's managed-save image only at
//! `/var/lib/libvirt/qemu/save/NAME.save`, one directory per node. Binding a VM's
//! `hibernate_dir` over that whole directory allowed one VM per node. Instead, each domain's
//! path there is a symlink to `hibernate_dir/NAME.save`, on the VM's own DRBD filesystem, so any
//! number of VMs on any number of filesystems hibernate and resume on one node at once, each
//! from its own image.
//!
//! libvirt follows the link: it writes a managed save through it (`open` with
//! `O_WRONLY|O_TRUNC|O_CREAT`), reads it to restore, and `virsh start` by hand resumes through
//! it too. Every path where libvirt removes an image — the restore succeeded, the image was
//! partial or corrupt and libvirt boots past it, a save failed half way — is an `unlink` of the
//! managed-save path, which removes the link, never the image it points to. So with the link an
//! image libvirt gives up on stays on the shared filesystem for the agent to keep aside, which
//! the bind layout could not promise. The agent remakes the link before every start and every
//! hibernation.
//!
//! A link left on a node the VM has moved away from dangles once the filesystem is unmounted
//! there: libvirt then sees no managed save, and the agent never hibernates through it without
//! first checking that `hibernate_dir` is mounted (see `stop`).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::image;

/// What [`ensure`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linked {
    /// libvirt's save directory is `hibernate_dir` itself (the former bind-mount layout): the
    /// image is already where libvirt looks.
    SameDirectory,
    /// The link was there, pointing at the right image.
    Already,
    /// The link was made (nothing was at its path, or a link to somewhere else was replaced).
    Made { replaced: Option<PathBuf> },
    /// A regular file (an image libvirt wrote locally) was at the link's path: it was kept
    /// aside under the returned name, then the link was made.
    KeptLocal { kept: PathBuf },
}

/// What is at a domain's managed-save path, without changing anything (validate-all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    SameDirectory,
    Right,
    Absent,
    /// A symlink to another path.
    Elsewhere(PathBuf),
    /// Something that is not a symlink: an image written on this node's own disk.
    LocalFile,
}

/// The managed-save path libvirt uses for `domain` and the image the link must point at.
pub fn paths(libvirt_save_dir: &Path, hibernate_dir: &Path, domain: &str) -> (PathBuf, PathBuf) {
    (
        image::image_path(libvirt_save_dir, domain),
        image::image_path(hibernate_dir, domain),
    )
}

/// Whether two paths are the same directory (a bind mount shows the same device and inode).
pub fn same_directory(a: &Path, b: &Path) -> io::Result<bool> {
    let (a, b) = (fs::metadata(a)?, fs::metadata(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// Looks at `domain`'s managed-save path.
pub fn state(libvirt_save_dir: &Path, hibernate_dir: &Path, domain: &str) -> io::Result<LinkState> {
    if same_directory(libvirt_save_dir, hibernate_dir).unwrap_or(false) {
        return Ok(LinkState::SameDirectory);
    }
    let (link, target) = paths(libvirt_save_dir, hibernate_dir, domain);
    let meta = match fs::symlink_metadata(&link) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LinkState::Absent),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_symlink() {
        return Ok(LinkState::LocalFile);
    }
    let points_to = fs::read_link(&link)?;
    Ok(if points_to == target {
        LinkState::Right
    } else {
        LinkState::Elsewhere(points_to)
    })
}

/// Makes `libvirt_save_dir/DOMAIN.save` a symlink to `hibernate_dir/DOMAIN.save`. The link is
/// made under a temporary name and renamed over the old one, so libvirt never sees the path
/// missing or half made; a regular file found there is kept aside (renamed with a timestamp),
/// never deleted nor overwritten. The caller has checked that `hibernate_dir` is mounted.
pub fn ensure(libvirt_save_dir: &Path, hibernate_dir: &Path, domain: &str) -> io::Result<Linked> {
    // A fresh node may not have libvirt's directory yet (libvirtd makes it when it first runs).
    fs::create_dir_all(libvirt_save_dir)?;
    let state = state(libvirt_save_dir, hibernate_dir, domain)?;
    let (link, target) = paths(libvirt_save_dir, hibernate_dir, domain);
    let outcome = match state {
        LinkState::SameDirectory => return Ok(Linked::SameDirectory),
        LinkState::Right => return Ok(Linked::Already),
        LinkState::Absent => Linked::Made { replaced: None },
        LinkState::Elsewhere(was) => Linked::Made {
            replaced: Some(was),
        },
        LinkState::LocalFile => {
            // Renamed, not replaced: it may be the only copy of a VM's RAM.
            let kept = image::keep_aside(&link, "local")?;
            Linked::KeptLocal { kept }
        }
    };
    let temporary = libvirt_save_dir.join(format!(".{domain}.save.link-{}", std::process::id()));
    // Only a link of ours can be at this name: one left by a run of this process id that died.
    if fs::symlink_metadata(&temporary).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(&temporary)?;
    }
    std::os::unix::fs::symlink(&target, &temporary)?;
    if let Err(e) = fs::rename(&temporary, &link) {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// libvirt's directory and two VMs' hibernation directories.
    fn scratch(name: &str) -> (Dir, PathBuf, PathBuf, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("clever-vm-save-link-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (libvirt, one, two) = (dir.join("libvirt"), dir.join("one"), dir.join("two"));
        for d in [&libvirt, &one, &two] {
            fs::create_dir_all(d).unwrap();
        }
        (Dir(dir), libvirt, one, two)
    }

    #[test]
    fn the_link_is_made_then_found_in_place() {
        let (_dir, libvirt, one, _) = scratch("made");
        fs::remove_dir(&libvirt).unwrap();
        assert_eq!(
            ensure(&libvirt, &one, "a").unwrap(),
            Linked::Made { replaced: None }
        );
        assert_eq!(
            fs::read_link(libvirt.join("a.save")).unwrap(),
            one.join("a.save")
        );
        assert_eq!(ensure(&libvirt, &one, "a").unwrap(), Linked::Already);
        assert_eq!(state(&libvirt, &one, "a").unwrap(), LinkState::Right);
        // Writing through the link, as libvirt's save does, lands on the VM's filesystem.
        fs::write(libvirt.join("a.save"), b"image").unwrap();
        assert_eq!(fs::read(one.join("a.save")).unwrap(), b"image");
        // Removing the managed-save path, as libvirt does after a restore, keeps the image.
        fs::remove_file(libvirt.join("a.save")).unwrap();
        assert_eq!(fs::read(one.join("a.save")).unwrap(), b"image");
        // Nothing but the link is left in libvirt's directory.
        ensure(&libvirt, &one, "a").unwrap();
        let names: Vec<_> = fs::read_dir(&libvirt).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_link_to_elsewhere_is_replaced() {
        let (_dir, libvirt, one, two) = scratch("wrong");
        std::os::unix::fs::symlink(two.join("a.save"), libvirt.join("a.save")).unwrap();
        fs::write(two.join("a.save"), b"another place").unwrap();
        assert_eq!(
            ensure(&libvirt, &one, "a").unwrap(),
            Linked::Made {
                replaced: Some(two.join("a.save"))
            }
        );
        assert_eq!(
            fs::read_link(libvirt.join("a.save")).unwrap(),
            one.join("a.save")
        );
        // What the old link pointed at is untouched.
        assert_eq!(fs::read(two.join("a.save")).unwrap(), b"another place");
    }

    #[test]
    fn a_regular_file_is_kept_aside_never_deleted() {
        let (_dir, libvirt, one, _) = scratch("local");
        fs::write(libvirt.join("a.save"), b"local image").unwrap();
        assert_eq!(state(&libvirt, &one, "a").unwrap(), LinkState::LocalFile);
        let Linked::KeptLocal { kept } = ensure(&libvirt, &one, "a").unwrap() else {
            panic!("the local image was not kept aside");
        };
        assert_eq!(kept.parent(), Some(libvirt.as_path()));
        assert!(kept.to_string_lossy().ends_with("-local"), "{kept:?}");
        assert_eq!(fs::read(&kept).unwrap(), b"local image");
        assert_eq!(
            fs::read_link(libvirt.join("a.save")).unwrap(),
            one.join("a.save")
        );
        assert!(!one.join("a.save").exists());
    }

    #[test]
    fn the_bind_mount_layout_needs_no_link() {
        let (_dir, libvirt, _, _) = scratch("bind");
        // The same directory under two names, as a bind mount shows it.
        let alias = libvirt.with_file_name("alias");
        std::os::unix::fs::symlink(&libvirt, &alias).unwrap();
        assert_eq!(
            ensure(&libvirt, &alias, "a").unwrap(),
            Linked::SameDirectory
        );
        assert_eq!(
            state(&libvirt, &alias, "a").unwrap(),
            LinkState::SameDirectory
        );
        assert!(fs::symlink_metadata(libvirt.join("a.save")).is_err());
    }

    #[test]
    fn two_domains_links_are_independent() {
        let (_dir, libvirt, one, two) = scratch("two");
        ensure(&libvirt, &one, "a").unwrap();
        ensure(&libvirt, &two, "b").unwrap();
        fs::write(libvirt.join("a.save"), b"image of a").unwrap();
        fs::write(libvirt.join("b.save"), b"image of b").unwrap();
        assert_eq!(fs::read(one.join("a.save")).unwrap(), b"image of a");
        assert_eq!(fs::read(two.join("b.save")).unwrap(), b"image of b");
        assert!(!one.join("b.save").exists() && !two.join("a.save").exists());
        // Remaking one leaves the other alone.
        assert_eq!(
            ensure(&libvirt, &two, "a").unwrap(),
            Linked::Made {
                replaced: Some(one.join("a.save"))
            }
        );
        assert_eq!(
            fs::read_link(libvirt.join("b.save")).unwrap(),
            two.join("b.save")
        );
        assert_eq!(fs::read(one.join("a.save")).unwrap(), b"image of a");
    }
}
