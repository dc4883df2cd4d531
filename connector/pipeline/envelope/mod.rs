//! Normalization: the vendor's two envelope styles become one [`Event`].
//!
//! - RiskOS: `{event_id, event_at, event_type, data, ...}`, `event_at` RFC 3339 with up to nine
//!   fractional digits.
//! - Request token: `{request_token, timestamp, type, description, data}`, `timestamp` in epoch
//!   milliseconds.
//!
//! Top-level fields neither envelope defines (RiskOS may echo `customer_metadata`) are kept in
//! [`Event::extra`].
//!
//! The id becomes the Kafka key and the id and type become record headers, so both are
//! checked here, not only for presence: an id must be printable text without surrounding
//! whitespace, a type must hold no control character, and neither may exceed its byte cap
//! ([`MAX_EVENT_ID_BYTES`], [`MAX_EVENT_TYPE_BYTES`]). The body is parsed by [`json`], which
//! refuses a key repeated in any object.

pub mod json;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Longest accepted `event_id` / `request_token`, in UTF-8 bytes: it is the Kafka key and a
/// record header.
pub const MAX_EVENT_ID_BYTES: usize = 256;

/// Longest accepted `event_type` / `type`, in UTF-8 bytes: it is a record header.
pub const MAX_EVENT_TYPE_BYTES: usize = 256;

/// Which envelope a webhook arrived in; carried into the record and a Kafka header. In the
/// config (`endpoints.envelopes`) they are `event` and `request_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvelopeKind {
    /// `{event_id, event_at, event_type, data}`.
    Event,
    /// `{request_token, timestamp, type, description, data}`.
    RequestToken,
}

impl EnvelopeKind {
    /// The Avro enum symbol and header value.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvelopeKind::Event => "EVENT",
            EnvelopeKind::RequestToken => "REQUEST_TOKEN",
        }
    }

    /// The name in the config (`endpoints.envelopes`) and in messages.
    pub fn config_name(self) -> &'static str {
        match self {
            EnvelopeKind::Event => "event",
            EnvelopeKind::RequestToken => "request_token",
        }
    }
}

/// One webhook, whatever envelope it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `event_id` or `request_token`: the Kafka key.
    pub id: String,
    /// `event_type` or `type`, exactly as sent (e.g. `create:cases`).
    pub event_type: String,
    /// `event_at` or `timestamp`, in epoch milliseconds.
    pub occurred_at_ms: i64,
    /// The envelope style.
    pub envelope: EnvelopeKind,
    /// Request-token `description`; RiskOS events have none.
    pub description: Option<String>,
    /// The `data` object (JSON `null` when absent).
    pub data: Value,
    /// Top-level fields neither envelope defines, e.g. `customer_metadata`.
    pub extra: Map<String, Value>,
}

