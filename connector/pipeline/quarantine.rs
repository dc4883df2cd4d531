//! Quarantine: what a body that could not be stored on its topic carries with it to the
//! quarantine topic, and what its sender is told ([`Quarantined::new`], the one rule).
//!
//! The value is the request body, byte for byte. Headers say why, so an operator can fix the
//! schema and run `riskos-connector replay --from-quarantine`:
//!
//! | header | value |
//! |---|---|
//! | `quarantine_reason` | `invalid_json`, `duplicate_key`, `invalid_envelope`, `envelope_not_accepted`, `too_deep`, `schema_mismatch`, `record_too_large` |
//! | `quarantine_error` | the error message (at most 1 KiB) |
//! | `quarantine_field` | the failing field, when known (`data.eval_id`) |
//! | `received_at` | epoch milliseconds when the connector received the body |
//! | `event_id`, `event_type` | when the envelope was readable |
//! | `endpoint` | the endpoint that received the body |

use super::PrepareError;
use crate::delivery;
use crate::delivery::record_size::MAX_ERROR_HEADER_BYTES;

/// How the sender is answered once its body is kept in quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 `quarantined`: a well-formed envelope our schemas or Kafka's size limit do not fit.
    /// It is stored; a schema fix (or a larger limit) plus a replay recovers it.
    Accepted,
    /// 400: the sender's error (not JSON, ambiguous, not an envelope, too deep). The bytes are
    /// kept all the same, for whoever must find out what was sent.
    Rejected,
}

/// A body that goes to quarantine: why, what the sender is told, and the record's key and
/// headers — each derived here, once.
#[derive(Debug)]
pub struct Quarantined {
    /// Why it could not be stored on its topic.
    pub error: PrepareError,
    /// What the sender is told.
    pub answer: Answer,
    /// The event id, when the envelope was readable (the record's key).
    pub key: Option<String>,
    /// The record's headers (reason, error, field, receive time, id and type when known).
    pub headers: Vec<(&'static str, String)>,
}

impl Quarantined {
    /// Decides the answer and builds the record's key and headers.
    pub fn new(error: PrepareError, received_at_ms: i64) -> Self {
        // The one rule. An `Accepted` body must have a key: both variants carry the event id.
        let answer = match &error {
            PrepareError::Schema { .. } | PrepareError::RecordTooLarge { .. } => Answer::Accepted,
            PrepareError::Json(_)
            | PrepareError::DuplicateKey(_)
            | PrepareError::Envelope(_)
            | PrepareError::EnvelopeNotAccepted { .. }
            | PrepareError::TooDeep(_) => Answer::Rejected,
        };
        Self {
            key: error.event().map(|(id, _)| id.to_string()),
            headers: headers(&error, received_at_ms),
            answer,
            error,
        }
    }

    /// An event Kafka refused as too large (`record_too_large`), at once or when the spool's
    /// forwarder sent it; `detail` says how.
    pub fn too_large(
        event_id: &str,
        event_type: &str,
        detail: String,
        received_at_ms: i64,
    ) -> Self {
        let error = PrepareError::RecordTooLarge {
            detail,
            event_id: event_id.to_string(),
            event_type: event_type.to_string(),
        };
        Self::new(error, received_at_ms)
    }

    /// What delivery stores: the body, raw, on `topic`.
    pub(super) fn record<'a>(&'a self, topic: &'a str, body: &'a [u8]) -> delivery::Record<'a> {
        delivery::Record {
            topic,
            key: self.key.as_deref(),
            partition_key: None,
            value: body,
            headers: self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect(),
            occurred_at_ms: None,
        }
    }
}

/// Header carrying the reason class.
pub(crate) const REASON_HEADER: &str = "quarantine_reason";
/// Header carrying the receive time in epoch milliseconds.
pub(crate) const RECEIVED_AT_HEADER: &str = "received_at";

/// The headers of a quarantined record.
pub(crate) fn headers(error: &PrepareError, received_at_ms: i64) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (REASON_HEADER, error.reason().to_string()),
        (
            "quarantine_error",
            crate::delivery::record_size::truncate(&error.to_string(), MAX_ERROR_HEADER_BYTES)
                .to_string(),
        ),
        (RECEIVED_AT_HEADER, received_at_ms.to_string()),
    ];
    if let Some(field) = error.field() {
        headers.push(("quarantine_field", field));
    }
    if let Some((id, event_type)) = error.event() {
        headers.push(("event_id", id.to_string()));
        headers.push(("event_type", event_type.to_string()));
    }
    headers
}
