#!/bin/sh
# The lab's control channel on a cluster VM node (clever-lab-control.service, started early by
# systemd): the private link's address from the kernel command line, then the same control loop
# as the busybox nodes on the `lab.ctl` virtio serial port (guest/init.sh describes its
# protocol). Corosync and Pacemaker are started by the host through this loop, so a test decides
# when the cluster forms.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /run/lock /var/lib/drbd /var/log/pacemaker /var/log/corosync

address=
for word in $(cat /proc/cmdline); do
    case "$word" in
        lab.ip=*) address=${word#lab.ip=} ;;
    esac
done
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
echo "lab: $(hostname) ready, control on $control" >/dev/console
exec 0<>"$control" 1>&0 2>/dev/console
echo "@@READY"
while read -r id seconds script; do
    [ -n "$script" ] || continue
    echo "@@GOT $id"
    echo "$script" | base64 -d >/run/lab-script
    timeout -s KILL "$seconds" sh /run/lab-script </dev/null >/run/lab-out 2>/run/lab-err
    code=$?
    echo "@@OUT $id"
    base64 -w0 /run/lab-out
    echo
    echo "@@ERR $id"
    base64 -w0 /run/lab-err
    echo
    echo "@@END $id $code"
done
