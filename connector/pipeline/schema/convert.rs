//! The one JSON→Avro converter: [`write`] walks the Avro schema and a borrowed JSON value
//! together and appends the Avro binary datum to a buffer. No Avro value tree is built (no
//! per-field name and string copies, no boxes) and no per-datum schema resolution happens: this
//! is the request path's hot loop (docs/performance.md). The tests read every datum back with
//! apache-avro's reader, re-encode it with apache-avro's writer and compare the bytes.
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

use apache_avro::schema::{Name, RecordField, Schema, UnionSchema};
use serde_json::Value as Json;

use crate::pipeline::envelope::json_type;

/// Field attribute marking a string field that stores the JSON text of any value.
pub(crate) const JSON_TEXT_ATTRIBUTE: &str = "riskos.json";

/// Named types of a schema, for resolving `Schema::Ref`.
pub(crate) type Names = HashMap<Name, Schema>;

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
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    /// Segments are pushed while the error unwinds, so the happy path builds no paths.
    fn within(mut self, segment: PathSegment) -> Self {
        self.path.push(segment);
        self
    }

    /// Adds the record field the error is in to its path (for callers writing fields
    /// themselves).
    pub fn within_field(self, name: &str) -> Self {
        self.within(PathSegment::Field(name.to_string()))
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

/// A borrowed value for [`write`]: JSON from the body, or a value the record builder holds, so
/// neither is copied into a JSON tree first.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    /// Any JSON value.
    Json(&'a Json),
    /// A string.
    Str(&'a str),
    /// An integer.
    Long(i64),
    /// A JSON object.
    Object(&'a serde_json::Map<String, Json>),
    /// JSON `null`.
    Null,
}

impl<'a> Input<'a> {
    fn is_null(self) -> bool {
        matches!(self, Input::Null | Input::Json(Json::Null))
    }

    fn json_type(self) -> &'static str {
        match self {
            Input::Json(json) => json_type(json),
            Input::Str(_) => "a string",
            Input::Long(_) => "a number",
            Input::Object(_) => "an object",
            Input::Null => "null",
        }
    }

    fn as_str(self) -> Option<&'a str> {
        match self {
            Input::Str(s) => Some(s),
            Input::Json(Json::String(s)) => Some(s),
            _ => None,
        }
    }

    fn as_i64(self) -> Option<i64> {
        match self {
            Input::Long(n) => Some(n),
            Input::Json(json) => json.as_i64(),
            _ => None,
        }
    }

    fn as_f64(self) -> Option<f64> {
        match self {
            Input::Long(n) => Some(n as f64),
            Input::Json(json) => json.as_f64(),
            _ => None,
        }
    }

    fn as_object(self) -> Option<&'a serde_json::Map<String, Json>> {
        match self {
            Input::Object(map) => Some(map),
            Input::Json(Json::Object(map)) => Some(map),
            _ => None,
        }
    }

    /// The JSON text of the value (for `riskos.json` fields), as `Json::to_string` writes it.
    fn json_text(self) -> String {
        let text = match self {
            Input::Json(json) => serde_json::to_string(json),
            Input::Str(s) => serde_json::to_string(s),
            Input::Long(n) => Ok(n.to_string()),
            Input::Object(map) => serde_json::to_string(map),
            Input::Null => Ok("null".to_string()),
        };
        text.expect("a JSON value always serializes")
    }

    fn mismatch(self, expected: &str) -> ConvertError {
        ConvertError::new(format!("expected {expected}, found {}", self.json_type()))
    }

    fn integer(self, expected: &str) -> Result<i64, ConvertError> {
        self.as_i64()
            .ok_or_else(|| self.mismatch(&format!("{expected} (an integer)")))
    }

    fn number(self, expected: &str) -> Result<f64, ConvertError> {
        self.as_f64().ok_or_else(|| self.mismatch(expected))
    }
}

