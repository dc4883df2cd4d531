//! The pipeline behind the HTTP handler: parse → normalize → route → convert → encode
//! ([`Pipeline::prepare`], pure and offline), then the one call that decides and carries out
//! what becomes of a body ([`Pipeline::keep`], in [`fate`]): stored on its event topic, or kept
//! raw in quarantine.
//!
//! Keeping the pure half apart lets the CLI validate payloads with no Kafka and lets tests
//! exercise every rejection without a broker. [`quarantine`] says what a quarantined body
//! carries with it and what its sender is told; [`cloudevents`] adds the optional binary-mode
//! headers.

pub(crate) mod cloudevents;
pub mod envelope;
pub(crate) mod fate;
pub mod protect;
pub(crate) mod quarantine;
pub mod route;
pub mod schema;

use std::borrow::Cow;
use std::sync::Arc;

use crate::delivery::{self, Delivery, DeliveryError, DuplicateScope, Outcome};
use crate::pipeline::protect::{Keyring, Protection, RawPolicy};
use crate::pipeline::route::{Route, Routes};
use crate::pipeline::schema::{record, ConvertError};
use envelope::{EnvelopeError, EnvelopeKind};
pub use fate::{Fate, KeepError, Kept, Quarantines};
pub use quarantine::{Answer, Quarantined};

/// Why a body cannot become a record.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Not JSON (or nested deeper than the parser allows).
    #[error("body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON in which an object repeats a key: ambiguous, so refused.
    #[error("body is ambiguous JSON: {0}")]
    DuplicateKey(envelope::json::JsonError),
    /// JSON, but not a usable envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// An envelope the endpoint does not accept (`endpoints.envelopes`).
    #[error("the {envelope} envelope is not accepted on this endpoint")]
    EnvelopeNotAccepted {
        envelope: &'static str,
        event_id: String,
        event_type: String,
    },
    /// Nested deeper than `http.max_json_depth`: refused before it is parsed.
    #[error("JSON is nested deeper than {0} levels")]
    TooDeep(usize),
    /// A usable envelope whose record would be larger than the connector produces (see
    /// [`crate::delivery::record_size`]), or that the broker refused as too large.
    #[error("the record for event type `{event_type}` is too large for kafka ({detail})")]
    RecordTooLarge {
        event_id: String,
        event_type: String,
        detail: String,
    },
    /// A usable envelope whose content does not fit the event type's schema.
    #[error("event type `{event_type}` does not fit its schema: {error}")]
    Schema {
        event_id: String,
        event_type: String,
        error: ConvertError,
    },
}

impl PrepareError {
    /// A short class for headers, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PrepareError::Json(_) => "invalid_json",
            PrepareError::DuplicateKey(_) => "duplicate_key",
            PrepareError::Envelope(_) => "invalid_envelope",
            PrepareError::EnvelopeNotAccepted { .. } => "envelope_not_accepted",
            PrepareError::Schema { .. } => "schema_mismatch",
            PrepareError::TooDeep(_) => "too_deep",
            PrepareError::RecordTooLarge { .. } => "record_too_large",
        }
    }

    /// The failing field, when one is known.
    pub fn field(&self) -> Option<String> {
        match self {
            PrepareError::Json(_) => None,
            PrepareError::DuplicateKey(envelope::json::JsonError::DuplicateKey {
                path, ..
            }) => Some(path.clone()),
            PrepareError::DuplicateKey(_) => None,
            PrepareError::Envelope(e) => e.field().map(str::to_string),
            PrepareError::Schema { error, .. } => Some(error.field()),
            PrepareError::TooDeep(_)
            | PrepareError::RecordTooLarge { .. }
            | PrepareError::EnvelopeNotAccepted { .. } => None,
        }
    }

    /// The event id and type, when the envelope was readable.
    pub fn event(&self) -> Option<(&str, &str)> {
        match self {
            PrepareError::Schema {
                event_id,
                event_type,
                ..
            }
            | PrepareError::RecordTooLarge {
                event_id,
                event_type,
                ..
            }
            | PrepareError::EnvelopeNotAccepted {
                event_id,
                event_type,
                ..
            } => Some((event_id, event_type)),
            _ => None,
        }
    }
}

impl From<envelope::json::JsonError> for PrepareError {
    fn from(error: envelope::json::JsonError) -> Self {
        match error {
            envelope::json::JsonError::Syntax(error) => PrepareError::Json(error),
            duplicate => PrepareError::DuplicateKey(duplicate),
        }
    }
}

