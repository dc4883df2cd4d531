//! Quarantine: what a body that could not be prepared carries with it to the quarantine topic.
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
use crate::record_size::MAX_ERROR_HEADER_BYTES;

/// Header carrying the reason class.
pub const REASON_HEADER: &str = "quarantine_reason";
/// Header carrying the receive time in epoch milliseconds.
pub const RECEIVED_AT_HEADER: &str = "received_at";

/// The headers of a quarantined record.
pub fn headers(error: &PrepareError, received_at_ms: i64) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (REASON_HEADER, error.reason().to_string()),
        (
            "quarantine_error",
            crate::record_size::truncate(&error.to_string(), MAX_ERROR_HEADER_BYTES).to_string(),
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
