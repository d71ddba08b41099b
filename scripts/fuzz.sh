#!/usr/bin/env bash
# Fuzzes every parser and every agent's parameters with cargo-fuzz (libFuzzer), SECONDS per
# target (default 20), and fails on the first crash, panic, timeout or out-of-memory.
#   scripts/fuzz.sh            the smoke run of `make test`
#   scripts/fuzz.sh 3600       an hour per target (`make fuzz`)
#   scripts/fuzz.sh 60 events2 only the named targets
# Stable toolchain, no sanitizer (-s none); debug assertions on, so integer overflow panics.
# Seeds are the checked-in testing/fuzz/seeds/TARGET; what libFuzzer learns goes to the working
# corpus testing/fuzz/corpus/TARGET (ignored by git) and carries over between runs. A crasher is
# left in testing/fuzz/artifacts/TARGET/: turn it into a unit test in the crate it belongs to.
set -euo pipefail

seconds=${1:-20}
shift || true
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
# cargo-fuzz looks for fuzz/ under the project root unless told where the fuzz project is.
fuzz_dir="$root/testing/fuzz"
cd "$fuzz_dir"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is missing; make setup installs it" >&2
  exit 1
fi

flags=(--fuzz-dir "$fuzz_dir" -s none --debug-assertions)
cargo fuzz build "${flags[@]}"

if (($#)); then targets=("$@"); else mapfile -t targets < <(cargo fuzz list --fuzz-dir "$fuzz_dir"); fi
failed=()
for target in "${targets[@]}"; do
  [[ -d "seeds/$target" ]] || { echo "fuzz: no seeds/$target" >&2; exit 1; }
  mkdir -p "corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: over 512 MiB is an OOM.
  if ! cargo fuzz run "${flags[@]}" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=512 -timeout=10 -max_len=65536 \
    -print_final_stats=1 2>"corpus/$target.log"; then
    tail -n 40 "corpus/$target.log" >&2
    failed+=("$target")
    continue
  fi
  grep -E '^stat::number_of_executed_units' "corpus/$target.log" | sed "s/^/fuzz: $target /" || true
done

if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in testing/fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
