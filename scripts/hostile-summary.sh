#!/usr/bin/env bash
# The summary line of the hostile-input and fault tests, per agent: each such test writes one
# line "agent tried panics side-effects wrong" into DIR (ocf_conformance::hostile::Tally), and
# this adds them up. Fails when no test wrote anything (they did not run) or any count is not 0.
set -euo pipefail
dir=${1:?usage: hostile-summary.sh DIR}
shopt -s nullglob
files=("$dir"/*)
if [ ${#files[@]} -eq 0 ]; then
    echo "hostile-summary: no results in $dir: the hostile and fault tests did not run" >&2
    exit 1
fi
cat "${files[@]}" | awk '
    { tried[$1] += $2; panics[$1] += $3; effects[$1] += $4; wrong[$1] += $5; tests[$1]++ }
    END {
        bad = 0
        for (agent in tried) {
            printf "hostile inputs, %s: %d tried in %d tests, %d panics, %d side effects on rejected input, %d wrong answers\n",
                agent, tried[agent], tests[agent], panics[agent], effects[agent], wrong[agent]
            if (panics[agent] + effects[agent] + wrong[agent] > 0) bad = 1
        }
        exit bad
    }' | sort
