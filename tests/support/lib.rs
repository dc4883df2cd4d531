//! What the integration tests share (`support::…` in `tests/surface`, `tests/kafka`,
//! `tests/clusters`, `tests/isolated` and `tests/metrics_coverage.rs`):
//!
//! - the connector: over an in-memory store without a broker ([`in_memory`]: the router driven
//!   with `oneshot`, or the served app on a listener), or in-process on Kafka ([`TestApp`],
//!   [`Stack`]), every one built from the one test config ([`config::base`]);
//! - Apache Kafka ([`broker`]: one shared broker per test binary, clusters of a test's own, the
//!   secured broker of [`secured`]), readers ([`kafka`], [`decode`]) and the vendor-like load
//!   generator ([`load`]);
//! - doubles: the schema registry ([`registry`]), an identity provider's JWKS ([`jwt`]), the auth
//!   modes as configured and satisfied ([`auth_modes`]), a private CA ([`pki`]);
//! - the vendor fixtures ([`fixtures`]), the service's log lines ([`logs`]), what the schemas
//!   protect ([`protected`]), the metrics the alert rules and dashboard query
//!   ([`metric_queries`]).

use std::path::{Path, PathBuf};

pub mod app;
pub mod auth_modes;
pub mod broker;
pub mod config;
pub mod decode;
pub mod fixtures;
pub mod in_memory;
pub mod jwt;
pub mod kafka;
pub mod load;
pub mod logs;
pub mod metric_queries;
pub mod pki;
pub mod protected;
pub mod registry;
pub mod secured;

pub use app::{test_config, TestApp};
pub use broker::Broker;
pub use config::{TEST_ENCRYPTION_KEY, TEST_HASH_KEY};
pub use in_memory::{fixture, post_as, Connector, Framing, Reply, Served};
pub use registry::RegistryDouble;

/// The repository's root folder (where `schemas/`, `scripts/` and `tests/fixtures/` are).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support is two levels below the repository's root")
        .to_path_buf()
}

/// A free loopback port (for processes that must be told their port up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True once the connector at `base` (`http://host:port`) has finished starting: `/healthz`
/// answers 200 with `status: ok` (while start-up waits, for the schema registry say, it answers
/// 200 with `status: starting`).
pub async fn started(client: &reqwest::Client, base: &str) -> bool {
    let Ok(response) = client.get(format!("{base}/healthz")).send().await else {
        return false;
    };
    response.status().is_success()
        && response
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|body| body["status"] == "ok")
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
        topics.insert(app.topic_of(&posted));
    }
    topics
}

/// Runs `tests/interop/decode_topics.py` with `framing` (`--registry URL` or `--schemas DIR`)
/// over `topics` and returns its JSON lines.
pub async fn python_decode(
    bootstrap: &str,
    framing: [&str; 2],
    topics: &std::collections::BTreeSet<String>,
) -> Vec<serde_json::Value> {
    let mut command = tokio::process::Command::new(interop_python());
    command.arg(repo().join("tests/interop/decode_topics.py"));
    run_decoder(command, bootstrap, framing, topics).await
}

/// Runs a decoder program (`command`, which the decoders share a command line with:
/// `--bootstrap`, the framing, a `--topic` per topic) and returns its JSON lines, one per
/// record. Async, so a registry double on the test's own runtime keeps answering meanwhile.
pub async fn run_decoder(
    mut command: tokio::process::Command,
    bootstrap: &str,
    framing: [&str; 2],
    topics: &std::collections::BTreeSet<String>,
) -> Vec<serde_json::Value> {
    command.args(["--bootstrap", bootstrap]).args(framing);
    for topic in topics {
        command.args(["--topic", topic]);
    }
    let program = format!("{:?}", command.as_std().get_program());
    let output = command
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    assert!(
        output.status.success(),
        "decoder {program} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The broker a [`Stack`] uses: the test binary's shared one, or one of its own (for a test
/// that stops it).
pub enum StackBroker {
    Shared(&'static Broker),
    Own(Broker),
}

impl std::ops::Deref for StackBroker {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        match self {
            StackBroker::Shared(broker) => broker,
            StackBroker::Own(broker) => broker,
        }
    }
}

impl std::ops::DerefMut for StackBroker {
    fn deref_mut(&mut self) -> &mut Broker {
        match self {
            StackBroker::Own(broker) => broker,
            StackBroker::Shared(_) => {
                panic!(
                    "the shared broker is not stopped by tests: use Stack::start_own_broker_with"
                )
            }
        }
    }
}

/// A broker, a registry double and a connector wired together.
pub struct Stack {
    pub broker: StackBroker,
    pub registry: RegistryDouble,
    pub app: TestApp,
}

impl Stack {
    /// A connector with topics of its own on the shared broker, and a registry double.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`Stack::start`], letting the test adjust the connector's config.
    pub async fn start_with(
        adjust: impl FnOnce(&mut riskos_connector::wiring::config::Config),
    ) -> Self {
        Self::start_on(StackBroker::Shared(Broker::shared()), adjust).await
    }

    /// Like [`Stack::start_with`] on a broker of its own, which the test may stop.
    pub async fn start_own_broker_with(
        adjust: impl FnOnce(&mut riskos_connector::wiring::config::Config),
    ) -> Self {
        Self::start_on(
            StackBroker::Own(Broker::start_cluster(1, &[]).await),
            adjust,
        )
        .await
    }

    async fn start_on(
        broker: StackBroker,
        adjust: impl FnOnce(&mut riskos_connector::wiring::config::Config),
    ) -> Self {
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

/// Applies `edit` to the `data` record's field list of one schema file (a test's copy).
pub fn edit_data_fields(file: &std::path::Path, edit: impl FnOnce(&mut Vec<serde_json::Value>)) {
    let mut schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let fields = schema["fields"].as_array_mut().unwrap();
    let data = fields.iter_mut().find(|f| f["name"] == "data").unwrap();
    edit(data["type"]["fields"].as_array_mut().unwrap());
    std::fs::write(file, serde_json::to_vec_pretty(&schema).unwrap()).unwrap();
}

/// A copy of the shipped schemas that a test may edit.
pub fn schema_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = repo().join("schemas");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}
