//! Every metric an alert rule (`deploy/prometheus/riskos-connector.rules.yaml`) or a dashboard
//! panel (`deploy/grafana/riskos-connector.json`) queries exists in `/metrics`, with the labels
//! the query uses, once the connector has seen traffic of every kind: accepted, duplicate,
//! quarantined, spooled, rejected (400, 401, 403, 413, 415, 429, 503). The served app over the
//! in-memory store (a real listener, so the connection metrics exist too). Metrics only the Kafka
//! store records (ack latency, delay, produced, spool and producer gauges, broker round trip) are
//! listed below and must still be named in `connector/metrics.rs`, so a typo in a query fails.

use std::collections::{BTreeMap, BTreeSet};

use riskos_connector::delivery::memory::Behaviour;

#[path = "api/helpers/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "http/helpers.rs"]
mod helpers;

/// Recorded by the Kafka store only: checked against the metric contract instead.
const KAFKA_STORE_ONLY: [&str; 10] = [
    "riskos_ack_latency_seconds",
    "riskos_end_to_end_delay_seconds",
    "riskos_records_produced_total",
    "riskos_spool_records",
    "riskos_spool_bytes",
    "riskos_spool_dropped_total",
    "riskos_producer_queue_messages",
    "riskos_producer_queue_bytes",
    "riskos_broker_rtt_seconds",
    "riskos_duplicates_total",
];

/// Labels Prometheus adds (target and histogram) rather than the connector.
const SCRAPE_LABELS: [&str; 6] = ["job", "instance", "namespace", "pod", "le", "container"];

const TOKEN: &str = "0f5c3a1e-7d0b-4b8e-9a51-3c2f0d6e8a11";

/// Metric name → the label names it carries in the exposition text.
fn exposed(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, rest.split_once('}').map_or("", |(l, _)| l)),
            None => (line.split_whitespace().next().unwrap_or(""), ""),
        };
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        let entry = out.entry(base.to_string()).or_default();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            if let Some((label, _)) = pair.split_once('=') {
                entry.insert(label.trim().to_string());
            }
        }
    }
    out
}

