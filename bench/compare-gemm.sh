#!/usr/bin/env bash
# microdit's CPU GEMM next to OpenBLAS sgemm, C = A·B (F32, row-major, no transposes), at 1 and 2 threads.
#   bench/compare-gemm.sh [ROUNDS] [SIZES...]   sizes as MxNxK; default: squares 256..2048 and 4096x1536x512
# Needs gcc and OpenBLAS (Debian: apt-get install libopenblas0-pthread libopenblas-dev). The two engines run in
# alternation, ROUNDS times per size and thread count (default 3), and the table shows the median of the rounds
# (each round is itself the median of 5 timed repeats after a warm-up), so that load from other processes
# falls on both alike. "wall" columns are GFLOP/s by wall clock; "cpu" columns divide by the process's CPU time
# times the thread count (the rate had each thread a core to itself), which stays readable on shared cores.
# FMA peak is one core's measured AVX-512 FMA rate (best of 15 runs) times the thread count.
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

microdit() { # threads M N K -> "wall-GFLOP/s cpu-GFLOP/s"
    java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -cp "$classpath" \
        io.microdit.bench.GemmThroughput "$1" "$repeats" "$2" "$3" "$4" 2>/dev/null | awk '{print $4, $5}'
}
openblas() { # threads M N K -> "wall-GFLOP/s cpu-GFLOP/s"
    "$out/sgemm_bench" "$1" "$repeats" "$2" "$3" "$4" 2>/dev/null | awk '{print $4, $5}'
}
percent() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f%%", 100 * a / b}'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "openblas: $("$out/sgemm_bench" 1 1 8 8 8 2>&1 >/dev/null | sed 's/^sgemm_bench: //; s/, 1 threads$//')"
echo "java: $(java -version 2>&1 | head -1); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
peak=$("$out/peak_fma" 20000000 15 2>/dev/null)
echo "FMA peak: $peak GFLOP/s per core"
echo
printf '%-7s %-16s | %9s %9s %6s | %9s %9s %6s | %8s\n' "" "" "microdit" "OpenBLAS" "" "microdit" "OpenBLAS" "" ""
printf '%-7s %-16s | %9s %9s %6s | %9s %9s %6s | %8s\n' threads "size (MxNxK)" wall wall ratio cpu cpu ratio \
    "FMA peak"
for threads in 1 2; do
    for size in "${sizes[@]}"; do
        IFS=x read -r m n k <<< "$size"
        ours_wall="" ours_cpu="" theirs_wall="" theirs_cpu=""
        for ((round = 0; round < rounds; round++)); do
            read -r wall cpu <<< "$(microdit "$threads" "$m" "$n" "$k")"
            ours_wall+=" $wall" ours_cpu+=" $cpu"
            read -r wall cpu <<< "$(openblas "$threads" "$m" "$n" "$k")"
            theirs_wall+=" $wall" theirs_cpu+=" $cpu"
        done
        a=$(echo "$ours_wall" | median) b=$(echo "$theirs_wall" | median)
        c=$(echo "$ours_cpu" | median) d=$(echo "$theirs_cpu" | median)
        printf '%-7s %-16s | %9.1f %9.1f %6s | %9.1f %9.1f %6s | %8.1f\n' "$threads" "$size" "$a" "$b" \
            "$(percent "$a" "$b")" "$c" "$d" "$(percent "$c" "$d")" "$(awk -v p="$peak" -v t="$threads" 'BEGIN {print p * t}')"
    done
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
