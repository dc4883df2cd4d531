//! The metrics the alert rules (`deploy/prometheus/riskos-connector.rules.yaml`) and the
//! dashboard (`deploy/grafana/riskos-connector.json`) query, and a check that a `/metrics` text
//! exports them with the labels the queries use (used by `tests/metrics_coverage.rs`).

use std::collections::{BTreeMap, BTreeSet};

/// Labels Prometheus adds (target and histogram) rather than the connector.
pub const SCRAPE_LABELS: [&str; 6] = ["job", "instance", "namespace", "pod", "le", "container"];

/// Metric name → the label names it carries in the exposition text.
pub fn exposed(text: &str) -> BTreeMap<String, BTreeSet<String>> {
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

/// The metric name prefixes checked: the connector's own and the process metrics every
/// Prometheus client library exports (which the file-descriptor alert and panel query).
const PREFIXES: [&str; 2] = ["riskos_", "process_"];

/// Where the next metric name with one of [`PREFIXES`] starts in `expr` at or after `from`
/// (a name, not the tail of a longer identifier).
fn next_metric(expr: &str, from: usize) -> Option<usize> {
    PREFIXES
        .iter()
        .filter_map(|prefix| {
            let mut at = from;
            while let Some(found) = expr[at..].find(prefix).map(|s| s + at) {
                let before = found.checked_sub(1).map(|b| expr.as_bytes()[b]);
                if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                    return Some(found);
                }
                at = found + prefix.len();
            }
            None
        })
        .min()
}

/// Every `riskos_*` and `process_*` metric a PromQL expression uses, with the label names it
/// selects on or groups by (`{a="x"}`, `by (a, b)`, `without (a)`).
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
    while let Some(start) = next_metric(expr, i) {
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

pub fn rule_and_panel_queries() -> BTreeMap<String, BTreeSet<String>> {
    let root = crate::repo();
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

/// Asserts that every queried metric is in `text` with every label its queries use (labels
/// Prometheus adds itself aside). Returns how many metrics were checked.
pub fn assert_exported(text: &str) -> usize {
    let exposed = exposed(text);
    let queried = rule_and_panel_queries();
    assert!(queried.len() >= 10, "{queried:?}");
    let mut checked = 0;
    for (name, labels) in &queried {
        let Some(present) = exposed.get(name) else {
            panic!("{name} is queried but not exported after traffic of every kind:\n{text}");
        };
        for label in labels {
            if SCRAPE_LABELS.contains(&label.as_str()) {
                continue;
            }
            assert!(
                present.contains(label),
                "{name} is queried with label `{label}`, exported with {present:?}"
            );
        }
        checked += 1;
    }
    checked
}
