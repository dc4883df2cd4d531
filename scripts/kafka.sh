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
#   scripts/kafka.sh start --dir DIR --port PORT [--nodes N] [--controllers M]
#                          [--controller-port CPORT] [--cluster-id ID] [--config key=value ...]
#                          [--listener NAME:PROTOCOL:PORT ...]
#       Formats (only if not formatted yet) and starts N combined broker+controller nodes
#       (default 1; static quorum of all N), waits until each has logged "Kafka Server started"
#       and accepts TCP connections. Prints "node i: 127.0.0.1:PORT+i pid P log PATH" per node
#       and, last, the bootstrap string "127.0.0.1:PORT,127.0.0.1:PORT+1,...".
#       With --listener NAME:PROTOCOL:PORT, node i also takes clients on NAME://127.0.0.1:PORT+i
#       (advertised as such) with security protocol SSL, SASL_SSL, SASL_PLAINTEXT or
#       PLAINTEXT; the listener's own settings (keystore, SASL mechanisms, JAAS) are --config
#       lines prefixed `listener.name.<name>.` (lower case). Inter-broker and controller
#       traffic stays on PLAINTEXT, which the tests' own admin tools also use. The readiness
#       check waits for the PLAINTEXT port only.
#       With --controllers M (M >= 1; default 0, the combined nodes above): M dedicated
#       controller-only nodes (process.roles=controller) form the quorum and the N nodes are
#       broker-only (process.roles=broker), so brokers can die while the quorum lives on. The
#       controllers start first and must be ready (the same test: logged, port open) before the
#       brokers start; "controller j: 127.0.0.1:CPORT+j pid P log PATH" lines come before the
#       node lines.
#       Re-running on an existing (formatted) DIR reuses its data and configuration (--nodes,
#       --controllers, --port, --controller-port and --config may be omitted; if given they must
#       match the first start) and starts only the nodes that are not running (controllers
#       first): that is how a cluster killed as a whole is restarted from its data folders.
#   scripts/kafka.sh stop --dir DIR [--node i | --controller j] [--signal TERM|KILL]
#       Stops the nodes (or node i, or controller j) by their pid files, after checking that the
#       pid's command line is still kafka.Kafka with that node's properties file. TERM (default)
#       waits up to KAFKA_STOP_TIMEOUT seconds, then KILLs; KILL is immediate. Without --node
#       or --controller: every node, then every controller.
#   scripts/kafka.sh start-node --dir DIR (--node i | --controller j)
#       Starts one stopped node (or controller) of an existing cluster with its stored
#       server.properties.
#   scripts/kafka.sh status --dir DIR         One line per controller and node; exit 0 only if
#                                             all run.
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
# quorum on 127.0.0.1:CPORT+i, CPORT defaulting to PORT+100. Every port must be free. With
# --controllers M: node i (a broker) listens on PORT+i only; controller j listens on
# 127.0.0.1:CPORT+j (CONTROLLER) only.
#
# Node ids: node i has node.id i (with or without dedicated controllers); controller j has
# node.id 100+j (so --controllers wants at most 100 nodes).
#
# Files: DIR/cluster.env (nodes, controllers, ports, cluster id, heaps, version),
# DIR/extra.properties (the --config lines, given to every node and controller: e.g.
# broker.session.timeout.ms is read by the controllers), DIR/log4j2.properties (broker logging),
# and per node DIR/node-i/ (per controller DIR/controller-j/): server.properties, data/ (log.dirs
# and KRaft metadata; data/meta.properties once formatted), server.log (stdout, stderr and log4j
# output, appended across restarts), pid.
#
# Timing on 2 cores: a new 1-node cluster is ready in about 8 s, 3 nodes in about 20 s. After the
# whole cluster was killed, a restart takes about 10 s more: the controller waits
# broker.session.timeout.ms (9 s) for the dead brokers' registrations to expire. With acks=all,
# writes stall after one node is killed until the controller fences it (the same 9 s). Killing
# two of three combined nodes also kills the quorum: nothing is fenced, the partition state
# (ISR) cannot change, and acks=all writes just wait. With dedicated controllers the quorum
# survives, fences the killed brokers and shrinks the ISR (below min.insync.replicas: produces
# fail with NOT_ENOUGH_REPLICAS).
#
# Environment: KAFKA_VERSION (default 4.4.0), KAFKA_CACHE (default
# $HOME/.cache/riskos-connector/kafka-$KAFKA_VERSION), KAFKA_READY_TIMEOUT (seconds, default 60),
# KAFKA_STOP_TIMEOUT (seconds, default 30), KAFKA_HEAP (-Xmx of every node and controller;
# default 512m for one node, 384m each for more, 256m for a dedicated controller),
# KAFKA_JVM_OPTS (extra broker JVM options), KAFKA_JVM_BASE_OPTS (the brokers' GC and JIT
# options, default -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35;
# scripts/test.sh sets -XX:+UseSerialGC -XX:TieredStopAtLevel=1 for its short-lived brokers),
# KAFKA_TOOL_OPTS (JVM options for tools, default -Xmx256m -XX:+UseSerialGC
# -XX:TieredStopAtLevel=1), KAFKA_ACCOUNT_LOG (a file: one line per JVM started, and per node
# stopped with the CPU it used, for scripts/test.sh's summary), JAVA (default java).
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
LOG4J_VERSION=2.25.5 # the log4j2 version Kafka 4.4.0 depends on; adds its slf4j 1.x binding
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
KAFKA_CACHE="${KAFKA_CACHE:-$HOME/.cache/riskos-connector/kafka-$KAFKA_VERSION}"
KAFKA_READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
JAVA="${JAVA:-java}"
MARKER="$KAFKA_CACHE/.fetch-complete"

