#!/usr/bin/env bash
# The GPU check, for a CUDA machine with PyTorch but no JDK or Maven (prepare .device/ here with
# bench/gpu/pack.sh first and carry it along). At the project root: bash bench/gpu/check.sh.
# First the driver's and the runtime's CUDA versions (nvidia-smi, nvcc, then the built library itself): a driver
# older than the runtime's generation stops the check with what is needed.
# Fits in 8 minutes on an H100/H200: every step has a timeout within an overall deadline (CHECK_SECONDS, 470 by
# default); a failing step is reported and the later steps still run; the exit status is non-zero if any failed.
# Everything printed also goes to $OUT/gpu-check.log (or target/gpu-check/), and the speed table to speed.txt
# there; a summary of the steps and the table close the output.
#   1. build: libmicrodit_cuda.so by make + nvcc (sm_80, sm_90). A ptxas spill in any kernel fails the step; the
#      library is then linked without that check so the later steps can still run.
#   2. ptxas + SASS: registers and spills of the tensor-core kernels (ptxas -v), and per kernel and architecture
#      the HMMA count in its SASS (native/tensor_core_check.sh: cuobjdump --dump-sass, split per function) for the
#      Makefile's TENSOR_CORE_KERNELS (the bf16 and TF32 GEMMs, bf16 attention forward and backward); fails if one
#      has none.
#   3. tests: the CUDA backend's tests (tags emu + gpu: every op against the CPU backend) on the GPU build with the
#      jlinked JRE.
#   4. speed (bench/gpu/speed.py): each bf16 kernel checked against PyTorch first (fails beyond 2e-2 relative),
#      then timed against SDPA (flash), cuBLAS, torch.topk/gather and a D2D copy, with the issue's targets in a
#      table (attention fwd >= 300 / bwd >= 200 TFLOP/s, GEMM >= 60% of cuBLAS, gather >= 85% of the copy).
#   5. memcheck: the tensor-core and kernel tests once more under compute-sanitizer memcheck (MEMCHECK_TESTS, a
#      regular expression over test class names, '.*' for all of them).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
results=${OUT:-$root/target/gpu-check}
mkdir -p "$results"
exec > >(tee "$results/gpu-check.log") 2>&1
tee_pid=$!
deadline=$((SECONDS + ${CHECK_SECONDS:-470}))
native="$root/target/native"
python=${PYTHON:-python3}
memcheck_tests=${MEMCHECK_TESTS:-'.*(CudaBf16AttentionTest|CudaBf16GemmTest|CudaTf32GemmTest|CudaMoeTokenSlotsTest|CudaBackendKernelsTest|EmulatorPrimitivesTest|CudaNormalizedAttentionTest|CudaActivationEpilogueTest|CudaResidualNormTest)'}
status=0
summary=()

step() { echo; echo "=== $* ($(date +%T), ${SECONDS}s of the run)"; }
# Seconds for a step: its cap, or what is left before the deadline if that is less.
budget() { local left=$((deadline - SECONDS)); left=$((left < 1 ? 1 : left)); echo $((left < $1 ? left : $1)); }
# Records a step's outcome: record NAME RC [NOTE].
record() {
  local outcome=ok
  if [ "$2" -eq 124 ] || [ "$2" -eq 137 ]; then outcome="TIMED OUT"; elif [ "$2" -ne 0 ]; then outcome="FAILED (rc $2)"; fi
  [ "$2" -eq 0 ] || status=1
  summary+=("$(printf '%-22s %s %s' "$1" "$outcome" "${3:-}")")
}
skip() { summary+=("$(printf '%-22s SKIPPED %s' "$1" "$2")"); status=1; echo "skipped: $2"; }
# Shortens kernel symbols: demangled, without the anonymous namespace and the parameter list.
short_names() {
  if command -v c++filt >/dev/null; then c++filt; else cat; fi |
    sed -E 's/\(anonymous namespace\):://g; s/void ([A-Za-z0-9_:]+<[^>]*>|[A-Za-z0-9_:]+)\([^)]*\)/\1/g'
}

