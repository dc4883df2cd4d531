//! The one JSON→Avro converter: [`from_json`] walks the Avro schema and the JSON value together.
//!
//! Rules, the same for every event type:
//! - a JSON key the schema does not name is ignored (vendors add fields; the record's `raw`
//!   keeps them);
//! - a field the JSON lacks (or sends as `null`) takes the field's default, else `null` when the
//!   field is a `["null", T]` union, else it is an error;
//! - a field with the attribute `"riskos.json": true` stores the JSON text of whatever value
//!   arrives (for free-form objects such as `data_enrichments`);
//! - anything else of the wrong JSON type is an error whose path names the field, e.g.
//!   `data.globalWatchlist.caseDetails[0].entityId: expected a string, found a number`.

use std::collections::HashMap;
use std::fmt;

use apache_avro::schema::{Name, RecordField, RecordSchema, Schema, UnionSchema};
use apache_avro::types::Value as Avro;
use serde_json::Value as Json;

use crate::envelope::json_type;

/// Field attribute marking a string field that stores the JSON text of any value.
pub const JSON_TEXT_ATTRIBUTE: &str = "riskos.json";

/// Named types of a schema, for resolving `Schema::Ref`.
pub type Names = HashMap<Name, Schema>;

/// A value that does not fit the schema, with the path of the failing field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    path: Vec<PathSegment>,
    /// What is wrong at that path.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathSegment {
    Field(String),
    Index(usize),
    Key(String),
}

impl ConvertError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    fn mismatch(expected: &str, found: &Json) -> Self {
        Self::new(format!("expected {expected}, found {}", json_type(found)))
    }

    /// Segments are pushed while the error unwinds, so the happy path builds no paths.
    fn within(mut self, segment: PathSegment) -> Self {
        self.path.push(segment);
        self
    }

    /// The failing field as a dotted path, e.g. `data.tags[0].tag_name`.
    pub fn field(&self) -> String {
        let mut out = String::new();
        for segment in self.path.iter().rev() {
            match segment {
                PathSegment::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
                PathSegment::Key(k) => out.push_str(&format!("[{k:?}]")),
            }
        }
        out
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field(), self.reason)
        }
    }
}

impl std::error::Error for ConvertError {}

/// Converts `json` into an Avro value of `schema`. `names` resolves named-type references.
pub fn from_json(schema: &Schema, names: &Names, json: Json) -> Result<Avro, ConvertError> {
    match schema {
        Schema::Null => match json {
            Json::Null => Ok(Avro::Null),
            other => Err(ConvertError::mismatch("null", &other)),
        },
        Schema::Boolean => match json {
            Json::Bool(b) => Ok(Avro::Boolean(b)),
            other => Err(ConvertError::mismatch("a boolean", &other)),
        },
        Schema::Int => integer(&json, "an int")
            .and_then(|n| i32::try_from(n).map_err(|_| ConvertError::new("out of int range")))
            .map(Avro::Int),
        Schema::Long => integer(&json, "a long").map(Avro::Long),
        Schema::TimestampMillis => integer(&json, "epoch milliseconds").map(Avro::TimestampMillis),
        Schema::TimestampMicros => integer(&json, "epoch microseconds").map(Avro::TimestampMicros),
        Schema::Float => number(&json, "a float").map(|n| Avro::Float(n as f32)),
        Schema::Double => number(&json, "a double").map(Avro::Double),
        Schema::String => match json {
            Json::String(s) => Ok(Avro::String(s)),
            other => Err(ConvertError::mismatch("a string", &other)),
        },
        Schema::Bytes => match json {
            Json::String(s) => Ok(Avro::Bytes(s.into_bytes())),
            other => Err(ConvertError::mismatch("a string", &other)),
        },
        Schema::Enum(e) => match json {
            Json::String(s) => match e.symbols.iter().position(|sym| *sym == s) {
                Some(i) => Ok(Avro::Enum(i as u32, s)),
                None => match &e.default {
                    Some(default) => {
                        let i = e.symbols.iter().position(|sym| sym == default).unwrap_or(0);
                        Ok(Avro::Enum(i as u32, default.clone()))
                    }
                    None => Err(ConvertError::new(format!(
                        "`{s}` is not one of {:?}",
                        e.symbols
                    ))),
                },
            },
            other => Err(ConvertError::mismatch("a string", &other)),
        },
        Schema::Array(array) => match json {
            Json::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    from_json(&array.items, names, item)
                        .map_err(|e| e.within(PathSegment::Index(i)))
                })
                .collect::<Result<_, _>>()
                .map(Avro::Array),
            other => Err(ConvertError::mismatch("an array", &other)),
        },
        Schema::Map(map) => match json {
            Json::Object(entries) => entries
                .into_iter()
                .map(|(k, v)| match from_json(&map.types, names, v) {
                    Ok(value) => Ok((k, value)),
                    Err(e) => Err(e.within(PathSegment::Key(k))),
                })
                .collect::<Result<_, _>>()
                .map(Avro::Map),
            other => Err(ConvertError::mismatch("an object", &other)),
        },
        Schema::Record(record) => match json {
            Json::Object(object) => record_from_json(record, names, object),
            other => Err(ConvertError::mismatch("an object", &other)),
        },
        Schema::Union(union) => union_from_json(union, names, json),
        Schema::Ref { name } => match names.get(name) {
            Some(schema) => from_json(schema, names, json),
            None => Err(ConvertError::new(format!("unknown named type {name}"))),
        },
        other => Err(ConvertError::new(format!(
            "schema type {other:?} is not supported by the converter"
        ))),
    }
}

