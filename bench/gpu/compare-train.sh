#!/usr/bin/env bash
# One training step of microdit-tiny-2 at 256-px latent shapes (x0 32×32×4, captions 77×1024) with 75% deferred
# masking, in microdit (CUDA backend, bf16 mixed precision) and in our PyTorch MicroDiT (bench/torch, bf16 autocast,
# eager and torch.compile) on the same weights and batch (exported by microdit), on a CUDA machine with PyTorch but
# no JDK: prepare .device/ here with bench/gpu/pack.sh and carry it along, then at the project root:
#   bash bench/gpu/compare-train.sh
# Fits in 8 minutes (COMPARE_SECONDS, 450 by default; every step has a timeout within it).
#   1. build libmicrodit_cuda.so if target/native has none (bench/gpu/check.sh builds it too);
#   2. microdit: `bench-step --backend cuda --precision bf16` at the largest of BATCHES (default "512 256 128")
#      whose step fits, exporting its weights and batch and writing its launch plan (launch-plan-B.txt);
#   3. PyTorch on the exported batch: eager bf16 autocast (with the agreement check), then torch.compile'd;
#   4. a table: ms/step, img/s, achieved TFLOP/s of the model FLOPs microdit counts, MFU of the GPU's dense bf16
#      peak (H100/H200 989.4, A100 312 TFLOP/s), peak memory, and microdit's img/s over each PyTorch row.
# Output also goes to $OUT/compare-train.log (or target/gpu-compare/), the table to compare-train.txt there.
# A dry run of the plumbing without a GPU (the emulator and PyTorch on the CPU, a small config; minutes):
#   PYTHON=/usr/bin/python3 MICRODIT_DEVICE=emu TORCH_DEVICE=cpu CONFIG=bench/torch/configs/dry-run.json \
#     CAPTION_LENGTH=7 BATCHES="3 2" STEPS=1 WARMUP=0 bash bench/gpu/compare-train.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
results=${OUT:-$root/target/gpu-compare}
mkdir -p "$results"
exec > >(tee "$results/compare-train.log") 2>&1
deadline=$((SECONDS + ${COMPARE_SECONDS:-450}))
native="$root/target/native"
python=${PYTHON:-python3}
batches=${BATCHES:-"512 256 128"}
config=${CONFIG:-microdit-tiny-2}
caption_length=${CAPTION_LENGTH:-77}
microdit_device=${MICRODIT_DEVICE:-cuda}
torch_device=${TORCH_DEVICE:-cuda}
steps=${STEPS:-10}
warmup=${WARMUP:-3}
work=$(mktemp -d)
status=0
step() { echo; echo "=== $* ($(date +%T), ${SECONDS}s of the run)"; }
budget() { local left=$((deadline - SECONDS)); left=$((left < 1 ? 1 : left)); echo $((left < $1 ? left : $1)); }

step "device"
timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi failed"
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'

step "1. native library"
library="$native/libmicrodit_$microdit_device.so"
if [ ! -f "$library" ] && [ "$microdit_device" = cuda ]; then
  timeout -k 10 "$(budget 220)" make -C native OUT="$native" -j"$(nproc)" NVCC="nvcc --threads 0" "$library" \
    >"$results/build.log" 2>&1 || { tail -30 "$results/build.log"; echo "build failed"; exit 1; }
fi
ls -l "$library"

if [ ! -f .device/jre.tgz ] || [ ! -d .device/classes ]; then
  echo "no .device/jre.tgz or .device/classes: run bench/gpu/pack.sh on the build machine first"
  exit 1
fi
jre="$work/jre"
mkdir -p "$jre" && tar xzf .device/jre.tgz -C "$jre"
microdit=("$jre/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED
  -Dmicrodit.device="$microdit_device" -Dmicrodit.native.dir="$native" -cp ".device/classes:.device/lib/*" io.microdit.cli.Main)

