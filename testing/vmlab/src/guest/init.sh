#!/bin/busybox sh
# PID 1 of a VM node: busybox, Debian's kernel modules, drbd-utils, then a control loop on a
# virtio serial port (named lab.ctl) that runs the host's scripts one at a time. (A second 8250
# UART was tried first: under a loaded host its input sometimes stalled for good.)
#
# Protocol, one line each way: the host sends `ID SECONDS BASE64-SCRIPT`; the guest runs
# the script with `sh` under `timeout SECONDS`, then answers `@@OUT ID`, the base64 of stdout,
# `@@ERR ID`, the base64 of stderr, `@@END ID EXIT-CODE`. `@@READY` says the loop listens,
# `@@GOT ID` that a request arrived whole (for whoever reads a transcript); empty lines are
# ignored.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/clever/bin
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /var/lock /var/run /var/lib/drbd /mnt /usr/bin /usr/sbin /sbin /bin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
ln -sf /proc/self/mounts /etc/mtab

while read -r module; do
    insmod "/lib/modules/$module" 2>/dev/null || echo "lab: insmod $module failed" >/dev/console
done </etc/lab-modules

name=node
address=
for word in $(cat /proc/cmdline); do
    case "$word" in
        lab.name=*) name=${word#lab.name=} ;;
        lab.ip=*) address=${word#lab.ip=} ;;
    esac
done
hostname "$name"
echo "$name" >/etc/hostname
ip link set lo up
if [ -n "$address" ]; then
    ip addr add "$address" dev eth0
    ip link set eth0 up
fi

control=
for _ in $(seq 100); do
    for port in /sys/class/virtio-ports/*; do
        [ "$(cat "$port/name" 2>/dev/null)" = lab.ctl ] && control=/dev/${port##*/}
    done
    [ -n "$control" ] && [ -c "$control" ] && break
    sleep 0.1
done
echo "lab: $name ready, control on $control" >/dev/console
# A virtio port opens once: read and write through the one descriptor.
exec 0<>"$control" 1>&0 2>/dev/console
echo "@@READY"
while read -r id seconds script; do
    [ -n "$script" ] || continue
    echo "@@GOT $id"
    echo "$script" | base64 -d >/tmp/lab-script
    timeout -s KILL "$seconds" sh /tmp/lab-script </dev/null >/tmp/lab-out 2>/tmp/lab-err
    code=$?
    echo "@@OUT $id"
    base64 /tmp/lab-out
    echo "@@ERR $id"
    base64 /tmp/lab-err
    echo "@@END $id $code"
done
