#!/usr/bin/env bash
# Install-layout test: `make install` into scratch DESTDIRs, then check what Pacemaker relies on.
# Usage: check-install.sh AGENT...   (the agents the Makefile found under agents/)
set -euo pipefail
cd "$(dirname "$0")/.."
release="${CARGO_TARGET_DIR:-target}/release"

fail() { echo "check-install: FAIL: $*" >&2; exit 1; }
(($# > 0)) || fail "no agents to check: agents/ has no agent packages"
for tool in xmllint crm_resource unshare readelf; do
  command -v "$tool" >/dev/null || fail "$tool is missing (make setup installs it)"
done

scratch=$(mktemp -d /tmp/clever-install.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
checks=0

# 1. Default prefix: the OCF provider directory Pacemaker searches.
make -s install DESTDIR="$scratch/root" >/dev/null
provider="$scratch/root/usr/lib/ocf/resource.d/clever"
for agent in "$@"; do
  installed="$provider/$agent"
  [[ -f "$installed" && -x "$installed" ]] || fail "$installed missing or not executable"
  [[ $(stat -c %a "$installed") == 755 ]] || fail "$installed has mode $(stat -c %a "$installed"), want 755"
  env -i "$installed" meta-data >"$scratch/$agent.xml" || fail "$agent meta-data failed"
  cmp -s "$scratch/$agent.xml" <("$release/$agent" meta-data) || fail "$agent: installed binary differs from the build"
  # Exactly as ocf-tester validates: from the DTD's directory, the document on stdin.
  (cd /usr/share/resource-agents && xmllint --noout --valid - <"$scratch/$agent.xml") || fail "$agent metadata vs ra-api-1.dtd"
  xmllint --noout --relaxng /usr/share/resource-agents/metadata.rng "$scratch/$agent.xml" 2>/dev/null || fail "$agent metadata vs OCF 1.1 grammar"
  # What make install ships static must be static: no program interpreter to load.
  if [[ " ${CLEVER_STATIC_AGENTS:-} " == *" $agent "* ]]; then
    ! readelf -l "$installed" | grep -q 'program interpreter' || fail "$agent should be statically linked"
  fi
  page="$scratch/root/usr/share/man/man7/ocf_clever_$agent.7"
  [[ -f "$page" ]] || fail "man page $page missing"
  MANWIDTH=80 man -l "$page" 2>/dev/null | col -b | grep "ocf_clever_$agent" >/dev/null || fail "man page of $agent does not render"
  checks=$((checks + 6))
done
# The vm agent's libvirt-linked build: outside the provider directory, where vm looks for it; only
# it links libvirt, and it is the same agent.
if [[ " $* " == *" vm "* ]]; then
  linked="$scratch/root/usr/lib/clever-cluster/vm-libvirt"
  [[ -f "$linked" && -x "$linked" ]] || fail "$linked missing or not executable"
  [[ $(stat -c %a "$linked") == 755 ]] || fail "$linked has mode $(stat -c %a "$linked"), want 755"
  grep -q 'NEEDED.*\[libvirt\.so' <<<"$(readelf -d "$linked")" || fail "vm-libvirt does not link libvirt.so"
  ! grep -q 'NEEDED.*\[libvirt' <<<"$(readelf -d "$provider/vm")" || fail "vm links libvirt: its monitor must not load it"
  cmp -s <(env -i "$linked" meta-data) "$scratch/vm.xml" || fail "vm-libvirt's metadata differs from vm's"
  checks=$((checks + 5))
fi
if [[ -d commands/clevervm ]]; then
  [[ -x "$scratch/root/usr/sbin/clevervm" ]] || fail "clevervm not installed in /usr/sbin"
  [[ -x "$scratch/root/etc/init.d/clevervm" ]] || fail "LSB script /etc/init.d/clevervm not installed"
  grep -q '^### BEGIN INIT INFO' "$scratch/root/etc/init.d/clevervm" || fail "init script lacks the LSB header"
  set +e; "$scratch/root/etc/init.d/clevervm" restart 2>/dev/null; rc=$?; set -e
  ((rc == 3)) || fail "init script restart gave $rc, LSB wants 3 (unimplemented)"
  # On a systemd node Debian's init-functions hook turns "/etc/init.d/X status" into "systemctl
  # status X.service". The script must reach clevervm instead: run it as /etc/init.d/clevervm in a
  # private mount namespace that looks like a systemd node, with a systemctl that only says it ran.
  stub="$scratch/systemd-node"
  mkdir -p "$stub/bin"
  printf '#!/bin/sh\necho "systemctl $*"\n' >"$stub/bin/systemctl"
  printf '#!/bin/sh\necho "clevervm $*"\n' >"$stub/clevervm"
  chmod 0755 "$stub/bin/systemctl" "$stub/clevervm"
  sed "s|^CLEVERVM=.*|CLEVERVM=$stub/clevervm|" "$scratch/root/etc/init.d/clevervm" >"$stub/clevervm.init"
  chmod 0755 "$stub/clevervm.init"
  reached=$(unshare --mount --propagation private sh -c '
    set -e
    mount -t tmpfs clever-check /run && mkdir -p /run/systemd/system
    mount -t tmpfs clever-check /etc/init.d && cp "$1/clevervm.init" /etc/init.d/clevervm
    PATH="$1/bin:$PATH" /etc/init.d/clevervm status' sh "$stub") \
    || fail "the init script could not be run as on a systemd node"
  [[ "$reached" == "clevervm status" ]] \
    || fail "on a systemd node /etc/init.d/clevervm status gave \"$reached\", not clevervm's status"
  MANWIDTH=80 man -l "$scratch/root/usr/share/man/man8/clevervm.8" 2>/dev/null | col -b | grep migrate >/dev/null \
    || fail "clevervm(8) does not render"
  [[ -f "$scratch/root/usr/share/bash-completion/completions/clevervm" ]] || fail "bash completion missing"
  checks=$((checks + 7))
fi
# The web console: binary, its PAM service, and a systemd unit that nothing enables.
console_unit="$scratch/root/lib/systemd/system/clever-console.service"
[[ -x "$scratch/root/usr/sbin/clever-console" ]] || fail "clever-console not installed in /usr/sbin"
[[ -f "$scratch/root/etc/pam.d/clever-console" ]] || fail "PAM service /etc/pam.d/clever-console not installed"
grep -q '^@include common-auth' "$scratch/root/etc/pam.d/clever-console" || fail "the PAM service does not check passwords"
[[ -f "$console_unit" && $(stat -c %a "$console_unit") == 644 ]] || fail "clever-console.service missing or not mode 644"
grep -qx 'ExecStart=/usr/sbin/clever-console $CLEVER_CONSOLE_OPTS' "$console_unit" || fail "the unit does not run the installed binary"
[[ -z "$(find "$scratch/root" -path '*.wants/*' -o -path '*/etc/systemd/system/*')" ]] || fail "the console unit must not be enabled"
MANWIDTH=80 man -l "$scratch/root/usr/share/man/man8/clever-console.8" 2>/dev/null | col -b | grep -- --listen >/dev/null \
  || fail "clever-console(8) does not render"
checks=$((checks + 6))
leftovers=$(find "$scratch/root" -name '.*.new' | wc -l)
((leftovers == 0)) || fail "install left temporary files behind"
unexpected=$(ls "$provider" | grep -vxF -f <(printf '%s\n' "$@") || true)
[[ -z "$unexpected" ]] || fail "unexpected files installed: $unexpected"
checks=$((checks + 2))

# 2. Pacemaker's own view: in a private mount namespace the scratch tree stands in for the
# host's provider directory, so crm_resource finds ocf:clever:* exactly as installed.
unshare -m --propagation private bash -euo pipefail -c '
  mount -t tmpfs tmpfs /usr/lib/ocf/resource.d
  mkdir /usr/lib/ocf/resource.d/clever
  mount --bind "$1" /usr/lib/ocf/resource.d/clever
  shift
  listed=$(crm_resource --list-agents ocf:clever)
  for agent in "$@"; do
    grep -qxF "$agent" <<<"$listed" || { echo "crm_resource does not list ocf:clever:$agent" >&2; exit 1; }
    crm_resource --show-metadata "ocf:clever:$agent" >"/tmp/.clever-pcmk-$agent.xml"
    grep -q "<resource-agent name=\"$agent\"" "/tmp/.clever-pcmk-$agent.xml" \
      || { echo "crm_resource --show-metadata ocf:clever:$agent gave no metadata" >&2; exit 1; }
    rm -f "/tmp/.clever-pcmk-$agent.xml"
  done
' _ "$provider" "$@" || fail "Pacemaker does not see the installed agents"
checks=$((checks + 2 * $#))

# 3. PREFIX is honoured.
make -s install DESTDIR="$scratch/prefixed" PREFIX=/opt/clever >/dev/null
for agent in "$@"; do
  [[ -x "$scratch/prefixed/opt/clever/lib/ocf/resource.d/clever/$agent" ]] || fail "PREFIX not honoured for $agent"
  checks=$((checks + 1))
done
if [[ " $* " == *" vm "* ]]; then
  [[ -x "$scratch/prefixed/opt/clever/lib/clever-cluster/vm-libvirt" ]] || fail "PREFIX not honoured for vm-libvirt"
  checks=$((checks + 1))
fi
grep -qx 'ExecStart=/opt/clever/sbin/clever-console $CLEVER_CONSOLE_OPTS' \
  "$scratch/prefixed/lib/systemd/system/clever-console.service" || fail "PREFIX not honoured in the console's unit"
checks=$((checks + 1))

echo "install layout: $checks passed, 0 failed"
