#!/bin/sh
# Installs what a Vagrant node of the lab needs: DRBD's tools (the kernel module is in Debian's
# kernel), the cluster stack with crmsh, the fence agents (fence_virsh, fence_vbox), libvirt and
# qemu for the VM (the same packages the VM test tier's nodes have, testing/vmlab/src/rootfs.rs),
# then our Debian package, installed as the README says. `make vagrant-assets` on the host builds
# it into build/deb/, which the rsync'd folder brings to /vagrant/build/deb/.
set -eu
export DEBIAN_FRONTEND=noninteractive

# What `make vagrant-assets` builds, checked first: without it the lab would come up without our
# agents or its VM, and the provisioning would fail later and less clearly.
debs=$(ls /vagrant/build/deb/clever-cluster_*_amd64.deb 2>/dev/null | wc -l)
if [ "$debs" -ne 1 ] || [ ! -f /vagrant/build/vagrant/guest.elf ] \
    || [ ! -f /vagrant/build/vagrant/clever.xml ]; then
    echo "packages.sh: expected one /vagrant/build/deb/clever-cluster_*_amd64.deb (found $debs)" >&2
    echo "and the counter guest in /vagrant/build/vagrant/ (guest.elf, clever.xml)." >&2
    echo "Run 'make vagrant-assets' on the host first, then 'vagrant destroy -f && vagrant up'." >&2
    exit 1
fi

apt-get update -qq
# qemu-system-x86 runs the counter guest with TCG (its domain XML says type='qemu'), so the boxes
# need no nested virtualization.
apt-get install -y -qq drbd-utils pacemaker pacemaker-cli-utils corosync crmsh resource-agents \
    fence-agents libvirt-daemon-system libvirt-clients qemu-system-x86 e2fsprogs >/dev/null
modprobe drbd
echo drbd >/etc/modules-load.d/drbd.conf

# libvirtd's first start probes qemu's capabilities and caches them: done once here, as the VM
# tier does, so that the cluster's first start of it is an ordinary one. Then it is left to
# Pacemaker (systemd:libvirtd): started neither at boot nor by socket activation
# (pacemaker-cib/README.md); libvirt-guests would act on the VM behind Pacemaker's back at
# shutdown.
systemctl start libvirtd.service
virsh -c qemu:///system domcapabilities >/dev/null
systemctl disable --now libvirtd.service libvirtd.socket libvirtd-ro.socket \
    libvirtd-admin.socket libvirt-guests.service

# The README's install line, word for word. apt asks before installing dependencies it must add;
# they are all installed above, and `yes` answers should a new one appear.
cd /vagrant/build/deb
yes | apt install ./clever-cluster_*_amd64.deb
dpkg -s clever-cluster | grep -q '^Status: install ok installed'
