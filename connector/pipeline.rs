//! The pipeline behind the HTTP handler: parse → normalize → route → convert → encode
//! ([`Pipeline::prepare`], pure and offline) and produce ([`Pipeline::deliver`]).
//!
//! Keeping the pure half apart lets the CLI validate payloads with no Kafka and lets tests
//! exercise every rejection without a broker.

use std::sync::Arc;

use bytes::Bytes;

use crate::envelope::{self, EnvelopeError, EnvelopeKind};
use crate::kafka::{Delivered, ProduceError, Producer};
use crate::route::{Route, Routes};
use crate::schema::{convert, encode, record, ConvertError, EncodeError};

/// Why a body cannot become a record. Every variant is the sender's fault except `Encode`.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Not JSON (or nested deeper than the parser allows).
    #[error("body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not a usable envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// A usable envelope whose content does not fit the event type's schema.
    #[error("event type `{event_type}` does not fit schema {schema}: {error}")]
    Schema {
        event_type: String,
        schema: String,
        error: ConvertError,
    },
    /// Avro refused a converted value (a bug).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// A record ready to produce.
#[derive(Debug)]
pub struct Prepared {
    /// Route (topic and schema) it goes to.
    pub route: Arc<Route>,
    /// Event id: the Kafka key.
    pub key: String,
    /// Event type as sent.
    pub event_type: String,
    /// Envelope style.
    pub envelope: EnvelopeKind,
    /// Event time, epoch ms.
    pub occurred_at_ms: i64,
    /// Encoded value (wire prefix + Avro datum).
    pub payload: Vec<u8>,
}

/// Routes plus the producer.
pub struct Pipeline {
    routes: Routes,
    producer: Producer,
}

impl Pipeline {
    /// Joins the routing table and the producer.
    pub fn new(routes: Routes, producer: Producer) -> Self {
        Self { routes, producer }
    }

    /// The routing table.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The producer.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Turns a request body into an encoded record. Pure: no I/O.
    pub fn prepare(&self, body: &Bytes, received_at_ms: i64) -> Result<Prepared, PrepareError> {
        prepare(&self.routes, body, received_at_ms)
    }

    /// Produces a prepared record and waits for the broker's ack.
    pub async fn deliver(&self, prepared: &Prepared) -> Result<Delivered, ProduceError> {
        self.producer
            .send(
                &prepared.route.topic,
                &prepared.key,
                &prepared.payload,
                &[
                    ("event_type", prepared.event_type.as_str()),
                    ("envelope", prepared.envelope.as_str()),
                ],
            )
            .await
    }
}

/// See [`Pipeline::prepare`].
pub fn prepare(
    routes: &Routes,
    body: &Bytes,
    received_at_ms: i64,
) -> Result<Prepared, PrepareError> {
    let json: serde_json::Value = serde_json::from_slice(body)?;
    // serde_json has validated the bytes as UTF-8 while parsing.
    let raw = String::from_utf8_lossy(body).into_owned();
    let event = envelope::normalize(json)?;
    let route = routes.get(&event.event_type).clone();
    let key = event.id.clone();
    let event_type = event.event_type.clone();
    let envelope = event.envelope;
    let occurred_at_ms = event.occurred_at_ms;
    let schema = &route.schema;
    let value = convert::from_json(
        &schema.schema,
        &schema.names,
        record::record_json(event, received_at_ms, raw),
    )
    .map_err(|error| PrepareError::Schema {
        event_type: event_type.clone(),
        schema: schema.file.display().to_string(),
        error,
    })?;
    let payload = encode::encode(&route.wire_prefix, &schema.schema, value)?;
    Ok(Prepared {
        route,
        key,
        event_type,
        envelope,
        occurred_at_ms,
        payload,
    })
}
