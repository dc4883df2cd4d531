//! Shared test helpers: a real broker process, the registry test double, the app, readers.

pub mod app;
pub mod broker;
pub mod decode;
pub mod fixtures;
pub mod jwt;
pub mod kafka;
pub mod load;
pub mod logs;
pub mod registry;

pub use app::{test_config, TestApp};
pub use broker::Broker;
pub use registry::RegistryDouble;

/// A free loopback port (for processes that must be told their port up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Python with confluent-kafka and fastavro that `scripts/test.sh` prepares.
pub fn interop_python() -> String {
    std::env::var("INTEROP_PYTHON").expect(
        "INTEROP_PYTHON must point at a Python with confluent-kafka[avro]; run scripts/test.sh",
    )
}

/// Posts every fixture (each must be answered 200) and returns the topics they went to.
pub async fn post_all_fixtures(app: &TestApp) -> std::collections::BTreeSet<String> {
    let mut topics = std::collections::BTreeSet::new();
    for (name, body) in fixtures::all() {
        assert_eq!(app.post_webhook(body.clone()).await.status(), 200, "{name}");
        let posted: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let event_type = posted.get("event_type").or(posted.get("type")).unwrap();
        topics.insert(riskos_connector::route::topic_name(
            "riskos.",
            event_type.as_str().unwrap(),
        ));
    }
    topics
}

/// Runs `tests/interop/decode_topics.py` with `framing` (`--registry URL` or `--schemas DIR`)
/// over `topics` and returns its JSON lines.
/// Async, so a registry double on the test's own runtime keeps answering meanwhile.
pub async fn python_decode(
    bootstrap: &str,
    framing: [&str; 2],
    topics: &std::collections::BTreeSet<String>,
) -> Vec<serde_json::Value> {
    let mut command = tokio::process::Command::new(interop_python());
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/decode_topics.py"
        ))
        .args(["--bootstrap", bootstrap])
        .args(framing);
    for topic in topics {
        command.args(["--topic", topic]);
    }
    let output = command.output().await.expect("python runs");
    assert!(
        output.status.success(),
        "decoder failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A broker, a registry double and a connector wired together.
pub struct Stack {
    pub broker: Broker,
    pub registry: RegistryDouble,
    pub app: TestApp,
}

impl Stack {
    /// Starts a fresh broker (memory storage), registry double and connector.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`Stack::start`], letting the test adjust the connector's config.
    pub async fn start_with(adjust: impl FnOnce(&mut riskos_connector::config::Config)) -> Self {
        let broker = Broker::start_memory().await;
        let registry = RegistryDouble::start().await;
        let mut config = test_config(&broker.bootstrap(), &registry.url);
        adjust(&mut config);
        let app = TestApp::spawn(config).await.expect("connector starts");
        Self {
            broker,
            registry,
            app,
        }
    }
}

/// A copy of the shipped schemas that a test may edit.
pub fn schema_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}
