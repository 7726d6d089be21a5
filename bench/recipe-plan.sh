#!/usr/bin/env bash
# The paper's recipe per GPU (microdit-spec.md §4): the four stages of microdit-xl-2 at their per-GPU microbatches
# (256 px masked 75% × 256, unmasked × 64; 512 px masked × 32, unmasked × 16, with EMA) planned on the emulator as a
# dry run — set-up and one bf16 training step of the largest rank of an N-rank ZeRO-2 run, traced, nothing computed
# (seconds per stage). Prints each stage's peak device memory, operand bytes, counted FLOPs, H100 roofline time and
# the MFU bound it implies, with no recomputation, and exits 1 if a stage of that plan exceeds 72 GiB; then the same
# without sharding (one GPU's optimizer holds every moment), each stage with the least recomputation that fits
# (none, attention or block: the training config's "recompute"). For one stage's op-by-op table:
#   src/main/scripts/microdit bench-step --config microdit-xl-2 --batch 256 --backend cuda --device emu \
#       --precision bf16 --steps 0 --warmup 0 --plan-only --zero2-ranks 8 --launch-plan plan.txt
#   bench/recipe-plan.sh [RANKS]     (default 8)
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
ranks=${1:-8}
"$root/src/main/scripts/microdit" plan-recipe --ranks "$ranks" --recompute none --check
echo
"$root/src/main/scripts/microdit" plan-recipe --ranks 1   # unsharded: the least recomputation that fits
