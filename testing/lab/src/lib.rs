//! The live lab: a real Pacemaker + Corosync cluster of namespace "machines" on one host.
//!
//! - **Nodes** (2–4): each a network + mount + UTS namespace whose init process (this crate's
//!   binary, a child subreaper) runs `corosync -f` and `pacemakerd` with private
//!   `/etc/corosync`, `/var/lib/pacemaker`, `/var/lib/corosync`, `/var/log/{pacemaker,corosync}`,
//!   `/etc/hosts`, and tmpfs `/run` and `/dev/shm`; `fence_lab` is overlaid into `/usr/sbin` and
//!   our built agents into the OCF root's `clever/` provider.
//! - **Network**: two bridges in their own namespace, the cluster interconnect and the uplink
//!   where the **gateway** (the address the ping scoring probes) and the service address live.
//! - **Shared storage**: one loop-device ext4 filesystem every node can see, standing in for the
//!   DRBD device (the kernel module is absent). `ocf:pacemaker:Stateful` stands in for the DRBD
//!   promotable clone, so nothing here tests DRBD itself: a wrong double mount would corrupt the
//!   filesystem instead of being refused by DRBD.
//! - **Fencing**: `fence_lab` ([`fence`]), a stonith resource per node, powers a node off with
//!   `cgroup.kill` on its cgroup.
//! - **VM** (`--vm`): libvirtd per node and the test guest ([`guest`]) under `ocf:clever:vm`, or
//!   under the stock `VirtualDomain` (`--stock`, which also swaps gwping/drbdfs for ping and
//!   Filesystem, for comparisons). `--vms N`: N such stacks, each on its own loop device and
//!   DRBD stand-in, kept on one node.
//! - **Faults**: power cut, interconnect cut, uplink/gateway cut, daemon kill.
//! - **Watching** ([`watch`]): a timeline of a fault and the "never active on two nodes" check.
//! - **Soak** ([`soak`]): randomized faults one after another, with nothing acknowledged lost.
//!
//! Everything belongs to one directory and one cgroup, so [`lab::down`] can always clean up.

pub mod cgroup;
pub mod config;
pub mod error;
pub mod fence;
pub mod guest;
pub mod init;
pub mod lab;
pub mod layout;
pub mod soak;
pub mod watch;

pub use error::LabError;
pub use lab::{down, DownReport, InNode, Lab, LabState, UpOptions, VmStack};
pub use layout::Layout;
