//! The data contract: quarantine and replay, schema evolution against the registry,
//! single-object encoding read by an independent decoder, and the consumer tools. Bodies that
//! are not envelopes and a failed quarantine write are in `tests/surface/contract.rs`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use support::decode::{assert_data_matches, decode};
use support::kafka::read_all;
use support::{
    edit_data_fields, fixtures, post_all_fixtures, python_decode, schema_copy, test_config, Broker,
    RegistryDouble, Stack, TestApp,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_that_does_not_fit_is_quarantined_then_replayed_after_a_schema_fix() {
    // Arrange: the vendor changed `decision` from a string to an object.
    let schemas = schema_copy();
    let dir = schemas.path().to_path_buf();
    let stack = Stack::start_with(|c| c.schemas.dir = dir).await;
    let body = json!({
        "event_id": "q-1", "event_at": "2025-11-02T09:16:00Z", "event_type": "evaluation_completed",
        "data": {"eval_id": "ev-1", "decision": {"code": "ACCEPT", "score": 0.93}}
    })
    .to_string();

    // Act
    let response = stack.app.post_webhook(body.clone()).await;

    // Assert: stored (so 200), raw, with the reason.
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["status"], "quarantined");
    let bootstrap = stack.broker.bootstrap();
    assert!(read_all(&bootstrap, &stack.app.topic("evaluation_completed")).is_empty());
    let quarantined = read_all(&bootstrap, &stack.app.topic("quarantine"));
    assert_eq!(quarantined.len(), 1);
    let record = &quarantined[0];
    assert_eq!(record.payload, body.as_bytes());
    assert_eq!(record.key.as_deref(), Some("q-1"));
    assert_eq!(record.header("quarantine_reason"), Some("schema_mismatch"));
    assert_eq!(record.header("quarantine_field"), Some("data.decision"));
    assert_eq!(record.header("event_type"), Some("evaluation_completed"));
    assert!(
        record
            .header("received_at")
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 1_700_000_000_000
    );

    // Act: the schema fix (a backward-compatible union branch), then a replay.
    edit_data_fields(
        &schemas.path().join("evaluation_completed.avsc"),
        |fields| {
            let decision = fields.iter_mut().find(|f| f["name"] == "decision").unwrap();
            decision["type"] = json!(["null", "string", {
                "type": "record", "name": "Decision",
                "fields": [{"name": "code", "type": "string"}, {"name": "score", "type": ["null", "double"], "default": null}]
            }]);
        },
    );
    let report = riskos_connector::tools::replay::run(&stack.app.config, None, None)
        .await
        .unwrap();

    // Assert: it landed on its proper topic, keyed as usual.
    assert_eq!(report.read, 1);
    assert!(
        report.still_failing.is_empty(),
        "{:?}",
        report.still_failing
    );
    let replayed = read_all(&bootstrap, &stack.app.topic("evaluation_completed"));
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].key.as_deref(), Some("q-1"));
    assert_eq!(replayed[0].header("endpoint"), Some("riskos"));
    let value = decode(&stack.registry.url, &replayed[0].payload).await;
    assert_eq!(
        value["data"]["decision"],
        json!({"code": "ACCEPT", "score": 0.93})
    );
    assert_eq!(value["raw"], body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_takes_only_its_own_endpoints_bodies_from_a_shared_quarantine() {
    // Two endpoints on one prefix share its quarantine topic; Alloy's takes request tokens only.
    let stack = Stack::start_with(|config| {
        let mut alloy = riskos_connector::wiring::config::EndpointConfig::new("alloy");
        alloy.topic_prefix = config.endpoints[0].topic_prefix.clone();
        alloy.envelopes = vec![riskos_connector::pipeline::envelope::EnvelopeKind::RequestToken];
        alloy.auth.mode = Some(riskos_connector::ingress::auth::AuthMode::None);
        config.endpoints.push(alloy);
    })
    .await;
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/riskos.case_closure.match.json"
    ))
    .unwrap();
    let response = stack.app.post_json("/webhooks/alloy", body.clone()).await;
    assert_eq!(
        response.status(),
        400,
        "a RiskOS envelope on Alloy's endpoint"
    );
    let bootstrap = stack.broker.bootstrap();
    let quarantined = read_all(&bootstrap, &stack.app.topic("quarantine"));
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].header("endpoint"), Some("alloy"));
    assert_eq!(
        quarantined[0].header("quarantine_reason"),
        Some("envelope_not_accepted")
    );

    // The RiskOS endpoint's replay leaves Alloy's body alone…
    let config = &stack.app.config;
    let report = riskos_connector::tools::replay::run(config, Some("riskos"), None)
        .await
        .unwrap();
    assert_eq!((report.read, report.other_endpoints), (1, 1));
    assert!(report.replayed.is_empty() && report.still_failing.is_empty());
    // …Alloy's own replay retries it: still an envelope Alloy does not take.
    let report = riskos_connector::tools::replay::run(config, Some("alloy"), None)
        .await
        .unwrap();
    assert_eq!(report.other_endpoints, 0);
    assert_eq!(report.still_failing.len(), 1, "{report:?}");
    assert!(report.still_failing[0].2.contains("not accepted"));
    let case_topic = stack.app.topic("case_management_notification_case_closure");
    assert!(read_all(&bootstrap, &case_topic).is_empty());
    // Several endpoints and none named: the tool asks which.
    let error = riskos_connector::tools::replay::run(config, None, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("--endpoint"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_schema_edit_is_refused_before_anything_is_registered() {
    // Arrange: a first deployment registers the shipped schemas.
    let broker = Broker::shared();
    let registry = RegistryDouble::start().await;
    let deployed = test_config(&broker.bootstrap(), &registry.url);
    let first = TestApp::spawn(deployed.clone()).await.unwrap();
    first.stop().await.unwrap();
    let schemas = schema_copy();
    edit_data_fields(&schemas.path().join("create.cases.avsc"), |fields| {
        fields.push(json!({"name": "priority", "type": "long"}));
    });
    let mut config = deployed;
    config.schemas.dir = schemas.path().to_path_buf();
    let subject = format!("{}create.cases-value", config.endpoints[0].topic_prefix);

    // Act
    let error = TestApp::spawn(config.clone()).await.err().expect("refused");
    let check = schemas_check(&config);

    // Assert: the message names the subject and the field; nothing new was registered.
    let message = format!("{error:#}");
    assert!(message.contains(&subject), "{message}");
    assert!(message.contains("data.priority"), "{message}");
    assert_eq!(registry.versions(&subject), 1);
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("data.priority"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compatible_schema_edit_registers_a_new_version() {
    let broker = Broker::shared();
    let registry = RegistryDouble::start().await;
    let deployed = test_config(&broker.bootstrap(), &registry.url);
    TestApp::spawn(deployed.clone())
        .await
        .unwrap()
        .stop()
        .await
        .unwrap();
    let schemas = schema_copy();
    edit_data_fields(&schemas.path().join("create.cases.avsc"), |fields| {
        fields.push(json!({"name": "priority", "type": ["null", "long"], "default": null}));
    });
    let mut config = deployed;
    config.schemas.dir = schemas.path().to_path_buf();
    let topic = format!("{}create.cases", config.endpoints[0].topic_prefix);
    let subject = format!("{topic}-value");

    let check = schemas_check(&config);
    let app = TestApp::spawn(config).await.expect("starts");

    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        report.contains(&format!("{subject}: compatible (Backward)")),
        "{report}"
    );
    assert_eq!(registry.versions(&subject), 2);
    let body = json!({"request_token": "rt-9", "timestamp": 1, "type": "create:cases",
                      "data": {"case_token": "c", "priority": 3}});
    assert_eq!(app.post_webhook(body.to_string()).await.status(), 200);
    let records = read_all(&broker.bootstrap(), &topic);
    let value = decode(&registry.url, &records[0].payload).await;
    assert_eq!(value["data"]["priority"], 3);
}

fn schemas_check(config: &riskos_connector::wiring::config::Config) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .args(["schemas", "check"])
        .env(
            "RISKOS_KAFKA__BOOTSTRAP_SERVERS",
            &config.kafka.bootstrap_servers,
        )
        .env("RISKOS_SCHEMA_REGISTRY__URL", &config.schema_registry.url)
        .env("RISKOS_SCHEMAS__DIR", &config.schemas.dir)
        .env(
            "RISKOS_ENDPOINTS__RISKOS__TOPIC_PREFIX",
            &config.endpoints[0].topic_prefix,
        )
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_object_records_decode_with_fastavro_and_the_avsc_files_alone() {
    // Arrange: no registry at all.
    let stack = Stack::start_with(|c| {
        c.schema_registry.url = String::new();
        c.schemas.encoding = None;
    })
    .await;
    let fixtures = fixtures::all();
    let topics = post_all_fixtures(&stack.app).await;

    // Act: fastavro decodes, after checking the fingerprint against the .avsc files itself.
    let schemas = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let decoded = python_decode(
        &stack.broker.bootstrap(),
        ["--schemas", schemas.to_str().unwrap()],
        &topics,
    )
    .await;

    // Assert
    assert_eq!(decoded.len(), fixtures.len());
    for (name, body) in &fixtures {
        let posted: Value = serde_json::from_slice(body).unwrap();
        let raw = String::from_utf8(body.clone()).unwrap();
        let record = decoded
            .iter()
            .find(|r| r["value"]["raw"] == raw)
            .unwrap_or_else(|| panic!("{name} not decoded"));
        assert_data_matches(&record["value"]["data"], &posted["data"], name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_decoded_records_as_json_lines() {
    let stack = Stack::start().await;
    for (_, body) in fixtures::all() {
        assert_eq!(stack.app.post_webhook(body).await.status(), 200);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .args(["tail", "--from-beginning", "--exit-at-end"])
        .env("RISKOS_KAFKA__BOOTSTRAP_SERVERS", stack.broker.bootstrap())
        .env("RISKOS_SCHEMA_REGISTRY__URL", &stack.registry.url)
        .env(
            "RISKOS_ENDPOINTS__RISKOS__TOPIC_PREFIX",
            &stack.app.config.endpoints[0].topic_prefix,
        )
        .env(
            "RISKOS_SCHEMAS__DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/schemas"),
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    for (name, body) in fixtures::all() {
        let raw = String::from_utf8(body).unwrap();
        assert!(lines.iter().any(|l| l["value"]["raw"] == raw), "{name}");
    }
}