# The summary and the exit, also for a check stopped early (a driver too old for the runtime).
finish() {
  echo
  echo "=== summary ($SECONDS s; log in $results/gpu-check.log)"
  printf '  %s\n' "${summary[@]}"
  [ -f "$results/speed.txt" ] && cat "$results/speed.txt"
  exec >&- 2>&-
  wait "$tee_pid" 2>/dev/null  # let tee finish writing before the exit
  exit $status
}
# libmicrodit_cuda.so links the CUDA runtime statically, so it runs only on a driver of at least that CUDA
# generation (CUDA 13: driver 580 or newer). Stops the check when the driver is older: nothing after would run.
# require_driver DRIVER_CUDA RUNTIME_CUDA WHO (versions as major.minor; empty = unknown, not checked).
require_driver() {
  if [ -n "$1" ] && [ -n "$2" ] && [ "${1%%.*}" -lt "${2%%.*}" ]; then
    echo "FAILED: the NVIDIA driver supports CUDA $1, but $3 CUDA $2, which needs a driver of the CUDA" \
      "${2%%.*} generation (for CUDA 13: 580 or newer). Update the driver; the CUDA backend cannot run here."
    record "driver" 1 "(driver CUDA $1 < runtime CUDA $2)"
    finish
  fi
}

step "device: driver and CUDA versions"
timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv \
  || echo "nvidia-smi failed"
driver_cuda=$(timeout 20 nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -1)
toolkit_cuda=$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
echo "driver: CUDA ${driver_cuda:-unknown (no nvidia-smi)}; runtime (nvcc, linked statically): CUDA ${toolkit_cuda:-unknown (no nvcc)}"
require_driver "$driver_cuda" "$toolkit_cuda" "nvcc builds libmicrodit_cuda.so with"

step "1. build (make -C native: libmicrodit_cuda.so)"
library="$native/libmicrodit_cuda.so"
t=$(budget 220)
# --threads 0: nvcc compiles a file's three targets (sm_80, sm_90, compute_90) in parallel.
timeout -k 10 "$t" make -C native OUT="$native" -j"$(nproc)" NVCC="nvcc --threads 0" "$library" \
  >"$results/build.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
  tail -40 "$results/build.log"
  if grep -q "register spills" "$results/build.log" && [ $rc -ne 124 ]; then
    echo "ptxas spills (above): linking without the spill check so the later steps can run"
    timeout -k 10 "$(budget 120)" make -C native OUT="$native" -j"$(nproc)" NVCC="nvcc --threads 0" SPILL_CHECKED= \
      "$library" \
      >>"$results/build.log" 2>&1 || tail -20 "$results/build.log"
  fi
fi
record "build" $rc "($((SECONDS))s)"
[ -f "$library" ] || echo "no $library: the later steps will fail"
if [ -f "$library" ]; then
  # The library's own view (mdt_driver_version, mdt_runtime_version, mdt_device_count): what the engine will see.
  versions=$(timeout 30 "$python" - "$library" <<'PY'
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
driver, runtime, devices = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
lib.mdt_driver_version(ctypes.byref(driver))
lib.mdt_runtime_version(ctypes.byref(runtime))
status = lib.mdt_device_count(ctypes.byref(devices))
lib.mdt_last_error_message.restype = ctypes.c_char_p
print(f"{driver.value // 1000}.{driver.value % 1000 // 10} {runtime.value // 1000}.{runtime.value % 1000 // 10} "
      f"{devices.value} {status} {lib.mdt_last_error_message().decode() if status else ''}")
PY
  )
  read -r lib_driver lib_runtime lib_devices lib_status lib_message <<<"$versions"
  echo "libmicrodit_cuda.so: driver CUDA ${lib_driver:-?}, runtime CUDA ${lib_runtime:-?}," \
    "mdt_device_count: ${lib_devices:-?} devices (status ${lib_status:-?}${lib_message:+: $lib_message})"
  [ "$lib_driver" = 0.0 ] && echo "FAILED: no NVIDIA driver is installed" && record "driver" 1 "(none)" && finish
  require_driver "$lib_driver" "$lib_runtime" "libmicrodit_cuda.so was built with"
fi

