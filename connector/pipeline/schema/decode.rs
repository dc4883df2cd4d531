//! Decoding record values back to JSON, for the consumer tools: Confluent framing (schema by id
//! from the registry), single-object framing (schema by fingerprint from `schemas/`), or raw
//! bytes (the quarantine topic).

use std::collections::HashMap;

use apache_avro::schema::Schema;
use apache_avro::types::Value as Avro;
use serde_json::{Map, Value as Json};

use super::catalog::Catalog;
use super::encode::single_object_prefix;
use super::Registry;

/// A value that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Confluent framing, but no registry is configured.
    #[error("value has a Confluent schema id ({0}) but no schema_registry.url is configured")]
    NoRegistry(u32),
    /// The registry does not know the id.
    #[error(transparent)]
    Registry(#[from] super::RegistryError),
    /// Single-object framing with a fingerprint no schema in `schemas/` has.
    #[error("no schema in the schema folder has fingerprint {0:02x?}")]
    UnknownFingerprint([u8; 8]),
    /// The bytes do not match the schema.
    #[error("avro decoding failed: {0}")]
    Avro(#[from] apache_avro::Error),
}

/// Decodes values of either framing, caching schemas.
pub struct Decoder {
    registry: Option<Registry>,
    by_id: HashMap<u32, Schema>,
    by_fingerprint: HashMap<[u8; 8], Schema>,
}

impl Decoder {
    /// Single-object values resolve against `catalog`, Confluent ones against `registry`.
    pub fn new(catalog: &Catalog, registry: Option<Registry>) -> Self {
        let by_fingerprint = catalog
            .entries()
            .into_iter()
            .map(|entry| {
                let prefix = single_object_prefix(&entry.schema);
                let mut fingerprint = [0u8; 8];
                fingerprint.copy_from_slice(&prefix[2..10]);
                (fingerprint, entry.schema.clone())
            })
            .collect();
        Self {
            registry,
            by_id: HashMap::new(),
            by_fingerprint,
        }
    }

    /// The value as JSON: decoded Avro for framed values, else the bytes as text.
    pub async fn decode(&mut self, payload: &[u8]) -> Result<Json, DecodeError> {
        match payload {
            [0x00, a, b, c, d, body @ ..] => {
                let id = u32::from_be_bytes([*a, *b, *c, *d]);
                if !self.by_id.contains_key(&id) {
                    let registry = self.registry.as_ref().ok_or(DecodeError::NoRegistry(id))?;
                    let text = registry.by_id(id).await?;
                    self.by_id.insert(id, Schema::parse_str(&text)?);
                }
                datum(&self.by_id[&id], body)
            }
            [0xC3, 0x01, rest @ ..] if rest.len() >= 8 => {
                let mut fingerprint = [0u8; 8];
                fingerprint.copy_from_slice(&rest[..8]);
                let schema = self
                    .by_fingerprint
                    .get(&fingerprint)
                    .ok_or(DecodeError::UnknownFingerprint(fingerprint))?;
                datum(schema, &rest[8..])
            }
            raw => Ok(Json::String(String::from_utf8_lossy(raw).into_owned())),
        }
    }
}

/// Decodes one unframed datum.
pub fn datum(schema: &Schema, mut body: &[u8]) -> Result<Json, DecodeError> {
    let value = apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()?
        .read_value(&mut body)?;
    Ok(to_json(value))
}

/// Avro value → JSON: unions unwrapped, enums as their symbol, timestamps as epoch numbers.
pub fn to_json(value: Avro) -> Json {
    match value {
        Avro::Null => Json::Null,
        Avro::Boolean(b) => Json::Bool(b),
        Avro::Int(n) | Avro::Date(n) | Avro::TimeMillis(n) => Json::from(n),
        Avro::Long(n)
        | Avro::TimestampMillis(n)
        | Avro::TimestampMicros(n)
        | Avro::TimestampNanos(n)
        | Avro::TimeMicros(n)
        | Avro::LocalTimestampMillis(n)
        | Avro::LocalTimestampMicros(n)
        | Avro::LocalTimestampNanos(n) => Json::from(n),
        Avro::Float(f) => Json::from(f64::from(f)),
        Avro::Double(f) => Json::from(f),
        Avro::String(s) | Avro::Enum(_, s) => Json::String(s),
        Avro::Bytes(b) | Avro::Fixed(_, b) => {
            Json::String(String::from_utf8_lossy(&b).into_owned())
        }
        Avro::Union(_, inner) => to_json(*inner),
        Avro::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Avro::Map(m) => Json::Object(m.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
        Avro::Record(fields) => Json::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        other => Json::String(format!("{other:?}")),
    }
}
