#!/bin/sh
# Configures one DRBD resource on a node. The same script provisions the VM nodes of the test
# tier (busybox sh, no udev) and the Vagrant nodes (Debian 12), so what CI tests is what an admin
# gets from `vagrant up`.
#
#   drbd.sh config RES MINOR DISK NODE1 ADDRESS1 NODE2 ADDRESS2
#       writes /etc/drbd.d/RES.res: /dev/drbdMINOR on DISK, internal metadata, protocol C,
#       replication on port 7789 between the two nodes (names must be their host names)
#   drbd.sh create RES      creates the metadata (once) and brings the resource up
#   drbd.sh first-primary RES FSTYPE
#       on one node only, once: declares its data UpToDate (starting the initial sync) and
#       makes a filesystem on the device, leaving the node Secondary
#   drbd.sh seed RES DIRECTORY FILE...
#       on the node that ran first-primary, once, before Pacemaker manages the resource: mounts
#       its filesystem at DIRECTORY, copies the FILEs there and makes DIRECTORY/hibernate (the vm
#       agent's hibernation images), then unmounts it and leaves the node Secondary
#   drbd.sh fencing POLICY
#       writes /etc/drbd.d/global_common.conf with Pacemaker's fencing handlers, as LINBIT
#       recommends: on losing its peer a Primary runs crm-fence-peer.9.sh, which forbids
#       promoting the peer (a CIB constraint) while its data is outdated; the peer's resync
#       runs crm-unfence-peer.9.sh, which lifts it. POLICY is resource-and-stonith where the
#       cluster has working fencing (I/O freezes until the handler has answered), else
#       resource-only
#
# DRBD_FAST_TIMERS=1 shortens DRBD's ping and connect intervals so link loss shows in seconds
# (the tests); the defaults are DRBD's own.
set -eu

command=${1:-}
[ $# -gt 0 ] && shift

links() {
    # Without udev (VM tier), create the /dev/drbd/by-res links udev's drbd rule would.
    [ -d /run/udev ] && return 0
    minor=$1
    # drbdadm sh-udev prints RESOURCE=r0/0 DEVICE=drbd0 DISK=vda, as udev's 65-drbd.rules
    # turns them into drbd/by-res/$RESOURCE and drbd/by-disk/$DISK.
    drbdadm sh-udev "minor-$minor" | while IFS='=' read -r key value; do
        case "$key" in
            RESOURCE) link=by-res ;;
            DISK) link=by-disk ;;
            *) continue ;;
        esac
        [ -n "$value" ] || continue
        mkdir -p "$(dirname "/dev/drbd/$link/$value")"
        ln -sfn "/dev/drbd$minor" "/dev/drbd/$link/$value"
    done
}

case "$command" in
config)
    [ $# -eq 7 ] || { echo "usage: drbd.sh config RES MINOR DISK NODE1 ADDRESS1 NODE2 ADDRESS2" >&2; exit 2; }
    res=$1 minor=$2 disk=$3
    timers=""
    if [ "${DRBD_FAST_TIMERS:-0}" = 1 ]; then
        timers="ping-int 2; ping-timeout 20; connect-int 2;"
    fi
    mkdir -p /etc/drbd.d
    cat >"/etc/drbd.d/$res.res" <<EOF
resource $res {
  net { protocol C; verify-alg crc32c; $timers }
  disk { c-plan-ahead 0; resync-rate 200M; }
  device /dev/drbd$minor;
  disk $disk;
  meta-disk internal;
  on $4 { address $5:7789; }
  on $6 { address $7:7789; }
}
EOF
    ;;
create)
    [ $# -eq 1 ] || { echo "usage: drbd.sh create RES" >&2; exit 2; }
    mkdir -p /var/lock /var/lib/drbd
    if ! drbdadm dump-md "$1" >/dev/null 2>&1; then
        drbdadm -- --force create-md "$1"
    fi
    drbdadm up "$1"
    links "$(drbdadm sh-minor "$1")"
    ;;
first-primary)
    [ $# -eq 2 ] || { echo "usage: drbd.sh first-primary RES FSTYPE" >&2; exit 2; }
    drbdadm primary --force "$1"
    device="/dev/drbd$(drbdadm sh-minor "$1")"
    if command -v "mkfs.$2" >/dev/null 2>&1; then
        "mkfs.$2" -q "$device"
    else
        mke2fs -q -t "$2" "$device"
    fi
    drbdadm secondary "$1"
    ;;
seed)
    [ $# -ge 3 ] || { echo "usage: drbd.sh seed RES DIRECTORY FILE..." >&2; exit 2; }
    res=$1 directory=$2
    shift 2
    # Every file checked before the device is touched: a missing one leaves DRBD as it was.
    for file in "$@"; do
        [ -f "$file" ] || { echo "drbd.sh seed: $file is missing" >&2; exit 1; }
    done
    drbdadm primary "$res"
    mkdir -p "$directory"
    mount "/dev/drbd$(drbdadm sh-minor "$res")" "$directory"
    mkdir -p "$directory/hibernate"
    cp "$@" "$directory/"
    umount "$directory"
    drbdadm secondary "$res"
    ;;
fencing)
    [ $# -eq 1 ] || { echo "usage: drbd.sh fencing resource-only|resource-and-stonith" >&2; exit 2; }
    case "$1" in
        resource-only | resource-and-stonith) ;;
        *) echo "drbd.sh fencing: unknown policy $1" >&2; exit 2 ;;
    esac
    mkdir -p /etc/drbd.d
    cat >/etc/drbd.d/global_common.conf <<EOF
global { usage-count no; }
common {
  disk { fencing $1; }
  handlers {
    fence-peer "/usr/lib/drbd/crm-fence-peer.9.sh";
    after-resync-target "/usr/lib/drbd/crm-unfence-peer.9.sh";
  }
}
EOF
    ;;
*)
    echo "usage: drbd.sh config|create|first-primary|seed|fencing ..." >&2
    exit 2
    ;;
esac
