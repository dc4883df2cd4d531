//! The OpenAPI document of the HTTP surface (issue 16):
//!
//! - `docs/openapi.json` is the document of `docs/openapi.toml`; the test fails when it is
//!   stale and says how to refresh it (`UPDATE_OPENAPI=1 cargo test --test surface openapi::the_checked_in_document`);
//! - the listener serves its config's document at `/openapi.json`;
//! - schemathesis (PyPI) runs against a live connector (the real listener over an in-memory
//!   store, a bearer endpoint) with the document it serves: no 5xx, every status, header,
//!   content type and body as documented, and nothing stored for a rejected request (the
//!   store's records are counted against the answers in schemathesis' HAR report).
//!
//! schemathesis runs on the interpreter `INTEROP_PYTHON` names (made by
//! `scripts/python-venv.sh tests/interop/requirements.txt`; `scripts/test.sh` sets it).
//! Without it the test fails: it is never skipped.

use std::path::PathBuf;

use riskos_connector::common::secret::Secret;
use riskos_connector::ingress::auth::AuthMode;
use riskos_connector::ingress::http::openapi;
use riskos_connector::pipeline::route::quarantine_topic;
use riskos_connector::wiring::config::Config;
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn pretty(document: &Value) -> String {
    serde_json::to_string_pretty(document).unwrap() + "\n"
}

#[test]
fn the_checked_in_document_is_current() {
    let config = Config::load_offline(Some(&repo("docs/openapi.toml")))
        .unwrap_or_else(|e| panic!("docs/openapi.toml: {e}"));
    let expected = pretty(&openapi::document(
        &config.endpoints,
        config.http.max_body_bytes,
    ));
    let path = repo("docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "docs/openapi.json is stale (or missing): it is the document of docs/openapi.toml. \
         Refresh it with `UPDATE_OPENAPI=1 cargo test --test surface openapi::the_checked_in_document` \
         and commit the result."
    );
    // It names the surface: the webhook, the token endpoint, the listener's own routes.
    let paths = expected_paths(&serde_json::from_str(&found).unwrap());
    for path in [
        "/webhooks/riskos",
        "/oauth2/token",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.iter().any(|p| p == path), "{path} in {paths:?}");
    }
    // Secrets are never in it, only header names.
    assert!(!found.contains("placeholder"), "a secret in the document");
    assert!(found.contains("X-RiskOS-Environment-Key"));
}

