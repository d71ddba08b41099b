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
#   cluster.sh description TEMPLATE GATEWAY
#       prints the cluster description (pacemaker-cib/README.md) TEMPLATE with gwping's
#       host_list set to GATEWAY and, if CLEVER_FENCE_AGENT is set, its [fencing] section (which
#       must be the file's last) replaced by mode = "devices" with one device per node:
#       CLEVER_FENCE_AGENT logging in to CLEVER_FENCE_HOST as CLEVER_FENCE_USER with the key file
#       CLEVER_FENCE_IDENTITY (a path on the node) or CLEVER_FENCE_PASSWORD, its plug (the node's
#       VM on that host) CLEVER_FENCE_PLUG_PREFIX followed by the node's name. Without
#       CLEVER_FENCE_AGENT the template's own [fencing] stays (the Vagrant lab's says why it is
#       disabled)
#   cluster.sh cib DIR
#       once, on one node, when every node of DIR/cluster.toml is up: the generator's CIB loaded
#       as pacemaker-cib/README.md tells an admin (clever-cib check, generate, crm configure
#       load update), in DIR; waits up to 15 minutes for the nodes to be online first
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
description)
    [ $# -eq 2 ] || { echo "usage: cluster.sh description TEMPLATE GATEWAY" >&2; exit 2; }
    template=$1 gateway=$2
    case "$gateway" in
        '' | *[!0-9.]*) echo "cluster.sh description: gateway $gateway is not an IPv4 address" >&2; exit 2 ;;
    esac
    # Both edits below rely on the template's layout; a template they would miss is an error,
    # not a description with the wrong gateway or fencing.
    [ "$(grep -c '^host_list = ' "$template")" -eq 1 ] \
        || { echo "cluster.sh description: $template needs exactly one 'host_list = ' line" >&2; exit 1; }
    [ "$(grep '^\[' "$template" | tail -n 1)" = "[fencing]" ] \
        || { echo "cluster.sh description: $template must end with its [fencing] section" >&2; exit 1; }
    agent=${CLEVER_FENCE_AGENT:-}
    if [ -z "$agent" ]; then
        sed "s/^host_list = .*/host_list = [\"$gateway\"]/" "$template"
        exit 0
    fi
    case "$agent" in
        fence_virsh | fence_vbox) ;;
        *) echo "cluster.sh description: CLEVER_FENCE_AGENT=$agent: fence_virsh or fence_vbox" >&2; exit 2 ;;
    esac
    host=${CLEVER_FENCE_HOST:-} user=${CLEVER_FENCE_USER:-} prefix=${CLEVER_FENCE_PLUG_PREFIX:-}
    identity=${CLEVER_FENCE_IDENTITY:-} password=${CLEVER_FENCE_PASSWORD:-}
    [ -n "$host" ] && [ -n "$user" ] \
        || { echo "cluster.sh description: $agent needs CLEVER_FENCE_HOST and CLEVER_FENCE_USER" >&2; exit 2; }
    if [ -n "$identity" ] && [ -z "$password" ]; then
        login="identity_file = \"$identity\""
    elif [ -n "$password" ] && [ -z "$identity" ]; then
        login="password = \"$password\""
    else
        echo "cluster.sh description: $agent needs one of CLEVER_FENCE_IDENTITY and CLEVER_FENCE_PASSWORD" >&2
        exit 2
    fi
    # The values go into TOML strings as they are: a quote or backslash would end or change one.
    for value in "$host" "$user" "$prefix" "$identity" "$password"; do
        case "$value" in
            *\"* | *\\*) echo "cluster.sh description: CLEVER_FENCE_* values must not contain \" or \\" >&2; exit 2 ;;
        esac
    done
    nodes=$(awk -F'"' '/^\[\[node\]\]/ { node = 1; next } node && /^name = / { print $2; node = 0 }' "$template")
    [ -n "$nodes" ] || { echo "cluster.sh description: no [[node]] names in $template" >&2; exit 1; }
    sed -e '/^\[fencing\]$/,$d' -e "s/^host_list = .*/host_list = [\"$gateway\"]/" "$template"
    printf '[fencing]\n# %s logs in to %s over ssh as %s and powers off (and on) the VM of a node.\nmode = "devices"\n' \
        "$agent" "$host" "$user"
    for node in $nodes; do
        printf '[[fencing.device]]\nnode = "%s"\nagent = "%s"\nparams = { ip = "%s", username = "%s", %s, plug = "%s%s" }\n' \
            "$node" "$agent" "$host" "$user" "$login" "$prefix" "$node"
    done
    ;;
cib)
    [ $# -eq 1 ] || { echo "usage: cluster.sh cib DIR" >&2; exit 2; }
    cd "$1"
    [ -f cluster.toml ] || { echo "cluster.sh cib: no cluster.toml in $1" >&2; exit 1; }
    expected=$(grep -c '^\[\[node\]\]' cluster.toml || true)
    online=0
    for _ in $(seq 450); do
        online=$(crm_mon -1 --output-as=xml 2>/dev/null | grep -c 'online="true"' || true)
        [ "$online" -ge "$expected" ] && break
        sleep 2
    done
    if [ "$online" -lt "$expected" ]; then
        echo "cluster.sh cib: $online of $expected nodes online after 15 minutes; nothing loaded" >&2
        crm_mon -1 >&2 || true
        exit 1
    fi
    # pacemaker-cib/README.md's commands, word for word (crmsh reads nothing more from stdin).
    clever-cib check cluster.toml
    clever-cib generate cluster.toml -o out/
    crm configure load update out/crm.txt </dev/null
    crm_mon -1
    ;;
*)
    echo "usage: cluster.sh corosync|start|description|cib ..." >&2
    exit 2
    ;;
esac