/// A record ready to produce.
#[derive(Debug)]
pub struct Prepared {
    /// Route (topic and schema) it goes to.
    pub route: Arc<Route>,
    /// Event id: the Kafka key.
    pub key: String,
    /// The stored value of the schema's `riskos.partition_by` field, which picks the
    /// partition; `None` (no rule, or no value): partitioned by `key`.
    pub partition_key: Option<String>,
    /// Event type as sent.
    pub event_type: String,
    /// Envelope style.
    pub envelope: EnvelopeKind,
    /// Event time, epoch ms.
    pub occurred_at_ms: i64,
    /// Encoded value (wire prefix + Avro datum).
    pub payload: Vec<u8>,
}

impl Prepared {
    /// What delivery stores: topic, key, value and the headers every event record carries,
    /// plus the request's W3C `traceparent` when it came with one.
    pub fn record<'a>(&'a self, traceparent: Option<&'a str>) -> delivery::Record<'a> {
        let mut headers = vec![
            ("event_type", self.event_type.as_str()),
            ("envelope", self.envelope.as_str()),
        ];
        if let Some(traceparent) = traceparent {
            headers.push(("traceparent", traceparent));
        }
        delivery::Record {
            topic: &self.route.topic,
            key: Some(&self.key),
            partition_key: self.partition_key.as_deref(),
            value: &self.payload,
            headers,
            occurred_at_ms: Some(self.occurred_at_ms),
        }
    }
}

/// What a pipeline knows of the endpoint it serves.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// The endpoint's name: the `endpoint` header of every record.
    pub endpoint: Arc<str>,
    /// The envelopes the endpoint accepts; others are quarantined (400).
    pub envelopes: Vec<EnvelopeKind>,
    /// Where bodies that cannot be prepared are kept raw.
    pub quarantine_topic: String,
    /// Records whose value would be larger are quarantined instead (see
    /// [`crate::delivery::record_size`]).
    pub max_value_bytes: usize,
    /// Bodies nested deeper are quarantined before they are parsed (`http.max_json_depth`).
    pub max_json_depth: usize,
    /// What is protected, with which keys.
    pub protection: ProtectionSettings,
    /// The endpoint's CloudEvents binding (`endpoints.cloudevents`): when set, every event
    /// record also carries the binary-mode `ce_*` and `content-type` headers (see
    /// [`cloudevents`]); quarantined records never do.
    pub cloudevents: Option<cloudevents::Binding>,
}

/// An endpoint's protection as the pipeline keeps it (see [`Protection`]).
#[derive(Debug, Clone)]
pub struct ProtectionSettings {
    /// The keys, when any are configured.
    pub keys: Option<Arc<Keyring>>,
    /// Apply the schemas' field policies.
    pub fields: bool,
    /// The body's policy (`raw`, quarantine).
    pub raw: RawPolicy,
}

impl ProtectionSettings {
    /// Nothing protected.
    pub fn off() -> Self {
        Self {
            keys: None,
            fields: false,
            raw: RawPolicy::Keep,
        }
    }
}

/// Where a body came from, for the record's headers and the duplicate check.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The request body as received.
    pub body: &'a [u8],
    /// The request's W3C `traceparent`, when it came with a valid one.
    pub traceparent: Option<&'a str>,
    /// The sender's own idempotency key (Standard Webhooks' `webhook-id`), when its auth mode
    /// has one: then it, not the body, decides what is a duplicate.
    pub idempotency_key: Option<&'a str>,
}

impl<'a> Origin<'a> {
    /// A body with nothing else known of its request (tools, tests).
    pub fn body(body: &'a [u8]) -> Self {
        Self {
            body,
            traceparent: None,
            idempotency_key: None,
        }
    }

    /// What scopes duplicates: the sender's idempotency key, or else the body.
    fn duplicate_scope(&self) -> DuplicateScope<'a> {
        match self.idempotency_key {
            Some(key) => DuplicateScope::SenderId(key.as_bytes()),
            None => DuplicateScope::Body(self.body),
        }
    }
}

/// One endpoint's routes plus the shared delivery. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    routes: Arc<Routes>,
    delivery: Delivery,
    settings: PipelineSettings,
}

impl Pipeline {
    /// Joins the routing table of the endpoint's prefix, delivery and the endpoint's settings.
    pub fn new(routes: Arc<Routes>, delivery: Delivery, settings: PipelineSettings) -> Self {
        Self {
            routes,
            delivery,
            settings,
        }
    }

    /// The endpoint's name.
    pub fn endpoint(&self) -> &str {
        &self.settings.endpoint
    }