/// Appends `input` as the Avro binary datum of `schema` to `out`. `names` resolves named-type
/// references. On error `out` may hold a partial datum.
pub(crate) fn write(
    schema: &Schema,
    names: &Names,
    input: Input<'_>,
    out: &mut Vec<u8>,
) -> Result<(), ConvertError> {
    match schema {
        Schema::Null if input.is_null() => Ok(()),
        Schema::Null => Err(input.mismatch("null")),
        Schema::Boolean => match input {
            Input::Json(Json::Bool(b)) => {
                out.push(u8::from(*b));
                Ok(())
            }
            other => Err(other.mismatch("a boolean")),
        },
        Schema::Int => {
            let n = input.integer("an int")?;
            let n = i32::try_from(n).map_err(|_| ConvertError::new("out of int range"))?;
            write_long(i64::from(n), out);
            Ok(())
        }
        Schema::Long | Schema::TimestampMillis | Schema::TimestampMicros => {
            let expected = match schema {
                Schema::Long => "a long",
                Schema::TimestampMillis => "epoch milliseconds",
                _ => "epoch microseconds",
            };
            write_long(input.integer(expected)?, out);
            Ok(())
        }
        Schema::Float => {
            let n = input.number("a float")? as f32;
            out.extend_from_slice(&n.to_le_bytes());
            Ok(())
        }
        Schema::Double => {
            out.extend_from_slice(&input.number("a double")?.to_le_bytes());
            Ok(())
        }
        Schema::String | Schema::Bytes => match input.as_str() {
            Some(s) => {
                write_bytes(s.as_bytes(), out);
                Ok(())
            }
            None => Err(input.mismatch("a string")),
        },
        Schema::Enum(e) => match input.as_str() {
            Some(s) => {
                let i = match e.symbols.iter().position(|sym| sym == s) {
                    Some(i) => i,
                    None => match &e.default {
                        Some(default) => {
                            e.symbols.iter().position(|sym| sym == default).unwrap_or(0)
                        }
                        None => {
                            return Err(ConvertError::new(format!(
                                "`{s}` is not one of {:?}",
                                e.symbols
                            )))
                        }
                    },
                };
                write_long(i as i64, out);
                Ok(())
            }
            None => Err(input.mismatch("a string")),
        },
        Schema::Array(array) => match input {
            Input::Json(Json::Array(items)) => {
                // One block with the item count, then the empty block (as apache-avro writes it).
                if !items.is_empty() {
                    write_long(items.len() as i64, out);
                    for (i, item) in items.iter().enumerate() {
                        write(&array.items, names, Input::Json(item), out)
                            .map_err(|e| e.within(PathSegment::Index(i)))?;
                    }
                }
                out.push(0);
                Ok(())
            }
            other => Err(other.mismatch("an array")),
        },
        Schema::Map(map) => match input.as_object() {
            Some(entries) => {
                if !entries.is_empty() {
                    write_long(entries.len() as i64, out);
                    for (k, v) in entries {
                        write_bytes(k.as_bytes(), out);
                        write(&map.types, names, Input::Json(v), out)
                            .map_err(|e| e.within(PathSegment::Key(k.clone())))?;
                    }
                }
                out.push(0);
                Ok(())
            }
            None => Err(input.mismatch("an object")),
        },
        Schema::Record(record) => match input.as_object() {
            Some(object) => {
                for field in &record.fields {
                    write_field(field, names, field_value(object, field), out)
                        .map_err(|e| e.within(PathSegment::Field(field.name.clone())))?;
                }
                Ok(())
            }
            None => Err(input.mismatch("an object")),
        },
        Schema::Union(union) => write_union(union, names, input, out),
        Schema::Ref { name } => match names.get(name) {
            Some(schema) => write(schema, names, input, out),
            None => Err(ConvertError::new(format!("unknown named type {name}"))),
        },
        other => Err(ConvertError::new(format!(
            "schema type {other:?} is not supported by the converter"
        ))),
    }
}

