//! Schema Registry client: registers each value schema under `<topic>-value` at start-up,
//! then checks in the background that the registry still answers.
//!
//! Requests never call the registry: ids are resolved once, so a registry outage after
//! start-up does not stop the flow of webhooks, and readiness does not depend on it (one
//! dependency's blip would otherwise take every pod out of the Service at once). The
//! background check ([`Registry::watch`]) is what shows an outage: the
//! `riskos_schema_registry_up` gauge, a log line when it changes and `/healthz`'s detail.

use std::error::Error as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use schema_registry_converter::async_impl::schema_registry::{perform_sr_call, post_schema};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    RawError, SchemaType, SrCall, SuppliedSchema,
};

use super::catalog::SchemaEntry;
use super::error_chain::{describe, tls_refused};
use super::registry_auth::{AccessError, RegistryAccess};
use super::registry_config::SchemaRegistryConfig;

/// A registry call that failed; the message names the subject and the URL.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The client could not be set up (a setting or file, the TLS material), or no OAuth
    /// token could be had for the call.
    #[error(transparent)]
    Access(#[from] AccessError),
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
    /// opposed to answering no: start-up retries the former and stops on the latter. A TLS
    /// refusal (unknown issuer, no client certificate) is an answer; so is a token endpoint
    /// refusing the client, while one that does not answer is waited for like the registry.
    pub fn is_unreachable(&self) -> bool {
        match self {
            RegistryError::Access(AccessError::Token(token)) => token.is_unreachable(),
            RegistryError::Access(_) => false,
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
    /// The settings of each call (credentials, TLS), renewed with OAuth tokens.
    access: Arc<RegistryAccess>,
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

/// A failed call, read: its reason with the causes (the TLS or connection failure, the
/// registry's error body), whether to retry, and the HTTP status when there was one.
struct Failure {
    reason: String,
    unreachable: bool,
    status: Option<u16>,
}

impl Failure {
    fn of(error: &SRCError) -> Self {
        let status = status_of(error);
        let mut reason = match (error.source(), &error.cause) {
            (Some(source), _) => format!("{}: {}", error.error, describe(source)),
            (None, Some(cause)) => format!("{}: {cause}", error.error),
            (None, None) => error.error.clone(),
        };
        let tls = error.source().is_some_and(tls_refused);
        if matches!(status, Some(401 | 403)) {
            reason.push_str(
                " (the registry refused the connector's credentials: check \
                 schema_registry.username/password, bearer_token or oauth)",
            );
        } else if tls {
            reason.push_str(
                " (TLS refused: check schema_registry.ca_file, or cert_file and key_file for a \
                 registry that requires a client certificate)",
            );
        }
        Self {
            reason,
            unreachable: error.retriable && !tls,
            status,
        }
    }
}

/// The HTTP status of an error answer: schema_registry_converter keeps it only in its message
/// ("… failed with status 401 Unauthorized").
fn status_of(error: &SRCError) -> Option<u16> {
    let (_, rest) = error.error.split_once("with status ")?;
    rest.get(..3)?.parse().ok()
}

impl Registry {
    /// Builds a client: reads the credential and TLS files (an unreadable one fails here,
    /// naming its key). An OAuth token is fetched at the first call.
    pub fn new(config: &SchemaRegistryConfig) -> Result<Self, RegistryError> {
        Ok(Self {
            url: config.url.clone(),
            access: Arc::new(RegistryAccess::new(config)?),
            status: Arc::new(AtomicU8::new(UP)),
        })
    }

    /// The subject name for a topic's values (TopicNameStrategy).
    pub fn value_subject(topic: &str) -> String {
        format!("{topic}-value")
    }

    /// Reads `error`, and on a 401 lets the OAuth token of `generation` go.
    async fn failure(&self, error: &SRCError, generation: u64) -> Failure {
        let failure = Failure::of(error);
        if failure.status == Some(401) {
            self.access.refused(generation).await;
        }
        failure
    }

    /// Registers `entry` under `subject` (idempotent: an identical schema returns its id).
    pub async fn register(&self, subject: &str, entry: &SchemaEntry) -> Result<u32, RegistryError> {
        let supplied = SuppliedSchema::new(
            Some(record_name(entry)),
            SchemaType::Avro,
            entry.text.clone(),
        );
        let (settings, generation) = self.access.settings().await?;
        match post_schema(&settings, subject.to_string(), supplied).await {
            Ok(registered) => Ok(registered.id),
            Err(e) => {
                let failure = self.failure(&e, generation).await;
                Err(RegistryError::Register {
                    url: self.url.clone(),
                    subject: subject.to_string(),
                    reason: failure.reason,
                    unreachable: failure.unreachable,
                })
            }
        }
    }
}

impl Registry {
    /// The latest schema text registered under `subject`, or `None` for a new subject.
    pub async fn latest(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        let (settings, generation) = self.access.settings().await?;
        match perform_sr_call(&settings, SrCall::GetLatest(subject)).await {
            Ok(raw) => Ok(raw.schema),
            // 40401 subject not found: nothing registered yet.
            Err(e) if error_code(&e) == Some(40401) => Ok(None),
            Err(e) => {
                let failure = self.failure(&e, generation).await;
                Err(RegistryError::Read {
                    url: self.url.clone(),
                    subject: subject.to_string(),
                    reason: failure.reason,
                    unreachable: failure.unreachable,
                })
            }
        }
    }

    /// The schema text registered under a global id.
    pub async fn by_id(&self, id: u32) -> Result<String, RegistryError> {
        let (settings, _) = self.access.settings().await?;
        perform_sr_call(&settings, SrCall::GetById(id))
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

/// The registry's `error_code` of an error answer (40401: subject not found).
fn error_code(error: &SRCError) -> Option<u32> {
    error
        .source()
        .and_then(|source| source.downcast_ref::<RawError>())
        .map(|raw| raw.error_code)
}

impl Registry {
    /// True when the registry answers `GET /subjects`.
    pub async fn reachable(&self) -> bool {
        let Ok((settings, generation)) = self.access.settings().await else {
            return false;
        };
        match schema_registry_converter::async_impl::schema_registry::get_all_subjects(&settings)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                self.failure(&e, generation).await;
                false
            }
        }
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
        metrics::gauge!(crate::common::metrics::SCHEMA_REGISTRY_UP).set(1.0);
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
            metrics::gauge!(crate::common::metrics::SCHEMA_REGISTRY_UP).set(if answered {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_and_tls_are_named_and_not_waited_for() {
        let forbidden = SRCError::new(
            "HTTP request to schema registry failed with status 403 Forbidden",
            None,
            false,
        );
        let failure = Failure::of(&forbidden);
        assert_eq!(failure.status, Some(403));
        assert!(failure
            .reason
            .contains("refused the connector's credentials"));

        let tls = SRCError::retryable_with_cause(
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            ),
            "http call to schema registry failed",
        );
        let failure = Failure::of(&tls);
        assert!(!failure.unreachable, "a TLS refusal stops start-up");
        assert!(
            failure.reason.contains("UnknownIssuer"),
            "{}",
            failure.reason
        );
        assert!(failure.reason.contains("schema_registry.ca_file"));

        let closed = SRCError::retryable_with_cause(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            "http call to schema registry failed",
        );
        let failure = Failure::of(&closed);
        assert!(failure.unreachable && failure.status.is_none());
    }
}
