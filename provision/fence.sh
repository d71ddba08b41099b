#!/bin/sh
# Real fencing for the Vagrant lab, when the Vagrantfile was given a fence host (docs/labs.md):
# the host runs the nodes' VMs, and a fence agent on a node logs in to it over ssh to power the
# other node's VM off and on, as a PDU would cut a server's power.
#
#   fence.sh agent
#       prints the fence agent for the hypervisor this node runs under: fence_virsh under
#       libvirt (KVM or QEMU; it runs `virsh` on the host), fence_vbox under VirtualBox (it runs
#       `VBoxManage` there)
#   fence.sh setup PLUG
#       installs the key file the Vagrantfile uploaded (/tmp/clever-fence-key) as
#       CLEVER_FENCE_IDENTITY, trusts CLEVER_FENCE_HOST's ssh host key, then asks the agent for
#       PLUG's power status as Pacemaker will (PLUG: this node's own VM on the host, the one VM
#       sure to exist while the other may not be created yet), so that a login or a VM name
#       that cannot work fails the provisioning instead of the first fencing
#
# The connection comes from the environment: CLEVER_FENCE_HOST, CLEVER_FENCE_USER and
# CLEVER_FENCE_IDENTITY (where the key goes on the node) or CLEVER_FENCE_PASSWORD.
set -eu

command=${1:-}
[ $# -gt 0 ] && shift

agent() {
    virt=$(systemd-detect-virt || true)
    case "$virt" in
        kvm | qemu) echo fence_virsh ;;
        oracle) echo fence_vbox ;;
        *) echo "fence.sh: no fence agent for hypervisor '$virt' (libvirt or VirtualBox only)" >&2; exit 1 ;;
    esac
}

case "$command" in
agent)
    [ $# -eq 0 ] || { echo "usage: fence.sh agent" >&2; exit 2; }
    agent
    ;;
setup)
    [ $# -eq 1 ] || { echo "usage: fence.sh setup PLUG" >&2; exit 2; }
    plug=$1
    fence_agent=$(agent)
    host=${CLEVER_FENCE_HOST:?} user=${CLEVER_FENCE_USER:?}
    identity=${CLEVER_FENCE_IDENTITY:-} password=${CLEVER_FENCE_PASSWORD:-}
    if [ -n "$identity" ]; then
        # Pacemaker's fencer runs the agent as root: the key must be root's alone (ssh refuses
        # a key others can read).
        install -D -m 0600 -o root -g root /tmp/clever-fence-key "$identity"
        rm -f /tmp/clever-fence-key
        login="identity_file=$identity"
    else
        login="password=$password"
    fi
    # The agent answers no host-key question: the host's key is trusted now, once.
    keys=$(ssh-keyscan -T 10 "$host" 2>/dev/null || true)
    [ -n "$keys" ] || { echo "fence.sh: no ssh server answers on $host" >&2; exit 1; }
    mkdir -p -m 0700 /root/.ssh
    echo "$keys" >>/root/.ssh/known_hosts
    # Pacemaker passes a device's parameters on the agent's stdin, one name=value a line.
    status=$(printf 'action=status\nip=%s\nusername=%s\n%s\nplug=%s\n' "$host" "$user" "$login" "$plug" \
        | "$fence_agent" 2>&1) || {
        echo "fence.sh: $fence_agent cannot see $plug on $host as $user: $status" >&2
        exit 1
    }
    echo "$fence_agent on $host as $user: $plug $status"
    ;;
*)
    echo "usage: fence.sh agent|setup ..." >&2
    exit 2
    ;;
esac
