# Sourced by the launcher scripts: sets JAVA_HOME to a JDK 25 or newer, or explains what to install.
# Looks at JAVA_HOME first, then the usual install folders.
microdit_java_major() {
  "$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' | head -1
}

microdit_find_jdk25() {
  local candidates=() dir major
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  for dir in /usr/lib/jvm/* /usr/local/lib/jvm/* /opt/java/* /opt/jdk* "$HOME"/.sdkman/candidates/java/* \
             /Library/Java/JavaVirtualMachines/*/Contents/Home; do
    [ -d "$dir" ] && candidates+=("$dir")
  done
  for dir in "${candidates[@]}"; do
    [ -x "$dir/bin/java" ] && [ -x "$dir/bin/javac" ] || continue
    major=$(microdit_java_major "$dir")
    if [ -n "$major" ] && [ "$major" -ge 25 ] 2>/dev/null; then
      export JAVA_HOME="$dir"
      export PATH="$JAVA_HOME/bin:$PATH"
      return 0
    fi
  done
  {
    echo "microdit needs a JDK 25 or newer and found none."
    echo "Looked at: JAVA_HOME=${JAVA_HOME:-<unset>}, /usr/lib/jvm, /usr/local/lib/jvm, /opt/java, /opt/jdk*, ~/.sdkman/candidates/java."
    echo "Install one, for example Temurin 25 (https://adoptium.net, Debian/Ubuntu package temurin-25-jdk),"
    echo "or point JAVA_HOME at it."
  } >&2
  return 1
}