step "2. microdit bench-step ($config, CUDA backend on $microdit_device, bf16), largest batch of: $batches"
java_line=""
for batch in $batches; do
  dir="$work/export-$batch"
  echo "batch $batch"
  line=$(timeout -k 10 "$(budget 150)" "${microdit[@]}" bench-step --backend cuda --precision bf16 \
    --config "$config" --batch "$batch" --mask 0.75 --masking deferred --caption-length "$caption_length" \
    --steps "$steps" --warmup "$warmup" --seed 1 --export "$dir" --launch-plan "$results/launch-plan-$batch.txt" \
    2>"$results/microdit-$batch.err" | tail -1)
  rc=$?
  if [ $rc -eq 0 ] && [ -n "$line" ]; then
    java_line=$line
    echo "$line"
    break
  fi
  echo "batch $batch failed (rc $rc):"
  tail -5 "$results/microdit-$batch.err"
done
if [ -z "$java_line" ]; then
  echo "microdit ran at none of the batches"
  exit 1
fi
echo "$java_line" >"$results/microdit.json"
flops=$(echo "$java_line" | "$python" -c 'import json, sys; print(json.load(sys.stdin)["flops_per_step"])')

step "3a. PyTorch eager, bf16 autocast (with the agreement check)"
timeout -k 10 "$(budget 120)" "$python" bench/torch/microdit_ref.py --dir "$dir" --device "$torch_device" \
  --autocast bf16 --steps "$steps" --warmup "$warmup" --flops-per-step "$flops" --check | tail -1 >"$results/torch-eager.json" \
  || status=1
cat "$results/torch-eager.json"

step "3b. PyTorch torch.compile, bf16 autocast"
timeout -k 10 "$(budget 240)" "$python" bench/torch/microdit_ref.py --dir "$dir" --device "$torch_device" \
  --autocast bf16 --steps "$steps" --warmup "$warmup" --flops-per-step "$flops" --compile 2>"$results/torch-compile.err" \
  | tail -1 >"$results/torch-compile.json"
[ -s "$results/torch-compile.json" ] || { echo "torch.compile did not finish:"; tail -5 "$results/torch-compile.err"; }
cat "$results/torch-compile.json"

step "4. table"
"$python" - "$results" <<'EOF' | tee "$results/compare-train.txt"
import json, os, sys
results = sys.argv[1]
rows = []
for name in ("microdit.json", "torch-eager.json", "torch-compile.json"):
    path = os.path.join(results, name)
    if os.path.getsize(path) if os.path.exists(path) else 0:
        rows.append((name, json.loads(open(path).read().strip().splitlines()[-1])))
micro = dict(rows)["microdit.json"]
flops = micro["flops_per_step"]
device = dict(rows).get("torch-eager.json", {}).get("device_name", micro.get("backend", ""))
peak = 312e12 if "A100" in device else 989.4e12
print(f"{micro['config']}, batch {micro['batch']}, 75% deferred masking, {flops / 1e9:.1f} GFLOP per step "
      f"(model FLOPs counted by microdit), GPU {device or '?'}, dense bf16 peak {peak / 1e12:.1f} TFLOP/s")
print("| engine | mode | ms/step | img/s | TFLOP/s | MFU | peak memory | microdit img/s ÷ this |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name, r in rows:
    ms = r["ms_per_step"]
    engine = "microdit" if name == "microdit.json" else "PyTorch " + r.get("torch", "")
    mode = f"{r['backend']}, bf16" if name == "microdit.json" else \
        ("torch.compile" if r.get("compiled") else "eager") + ", bf16 autocast"
    memory = r.get("peak_memory_bytes") or r.get("peak_device_bytes")
    print(f"| {engine} | {mode} | {ms:.2f} | {r['img_per_s']:.0f} | {flops / (ms / 1e3) / 1e12:.1f} | "
          f"{flops / (ms / 1e3) / peak:.1%} | {'' if memory is None else f'{memory / 2**30:.2f} GiB'} | "
          f"{micro['img_per_s'] / r['img_per_s']:.2f} |")
check = dict(rows).get("torch-eager.json", {}).get("check")
if check:
    print(f"agreement (PyTorch bf16 autocast vs microdit bf16, same weights and batch): loss {check['loss_rel']:.1e}, "
          f"F sum {check['output_sum_rel']:.1e}, grad norm {check['grad_norm_rel']:.1e}, worst parameter "
          f"{check['param_grad_norm_max_rel']:.1e} ({check['param_grad_norm_worst']}), mask "
          f"{'same' if check['mask_ok'] else 'DIFFERENT'}")
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
rm -rf "$work"
exit $status