/// Why a body is not a usable envelope; each message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The body parsed as JSON but is not an object.
    #[error("body must be a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// Neither envelope's identifying fields are present.
    #[error(
        "body is neither a RiskOS event (event_id, event_type, event_at, data) \
         nor a request-token event (request_token, type, timestamp, data)"
    )]
    UnknownEnvelope,
    /// A required field is absent or null.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}, found {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// An id or type is the empty string.
    #[error("field `{0}` must not be empty")]
    Empty(&'static str),
    /// An id of only whitespace, or with whitespace before or after it.
    #[error("field `{0}` must not be blank or start or end with whitespace")]
    Whitespace(&'static str),
    /// An id or type holding a control character (Unicode `Cc`).
    #[error("field `{0}` must not contain control characters")]
    ControlCharacter(&'static str),
    /// An id or type over its byte cap.
    #[error("field `{field}` must be at most {max} bytes, found {found}")]
    TooLong {
        field: &'static str,
        max: usize,
        found: usize,
    },
    /// A time field does not parse.
    #[error("field `{field}` is not a valid time: {reason}")]
    BadTime { field: &'static str, reason: String },
}

impl EnvelopeError {
    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            EnvelopeError::NotAnObject(_) | EnvelopeError::UnknownEnvelope => None,
            EnvelopeError::Missing(f)
            | EnvelopeError::Empty(f)
            | EnvelopeError::Whitespace(f)
            | EnvelopeError::ControlCharacter(f) => Some(f),
            EnvelopeError::WrongType { field, .. }
            | EnvelopeError::BadTime { field, .. }
            | EnvelopeError::TooLong { field, .. } => Some(field),
        }
    }
}

/// Normalizes a parsed webhook body. Takes the value by ownership so `data` moves, not copies.
pub fn normalize(body: Value) -> Result<Event, EnvelopeError> {
    let Value::Object(mut object) = body else {
        return Err(EnvelopeError::NotAnObject(json_type(&body)));
    };
    let has = |key: &str| object.contains_key(key);
    let envelope = if has("event_id") || has("event_type") || has("event_at") {
        EnvelopeKind::Event
    } else if has("request_token") || (has("type") && has("timestamp")) {
        EnvelopeKind::RequestToken
    } else {
        return Err(EnvelopeError::UnknownEnvelope);
    };

    let (id_key, type_key, time_key) = match envelope {
        EnvelopeKind::Event => ("event_id", "event_type", "event_at"),
        EnvelopeKind::RequestToken => ("request_token", "type", "timestamp"),
    };
    let id = take_non_empty_string(&mut object, id_key)?;
    check_text(id_key, &id, MAX_EVENT_ID_BYTES, true)?;
    let event_type = take_non_empty_string(&mut object, type_key)?;
    check_text(type_key, &event_type, MAX_EVENT_TYPE_BYTES, false)?;
    let time = object.remove(time_key).filter(|v| !v.is_null());
    let time = time.ok_or(EnvelopeError::Missing(time_key))?;
    let occurred_at_ms = match envelope {
        EnvelopeKind::Event => rfc3339_millis(time_key, &time)?,
        EnvelopeKind::RequestToken => epoch_millis(time_key, &time)?,
    };
    let description = match envelope {
        EnvelopeKind::Event => None,
        EnvelopeKind::RequestToken => match object.remove("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => return Err(wrong_type("description", "a string", &other)),
        },
    };
    let data = object.remove("data").unwrap_or(Value::Null);
    // What is left are fields neither envelope defines.
    Ok(Event {
        id,
        event_type,
        occurred_at_ms,
        envelope,
        description,
        data,
        extra: object,
    })
}

fn take_non_empty_string(
    object: &mut Map<String, Value>,
    key: &'static str,
) -> Result<String, EnvelopeError> {
    match object.remove(key) {
        None | Some(Value::Null) => Err(EnvelopeError::Missing(key)),
        Some(Value::String(s)) if s.is_empty() => Err(EnvelopeError::Empty(key)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(wrong_type(key, "a string", &other)),
    }
}

/// An id (`trimmed`: no surrounding whitespace) or type: no control characters, at most `max`
/// bytes. The length is checked first, so a huge value costs no scan.
fn check_text(
    field: &'static str,
    text: &str,
    max: usize,
    trimmed: bool,
) -> Result<(), EnvelopeError> {
    if text.len() > max {
        return Err(EnvelopeError::TooLong {
            field,
            max,
            found: text.len(),
        });
    }
    if text.chars().any(char::is_control) {
        return Err(EnvelopeError::ControlCharacter(field));
    }
    if trimmed && text.trim() != text {
        return Err(EnvelopeError::Whitespace(field));
    }
    Ok(())
}

fn rfc3339_millis(field: &'static str, value: &Value) -> Result<i64, EnvelopeError> {
    let Value::String(text) = value else {
        return Err(wrong_type(field, "an RFC 3339 string", value));
    };
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| EnvelopeError::BadTime {
        field,
        reason: e.to_string(),
    })?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).map_err(|_| {
        EnvelopeError::BadTime {
            field,
            reason: "out of range".into(),
        }
    })
}

