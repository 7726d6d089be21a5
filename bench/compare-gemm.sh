#!/usr/bin/env bash
# microdit's CPU GEMM next to OpenBLAS sgemm, C = A·B (F32, row-major, no transposes), at 1 and 2 threads.
#   bench/compare-gemm.sh [ROUNDS] [SIZES...]   sizes as MxNxK; default: squares 256..2048 and 4096x1536x512
# Needs gcc and OpenBLAS (Debian: apt-get install libopenblas0-pthread libopenblas-dev). The two engines run in
# alternation, ROUNDS times per size and thread count (default 3), and the table shows the median of the rounds
# (each round is itself the median of 5 timed repeats after a warm-up), so that load from other processes
# falls on both alike. FMA peak is one core's measured AVX-512 FMA rate times the thread count.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
rounds=${1:-3}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(256x256x256 512x512x512 1024x1024x1024 2048x2048x2048 4096x1536x512)
repeats=5
out=target/gemm-bench
mkdir -p "$out"
gcc -O2 -mavx512f bench/gemm/peak_fma.c -o "$out/peak_fma"
gcc -O2 bench/gemm/sgemm_bench.c -o "$out/sgemm_bench" -lopenblas
src/main/scripts/mvn25 -q -DskipTests test-compile dependency:build-classpath >&2 \
    -Dmdep.outputFile=target/test-classpath.txt
. src/main/scripts/find-jdk25.sh
microdit_find_jdk25
# OpenBLAS picks its kernels from the CPU it detects; name the AVX-512 ones in case it misreads a new CPU.
export OPENBLAS_CORETYPE=SkylakeX
classpath="target/test-classes:target/classes:$(cat target/test-classpath.txt)"

microdit() { # threads M N K -> GFLOP/s
    java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -cp "$classpath" \
        io.microdit.bench.GemmThroughput "$1" "$repeats" "$2" "$3" "$4" 2>/dev/null | awk '{print $4}'
}
openblas() { # threads M N K -> GFLOP/s
    "$out/sgemm_bench" "$1" "$repeats" "$2" "$3" "$4" 2>/dev/null | awk '{print $4}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "openblas: $("$out/sgemm_bench" 1 1 8 8 8 2>&1 >/dev/null | sed 's/^sgemm_bench: //; s/, 1 threads$//')"
echo "java: $(java -version 2>&1 | head -1); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
peak=$("$out/peak_fma" 20000000 5 2>/dev/null)
echo "FMA peak: $peak GFLOP/s per core"
echo
printf '%-7s %-16s %10s %10s %7s %10s\n' threads "size (MxNxK)" microdit OpenBLAS ratio "FMA peak"
for threads in 1 2; do
    for size in "${sizes[@]}"; do
        IFS=x read -r m n k <<< "$size"
        ours="" theirs=""
        for ((round = 0; round < rounds; round++)); do
            ours+=" $(microdit "$threads" "$m" "$n" "$k")"
            theirs+=" $(openblas "$threads" "$m" "$n" "$k")"
        done
        a=$(echo "$ours" | median) b=$(echo "$theirs" | median)
        printf '%-7s %-16s %10.1f %10.1f %6.0f%% %10.1f\n' "$threads" "$size" "$a" "$b" \
            "$(awk -v a="$a" -v b="$b" 'BEGIN {print 100 * a / b}')" "$(awk -v p="$peak" -v t="$threads" 'BEGIN {print p * t}')"
    done
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
