//! What README and `docs/` state about the code, checked against the code: every setting has a
//! row, the paths an endpoint may not take, the reason for the ack-timeout ceiling, what the
//! protection promise leaves in clear, and no shipped feature called planned.

use std::path::{Path, PathBuf};

use riskos_connector::config::endpoint::RESERVED_PATHS;
use riskos_connector::config::{Config, EndpointConfig, MAX_ACK_TIMEOUT_MS};
use serde_json::Value as Json;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// The README table row whose first cell starts with the key `key`.
fn readme_row(key: &str) -> String {
    let start = format!("| `{key}`");
    read("README.md")
        .lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("README has no row for `{key}`"))
        .to_string()
}

/// The code spans of a text, in order.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Every dotted key of a serialized config section (maps recursed, anything else a leaf).
fn leaf_keys(value: &Json, path: &str, out: &mut Vec<String>) {
    match value {
        Json::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                leaf_keys(inner, &format!("{path}.{key}"), out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

#[test]
fn every_setting_has_a_row_in_readme() {
    let mut config = serde_json::to_value(Config::default()).unwrap();
    let endpoint = serde_json::to_value(EndpointConfig::new("riskos")).unwrap();
    config.as_object_mut().unwrap().remove("endpoints");
    let mut keys = Vec::new();
    for (section, value) in config.as_object().unwrap() {
        leaf_keys(value, section, &mut keys);
    }
    leaf_keys(&endpoint, "endpoints", &mut keys);
    // A row's first cell names a key, then siblings by their last part:
    // "`schema_registry.username` / `password` / `password_file`".
    let mut documented = Vec::new();
    for line in read("README.md").lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap();
        let names = code_spans(cell);
        let parent = names[0].rsplit_once('.').map_or("", |(parent, _)| parent);
        documented.push(names[0].to_string());
        documented.extend(names[1..].iter().map(|name| format!("{parent}.{name}")));
    }
    let missing: Vec<&String> = keys.iter().filter(|k| !documented.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "settings without a row in README's configuration tables: {missing:?}"
    );
}

#[test]
fn readme_names_every_path_an_endpoint_may_not_take() {
    let row = readme_row("endpoints.path");
    let meaning = row.split('|').nth(3).unwrap();
    let named: Vec<&str> = code_spans(meaning)
        .into_iter()
        .filter(|span| span.starts_with('/'))
        .collect();
    assert_eq!(named, RESERVED_PATHS, "{row}");
}

#[test]
fn the_ack_timeout_ceiling_is_explained_by_the_strictest_sender() {
    // Request-token senders (Alloy) give up after 10 s, RiskOS after 30 s: the reply, even a
    // 408 at `http.request_timeout_ms`, must reach the strictest one in time.
    const REQUEST_TOKEN_SENDER_TIMEOUT_MS: u64 = 10_000;
    const RISKOS_TIMEOUT_MS: u64 = 30_000;
    let defaults = Config::default();
    const _: () = assert!(MAX_ACK_TIMEOUT_MS < REQUEST_TOKEN_SENDER_TIMEOUT_MS);
    assert!(defaults.http.request_timeout_ms < REQUEST_TOKEN_SENDER_TIMEOUT_MS);
    let row = readme_row("delivery.ack_timeout_ms");
    for stated in [
        format!("at most {MAX_ACK_TIMEOUT_MS}"),
        format!("after {} s", REQUEST_TOKEN_SENDER_TIMEOUT_MS / 1000),
        "Alloy".to_string(),
        format!("RiskOS waits {} s", RISKOS_TIMEOUT_MS / 1000),
    ] {
        assert!(
            row.contains(&stated),
            "the row should say `{stated}`: {row}"
        );
    }
}

#[test]
fn the_protection_promise_says_what_it_leaves_in_clear() {
    // `extra` (top-level fields outside the envelope) is a field of every shipped schema and
    // no policy reaches it: marks sit under `data` or on `description`.
    for entry in std::fs::read_dir(root().join("schemas")).unwrap() {
        let path = entry.unwrap().path();
        let schema: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let extra = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "extra")
            .unwrap_or_else(|| panic!("{} has no `extra`", path.display()));
        assert!(extra.get("riskos.protect").is_none(), "{}", path.display());
    }
    let readme = read("README.md");
    let section = readme
        .split("\n## Personal data protection\n")
        .nth(1)
        .unwrap();
    let promise = section.split("\n- **fields**").next().unwrap();
    assert!(promise.contains("reaches Kafka in clear"), "{promise}");
    for caveat in ["`extra`", "`customer_metadata`", "unmarked"] {
        assert!(
            promise.contains(caveat),
            "README's protection promise should name {caveat} where it is made: {promise}"
        );
    }
}

#[test]
fn no_doc_calls_partitioning_by_entity_planned() {
    let mut partitioned_by = Vec::new();
    for entry in std::fs::read_dir(root().join("schemas")).unwrap() {
        let schema: Json =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        if let Some(path) = schema["riskos.partition_by"].as_str() {
            partitioned_by.push(path.to_string());
        }
    }
    assert!(!partitioned_by.is_empty());
    for doc in [
        "README.md",
        "docs/protection.md",
        "docs/consumers.md",
        "docs/architecture.md",
    ] {
        for line in read(doc).lines() {
            let about_partitioning = line.contains("partition")
                || partitioned_by
                    .iter()
                    .any(|field| line.contains(&format!("`{field}`")));
            assert!(
                !(about_partitioning && line.to_lowercase().contains("planned")),
                "{doc} calls partitioning by entity planned; it is shipped: {line}"
            );
        }
    }
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor_of(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn links_between_the_docs_reach_a_file_and_heading() {
    let mut docs = vec![
        root().join("README.md"),
        root().join("helm/riskos-connector/README.md"),
    ];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    let mut broken = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for link in text.split("](").skip(1) {
            let Some(target) = link.split(')').next() else {
                continue;
            };
            if target.contains("://") || target.contains(char::is_whitespace) {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(file)
            };
            if !file.exists() {
                broken.push(format!("{}: {target} (no such file)", doc.display()));
                continue;
            }
            if anchor.is_empty() || file.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let headings = std::fs::read_to_string(&file).unwrap();
            if !headings
                .lines()
                .filter(|l| l.starts_with('#'))
                .any(|l| anchor_of(l) == anchor)
            {
                broken.push(format!("{}: {target} (no such heading)", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}
