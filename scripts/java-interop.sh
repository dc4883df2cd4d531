#!/usr/bin/env bash
# Runs the Java interop decoder (tests/interop/java: Apache Kafka client + Apache Avro, from
# Maven Central) with the given arguments; see docs/interop.md.
#
#   scripts/java-interop.sh --bootstrap HOST:PORT (--registry URL | --schemas DIR) --topic T...
#
# Builds it first (mvn -q package) only when pom.xml or a source file changed since the last
# build: a SHA-256 of them is kept in tests/interop/java/target/.source-hash. Concurrent runs
# wait for each other's build (flock). After the first build nothing needs the network; the
# jars stay in Maven's local repository (~/.m2 by default).
#
# Environment: MVN (default mvn), MVN_FLAGS (extra Maven flags, e.g. -o), JAVA (default java),
# JAVA_INTEROP_OPTS (JVM options, default -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1),
# JAVA_INTEROP_MAIN (the class to run, default riskos.interop.Main; the protected-fields
# consumer is riskos.interop.ProtectedConsumer, see docs/consumers.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROJECT="$ROOT/tests/interop/java"
TARGET="$PROJECT/target"
MVN="${MVN:-mvn}"
JAVA="${JAVA:-java}"
read -r -a JVM_OPTS <<<"${JAVA_INTEROP_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
read -r -a MVN_EXTRA <<<"${MVN_FLAGS:-}"

source_hash() {
  (cd "$PROJECT" && find pom.xml src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
    sha256sum | cut -d' ' -f1
}

# True when the last build is of these sources and its jars are still in the local repository.
up_to_date() {
  [[ -f "$TARGET/classpath.txt" ]] || return 1
  [[ "$(cat "$TARGET/.source-hash" 2>/dev/null)" == "$1" ]] || return 1
  local jar
  while IFS= read -r -d: jar; do
    [[ -f "$jar" ]] || return 1
  done < <(cat "$TARGET/classpath.txt"; echo :)
}

mkdir -p "$TARGET"
(
  flock 9
  hash="$(source_hash)"
  if ! up_to_date "$hash"; then
    echo "java-interop.sh: building $PROJECT" >&2
    rm -f "$TARGET/.source-hash"
    "$MVN" -q -B "${MVN_EXTRA[@]}" -f "$PROJECT/pom.xml" package >&2
    echo "$hash" >"$TARGET/.source-hash"
  fi
) 9>"$TARGET/.build.lock"

exec "$JAVA" "${JVM_OPTS[@]}" -cp "$TARGET/classes:$(cat "$TARGET/classpath.txt")" \
  "${JAVA_INTEROP_MAIN:-riskos.interop.Main}" "$@"
