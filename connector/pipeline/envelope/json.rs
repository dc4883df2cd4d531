//! The body parser: JSON text → [`serde_json::Value`] in one pass, refusing ambiguous JSON.
//!
//! RFC 8259 §4 leaves an object with a repeated name undefined ("names within an object
//! SHOULD be unique"), and parsers disagree: serde_json keeps the last value, others the first.
//! A body with `{"event_id": "a", …, "event_id": "b"}` would then be keyed `b` on Kafka while
//! its `raw` field, and any consumer reading it with another parser, says `a`. So a repeated
//! key in any object of the body, at any depth, is an error naming the key's path.
//!
//! The tree is built exactly as `serde_json::from_str::<Value>` builds it (the same
//! deserializer, so the same recursion limit, error positions and `float_roundtrip` numbers;
//! the same visitor calls), except that a map entry whose key is already present fails instead
//! of replacing the earlier value, and that keys are taken literally (serde_json's `Value`
//! would turn an object keyed `$serde_json::private::RawValue` into the JSON text of its value,
//! an artefact of its `raw_value` feature that a webhook body must not trigger). No second pass:
//! the check is the map insertion itself.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as _;
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// True when `body` nests arrays/objects deeper than `max` (`{}` is depth 1). Brackets inside
/// strings do not count. Linear, allocation-free, and run before the JSON parser.
pub fn too_deep(body: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Longest key text quoted in a path; longer keys are cut (a body's key can be megabytes, the
/// path goes into a log line and a Kafka header).
const MAX_PATH_KEY_CHARS: usize = 64;

/// Why a body is not acceptable JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON, trailing characters, or nested deeper than serde_json's recursion limit.
    #[error(transparent)]
    Syntax(serde_json::Error),
    /// An object repeats a key.
    #[error("duplicate key `{path}` at line {line} column {column}")]
    DuplicateKey {
        /// Where: `data.items[2].id` (the repeated key last).
        path: String,
        /// Position of the end of the repeated entry, as serde_json counts (1-based).
        line: usize,
        /// Column of that position.
        column: usize,
    },
}

/// Parses `text` like `serde_json::from_str::<Value>`, but refuses a repeated key in any
/// object.
pub fn from_str(text: &str) -> Result<Value, JsonError> {
    let trail = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = Strict { trail: &trail }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|error| match trail.into_inner() {
        Some(segments) => JsonError::DuplicateKey {
            path: render(&segments),
            line: error.line(),
            column: error.column(),
        },
        None => JsonError::Syntax(error),
    })
}

/// One step of a path, recorded innermost first while an error unwinds.
enum Segment {
    Key(String),
    Index(usize),
}

