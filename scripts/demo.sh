#!/usr/bin/env bash
# `make demo`: a short tour of what exists so far. The live multi-node lab replaces it later.
set -euo pipefail
cd "$(dirname "$0")/.."
release="${CARGO_TARGET_DIR:-target}/release"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
agents=$(ls agents 2>/dev/null || true)

say "Agents built ($release), installed by 'make install' to /usr/lib/ocf/resource.d/clever/"
for agent in $agents; do
  "$release/$agent" help | head -n 1
done

scratch=$(mktemp -d /tmp/clever-demo.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

say "Pacemaker reads their metadata (crm_resource --show-metadata), from a private mount namespace"
make -s install DESTDIR="$scratch/root" >/dev/null
unshare -m --propagation private bash -euo pipefail -c '
  mount -t tmpfs tmpfs /usr/lib/ocf/resource.d
  mkdir /usr/lib/ocf/resource.d/clever
  mount --bind "$1" /usr/lib/ocf/resource.d/clever
  shift
  for agent in "$@"; do
    echo "ocf:clever:$agent:"
    crm_resource --show-metadata "ocf:clever:$agent" | grep -E "<(parameter|action) " | sed "s/^/  /"
  done
' _ "$scratch/root/usr/lib/ocf/resource.d/clever" $agents

say "Bad input gets exit code 6 and a one-line reason for crm_mon"
for agent in $agents; do
  set +e
  env -i HA_LOGFACILITY=none "$release/$agent" start 2>&1 | sed "s/^/  $agent start: /"
  echo "  exit code ${PIPESTATUS[0]}"
  set -e
done

say "The conformance harness: ocf-tester plus our stricter rules, on the framework's demo agent"
mkdir -p "$scratch/state"
printf '#!/bin/sh\nexec sleep 3600\n' >"$scratch/hang" && chmod 755 "$scratch/hang"
"$release/ocf-conformance" --agent "$release/clever-demo-agent" --instance demo \
  -o state_dir="$scratch/state" --hang backend="$scratch/hang"

say "clevervm, the admin command (here no cluster runs, so status says so and exits 4)"
"$release/clevervm" --help | sed -n '1,12p'
set +e
"$release/clevervm" --timeout 10 status
echo "exit code $?"
set -e

say "Next: make test runs all of this and more; make bench compares with the stock agents"
