#!/usr/bin/env bash
# Package test: lintian, then install into a clean root with its own dpkg database, check what
# Pacemaker and man see, reinstall while an agent keeps running, remove and purge.
# Usage: check-deb.sh AGENT...   (the OCF agents the package must ship)
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
(($# > 0)) || fail "no agents given"
shopt -s nullglob
debs=(build/deb/clever-cluster_*.deb)
((${#debs[@]} == 1)) || fail "expected one package in build/deb, found ${#debs[@]} (run make deb)"
deb=${debs[0]}
checks=0

# 1. lintian: errors and warnings fail; remaining tags are justified in
# debian/clever-cluster.lintian-overrides.
lintian --fail-on error,warning "$deb" || fail "lintian"
checks=$((checks + 1))

# 2. Install into an empty root with a fresh dpkg database. Pacemaker and the other
# dependencies live on the host, not in that root, hence --force-depends.
root=$(mktemp -d /tmp/clever-deb.XXXXXX)
log=$(mktemp /tmp/clever-deb-log.XXXXXX)
trap 'rm -rf "$root" "$log"' EXIT
# dpkg, quiet unless it fails (the forced dependencies make it chatty).
pkg() { dpkg --root="$root" --force-depends --force-script-chrootless "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "dpkg $*"; }; }
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
pkg -i "$deb"
provider="$root/usr/lib/ocf/resource.d/clever"
for agent in "$@"; do
  [[ -x "$provider/$agent" ]] || fail "package lacks $provider/$agent"
  checks=$((checks + 1))
done
if [[ " $* " == *" vm "* ]]; then
  linked="$root/usr/lib/clever-cluster/vm-libvirt"
  [[ -x "$linked" ]] || fail "package lacks /usr/lib/clever-cluster/vm-libvirt"
  grep -q 'NEEDED.*\[libvirt\.so' <<<"$(readelf -d "$linked")" || fail "the packaged vm-libvirt does not link libvirt.so"
  ! grep -q 'NEEDED.*\[libvirt' <<<"$(readelf -d "$provider/vm")" || fail "the packaged vm links libvirt"
  checks=$((checks + 2))
fi
[[ -x "$root/usr/sbin/clevervm" ]] || fail "package lacks /usr/sbin/clevervm"
# The README's install steps generate the configuration with the packaged clever-cib.
[[ -x "$root/usr/sbin/clever-cib" ]] || fail "package lacks /usr/sbin/clever-cib"
grep -q "^/etc/init.d/clevervm$" "$root/var/lib/dpkg/info/clever-cluster.conffiles" \
  || fail "/etc/init.d/clevervm is not a conffile"
[[ ! -e "$root/etc/rc2.d" ]] || fail "the init script must not be enabled"
checks=$((checks + 4))
[[ -x "$root/usr/sbin/clever-console" ]] || fail "package lacks /usr/sbin/clever-console"
[[ -f "$root/lib/systemd/system/clever-console.service" ]] || fail "package lacks clever-console.service"
grep -q "^/etc/pam.d/clever-console$" "$root/var/lib/dpkg/info/clever-cluster.conffiles" \
  || fail "/etc/pam.d/clever-console is not a conffile"
[[ ! -e "$root/etc/systemd/system" ]] || fail "the console unit must not be enabled"
for script in preinst postinst prerm postrm; do
  [[ ! -e "$root/var/lib/dpkg/info/clever-cluster.$script" ]] || fail "the package has a $script script"
done
checks=$((checks + 5))

# 3. Pacemaker reads the installed agents: a private mount namespace puts the package's
# provider directory where crm_resource looks.
unshare -m --propagation private bash -euo pipefail -c '
  provider=$1; shift
  mount -t tmpfs tmpfs /usr/lib/ocf/resource.d
  mkdir /usr/lib/ocf/resource.d/clever
  mount --bind "$provider" /usr/lib/ocf/resource.d/clever
  for agent in "$@"; do
    crm_resource --show-metadata "ocf:clever:$agent" | cmp -s - <("$provider/$agent" meta-data) \
      || { echo "crm_resource --show-metadata ocf:clever:$agent differs from the installed agent" >&2; exit 1; }
  done
' _ "$provider" "$@" || fail "Pacemaker does not read the packaged agents"
checks=$((checks + $#))

# 4. The man pages render.
MANWIDTH=80 man -l "$root/usr/share/man/man8/clevervm.8.gz" 2>/dev/null | col -b | grep unmigrate >/dev/null \
  || fail "man clevervm does not render"
for agent in "$@"; do
  MANWIDTH=80 man -l "$root/usr/share/man/man7/ocf_clever_$agent.7.gz" 2>/dev/null | col -b \
    | grep "ocf_clever_$agent" >/dev/null || fail "man ocf_clever_$agent does not render"
done
checks=$((checks + 1 + $#))

# 5. Upgrade in place while an agent runs over and over, as Pacemaker's monitors would: every run
# must find a complete binary (dpkg renames new files over old ones).
agent="$provider/$1"
runs=$root/.runs
( ok=0; bad=0; end=$((SECONDS + 4))
  while ((SECONDS < end)); do
    if "$agent" meta-data >/dev/null 2>&1; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  done
  echo "$ok $bad" >"$runs" ) &
runner=$!
for _ in 1 2 3; do
  pkg -i "$deb"
done
wait "$runner"
read -r ok bad <"$runs"
rm -f "$runs"
((bad == 0 && ok > 0)) || fail "$bad of $((ok + bad)) agent runs failed during reinstall"
checks=$((checks + 1))

# 6. Remove, purge: nothing of the package is left.
pkg -r clever-cluster
pkg -P clever-cluster
left=$(find "$root" -mindepth 1 -not -path "$root/var" -not -path "$root/var/lib" \
  -not -path "$root/var/lib/dpkg" -not -path "$root/var/lib/dpkg/*")
[[ -z "$left" ]] || fail "left after purge: $left"
checks=$((checks + 1))

echo "debian package: $checks passed, 0 failed"