fn render(innermost_first: &[Segment]) -> String {
    let mut out = String::new();
    for segment in innermost_first.iter().rev() {
        match segment {
            Segment::Key(key) if is_plain(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Key(key) => {
                let shown: String = key.chars().take(MAX_PATH_KEY_CHARS).collect();
                let cut = if shown.len() < key.len() { "…" } else { "" };
                out.push_str(&format!("[{shown:?}{cut}]"));
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A key written bare in a path: short, and nothing a path uses or a header cannot carry.
fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_PATH_KEY_CHARS
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '$' | '@'))
}

/// The seed and visitor: serde_json's `Value` visitor, with the duplicate check and a shared
/// slot where the path of a duplicate is gathered (set only on that error, so the happy path
/// pays nothing for it).
#[derive(Clone, Copy)]
struct Strict<'t> {
    trail: &'t RefCell<Option<Vec<Segment>>>,
}

impl Strict<'_> {
    /// Adds `segment` to the path when the error unwinding through here is a duplicate.
    fn unwinding(&self, segment: impl FnOnce() -> Segment) {
        if let Some(trail) = self.trail.borrow_mut().as_mut() {
            trail.push(segment());
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    #[inline]
    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    #[inline]
    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Value, E> {
        Number::deserialize(de::value::I128Deserializer::new(value)).map(Value::Number)
    }

    #[inline]
    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Value, E> {
        Number::deserialize(de::value::U128Deserializer::new(value)).map(Value::Number)
    }

    #[inline]
    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    #[inline]
    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    #[inline]
    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    #[inline]
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    #[inline]
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(error) => {
                    self.unwinding(|| Segment::Index(items.len()));
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match map.next_value_seed(self) {
                Ok(value) => value,
                Err(error) => {
                    self.unwinding(|| Segment::Key(key));
                    return Err(error);
                }
            };
            match object.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(taken) => {
                    *self.trail.borrow_mut() = Some(vec![Segment::Key(taken.key().clone())]);
                    return Err(de::Error::custom("duplicate key"));
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_containers_not_brackets_in_strings() {
        assert!(!too_deep(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(too_deep(br#"{"a":[1,{"b":2}]}"#, 2));
        assert!(!too_deep(br#"{"a":"[[[[[[\"[[[["}"#, 1));
        assert!(!too_deep(b"[][][][]", 1));
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(too_deep(deep.as_bytes(), 64));
        assert!(!too_deep(deep.as_bytes(), 100));
    }
    use proptest::prelude::*;

    fn duplicate(text: &str) -> String {
        match from_str(text) {
            Err(JsonError::DuplicateKey { path, .. }) => path,
            other => panic!("{text}: expected a duplicate key, got {other:?}"),
        }
    }

    #[test]
    fn a_repeated_key_at_any_depth_is_refused_naming_its_path() {
        assert_eq!(
            duplicate(r#"{"event_id":"a","event_type":"t","event_id":"b"}"#),
            "event_id"
        );
        assert_eq!(
            duplicate(r#"{"event_id":"a","data":{"x":1,"y":{"z":1,"z":1}}}"#),
            "data.y.z"
        );
        assert_eq!(
            duplicate(r#"{"data":{"items":[{"id":1},{"id":2,"id":3}]}}"#),
            "data.items[1].id"
        );
        assert_eq!(duplicate(r#"[0,[1,{"k":{},"k":[]}]]"#), "[1][1].k");
        assert_eq!(duplicate(r#"{"data":{"a.b":1,"a.b":2}}"#), r#"data["a.b"]"#);
        // The same key in two different objects is fine.
        assert!(from_str(r#"{"a":{"id":1},"b":{"id":1},"id":1}"#).is_ok());
    }

    #[test]
    fn the_error_says_where_and_the_path_of_a_huge_key_is_cut() {
        let error = from_str("{\"a\":1,\n\"a\":2}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "duplicate key `a` at line 2 column 6",
            "{error:?}"
        );
        let long = "k".repeat(10_000);
        let path = duplicate(&format!(r#"{{"{long}":1,"{long}":2}}"#));
        assert!(path.len() < 100, "{path}");
        assert!(path.ends_with("…\"]") || path.ends_with("\"…]"), "{path}");
    }

    #[test]
    fn keys_are_taken_literally() {
        // serde_json's Value (with axum's `raw_value` feature) would re-parse the string.
        let text = r#"{"$serde_json::private::RawValue":"[1,2]"}"#;
        let value = from_str(text).unwrap();
        assert_eq!(value["$serde_json::private::RawValue"], "[1,2]");
    }

    /// What `serde_json::from_str::<Value>` gives, as comparable text.
    fn reference(text: &str) -> Result<Value, String> {
        serde_json::from_str::<Value>(text).map_err(|e| e.to_string())
    }

    fn strict(text: &str) -> Result<Value, String> {
        from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_errors_and_the_recursion_limit_match_serde_json() {
        let cases = [
            "0",
            "-0",
            "-0.0",
            "0.1",
            "1e2",
            "1E-2",
            "1.7976931348623157e308",
            "5e-324",
            "2.2250738585072011e-308",
            "0.30000000000000004",
            "123456789012345678901234567890",
            "9223372036854775807",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "1e400",
            "-1e400",
            "01",
            "1.",
            "{\"a\":1,}",
            "[1,]",
            "{\"a\" 1}",
            "\"\\ud800\"",
            "\"\\u00e9\\n\"",
            "{} x",
            "",
            "   ",
            "nul",
        ];
        for text in cases {
            assert_eq!(strict(text), reference(text), "{text}");
        }
        for depth in [126, 127, 128, 129, 200, 10_000] {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(strict(&text), reference(&text), "arrays, depth {depth}");
            let text = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            assert_eq!(strict(&text), reference(&text), "objects, depth {depth}");
        }
    }

    #[test]
    fn every_fixture_parses_as_serde_json_parses_it() {
        let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert_eq!(strict(&text), reference(&text));
        }
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z\\u{e9}\\u{1f600}\"\\\\\\n]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]{0,2}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_without_repeated_keys_parses_exactly_as_serde_json(value in json()) {
            for text in [value.to_string(), serde_json::to_string_pretty(&value).unwrap()] {
                let parsed = from_str(&text).unwrap();
                prop_assert_eq!(&parsed, &value);
                prop_assert_eq!(Ok(parsed), reference(&text));
            }
        }

        #[test]
        fn a_number_parses_to_the_same_value(text in "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?") {
            prop_assert_eq!(strict(&text), reference(&text));
        }
    }
}
