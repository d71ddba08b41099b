//! VM nodes for the lab: qemu (TCG) guests that boot Debian's own kernel, whose in-tree DRBD
//! 8.4 and drbd-utils replicate for real between two of them, so our DRBD code is tested
//! against DRBD rather than only against recorded output.
//!
//! Everything is built at test time from Debian packages ([`image`]): no prepared disk image,
//! nothing downloaded but `.deb` files through apt. Each guest is a busybox initramfs with a
//! control loop on a virtio serial port ([`Vm::run`] runs a script there with a timeout and
//! returns its exit code and output); the two guests share a private link (`-netdev dgram` over
//! unix sockets, no host networking) that [`VmLab::set_link`] cuts and restores through QMP.
//! [`GuestCommands`] points our command seam into a guest, so host-side code (the DRBD reader,
//! `clevervm status`) reads a guest's live state.
//!
//! Limits: no systemd, udev or Pacemaker in these guests (a busybox userland); the cluster
//! nodes of [`cluster`] boot a Debian root filesystem with systemd ([`rootfs`]) to run
//! Corosync, Pacemaker, libvirtd and our package. See docs/labs.md ("Two lab kinds").

pub mod cluster;
pub mod cpio;
mod error;
mod guest_commands;
pub mod image;
mod lab;
mod lab_fence;
pub mod packages;
pub mod rootfs;
mod vm;

pub use error::VmLabError;
pub use guest_commands::{shell_quote, GuestCommands};
pub use lab::{LabConfig, NodeSet, VmLab, DEFAULT_CACHE, NODES, RUN_ROOT};
pub use lab_fence::{FenceEvent, FENCE_PORT};
pub use vm::{Nic, ScriptOutput, Vm, VmSpec, USER_NET_GATEWAY};

/// The provisioning scripts the VM tier and the Vagrantfile share: DRBD (`provision/drbd.sh`)
/// and Corosync + Pacemaker (`provision/cluster.sh`).
pub const PROVISION_DRBD: &str = include_str!("../../../provision/drbd.sh");
pub const PROVISION_CLUSTER: &str = include_str!("../../../provision/cluster.sh");
