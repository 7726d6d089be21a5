#!/usr/bin/env bash
# The GPU check, for a CUDA machine with PyTorch but no JDK or Maven (prepare .device/ here with
# bench/gpu/pack.sh first). At the project root: bash bench/gpu/check.sh. About 5 minutes on an H100/H200:
#   1. builds libmicrodit_cuda.so with make + nvcc (fails on ptxas spills in gemm/attention/moe) and shows that
#      attention, GEMM and MoE kernels are in the SASS;
#   2. runs the CUDA backend's tests (every op against the CPU backend, tags emu + gpu) on the GPU build with the
#      jlinked JRE, then once more under compute-sanitizer memcheck;
#   3. times attention, GEMM, MoE routing and token gather against PyTorch on the same shapes (bench/gpu/speed.py):
#      TFLOP/s, GB/s, ratio to PyTorch.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
status=0
step() { echo; echo "=== $* ($(date +%T))"; }

step "build (make -C native cuda)"
timeout 240 make -C native cuda OUT="$root/target/native" -j"$(nproc)" >/tmp/microdit-build.log 2>&1 \
  || { tail -40 /tmp/microdit-build.log; echo "build failed"; exit 1; }
grep -h "spill" target/native/ptxas.txt | sort | uniq -c
for f in attention gemm moe; do
  echo "$f.o: $(cuobjdump --dump-sass "target/native/cuda/$f.o" 2>/dev/null | grep -cE 'FFMA|HMMA') FFMA/HMMA instructions"
done

java_run() {
  "$JAVA_HOME/bin/java" -Xss4m --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
    -Dmicrodit.device=cuda -Dmicrodit.native.dir="$root/target/native" \
    -cp ".device/classes:.device/test-classes:.device/launcher:.device/lib/*" GpuCheck
}
if [ -f .device/jre.tgz ] && [ -d .device/classes ]; then
  JAVA_HOME=$(mktemp -d); tar xzf .device/jre.tgz -C "$JAVA_HOME"; export JAVA_HOME
  step "tests on the GPU"
  timeout 150 bash -c "$(declare -f java_run); java_run" || { echo "GPU tests failed"; status=1; }
  step "tests under compute-sanitizer memcheck"
  if command -v compute-sanitizer >/dev/null; then
    timeout 200 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 --print-limit 20 \
      bash -c "$(declare -f java_run); java_run" 2>&1 | grep -vE '^\s*$' | tail -40
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "memcheck reported errors"; status=1; }
  else
    echo "compute-sanitizer not found: skipped"
  fi
else
  echo "no .device/jre.tgz or .device/classes: run bench/gpu/pack.sh on the build machine first; Java tests skipped"
  status=1
fi

step "speed against PyTorch"
timeout 150 python3 bench/gpu/speed.py "$root/target/native/libmicrodit_cuda.so" || status=1
exit $status
