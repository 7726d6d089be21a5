#!/usr/bin/env bash
# Interleaved A/B timing of a training step across commits: builds each commit in its own git worktree, then
# runs `microdit bench-step` with the same arguments on each in turn, ROUNDS times, and prints each run's median
# ms/step and median process CPU ms/step. Builds alternate within a round, so drifting load hits all alike.
#   bench/ab-step.sh COMMIT [COMMIT ...] -- BENCH-STEP-ARGS
#   e.g. bench/ab-step.sh de0c793 0b81d8c -- --config fashion-small --batch 32 --mask 0 --caption-length 8 \
#            --threads 1 --steps 5 --warmup 2 --seed 1
# Environment: ROUNDS (3), WORKDIR (a temporary folder for the worktrees; removed at the end).
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
commits=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do commits+=("$1"); shift; done
[ $# -gt 0 ] && shift
[ ${#commits[@]} -ge 1 ] || { echo "usage: bench/ab-step.sh COMMIT [COMMIT ...] -- BENCH-STEP-ARGS" >&2; exit 2; }
work=${WORKDIR:-$(mktemp -d /tmp/microdit-ab-XXXXXX)}
cleanup() { for c in "${commits[@]}"; do git -C "$root" worktree remove --force "$work/$c" 2>/dev/null || true; done; }
trap cleanup EXIT
for c in "${commits[@]}"; do
  git -C "$root" worktree add -q --detach "$work/$c" "$c"
  (cd "$work/$c" && src/main/scripts/microdit params --config fashion-small >/dev/null)   # build once, untimed
done
for round in $(seq 1 "${ROUNDS:-3}"); do
  for c in "${commits[@]}"; do
    "$work/$c/src/main/scripts/microdit" bench-step "$@" 2>/dev/null | tail -1 | python3 -c '
import json, sys
r = json.load(sys.stdin)
cpu = sorted(r["step_cpu_ms"])
print(sys.argv[1], sys.argv[2], round(r["ms_per_step"]), cpu[len(cpu) // 2])' "$round" "$c"
  done
done
