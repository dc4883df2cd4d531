//! The record builder: an [`Event`] plus its arrival facts become the JSON shape every value
//! schema shares, ready for the converter.
//!
//! Envelope fields (every schema): `event_id`, `event_type`, `occurred_at`, `received_at`,
//! `envelope`, `data`, `raw`. Optional in a schema: `description` and `extra` (the JSON text of
//! top-level fields neither envelope defines, such as `customer_metadata`).

use apache_avro::schema::Schema;
use serde_json::{Map, Value as Json};

use crate::envelope::Event;

/// Whether a field's Avro type can hold what the builder puts there.
pub type AcceptsType = fn(&Schema) -> bool;

/// Field names and the Avro types each accepts; checked when a schema file is loaded.
pub const ENVELOPE_FIELDS: &[(&str, AcceptsType)] = &[
    ("event_id", |s| matches!(s, Schema::String)),
    ("event_type", |s| matches!(s, Schema::String)),
    ("occurred_at", |s| matches!(s, Schema::TimestampMillis)),
    ("received_at", |s| matches!(s, Schema::TimestampMillis)),
    ("envelope", is_envelope_enum),
    ("data", |_| true),
    ("raw", |s| matches!(s, Schema::String)),
];

fn is_envelope_enum(schema: &Schema) -> bool {
    match schema {
        Schema::Enum(e) => ["EVENT", "REQUEST_TOKEN"]
            .iter()
            .all(|symbol| e.symbols.iter().any(|s| s == symbol)),
        _ => false,
    }
}

/// Builds the record's JSON. Takes ownership so `data` and `raw` move rather than copy.
pub fn record_json(event: Event, received_at_ms: i64, raw: String) -> Json {
    let mut record = Map::with_capacity(9);
    record.insert("event_id".into(), Json::String(event.id));
    record.insert("event_type".into(), Json::String(event.event_type));
    record.insert("occurred_at".into(), Json::from(event.occurred_at_ms));
    record.insert("received_at".into(), Json::from(received_at_ms));
    record.insert(
        "envelope".into(),
        Json::String(event.envelope.as_str().into()),
    );
    record.insert(
        "description".into(),
        event.description.map_or(Json::Null, Json::String),
    );
    let extra = if event.extra.is_empty() {
        Json::Null
    } else {
        Json::Object(event.extra)
    };
    record.insert("extra".into(), extra);
    record.insert("data".into(), event.data);
    record.insert("raw".into(), Json::String(raw));
    Json::Object(record)
}
