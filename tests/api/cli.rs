//! The real binary: `riskos-connector serve`, configured by a file plus `RISKOS_*` env vars,
//! accepts every fixture, reports readiness, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::helpers::kafka::read_all;
use crate::helpers::{fixtures, Broker, RegistryDouble};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_accepts_every_fixture_and_stops_on_sigterm() {
    // Arrange: config file for some keys, env vars for the rest.
    let broker = Broker::start_memory().await;
    let registry = RegistryDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[auth]\nmode = \"none\"\n[schemas]\ndir = \"{}/schemas\"\n\
             [topics]\npartitions = 1\nreplication_factor = 1\n[log]\nformat = \"json\"\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RISKOS_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("RISKOS_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap())
        .env("RISKOS_SCHEMA_REGISTRY__URL", &registry.url)
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
    for (_, body) in fixtures::all() {
        let response = client
            .post(format!("{base}/webhooks/riskos"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
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
        .filter(|t| t.starts_with("riskos."))
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
