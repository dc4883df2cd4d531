//! Ingress security end to end, against a real broker: all five auth modes accepted and what
//! they accepted decoded from Kafka, and a full run of the binary whose logs contain none of
//! the configured secrets. Everything else about auth needs no broker: `tests/surface/auth.rs`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use riskos_connector::wiring::config::Config;
use serde_json::{json, Value};

use support::auth_modes::*;
use support::decode::decode;
use support::jwt::{good_claims, with, JwksDouble, SigningKey, AUDIENCE, ISSUER};
use support::kafka::read_all;
use support::{fixtures, test_config, Broker, RegistryDouble, TestApp};

// ---------------------------------------------------------------------------------------------
// Configuration of each mode
// ---------------------------------------------------------------------------------------------

/// A change to a connector's config.
type Adjust<'a> = Box<dyn Fn(&mut Config) + 'a>;

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

async fn post(
    app: &TestApp,
    headers: &[(&str, String)],
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&app.config.endpoints[0].path))
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.expect("request")
}

// ---------------------------------------------------------------------------------------------
// Acceptance
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_accepts_a_webhook_end_to_end() {
    // Arrange
    let broker = Broker::shared();
    let registry = RegistryDouble::start().await;
    let idp = SigningKey::generate("idp-1");
    let jwks = JwksDouble::start(&[&idp]).await;
    let modes: Vec<(&str, Adjust)> = vec![
        ("basic", Box::new(basic)),
        ("bearer", Box::new(bearer)),
        ("oauth2", Box::new(|c: &mut Config| oauth2(c, &jwks.url))),
        ("hmac", Box::new(hmac)),
        ("none", Box::new(none)),
    ];
    let all = fixtures::all();

    // Act: each mode gets a different fixture with its own credentials.
    let mut sent = Vec::new();
    for (i, (mode, adjust)) in modes.iter().enumerate() {
        let mut config = test_config(&broker.bootstrap(), &registry.url);
        adjust(&mut config);
        let app = TestApp::spawn(config).await.expect("connector starts");
        let (name, body) = &all[i];
        let headers = match *mode {
            "basic" => vec![("authorization", basic_header(BASIC_CURRENT))],
            "bearer" => vec![("authorization", format!("Bearer {BEARER_CURRENT}"))],
            "oauth2" => vec![(
                "authorization",
                format!("Bearer {}", idp.sign(&good_claims())),
            )],
            "hmac" => hmac_headers(HMAC_SECRET, unix_now(), body),
            _ => vec![],
        };
        let response = post(&app, &headers, "application/json", body.clone()).await;
        let status = response.status();
        let reply: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{mode}: {reply}");
        assert_eq!(reply["status"], "accepted", "{mode}");
        let topic = app.topic_of(&serde_json::from_slice(body).unwrap());
        sent.push((
            *mode,
            name.clone(),
            body.clone(),
            reply["event_id"].clone(),
            topic,
        ));
    }

    // Assert: every body is on the broker under its event id, decodable, raw intact.
    for (mode, name, body, event_id, topic) in sent {
        let records = read_all(&broker.bootstrap(), &topic);
        let record = records
            .iter()
            .find(|r| r.key.as_deref() == event_id.as_str())
            .unwrap_or_else(|| panic!("{mode}: {name} not on {topic}"));
        let value = decode(&registry.url, &record.payload).await;
        assert_eq!(value["raw"], String::from_utf8(body).unwrap(), "{mode}");
    }
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

/// The real binary, serving until [`Running::stop`].
struct Running {
    child: Child,
    base: String,
    log: std::thread::JoinHandle<Vec<String>>,
}

impl Running {
    /// Starts `serve --config file` with `env` and waits for its ready line.
    fn start(config: &Path, env: &[(&str, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RISKOS_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut early = Vec::new();
        loop {
            let mut line = String::new();
            let n = stderr.read_line(&mut line).unwrap();
            assert!(n > 0, "connector exited before it was ready: {early:?}");
            let ready = line.contains("ready to receive webhooks");
            early.push(line);
            if ready {
                break;
            }
        }
        let log = std::thread::spawn(move || {
            early
                .into_iter()
                .chain(stderr.lines().map_while(Result::ok))
                .collect()
        });
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// SIGTERM, wait for a clean exit, and return every log line.
    fn stop(mut self) -> Vec<String> {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(terminated.success());
        let exit = self.child.wait().unwrap();
        let log = self.log.join().unwrap();
        assert!(exit.success(), "exit status {exit}: {log:?}");
        log
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_logs_none_of_the_configured_secrets() {
    // Arrange: every mode's secrets configured at once (inline, in files and in env vars),
    // then one run per mode, at debug level.
    let broker = Broker::shared();
    let registry = RegistryDouble::start().await;
    let idp = SigningKey::generate("idp-log");
    let jwks = JwksDouble::start(&[&idp]).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        ("basic_password", "log-test-basic-password-b7e1"),
        ("bearer_token", "5d2c7e90-3f4a-4b1c-9d8e-7a6b5c4d3e2f"),
        ("hmac_secret", "log-test-hmac-secret-9c3f5a"),
        ("client_secret", "log-test-client-secret-4e8d"),
        ("signing_secret", "log-test-signing-secret-0123456789abcdef"),
        (
            "hash_key",
            "log-h:bG9nIHRlc3QgaGFzaCBrZXksIDMyIGJ5dGVzIGxvbmc=",
        ),
        (
            "encryption_key",
            "log-e:bG9nIHRlc3QgZW5jcnlwdGlvbiBrZXkgMzIgYnl0ZXM=",
        ),
    ];
    let secret = |name: &str| secrets.iter().find(|(n, _)| *n == name).unwrap().1;
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{content}\n")).unwrap();
        path.display().to_string()
    };
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[log]
format = "json"
level = "debug"
[schemas]
dir = "{manifest}/schemas"
[topics]
partitions = 1
replication_factor = 1
[protection]
hash_keys = ["{hash_key}"]
encryption_keys_file = "{encryption_file}"
[[endpoints]]
name = "riskos"
path = "/webhooks/riskos"
[endpoints.auth.bearer]
tokens_file = "{bearer_file}"
[endpoints.auth.hmac]
secrets = ["{hmac}"]
timestamp_header = "X-Timestamp"
[endpoints.auth.oauth2]
jwks_url = "{jwks}"
allow_insecure_jwks_url = true
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
[endpoints.auth.oauth2.token_endpoint]
clients_file = "{clients_file}"
signing_secrets_file = "{signing_file}"
"#,
            manifest = env!("CARGO_MANIFEST_DIR"),
            bearer_file = file("bearer_tokens", secret("bearer_token")),
            hmac = secret("hmac_secret"),
            hash_key = secret("hash_key"),
            encryption_file = file("encryption_keys", secret("encryption_key")),
            jwks = jwks.url,
            clients_file = file("clients", &format!("riskos:{}", secret("client_secret"))),
            signing_file = file("signing", secret("signing_secret")),
        ),
    )
    .unwrap();
    let basic_pair = format!("riskos:{}", secret("basic_password"));
    let common_env = |mode: &str| {
        vec![
            ("RISKOS_ENDPOINTS__RISKOS__AUTH__MODE", mode.to_string()),
            (
                "RISKOS_ENDPOINTS__RISKOS__AUTH__BASIC__CREDENTIALS",
                basic_pair.clone(),
            ),
            ("RISKOS_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap()),
            ("RISKOS_SCHEMA_REGISTRY__URL", registry.url.clone()),
        ]
    };
    let client = reqwest::Client::new();
    let all = fixtures::all();
    // Credentials presented on the wire are secrets too.
    let mut presented: Vec<String> = Vec::new();
    let mut logs = Vec::new();

    // Act
    for (i, mode) in ["basic", "bearer", "hmac", "oauth2"]
        .into_iter()
        .enumerate()
    {
        let running = Running::start(&config, &common_env(mode));
        let body = all[i].1.clone();
        let webhook = format!("{}/webhooks/riskos", running.base);
        let mut good: Vec<(String, String)> = Vec::new();
        let mut bad: Vec<(String, String)> = Vec::new();
        match mode {
            "basic" => {
                good.push(("authorization".into(), basic_header(&basic_pair)));
                bad.push(("authorization".into(), basic_header("riskos:almost-b7e1")));
            }
            "bearer" => {
                good.push((
                    "authorization".into(),
                    format!("Bearer {}", secret("bearer_token")),
                ));
                bad.push(("authorization".into(), format!("Bearer {BEARER_RETIRED}")));
            }
            "hmac" => {
                for (k, v) in hmac_headers(secret("hmac_secret"), unix_now(), &body) {
                    good.push((k.into(), v));
                }
                for (k, v) in hmac_headers("log-test-wrong-hmac-secret", unix_now(), &body) {
                    bad.push((k.into(), v));
                }
            }
            _ => {
                let issued: Value = client
                    .post(format!("{}/oauth2/token", running.base))
                    .header(
                        "authorization",
                        basic_header(&format!("riskos:{}", secret("client_secret"))),
                    )
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let token = issued["access_token"]
                    .as_str()
                    .expect("a token")
                    .to_string();
                let refused = client
                    .post(format!("{}/oauth2/token", running.base))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!(
                        "grant_type=client_credentials&client_id=riskos&client_secret={}x",
                        secret("client_secret")
                    ))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(refused.status(), 401);
                let idp_token = idp.sign(&good_claims());
                good.push(("authorization".into(), format!("Bearer {token}")));
                bad.push((
                    "authorization".into(),
                    format!(
                        "Bearer {}",
                        idp.sign(&with(good_claims(), json!({"aud": "x"})))
                    ),
                ));
                presented.extend([token, idp_token.clone()]);
                let response = client
                    .post(&webhook)
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {idp_token}"))
                    .body(all[7].1.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "IdP token");
            }
        }
        for (headers, expected) in [(&good, 200), (&bad, 401)] {
            let mut request = client
                .post(&webhook)
                .header("content-type", "application/json")
                .body(body.clone());
            for (k, v) in headers {
                request = request.header(k, v);
                if k != "x-timestamp" {
                    presented.push(v.clone());
                }
            }
            let status = request.send().await.unwrap().status();
            assert_eq!(status, expected, "{mode}");
        }
        logs.extend(running.stop());
    }

    // Assert: the logs are there and say what happened...
    let parsed: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let count = |message: &str| parsed.iter().filter(|l| l["message"] == message).count();
    assert_eq!(count("accepted"), 5, "{logs:?}");
    assert!(count("webhook rejected") >= 5, "{logs:?}");
    assert!(
        parsed.iter().any(|l| l["kind"] == "auth_wrong_credentials"),
        "the rejection reason is logged"
    );
    // ...and hold none of the secrets, configured or presented, nor their base64.
    let text = logs.join("\n");
    let mut needles: Vec<String> = secrets.iter().map(|(_, s)| s.to_string()).collect();
    needles.push(basic_pair.clone());
    needles.push(base64::engine::general_purpose::STANDARD.encode(&basic_pair));
    for value in &presented {
        needles.push(value.clone());
        if let Some((_, credential)) = value.split_once(' ') {
            needles.push(credential.to_string());
        }
    }
    for needle in needles.iter().filter(|n| n.len() >= 8) {
        assert!(
            !text.contains(needle.as_str()),
            "a log line contains a secret: {needle:.6}…"
        );
    }
}
