#!/usr/bin/env bash
# Owns an Apache Kafka broker (KRaft, no ZooKeeper, no Docker) for the tests, the quickstart and
# the benchmark. The server jars come from Maven Central, resolved once by Maven into a cache.
#
# Pinned version: Apache Kafka 4.4.0 (org.apache.kafka:kafka_2.13), the newest release; its
# classes target Java 17, which is what brokers of the 4.x line need.
#
# Usage:
#   scripts/kafka.sh fetch
#       Resolves kafka_2.13 + kafka-tools + a log4j2 slf4j binding, with their runtime
#       dependencies, into the cache (once; later runs are instant). Prints the cache dir, which
#       is the classpath dir: java -cp "$(scripts/kafka.sh fetch)/*" ...
#   scripts/kafka.sh start --dir DIR --port PORT [--nodes N] [--controller-port CPORT]
#                          [--cluster-id ID] [--config key=value ...]
#       Formats (only if not formatted yet) and starts N combined broker+controller nodes
#       (default 1; static quorum of all N), waits until each has logged "Kafka Server started"
#       and accepts TCP connections. Prints "node i: 127.0.0.1:PORT+i pid P log PATH" per node
#       and, last, the bootstrap string "127.0.0.1:PORT,127.0.0.1:PORT+1,...".
#       Re-running on an existing (formatted) DIR reuses its data and configuration (--nodes, --port,
#       --controller-port and --config may be omitted; if given they must match the first start)
#       and starts only the nodes that are not running: that is how a cluster killed as a whole
#       is restarted from its data folders.
#   scripts/kafka.sh stop --dir DIR [--node i] [--signal TERM|KILL]
#       Stops the nodes (or node i) by their pid files, after checking that the pid's command
#       line is still kafka.Kafka with that node's properties file. TERM (default) waits up to
#       KAFKA_STOP_TIMEOUT seconds, then KILLs; KILL is immediate.
#   scripts/kafka.sh start-node --dir DIR --node i
#       Starts one stopped node of an existing cluster with its stored server.properties.
#   scripts/kafka.sh status --dir DIR         One line per node; exit 0 only if all run.
#   scripts/kafka.sh bootstrap --dir DIR      Prints the bootstrap string.
#   scripts/kafka.sh tool CLASS [args...]     Runs a Java main class from the cache.
#   Aliases (args passed through to the class):
#     topics            org.apache.kafka.tools.TopicCommand
#     configs           org.apache.kafka.tools.ConfigCommand
#     console-consumer  org.apache.kafka.tools.consumer.ConsoleConsumer
#     console-producer  org.apache.kafka.tools.ConsoleProducer
#     consumer-groups   org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
#     get-offsets       org.apache.kafka.tools.GetOffsetShell
#     metadata-quorum   org.apache.kafka.tools.MetadataQuorumCommand
#     api-versions      org.apache.kafka.tools.BrokerApiVersionsCommand
#     storage           kafka.tools.StorageTool
#
# Ports: node i listens for clients on 127.0.0.1:PORT+i (PLAINTEXT) and for the controller
# quorum on 127.0.0.1:CPORT+i, CPORT defaulting to PORT+100. Every port must be free.
#
# Files: DIR/cluster.env (nodes, ports, cluster id, heap, version), DIR/extra.properties (the
# --config lines), DIR/log4j2.properties (broker logging), and per node DIR/node-i/:
# server.properties, data/ (log.dirs and KRaft metadata; data/meta.properties once formatted),
# server.log (stdout, stderr and log4j output, appended across restarts), pid.
#
# Timing on 2 cores: a new 1-node cluster is ready in about 8 s, 3 nodes in about 20 s. After the
# whole cluster was killed, a restart takes about 10 s more: the controller waits
# broker.session.timeout.ms (9 s) for the dead brokers' registrations to expire. With acks=all,
# writes stall after one node is killed until the controller fences it (the same 9 s).
#
# Environment: KAFKA_VERSION (default 4.4.0), KAFKA_CACHE (default
# $HOME/.cache/riskos-connector/kafka-$KAFKA_VERSION), KAFKA_READY_TIMEOUT (seconds, default 60),
# KAFKA_STOP_TIMEOUT (seconds, default 30), KAFKA_HEAP (broker -Xmx, default 512m for one node,
# 384m each for more), KAFKA_JVM_OPTS (extra broker JVM options), KAFKA_TOOL_OPTS (JVM options
# for tools, default -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1), JAVA (default java).
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
LOG4J_VERSION=2.25.5 # the log4j2 version Kafka 4.4.0 depends on; adds its slf4j 1.x binding
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
KAFKA_CACHE="${KAFKA_CACHE:-$HOME/.cache/riskos-connector/kafka-$KAFKA_VERSION}"
KAFKA_READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
JAVA="${JAVA:-java}"
MARKER="$KAFKA_CACHE/.fetch-complete"

