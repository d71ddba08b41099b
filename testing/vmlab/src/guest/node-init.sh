#!/bin/sh
# PID 1 of a cluster VM node, on its Debian root filesystem (no systemd, no udev): mounts,
# host name and the private link's address, then the same control loop as the busybox nodes
# (guest/init.sh describes its protocol). Corosync and Pacemaker are started by the host through
# that loop, so a test decides when the cluster forms.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -o remount,rw /
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /run/lock /var/lib/drbd /var/log/pacemaker /var/log/corosync
ln -sfn /run/lock /var/lock
ln -sf /proc/self/mounts /etc/mtab

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
exec 0<>"$control" 1>&0 2>/dev/console
echo "@@READY"
while read -r id seconds script; do
    [ -n "$script" ] || continue
    echo "@@GOT $id"
    echo "$script" | base64 -d >/tmp/lab-script
    timeout -s KILL "$seconds" sh /tmp/lab-script </dev/null >/tmp/lab-out 2>/tmp/lab-err
    code=$?
    echo "@@OUT $id"
    base64 -w0 /tmp/lab-out
    echo
    echo "@@ERR $id"
    base64 -w0 /tmp/lab-err
    echo
    echo "@@END $id $code"
done