fn expected_paths(document: &Value) -> Vec<String> {
    document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// The bearer token of the live connector.
const TOKEN: &str = "openapi-test-token-0123456789";

fn bearer(config: &mut Config) {
    let endpoint = &mut config.endpoints[0];
    endpoint.auth.mode = Some(AuthMode::Bearer);
    endpoint.auth.bearer.tokens = vec![Secret::new(TOKEN)];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_serves_its_configs_document() {
    let served = support::Served::start_with(bearer).await;
    let response = served
        .client
        .get(served.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served_document: Value = response.json().await.unwrap();
    assert_eq!(
        served_document,
        openapi::document(&served.config.endpoints, served.config.http.max_body_bytes)
    );
    assert_eq!(served_document["openapi"], "3.1.0");
    let webhook = &served_document["paths"]["/webhooks/riskos"]["post"];
    assert_eq!(
        webhook["security"],
        serde_json::json!([{"riskos_bearer": []}])
    );
    assert_eq!(
        served_document["components"]["securitySchemes"]["riskos_bearer"]["scheme"],
        "bearer"
    );
    assert!(!served_document.to_string().contains(TOKEN));
}

#[test]
fn a_standard_webhooks_endpoint_documents_both_header_families_as_alternatives() {
    let mut config = Config::load_offline(Some(&repo("docs/openapi.toml"))).unwrap();
    config.endpoints[0].auth.mode = Some(AuthMode::StandardWebhooks);
    let document = openapi::document(&config.endpoints, config.http.max_body_bytes);
    let webhook = &document["paths"]["/webhooks/riskos"]["post"];
    // One requirement object per family: a request meets one of them, never a mix.
    assert_eq!(
        webhook["security"],
        serde_json::json!([
            {"riskos_webhook_id": [], "riskos_webhook_timestamp": [], "riskos_webhook_signature": []},
            {"riskos_svix_id": [], "riskos_svix_timestamp": [], "riskos_svix_signature": []},
        ])
    );
    let schemes = &document["components"]["securitySchemes"];
    for (scheme, header) in [
        ("riskos_webhook_id", "webhook-id"),
        ("riskos_webhook_signature", "webhook-signature"),
        ("riskos_svix_id", "svix-id"),
        ("riskos_svix_timestamp", "svix-timestamp"),
        ("riskos_svix_signature", "svix-signature"),
    ] {
        assert_eq!(schemes[scheme]["name"], header, "{scheme}");
        assert_eq!(schemes[scheme]["in"], "header", "{scheme}");
    }
}

/// The Python with schemathesis; fails (never skips) without it.
fn python() -> String {
    std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| {
        panic!(
            "INTEROP_PYTHON is not set: this test runs schemathesis on a Python that has it. \
             Make one with `scripts/python-venv.sh tests/interop/requirements.txt` and run with \
             `INTEROP_PYTHON=$PWD/.venv/bin/python` (scripts/test.sh does both)"
        )
    })
}

/// Test cases per operation; `SCHEMATHESIS_MAX_EXAMPLES` overrides.
const MAX_EXAMPLES: &str = "100";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_every_answer_documented_and_nothing_stored_for_a_rejection() {
    let python = python();
    let served = support::Served::start_with(bearer).await;
    let reports = tempfile::tempdir().unwrap();
    let har = reports.path().join("run.har");
    let max_examples =
        std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| MAX_EXAMPLES.into());
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "16".into());
    let output = tokio::process::Command::new(&python)
        .args(["-m", "schemathesis.cli", "run"])
        .arg(served.url("/openapi.json"))
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "negative_data_rejection,positive_data_acceptance",
            "--max-examples",
            &max_examples,
            "--seed",
            &seed,
            "--workers",
            "2",
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--report",
            "har",
            "--report-har-path",
        ])
        .arg(&har)
        // Its example database (`.schemathesis/`) goes to the temporary directory, not the
        // checkout.
        .current_dir(reports.path())
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "INTEROP_PYTHON={python} does not run ({e}); recreate it with \
                 scripts/python-venv.sh tests/interop/requirements.txt"
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named schemathesis"),
        "schemathesis is not installed in INTEROP_PYTHON={python}: run \
         scripts/python-venv.sh tests/interop/requirements.txt\n{stderr}"
    );
    assert!(
        output.status.success(),
        "schemathesis found answers the document does not describe ({}):\n{stdout}\n{stderr}",
        output.status
    );

    // Every request and its answer, as schemathesis recorded them.
    let har: Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    let webhook = served.url(&served.config.endpoints[0].path);
    let answers: Vec<(u16, Value)> = entries
        .iter()
        .filter(|e| {
            e["request"]["method"] == "POST"
                && e["request"]["url"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&webhook)
        })
        .map(|e| {
            let status = e["response"]["status"].as_u64().unwrap() as u16;
            let body = e["response"]["content"]["text"]
                .as_str()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or(Value::Null);
            (status, body)
        })
        .collect();
    let count = |status: u16, what: &str| {
        answers
            .iter()
            .filter(|(s, body)| {
                *s == status && body["status"] == what && body.get("duplicate").is_none()
            })
            .count()
    };
    let accepted = count(200, "accepted");
    let quarantined = count(200, "quarantined");
    let bad_requests = answers.iter().filter(|(s, _)| *s == 400).count();
    let rejected_otherwise = answers
        .iter()
        .filter(|(s, _)| !matches!(s, 200 | 400))
        .count();
    println!("{stdout}");
    println!(
        "schemathesis: {} requests, {} to the webhook: {accepted} accepted, {quarantined} \
         quarantined, {bad_requests} answered 400, {rejected_otherwise} rejected otherwise",
        entries.len(),
        answers.len()
    );
    assert!(
        rejected_otherwise > 0 && !answers.is_empty(),
        "schemathesis sent no webhook that was rejected: the run proves nothing"
    );

    // Each first `accepted` answer stored one record on an event topic and nothing else did;
    // the quarantine holds the quarantined ones and at most one per 400 (a body that could be
    // read but not used is kept raw); 401, 403, 413, 415, 429, … stored nothing.
    let quarantine = quarantine_topic(&served.config.endpoints[0].topic_prefix);
    let kept = served.store.kept();
    let on_event_topics = kept.iter().filter(|k| k.topic != quarantine).count();
    let in_quarantine = kept.len() - on_event_topics;
    assert_eq!(
        on_event_topics, accepted,
        "records on event topics vs. webhooks answered 200 `accepted`"
    );
    assert!(
        (quarantined..=quarantined + bad_requests).contains(&in_quarantine),
        "{in_quarantine} quarantined records for {quarantined} answered 200 `quarantined` and \
         {bad_requests} answered 400"
    );
}
