#!/usr/bin/env bash
# Builds the benchmarks and runs JMH; arguments go to JMH unchanged, e.g.
#   bench/run-jmh.sh GemmBenchmark -p shape=512x512x512 -p threads=1 -wi 2 -i 3
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
src/main/scripts/mvn25 -q -DskipTests test-compile dependency:build-classpath \
    -Dmdep.outputFile=target/test-classpath.txt
. src/main/scripts/find-jdk25.sh
microdit_find_jdk25
flags="--enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector"
# shellcheck disable=SC2086 # the flags are separate words
exec java $flags -cp "target/test-classes:target/classes:$(cat target/test-classpath.txt)" org.openjdk.jmh.Main \
    -jvmArgsAppend "$flags" "$@"
