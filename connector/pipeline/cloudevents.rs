//! The CloudEvents Kafka protocol binding (CloudEvents 1.0), binary content mode, for the
//! endpoints that opt in (`endpoints.cloudevents`).
//!
//! In binary mode the record stays what it is — key, value and the connector's own headers
//! unchanged — and the event's attributes ride in headers beside them, so a CloudEvents
//! consumer (Knative's Kafka source, the CloudEvents SDKs) reads the record as an event whose
//! `data` is the record's value, byte for byte, and a consumer that knows nothing of
//! CloudEvents is not affected. The headers, named as the binding names them:
//!
//! | header | attribute | value |
//! | --- | --- | --- |
//! | `ce_specversion` | `specversion` | `1.0` |
//! | `ce_id` | `id` | the event id (also the record's key) |
//! | `ce_source` | `source` | `/riskos-connector/endpoints/<endpoint name>` |
//! | `ce_type` | `type` | the event type as sent (also the `event_type` header) |
//! | `ce_time` | `time` | the event's own time (`occurred_at`), RFC 3339, UTC, milliseconds |
//! | `content-type` | `datacontenttype` | `application/avro; encoding=confluent` or `application/avro; encoding=single-object` |
//!
//! - `source` is a URI-reference naming the endpoint: one endpoint is one sender environment
//!   (RiskOS Sandbox, Production, Alloy), within which the sender's event ids are unique, so
//!   `source` + `id` identifies an event as CloudEvents requires. It is relative (no host): the
//!   connector does not know the name it is reached by, and a deployment renaming its host
//!   must not change its events' identity.
//! - `datacontenttype` is `application/avro`, the media type in common use for Avro data, with
//!   an `encoding` parameter naming the framing (the value of `schemas.encoding`): the value is
//!   not a bare Avro datum but one with a header a reader needs to find the writer schema —
//!   Confluent's wire format (magic byte 0 and the 4-byte Schema Registry id: read it with a
//!   registry-aware deserializer) or Avro's single-object encoding (`C3 01` and the schema's
//!   8-byte CRC-64-AVRO fingerprint, readable with Avro's own `BinaryMessageDecoder`).
//! - No `ce_time` when the event time cannot be written as RFC 3339 (a year outside
//!   0000–9999): `time` is optional, and a wrong one is worse than none.
//! - Quarantined records carry none of these: they are bodies that did not become events of a
//!   known type (not JSON, not an envelope, not fitting their schema), not CloudEvents.

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::pipeline::schema::config::Encoding;

/// The CloudEvents version the headers follow.
pub(crate) const SPECVERSION: &str = "1.0";

/// The prefix of the endpoint's `source`: `/riskos-connector/endpoints/<name>`.
pub(crate) const SOURCE_PREFIX: &str = "/riskos-connector/endpoints/";

/// An endpoint's CloudEvents binding: what is the same for all its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `ce_source`: the endpoint.
    pub source: String,
    /// `content-type`: the value's encoding.
    pub content_type: &'static str,
}

/// The datacontenttype of a value in `encoding`.
pub(crate) fn content_type(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Confluent => "application/avro; encoding=confluent",
        Encoding::SingleObject => "application/avro; encoding=single-object",
    }
}

/// The source of the endpoint named `endpoint` (names are URI-safe: `[a-z0-9_-]`).
pub(crate) fn source(endpoint: &str) -> String {
    format!("{SOURCE_PREFIX}{endpoint}")
}

/// RFC 3339, UTC, milliseconds: `2024-05-01T12:00:00.123Z`.
const RFC3339_MS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `occurred_at_ms` (epoch ms) as RFC 3339 in UTC with milliseconds; `None` outside the years
/// RFC 3339 can write (0000–9999).
pub(crate) fn time(occurred_at_ms: i64) -> Option<String> {
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(occurred_at_ms) * 1_000_000).ok()?;
    if !(0..=9999).contains(&at.year()) {
        return None;
    }
    at.format(RFC3339_MS).ok()
}

impl Binding {
    /// The binding of the endpoint named `endpoint`, whose values are in `encoding`.
    pub fn new(endpoint: &str, encoding: Encoding) -> Self {
        Self {
            source: source(endpoint),
            content_type: content_type(encoding),
        }
    }

    /// The headers of one event record: `(name, value)` in the binding's names.
    pub fn headers(&self, id: &str, event_type: &str, occurred_at_ms: i64) -> Headers {
        Headers {
            id: id.to_string(),
            source: self.source.clone(),
            event_type: event_type.to_string(),
            time: time(occurred_at_ms),
            content_type: self.content_type,
        }
    }
}

/// One record's CloudEvents headers, owned (the record borrows them while it is delivered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    id: String,
    source: String,
    event_type: String,
    time: Option<String>,
    content_type: &'static str,
}