die() { echo "kafka.sh: $*" >&2; exit 1; }
note() { echo "kafka.sh: $*" >&2; }

usage() {
  sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------------------------------- fetch

write_if_changed() { # path content: atomic, so concurrent runs never see a half-written file
  local path=$1 content=$2
  if [[ ! -f $path ]] || [[ "$(cat "$path")" != "$content" ]]; then
    printf '%s\n' "$content" >"$path.tmp.$$"
    mv -f "$path.tmp.$$" "$path"
  fi
}

write_tools_log_config() {
  write_if_changed "$KAFKA_CACHE/tools-log4j2.properties" "status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR"
}

fetch() {
  if [[ -f $MARKER && -f $KAFKA_CACHE/kafka_2.13-$KAFKA_VERSION.jar ]]; then
    write_tools_log_config
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found; Maven is needed to fetch Kafka"
  mkdir -p "$KAFKA_CACHE"
  exec 9>"$KAFKA_CACHE/.lock"
  flock 9 # one fetch at a time (parallel tests); the others wait, then find the marker
  if [[ -f $MARKER && -f $KAFKA_CACHE/kafka_2.13-$KAFKA_VERSION.jar ]]; then
    exec 9>&-
    write_tools_log_config
    return 0
  fi
  note "fetching Kafka $KAFKA_VERSION with Maven into $KAFKA_CACHE (once, about a minute)"
  rm -f "$KAFKA_CACHE"/*.jar "$MARKER"
  cat >"$KAFKA_CACHE/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>riskos-connector</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  if ! mvn -B -f "$KAFKA_CACHE/pom.xml" "$DEPENDENCY_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_CACHE" >"$KAFKA_CACHE/fetch.log" 2>&1; then
    grep -E '^\[(ERROR|FATAL)\]' "$KAFKA_CACHE/fetch.log" >&2 || tail -n 40 "$KAFKA_CACHE/fetch.log" >&2
    die "Maven failed to fetch Kafka $KAFKA_VERSION (full log: $KAFKA_CACHE/fetch.log)"
  fi
  local jar
  for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" \
    "kafka-clients-$KAFKA_VERSION.jar" "log4j-slf4j-impl-$LOG4J_VERSION.jar"; do
    [[ -f $KAFKA_CACHE/$jar ]] || die "Maven finished but $jar is missing from $KAFKA_CACHE"
  done
  compgen -G "$KAFKA_CACHE/log4j-core-*.jar" >/dev/null || die "log4j-core is missing from $KAFKA_CACHE"
  write_tools_log_config
  echo "kafka $KAFKA_VERSION fetched $(date -u +%FT%TZ)" >"$MARKER"
  exec 9>&-
  note "fetched $(find "$KAFKA_CACHE" -maxdepth 1 -name '*.jar' | wc -l) jars"
}

# ---------------------------------------------------------------------------------- processes

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# pid of node i if it is running (and really is that node), else nothing
node_pid() {
  local dir=$1 i=$2 pid cmd
  [[ -f $dir/node-$i/pid ]] || return 0
  pid=$(<"$dir/node-$i/pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  alive "$pid" || return 0
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  [[ " $cmd " == *" kafka.Kafka $dir/node-$i/server.properties "* ]] || return 0
  echo "$pid"
}

alive() { # a killed JVM's main thread turns zombie while its other threads still hold the ports
  local state threads
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)
  [[ -n $state ]] || return 1
  [[ $state != Z ]] && return 0
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$1/status" 2>/dev/null || true)
  ((${threads:-0} > 1))
}

launch_node() { # dir i heap: starts the JVM detached; the pid file is written by the process
  local dir=$1 i=$2 heap=$3
  local nd="$dir/node-$i"
  local -a jvm=(-Xms64m "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$dir/log4j2.properties" "-Dkafka.logs.dir=$nd")
  if [[ -n ${KAFKA_JVM_OPTS:-} ]]; then
    local -a extra
    read -r -a extra <<<"$KAFKA_JVM_OPTS"
    jvm+=("${extra[@]}")
  fi
  echo "=== $(date -u +%FT%TZ) kafka.sh starting node $i" >>"$nd/server.log"
  rm -f "$nd/pid"
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner bash: it writes its pid, then execs java
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$nd/pid" \
    "$JAVA" "${jvm[@]}" -cp "$KAFKA_CACHE/*" kafka.Kafka "$nd/server.properties" \
    >>"$nd/server.log" 2>&1 </dev/null &
  local n=0
  while [[ ! -s $nd/pid ]] && ((n < 50)); do sleep 0.1; n=$((n + 1)); done
  [[ -s $nd/pid ]] || die "node $i: no pid file after launch"
}

stop_pids() { # signal dir nodes...: signals all verified nodes at once, then waits for all
  local sig=$1 dir=$2 i pid
  shift 2
  local -A pids=()
  for i in "$@"; do
    pid=$(node_pid "$dir" "$i")
    if [[ -z $pid ]]; then
      rm -f "$dir/node-$i/pid"
      echo "node $i: not running"
      continue
    fi
    pids[$i]=$pid
    kill "-$sig" "$pid" 2>/dev/null || true
  done
  local wait_s=$KAFKA_STOP_TIMEOUT killed=0
  [[ $sig == KILL ]] && wait_s=10
  local deadline=$((SECONDS + wait_s))
  while :; do
    local left=0
    for i in "${!pids[@]}"; do alive "${pids[$i]}" && left=1; done
    ((left)) || break
    if ((SECONDS >= deadline)); then
      ((killed)) && break
      for i in "${!pids[@]}"; do
        if alive "${pids[$i]}"; then
          note "node $i (pid ${pids[$i]}) still running after ${KAFKA_STOP_TIMEOUT}s of TERM; KILL"
          kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
      done
      killed=1
      deadline=$((SECONDS + 10))
    fi
    sleep 0.2
  done
  local failed=0 port cport p n
  port=$(env_get "$dir" port)
  cport=$(env_get "$dir" controller_port)
  for i in "${!pids[@]}"; do
    if alive "${pids[$i]}"; then
      note "node $i: pid ${pids[$i]} did not exit"
      failed=1
      continue
    fi
    rm -f "$dir/node-$i/pid"
    for p in $((port + i)) $((cport + i)); do # so that a start right after finds them free
      n=0
      while port_open "$p" && ((n < 50)); do sleep 0.2; n=$((n + 1)); done
      port_open "$p" && { note "node $i: port $p still accepts connections"; failed=1; }
    done
    echo "node $i: stopped (pid ${pids[$i]}, $sig)"
  done
  return "$failed"
}

# ------------------------------------------------------------------------------------ cluster

env_get() { # dir key
  local k v
  while IFS='=' read -r k v; do
    [[ $k == "$2" ]] && { echo "$v"; return 0; }
  done <"$1/cluster.env"
  return 1
}

random_cluster_id() { # a base64url Uuid as Kafka prints them, not starting with '-'
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [[ $id != -* && $id != AAAAAAAAAAAAAAAAAAAAA[AQ] ]] && { echo "$id"; return; }
  done
}

write_node_properties() { # dir i nodes port cport
  local dir=$1 i=$2 n=$3 port=$4 cport=$5 rf voters="" j
  rf=$((n < 3 ? n : 3))
  for ((j = 0; j < n; j++)); do voters+="${voters:+,}$j@127.0.0.1:$((cport + j))"; done
  mkdir -p "$dir/node-$i/data"
  {
    echo "# generated by scripts/kafka.sh (node $i of $n); reused by start and start-node"
    echo "process.roles=broker,controller"
    echo "node.id=$i"
    echo "controller.quorum.voters=$voters"
    echo "listeners=PLAINTEXT://127.0.0.1:$((port + i)),CONTROLLER://127.0.0.1:$((cport + i))"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$((port + i))"
    echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    echo "controller.listener.names=CONTROLLER"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "log.dirs=$dir/node-$i/data"
    echo "num.partitions=1"
    echo "default.replication.factor=$rf"
    echo "auto.create.topics.enable=false"
    echo "group.initial.rebalance.delay.ms=0"
    echo "offsets.topic.replication.factor=$rf"
    echo "transaction.state.log.replication.factor=$rf"
    echo "transaction.state.log.min.isr=$((rf > 1 ? 2 : 1))"
    echo "share.coordinator.state.topic.replication.factor=$rf"
    echo "share.coordinator.state.topic.min.isr=$((rf > 1 ? 2 : 1))"
    if [[ -s $dir/extra.properties ]]; then
      echo "# --config"
      cat "$dir/extra.properties"
    fi
  } >"$dir/node-$i/server.properties"
}

write_broker_log_config() {
  write_if_changed "$1/log4j2.properties" "status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN"
}

format_node() { # dir i cluster_id
  local nd="$1/node-$2"
  [[ -f $nd/data/meta.properties ]] && return 0
  "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    "-Dlog4j2.configurationFile=$KAFKA_CACHE/tools-log4j2.properties" -cp "$KAFKA_CACHE/*" \
    kafka.tools.StorageTool format --cluster-id "$3" --config "$nd/server.properties" \
    >>"$nd/server.log" 2>&1 || { tail -n 20 "$nd/server.log" >&2; die "node $2: format failed"; }
}

node_line() { # dir i
  local port pid
  port=$(env_get "$1" port)
  pid=$(node_pid "$1" "$2")
  echo "node $2: 127.0.0.1:$((port + $2)) pid ${pid:-none} log $1/node-$2/server.log"
}

bootstrap_string() {
  local n port s="" i
  n=$(env_get "$1" nodes)
  port=$(env_get "$1" port)
  for ((i = 0; i < n; i++)); do s+="${s:+,}127.0.0.1:$((port + i))"; done
  echo "$s"
}

STARTED=() # nodes this invocation launched: stopped again if it fails or is interrupted
STARTED_DIR=""
abort_started() {
  if ((${#STARTED[@]})) && [[ -n $STARTED_DIR ]]; then
    note "stopping the nodes this run started: ${STARTED[*]}"
    KAFKA_STOP_TIMEOUT=10 stop_pids TERM "$STARTED_DIR" "${STARTED[@]}" >&2 || true
  fi
  STARTED=()
}

# Starts the given nodes (skipping running ones) and waits until all of them are ready.
start_nodes() { # dir heap nodes...
  local dir=$1 heap=$2 i p pid port cport
  shift 2
  port=$(env_get "$dir" port)
  cport=$(env_get "$dir" controller_port)
  local -A offset=()
  local -a waiting=()
  for i in "$@"; do
    pid=$(node_pid "$dir" "$i")
    if [[ -n $pid ]]; then
      note "node $i: already running (pid $pid)"
      continue
    fi
    for p in $((port + i)) $((cport + i)); do
      port_open "$p" && die "node $i: port $p is already in use (see ss -ltnp)"
    done
    waiting+=("$i")
  done
  ((${#waiting[@]})) || return 0
  STARTED_DIR=$dir
  trap 'abort_started; exit 130' INT TERM
  local cid
  cid=$(env_get "$dir" cluster_id)
  local -a fmt=()
  for i in "${waiting[@]}"; do
    if [[ ! -f $dir/node-$i/data/meta.properties ]]; then
      format_node "$dir" "$i" "$cid" &
      fmt+=($!)
    fi
  done
  for pid in "${fmt[@]}"; do wait "$pid" || die "formatting storage failed"; done
  for i in "${waiting[@]}"; do
    touch "$dir/node-$i/server.log"
    offset[$i]=$(stat -c %s "$dir/node-$i/server.log")
    launch_node "$dir" "$i" "$heap"
    STARTED+=("$i")
  done
  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT)) start=$SECONDS
  local -a pending=("${waiting[@]}")
  while ((${#pending[@]})); do
    local -a still=()
    for i in "${pending[@]}"; do
      pid=$(<"$dir/node-$i/pid")
      if ! alive "$pid"; then
        tail -c "+$((offset[$i] + 1))" "$dir/node-$i/server.log" | tail -n 40 >&2
        abort_started
        die "node $i exited during startup (log: $dir/node-$i/server.log)"
      fi
      if tail -c "+$((offset[$i] + 1))" "$dir/node-$i/server.log" | grep -q 'Kafka Server started' &&
        port_open $((port + i)); then
        continue
      fi
      still+=("$i")
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]})) || break
    if ((SECONDS >= deadline)); then
      for i in "${pending[@]}"; do
        echo "--- node $i: last lines of $dir/node-$i/server.log" >&2
        tail -c "+$((offset[$i] + 1))" "$dir/node-$i/server.log" | tail -n 40 >&2
      done
      abort_started
      die "nodes ${pending[*]} not ready within ${KAFKA_READY_TIMEOUT}s (KAFKA_READY_TIMEOUT)"
    fi
    sleep 0.25
  done
  note "ready in $((SECONDS - start))s"
  STARTED=()
  trap - INT TERM
}

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd -P); }

cmd_start() {
  local dir="" nodes="" port="" cport="" cid="" configs=() given_config=0
  while (($#)); do
    case $1 in
      --dir) dir=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      --nodes) nodes=$2; shift 2 ;;
      --controller-port) cport=$2; shift 2 ;;
      --cluster-id) cid=$2; shift 2 ;;
      --config)
        [[ $2 == *=* ]] || die "--config wants key=value, got '$2'"
        configs+=("$2"); given_config=1; shift 2 ;;
      *) die "start: unknown argument '$1'" ;;
    esac
  done
  [[ -n $dir ]] || die "start: --dir is required"
  for v in "$nodes" "$port" "$cport"; do
    [[ -z $v || $v =~ ^[0-9]+$ ]] || die "start: '$v' is not a number"
  done
  fetch
  dir=$(abs_dir "$dir")
  local heap
  if [[ -f $dir/cluster.env ]] && compgen -G "$dir/node-*/data/meta.properties" >/dev/null; then
    local k v
    for k in nodes port controller_port cluster_id; do
      case $k in nodes) v=$nodes ;; port) v=$port ;; controller_port) v=$cport ;; cluster_id) v=$cid ;; esac
      [[ -z $v || $v == "$(env_get "$dir" "$k")" ]] ||
        die "$dir already holds a cluster with $k=$(env_get "$dir" $k), not $v; use another --dir"
    done
    if ((given_config)) && [[ "$(printf '%s\n' "${configs[@]}")" != "$(cat "$dir/extra.properties")" ]]; then
      die "$dir was first started with other --config lines (see $dir/extra.properties)"
    fi
    local was
    was=$(env_get "$dir" kafka_version)
    [[ $was == "$KAFKA_VERSION" ]] || note "warning: $dir was created by Kafka $was, running $KAFKA_VERSION"
    nodes=$(env_get "$dir" nodes)
    heap=${KAFKA_HEAP:-$(env_get "$dir" heap)}
  else
    # a new cluster, or one whose storage was never formatted (an earlier start failed early)
    [[ -n $port ]] || die "start: --port is required for a new cluster"
    nodes=${nodes:-1}
    ((nodes >= 1)) || die "start: --nodes must be at least 1"
    cport=${cport:-$((port + 100))}
    ((cport + nodes <= port || port + nodes <= cport)) || die "client and controller ports overlap"
    ((cport + nodes <= 65536 && port + nodes <= 65536)) || die "ports out of range"
    cid=${cid:-$(random_cluster_id)}
    heap=${KAFKA_HEAP:-$((nodes == 1 ? 512 : 384))m}
    if ((${#configs[@]})); then printf '%s\n' "${configs[@]}"; fi >"$dir/extra.properties"
    local i
    for ((i = 0; i < nodes; i++)); do write_node_properties "$dir" "$i" "$nodes" "$port" "$cport"; done
    printf '%s\n' "nodes=$nodes" "port=$port" "controller_port=$cport" "cluster_id=$cid" \
      "heap=$heap" "kafka_version=$KAFKA_VERSION" >"$dir/cluster.env"
  fi
  write_broker_log_config "$dir"
  local i all=()
  for ((i = 0; i < nodes; i++)); do
    [[ -f $dir/node-$i/server.properties ]] || die "missing $dir/node-$i/server.properties"
    all+=("$i")
  done
  start_nodes "$dir" "$heap" "${all[@]}"
  for i in "${all[@]}"; do node_line "$dir" "$i"; done
  bootstrap_string "$dir"
}

existing_dir() { # resolves --dir of an existing cluster
  [[ -n $1 ]] || die "--dir is required"
  [[ -f $1/cluster.env ]] || die "$1 holds no cluster (no cluster.env); run start first"
  (cd "$1" && pwd -P)
}

check_node() { # dir i
  local n
  n=$(env_get "$1" nodes)
  if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 >= n)); then
    die "no node '$2' (the cluster has nodes 0..$((n - 1)))"
  fi
}

