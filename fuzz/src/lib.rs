//! The checks behind the fuzz targets in `src/bin/`, kept apart from the AFL++ harness so that
//! a crash can be read as ordinary code. See docs/fuzzing.md.
//!
//! - [`check_prepare`]: body bytes → depth scan → parse → normalize → route → encode, as the
//!   webhook handler does it, then every record produced is decoded back with apache-avro.
//! - [`check_json_depth`]: the pre-parse depth scan against a reference depth.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as Avro;
use riskos_connector::pipeline::envelope::json::too_deep as json_too_deep;
use riskos_connector::pipeline::prepare;
use riskos_connector::pipeline::route::single_object_routes;
use riskos_connector::pipeline::route::Routes;
use riskos_connector::pipeline::schema::encode::single_object_prefix;
use riskos_connector::pipeline::schema::Catalog;

/// The depth limit the `prepare` target scans with: the largest `http.max_json_depth` the
/// configuration accepts (the default is 64), so every configuration's inputs are covered.
pub const DEPTH_LIMIT: usize = 128;

/// Stack of the thread the targets run on: a tokio worker's (2 MiB), which is where the
/// handler runs, so a recursion that would overflow a worker overflows here too.
pub const WORKER_STACK_BYTES: usize = 2 * 1024 * 1024;

/// `received_at` handed to the pipeline (2026-01-01T00:00:00Z).
pub const RECEIVED_AT_MS: i64 = 1_767_225_600_000;

/// The routing table from the repository's `schemas/`, single-object framing (no registry),
/// built once per process.
pub fn routes() -> &'static Routes {
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        let catalog =
            Catalog::load(&dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()));
        single_object_routes(&catalog, "riskos.")
    })
}

/// An apache-avro reader per topic, for the route's schema (resolved once).
fn readers() -> &'static HashMap<String, GenericDatumReader<'static>> {
    static READERS: OnceLock<HashMap<String, GenericDatumReader<'static>>> = OnceLock::new();
    READERS.get_or_init(|| {
        routes()
            .all()
            .map(|route| {
                let reader = GenericDatumReader::builder(&route.schema.schema)
                    .build()
                    .unwrap_or_else(|e| panic!("a reader for {}: {e}", route.topic));
                (route.topic.clone(), reader)
            })
            .collect()
    })
}

/// Runs `check` over the fuzzer's inputs on a thread with a tokio worker's stack.
/// `fuzz` is the harness (`afl::fuzz`), passed in so this crate's checks build without it.
pub fn run_on_worker_stack(fuzz: fn(fn(&[u8])), check: fn(&[u8])) {
    // Built before the fork server starts, so no input pays for loading them.
    readers();
    std::thread::Builder::new()
        .name("fuzz-worker".into())
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || fuzz(check))
        .expect("spawning the fuzz thread")
        .join()
        .expect("the fuzz thread panicked");
}

/// The handler's pure path. Panics (a finding) when:
/// - anything in it panics;
/// - a record is produced that does not start with its route's wire prefix, does not decode
///   with apache-avro against the route's schema, leaves bytes after the datum, does not
///   validate against the schema, or whose `event_id`, `event_type`, `received_at` or `raw`
///   differ from what was prepared and received;
/// - a rejection has an empty reason or a message that cannot be formatted.
pub fn check_prepare(body: &[u8]) {
    if json_too_deep(body, DEPTH_LIMIT) {
        return; // the handler answers 400 before parsing
    }
    match prepare(routes(), body, RECEIVED_AT_MS) {
        Ok(prepared) => {
            let schema = &prepared.route.schema.schema;
            let prefix = &prepared.route.wire_prefix;
            assert_eq!(prefix, &single_object_prefix(schema), "wire prefix");
            assert!(
                prepared.payload.starts_with(prefix),
                "payload does not start with the wire prefix"
            );
            let mut datum = &prepared.payload[prefix.len()..];
            let value = readers()[&prepared.route.topic]
                .read_value(&mut datum)
                .unwrap_or_else(|e| panic!("the record does not decode: {e}"));
            assert!(
                datum.is_empty(),
                "{} bytes left after the datum",
                datum.len()
            );
            assert!(value.validate(schema), "decoded value does not validate");
            let Avro::Record(fields) = &value else {
                panic!("decoded value is not a record: {value:?}");
            };
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("decoded record has no `{name}`"))
            };
            assert_eq!(field("event_id"), &Avro::String(prepared.key.clone()));
            assert_eq!(
                field("event_type"),
                &Avro::String(prepared.event_type.clone())
            );
            assert_eq!(field("received_at"), &Avro::TimestampMillis(RECEIVED_AT_MS));
            let raw = std::str::from_utf8(body).expect("a prepared body is UTF-8");
            assert_eq!(field("raw"), &Avro::String(raw.to_string()), "raw");
            // Routing: a topic never comes from payload text the catalog does not know.
            let route = &prepared.route;
            if route.schema.is_fallback() {
                assert_eq!(route.topic, "riskos.unrecognized", "fallback topic");
            } else {
                assert_eq!(route.schema.event_type, prepared.event_type, "route");
            }
            assert!(
                route
                    .topic
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-')),
                "topic {:?} outside [a-z0-9._-]",
                route.topic
            );
        }
        Err(error) => {
            assert!(!error.reason().is_empty(), "empty reason: {error:?}");
            assert!(!error.to_string().is_empty(), "empty message: {error:?}");
            let _ = error.field();
            let _ = error.event();
            // The quarantine decision: a body answered 200 must carry its event id as key.
            let quarantined = riskos_connector::pipeline::Quarantined::new(error, 0);
            if quarantined.answer == riskos_connector::pipeline::Answer::Accepted {
                assert!(quarantined.key.is_some(), "accepted without a key");
            }
        }
    }
}

