#!/usr/bin/env bash
# Bank conflicts and coalescing of every kernel family in one bf16 training step at MicroDiT-XL's widths (D 1024,
# head_dim 64, patch-mixer 768, 8 experts; depth 3, the least with an expert-choice MoE block, a 16×16 latent and
# batch 1, so that the step runs on the checked emulator: about 25 minutes on a busy 2-core machine, most of it in the
# optimizer and the GEMMs). Runs `microdit bench-step --device emu-checked --launch-plan`, prints the plan's
# memory-access table, then checks the hot kernels against the targets: no excess wavefronts (bank conflicts) and
# >= 90% sector efficiency. The counts are the emulator's model of the hardware (32 banks of 4 bytes, 32-byte
# sectors, per warp request), not a profiler's measurement; a kernel's main loop dominates its counts.
#   bench/access-model.sh [PLAN-FILE]     (default: target/access-model-plan.txt)
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
plan=${1:-$root/target/access-model-plan.txt}
config=$(mktemp /tmp/microdit-access-XXXXXX.json)
trap 'rm -f "$config"' EXIT
cat > "$config" <<'JSON'
{"name": "xl-widths", "base": "microdit-xl-2", "input_size": 16, "depth": 3, "patch_mixer_depth": 1,
 "qkv_multipliers": {"linspace": [0.5, 1.0]}, "ffn_multipliers": {"linspace": [0.5, 4.0]}}
JSON
# The checked emulator is a test tool that src/main/scripts/microdit does not build: build it (as mvn verify does).
make -s -j2 -C "$root/native" OUT="$root/target/native" emu-checked
MICRODIT_JAVA_OPTS="${MICRODIT_JAVA_OPTS:-} -Dmicrodit.native.dir=$root/target/native" \
"$root/src/main/scripts/microdit" bench-step --config "$config" --backend cuda --device emu-checked \
  --precision bf16 --batch 1 --mask 0.5 --caption-length 8 --steps 0 --warmup 0 --launch-plan "$plan" >/dev/null
sed -n '/^memory accesses of one more step/,$p' "$plan"
python3 - "$plan" <<'PY'
import re, sys
# Launch names as MDT_LAUNCH spells them, less any namespace and template arguments.
hot = re.compile(r"gemm_bf16|attention_(forward|key_gradients|query_gradients)_bf16_kernel|copy_rows_kernel|"
                 r"layer_norm(_backward)?_kernel|dispatch_kernel|token_rows_kernel|combine_backward_kernel")
lines = open(sys.argv[1]).read().split("\n")
start = next(i for i, l in enumerate(lines) if l.startswith("memory accesses of one more step")) + 2
print("\nhot kernels against the targets (0% excess wavefronts, >= 90% sector efficiency):")
for line in lines[start:]:
    fields = line.split()
    if len(fields) != 8 or not hot.fullmatch(re.sub(r"^\w+::|<.*>$", "", fields[0])):
        continue
    excess, efficiency = float(fields[4].rstrip("%")), float(fields[7].rstrip("%"))
    misses = [m for m, bad in (("bank conflicts", excess > 0), ("sector efficiency", efficiency < 90)) if bad]
    print(f"  {fields[0]:44s} excess {excess:5.1f}%  sectors {efficiency:5.1f}%  "
          + ("meets both" if not misses else "misses: " + ", ".join(misses)))
PY