/// Appends one record field: its value (JSON text for a `riskos.json` field), or when `value`
/// is `None` (absent or `null`) its default, `null` for `["null", T]`, or an error. The caller
/// adds the field to the error's path.
pub(crate) fn write_field(
    field: &RecordField,
    names: &Names,
    value: Option<Input<'_>>,
    out: &mut Vec<u8>,
) -> Result<(), ConvertError> {
    match value {
        Some(value) if is_json_text(field) => {
            let text = value.json_text();
            write(&field.schema, names, Input::Str(&text), out)
        }
        Some(value) => write(&field.schema, names, value, out),
        None => {
            if let Some(default) = &field.default {
                // A union's default is for its first branch (Avro specification).
                if let Schema::Union(union) = &field.schema {
                    write_long(0, out);
                    return write(&union.variants()[0], names, Input::Json(default), out);
                }
                return write(&field.schema, names, Input::Json(default), out);
            }
            if let Schema::Union(union) = &field.schema {
                if let Some(i) = null_branch(union) {
                    write_long(i as i64, out);
                    return Ok(());
                }
            }
            Err(ConvertError::new("required field is missing"))
        }
    }
}

/// The field's value by name or alias; `null` counts as absent so defaults apply.
fn field_value<'a>(
    object: &'a serde_json::Map<String, Json>,
    field: &RecordField,
) -> Option<Input<'a>> {
    let value = object.get(&field.name).or_else(|| {
        field
            .aliases
            .iter()
            .find_map(|alias| object.get(alias.as_str()))
    });
    value.filter(|v| !v.is_null()).map(Input::Json)
}

