//! Connecting to clusters as customers run them (issue 27), each form against a real Apache
//! Kafka listener configured for it (`support::secured`): TLS with a private CA and mTLS,
//! SASL/SCRAM-SHA-512 and SASL/PLAIN over TLS, OAUTHBEARER with OIDC client credentials
//! (tokens fetched by librdkafka, refreshed under load), and zstd compression. Each stores
//! webhooks and reads them back; each wrong setting stops start-up with a message that names
//! what to fix and never a secret.

use std::time::{Duration, Instant};

use riskos_connector::common::secret::Secret;
use riskos_connector::delivery::kafka::sasl::SaslMechanism;
use riskos_connector::wiring::config::Config;
use serde_json::Value;

use support::kafka::read_all;
use support::secured::{self, Secured};
use support::{fixtures, test_config, RegistryDouble, TestApp};

/// A config for the secured broker's listener `name`, TLS verified against the test CA.
fn config_for(secured: &Secured, listener: &str, registry: &RegistryDouble) -> Config {
    let mut config = test_config(&secured.broker.listener(listener), &registry.url);
    config.kafka.tls.enabled = true;
    config.kafka.tls.ca_file = Some(secured.certs.ca.clone());
    config
}

fn scram(config: &mut Config, password: &str) {
    config.kafka.sasl.mechanism = Some(SaslMechanism::ScramSha512);
    config.kafka.sasl.username = Some(secured::SCRAM_USER.into());
    config.kafka.sasl.password = Some(Secret::new(password));
}

/// Posts two fixtures and checks that each is on its topic, read back from the broker.
async fn stores_and_reads_back(config: Config) {
    let secured = Secured::get();
    let app = TestApp::spawn(config).await.expect("the connector starts");
    let mut expected = Vec::new();
    for (name, body) in fixtures::all().into_iter().take(2) {
        let response = app.post_webhook(body.clone()).await;
        assert_eq!(response.status(), 200, "{name}");
        let posted: Value = serde_json::from_slice(&body).unwrap();
        expected.push((app.topic_of(&posted), body));
    }
    for (topic, body) in expected {
        let records = read_all(&secured.broker.bootstrap(), &topic);
        let raw = String::from_utf8(body).unwrap();
        assert!(
            records
                .iter()
                .any(|r| String::from_utf8_lossy(&r.payload).contains(&raw[..40])),
            "{topic}: the posted webhook is not among {} records",
            records.len()
        );
    }
    app.stop().await.unwrap();
}

/// The error start-up stops with.
async fn start_up_error(config: Config) -> String {
    match TestApp::spawn(config).await {
        Ok(app) => {
            app.stop().await.unwrap();
            panic!("start-up should have stopped")
        }
        Err(error) => format!("{error:#}"),
    }
}

#[tokio::test]
async fn mtls_webhooks_are_stored_and_read_back() {
    let secured = Secured::get();
    let registry = RegistryDouble::start().await;
    let mut config = config_for(secured, "MTLS", &registry);
    config.kafka.tls.cert_file = Some(secured.certs.client_cert.clone());
    config.kafka.tls.key_file = Some(secured.certs.client_key.clone());
    stores_and_reads_back(config).await;
}

#[tokio::test]
async fn a_wrong_ca_is_refused_at_start_up_with_a_clear_message() {
    let secured = Secured::get();
    let registry = RegistryDouble::start().await;
    let mut config = config_for(secured, "MTLS", &registry);
    config.kafka.tls.ca_file = Some(secured.certs.wrong_ca.clone());
    config.kafka.tls.cert_file = Some(secured.certs.client_cert.clone());
    config.kafka.tls.key_file = Some(secured.certs.client_key.clone());
    // A spool would let an unreachable cluster pass start-up; a refusing one must not.
    config.delivery.spool.dir = Some(tempfile::tempdir().unwrap().keep());
    let error = start_up_error(config).await;
    assert!(error.contains("TLS handshake failed"), "{error}");
    assert!(error.contains("kafka.tls.ca_file"), "{error}");
    assert!(error.contains("certificate verify failed"), "{error}");
}

#[tokio::test]
async fn an_mtls_listener_refuses_a_connector_without_a_client_certificate() {
    let secured = Secured::get();
    let registry = RegistryDouble::start().await;
    let config = config_for(secured, "MTLS", &registry);
    let error = start_up_error(config).await;
    assert!(error.contains("refused the connector (TLS)"), "{error}");
    assert!(error.contains("kafka.tls.cert_file"), "{error}");
}

