#!/bin/sh
# Corosync + Pacemaker on a lab node. The same script sets up the VM nodes of the test tier
# (testing/vmlab, Debian 12 with systemd) and the Vagrant nodes (Debian 12), so what CI tests is
# what an admin gets from `vagrant up`.
#
#   cluster.sh corosync NAME=IP,NAME=IP [TOKEN_MS]
#       writes /etc/corosync/corosync.conf (knet on the given addresses, two-node quorum, token
#       TOKEN_MS, default Corosync's 1000 in 3.x) and adds the nodes to /etc/hosts
#   cluster.sh start
#       starts Corosync, then Pacemaker: through systemd where it runs, else in the background
#       (a node without systemd)
#   cluster.sh vagrant-cib
#       once, on one node: the Vagrant lab's configuration, the ocf:linbit:drbd promotable clone
#       and ocf:clever:drbdfs on its Primary (the VM tier loads the generator's CIB instead)
#
# A lab on a private network: Corosync runs without encryption; a production cluster needs it.
set -eu

command=${1:-}
[ $# -gt 0 ] && shift

case "$command" in
corosync)
    [ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: cluster.sh corosync NAME=IP,NAME=IP [TOKEN_MS]" >&2; exit 2; }
    token=${2:-1000}
    ring=""
    id=0
    for entry in $(echo "$1" | tr ',' ' '); do
        name=${entry%%=*}
        ip=${entry#*=}
        id=$((id + 1))
        grep -q "[[:space:]]$name\$" /etc/hosts 2>/dev/null || printf '%s\t%s\n' "$ip" "$name" >>/etc/hosts
        ring="$ring
    node {
        ring0_addr: $ip
        name: $name
        nodeid: $id
    }"
    done
    mkdir -p /etc/corosync /var/log/corosync
    cat >/etc/corosync/corosync.conf <<CONF
totem {
    version: 2
    cluster_name: clever-lab
    transport: knet
    token: $token
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
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_syslog: yes
    to_stderr: no
    timestamp: on
}
CONF
    ;;
start)
    if [ -d /run/systemd/system ]; then
        systemctl enable corosync pacemaker >/dev/null 2>&1
        systemctl restart corosync
        systemctl restart pacemaker
        exit 0
    fi
    # No systemd: both in their own sessions, so that whoever ran this script can go.
    mkdir -p /var/log/corosync /var/log/pacemaker
    chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker
    setsid -f corosync -f >/var/log/corosync/stdout 2>&1 </dev/null
    # pacemakerd needs Corosync's IPC up.
    for _ in $(seq 120); do
        corosync-cmapctl -g totem.cluster_name >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! corosync-cmapctl -g totem.cluster_name >/dev/null 2>&1; then
        echo "cluster.sh: Corosync did not start:" >&2
        tail -n 20 /var/log/corosync/corosync.log /var/log/corosync/stdout >&2
        exit 1
    fi
    setsid -f pacemakerd >/var/log/pacemaker/stdout 2>&1 </dev/null
    ;;
vagrant-cib)
    [ $# -eq 0 ] || { echo "usage: cluster.sh vagrant-cib" >&2; exit 2; }
    for _ in $(seq 120); do
        online=$(crm_mon -1 --output-as=xml 2>/dev/null | grep -c 'online="true"' || true)
        [ "$online" -ge 2 ] && break
        sleep 2
    done
    if ! crm_resource --list-raw 2>/dev/null | grep -q '^fs_data$'; then
        # No fence device in this lab: fencing is off, and DRBD's fencing is resource-only.
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
    ;;
*)
    echo "usage: cluster.sh corosync|start|vagrant-cib ..." >&2
    exit 2
    ;;
esac
