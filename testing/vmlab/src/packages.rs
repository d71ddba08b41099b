//! Debian's own packages for the guests: the distribution kernel (DRBD 8.4 is in-tree),
//! `busybox-static` for a userland, `drbd-utils` for the tools, fetched with apt and kept in a
//! cache outside the repository, keyed by the packages' file names (which carry their versions).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use clever_command::{CommandLine, HostCommands, RunCommand};
use clever_deadline::Deadline;

use crate::error::{io_error, VmLabError};

/// The meta-package whose dependency names the current kernel ABI (`linux-image-6.1.0-NN-amd64`):
/// the versioned names drop out of the archive as security updates come.
const KERNEL_META: &str = "linux-image-amd64";

/// One package as the archive has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    /// The `.deb` file name: name, version (epoch `%3a`-escaped) and architecture.
    pub file_name: String,
}

/// The guest's packages, downloaded and unpacked.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub packages: Vec<Package>,
    /// The kernel release (`6.1.0-56-amd64`), the name of its modules directory.
    pub kernel_release: String,
    /// Every package extracted over one tree.
    pub root: PathBuf,
}

/// Names the packages the guests need, at the versions apt would install now.
pub fn resolve(deadline: &Deadline) -> Result<Vec<Package>, VmLabError> {
    let depends = HostCommands.run_ok(
        &CommandLine::new("apt-cache").args(["depends", KERNEL_META]),
        deadline,
    )?;
    let kernel = depends
        .stdout_text()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Depends: "))
        .find(|name| name.starts_with("linux-image-") && name.ends_with("-amd64"))
        .map(str::to_owned)
        .ok_or_else(|| {
            VmLabError::Packages(format!(
                "`apt-cache depends {KERNEL_META}` names no kernel: run apt-get update"
            ))
        })?;
    [kernel.as_str(), "busybox-static", "drbd-utils"]
        .iter()
        .map(|name| package(name, deadline))
        .collect()
}

/// `apt-get download --print-uris` names the file without fetching it.
pub(crate) fn package(name: &str, deadline: &Deadline) -> Result<Package, VmLabError> {
    let output = HostCommands.run_ok(
        &CommandLine::new("apt-get").args(["download", "--print-uris", name]),
        deadline,
    )?;
    let text = output.stdout_text();
    let file_name = text
        .split_whitespace()
        .nth(1)
        .filter(|file| file.ends_with(".deb"))
        .ok_or_else(|| {
            VmLabError::Packages(format!(
                "apt-get download --print-uris {name} printed no .deb ({}): run apt-get update",
                text.trim()
            ))
        })?;
    Ok(Package {
        name: name.to_owned(),
        file_name: file_name.to_owned(),
    })
}

/// Downloads what the cache lacks and unpacks every package over `dir/root`.
pub fn fetch_and_unpack(
    packages: &[Package],
    cache: &Path,
    dir: &Path,
    deadline: &Deadline,
) -> Result<Unpacked, VmLabError> {
    let debs = cache.join("debs");
    fs::create_dir_all(&debs).map_err(io_error("creating", &debs))?;
    let root = dir.join("root");
    fs::create_dir_all(&root).map_err(io_error("creating", &root))?;
    for package in packages {
        let deb = debs.join(&package.file_name);
        if !deb.is_file() {
            download(&package.name, &debs, deadline)?;
        }
        if !deb.is_file() {
            return Err(VmLabError::Packages(format!(
                "apt-get download {} did not write {}",
                package.name,
                deb.display()
            )));
        }
        HostCommands.run_ok(
            &CommandLine::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
            deadline,
        )?;
    }
    let modules = root.join("lib/modules");
    let kernel_release = fs::read_dir(&modules)
        .map_err(io_error("reading", &modules))?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .next()
        .ok_or_else(|| VmLabError::Packages(format!("no kernel in {}", modules.display())))?;
    Ok(Unpacked {
        packages: packages.to_vec(),
        kernel_release,
        root,
    })
}

/// `apt-get download` writes into its working directory, which the command runner does not set,
/// so this one call is spawned here, still bounded by the deadline. Run as root, apt's sandbox
/// user could not write the cache directory.
fn download(name: &str, into: &Path, deadline: &Deadline) -> Result<(), VmLabError> {
    let mut child = Command::new("apt-get")
        .args(["-q", "-o", "APT::Sandbox::User=root", "download", name])
        .current_dir(into)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_error("running apt-get download in", into))?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(VmLabError::Packages(format!(
                    "apt-get download {name} failed ({status}): run apt-get update, or check \
                     the network to the Debian archive"
                )))
            }
            Ok(None) if deadline.expired() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(VmLabError::Packages(format!(
                    "apt-get download {name} did not finish within {:?}",
                    deadline.timeout()
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(source) => {
                return Err(VmLabError::Io {
                    what: "waiting for apt-get download in",
                    path: into.to_owned(),
                    source,
                })
            }
        }
    }
}