fn record_from_json(
    record: &RecordSchema,
    names: &Names,
    mut object: serde_json::Map<String, Json>,
) -> Result<Avro, ConvertError> {
    let mut fields = Vec::with_capacity(record.fields.len());
    for field in &record.fields {
        let value = take_field(&mut object, field);
        let converted = match value {
            Some(value) => convert_field(field, names, value),
            None => missing_field(field, names),
        };
        match converted {
            Ok(v) => fields.push((field.name.clone(), v)),
            Err(e) => return Err(e.within(PathSegment::Field(field.name.clone()))),
        }
    }
    Ok(Avro::Record(fields))
}

/// The field's value by name or alias; `null` counts as absent so defaults apply.
fn take_field(object: &mut serde_json::Map<String, Json>, field: &RecordField) -> Option<Json> {
    let value = object.remove(&field.name).or_else(|| {
        field
            .aliases
            .iter()
            .find_map(|alias| object.remove(alias.as_str()))
    });
    value.filter(|v| !v.is_null())
}

fn convert_field(field: &RecordField, names: &Names, value: Json) -> Result<Avro, ConvertError> {
    if is_json_text(field) {
        return from_json(&field.schema, names, Json::String(value.to_string()));
    }
    from_json(&field.schema, names, value)
}

fn missing_field(field: &RecordField, names: &Names) -> Result<Avro, ConvertError> {
    if let Some(default) = &field.default {
        // A union's default is for its first branch (Avro specification).
        if let Schema::Union(union) = &field.schema {
            let first = &union.variants()[0];
            return from_json(first, names, default.clone()).map(|v| Avro::Union(0, Box::new(v)));
        }
        return from_json(&field.schema, names, default.clone());
    }
    if let Schema::Union(union) = &field.schema {
        if let Some(i) = null_branch(union) {
            return Ok(Avro::Union(i as u32, Box::new(Avro::Null)));
        }
    }
    Err(ConvertError::new("required field is missing"))
}

