#!/usr/bin/env bash
# Builds microdit, installs it into the local Maven repository, then builds and runs the embedding example against
# the installed jar alone: its native libraries come out of the jar (no -Dmicrodit.native.dir, no target/native),
# and microdit runs as the module io.microdit on the module path.
#   examples/embed/run.sh [work folder]
# The CUDA build (nvcc, minutes) is skipped when nvcc is absent or MICRODIT_NATIVE_TARGETS=emu; the example runs the
# emulator build either way.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/src/main/scripts/find-jdk25.sh"
microdit_find_jdk25
targets=${MICRODIT_NATIVE_TARGETS:-$(command -v nvcc >/dev/null && echo all || echo emu)}
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
mvn=(mvn -B -q -Dstyle.color=never ${MICRODIT_MAVEN_ARGS:-})
(cd "$root" && "${mvn[@]}" install -DskipTests -Dmicrodit.native.targets="$targets")
cd "$here"
"${mvn[@]}" compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt -Dmdep.includeScope=runtime
work=${1:-$here/target/run}
# A fresh native cache, so each run proves the unpacking from the jar.
export XDG_CACHE_HOME="$here/target/cache"
rm -rf "$XDG_CACHE_HOME"
"$JAVA_HOME/bin/java" --module-path "$(cat target/classpath.txt)" --add-modules io.microdit \
  --enable-native-access=io.microdit -cp target/classes example.Embed "$work"
