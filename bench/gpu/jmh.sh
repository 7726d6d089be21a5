#!/usr/bin/env bash
# The JMH kernel benchmarks through the CUDA backend, on a CUDA machine without a JDK (prepare .device/ here with
# bench/gpu/pack.sh and carry it along; the native library is built by bench/gpu/check.sh, or here if missing).
# Arguments go to JMH; -p backend=cuda is added. At the project root, for example:
#   bash bench/gpu/jmh.sh GemmBenchmark -p threads=0 -p dtype=bf16 -p layout=NT -f 1 -wi 2 -i 3
#   bash bench/gpu/jmh.sh 'AttentionBenchmark|TokenGatherBenchmark|MoeRoutingBenchmark|LayerNormBenchmark' -f 1
# (GemmBenchmark's threads parameter only matters on the CPU: pass -p threads=0 to run each shape once.)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
native="$root/target/native"
if [ ! -f "$native/libmicrodit_cuda.so" ]; then
  make -C native OUT="$native" -j"$(nproc)" NVCC="nvcc --threads 0" "$native/libmicrodit_cuda.so" >/dev/null
fi
[ -f .device/jre.tgz ] || { echo "no .device/jre.tgz: run bench/gpu/pack.sh on the build machine first" >&2; exit 1; }
jre=$(mktemp -d)
trap 'rm -rf "$jre"' EXIT
tar xzf .device/jre.tgz -C "$jre"
flags=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Dmicrodit.device=cuda
  -Dmicrodit.native.dir="$native")
"$jre/bin/java" "${flags[@]}" -cp ".device/test-classes:.device/classes:.device/lib/*" org.openjdk.jmh.Main \
  -jvmArgsAppend "${flags[*]}" -p backend=cuda "$@"