fn write_union(
    union: &UnionSchema,
    names: &Names,
    input: Input<'_>,
    out: &mut Vec<u8>,
) -> Result<(), ConvertError> {
    if input.is_null() {
        let Some(i) = null_branch(union) else {
            return Err(ConvertError::new("null is not allowed here"));
        };
        write_long(i as i64, out);
        return Ok(());
    }
    let mark = out.len();
    let mut branches = 0;
    let mut first_error = None;
    for (i, branch) in union.variants().iter().enumerate() {
        if matches!(branch, Schema::Null) {
            continue;
        }
        branches += 1;
        write_long(i as i64, out);
        match write(branch, names, input, out) {
            Ok(()) => return Ok(()),
            Err(e) => {
                out.truncate(mark);
                first_error.get_or_insert(e);
            }
        }
    }
    match (branches, first_error) {
        (1, Some(e)) => Err(e),
        _ => Err(ConvertError::new(format!(
            "{} fits no branch of the union",
            input.json_type()
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

/// Avro `long` (and `int`): zig-zag, then a base-128 varint.
fn write_long(n: i64, out: &mut Vec<u8>) {
    let mut v = ((n << 1) ^ (n >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Avro `bytes` and `string`: the length, then the bytes.
fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_long(bytes.len() as i64, out);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::types::Value as Avro;
    use apache_avro::writer::datum::GenericDatumWriter;
    use serde_json::json;

    fn schema(text: &str) -> (Schema, Names) {
        let schema = Schema::parse_str(text).unwrap();
        let names = crate::pipeline::schema::catalog::names_of(&schema).unwrap();
        (schema, names)
    }

    fn convert(schema: &Schema, names: &Names, json: &Json) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        write(schema, names, Input::Json(json), &mut out)
            .map(|()| out)
            .map_err(|e| e.to_string())
    }

    /// apache-avro as the oracle: its reader takes `bytes` as exactly one valid datum of
    /// `schema`, and its writer writes that value back to the same bytes.
    fn read_back(schema: &Schema, bytes: &[u8]) -> Avro {
        let mut rest = bytes;
        let value = GenericDatumReader::builder(schema)
            .build()
            .unwrap()
            .read_value(&mut rest)
            .unwrap();
        assert!(rest.is_empty(), "{} bytes left after the datum", rest.len());
        assert!(value.validate(schema), "{value:?}");
        let mut again = Vec::new();
        GenericDatumWriter::builder(schema)
            .build()
            .unwrap()
            .write_value(&mut again, value.clone())
            .unwrap();
        assert_eq!(again, bytes, "apache-avro writes {value:?} differently");
        value
    }

    fn field(record: &Avro, name: &str) -> Avro {
        let Avro::Record(fields) = record else {
            panic!("not a record: {record:?}")
        };
        fields.iter().find(|(k, _)| k == name).unwrap().1.clone()
    }

    fn union(branch: u32, value: Avro) -> Avro {
        Avro::Union(branch, Box::new(value))
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
        let json = json!({
            "id": "c1", "count": 3, "at": 1692223050044_i64, "status": "CLOSED",
            "tags": [{"name": "a", "ignored": true}], "more_tags": [{"name": "b"}],
            "blob": {"x": [1, 2]}, "unknown_field": "tolerated"
        });
        let value = read_back(&schema, &convert(&schema, &names, &json).unwrap());
        let tag = |name: &str| Avro::Record(vec![("name".into(), Avro::String(name.into()))]);
        assert_eq!(field(&value, "id"), Avro::String("c1".into()));
        assert_eq!(field(&value, "count"), union(1, Avro::Long(3)));
        assert_eq!(field(&value, "at"), Avro::TimestampMillis(1692223050044));
        assert_eq!(field(&value, "status"), Avro::Enum(1, "CLOSED".into()));
        assert_eq!(field(&value, "tags"), Avro::Array(vec![tag("a")]));
        assert_eq!(
            field(&value, "more_tags"),
            union(1, Avro::Array(vec![tag("b")]))
        );
        assert_eq!(
            field(&value, "blob"),
            union(1, Avro::String(r#"{"x":[1,2]}"#.into()))
        );
        assert_eq!(field(&value, "ratio"), Avro::Double(0.5));
    }

    #[test]
    fn absent_and_null_optionals_become_null_or_their_default() {
        let (schema, names) = schema(CASE);
        let json = json!({"id": "c1", "count": null, "at": 1, "status": "OPEN", "tags": []});
        let value = read_back(&schema, &convert(&schema, &names, &json).unwrap());
        assert_eq!(field(&value, "count"), union(0, Avro::Null));
        assert_eq!(field(&value, "more_tags"), union(0, Avro::Null));
        assert_eq!(field(&value, "blob"), union(0, Avro::Null));
        assert_eq!(field(&value, "ratio"), Avro::Double(0.5));
    }

    #[test]
    fn edge_values_are_valid_avro() {
        let (schema, names) = schema(CASE);
        for json in [
            json!({
                "id": "c1", "count": i64::MIN, "at": i64::MAX, "status": "OPEN", "tags": [],
                "more_tags": [], "blob": {"x": [1, 2.5e-7, "é\u{0}"]}, "ratio": -1e300
            }),
            json!({"id": "", "at": -1, "status": "OPEN", "tags": [], "blob": "s", "ratio": 3}),
            json!({"id": "c", "at": 0, "status": "OPEN", "tags": [], "blob": 12}),
        ] {
            read_back(&schema, &convert(&schema, &names, &json).unwrap());
        }
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
                json!({"id": "c", "at": 1.5, "status": "OPEN", "tags": []}),
                "at: expected epoch milliseconds (an integer), found a number",
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
                json!({"id": "c", "at": 1, "status": "OPEN", "tags": {}}),
                "tags: expected an array, found an object",
            ),
            (
                json!({"id": "c", "at": 1, "status": "OPEN", "tags": [], "count": "3"}),
                "count: expected a long (an integer), found a string",
            ),
            (
                json!({"id": "c", "at": 1, "status": "OPEN", "tags": [], "more_tags": [{"name": 1}]}),
                "more_tags[0].name: expected a string, found a number",
            ),
            (json!([1]), "expected an object, found an array"),
        ];
        for (json, expected) in cases {
            let message = convert(&schema, &names, &json).unwrap_err();
            assert!(message.starts_with(expected), "{json}: {message}");
        }
    }

    const WIDE: &str = r#"{"type": "record", "name": "W", "fields": [
        {"name": "i", "type": ["null", "int"], "default": null},
        {"name": "f", "type": ["null", "float", "string"], "default": null},
        {"name": "b", "type": ["boolean", "bytes"], "default": true},
        {"name": "u", "type": ["string", "long", {"type": "array", "items": "long"}], "default": "d"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"], "default": "B"}, "default": "A"},
        {"name": "n", "type": "null", "default": null},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}, "default": 0},
        {"name": "r", "type": ["null", "W"], "default": null}
    ]}"#;

    #[test]
    fn unions_take_the_first_branch_that_fits_and_defaults_the_first_branch() {
        let (schema, names) = schema(WIDE);
        let read = |json: Json| read_back(&schema, &convert(&schema, &names, &json).unwrap());

        let defaults = read(json!({}));
        assert_eq!(field(&defaults, "i"), union(0, Avro::Null));
        assert_eq!(field(&defaults, "b"), union(0, Avro::Boolean(true)));
        assert_eq!(field(&defaults, "u"), union(0, Avro::String("d".into())));
        assert_eq!(field(&defaults, "e"), Avro::Enum(0, "A".into()));
        assert_eq!(field(&defaults, "n"), Avro::Null);
        assert_eq!(field(&defaults, "t"), Avro::TimestampMicros(0));

        let set = read(json!({"i": 7, "f": 1.5, "b": false, "u": 5, "e": "B", "r": {"u": [1, 2]}}));
        assert_eq!(field(&set, "i"), union(1, Avro::Int(7)));
        assert_eq!(field(&set, "f"), union(1, Avro::Float(1.5)));
        assert_eq!(field(&set, "b"), union(0, Avro::Boolean(false)));
        assert_eq!(field(&set, "u"), union(1, Avro::Long(5)));
        let Avro::Union(1, inner) = field(&set, "r") else {
            panic!()
        };
        assert_eq!(
            field(&inner, "u"),
            union(2, Avro::Array(vec![Avro::Long(1), Avro::Long(2)]))
        );

        let strings = read(json!({"f": "x", "b": "bytes", "u": "s", "e": "Z", "t": 9}));
        assert_eq!(field(&strings, "f"), union(2, Avro::String("x".into())));
        assert_eq!(
            field(&strings, "b"),
            union(1, Avro::Bytes(b"bytes".to_vec()))
        );
        assert_eq!(
            field(&strings, "e"),
            Avro::Enum(1, "B".into()),
            "the enum's default"
        );
        assert_eq!(field(&strings, "t"), Avro::TimestampMicros(9));

        for (json, expected) in [
            (json!({"i": 4_294_967_296_i64}), "i: out of int range"),
            (
                json!({"f": true}),
                "f: a boolean fits no branch of the union",
            ),
            (
                json!({"u": [1, "x"]}),
                "u: an array fits no branch of the union",
            ),
            (json!({"n": 1}), "n: expected null, found a number"),
            (
                json!({"r": {"r": {"i": "x"}}}),
                "r.r.i: expected an int (an integer), found a string",
            ),
        ] {
            assert_eq!(
                convert(&schema, &names, &json).unwrap_err(),
                expected,
                "{json}"
            );
        }
    }

    #[test]
    fn maps_write_their_entries() {
        // apache-avro writes a map in hash order, so compare what its reader sees.
        let (schema, names) = schema(
            r#"{"type": "record", "name": "M", "fields": [
                {"name": "m", "type": {"type": "map", "values": ["null", "long"]}}]}"#,
        );
        let json = json!({"m": {"a": 1, "b": null, "c": 3}});
        let bytes = convert(&schema, &names, &json).unwrap();
        let decoded = crate::pipeline::schema::decode::datum(&schema, &bytes).unwrap();
        assert_eq!(decoded, json);
        let error = convert(&schema, &names, &json!({"m": {"a": "x"}})).unwrap_err();
        assert_eq!(
            error,
            r#"m["a"]: expected a long (an integer), found a string"#
        );
    }
}
