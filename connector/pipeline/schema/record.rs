//! The record builder: an [`Event`] plus its arrival facts become the record every value schema
//! shares, written straight to Avro by the converter's field rules.
//!
//! Envelope fields (every schema): `event_id`, `event_type`, `occurred_at`, `received_at`,
//! `envelope`, `data`, `raw`. Optional in a schema: `description` and `extra` (the JSON text of
//! top-level fields neither envelope defines, such as `customer_metadata`).

use apache_avro::schema::{RecordField, Schema};
use serde_json::Value as Json;

use super::convert::{self, ConvertError, Input, Names};
use crate::pipeline::envelope::Event;

/// Whether a field's Avro type can hold what the builder puts there.
pub(crate) type AcceptsType = fn(&Schema) -> bool;

/// Field names and the Avro types each accepts; checked when a schema file is loaded.
pub(crate) const ENVELOPE_FIELDS: &[(&str, AcceptsType)] = &[
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

/// Appends the record's Avro binary datum to `out`: each field of the value schema `schema`
/// gets the builder's value under its name (or an alias), read where it lies — the event, the
/// arrival time, the raw body — and goes through the converter's field rules (defaults, `null`
/// for `["null", T]`, `riskos.json` text). Errors name the field.
pub(crate) fn write_record(
    schema: &Schema,
    names: &Names,
    event: &Event,
    received_at_ms: i64,
    raw: &str,
    out: &mut Vec<u8>,
) -> Result<(), ConvertError> {
    let Schema::Record(record) = schema else {
        // The catalog loads only record schemas.
        return Err(ConvertError::new("a value schema must be a record"));
    };
    for field in &record.fields {
        let value = builder_value(field, event, received_at_ms, raw);
        convert::write_field(field, names, value, out).map_err(|e| e.within_field(&field.name))?;
    }
    Ok(())
}

/// The builder's value for a field, by its name or, failing that, an alias; `None` for absent
/// or `null`. `extra` is the object of top-level fields neither envelope defines.
fn builder_value<'a>(
    field: &RecordField,
    event: &'a Event,
    received_at_ms: i64,
    raw: &'a str,
) -> Option<Input<'a>> {
    let value = |key: &str| -> Option<Input<'a>> {
        Some(match key {
            "event_id" => Input::Str(&event.id),
            "event_type" => Input::Str(&event.event_type),
            "occurred_at" => Input::Long(event.occurred_at_ms),
            "received_at" => Input::Long(received_at_ms),
            "envelope" => Input::Str(event.envelope.as_str()),
            "description" => event.description.as_deref().map_or(Input::Null, Input::Str),
            "extra" if event.extra.is_empty() => Input::Null,
            "extra" => Input::Object(&event.extra),
            "data" => Input::Json(&event.data),
            "raw" => Input::Str(raw),
            _ => return None,
        })
    };
    let found = value(&field.name).or_else(|| field.aliases.iter().find_map(|a| value(a)));
    found.filter(|v| !matches!(v, Input::Null | Input::Json(Json::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::envelope::normalize;
    use crate::pipeline::schema::{decode, Catalog};

    #[test]
    fn every_fixture_under_every_schema_is_written_or_names_its_field() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let catalog = Catalog::load(&root.join("schemas")).unwrap();
        let (mut fits, mut misfits) = (0, 0);
        for entry in std::fs::read_dir(root.join("tests/fixtures")).unwrap() {
            let path = entry.unwrap().path();
            let raw = std::fs::read_to_string(&path).unwrap();
            let mut event = normalize(serde_json::from_str(&raw).unwrap()).unwrap();
            event.description.get_or_insert_with(|| "d".into());
            // Also with extra top-level fields (a riskos.json field) and without `data`.
            let mut with_extra = event.clone();
            with_extra.extra.insert(
                "customer_metadata".into(),
                serde_json::json!({"t": [1, 2.5]}),
            );
            let mut without_data = event.clone();
            without_data.data = Json::Null;
            for schema in catalog.entries() {
                for event in [&event, &with_extra, &without_data] {
                    let mut out = Vec::new();
                    let context = format!("{} under {}", path.display(), schema.file.display());
                    match write_record(&schema.schema, &schema.names, event, 7, &raw, &mut out) {
                        Ok(()) => {
                            // apache-avro reads back exactly what the builder put in.
                            let record = decode::datum(&schema.schema, &out).expect(&context);
                            assert_eq!(record["event_id"], event.id.as_str(), "{context}");
                            assert_eq!(record["event_type"], event.event_type.as_str());
                            assert_eq!(record["occurred_at"], event.occurred_at_ms);
                            assert_eq!(record["received_at"], 7);
                            assert_eq!(record["envelope"], event.envelope.as_str());
                            assert_eq!(record["raw"], raw.as_str());
                            if let Some(extra) = record.get("extra").and_then(Json::as_str) {
                                let extra: Json = serde_json::from_str(extra).unwrap();
                                assert_eq!(extra, Json::Object(event.extra.clone()));
                            }
                            fits += 1;
                        }
                        Err(error) => {
                            assert!(!error.field().is_empty(), "{context}: {error}");
                            misfits += 1;
                        }
                    }
                }
            }
        }
        // Both outcomes were seen: records that fit and errors that name the field.
        assert!(fits >= 8 && misfits > 0, "{fits} fit, {misfits} did not");
    }
}
