#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need. Idempotent and quick when
# everything is present (no apt-get update then). Run as root on Debian 12.
set -euo pipefail

packages=(
  # build; the vm agent's libvirt-linked build needs libvirt's headers, found by pkg-config
  build-essential libvirt-dev pkg-config
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
  # testing/vmlab: VM nodes built from Debian packages (apt-get download, dpkg-deb -x, depmod and
  # modprobe --show-depends on the unpacked kernel, ldd, setpriv) booted by qemu-system-x86;
  # dmsetup is copied into the guests to put failing devices under drbdfs
  apt dpkg kmod libc-bin util-linux dmsetup
  # testing/vmlab's cluster nodes (make test): a Debian root filesystem made with debootstrap,
  # its units enabled by the host's `systemctl --root`, turned into an ext4 image by mke2fs -d
  debootstrap e2fsprogs systemd
  # clever-console: PAM's headers and library (login), headless Chromium for its browser test, a
  # font for the screenshots it saves, curl as the HTTPS client of its tests against the binary
  libpam0g-dev chromium fonts-dejavu-core curl
  # pam-client's bindings are generated at build time by bindgen, which loads libclang
  libclang-dev
  # `vagrant validate` of the Vagrantfile, for both of its providers (works offline)
  vagrant vagrant-libvirt
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done

# An installed package whose version no configured suite offers (a backport, a vendor's build)
# can break what Debian 12 needs: the machine image ships qemu-utils from bookworm-backports,
# which Breaks Debian 12's qemu-system-common. Such a package, when apt names it in its complaint,
# goes back to the version the configured suites offer, in the same transaction; everything else
# the machine has stays as it is, and the apt sources are never edited.
installed_from_no_suite() {
  local package=$1 version
  version=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null) || return 1
  [[ -n "$version" ]] || return 1
  ! apt-cache madison "$package" 2>/dev/null | awk -F' [|] ' -v v="$version" '$2 == v {found=1} END {exit !found}'
}

suite_version() {
  apt-cache madison "$1" 2>/dev/null | awk -F' [|] ' 'NR == 1 {print $2}'
}

# The package names in apt's "unmet dependencies" lines, both the one that breaks and the ones it
# names.
packages_named_by_apt() {
  sed -n '/have unmet dependencies/,/^E:/p' |
    grep -oE '(^ [a-z0-9][a-z0-9+.-]+ :)|((Depends|Breaks|Conflicts|PreDepends): [a-z0-9][a-z0-9+.-]+)' |
    sed -E 's/^ //; s/ :$//; s/^[A-Za-z]+: //' | sort -u
}

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  request=("${missing[@]}")
  extra_flags=()
  for _attempt in 1 2 3; do
    if plan=$(apt-get install -s --no-install-recommends "${extra_flags[@]}" "${request[@]}" 2>&1); then
      break
    fi
    changed=0
    while read -r named; do
      [[ -n "$named" ]] || continue
      installed_from_no_suite "$named" || continue
      target=$(suite_version "$named")
      [[ -n "$target" ]] || continue
      case " ${request[*]} " in *" $named="*) continue ;; esac
      echo "setup: $named $(dpkg-query -W -f='${Version}' "$named") is from no configured suite" \
        "and blocks the install: replacing it with $target"
      request+=("$named=$target")
      changed=1
    done < <(packages_named_by_apt <<<"$plan")
    if ((changed == 0)); then
      printf '%s\n' "$plan" >&2
      echo "setup: apt cannot install ${missing[*]} (its reasons above)" >&2
      exit 1
    fi
    extra_flags=(--allow-downgrades)
  done
  apt-get install -y -qq --no-install-recommends "${extra_flags[@]}" "${request[@]}" >/dev/null
fi

# testing/vmlab downloads Debian's kernel, busybox-static and drbd-utils with apt-get download at
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
