//! From a device path in an agent's parameters to the DRBD resource behind it.
//!
//! Admins configure either `/dev/drbdN` or the udev names `/dev/drbd/by-res/RES` (DRBD 8.4,
//! one volume) and `/dev/drbd/by-res/RES/VOL` (DRBD 9). The by-res names carry the resource in
//! the path itself; a bare minor is looked up through the same udev links, because neither
//! `/proc/drbd` (8.4) nor the kernel device tells the resource name. Everything is read under a
//! root path, so tests build the links in a temporary directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::DrbdStatusError;
use crate::proc_drbd::MinorOwner;

/// Where udev puts the per-resource links, relative to the root.
const BY_RES: &str = "dev/drbd/by-res";

/// The DRBD resource a device path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrbdDevice {
    pub resource: String,
    /// `None` when the path names only the resource (8.4's `/dev/drbd/by-res/RES`, whose one
    /// volume is 0).
    pub volume: Option<u32>,
    /// The N of `/dev/drbdN`, when the path or its udev link tells it.
    pub minor: Option<u32>,
}

/// Resolves `device` (an absolute path as configured) to its resource, reading links under
/// `root` (`/` in production).
pub fn resolve_device(root: &Path, device: &Path) -> Result<DrbdDevice, DrbdStatusError> {
    let not_drbd = || DrbdStatusError::NotADrbdDevice {
        path: device.to_owned(),
    };
    if !device.is_absolute() {
        return Err(not_drbd());
    }
    let mut parts = Vec::new();
    for component in device.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(part) => parts.push(part.to_str().ok_or_else(not_drbd)?),
            _ => return Err(not_drbd()),
        }
    }
    match parts.as_slice() {
        ["dev", node] => {
            let minor = minor_of(node).ok_or_else(not_drbd)?;
            let owner = minor_owners(root)?.remove(&minor).ok_or_else(|| {
                DrbdStatusError::UnknownMinor {
                    minor,
                    by_res: root.join(BY_RES),
                }
            })?;
            Ok(DrbdDevice {
                resource: owner.resource,
                volume: Some(owner.volume),
                minor: Some(minor),
            })
        }
        ["dev", "drbd", "by-res", resource] => Ok(DrbdDevice {
            resource: (*resource).to_owned(),
            volume: None,
            minor: link_minor(&root.join(BY_RES).join(resource)),
        }),
        ["dev", "drbd", "by-res", resource, volume] => Ok(DrbdDevice {
            resource: (*resource).to_owned(),
            volume: Some(volume.parse().map_err(|_| not_drbd())?),
            minor: link_minor(&root.join(BY_RES).join(resource).join(volume)),
        }),
        _ => Err(not_drbd()),
    }
}

/// Maps every minor that has a udev by-res link to its resource and volume: what
/// [`crate::ProcDrbd::resources`] needs to name 8.4 minors. No link directory means no DRBD
/// device was ever created, which is an empty map rather than an error.
pub fn minor_owners(root: &Path) -> Result<BTreeMap<u32, MinorOwner>, DrbdStatusError> {
    let by_res = root.join(BY_RES);
    let mut owners = BTreeMap::new();
    let entries = match fs::read_dir(&by_res) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(owners),
        Err(source) => {
            return Err(DrbdStatusError::Read {
                path: by_res,
                source,
            })
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| DrbdStatusError::Read {
            path: by_res.clone(),
            source,
        })?;
        let Some(resource) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = entry.path();
        if let Some(minor) = link_minor(&path) {
            owners.insert(
                minor,
                MinorOwner {
                    resource,
                    volume: 0,
                },
            );
            continue;
        }
        if !path.is_dir() {
            continue;
        }
        let volumes = fs::read_dir(&path).map_err(|source| DrbdStatusError::Read {
            path: path.clone(),
            source,
        })?;
        for volume in volumes.flatten() {
            let number = volume.file_name().to_str().and_then(|v| v.parse().ok());
            if let (Some(number), Some(minor)) = (number, link_minor(&volume.path())) {
                owners.insert(
                    minor,
                    MinorOwner {
                        resource: resource.clone(),
                        volume: number,
                    },
                );
            }
        }
    }
    Ok(owners)
}

