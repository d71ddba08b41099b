#!/bin/sh
# What the first stage hands over to on a cluster VM node's Debian root: name the node from the
# kernel command line (both nodes boot copies of one image), give it its own machine id (an empty
# one would make this boot systemd's "first boot", which applies the presets and enables again
# the units the image keeps disabled), then hand PID 1 to systemd. The lab's control channel is
# a systemd unit (clever-lab-control.service, in sysinit.target).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
name=node
for word in $(cat /proc/cmdline); do
    case "$word" in
        lab.name=*) name=${word#lab.name=} ;;
    esac
done
umount /proc
echo "$name" >/etc/hostname
echo "$name" | md5sum | cut -c1-32 >/etc/machine-id
exec /lib/systemd/systemd
