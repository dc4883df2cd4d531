//! The AsyncAPI document of the topics (`riskos-connector schemas asyncapi`): the checked-in
//! `docs/asyncapi.json` is current, and it and a two-endpoint document are valid for the
//! AsyncAPI parser (npm `@asyncapi/parser`, with its Avro schema parser checking every
//! payload schema), run by `tests/asyncapi/validate.mjs`.
//!
//! Setup (scripts/test.sh does it): Node.js 18 or later and `npm ci --prefix tests/asyncapi`.

use std::path::{Path, PathBuf};
use std::process::Command;

use riskos_connector::wiring::config::Config;
use serde_json::Value as Json;

const REFRESH: &str =
    "cargo run -- schemas asyncapi --config docs/asyncapi.toml --output docs/asyncapi.json";
const SETUP: &str = "npm ci --prefix tests/asyncapi";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the validator on `document`; panics with its output unless it passes.
fn validate(document: &Path) {
    let root = root();
    assert!(
        root.join("tests/asyncapi/node_modules/@asyncapi/parser")
            .is_dir(),
        "the AsyncAPI parser is not installed: run `{SETUP}` (needs Node.js 18+ and npm)"
    );
    let output = Command::new("node")
        .arg(root.join("tests/asyncapi/validate.mjs"))
        .arg(document)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `node` ({e}): install Node.js 18+ and run `{SETUP}`")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "{} is not a valid AsyncAPI document:\n{stdout}{stderr}",
        document.display()
    );
    assert!(stdout.contains("valid AsyncAPI 3.0.0"), "{stdout}");
}

#[test]
fn the_checked_in_document_is_current() {
    let root = root();
    let mut config = Config::load_offline(Some(&root.join("docs/asyncapi.toml"))).unwrap();
    // `schemas` in the file is relative to the repository root, where the command is run.
    config.schemas.dir = root.join(&config.schemas.dir);
    let fresh: Json =
        serde_json::from_str(&riskos_connector::tools::asyncapi::render(&config).unwrap()).unwrap();
    let checked_in = std::fs::read_to_string(root.join("docs/asyncapi.json"))
        .unwrap_or_else(|e| panic!("docs/asyncapi.json: {e}; create it with `{REFRESH}`"));
    let checked_in: Json = serde_json::from_str(&checked_in).unwrap();
    assert!(
        fresh == checked_in,
        "docs/asyncapi.json is stale (the schemas or the connector changed): refresh it with \
         `{REFRESH}` and commit it"
    );
}

#[test]
fn the_checked_in_document_is_valid_asyncapi() {
    validate(&root().join("docs/asyncapi.json"));
}

#[test]
fn a_two_endpoint_document_from_the_command_is_valid_asyncapi() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[kafka]
bootstrap_servers = "broker-1:9092,broker-2:9092"

[schema_registry]
url = "http://schema-registry:8081"

[schemas]
dir = "{}"

[topics]
partitions = 12
replication_factor = 2

[[endpoints]]
name = "production"

[[endpoints]]
name = "sandbox"
topic_prefix = "riskos.sandbox."
protect_fields = false
raw = "keep"
envelopes = ["event"]
cloudevents = true
"#,
            root().join("schemas").display()
        ),
    )
    .unwrap();
    let document = dir.path().join("asyncapi.json");
    let status = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .args(["schemas", "asyncapi", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&document)
        .env_remove("RISKOS_CONFIG")
        .status()
        .unwrap();
    assert!(status.success());
    let parsed: Json = serde_json::from_str(&std::fs::read_to_string(&document).unwrap()).unwrap();
    let channels = parsed["channels"].as_object().unwrap();
    for topic in [
        "riskos.create.cases",
        "riskos.quarantine",
        "riskos.sandbox.create.cases",
        "riskos.sandbox.unrecognized",
        "riskos.sandbox.quarantine",
    ] {
        let binding = &channels[topic]["bindings"]["kafka"];
        assert_eq!(binding["partitions"], 12, "{topic}");
        assert_eq!(binding["replicas"], 2, "{topic}");
    }
    assert_eq!(parsed["servers"]["kafka"]["host"], "broker-1:9092");
    assert_eq!(
        parsed["servers"]["kafka"]["bindings"]["kafka"]["schemaRegistryUrl"],
        "http://schema-registry:8081"
    );
    // The CloudEvents headers: always there on the sandbox's topics, opt-in on production's.
    let headers = |topic: &str| {
        let messages = channels[topic]["messages"].as_object().unwrap();
        messages.values().next().unwrap()["headers"].clone()
    };
    let required = |topic: &str| headers(topic)["required"].clone();
    assert!(required("riskos.sandbox.create.cases")
        .as_array()
        .unwrap()
        .contains(&"ce_id".into()));
    assert!(!required("riskos.create.cases")
        .as_array()
        .unwrap()
        .contains(&"ce_id".into()));
    assert!(
        headers("riskos.create.cases")["properties"]["ce_id"]["description"]
            .as_str()
            .unwrap()
            .contains("cloudevents = true")
    );
    validate(&document);
}
