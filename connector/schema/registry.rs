//! Schema Registry client: registers each value schema under `<topic>-value` at start-up,
//! then checks in the background that the registry still answers.
//!
//! Requests never call the registry: ids are resolved once, so a registry outage after
//! start-up does not stop the flow of webhooks, and readiness does not depend on it (one
//! dependency's blip would otherwise take every pod out of the Service at once). The
//! background check ([`Registry::watch`]) is what shows an outage: the
//! `riskos_schema_registry_up` gauge, a log line when it changes and `/healthz`'s detail.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use schema_registry_converter::async_impl::schema_registry::{
    perform_sr_call, post_schema, SrSettings,
};
use schema_registry_converter::schema_registry_common::{SchemaType, SrCall, SuppliedSchema};

use super::catalog::SchemaEntry;
use crate::config::SchemaRegistryConfig;

/// A registry call that failed; the message names the subject and the URL.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The client could not be built from the settings.
    #[error("schema registry settings: {0}")]
    Settings(String),
    /// Reading a subject's latest version failed.
    #[error("schema registry {url}: reading subject `{subject}` failed: {reason}")]
    Read {
        url: String,
        subject: String,
        reason: String,
        /// The registry could not be reached or was briefly unavailable (502/503): worth
        /// another try.
        unreachable: bool,
    },
    /// Registration failed (registry unreachable, or it refused the schema).
    #[error("schema registry {url}: registering subject `{subject}` failed: {reason}")]
    Register {
        url: String,
        subject: String,
        reason: String,
        /// As for [`RegistryError::Read`].
        unreachable: bool,
    },
}

impl RegistryError {
    /// True when the registry did not answer (connection refused, timeout, 502/503), as
    /// opposed to answering no: start-up retries the former and stops on the latter.
    pub fn is_unreachable(&self) -> bool {
        match self {
            RegistryError::Settings(_) => false,
            RegistryError::Read { unreachable, .. }
            | RegistryError::Register { unreachable, .. } => *unreachable,
        }
    }
}

/// What the last registry check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryStatus {
    /// It answered.
    Up,
    /// It did not answer.
    Unreachable,
}

/// A configured registry client.
#[derive(Clone)]
pub struct Registry {
    url: String,
    settings: SrSettings,
    /// The last check's [`RegistryStatus`], shared by the clones (`UP` or `UNREACHABLE`).
    status: Arc<AtomicU8>,
}

const UP: u8 = 1;
const UNREACHABLE: u8 = 2;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("url", &self.url).finish()
    }
}

impl Registry {
    /// Builds a client; credentials are optional.
    pub fn new(config: &SchemaRegistryConfig) -> Result<Self, RegistryError> {
        let mut builder = SrSettings::new_builder(config.url.clone());
        builder.set_timeout(Duration::from_millis(config.timeout_ms.unwrap_or(5_000)));
        if let Some(user) = &config.username {
            let password = match (&config.password, &config.password_file) {
                (None, None) => None,
                (inline, file) => Some(
                    crate::secret::load_one(
                        "schema_registry.password",
                        inline.as_ref(),
                        file.as_deref(),
                    )
                    .map_err(|e| RegistryError::Settings(e.to_string()))?,
                ),
            };
            builder.set_basic_authorization(user, password.as_ref().map(|p| p.expose()));
        }
        let settings = builder
            .build()
            .map_err(|e| RegistryError::Settings(e.to_string()))?;
        Ok(Self {
            url: config.url.clone(),
            settings,
            status: Arc::new(AtomicU8::new(UP)),
        })
    }

    /// The subject name for a topic's values (TopicNameStrategy).
    pub fn value_subject(topic: &str) -> String {
        format!("{topic}-value")
    }

    /// Registers `entry` under `subject` (idempotent: an identical schema returns its id).
    pub async fn register(&self, subject: &str, entry: &SchemaEntry) -> Result<u32, RegistryError> {
        let supplied = SuppliedSchema::new(
            Some(record_name(entry)),
            SchemaType::Avro,
            entry.text.clone(),
        );
        post_schema(&self.settings, subject.to_string(), supplied)
            .await
            .map(|registered| registered.id)
            .map_err(|e| RegistryError::Register {
                url: self.url.clone(),
                subject: subject.to_string(),
                reason: e.to_string(),
                unreachable: e.retriable,
            })
    }
}

impl Registry {
    /// The latest schema text registered under `subject`, or `None` for a new subject.
    pub async fn latest(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        match perform_sr_call(&self.settings, SrCall::GetLatest(subject)).await {
            Ok(raw) => Ok(raw.schema),
            // 40401 subject not found: nothing registered yet.
            Err(e) if e.to_string().contains("40401") => Ok(None),
            Err(e) => Err(RegistryError::Read {
                url: self.url.clone(),
                subject: subject.to_string(),
                reason: e.to_string(),
                unreachable: e.retriable,
            }),
        }
    }

    /// The schema text registered under a global id.
    pub async fn by_id(&self, id: u32) -> Result<String, RegistryError> {
        perform_sr_call(&self.settings, SrCall::GetById(id))
            .await
            .ok()
            .and_then(|raw| raw.schema)
            .ok_or_else(|| RegistryError::Read {
                url: self.url.clone(),
                subject: format!("schema id {id}"),
                reason: "not found".into(),
                unreachable: false,
            })
    }
}

impl Registry {
    /// True when the registry answers `GET /subjects`.
    pub async fn reachable(&self) -> bool {
        schema_registry_converter::async_impl::schema_registry::get_all_subjects(&self.settings)
            .await
            .is_ok()
    }

    /// What the last check found (up until a check says otherwise: the schemas resolved at
    /// start-up).
    pub fn status(&self) -> RegistryStatus {
        match self.status.load(Ordering::Relaxed) {
            UNREACHABLE => RegistryStatus::Unreachable,
            _ => RegistryStatus::Up,
        }
    }

    /// Checks the registry every `interval` until `stop` turns true: sets
    /// `riskos_schema_registry_up`, the status `/healthz` shows, and logs each change. Only
    /// this check calls the registry after start-up — never a probe, never a request.
    pub async fn watch(self, interval: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        metrics::gauge!(crate::metrics::SCHEMA_REGISTRY_UP).set(1.0);
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            // A check never outlasts its interval, so checks do not pile up.
            let answered = tokio::time::timeout(interval, self.reachable())
                .await
                .unwrap_or(false);
            let now = if answered { UP } else { UNREACHABLE };
            metrics::gauge!(crate::metrics::SCHEMA_REGISTRY_UP).set(if answered {
                1.0
            } else {
                0.0
            });
            let before = self.status.swap(now, Ordering::Relaxed);
            match (before, now) {
                (UP, UNREACHABLE) => tracing::warn!(
                    url = %self.url,
                    "schema registry unreachable; webhooks are still accepted (schemas were \
                     resolved at start-up), but a pod started now waits for it"
                ),
                (UNREACHABLE, UP) => {
                    tracing::info!(url = %self.url, "schema registry reachable again")
                }
                _ => {}
            }
        }
    }
}

fn record_name(entry: &SchemaEntry) -> String {
    match &entry.schema {
        apache_avro::Schema::Record(record) => record.name.fullname(None),
        _ => String::new(),
    }
}
