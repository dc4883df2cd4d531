#!/usr/bin/env bash
# Soak test (outside CI): starts a local broker and the connector (release build, spool on),
# posts distinct events at a fixed rate for N minutes, and every 10 s prints the requests sent,
# 2xx, errors by status and the connector's RSS. Nothing scrapes /metrics meanwhile (a pod
# whose metrics nobody collects must not grow). At the end it prints the RSS slope over the
# second half of the run (least squares, MiB per hour) and whether memory stayed flat. The
# duplicate cache grows by design up to its own bound (100,000 entries by default, ~10 MiB);
# here it is kept at 10,000 so it is full within the first minute and the slope shows anything
# else. (A 5-minute run at 1000/s with the default cache: 17 → 35.9 MiB while it filled, then
# flat.)
#   scripts/soak.sh [MINUTES=5] [RATE_PER_SECOND=200]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-5}
rate=${2:-200}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cargo build --quiet --release --bin riskos-connector
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/kafka.sh stop --dir "$work/kafka" --signal KILL >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Apache Kafka (scripts/kafka.sh: the official jars, KRaft), ready when this returns.
broker_port=$(free_port); controller_port=$(free_port); http_port=$(free_port)
scripts/kafka.sh start --dir "$work/kafka" --port "$broker_port" \
  --controller-port "$controller_port" >/dev/null

# Protection as deployed: fields hashed or encrypted, `raw` encrypted.
target/release/riskos-connector keys generate --kid soak-h >"$work/hash_keys"
target/release/riskos-connector keys generate --kid soak-e >"$work/encryption_keys"
RISKOS_PROTECTION__HASH_KEYS_FILE="$work/hash_keys" \
RISKOS_PROTECTION__ENCRYPTION_KEYS_FILE="$work/encryption_keys" \
RISKOS_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$broker_port" RISKOS_HTTP__LISTEN="127.0.0.1:$http_port" \
RISKOS_SCHEMAS__ENCODING=single-object RISKOS_TOPICS__PARTITIONS=1 RISKOS_TOPICS__REPLICATION_FACTOR=1 \
RISKOS_ENDPOINTS__RISKOS__AUTH__MODE=none RISKOS_ENDPOINTS__RISKOS__RATE_LIMIT_PER_IP=0 RISKOS_LOG__LEVEL=warn \
RISKOS_DELIVERY__SPOOL__DIR="$work/spool" RISKOS_DELIVERY__DEDUP__MAX_ENTRIES=10000 \
  target/release/riskos-connector serve >"$work/connector.log" 2>&1 &
connector=$!
pids+=("$connector")
until curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; do sleep 0.2; done

python3 - "$http_port" "$connector" "$minutes" "$rate" <<'PY'
import collections, http.client, json, sys, threading, time
port, pid, minutes, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
stats = collections.Counter()
lock = threading.Lock()
def rss_mib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
def worker(ids):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    for i, due in ids:
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = json.dumps({"event_id": f"soak-{i}", "event_at": "2025-11-02T09:16:00Z",
                           "event_type": "evaluation_completed", "data": {"eval_id": f"ev-{i}"}})
        try:
            conn.request("POST", "/webhooks/riskos", body, {"content-type": "application/json"})
            status = conn.getresponse()
            status.read()
            key = status.status
        except Exception:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            key = "conn-error"
        with lock:
            stats[key] += 1
start = time.monotonic()
total = int(minutes * 60 * rate)
workers = 16
schedule = [[] for _ in range(workers)]
for i in range(total):
    schedule[i % workers].append((i, start + i / rate))
threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in schedule]
for t in threads:
    t.start()
peak = 0.0
samples = []
while any(t.is_alive() for t in threads):
    time.sleep(10)
    rss = rss_mib(); peak = max(peak, rss)
    samples.append((time.monotonic() - start, rss))
    with lock:
        sent = sum(stats.values()); ok = stats[200]
        errors = {k: v for k, v in stats.items() if k != 200}
    print(f"t={time.monotonic()-start:6.0f}s sent={sent} 2xx={ok} errors={errors} rss={rss:.1f}MiB", flush=True)
print(f"done: sent={sum(stats.values())} 2xx={stats[200]} errors={sum(v for k, v in stats.items() if k != 200)} peak_rss={peak:.1f}MiB")
# Warm-up first: allocator arenas, librdkafka buffers, and the duplicate cache filling up to
# its 10,000 entries. The slope is taken over what follows (at least the second half).
settled_at = max(minutes * 60 / 2, 10000 / rate + 30)
tail = [(t, r) for t, r in samples if t >= settled_at]
if len(tail) >= 3:
    n = len(tail)
    mean_t = sum(t for t, _ in tail) / n
    mean_r = sum(r for _, r in tail) / n
    var = sum((t - mean_t) ** 2 for t, _ in tail)
    slope = sum((t - mean_t) * (r - mean_r) for t, r in tail) / var  # MiB per second
    per_hour = slope * 3600
    per_request = slope * 1024 * 1024 / rate
    # Under 4 B a request: flat (RSS moves in pages; the defect this guards against was ~38 B).
    flat = per_request < 4.0
    print(f"rss slope from t={settled_at:.0f}s: {per_hour:+.2f} MiB/h ({per_request:+.2f} B a request) "
          f"-> {'FLAT' if flat else 'GROWING'}")
    if not flat:
        sys.exit(1)
else:
    print("rss slope: run too short to tell (run longer, or faster, than the warm-up)")
PY