/// Every `riskos_*` metric a PromQL expression uses, with the label names it selects on or
/// groups by (`{a="x"}`, `by (a, b)`, `without (a)`).
fn queried(expr: &str, out: &mut BTreeMap<String, BTreeSet<String>>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    let mut grouping: BTreeSet<String> = BTreeSet::new();
    // Grouping labels apply to the metrics of the expression: collected first.
    for keyword in ["by", "without"] {
        let mut rest = expr;
        while let Some(at) = rest.find(keyword) {
            let after = &rest[at + keyword.len()..];
            let before_ok = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
            if let (true, Some(list)) = (before_ok, after.trim_start().strip_prefix('(')) {
                if let Some((labels, _)) = list.split_once(')') {
                    grouping.extend(labels.split(',').map(|l| l.trim().to_string()));
                }
            }
            rest = after;
        }
    }
    while let Some(start) = expr[i..].find("riskos_").map(|s| s + i) {
        let end = start
            + expr[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len() - start);
        let name = &expr[start..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        let labels = out.entry(base.to_string()).or_default();
        if bytes.get(end) == Some(&b'{') {
            if let Some(close) = expr[end..].find('}') {
                for matcher in expr[end + 1..end + close].split(',') {
                    let label: String = matcher
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !label.is_empty() {
                        labels.insert(label);
                    }
                }
            }
        }
        labels.extend(grouping.iter().filter(|l| !l.is_empty()).cloned());
        i = end;
    }
}

fn rule_and_panel_queries() -> BTreeMap<String, BTreeSet<String>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/riskos-connector.rules.yaml"))
        .unwrap();
    let mut out = BTreeMap::new();
    // A rule's `expr:` is a block scalar: its lines are indented deeper than the key.
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(at) = line.find("expr:") else {
            continue;
        };
        let mut expr = line[at + 5..].trim().trim_start_matches('|').to_string();
        while let Some(next) = lines.peek() {
            let indent = next.len() - next.trim_start().len();
            if next.trim().is_empty() || indent > at {
                expr.push(' ');
                expr.push_str(next.trim());
                lines.next();
            } else {
                break;
            }
        }
        queried(&expr, &mut out);
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/riskos-connector.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard's queries: {exprs:?}");
    for expr in exprs {
        queried(&expr, &mut out);
    }
    out
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(child, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_a_rule_or_panel_queries_is_exported_with_its_labels() {
    let served = helpers::Served::start_with(|c| {
        c.endpoints[0].auth.mode = Some(riskos_connector::auth::AuthMode::Bearer);
        c.endpoints[0].auth.bearer.tokens = vec![riskos_connector::secret::Secret::new(TOKEN)];
        c.endpoints[0].rate_limit_per_ip = 12;
        c.http.max_body_bytes = 64 * 1024;
        c.http.max_body_bytes_in_flight = 64 * 1024 * 4;
        let mut closed = riskos_connector::config::EndpointConfig::new("closed");
        closed.allow_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
        closed.auth.mode = Some(riskos_connector::auth::AuthMode::None);
        closed.raw = riskos_connector::protect::RawPolicy::Keep;
        closed.protect_fields = false;
        c.endpoints.push(closed);
    })
    .await;
    let url = served.url(&served.config.endpoints[0].path);
    let post = |body: Vec<u8>, content_type: &'static str, token: bool| {
        let mut request = served
            .client
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        if token {
            request = request.bearer_auth(TOKEN);
        }
        request.send()
    };
    let case = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/riskos.case_closure.match.json"
    ))
    .unwrap();
    let mut statuses = Vec::new();
    // Accepted, duplicate, quarantined (schema), 400, 401, 413, 415.
    for (body, content_type, token) in [
        (case.clone(), "application/json", true),
        (case.clone(), "application/json", true),
        (
            br#"{"event_id":"m-1","event_at":"2025-11-02T09:16:00Z","event_type":"evaluation_completed","data":{"eval_id":7}}"#.to_vec(),
            "application/json",
            true,
        ),
        (b"{oops".to_vec(), "application/json", true),
        (case.clone(), "application/json", false),
        (vec![b' '; 65 * 1024], "application/json", true),
        (case.clone(), "text/plain", true),
    ] {
        statuses.push(post(body, content_type, token).await.unwrap().status().as_u16());
    }
    // Spooled, then 503 (queue full).
    served.store.set_behaviour(Behaviour::Spool);
    let with_id = |id: &str| {
        let mut body: serde_json::Value = serde_json::from_slice(&case).unwrap();
        body["event_id"] = id.into();
        serde_json::to_vec(&body).unwrap()
    };
    let spooled = with_id("metrics-spooled");
    statuses.push(
        post(spooled, "application/json", true)
            .await
            .unwrap()
            .status()
            .as_u16(),
    );
    served.store.set_behaviour(Behaviour::QueueFull);
    let other = with_id("metrics-queue-full");
    statuses.push(
        post(other, "application/json", true)
            .await
            .unwrap()
            .status()
            .as_u16(),
    );
    // 429: over the rate limit of 12/s (the requests above count).
    let mut limited = 0;
    while limited == 0 {
        let status = post(case.clone(), "application/json", true)
            .await
            .unwrap()
            .status();
        if status == 429 {
            limited += 1;
        }
    }
    // 403: an endpoint that does not allow loopback.
    let closed = served
        .client
        .post(served.url("/webhooks/closed"))
        .header("content-type", "application/json")
        .body(case.clone())
        .send()
        .await
        .unwrap();
    statuses.push(closed.status().as_u16());
    // A connection closed at accept: a listener with room for one connection, which one holds.
    let full = helpers::Served::start_with(|c| c.http.max_connections = 1).await;
    let _held = tokio::net::TcpStream::connect(full.addr).await.unwrap();
    let mut over = tokio::net::TcpStream::connect(full.addr).await.unwrap();
    // The listener drops the second at accept, after counting it: its EOF is the signal.
    let mut buf = [0u8; 16];
    let read = tokio::io::AsyncReadExt::read(&mut over, &mut buf).await;
    assert!(matches!(read, Ok(0) | Err(_)), "closed at accept: {read:?}");
    for expected in [200, 400, 401, 403, 413, 415, 503] {
        assert!(statuses.contains(&expected), "{expected} in {statuses:?}");
    }

    let text = served
        .client
        .get(served.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exposed = exposed(&text);
    let contract =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/connector/metrics.rs"))
            .unwrap();
    let queried = rule_and_panel_queries();
    assert!(queried.len() >= 10, "{queried:?}");
    for (name, labels) in &queried {
        if KAFKA_STORE_ONLY.contains(&name.as_str()) {
            assert!(
                contract.contains(&format!("\"{name}\"")),
                "{name} is queried but not in connector/metrics.rs"
            );
            continue;
        }
        let Some(present) = exposed.get(name) else {
            panic!("{name} is queried but not exported after traffic of every kind:\n{text}");
        };
        for label in labels {
            if SCRAPE_LABELS.contains(&label.as_str()) || label == "quantile" {
                continue;
            }
            assert!(
                present.contains(label),
                "{name} is queried with label `{label}`, exported with {present:?}"
            );
        }
    }
}
