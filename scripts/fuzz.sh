#!/usr/bin/env bash
# Fuzzes every parser and every agent's parameters with cargo-fuzz (libFuzzer) and fails on the
# first crash, panic, timeout or out-of-memory. Ends with a table: per target, the executions done,
# the coverage reached (libFuzzer's final `cov`, edges, and `ft`, features), the committed corpus
# and the wall time.
#   scripts/fuzz.sh 10                         the smoke run of `make test`: 10 s per target
#   FUZZ_RUNS=1000000 scripts/fuzz.sh --keep 3600
#                                              `make fuzz`: 10^6 executions per target, at most an
#                                              hour each, and the grown corpus kept
#   scripts/fuzz.sh 60 events2                 only the named targets
# SECONDS caps each target's time; FUZZ_RUNS, when set, stops a target at that many executions
# before the cap (the table says whether it got there).
# Stable toolchain, no sanitizer (-s none); debug assertions on, so integer overflow panics.
# Two checked-in corpora start every run: testing/fuzz/seeds/TARGET (hand-made fixtures) and
# testing/fuzz/corpus/TARGET (what long runs found beyond the seeds, minimised). Both are only read:
# libFuzzer writes what it learns into a scratch directory, so a run leaves `git status` clean.
# With --keep, testing/fuzz/corpus/TARGET becomes a minimal set (libFuzzer -merge=1) of the old
# corpus and the new inputs that reaches every edge the seeds alone do not; commit it.
# A crasher is left in testing/fuzz/artifacts/TARGET/: turn it into a unit test in the crate it
# belongs to.
set -euo pipefail

usage() {
  echo "usage: [FUZZ_RUNS=N] $0 [--keep] [SECONDS] [TARGET...]" >&2
  exit 2
}
keep=false
if [[ "${1:-}" == --keep ]]; then
  keep=true
  shift
fi
seconds=${1:-20}
shift || true
[[ "$seconds" =~ ^[0-9]+$ ]] || usage
runs=${FUZZ_RUNS:-}
[[ -z "$runs" || "$runs" =~ ^[0-9]+$ ]] || usage
root=$(cd "$(dirname "$0")/.." && pwd)
# cargo-fuzz looks for fuzz/ under the project root unless told where the fuzz project is.
fuzz_dir="$root/testing/fuzz"
cd "$fuzz_dir"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is missing; make setup installs it" >&2
  exit 1
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/clever-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

flags=(--fuzz-dir "$fuzz_dir" -s none --debug-assertions)
cargo fuzz build "${flags[@]}"

# -timeout: one input taking over 10 s is a hang; -rss_limit_mb: over 512 MiB is an OOM.
limits=(-rss_limit_mb=512 -timeout=10 -max_len=65536)
bound=(-max_total_time="$seconds")
[[ -n "$runs" ]] && bound+=(-runs="$runs")

# corpus_size DIR: "FILES KIB", the KiB the files hold (rounded up).
corpus_size() {
  find "$1" -type f -printf '%s\n' | awk '{ n++; b += $1 } END { printf "%d %d\n", n, (b + 1023) / 1024 }'
}

# keep_corpus TARGET LOG: replaces corpus/TARGET with the merge of itself and the scratch corpus
# (libFuzzer's output in LOG.merge), less what the seeds already reach.
keep_corpus() {
  local target=$1 log=$2 merged="$scratch/$1.merged" seed
  mkdir -p "$merged"
  # Starting the merge from the seeds means an input is kept only for what the seeds miss. The
  # merge counts edges, not how often each is hit (-use_counters=0), and picks a minimal cover
  # (-set_cover_merge=1): hundreds of inputs per target instead of thousands, and the hit
  # counts come back within seconds of the next run.
  cp seeds/"$target"/* "$merged"/
  cargo fuzz run "${flags[@]}" "$target" "$merged" "corpus/$target" "$scratch/$target" -- \
    -merge=1 -set_cover_merge=1 -use_counters=0 "${limits[@]}" 2>"$log.merge" || return 1
  for seed in seeds/"$target"/*; do rm -f "$merged/${seed##*/}"; done
  rm -rf "corpus/$target"
  mv "$merged" "corpus/$target"
}

if (($#)); then targets=("$@"); else mapfile -t targets < <(cargo fuzz list --fuzz-dir "$fuzz_dir"); fi
failed=()
short=()
rows=()
for target in "${targets[@]}"; do
  [[ -d "seeds/$target" ]] || { echo "fuzz: no seeds/$target" >&2; exit 1; }
  mkdir -p "corpus/$target" "$scratch/$target"
  log="$scratch/$target.log"
  echo "fuzz: $target, ${runs:+$runs executions or }${seconds}s at most"
  start=$EPOCHREALTIME
  status=ok
  if ! cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "corpus/$target" "seeds/$target" -- \
    "${bound[@]}" "${limits[@]}" -print_final_stats=1 2>"$log"; then
    tail -n 40 "$log" >&2
    failed+=("$target")
    status=FAILED
  elif $keep && ! keep_corpus "$target" "$log"; then
    tail -n 40 "$log.merge" >&2
    failed+=("$target")
    status="merge FAILED"
  fi
  wall=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  # libFuzzer's last words: `#N DONE cov: X ft: Y corp: ...`.
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE ' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  read -r files kib < <(corpus_size "corpus/$target")
  if [[ "$status" == ok && -n "$runs" && "${executions:-0}" -lt "$runs" ]]; then
    status="below $runs"
    short+=("$target")
  fi
  rows+=("| $target | ${executions:-?} | ${cov:-?} | ${ft:-?} | $files | $kib | $wall | $status |")
  echo "fuzz: $target: ${executions:-?} executions, cov ${cov:-?}, ft ${ft:-?}, ${wall}s, $status"
done

echo
echo "| target | executions | cov | ft | corpus files | corpus KiB | wall s | result |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
read -r files kib < <(corpus_size corpus)
echo
echo "fuzz: testing/fuzz/corpus: $files files, $kib KiB"

if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in testing/fuzz/artifacts/)" >&2
  exit 1
fi
if ((${#short[@]})); then
  echo "fuzz: ${#targets[@]} targets, no crash; below $runs executions within ${seconds}s: ${short[*]}"
else
  echo "fuzz: ${#targets[@]} targets, ${runs:+$runs executions or }${seconds}s each, no crash"
fi