EXTRA_LISTENERS=() # --listener NAME:PROTOCOL:PORT specs of a new cluster
die() { echo "kafka.sh: $*" >&2; exit 1; }
note() { echo "kafka.sh: $*" >&2; }
# KAFKA_ACCOUNT_LOG: "launch MEMBER DIR", "tool CLASS", "stop MEMBER DIR CPU_TICKS" lines.
account() { if [[ -n ${KAFKA_ACCOUNT_LOG:-} ]]; then echo "$*" >>"$KAFKA_ACCOUNT_LOG"; fi; }
cpu_ticks() { # pid: user+system clock ticks it has used so far (empty once it is gone)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  read -r -a stat <<<"${stat##*) }" # from field 3 (state) on: utime is field 14, stime 15
  echo $((stat[11] + stat[12]))
}

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
#
# A "member" is one JVM of the cluster, named by its folder: node-i (a combined node, or a
# broker when the cluster has dedicated controllers) or controller-j.

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

label() { echo "${1%-*} ${1##*-}"; } # node-2 -> "node 2", controller-0 -> "controller 0"

controllers_of() { env_get "$1" controllers || echo 0; } # 0 in a DIR made before --controllers

# The ports member $2 binds, the one it serves first (checked for readiness).
member_ports() { # dir member
  local k=${2##*-} port cport
  port=$(env_get "$1" port)
  cport=$(env_get "$1" controller_port)
  case $2 in
    controller-*) echo $((cport + k)) ;;
    *)
      if (($(controllers_of "$1"))); then
        echo $((port + k)) # a broker-only node
      else
        echo $((port + k)) $((cport + k))
      fi
      ;;
  esac
}

member_heap() { # dir member
  if [[ -n ${KAFKA_HEAP:-} ]]; then
    echo "$KAFKA_HEAP"
  elif [[ $2 == controller-* ]]; then
    env_get "$1" controller_heap
  else
    env_get "$1" heap
  fi
}