/// Limits the depth scan is tried with.
const DEPTH_LIMITS: [usize; 8] = [0, 1, 2, 3, 8, 64, 128, 1000];

/// The depth scan. Panics (a finding) when it panics, when it is not monotonic in the limit
/// (too deep for N yet not for a smaller N), or, for bodies serde_json parses, when it
/// disagrees with the parsed value's real nesting depth.
pub fn check_json_depth(body: &[u8]) {
    let verdicts = DEPTH_LIMITS.map(|max| json_too_deep(body, max));
    for (i, &deep) in verdicts.iter().enumerate() {
        if deep {
            for (j, &smaller) in verdicts[..i].iter().enumerate() {
                assert!(
                    smaller,
                    "too deep at max {} but not at max {}",
                    DEPTH_LIMITS[i], DEPTH_LIMITS[j]
                );
            }
        }
    }
    // serde_json refuses nesting past 128 on its own; whatever it parses has a known depth.
    // The depth is measured while parsing, not from a `serde_json::Value`: a map keeps only the
    // last of duplicate keys, so `{"a":[[]],"a":1}` would read as depth 1 (a false finding).
    if let Ok(Depth(depth)) = serde_json::from_slice::<Depth>(body) {
        assert!(
            !json_too_deep(body, depth),
            "parsed depth {depth}, yet too deep at max {depth}"
        );
        if depth > 0 {
            assert!(
                json_too_deep(body, depth - 1),
                "parsed depth {depth}, yet not too deep at max {}",
                depth - 1
            );
        }
    }
}

/// Containers on the deepest path of a JSON text, every member counted (duplicate keys too):
/// a scalar is 0, `{}` and `[]` are 1.
#[derive(Debug, PartialEq, Eq)]
pub struct Depth(pub usize);

impl<'de> serde::Deserialize<'de> for Depth {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DepthVisitor)
    }
}

struct DepthVisitor;

impl<'de> serde::de::Visitor<'de> for DepthVisitor {
    type Value = Depth;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Depth, E> {
        Ok(Depth(0))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Depth, E> {
        Ok(Depth(0))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Depth, E> {
        Ok(Depth(0))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Depth, E> {
        Ok(Depth(0))
    }
    fn visit_str<E>(self, _: &str) -> Result<Depth, E> {
        Ok(Depth(0))
    }
    fn visit_unit<E>(self) -> Result<Depth, E> {
        Ok(Depth(0))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<Depth, A::Error> {
        let mut deepest = 0;
        while let Some(Depth(depth)) = items.next_element::<Depth>()? {
            deepest = deepest.max(depth);
        }
        Ok(Depth(1 + deepest))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut fields: A) -> Result<Depth, A::Error> {
        let mut deepest = 0;
        while let Some((_, Depth(depth))) = fields.next_entry::<serde::de::IgnoredAny, Depth>()? {
            deepest = deepest.max(depth);
        }
        Ok(Depth(1 + deepest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_containers() {
        let depth = |s: &str| serde_json::from_str::<Depth>(s).unwrap().0;
        assert_eq!(depth("1"), 0);
        assert_eq!(depth("[]"), 1);
        assert_eq!(depth(r#"{"a":[1,{"b":[]}]}"#), 4);
    }

    /// The finding CI's fuzz run made (json_depth, crash id 000000): the oracle measured the
    /// depth of a `serde_json::Value`, whose map keeps only the last of duplicate keys.
    #[test]
    fn a_duplicate_key_does_not_hide_a_deeper_member() {
        let body = br#"{"a":[[]],"a":1}"#;
        assert_eq!(serde_json::from_slice::<Depth>(body).unwrap(), Depth(3));
        check_json_depth(body);
    }
}