/// The minor a udev link points to (`../../drbd3` → 3); only the link's last component is
/// used, so an absolute target does not escape the test root.
fn link_minor(link: &Path) -> Option<u32> {
    let target: PathBuf = fs::read_link(link).ok()?;
    minor_of(target.file_name()?.to_str()?)
}

/// `drbd12` → 12.
fn minor_of(node: &str) -> Option<u32> {
    let digits = node.strip_prefix("drbd")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct TempRoot(PathBuf);

    impl TempRoot {
        fn new(tag: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("clever-drbd-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(path.join(BY_RES)).unwrap();
            Self(path)
        }
    }

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn minor_names() {
        assert_eq!(minor_of("drbd0"), Some(0));
        assert_eq!(minor_of("drbd1016"), Some(1016));
        assert_eq!(minor_of("drbd"), None);
        assert_eq!(minor_of("drbd-1"), None);
        assert_eq!(minor_of("drbd99999999999"), None);
        assert_eq!(minor_of("sda1"), None);
    }

    #[test]
    fn resolves_by_res_and_minor_paths() {
        let root = TempRoot::new("resolve");
        let by_res = root.0.join(BY_RES);
        // DRBD 8.4 style: by-res/RES -> ../../drbd0
        symlink("../../drbd0", by_res.join("r0")).unwrap();
        // DRBD 9 style: by-res/RES/VOL -> ../../../drbdN
        fs::create_dir(by_res.join("data")).unwrap();
        symlink("../../../drbd1000", by_res.join("data/0")).unwrap();
        symlink("/dev/drbd1001", by_res.join("data/1")).unwrap();
        fs::write(by_res.join("data/README"), "not a link").unwrap();

        let owners = minor_owners(&root.0).unwrap();
        assert_eq!(owners.len(), 3);
        assert_eq!(
            owners[&1001],
            MinorOwner {
                resource: "data".into(),
                volume: 1
            }
        );

        let resolve = |p: &str| resolve_device(&root.0, Path::new(p));
        assert_eq!(
            resolve("/dev/drbd0").unwrap(),
            DrbdDevice {
                resource: "r0".into(),
                volume: Some(0),
                minor: Some(0)
            }
        );
        assert_eq!(
            resolve("/dev/drbd1001").unwrap(),
            DrbdDevice {
                resource: "data".into(),
                volume: Some(1),
                minor: Some(1001)
            }
        );
        assert_eq!(
            resolve("/dev/drbd/by-res/data/0").unwrap(),
            DrbdDevice {
                resource: "data".into(),
                volume: Some(0),
                minor: Some(1000)
            }
        );
        assert_eq!(
            resolve("/dev/drbd/by-res/r0").unwrap(),
            DrbdDevice {
                resource: "r0".into(),
                volume: None,
                minor: Some(0)
            }
        );
        // A by-res path names its resource even before udev created the link.
        assert_eq!(
            resolve("/dev/drbd/by-res/new/3").unwrap(),
            DrbdDevice {
                resource: "new".into(),
                volume: Some(3),
                minor: None
            }
        );

        let err = resolve("/dev/drbd7").unwrap_err();
        assert!(
            matches!(err, DrbdStatusError::UnknownMinor { minor: 7, .. }),
            "{err}"
        );
        for bad in [
            "/dev/sda1",
            "dev/drbd0",
            "/dev/drbd/by-res/r0/x",
            "/dev/../dev/drbd0",
            "/dev/drbd/by-res",
        ] {
            let err = resolve(bad).unwrap_err();
            assert!(
                matches!(err, DrbdStatusError::NotADrbdDevice { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn no_link_directory_is_no_minors() {
        let root = std::env::temp_dir().join("clever-drbd-nonexistent-root");
        assert!(minor_owners(&root).unwrap().is_empty());
    }
}