fn union_from_json(union: &UnionSchema, names: &Names, json: Json) -> Result<Avro, ConvertError> {
    if json.is_null() {
        return match null_branch(union) {
            Some(i) => Ok(Avro::Union(i as u32, Box::new(Avro::Null))),
            None => Err(ConvertError::new("null is not allowed here")),
        };
    }
    let branches: Vec<(usize, &Schema)> = union
        .variants()
        .iter()
        .enumerate()
        .filter(|(_, s)| !matches!(s, Schema::Null))
        .collect();
    let found = json_type(&json);
    let mut json = Some(json);
    let mut first_error = None;
    for (n, (i, branch)) in branches.iter().enumerate() {
        // Earlier attempts work on a copy; the last one may consume the value.
        let candidate = if n + 1 == branches.len() {
            json.take()
        } else {
            json.clone()
        };
        match from_json(branch, names, candidate.unwrap_or_default()) {
            Ok(v) => return Ok(Avro::Union(*i as u32, Box::new(v))),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (branches.len(), first_error) {
        (1, Some(e)) => Err(e),
        _ => Err(ConvertError::new(format!(
            "{found} fits no branch of the union"
        ))),
    }
}

fn null_branch(union: &UnionSchema) -> Option<usize> {
    union
        .variants()
        .iter()
        .position(|s| matches!(s, Schema::Null))
}

fn is_json_text(field: &RecordField) -> bool {
    field
        .custom_attributes
        .get(JSON_TEXT_ATTRIBUTE)
        .and_then(Json::as_bool)
        .unwrap_or(false)
}

fn integer(json: &Json, expected: &str) -> Result<i64, ConvertError> {
    json.as_i64()
        .ok_or_else(|| ConvertError::mismatch(&format!("{expected} (an integer)"), json))
}

fn number(json: &Json, expected: &str) -> Result<f64, ConvertError> {
    json.as_f64()
        .ok_or_else(|| ConvertError::mismatch(expected, json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(text: &str) -> (Schema, Names) {
        let schema = Schema::parse_str(text).unwrap();
        let names = crate::schema::catalog::names_of(&schema).unwrap();
        (schema, names)
    }

    const CASE: &str = r#"{
        "type": "record", "name": "Case", "fields": [
            {"name": "id", "type": "string"},
            {"name": "count", "type": ["null", "long"], "default": null},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["OPEN", "CLOSED"]}},
            {"name": "tags", "type": {"type": "array", "items": {
                "type": "record", "name": "Tag", "fields": [{"name": "name", "type": "string"}]}}},
            {"name": "more_tags", "type": ["null", {"type": "array", "items": "Tag"}], "default": null},
            {"name": "blob", "type": ["null", "string"], "default": null, "riskos.json": true},
            {"name": "ratio", "type": "double", "default": 0.5}
        ]}"#;

    #[test]
    fn converts_every_supported_shape() {
        let (schema, names) = schema(CASE);
        let value = from_json(
            &schema,
            &names,
            json!({
                "id": "c1", "count": 3, "at": 1692223050044_i64, "status": "CLOSED",
                "tags": [{"name": "a", "ignored": true}], "more_tags": [{"name": "b"}],
                "blob": {"x": [1, 2]}, "unknown_field": "tolerated"
            }),
        )
        .unwrap();
        let Avro::Record(fields) = &value else {
            panic!()
        };
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("id"), Avro::String("c1".into()));
        assert_eq!(get("count"), Avro::Union(1, Box::new(Avro::Long(3))));
        assert_eq!(get("at"), Avro::TimestampMillis(1692223050044));
        assert_eq!(get("status"), Avro::Enum(1, "CLOSED".into()));
        assert_eq!(
            get("blob"),
            Avro::Union(1, Box::new(Avro::String(r#"{"x":[1,2]}"#.into())))
        );
        assert_eq!(get("ratio"), Avro::Double(0.5));
        assert!(value.validate(&schema));
        crate::schema::encode::encode(&[], &schema, value).unwrap();
    }

    #[test]
    fn absent_and_null_optionals_become_null() {
        let (schema, names) = schema(CASE);
        let value = from_json(
            &schema,
            &names,
            json!({"id": "c1", "count": null, "at": 1, "status": "OPEN", "tags": []}),
        )
        .unwrap();
        assert!(value.validate(&schema));
    }

    #[test]
    fn errors_name_the_failing_field() {
        let (schema, names) = schema(CASE);
        let cases = [
            (json!({"id": 5}), "id: expected a string, found a number"),
            (
                json!({"id": "c", "at": 1, "status": "OPEN", "tags": [{"name": "a"}, {"name": 2}]}),
                "tags[1].name: expected a string, found a number",
            ),
            (
                json!({"id": "c", "at": "yesterday", "status": "OPEN", "tags": []}),
                "at: expected epoch milliseconds (an integer), found a string",
            ),
            (
                json!({"id": "c", "at": 1, "status": "PENDING", "tags": []}),
                "status: `PENDING` is not one of",
            ),
            (
                json!({"id": "c", "at": 1, "status": "OPEN"}),
                "tags: required field is missing",
            ),
            (
                json!({"id": "c", "at": 1, "status": "OPEN", "tags": [], "count": "3"}),
                "count: expected a long (an integer), found a string",
            ),
        ];
        for (json, expected) in cases {
            let message = from_json(&schema, &names, json.clone())
                .unwrap_err()
                .to_string();
            assert!(message.starts_with(expected), "{json}: {message}");
        }
    }
}
