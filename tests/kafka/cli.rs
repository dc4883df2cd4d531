//! The real binary: `riskos-connector serve`, configured by a file plus `RISKOS_*` env vars,
//! accepts every fixture, reports readiness, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::kafka::read_all;
use support::{fixtures, Broker, RegistryDouble};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_accepts_every_fixture_and_stops_on_sigterm() {
    // Arrange: config file for some keys, env vars for the rest.
    let broker = Broker::shared();
    let prefix = support::app::unique_topic_prefix();
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
    let port = support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RISKOS_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("RISKOS_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap())
        .env("RISKOS_SCHEMA_REGISTRY__URL", &registry.url)
        .env("RISKOS_ENDPOINTS__RISKOS__TOPIC_PREFIX", &prefix)
        .envs(support::app::test_keys_env())
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

/// README's "Run it against a broker and a registry", run as written: the shell block up to its
/// `serve` line runs in bash (`HOME` a temporary folder, `cargo run --release --` this test's
/// binary), then each command the `serve` line offers — `serve`, and the `serve --config
/// config.example.toml` of its comment — starts the connector from the repository root with
/// the variables the block exported, and the block's `curl` gets the answer the block shows.
/// Only the addresses differ: the test's broker, registry, a free port and a topic prefix of
/// its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_run_against_a_broker_and_a_registry_runs_as_written() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("\n## Run it against a broker and a registry\n")
        .nth(1)
        .expect("README has the section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the section's first block is a ```sh block");
    let lines: Vec<&str> = block.lines().collect();
    let serve_at = lines
        .iter()
        .position(|l| l.starts_with("cargo run --release -- serve"))
        .expect("a `cargo run --release -- serve` line");
    let setup = lines[..serve_at].join("\n");
    let (command, comment) = lines[serve_at]
        .split_once('#')
        .expect("the serve line's comment offers the config file");
    let serves: Vec<Vec<String>> = [
        command.trim().trim_start_matches("cargo run --release --"),
        comment.trim().strip_prefix("or:").expect("`# or: serve …`"),
    ]
    .iter()
    .map(|args| args.split_whitespace().map(String::from).collect())
    .collect();
    assert!(
        serves[1].contains(&"config.example.toml".to_string()),
        "{serves:?}"
    );
    let after: Vec<&str> = lines[serve_at + 1..].to_vec();
    let curl = after
        .iter()
        .skip_while(|l| !l.starts_with("curl "))
        .take_while(|l| !l.starts_with('#'))
        .map(|l| l.trim_end_matches('\\'))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(curl.contains("http://localhost:8080/"), "{curl}");
    let shown: Vec<&str> = after.iter().filter_map(|l| l.strip_prefix("# ")).collect();
    let (shown_status, shown_body) = (shown[0], shown[1]);
    let shown_body: serde_json::Value = serde_json::from_str(shown_body).unwrap();

    // `cargo run --release -- ARGS` is this binary; a missing `uuidgen` is the kernel's.
    let preamble = "set -euo pipefail\n\
        cargo() { [ \"$1 $2 $3\" = 'run --release --' ] || { echo \"unexpected: cargo $*\" >&2; return 99; }; shift 3; \"$README_BINARY\" \"$@\"; }\n\
        command -v uuidgen >/dev/null || uuidgen() { cat /proc/sys/kernel/random/uuid; }\n";
    let home = tempfile::tempdir().unwrap();
    let shell = |script: String| {
        Command::new("bash")
            .arg("-c")
            .arg(format!("{preamble}{setup}\n{script}\n"))
            .current_dir(root)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", home.path())
            .env("README_BINARY", env!("CARGO_BIN_EXE_riskos-connector"))
            .output()
            .unwrap()
    };
    let exported = shell("env -0".into());
    assert!(
        exported.status.success(),
        "the block failed: {}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let exported: Vec<(String, String)> = exported
        .stdout
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8(entry.to_vec()).ok()?;
            let (name, value) = entry.split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect();
    assert!(
        exported
            .iter()
            .any(|(name, _)| name.starts_with("RISKOS_ENDPOINTS__RISKOS__")),
        "{exported:?}"
    );

    let broker = Broker::shared();
    let registry = RegistryDouble::start().await;
    let client = reqwest::Client::new();
    for args in serves {
        let port = support::free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
            .args(&args)
            .current_dir(root)
            .env_clear()
            .envs(exported.iter().map(|(k, v)| (k, v)))
            .env("RISKOS_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap())
            .env("RISKOS_SCHEMA_REGISTRY__URL", &registry.url)
            .env("RISKOS_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "RISKOS_ENDPOINTS__RISKOS__TOPIC_PREFIX",
                support::app::unique_topic_prefix(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let base = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            if let Some(exit) = child.try_wait().unwrap() {
                panic!(
                    "`riskos-connector {}` exited ({exit}) before it was ready: {}",
                    args.join(" "),
                    log.join().unwrap()
                );
            }
            let ready = client.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "`riskos-connector {}` not ready in 90 s",
                args.join(" ")
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }

        let answered = shell(curl.replace("http://localhost:8080/", &format!("{base}/")));

        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let exit = child.wait().unwrap();
        let log = log.join().unwrap();
        let text = String::from_utf8_lossy(&answered.stdout).replace('\r', "");
        assert!(answered.status.success(), "curl failed: {answered:?}");
        assert_eq!(text.lines().next(), Some(shown_status), "{args:?}: {text}");
        let body: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        for (key, value) in shown_body.as_object().unwrap() {
            assert_eq!(&body[key], value, "{args:?}: {text}");
        }
        assert!(exit.success(), "{args:?}: exit {exit}: {log}");
    }
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
