#!/bin/sh
# Corosync + Pacemaker on a Vagrant node, and on the last node the cluster configuration: the
# DRBD promotable clone (ocf:linbit:drbd) and ocf:clever:drbdfs on its Primary.
#
#   cluster.sh THIS-NODE NAME=IP,NAME=IP
#
# A lab on a private network: Corosync runs without encryption and fencing is disabled (no fence
# device exists here); a production cluster needs both.
set -eu
this=$1
nodes=$2

ring=""
id=0
last=""
for entry in $(echo "$nodes" | tr ',' ' '); do
    name=${entry%%=*}
    ip=${entry#*=}
    id=$((id + 1))
    last=$name
    grep -q " $name\$" /etc/hosts || echo "$ip $name" >>/etc/hosts
    ring="$ring
    node { ring0_addr: $ip; name: $name; nodeid: $id; }"
done

cat >/etc/corosync/corosync.conf <<CONF
totem {
    version: 2
    cluster_name: clever-lab
    transport: knet
    crypto_cipher: none
    crypto_hash: none
}
nodelist {$ring
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
logging {
    to_syslog: yes
}
CONF
systemctl enable corosync pacemaker >/dev/null 2>&1
systemctl restart corosync
systemctl restart pacemaker

[ "$this" = "$last" ] || exit 0

# Wait for both nodes, then describe the resources once.
for _ in $(seq 120); do
    online=$(crm_mon -1 --output-as=xml 2>/dev/null | grep -c 'online="true"' || true)
    [ "$online" -ge 2 ] && break
    sleep 2
done
if ! crm_resource --list-raw 2>/dev/null | grep -q '^fs_data$'; then
    crm configure <<CRM
property stonith-enabled=false
rsc_defaults resource-stickiness=100
primitive drbd_r0 ocf:linbit:drbd params drbd_resource=r0 \\
    op monitor interval=29s role=Promoted op monitor interval=31s role=Unpromoted
clone ms_drbd_r0 drbd_r0 meta promotable=true promoted-max=1 promoted-node-max=1 clone-max=2 notify=true
primitive fs_data ocf:clever:drbdfs params device=/dev/drbd0 directory=/srv/data fstype=ext4 \\
    op monitor interval=20s
colocation fs_on_drbd inf: fs_data ms_drbd_r0:Promoted
order drbd_before_fs Mandatory: ms_drbd_r0:promote fs_data:start
commit
CRM
fi
crm_mon -1
