#!/usr/bin/env bash
# Build evidence that the tensor-core kernels are built the way the performance targets need: dumps the SASS
# (cuobjdump --dump-sass) of the named objects of the CUDA build into OUT/sass/NAME.sass and fails unless every
# kernel whose name matches PATTERN holds HMMA instructions, for every architecture. Prints, per kernel and
# architecture, the HMMA count. Where cuobjdump is missing (CUDA installs without the binary utilities) it
# says so and checks the PTX for mma.sync instead, which ptxas lowers to HMMA: the PTX the object's own compile
# kept (OUT/sass/NAME.compute_80.ptx and NAME.compute_90.ptx, native/Makefile), not a second cicc run.
# Usage: tensor_core_check.sh CUOBJDUMP OUT PATTERN NAME...
set -euo pipefail
cuobjdump=$1 out=$2 pattern=$3
shift 3
mkdir -p "$out/sass"
if command -v "$cuobjdump" >/dev/null 2>&1; then
    mode=SASS instruction='HMMA'
else
    mode=PTX instruction='mma\.sync\.aligned'
    echo "note: $cuobjdump not found: checking the PTX for mma.sync instead of the SASS for HMMA"
fi
failed=0 report=""
for name in "$@"; do
    if [ "$mode" = SASS ]; then
        dump="$out/sass/$name.sass"
        "$cuobjdump" --dump-sass "$out/cuda/$name.o" > "$dump"
    else
        dump="$out/sass/$name.ptx"
        kept=("$out/sass/$name".compute_*.ptx)
        if [ ! -f "${kept[0]}" ]; then
            echo "tensor-core check: no PTX kept by the compile of $out/cuda/$name.o: delete it and build again"
            exit 1
        fi
        cat "${kept[@]}" > "$dump"
    fi
    awk -v pattern="$pattern" -v instruction="$instruction" -v mode="$mode" -v file="$dump" '
        /code for sm_/ { arch = $NF }
        /\.target sm_/ { arch = $2; sub(/,.*/, "", arch) }
        mode == "SASS" && /Function : / { kernel = $NF; key = arch " " kernel; if (!(key in count)) count[key] = 0 }
        mode == "PTX" && /\.entry / { kernel = $0; sub(/.*\.entry /, "", kernel); sub(/\(.*/, "", kernel);
                                      key = arch " " kernel; count[key] = 0 }
        $0 ~ instruction && key != "" { count[key]++ }
        END {
            status = 0
            for (key in count) {
                split(key, part, " ")
                if (part[2] !~ pattern) continue
                printf "%s %s: %d %s\n", part[1], part[2], count[key], (mode == "SASS" ? "HMMA" : "mma.sync")
                if (count[key] == 0) status = 1
            }
            if (status) printf "tensor-core check: a kernel matching %s in %s has no %s\n", pattern, file, instruction
            exit status
        }' "$dump" > "$dump.count" || failed=1
    report+=$(sort "$dump.count")$'\n'
    rm -f "$dump.count"
done
printf '%s' "$report" | sed '/^$/d'
if ! printf '%s' "$report" | grep -q .; then
    echo "tensor-core check: no kernel matching $pattern in $*"
    failed=1
fi
exit $failed