cmd_start_node() {
  local dir="" node=""
  while (($#)); do
    case $1 in
      --dir) dir=$2; shift 2 ;;
      --node) node=$2; shift 2 ;;
      *) die "start-node: unknown argument '$1'" ;;
    esac
  done
  dir=$(existing_dir "$dir")
  [[ -n $node ]] || die "start-node: --node is required"
  check_node "$dir" "$node"
  [[ -f $dir/node-$node/server.properties ]] || die "missing $dir/node-$node/server.properties"
  fetch
  write_broker_log_config "$dir"
  start_nodes "$dir" "${KAFKA_HEAP:-$(env_get "$dir" heap)}" "$node"
  node_line "$dir" "$node"
}

cmd_stop() {
  local dir="" node="" sig=TERM
  while (($#)); do
    case $1 in
      --dir) dir=$2; shift 2 ;;
      --node) node=$2; shift 2 ;;
      --signal) sig=${2#SIG}; shift 2 ;;
      *) die "stop: unknown argument '$1'" ;;
    esac
  done
  [[ $sig == TERM || $sig == KILL ]] || die "stop: --signal must be TERM or KILL"
  dir=$(existing_dir "$dir")
  local -a which=()
  if [[ -n $node ]]; then
    check_node "$dir" "$node"
    which=("$node")
  else
    local i n
    n=$(env_get "$dir" nodes)
    for ((i = 0; i < n; i++)); do which+=("$i"); done
  fi
  stop_pids "$sig" "$dir" "${which[@]}"
}

