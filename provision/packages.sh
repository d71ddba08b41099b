#!/bin/sh
# Installs what a Vagrant node of the lab needs: DRBD's tools (the kernel module is in Debian's
# kernel), the cluster stack, and our agents from the Debian package built on the host
# (`make deb` puts it in build/deb/, which the synced folder brings here).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq drbd-utils pacemaker pacemaker-cli-utils corosync crmsh resource-agents \
    e2fsprogs >/dev/null
modprobe drbd
echo drbd >/etc/modules-load.d/drbd.conf
package=$(ls /vagrant/build/deb/clever-cluster_*_amd64.deb 2>/dev/null | tail -n 1 || true)
if [ -n "$package" ]; then
    apt-get install -y -qq "$package" >/dev/null
    echo "installed $package"
else
    echo "no build/deb/clever-cluster_*.deb: run 'make deb' on the host, then 'vagrant provision'" >&2
fi
