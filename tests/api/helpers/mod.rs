//! Shared test helpers: a real broker process, the registry test double, the app, readers.

pub mod app;
pub mod broker;
pub mod decode;
pub mod fixtures;
pub mod jwt;
pub mod kafka;
pub mod load;
pub mod registry;

pub use app::{test_config, TestApp};
pub use broker::Broker;
pub use registry::RegistryDouble;

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
