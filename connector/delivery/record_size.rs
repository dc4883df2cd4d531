//! The largest record the connector can produce, known at start-up from `http.max_body_bytes`,
//! so that every body the listener accepts can be stored somewhere.
//!
//! An event record's value holds the body twice: `raw` (the bytes as received, at most
//! `max_body_bytes`) and the typed fields decoded from it, which are usually smaller than the
//! JSON they come from but can be larger for some schemas (`[1,1,1]` as an array of doubles is
//! 8 bytes per 2 characters). So the value is allowed **twice the body plus a margin**; a
//! datum that would be larger is not produced to its topic but quarantined raw with reason
//! `record_too_large` (the body alone always fits). Keys and header values the connector
//! writes are bounded too (ids and types at most [`MAX_ID_BYTES`], the quarantine error at
//! most [`MAX_ERROR_HEADER_BYTES`]).
//!
//! The producer's `message.max.bytes` and the `max.message.bytes` of the topics the connector
//! creates are set to [`kafka_message_bytes`]; start-up refuses a `message.max.bytes` the user
//! set below it. A topic managed elsewhere with a smaller limit makes the broker refuse the
//! record: that too is quarantined raw (`record_too_large`) and answered 200.

/// Longest event id (the Kafka key) and event type (a header) accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Longest `quarantine_error` header value; longer messages are cut.
pub const MAX_ERROR_HEADER_BYTES: usize = 1024;

/// Every header the connector writes, names and values together, stays under this.
const MAX_HEADERS_BYTES: usize = 8 * 1024;

/// Room for the wire prefix, the Avro framing and the fixed fields of the envelope.
const VALUE_MARGIN: usize = 64 * 1024;

/// librdkafka's and the broker's per-record and per-batch framing.
const FRAMING_BYTES: usize = 1024;

/// librdkafka's own default `message.max.bytes`; never set lower than this.
const LIBRDKAFKA_DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Largest record value (wire prefix + datum) produced to an event topic.
pub fn max_value_bytes(max_body_bytes: usize) -> usize {
    max_body_bytes
        .saturating_mul(2)
        .saturating_add(VALUE_MARGIN)
}

/// Largest record (key, value and headers) produced to any topic, quarantine included.
pub fn max_record_bytes(max_body_bytes: usize) -> usize {
    max_value_bytes(max_body_bytes) + MAX_ID_BYTES + MAX_HEADERS_BYTES
}

/// What the producer's `message.max.bytes` and the created topics' `max.message.bytes` are
/// set to.
pub fn kafka_message_bytes(max_body_bytes: usize) -> usize {
    (max_record_bytes(max_body_bytes) + FRAMING_BYTES).max(LIBRDKAFKA_DEFAULT_MESSAGE_MAX_BYTES)
}

/// `text` cut to at most `max` bytes at a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_at_the_limit_and_its_quarantine_record_fit() {
        for body in [1 << 20, 4 << 20, 1024] {
            let limit = kafka_message_bytes(body);
            assert!(max_value_bytes(body) + MAX_ID_BYTES + MAX_HEADERS_BYTES < limit);
            // The quarantine record: the body, the id as key, the headers.
            assert!(body + MAX_ID_BYTES + MAX_HEADERS_BYTES < limit);
            assert!(limit >= LIBRDKAFKA_DEFAULT_MESSAGE_MAX_BYTES);
        }
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