    /// Where bodies that cannot be prepared are kept.
    pub fn quarantine_topic(&self) -> &str {
        &self.settings.quarantine_topic
    }

    /// The endpoint's protection, with the keys.
    pub fn protection(&self) -> Protection<'_> {
        let settings = &self.settings.protection;
        Protection {
            keys: settings.keys.as_deref(),
            fields: settings.fields,
            raw: settings.raw,
        }
    }

    /// Delivery (dedup cache and store).
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// Turns a request body into an encoded record no larger than the connector produces.
    /// Pure: no I/O.
    pub fn prepare(&self, body: &[u8], received_at_ms: i64) -> Result<Prepared, PrepareError> {
        let prepared = prepare_accepting(
            &self.routes,
            &self.settings.envelopes,
            self.protection(),
            body,
            received_at_ms,
        )?;
        let max_value_bytes = self.settings.max_value_bytes;
        if prepared.payload.len() > max_value_bytes {
            return Err(PrepareError::RecordTooLarge {
                detail: format!(
                    "a value of {} bytes is over the {max_value_bytes} the connector produces",
                    prepared.payload.len(),
                ),
                event_id: prepared.key,
                event_type: prepared.event_type,
            });
        }
        Ok(prepared)
    }

    /// Stores a prepared record (once per identical body, or per sender idempotency key) and
    /// waits until it is safe: acked by Kafka, or fsync'd to the spool. Its headers name the
    /// endpoint and carry the request's `traceparent`.
    pub async fn deliver(
        &self,
        prepared: &Prepared,
        origin: Origin<'_>,
    ) -> Result<Outcome, Arc<DeliveryError>> {
        let mut record = prepared.record(origin.traceparent);
        record
            .headers
            .push((ENDPOINT_HEADER, &self.settings.endpoint));
        let cloudevents = self.settings.cloudevents.as_ref().map(|binding| {
            binding.headers(&prepared.key, &prepared.event_type, prepared.occurred_at_ms)
        });
        if let Some(headers) = &cloudevents {
            record.headers.extend(headers.iter());
        }
        self.delivery
            .deliver(&record, origin.duplicate_scope())
            .await
    }

    /// Stores a quarantined body, raw, on the endpoint's quarantine topic, through delivery
    /// like any record: acked by Kafka, or fsync'd to the spool when it is on.
    async fn quarantine(
        &self,
        origin: Origin<'_>,
        quarantined: &Quarantined,
    ) -> Result<Outcome, Arc<DeliveryError>> {
        let stored = self.quarantine_body(origin.body, quarantined);
        let record = self.quarantine_record(quarantined, &stored);
        let outcome = self
            .delivery
            .deliver(&record, origin.duplicate_scope())
            .await?;
        self.count_quarantined(quarantined.error.reason());
        Ok(outcome)
    }

    /// Counts a quarantine write once it is safe.
    fn count_quarantined(&self, reason: &'static str) {
        metrics::counter!(
            crate::common::metrics::QUARANTINED,
            "endpoint" => self.settings.endpoint.to_string(),
            "reason" => reason
        )
        .increment(1);
    }

    /// The body as the quarantine keeps it: the endpoint's policy for bodies applies there too.
    fn quarantine_body<'b>(&self, body: &'b [u8], quarantined: &Quarantined) -> Cow<'b, [u8]> {
        self.protection().body(
            body,
            &self.settings.quarantine_topic,
            quarantined.key.as_deref().unwrap_or_default(),
        )
    }

    /// The quarantine record of `stored` (from [`Self::quarantine_body`]).
    fn quarantine_record<'a>(
        &'a self,
        quarantined: &'a Quarantined,
        stored: &'a [u8],
    ) -> delivery::Record<'a> {
        let mut record = quarantined.record(&self.settings.quarantine_topic, stored);
        record
            .headers
            .push((ENDPOINT_HEADER, &self.settings.endpoint));
        record
    }
}

/// The header naming the endpoint a record came through.
pub const ENDPOINT_HEADER: &str = "endpoint";

/// Every envelope: what the tools accept.
pub const ALL_ENVELOPES: [EnvelopeKind; 2] = [EnvelopeKind::Event, EnvelopeKind::RequestToken];

/// See [`Pipeline::prepare`]; any envelope is accepted, nothing is protected.
pub fn prepare(
    routes: &Routes,
    body: &[u8],
    received_at_ms: i64,
) -> Result<Prepared, PrepareError> {
    prepare_accepting(
        routes,
        &ALL_ENVELOPES,
        Protection::OFF,
        body,
        received_at_ms,
    )
}