# pid of member $2 if it is running (and really is that member), else nothing
member_pid() {
  local dir=$1 m=$2 pid cmd
  [[ -f $dir/$m/pid ]] || return 0
  pid=$(<"$dir/$m/pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  alive "$pid" || return 0
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  [[ " $cmd " == *" kafka.Kafka $dir/$m/server.properties "* ]] || return 0
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

launch_member() { # dir member heap: starts the JVM detached; the pid file is written by the process
  local dir=$1 m=$2 heap=$3
  local nd="$dir/$m"
  local -a gc jvm
  read -r -a gc <<<"${KAFKA_JVM_BASE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35}"
  jvm=(-Xms64m "-Xmx$heap" "${gc[@]}" -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$dir/log4j2.properties" "-Dkafka.logs.dir=$nd")
  if [[ -n ${KAFKA_JVM_OPTS:-} ]]; then
    local -a extra
    read -r -a extra <<<"$KAFKA_JVM_OPTS"
    jvm+=("${extra[@]}")
  fi
  echo "=== $(date -u +%FT%TZ) kafka.sh starting $(label "$m")" >>"$nd/server.log"
  account "launch $m $dir"
  rm -f "$nd/pid"
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner bash: it writes its pid, then execs java
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$nd/pid" \
    "$JAVA" "${jvm[@]}" -cp "$KAFKA_CACHE/*" kafka.Kafka "$nd/server.properties" \
    >>"$nd/server.log" 2>&1 </dev/null &
  local n=0
  while [[ ! -s $nd/pid ]] && ((n < 50)); do sleep 0.1; n=$((n + 1)); done
  [[ -s $nd/pid ]] || die "$(label "$m"): no pid file after launch"
}

stop_pids() { # signal dir members...: signals all verified members at once, then waits for all
  local sig=$1 dir=$2 m pid
  shift 2
  local -A pids=() ticks=()
  for m in "$@"; do
    pid=$(member_pid "$dir" "$m")
    if [[ -z $pid ]]; then
      rm -f "$dir/$m/pid"
      echo "$(label "$m"): not running"
      continue
    fi
    pids[$m]=$pid
    ticks[$m]=$(cpu_ticks "$pid")
    kill "-$sig" "$pid" 2>/dev/null || true
  done
  local wait_s=$KAFKA_STOP_TIMEOUT killed=0 t
  [[ $sig == KILL ]] && wait_s=10
  local deadline=$((SECONDS + wait_s))
  while :; do
    local left=0
    for m in "${!pids[@]}"; do
      if alive "${pids[$m]}"; then
        left=1
        if [[ -n ${KAFKA_ACCOUNT_LOG:-} ]]; then
          t=$(cpu_ticks "${pids[$m]}")
          [[ -z $t ]] || ticks[$m]=$t
        fi
      fi
    done
    ((left)) || break
    if ((SECONDS >= deadline)); then
      ((killed)) && break
      for m in "${!pids[@]}"; do
        if alive "${pids[$m]}"; then
          note "$(label "$m") (pid ${pids[$m]}) still running after ${KAFKA_STOP_TIMEOUT}s of TERM; KILL"
          kill -KILL "${pids[$m]}" 2>/dev/null || true
        fi
      done
      killed=1
      deadline=$((SECONDS + 10))
    fi
    sleep 0.2
  done
  local failed=0 p n
  for m in "${!pids[@]}"; do
    if alive "${pids[$m]}"; then
      note "$(label "$m"): pid ${pids[$m]} did not exit"
      failed=1
      continue
    fi
    rm -f "$dir/$m/pid"
    for p in $(member_ports "$dir" "$m"); do # so that a start right after finds them free
      n=0
      while port_open "$p" && ((n < 50)); do sleep 0.2; n=$((n + 1)); done
      port_open "$p" && { note "$(label "$m"): port $p still accepts connections"; failed=1; }
    done
    echo "$(label "$m"): stopped (pid ${pids[$m]}, $sig)"
    account "stop $m $dir ${ticks[$m]:-0}"
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

# The settings every member gets: topic defaults (the controllers apply num.partitions and
# default.replication.factor to CreateTopics), internal topics, then the --config lines.
common_properties() { # dir rf
  local dir=$1 rf=$2
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
}

# node i of n; m dedicated controllers (0: node i is a combined broker+controller)
write_node_properties() { # dir i n m port cport
  local dir=$1 i=$2 n=$3 m=$4 port=$5 cport=$6 rf voters="" j extra="" map="" spec
  rf=$((n < 3 ? n : 3))
  # --listener NAME:PROTOCOL:PORT: node i also listens on NAME://127.0.0.1:PORT+i.
  for spec in "${EXTRA_LISTENERS[@]}"; do
    IFS=: read -r lname lproto lport <<<"$spec"
    extra+=",$lname://127.0.0.1:$((lport + i))"
    map+=",$lname:$lproto"
  done
  if ((m)); then
    for ((j = 0; j < m; j++)); do voters+="${voters:+,}$((100 + j))@127.0.0.1:$((cport + j))"; done
  else
    for ((j = 0; j < n; j++)); do voters+="${voters:+,}$j@127.0.0.1:$((cport + j))"; done
  fi
  mkdir -p "$dir/node-$i/data"
  {
    echo "# generated by scripts/kafka.sh (node $i of $n); reused by start and start-node"
    if ((m)); then
      echo "process.roles=broker"
      echo "node.id=$i"
      echo "controller.quorum.voters=$voters"
      echo "listeners=PLAINTEXT://127.0.0.1:$((port + i))$extra"
    else
      echo "process.roles=broker,controller"
      echo "node.id=$i"
      echo "controller.quorum.voters=$voters"
      echo "listeners=PLAINTEXT://127.0.0.1:$((port + i)),CONTROLLER://127.0.0.1:$((cport + i))$extra"
    fi
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$((port + i))$extra"
    echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT$map"
    echo "controller.listener.names=CONTROLLER"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "log.dirs=$dir/node-$i/data"
    common_properties "$dir" "$rf"
  } >"$dir/node-$i/server.properties"
}

write_controller_properties() { # dir j n m cport
  local dir=$1 j=$2 n=$3 m=$4 cport=$5 rf voters="" k
  rf=$((n < 3 ? n : 3))
  for ((k = 0; k < m; k++)); do voters+="${voters:+,}$((100 + k))@127.0.0.1:$((cport + k))"; done
  mkdir -p "$dir/controller-$j/data"
  {
    echo "# generated by scripts/kafka.sh (controller $j of $m); reused by start and start-node"
    echo "process.roles=controller"
    echo "node.id=$((100 + j))"
    echo "controller.quorum.voters=$voters"
    echo "listeners=CONTROLLER://127.0.0.1:$((cport + j))"
    echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT"
    echo "controller.listener.names=CONTROLLER"
    echo "log.dirs=$dir/controller-$j/data"
    common_properties "$dir" "$rf"
  } >"$dir/controller-$j/server.properties"
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

format_member() { # dir member cluster_id
  local nd="$1/$2"
  [[ -f $nd/data/meta.properties ]] && return 0
  account "tool kafka.tools.StorageTool"
  "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    "-Dlog4j2.configurationFile=$KAFKA_CACHE/tools-log4j2.properties" -cp "$KAFKA_CACHE/*" \
    kafka.tools.StorageTool format --cluster-id "$3" --config "$nd/server.properties" \
    >>"$nd/server.log" 2>&1 || { tail -n 20 "$nd/server.log" >&2; die "$(label "$2"): format failed"; }
}

member_line() { # dir member
  local ports pid
  ports=$(member_ports "$1" "$2")
  pid=$(member_pid "$1" "$2")
  echo "$(label "$2"): 127.0.0.1:${ports%% *} pid ${pid:-none} log $1/$2/server.log"
}

# The members of the cluster in DIR: controllers (if any), then nodes.
controller_members() {
  local m j
  m=$(controllers_of "$1")
  for ((j = 0; j < m; j++)); do echo "controller-$j"; done
}
node_members() {
  local n i
  n=$(env_get "$1" nodes)
  for ((i = 0; i < n; i++)); do echo "node-$i"; done
}

bootstrap_string() {
  local n port s="" i
  n=$(env_get "$1" nodes)
  port=$(env_get "$1" port)
  for ((i = 0; i < n; i++)); do s+="${s:+,}127.0.0.1:$((port + i))"; done
  echo "$s"
}

STARTED=() # members this invocation launched: stopped again if it fails or is interrupted
STARTED_DIR=""
abort_started() {
  if ((${#STARTED[@]})) && [[ -n $STARTED_DIR ]]; then
    note "stopping the nodes this run started: ${STARTED[*]}"
    KAFKA_STOP_TIMEOUT=10 stop_pids TERM "$STARTED_DIR" "${STARTED[@]}" >&2 || true
  fi
  STARTED=()
}
started_all() { # the invocation succeeded: keep what it started
  STARTED=()
  trap - INT TERM
}

# Starts the given members (skipping running ones) and waits until all of them are ready.
start_members() { # dir members...
  local dir=$1 m p pid ready
  shift
  local -A offset=()
  local -a waiting=()
  for m in "$@"; do
    pid=$(member_pid "$dir" "$m")
    if [[ -n $pid ]]; then
      note "$(label "$m"): already running (pid $pid)"
      continue
    fi
    for p in $(member_ports "$dir" "$m"); do
      port_open "$p" && die "$(label "$m"): port $p is already in use (see ss -ltnp)"
    done
    waiting+=("$m")
  done
  ((${#waiting[@]})) || return 0
  STARTED_DIR=$dir
  trap 'abort_started; exit 130' INT TERM
  local cid
  cid=$(env_get "$dir" cluster_id)
  local -a fmt=()
  for m in "${waiting[@]}"; do
    if [[ ! -f $dir/$m/data/meta.properties ]]; then
      format_member "$dir" "$m" "$cid" &
      fmt+=($!)
    fi
  done
  for pid in "${fmt[@]}"; do
    wait "$pid" || { abort_started; die "formatting storage failed"; }
  done
  for m in "${waiting[@]}"; do
    touch "$dir/$m/server.log"
    offset[$m]=$(stat -c %s "$dir/$m/server.log")
    launch_member "$dir" "$m" "$(member_heap "$dir" "$m")"
    STARTED+=("$m")
  done
  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT)) start=$SECONDS
  local -a pending=("${waiting[@]}")
  while ((${#pending[@]})); do
    local -a still=()
    for m in "${pending[@]}"; do
      pid=$(<"$dir/$m/pid")
      if ! alive "$pid"; then
        tail -c "+$((offset[$m] + 1))" "$dir/$m/server.log" | tail -n 40 >&2
        abort_started
        die "$(label "$m") exited during startup (log: $dir/$m/server.log)"
      fi
      ready=$(member_ports "$dir" "$m")
      if tail -c "+$((offset[$m] + 1))" "$dir/$m/server.log" | grep -q 'Kafka Server started' &&
        port_open "${ready%% *}"; then
        continue
      fi
      still+=("$m")
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]})) || break
    if ((SECONDS >= deadline)); then
      for m in "${pending[@]}"; do
        echo "--- $(label "$m"): last lines of $dir/$m/server.log" >&2
        tail -c "+$((offset[$m] + 1))" "$dir/$m/server.log" | tail -n 40 >&2
      done
      abort_started
      die "not ready within ${KAFKA_READY_TIMEOUT}s (KAFKA_READY_TIMEOUT): ${pending[*]}"
    fi
    sleep 0.25
  done
  note "ready in $((SECONDS - start))s"
}

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd -P); }

any_formatted() {
  compgen -G "$1/node-*/data/meta.properties" >/dev/null ||
    compgen -G "$1/controller-*/data/meta.properties" >/dev/null
}

cmd_start() {
  local dir="" nodes="" ctrls="" port="" cport="" cid="" configs=() given_config=0
  while (($#)); do
    case $1 in
      --dir) dir=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      --nodes) nodes=$2; shift 2 ;;
      --controllers) ctrls=$2; shift 2 ;;
      --controller-port) cport=$2; shift 2 ;;
      --cluster-id) cid=$2; shift 2 ;;
      --listener)
        [[ $2 =~ ^[A-Z][A-Z0-9_]*:(SSL|SASL_SSL|SASL_PLAINTEXT|PLAINTEXT):[0-9]+$ ]] ||
          die "--listener wants NAME:PROTOCOL:PORT (PROTOCOL SSL, SASL_SSL, SASL_PLAINTEXT or PLAINTEXT), got '$2'"
        EXTRA_LISTENERS+=("$2"); shift 2 ;;
      --config)
        [[ $2 == *=* ]] || die "--config wants key=value, got '$2'"
        configs+=("$2"); given_config=1; shift 2 ;;
      *) die "start: unknown argument '$1'" ;;
    esac
  done
  [[ -n $dir ]] || die "start: --dir is required"
  for v in "$nodes" "$ctrls" "$port" "$cport"; do
    [[ -z $v || $v =~ ^[0-9]+$ ]] || die "start: '$v' is not a number"
  done
  fetch
  dir=$(abs_dir "$dir")
  if [[ -f $dir/cluster.env ]] && any_formatted "$dir"; then
    local k v was
    for k in nodes controllers port controller_port cluster_id; do
      case $k in
        nodes) v=$nodes ;; controllers) v=$ctrls ;; port) v=$port ;;
        controller_port) v=$cport ;; cluster_id) v=$cid ;;
      esac
      if [[ $k == controllers ]]; then was=$(controllers_of "$dir"); else was=$(env_get "$dir" "$k"); fi
      [[ -z $v || $v == "$was" ]] ||
        die "$dir already holds a cluster with $k=$was, not $v; use another --dir"
    done
    if ((given_config)) && [[ "$(printf '%s\n' "${configs[@]}")" != "$(cat "$dir/extra.properties")" ]]; then
      die "$dir was first started with other --config lines (see $dir/extra.properties)"
    fi
    was=$(env_get "$dir" kafka_version)
    [[ $was == "$KAFKA_VERSION" ]] || note "warning: $dir was created by Kafka $was, running $KAFKA_VERSION"
  else
    # a new cluster, or one whose storage was never formatted (an earlier start failed early)
    [[ -n $port ]] || die "start: --port is required for a new cluster"
    nodes=${nodes:-1}
    ctrls=${ctrls:-0}
    ((nodes >= 1)) || die "start: --nodes must be at least 1"
    ((ctrls == 0 || nodes <= 100)) || die "start: at most 100 nodes with --controllers (ids 100+j)"
    local cports=$((ctrls ? ctrls : nodes)) # how many controller ports are used
    cport=${cport:-$((port + 100))}
    ((cport + cports <= port || port + nodes <= cport)) || die "client and controller ports overlap"
    ((cport + cports <= 65536 && port + nodes <= 65536)) || die "ports out of range"
    cid=${cid:-$(random_cluster_id)}
    local heap=${KAFKA_HEAP:-$((nodes == 1 ? 512 : 384))m} cheap=${KAFKA_HEAP:-256m}
    if ((${#configs[@]})); then printf '%s\n' "${configs[@]}"; fi >"$dir/extra.properties"
    local i
    for ((i = 0; i < nodes; i++)); do
      write_node_properties "$dir" "$i" "$nodes" "$ctrls" "$port" "$cport"
    done
    for ((i = 0; i < ctrls; i++)); do
      write_controller_properties "$dir" "$i" "$nodes" "$ctrls" "$cport"
    done
    local -a env=("nodes=$nodes" "port=$port" "controller_port=$cport" "cluster_id=$cid")
    env+=("heap=$heap")
    ((ctrls)) && env+=("controllers=$ctrls" "controller_heap=$cheap")
    printf '%s\n' "${env[@]}" "kafka_version=$KAFKA_VERSION" >"$dir/cluster.env"
  fi
  write_broker_log_config "$dir"
  local m
  local -a ctl=() brk=()
  mapfile -t ctl < <(controller_members "$dir")
  mapfile -t brk < <(node_members "$dir")
  for m in "${ctl[@]+"${ctl[@]}"}" "${brk[@]}"; do
    [[ -f $dir/$m/server.properties ]] || die "missing $dir/$m/server.properties"
  done
  # dedicated controllers first: brokers register with the quorum as they start
  if ((${#ctl[@]})); then start_members "$dir" "${ctl[@]}"; fi
  start_members "$dir" "${brk[@]}"
  started_all
  for m in "${ctl[@]+"${ctl[@]}"}" "${brk[@]}"; do member_line "$dir" "$m"; done
  bootstrap_string "$dir"
}

existing_dir() { # resolves --dir of an existing cluster
  [[ -n $1 ]] || die "--dir is required"
  [[ -f $1/cluster.env ]] || die "$1 holds no cluster (no cluster.env); run start first"
  (cd "$1" && pwd -P)
}

# The member named by --node i or --controller j (exactly one of them given).
member_of() { # dir node controller
  local dir=$1 node=$2 ctrl=$3 n
  [[ -n $node && -n $ctrl ]] && die "--node and --controller exclude each other"
  if [[ -n $ctrl ]]; then
    n=$(controllers_of "$dir")
    if ! [[ $ctrl =~ ^[0-9]+$ ]] || ((ctrl >= n)); then
      ((n)) || die "no controller '$ctrl' (the cluster has no dedicated controllers)"
      die "no controller '$ctrl' (the cluster has controllers 0..$((n - 1)))"
    fi
    echo "controller-$ctrl"
  else
    n=$(env_get "$dir" nodes)
    if ! [[ $node =~ ^[0-9]+$ ]] || ((node >= n)); then
      die "no node '$node' (the cluster has nodes 0..$((n - 1)))"
    fi
    echo "node-$node"
  fi
}

cmd_start_node() {
  local dir="" node="" ctrl=""
  while (($#)); do
    case $1 in
      --dir) dir=$2; shift 2 ;;
      --node) node=$2; shift 2 ;;
      --controller) ctrl=$2; shift 2 ;;
      *) die "start-node: unknown argument '$1'" ;;
    esac
  done
  dir=$(existing_dir "$dir")
  [[ -n $node || -n $ctrl ]] || die "start-node: --node (or --controller) is required"
  local m
  m=$(member_of "$dir" "$node" "$ctrl")
  [[ -f $dir/$m/server.properties ]] || die "missing $dir/$m/server.properties"
  fetch
  write_broker_log_config "$dir"
  start_members "$dir" "$m"
  started_all
  member_line "$dir" "$m"
}

cmd_stop() {
  local dir="" node="" ctrl="" sig=TERM
  while (($#)); do
    case $1 in
      --dir) dir=$2; shift 2 ;;
      --node) node=$2; shift 2 ;;
      --controller) ctrl=$2; shift 2 ;;
      --signal) sig=${2#SIG}; shift 2 ;;
      *) die "stop: unknown argument '$1'" ;;
    esac
  done
  [[ $sig == TERM || $sig == KILL ]] || die "stop: --signal must be TERM or KILL"
  dir=$(existing_dir "$dir")
  if [[ -n $node || -n $ctrl ]]; then
    local m
    m=$(member_of "$dir" "$node" "$ctrl")
    stop_pids "$sig" "$dir" "$m"
    return
  fi
  # brokers first: a TERMed broker's controlled shutdown needs the controllers
  local rc=0
  local -a ctl=() brk=()
  mapfile -t ctl < <(controller_members "$dir")
  mapfile -t brk < <(node_members "$dir")
  stop_pids "$sig" "$dir" "${brk[@]}" || rc=1
  if ((${#ctl[@]})); then stop_pids "$sig" "$dir" "${ctl[@]}" || rc=1; fi
  return "$rc"
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
  local m ports pid rc=0
  for m in $(controller_members "$dir") $(node_members "$dir"); do
    pid=$(member_pid "$dir" "$m")
    if [[ -n $pid ]]; then
      ports=$(member_ports "$dir" "$m")
      echo "$(label "$m"): running 127.0.0.1:${ports%% *} pid $pid log $dir/$m/server.log"
    else
      echo "$(label "$m"): stopped"
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
  account "tool $class"
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
