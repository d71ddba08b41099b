#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need. Idempotent and quick when
# everything is present (no apt-get update then). Run as root on Debian 12.
set -euo pipefail

packages=(
  # build
  build-essential
  # the cluster stack the agents are tested against
  pacemaker pacemaker-cli-utils corosync resource-agents
  # metadata validation (xmllint), the stock agents' needs (modprobe for Filesystem), man pages
  libxml2-utils kmod man-db bsdextrautils
  # namespaces, loop devices, filesystems, ICMP test hosts
  iproute2 util-linux mount e2fsprogs xfsprogs procps psmisc
  # benchmarks: strace counts the processes an action spawns; the stock ping agent needs ping
  strace iputils-ping
  # the Debian package: build, lint
  debhelper fakeroot dpkg-dev lintian
  # ocf:clever:vm: libvirtd + qemu (TCG) test nodes, tini as their PID 1, as/ld for the test guest
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 tini binutils
  # the CIB generator's tests apply its crm and pcs renderings with the real tools
  crmsh pcs
  # crates/vmlab: VM nodes built from Debian packages (apt-get download, dpkg-deb -x, depmod and
  # modprobe --show-depends on the unpacked kernel, ldd, setpriv) booted by qemu-system-x86;
  # dmsetup is copied into the guests to put failing devices under drbdfs
  apt dpkg kmod libc-bin util-linux dmsetup
  # crates/vmlab's cluster nodes (make test-vmcluster): a Debian root filesystem made with
  # debootstrap, turned into an ext4 image by mke2fs -d
  debootstrap e2fsprogs
  # `vagrant validate` of the Vagrantfile, for both of its providers (works offline)
  vagrant vagrant-libvirt
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# crates/vmlab downloads Debian's kernel, busybox-static and drbd-utils with apt-get download at
# test time: the package lists must name them.
if ! apt-cache show linux-image-amd64 busybox-static drbd-utils >/dev/null 2>&1; then
  echo "setup: apt-get update (the VM tier downloads Debian packages)"
  apt-get update -qq
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not on PATH; this project builds with the machine's Rust toolchain" >&2
  exit 1
fi

# cargo-fuzz for scripts/fuzz.sh (`make test` runs a short fuzz of every parser); it builds on the
# stable toolchain with `-s none`.
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
