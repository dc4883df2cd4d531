//! `TestApp::spawn`: the real service, in-process, on a free port, against a real broker.

use std::net::SocketAddr;

use riskos_connector::wiring::app::Application;
use riskos_connector::wiring::config::Config;
use tokio::sync::oneshot;

use crate::config::{TEST_ENCRYPTION_KEY, TEST_HASH_KEY};

/// A running connector.
pub struct TestApp {
    pub addr: SocketAddr,
    pub config: Config,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A topic prefix no other test of this process uses (`riskos.t<n>.`): tests share a broker,
/// each with topics of its own.
pub fn unique_topic_prefix() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("riskos.t{n}.")
}

/// The test config ([`crate::config::base`]) pointing at `bootstrap` and `registry_url`, with a
/// topic prefix of its own, one partition and one replica per topic.
pub fn test_config(bootstrap: &str, registry_url: &str) -> Config {
    let mut config = crate::config::base();
    config.endpoints[0].topic_prefix = unique_topic_prefix();
    config.kafka.bootstrap_servers = bootstrap.to_string();
    config.schema_registry.url = registry_url.to_string();
    config.topics.partitions = 1;
    config.topics.replication_factor = 1;
    // Generous: the first record to a just-created topic waits for its leader, and the
    // machine is shared with brokers and other tests.
    config.delivery.ack_timeout_ms = 5_000;
    config
}

impl TestApp {
    /// Builds and starts the service with `config`.
    pub async fn spawn(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(config.http.listen).await?;
        let app = Application::build(&config, listener).await?;
        let addr = app.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            config,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The full name of one of this connector's topics: `name` after its topic prefix
    /// (`quarantine`, `evaluation_completed`, …).
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.config.endpoints[0].topic_prefix)
    }

    /// The topic an event (a posted envelope) goes to.
    pub fn topic_of(&self, posted: &serde_json::Value) -> String {
        let event_type = posted
            .get("event_type")
            .or_else(|| posted.get("type"))
            .and_then(serde_json::Value::as_str)
            .expect("an envelope with a type");
        riskos_connector::pipeline::route::topic_name(
            &self.config.endpoints[0].topic_prefix,
            event_type,
        )
    }

    /// `http://addr` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a JSON body to the webhook path.
    pub async fn post_webhook(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.post_json(&self.config.endpoints[0].path, body).await
    }

    /// POSTs a JSON body to `path` (another endpoint's webhook path).
    pub async fn post_json(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Stops the service and waits for it to finish draining.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap().await?
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The tests' keys as the `RISKOS_PROTECTION__*` variables of a connector started as a
/// process.
pub fn test_keys_env() -> [(&'static str, &'static str); 2] {
    [
        ("RISKOS_PROTECTION__HASH_KEYS", TEST_HASH_KEY),
        ("RISKOS_PROTECTION__ENCRYPTION_KEYS", TEST_ENCRYPTION_KEY),
    ]
}
