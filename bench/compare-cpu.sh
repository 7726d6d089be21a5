#!/usr/bin/env bash
# One full training step (forward + backward + global-norm clip + AdamW) in microdit and in our PyTorch MicroDiT
# (bench/torch/microdit_ref.py, Debian's torch, CPU) on the identical weights and batch, exported by
# `microdit bench-step --export`: first the agreement (loss, F, gradient norms), then the time, the two engines
# interleaved (microdit, PyTorch, microdit, PyTorch, ...), each run a fresh process with its own warm-up steps.
# Prints a table; exits non-zero when an agreement check fails.
#   bench/compare-cpu.sh                 (about 7 minutes on 2 cores)
# Environment: ROUNDS (2), STEPS per run (3), WARMUP per run (1), THREADS ("1 2"), MASKS ("0 0.75"),
# FS_BATCH (32), TINY_BATCH (4), TOLERANCE (1e-4), MICRODIT_TORCH_PYTHON (/usr/bin/python3), WORKDIR.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${MICRODIT_TORCH_PYTHON:-/usr/bin/python3}
rounds=${ROUNDS:-2}
steps=${STEPS:-3}
warmup=${WARMUP:-1}
threads_list=${THREADS:-"1 2"}
masks=${MASKS:-"0 0.75"}
tolerance=${TOLERANCE:-1e-4}
workdir=${WORKDIR:-$(mktemp -d /tmp/microdit-compare-cpu-XXXXXX)}
if ! "$python" -c 'import torch, numpy' 2>/dev/null; then
  echo "compare-cpu: $python has no torch/numpy (set MICRODIT_TORCH_PYTHON)" >&2
  exit 2
fi
microdit="$root/src/main/scripts/microdit"
"$microdit" params --config fashion-small >/dev/null   # build once, before any timing

# config | batch | caption length: fashion-small as its main job trains it (8-token captions); the Tiny-shaped
# config at 64 tokens with 19 caption tokens keeps MicroDiT-Tiny's image:caption token ratio at 256 px (256:77).
cases=("fashion-small|${FS_BATCH:-32}|8" "$root/bench/torch/configs/tiny-reduced.json|${TINY_BATCH:-4}|19")
results="$workdir/results.jsonl"
: >"$results"
echo "compare-cpu: $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), torch $("$python" -c 'import torch; print(torch.__version__)'), files in $workdir" >&2
for case in "${cases[@]}"; do
  IFS='|' read -r config batch length <<<"$case"
  for mask in $masks; do
    for threads in $threads_list; do
      dir="$workdir/$(basename "$config" .json)-mask$mask-t$threads"
      for round in $(seq 1 "$rounds"); do
        export_args=()
        check_args=()
        if [ "$round" = 1 ]; then
          export_args=(--export "$dir")
          check_args=(--check)
        fi
        java_line=$("$microdit" bench-step --config "$config" --batch "$batch" --mask "$mask" --masking deferred \
          --caption-length "$length" --threads "$threads" --steps "$steps" --warmup "$warmup" --seed 1 \
          "${export_args[@]}" 2>/dev/null | tail -1)
        echo "$java_line" >>"$results"
        flops=$(echo "$java_line" | "$python" -c 'import json, sys; print(json.load(sys.stdin)["flops_per_step"])')
        OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads "$python" "$root/bench/torch/microdit_ref.py" --dir "$dir" --threads "$threads" --steps "$steps" \
          --warmup "$warmup" --flops-per-step "$flops" "${check_args[@]}" >>"$results"
        echo "  $(basename "$config" .json) mask $mask threads $threads round $round done" >&2
      done
    done
  done
done

exec "$python" - "$results" "$tolerance" <<'EOF'
import collections, json, sys
import numpy as np
path, tolerance = sys.argv[1], float(sys.argv[2])
runs = collections.defaultdict(lambda: {"steps": [], "cpu": [], "flops": None, "batch": None})
checks = {}
for line in open(path):
    r = json.loads(line)
    key = (r["engine"], r["config"], r["mask"], r["threads"])
    runs[key]["steps"] += r["step_ms"]
    runs[key]["cpu"] += r["step_cpu_ms"]
    runs[key]["batch"] = r["batch"]
    if r["engine"] == "microdit":
        runs[key]["flops"] = r["flops_per_step"]
    if "check" in r:
        checks[key[1:]] = r["check"]
failed = False
print("Agreement (PyTorch vs microdit's reference on the same weights and batch; relative differences):")
print("| config | mask | threads | loss | sum F / sum abs F | grad norm | worst parameter grad norm (of N) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for (config, mask, threads), c in sorted(checks.items()):
    worst = max(c["loss_rel"], c["output_sum_rel"], c["grad_norm_rel"], c["param_grad_norm_max_rel"])
    ok = worst <= tolerance and c["mask_ok"]
    failed |= not ok
    print(f"| {config} | {mask} | {threads} | {c['loss_rel']:.1e} | {c['output_sum_rel']:.1e} | "
          f"{c['grad_norm_rel']:.1e} | {c['param_grad_norm_max_rel']:.1e} ({c['params_compared']}) "
          f"{'' if ok else 'FAILED'} |")
print()
print("Training step (forward + backward + clip + AdamW), median over all timed steps of all rounds:")
print("| engine | config | batch | mask | threads | ms/step | img/s | GFLOP/s | microdit/PyTorch | "
      "CPU ms/step | microdit/PyTorch (CPU) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for key in sorted(runs, key=lambda k: (k[1], k[2], k[3], k[0] != "microdit")):
    engine, config, mask, threads = key
    r = runs[key]
    flops = runs[("microdit", config, mask, threads)]["flops"]
    median, cpu = float(np.median(r["steps"])), float(np.median(r["cpu"]))
    ratio = cpu_ratio = ""
    peer = runs.get(("pytorch", config, mask, threads))
    if engine == "microdit" and peer:
        ratio = f"{median / float(np.median(peer['steps'])):.2f}"
        cpu_ratio = f"{cpu / float(np.median(peer['cpu'])):.2f}"
    print(f"| {engine} | {config} | {r['batch']} | {mask} | {threads} | {median:.0f} | "
          f"{r['batch'] / median * 1e3:.2f} | {flops / median / 1e6:.1f} | {ratio} | {cpu:.0f} | {cpu_ratio} |")
print()
print("GFLOP/s: microdit's counted FLOPs of the step (matmul, attention, elementwise, optimizer) over each engine's"
      " wall time; ratios < 1: microdit is faster; CPU: process CPU time per step (all threads). Steps per engine and"
      " row: "
      + ", ".join(sorted({str(len(r['steps'])) for r in runs.values()})))
sys.exit(1 if failed else 0)
EOF