/// See [`Pipeline::prepare`]: a body in an envelope outside `envelopes` is refused as soon as
/// its envelope is known; `protection` says what becomes of personal fields and the body.
pub fn prepare_accepting(
    routes: &Routes,
    envelopes: &[EnvelopeKind],
    protection: Protection<'_>,
    body: &[u8],
    received_at_ms: i64,
) -> Result<Prepared, PrepareError> {
    // Checked once here: the parser then reads the text without re-checking its strings, and
    // `raw` is written from the body as it is.
    let Ok(raw) = std::str::from_utf8(body) else {
        // JSON is UTF-8, so this is not JSON: the parser's error says where it breaks.
        return Err(serde_json::from_slice::<serde_json::Value>(body)
            .expect_err("serde_json rejects input that is not UTF-8")
            .into());
    };
    // One pass; a key repeated in any object is refused (serde_json would keep the last).
    let json = envelope::json::from_str(raw)?;
    let mut event = envelope::normalize(json)?;
    if !envelopes.contains(&event.envelope) {
        return Err(PrepareError::EnvelopeNotAccepted {
            envelope: event.envelope.config_name(),
            event_id: event.id,
            event_type: event.event_type,
        });
    }
    let route = routes.get(&event.event_type).clone();
    let schema = &route.schema;
    // An empty or missing value stays none (its hash token would gather every such record
    // on one partition).
    let partition_by =
        (schema.partition_by.as_ref()).filter(|by| by.value_in(&event.data).is_some());
    // Personal data protected before anything is encoded: the schema's field policies, then
    // the body's own policy for `raw`.
    protection.apply(
        &schema.plan,
        &mut event.data,
        &mut event.description,
        &route.topic,
        &event.id,
    );
    // Read from the data as stored: a hashed field's token, the same for the same value.
    let partition_key = partition_by
        .and_then(|by| by.value_in(&event.data))
        .map(str::to_string);
    let stored_body = protection.body(body, &route.topic, &event.id);
    let raw = std::str::from_utf8(&stored_body)
        .expect("a kept body is the UTF-8 text checked above; a sealed one is ASCII");
    // One buffer: wire prefix, then the datum written straight from the parsed body (no Avro
    // value tree, no per-request schema resolution). `raw` alone is about the body's size.
    let mut payload = Vec::with_capacity(route.wire_prefix.len() + 2 * body.len() + 64);
    payload.extend_from_slice(&route.wire_prefix);
    record::write_record(
        &schema.schema,
        &schema.names,
        &event,
        received_at_ms,
        raw,
        &mut payload,
    )
    .map_err(|error| PrepareError::Schema {
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        error,
    })?;
    let envelope::Event {
        id: key,
        event_type,
        envelope,
        occurred_at_ms,
        ..
    } = event;
    Ok(Prepared {
        route,
        key,
        partition_key,
        event_type,
        envelope,
        occurred_at_ms,
        payload,
    })
}

/// A pipeline for the endpoint `riskos` over a memory store (what this area's tests drive):
/// single-object routes of `schemas/`, no duplicate cache, quarantine on `riskos.quarantine`.
#[cfg(test)]
pub(crate) fn over_memory(
    protection: ProtectionSettings,
    cloudevents: Option<cloudevents::Binding>,
) -> (Pipeline, Arc<delivery::MemoryStore>) {
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let catalog = schema::Catalog::load(&schemas).unwrap();
    let routes = Arc::new(route::single_object_routes(&catalog, "riskos."));
    let store = Arc::new(delivery::MemoryStore::new());
    let dedup = delivery::Dedup::new(0, std::time::Duration::from_secs(1));
    let settings = PipelineSettings {
        endpoint: "riskos".into(),
        envelopes: ALL_ENVELOPES.to_vec(),
        quarantine_topic: "riskos.quarantine".into(),
        max_value_bytes: 1 << 20,
        max_json_depth: 64,
        protection,
        cloudevents,
    };
    let delivery = Delivery::new(store.clone(), dedup);
    (Pipeline::new(routes, delivery, settings), store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_utf8_is_invalid_json_naming_where() {
        let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let catalog = crate::pipeline::schema::Catalog::load(&schemas).unwrap();
        let routes = crate::pipeline::route::single_object_routes(&catalog, "riskos.");
        // Valid JSON but for one byte inside a string that is not UTF-8.
        let body = b"{\"event_id\": \"a\xffb\"}";
        let error = prepare(&routes, body, 0).unwrap_err();
        assert_eq!(error.reason(), "invalid_json");
        assert!(error.to_string().contains("line 1 column"), "{error}");
    }
}