step "2. ptxas -v and SASS of the bf16 tensor-core kernels"
# The kernels that must run on tensor cores: the Makefile's list (the build fails without their HMMA too).
pattern=$(sed -n 's/^TENSOR_CORE_KERNELS := //p' native/Makefile)
echo "tensor-core kernels: $pattern"
if [ -f "$native/ptxas.txt" ]; then
  echo "spill reports in ptxas.txt (lines with non-zero spills):"
  grep -hE "[1-9][0-9]* bytes spill" "$native/ptxas.txt" | sort | uniq -c || echo "  none"
  echo "registers per bf16 kernel (arch kernel: registers, stack/spills):"
  awk -v pattern="$pattern" '
    /Compiling entry function/ { kernel = $0; sub(/.*function .?/, "", kernel); sub(/.? for .*/, "", kernel)
                                 arch = $NF; gsub(/\047/, "", arch); keep = kernel ~ pattern }
    keep && /bytes stack frame/ { frame = $0; sub(/^ +/, "", frame) }
    keep && /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/)
                                      printf "  %s %s: %s; %s\n", arch, kernel, substr($0, RSTART, RLENGTH), frame }
  ' "$native/ptxas.txt" | short_names | sort -u
else
  echo "no ptxas.txt (the build did not finish)"
fi
t=$(budget 60)
if [ "$t" -lt 5 ]; then skip "SASS HMMA" "no time left"; else
  # The Makefile's tensor-core check: cuobjdump --dump-sass of gemm.o and attention.o, HMMA counted per function
  # and architecture; it fails if a kernel matching the pattern has none (or none matches).
  timeout -k 5 "$t" make -C native OUT="$native" "$native/sass/tensor-cores.txt" \
    >"$results/sass.log" 2>&1
  rc=$?
  { [ $rc -eq 0 ] && cat "$native/sass/tensor-cores.txt" || cat "$results/sass.log"; } | grep -v "^make" | short_names
  # Every tensor-core kernel must be there, with HMMA, for each architecture (the check above only sees those built).
  if [ $rc -eq 0 ]; then
    archs="sm_80 sm_90" unit=HMMA
    grep -q "mma.sync$" "$native/sass/tensor-cores.txt" && archs=sm_90 unit=mma.sync  # no cuobjdump: PTX
    for kernel in ${pattern//|/ }; do
      for arch in $archs; do
        grep -qE "^$arch .*$kernel.*: [1-9][0-9]* $unit$" "$native/sass/tensor-cores.txt" \
          || { echo "missing: $kernel for $arch with $unit"; rc=1; }
      done
    done
  fi
  record "SASS HMMA" $rc "($(grep -cE ": [1-9][0-9]* (HMMA|mma.sync)$" "$native/sass/tensor-cores.txt" 2>/dev/null) kernel/arch pairs with tensor-core instructions)"
fi

have_java=0
if [ -f .device/jre.tgz ] && [ -d .device/classes ]; then
  jre=$(mktemp -d)
  tar xzf .device/jre.tgz -C "$jre" && have_java=1
  java_run=("$jre/bin/java" -Xss4m --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED
    -Dmicrodit.device="${MICRODIT_DEVICE:-cuda}" -Dmicrodit.native.dir="$native"
    -cp ".device/classes:.device/test-classes:.device/launcher:.device/lib/*" GpuCheck)
fi

step "3. tests on the GPU (tags emu + gpu)"
if [ $have_java -eq 0 ]; then
  skip "tests" "no .device/jre.tgz or .device/classes: run bench/gpu/pack.sh on the build machine first"
else
  t=$(budget 100)
  if [ "$t" -lt 20 ]; then skip "tests" "no time left"; else
    timeout -k 5 "$t" "${java_run[@]}" 2>&1 | grep -v "^WARNING"
    record "tests" "${PIPESTATUS[0]}"
  fi
fi

step "4. speed and correctness against PyTorch (bench/gpu/speed.py)"
t=$(budget 150)
if [ "$t" -lt 30 ]; then skip "speed" "no time left"; else
  timeout -k 5 "$t" "$python" bench/gpu/speed.py "$library" --table "$results/speed.txt"
  record "speed (checks 2e-2)" $?
fi

step "5. tests under compute-sanitizer memcheck ($memcheck_tests)"
if [ $have_java -eq 0 ]; then
  skip "memcheck" "no JRE (see step 3)"
elif ! command -v compute-sanitizer >/dev/null; then
  skip "memcheck" "compute-sanitizer not found"
else
  t=$(budget 160)
  if [ "$t" -lt 30 ]; then skip "memcheck" "no time left"; else
    timeout -k 5 "$t" compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 --print-limit 20 \
      "${java_run[@]}" "$memcheck_tests" 2>&1 | grep -v "^WARNING"
    record "memcheck" "${PIPESTATUS[0]}"
  fi
fi

finish