fn epoch_millis(field: &'static str, value: &Value) -> Result<i64, EnvelopeError> {
    let millis = value
        .as_i64()
        .ok_or_else(|| wrong_type(field, "an integer of epoch milliseconds", value))?;
    if millis < 0 {
        return Err(EnvelopeError::BadTime {
            field,
            reason: "epoch milliseconds must not be negative".into(),
        });
    }
    Ok(millis)
}

fn wrong_type(field: &'static str, expected: &'static str, found: &Value) -> EnvelopeError {
    EnvelopeError::WrongType {
        field,
        expected,
        found: json_type(found),
    }
}

/// The JSON type name used in error messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn riskos_fixture_with_nanosecond_time_normalizes() {
        let event = normalize(fixture("riskos.evaluation_completed.docv.json")).unwrap();
        assert_eq!(event.id, "336ccd2a-b3a8-49a8-b2cc-89a4ae90feeb");
        assert_eq!(event.event_type, "evaluation_completed");
        assert_eq!(event.envelope, EnvelopeKind::Event);
        // 2025-08-27T16:16:23.104744158Z, truncated to milliseconds.
        assert_eq!(event.occurred_at_ms, 1_756_311_383_104);
        assert_eq!(event.data["decision"], "ACCEPT");
        assert!(event.extra.is_empty());
        assert_eq!(event.description, None);
    }

    #[test]
    fn every_fixture_normalizes() {
        let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let event = normalize(fixture(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected = if name.starts_with("request_token.") {
                EnvelopeKind::RequestToken
            } else {
                EnvelopeKind::Event
            };
            assert_eq!(event.envelope, expected, "{name}");
            assert!(event.data.is_object(), "{name}");
            seen += 1;
        }
        assert_eq!(seen, 8);
    }

    #[test]
    fn request_token_fixture_normalizes() {
        let event = normalize(fixture("request_token.create_cases.json")).unwrap();
        assert_eq!(event.id, ":request_token");
        assert_eq!(event.event_type, "create:cases");
        assert_eq!(event.occurred_at_ms, 1_692_223_050_044);
        assert_eq!(
            event.description.as_deref(),
            Some("Notify on case creation")
        );
        assert_eq!(event.data["status"], "Pending Review");
    }

    #[test]
    fn customer_metadata_is_kept() {
        let event = normalize(json!({
            "event_id": "e1", "event_type": "evaluation_completed",
            "event_at": "2025-08-27T16:16:23Z", "data": {},
            "customer_metadata": {"tenant": "acme"}
        }))
        .unwrap();
        assert_eq!(event.extra["customer_metadata"], json!({"tenant": "acme"}));
    }

    #[test]
    fn offsets_and_nanoseconds_parse() {
        let at = |s: &str| {
            normalize(json!({"event_id": "e", "event_type": "t", "event_at": s}))
                .unwrap()
                .occurred_at_ms
        };
        assert_eq!(at("1970-01-01T00:00:01.999999999Z"), 1_999);
        assert_eq!(at("1970-01-01T01:00:00+01:00"), 0);
        assert_eq!(at("1970-01-01T00:00:00.5Z"), 500);
    }

    #[test]
    fn rejections_name_the_field() {
        let cases = [
            (json!([1]), "must be a JSON object"),
            (json!({"hello": 1}), "neither a RiskOS event"),
            (
                json!({"event_type": "t", "event_at": "2025-01-01T00:00:00Z"}),
                "missing field `event_id`",
            ),
            (
                json!({"event_id": "", "event_type": "t", "event_at": "2025-01-01T00:00:00Z"}),
                "`event_id` must not be empty",
            ),
            (
                json!({"event_id": 7, "event_type": "t", "event_at": "2025-01-01T00:00:00Z"}),
                "`event_id` must be a string, found a number",
            ),
            (
                json!({"event_id": "e", "event_at": "2025-01-01T00:00:00Z"}),
                "missing field `event_type`",
            ),
            (
                json!({"event_id": "e", "event_type": "t"}),
                "missing field `event_at`",
            ),
            (
                json!({"event_id": "e", "event_type": "t", "event_at": "yesterday"}),
                "`event_at` is not a valid time",
            ),
            (
                json!({"request_token": "r", "type": "create:cases", "timestamp": "1692223050044"}),
                "`timestamp` must be an integer of epoch milliseconds, found a string",
            ),
            (
                json!({"request_token": "r", "type": "create:cases", "timestamp": -5}),
                "`timestamp` is not a valid time",
            ),
            (
                json!({"request_token": "r", "timestamp": 1}),
                "missing field `type`",
            ),
        ];
        for (body, expected) in cases {
            let message = normalize(body.clone()).unwrap_err().to_string();
            assert!(message.contains(expected), "{body}: {message}");
        }
    }

    #[test]
    fn ids_and_types_that_would_make_bad_keys_or_headers_are_refused() {
        let event = |id: &str, event_type: &str| {
            normalize(json!({"event_id": id, "event_type": event_type,
                             "event_at": "2025-01-01T00:00:00Z"}))
        };
        let token = |id: &str, event_type: &str| {
            normalize(json!({"request_token": id, "type": event_type, "timestamp": 1}))
        };
        let long = "x".repeat(MAX_EVENT_ID_BYTES + 1);
        // 86 three-byte characters: 258 bytes, fewer than 256 characters.
        let long_in_bytes = "\u{20ac}".repeat(86);
        let whitespace = EnvelopeError::Whitespace("event_id");
        let control = EnvelopeError::ControlCharacter("event_id");
        let cases = [
            (event("   ", "t"), whitespace.clone()),
            (event("\u{a0}", "t"), whitespace.clone()),
            (event(" e1", "t"), whitespace.clone()),
            (event("e1\u{2003}", "t"), whitespace.clone()),
            (event("e\n1", "t"), control.clone()),
            (event("\t", "t"), control.clone()),
            (event("e\u{7f}", "t"), control.clone()),
            (event("e\u{85}", "t"), control),
            (
                event(&long, "t"),
                EnvelopeError::TooLong {
                    field: "event_id",
                    max: 256,
                    found: 257,
                },
            ),
            (
                event(&long_in_bytes, "t"),
                EnvelopeError::TooLong {
                    field: "event_id",
                    max: 256,
                    found: 258,
                },
            ),
            (
                event("e1", "evaluation\u{0}completed"),
                EnvelopeError::ControlCharacter("event_type"),
            ),
            (
                event("e1", &long),
                EnvelopeError::TooLong {
                    field: "event_type",
                    max: 256,
                    found: 257,
                },
            ),
            (
                token(" r", "create:cases"),
                EnvelopeError::Whitespace("request_token"),
            ),
            (
                token("r\r", "create:cases"),
                EnvelopeError::ControlCharacter("request_token"),
            ),
            (
                token("r", "create:cases\n"),
                EnvelopeError::ControlCharacter("type"),
            ),
            (
                token("r", &long),
                EnvelopeError::TooLong {
                    field: "type",
                    max: 256,
                    found: 257,
                },
            ),
        ];
        for (i, (result, expected)) in cases.into_iter().enumerate() {
            let error = result.unwrap_err();
            assert_eq!(error, expected, "case {i}");
            assert!(
                error.to_string().contains(error.field().unwrap()),
                "case {i}"
            );
        }
        // At the caps, inner spaces in ids, and spaces anywhere in types are fine.
        let at_cap = "x".repeat(MAX_EVENT_ID_BYTES);
        assert_eq!(event(&at_cap, &at_cap).unwrap().id, at_cap);
        assert!(event("e 1", " case closure ").is_ok());
        assert!(event("\u{e9}v\u{e9}nement-1", "t").is_ok());
    }
}
