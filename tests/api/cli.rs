//! The real binary: `riskos-connector serve`, configured by a file plus `RISKOS_*` env vars,
//! accepts every fixture, reports readiness, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::helpers::kafka::read_all;
use crate::helpers::{fixtures, Broker, RegistryDouble};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_accepts_every_fixture_and_stops_on_sigterm() {
    // Arrange: config file for some keys, env vars for the rest.
    let broker = Broker::shared();
    let prefix = crate::helpers::app::unique_topic_prefix();
    let registry = RegistryDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[[endpoints]]\nname = \"riskos\"\n[endpoints.auth]\nmode = \"none\"\n[schemas]\ndir = \"{}/schemas\"\n\
             [topics]\npartitions = 1\nreplication_factor = 1\n[log]\nformat = \"json\"\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let port = crate::helpers::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RISKOS_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("RISKOS_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap())
        .env("RISKOS_SCHEMA_REGISTRY__URL", &registry.url)
        .env("RISKOS_ENDPOINTS__RISKOS__TOPIC_PREFIX", &prefix)
        .envs(crate::helpers::app::test_keys_env())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the "ready to receive webhooks" log line (the binary logs JSON to stderr).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = Vec::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "connector exited before it was ready: {log:?}");
        let ready = line.contains("ready to receive webhooks");
        log.push(line);
        if ready {
            break;
        }
    }
    let log_reader = std::thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .chain(log)
            .collect::<Vec<_>>()
    });
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");

    // Act
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    let mut statuses = Vec::new();
    let mut request_ids = Vec::new();
    for (_, body) in fixtures::all() {
        let response = client
            .post(format!("{base}/webhooks/riskos"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        request_ids.push(
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    let wrong_type = client
        .post(format!("{base}/webhooks/riskos"))
        .header("content-type", "text/plain")
        .header("x-request-id", "caller-chosen-id")
        .body("{}")
        .send()
        .await
        .unwrap();
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    let log = log_reader.join().unwrap();

    // Assert
    assert_eq!(ready.status(), 200);
    assert_eq!(statuses, vec![200; 8]);
    assert!(terminated.success());
    assert!(exit.success(), "exit status {exit}: {log:?}");
    let accepted: Vec<serde_json::Value> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "accepted")
        .collect();
    assert_eq!(accepted.len(), 8, "{log:?}");
    // Each accepted line sits in its request's span, whose id the response echoed.
    for (line, id) in accepted.iter().zip(&request_ids) {
        let spans = line["spans"].as_array().expect("span list");
        assert!(
            spans.iter().any(|s| s["request_id"] == id.as_str()),
            "{line}"
        );
    }
    assert_eq!(wrong_type.headers()["x-request-id"], "caller-chosen-id");

    // Metrics moved by exactly what was sent.
    assert_eq!(
        metric_sum(&metrics, "riskos_requests_total", &["status=\"200\""]),
        8.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "riskos_requests_total",
            &["status=\"415\"", "event_type=\"none\""]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "riskos_requests_total",
            &[
                "status=\"200\"",
                "event_type=\"case_management_notification_case_closure\""
            ]
        ),
        2.0
    );
    assert_eq!(
        metric_sum(&metrics, "riskos_records_produced_total", &[]),
        8.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "riskos_rejections_total",
            &["kind=\"unsupported_media_type\""]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(&metrics, "riskos_ack_latency_seconds_count", &[]),
        8.0
    );
    assert_eq!(
        metric_sum(&metrics, "riskos_end_to_end_delay_seconds_count", &[]),
        8.0
    );
    assert_eq!(metric_sum(&metrics, "riskos_in_flight_requests", &[]), 0.0);
    for line in &accepted {
        for field in [
            "event_id",
            "event_type",
            "event_at",
            "topic",
            "partition",
            "offset",
        ] {
            assert!(!line[field].is_null(), "log line lacks {field}: {line}");
        }
    }
    let stored: usize = broker
        .topics()
        .iter()
        .filter(|t| t.starts_with(&prefix))
        .map(|t| read_all(&broker.bootstrap(), t).len())
        .sum();
    assert_eq!(stored, 8);
}

#[test]
fn a_bad_config_value_stops_start_up_with_one_line_naming_the_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .arg("serve")
        .env("RISKOS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env("RISKOS_SCHEMA_REGISTRY__URL", "http://127.0.0.1:1")
        .env("RISKOS_HTTP__MAX_BODY_BYTES", "lots")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("max_body_bytes"), "{stderr}");
}

/// Sums the samples of `name` whose label set contains every one of `labels`.
fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let metric = l.split([' ', '{']).next().unwrap_or("");
            metric == name && labels.iter().all(|label| l.contains(label))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}