impl Headers {
    /// `(header name, value)`, in the order the attributes are listed above.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            Some(("ce_specversion", SPECVERSION)),
            Some(("ce_id", self.id.as_str())),
            Some(("ce_source", self.source.as_str())),
            Some(("ce_type", self.event_type.as_str())),
            self.time.as_deref().map(|time| ("ce_time", time)),
            Some(("content-type", self.content_type)),
        ]
        .into_iter()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::delivery::MemoryStore;

    fn headers(binding: &Binding, occurred_at_ms: i64) -> Vec<(&'static str, String)> {
        binding
            .headers(
                "evt-1",
                "case_management_notification.case_closure",
                occurred_at_ms,
            )
            .iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect()
    }

    #[test]
    fn an_event_gets_the_binary_mode_headers() {
        let binding = Binding::new("sandbox", Encoding::Confluent);
        // 2024-05-01T12:34:56.789Z
        let got = headers(&binding, 1_714_566_896_789);
        let want: Vec<(&str, String)> = vec![
            ("ce_specversion", "1.0".into()),
            ("ce_id", "evt-1".into()),
            ("ce_source", "/riskos-connector/endpoints/sandbox".into()),
            (
                "ce_type",
                "case_management_notification.case_closure".into(),
            ),
            ("ce_time", "2024-05-01T12:34:56.789Z".into()),
            (
                "content-type",
                "application/avro; encoding=confluent".into(),
            ),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn the_content_type_names_the_framing() {
        assert_eq!(
            Binding::new("a", Encoding::SingleObject).content_type,
            "application/avro; encoding=single-object"
        );
        assert_eq!(
            Binding::new("a", Encoding::Confluent).content_type,
            "application/avro; encoding=confluent"
        );
    }

    #[test]
    fn the_time_is_utc_with_milliseconds_even_when_whole() {
        assert_eq!(time(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(time(1).as_deref(), Some("1970-01-01T00:00:00.001Z"));
        assert_eq!(time(-1).as_deref(), Some("1969-12-31T23:59:59.999Z"));
        assert_eq!(
            time(253_402_300_799_999).as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
    }

    #[test]
    fn a_time_rfc3339_cannot_write_is_left_out() {
        assert_eq!(time(253_402_300_800_000), None, "year 10000");
        assert_eq!(time(-62_167_219_200_001), None, "year -1");
        assert_eq!(time(i64::MAX), None);
        assert_eq!(time(i64::MIN), None);
        let binding = Binding::new("a", Encoding::Confluent);
        let names: Vec<_> = binding
            .headers("i", "t", i64::MAX)
            .iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            names,
            [
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
                "content-type"
            ]
        );
    }

    /// A pipeline over a memory store, for the endpoint `riskos` with `binding`.
    fn pipeline(binding: Option<Binding>) -> (super::super::Pipeline, Arc<MemoryStore>) {
        super::super::over_memory(super::super::ProtectionSettings::off(), binding)
    }

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/riskos.case_closure.match.json"
    );

    #[tokio::test]
    async fn only_an_opted_in_endpoints_event_records_carry_the_headers() {
        use super::super::{Kept, Origin};
        let body = std::fs::read(FIXTURE).unwrap();
        for opted_in in [true, false] {
            let binding = opted_in.then(|| Binding::new("riskos", Encoding::SingleObject));
            let (pipeline, store) = pipeline(binding);
            let fate = pipeline.keep(Origin::body(&body), 0).await;
            assert!(matches!(fate.kept, Ok(Kept::Stored(_))), "{fate:?}");
            let prepared = fate.prepared.expect("the fixture is an event");
            let fate = pipeline.keep(Origin::body(b"{not json"), 0).await;
            assert!(
                matches!(fate.kept, Ok(Kept::Quarantined(..))),
                "not JSON is quarantined: {fate:?}"
            );
            let kept = store.kept();
            let (event, quarantine) = (&kept[0], &kept[1]);
            let ce = |k: &crate::delivery::memory::Kept| {
                k.headers
                    .iter()
                    .filter(|(n, _)| n.starts_with("ce_") || n == "content-type")
                    .count()
            };
            assert_eq!(quarantine.topic, "riskos.quarantine");
            assert_eq!(ce(quarantine), 0, "quarantined records never");
            if !opted_in {
                assert_eq!(ce(event), 0, "not opted in");
                continue;
            }
            assert_eq!(ce(event), 6);
            assert_eq!(event.header("ce_id"), event.key.as_deref());
            assert_eq!(event.header("ce_id"), Some(prepared.key.as_str()));
            assert_eq!(event.header("ce_type"), event.header("event_type"));
            assert_eq!(
                event.header("ce_source"),
                Some("/riskos-connector/endpoints/riskos")
            );
            assert_eq!(
                event.header("ce_time"),
                time(prepared.occurred_at_ms).as_deref()
            );
            assert_eq!(event.header("ce_specversion"), Some("1.0"));
            assert_eq!(
                event.header("content-type"),
                Some("application/avro; encoding=single-object")
            );
            // The connector's own headers are kept.
            assert_eq!(event.header("endpoint"), Some("riskos"));
        }
    }

    #[test]
    fn the_time_parses_back_as_rfc3339_to_the_same_instant() {
        use time::format_description::well_known::Rfc3339;
        for ms in [0, 1_714_566_896_789, -86_400_001, 4_102_444_800_123] {
            let text = time(ms).unwrap();
            let parsed = OffsetDateTime::parse(&text, &Rfc3339).unwrap();
            assert_eq!(parsed.unix_timestamp_nanos(), i128::from(ms) * 1_000_000);
        }
    }
}