#[tokio::test]
async fn scram_sha_512_over_tls_stores_and_reads_back() {
    let secured = Secured::get();
    let registry = RegistryDouble::start().await;
    let mut config = config_for(secured, "SASL", &registry);
    scram(&mut config, secured::SCRAM_PASSWORD);
    stores_and_reads_back(config).await;
}

#[tokio::test]
async fn plain_over_tls_stores_and_reads_back_with_the_password_from_a_file() {
    let secured = Secured::get();
    let registry = RegistryDouble::start().await;
    let mut config = config_for(secured, "SASL", &registry);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{}\n", secured::PLAIN_PASSWORD)).unwrap();
    config.kafka.sasl.mechanism = Some(SaslMechanism::Plain);
    config.kafka.sasl.username = Some(secured::PLAIN_USER.into());
    config.kafka.sasl.password_file = Some(file);
    stores_and_reads_back(config).await;
}

#[tokio::test]
async fn a_wrong_password_stops_start_up_naming_the_mechanism_never_the_password() {
    let secured = Secured::get();
    let registry = RegistryDouble::start().await;
    let wrong = "not-the-Password-4c1b";
    let mut config = config_for(secured, "SASL", &registry);
    scram(&mut config, wrong);
    config.delivery.spool.dir = Some(tempfile::tempdir().unwrap().keep());
    let started = Instant::now();
    let error = start_up_error(config).await;
    assert!(error.contains("SCRAM-SHA-512"), "{error}");
    assert!(error.contains("authentication failed"), "{error}");
    assert!(error.contains("kafka.sasl.password"), "{error}");
    assert!(!error.contains(wrong), "the password leaked: {error}");
    // The refusal is reported, not waited out.
    assert!(started.elapsed() < Duration::from_secs(30), "{error}");
}

#[tokio::test]
async fn oidc_tokens_are_fetched_and_refreshed_under_load_with_nothing_lost() {
    let secured = Secured::get();
    let registry = RegistryDouble::start().await;
    let mut config = config_for(secured, "OAUTH", &registry);
    config.kafka.sasl.mechanism = Some(SaslMechanism::OAuthBearer);
    config.kafka.sasl.oidc.token_endpoint_url = secured.token_url.clone();
    config.kafka.sasl.oidc.client_id = secured::OAUTH_CLIENT.into();
    config.kafka.sasl.oidc.client_secret = Some(Secret::new(secured::OAUTH_SECRET));
    config.kafka.sasl.oidc.scope = Some("kafka".into());
    let app = TestApp::spawn(config).await.expect("the connector starts");
    let issued_at_start = secured.tokens_issued();
    assert!(issued_at_start >= 1, "no token was fetched");

    // Load across several token lifetimes: each token expires after TOKEN_SECONDS and the
    // broker re-authenticates connections every 3 s, so the connector must refresh in time.
    let (_, body) = fixtures::all()
        .into_iter()
        .find(|(name, _)| name.starts_with("riskos."))
        .unwrap();
    let template: Value = serde_json::from_slice(&body).unwrap();
    let topic = app.topic_of(&template);
    let until = Instant::now() + Duration::from_secs(3 * secured::TOKEN_SECONDS + 2);
    let mut sent = 0usize;
    while Instant::now() < until {
        let mut batch = Vec::new();
        for _ in 0..4 {
            let mut event = template.clone();
            event["event_id"] = Value::String(format!("oidc-load-{sent}"));
            sent += 1;
            batch.push(app.post_webhook(serde_json::to_vec(&event).unwrap()));
        }
        for response in futures::future::join_all(batch).await {
            assert_eq!(response.status(), 200, "a webhook was not stored");
        }
    }
    let issued = secured.tokens_issued() - issued_at_start;
    assert!(
        issued >= 2,
        "tokens were not refreshed: {issued} fetched during {sent} webhooks"
    );
    let records = read_all(&secured.broker.bootstrap(), &topic);
    let stored = records
        .iter()
        .filter(|r| {
            r.key
                .as_deref()
                .is_some_and(|k| k.starts_with("oidc-load-"))
        })
        .count();
    assert_eq!(
        stored, sent,
        "webhooks answered 200 but missing on the topic"
    );
    app.stop().await.unwrap();
}

