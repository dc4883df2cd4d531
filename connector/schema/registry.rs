//! Schema Registry client: registers each value schema under `<topic>-value` at start-up.
//!
//! Requests never call the registry: ids are resolved once, so a registry outage after
//! start-up does not stop the flow of webhooks.

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
    },
    /// Registration failed (registry unreachable, or it refused the schema).
    #[error("schema registry {url}: registering subject `{subject}` failed: {reason}")]
    Register {
        url: String,
        subject: String,
        reason: String,
    },
}

/// A configured registry client.
#[derive(Clone)]
pub struct Registry {
    url: String,
    settings: SrSettings,
}

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
            })
    }
}

impl Registry {
    /// True when the registry answers `GET /subjects` (readiness).
    pub async fn reachable(&self) -> bool {
        schema_registry_converter::async_impl::schema_registry::get_all_subjects(&self.settings)
            .await
            .is_ok()
    }
}

fn record_name(entry: &SchemaEntry) -> String {
    match &entry.schema {
        apache_avro::Schema::Record(record) => record.name.fullname(None),
        _ => String::new(),
    }
}
