#!/usr/bin/env bash
# Run HERE (JDK 25 and Maven): packs what bench/gpu/check.sh needs on a CUDA machine without a JDK into
# .device/ (git-ignored): the jlinked JRE, the compiled engine and test classes, the test class path's jars and
# the GpuCheck launcher (GpuCheck [class-name regex]: check.sh runs a subset under compute-sanitizer). Then carry
# .device/ along with the working tree (it is git-ignored) and run bench/gpu/check.sh there.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
src/main/scripts/mvn25 -q -DskipTests test-compile
src/main/scripts/mvn25 -q dependency:copy-dependencies -DincludeScope=test -DoutputDirectory="$root/.device/lib"
jdk="${JDK25:-$(ls -d /usr/lib/jvm/*25* 2>/dev/null | head -1)}"
if [ ! -f .device/jre.tgz ]; then
  jre=$(mktemp -d)
  "$jdk/bin/jlink" --add-modules java.base,java.logging,java.management,jdk.management,jdk.incubator.vector,jdk.unsupported,java.desktop \
    --strip-debug --no-man-pages --no-header-files --compress=zip-9 --output "$jre/jre" 2>&1 | grep -v incubator || true
  tar czf .device/jre.tgz -C "$jre/jre" . && rm -rf "$jre"
fi
# The launcher API is no project dependency (surefire brings its own): take the engine's version from Maven's cache.
platform=$(ls .device/lib | sed -n 's/^junit-platform-engine-\(.*\)\.jar$/\1/p')
launcher="$HOME/.m2/repository/org/junit/platform/junit-platform-launcher/$platform/junit-platform-launcher-$platform.jar"
[ -f "$launcher" ] || src/main/scripts/mvn25 -q dependency:get -Dartifact="org.junit.platform:junit-platform-launcher:$platform"
cp "$launcher" .device/lib/
rm -rf .device/classes .device/test-classes .device/launcher
cp -r target/classes .device/classes
cp -r target/test-classes .device/test-classes
mkdir -p .device/launcher
"$jdk/bin/javac" -d .device/launcher -cp ".device/lib/*" bench/gpu/GpuCheck.java
du -sh .device