/// Runs `riskos-connector config check` on a config file like `config`'s (SCRAM over TLS;
/// the password through the environment, as a Secret would give it) and returns (success,
/// what it printed).
async fn config_check(config: &Config, user: &str, password: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let toml = format!(
        "[[endpoints]]\nname = \"riskos\"\ntopic_prefix = \"{prefix}\"\nprotect_fields = false\n\
         raw = \"keep\"\n[endpoints.auth]\nmode = \"none\"\n\
         [kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
         [kafka.tls]\nenabled = true\nca_file = \"{ca}\"\n\
         [kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"{user}\"\n\
         [schema_registry]\nurl = \"{registry}\"\n[schemas]\ndir = \"{schemas}\"\n\
         [topics]\npartitions = 1\nreplication_factor = 1\n",
        prefix = config.endpoints[0].topic_prefix,
        bootstrap = config.kafka.bootstrap_servers,
        ca = config.kafka.tls.ca_file.as_ref().unwrap().display(),
        registry = config.schema_registry.url,
        schemas = config.schemas.dir.display(),
    );
    std::fs::write(&file, toml).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .args(["config", "check", "--config"])
        .arg(&file)
        .env_remove("RISKOS_CONFIG")
        .env("RISKOS_KAFKA__SASL__PASSWORD", password)
        .output()
        .await
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[tokio::test]
async fn config_check_reports_kafka_topics_write_permission_and_registry() {
    let secured = Secured::get();
    let registry = RegistryDouble::start().await;
    let mut config = config_for(secured, "SASL", &registry);
    scram(&mut config, secured::SCRAM_PASSWORD);
    // The topics exist (made by a connector of the same config), so permissions are read.
    TestApp::spawn(config.clone())
        .await
        .unwrap()
        .stop()
        .await
        .unwrap();
    let quarantine = config.endpoints[0].topic_prefix.clone() + "quarantine";

    let (ok, report) = config_check(&config, secured::SCRAM_USER, secured::SCRAM_PASSWORD).await;
    assert!(ok, "{report}");
    assert!(report.contains("ok    kafka: 1 broker(s)"), "{report}");
    assert!(
        report.contains("SASL SCRAM-SHA-512 as riskos-scram over TLS"),
        "{report}"
    );
    assert!(
        report.contains(&format!("ok    topic {quarantine}: described")),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "ok    produce permission {quarantine}: WRITE allowed"
        )),
        "{report}"
    );
    assert!(report.contains("ok    schema registry:"), "{report}");

    // A principal that may describe but not write.
    let (ok, report) =
        config_check(&config, secured::READONLY_USER, secured::READONLY_PASSWORD).await;
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!(
            "FAIL  produce permission {quarantine}: the principal may not WRITE"
        )),
        "{report}"
    );

    // Refused credentials: the reason and the keys, never the password.
    let (ok, report) = config_check(&config, secured::SCRAM_USER, "wrong-Password-0a9d").await;
    assert!(!ok, "{report}");
    assert!(report.contains("FAIL  kafka:"), "{report}");
    assert!(report.contains("authentication failed"), "{report}");
    assert!(!report.contains("wrong-Password-0a9d"), "{report}");
    assert!(report.contains("skip  topics: not checked"), "{report}");
}

#[tokio::test]
async fn zstd_compressed_batches_are_written_and_read_back() {
    let secured = Secured::get();
    let registry = RegistryDouble::start().await;
    let mut config = test_config(&secured.broker.bootstrap(), &registry.url);
    config
        .kafka
        .librdkafka
        .insert("compression.type".into(), "zstd".into());
    let app = TestApp::spawn(config).await.expect("the connector starts");
    let (_, body) = fixtures::all()
        .into_iter()
        .find(|(name, _)| name.starts_with("riskos."))
        .unwrap();
    assert_eq!(app.post_webhook(body.clone()).await.status(), 200);
    let topic = app.topic_of(&serde_json::from_slice(&body).unwrap());
    app.stop().await.unwrap();
    assert_eq!(read_all(&secured.broker.bootstrap(), &topic).len(), 1);
    // The broker's own log says how the batch was compressed.
    let segment = secured
        .broker
        .dir()
        .join(format!("node-0/data/{topic}-0/00000000000000000000.log"));
    let dump = secured.broker.dump_log_segment(&segment);
    assert!(dump.contains("compresscodec: zstd"), "{dump}");
}