cmd_status() {
  local dir=""
  while (($#)); do
    case $1 in
      --dir) dir=$2; shift 2 ;;
      *) die "status: unknown argument '$1'" ;;
    esac
  done
  dir=$(existing_dir "$dir")
  local i n port pid rc=0
  n=$(env_get "$dir" nodes)
  port=$(env_get "$dir" port)
  for ((i = 0; i < n; i++)); do
    pid=$(node_pid "$dir" "$i")
    if [[ -n $pid ]]; then
      echo "node $i: running 127.0.0.1:$((port + i)) pid $pid log $dir/node-$i/server.log"
    else
      echo "node $i: stopped"
      rc=1
    fi
  done
  return "$rc"
}

cmd_bootstrap() {
  [[ ${1:-} == --dir && -n ${2:-} ]] || die "usage: bootstrap --dir DIR"
  bootstrap_string "$(existing_dir "$2")"
}

cmd_tool() {
  (($#)) || die "tool: a class name is required"
  local class=$1
  shift
  fetch
  local -a opts
  read -r -a opts <<<"${KAFKA_TOOL_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
  exec "$JAVA" "${opts[@]}" "-Dlog4j2.configurationFile=$KAFKA_CACHE/tools-log4j2.properties" \
    -cp "$KAFKA_CACHE/*" "$class" "$@"
}

(($#)) || usage
cmd=$1
shift
case $cmd in
  fetch) fetch; echo "$KAFKA_CACHE" ;;
  start) cmd_start "$@" ;;
  start-node) cmd_start_node "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status "$@" ;;
  bootstrap) cmd_bootstrap "$@" ;;
  tool) cmd_tool "$@" ;;
  topics) cmd_tool org.apache.kafka.tools.TopicCommand "$@" ;;
  configs) cmd_tool org.apache.kafka.tools.ConfigCommand "$@" ;;
  console-consumer) cmd_tool org.apache.kafka.tools.consumer.ConsoleConsumer "$@" ;;
  console-producer) cmd_tool org.apache.kafka.tools.ConsoleProducer "$@" ;;
  consumer-groups) cmd_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@" ;;
  get-offsets) cmd_tool org.apache.kafka.tools.GetOffsetShell "$@" ;;
  metadata-quorum) cmd_tool org.apache.kafka.tools.MetadataQuorumCommand "$@" ;;
  api-versions) cmd_tool org.apache.kafka.tools.BrokerApiVersionsCommand "$@" ;;
  storage) cmd_tool kafka.tools.StorageTool "$@" ;;
  -h | --help | help) usage ;;
  *) die "unknown command '$cmd' (see scripts/kafka.sh --help)" ;;
esac
