#!/bin/busybox sh
# First stage of a cluster VM node (an initramfs): load the kernel modules (DRBD, virtio, ext4;
# the root filesystem has none), mount the node's root disk (/dev/vdb: /dev/vda is DRBD's
# backing disk), copy this run's files (our agents, under /overlay) over it, and hand over to
# its init. The modules stay loaded across switch_root.
/bin/busybox mkdir -p /proc /sys /dev /newroot /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r module; do
    insmod "/lib/modules/$module" 2>/dev/null || echo "lab: insmod $module failed" >/dev/console
done </etc/lab-modules
for _ in $(seq 100); do
    [ -b /dev/vdb ] && break
    sleep 0.1
done
if ! mount -t ext4 /dev/vdb /newroot; then
    echo "lab: cannot mount the root disk /dev/vdb" >/dev/console
    exec sh
fi
[ -d /overlay ] && cp -a /overlay/. /newroot/
umount /proc /sys /dev
exec /bin/busybox switch_root /newroot /usr/sbin/clever-vm-init
