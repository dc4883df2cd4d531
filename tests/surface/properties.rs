//! Property tests over normalize + convert + encode: arbitrary bytes and arbitrary JSON never
//! panic, and valid events round-trip field for field through Avro.

use std::path::PathBuf;

use proptest::prelude::*;
use riskos_connector::pipeline::prepare;
use riskos_connector::pipeline::route::single_object_routes;
use riskos_connector::pipeline::route::Routes;
use riskos_connector::pipeline::schema::decode;
use riskos_connector::pipeline::schema::Catalog;
use serde_json::{json, Value};

/// The shipped schemas, loaded once for all cases.
fn routes() -> &'static Routes {
    static ROUTES: std::sync::LazyLock<Routes> = std::sync::LazyLock::new(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
        single_object_routes(&Catalog::load(&dir).unwrap(), "riskos.")
    });
    &ROUTES
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("event_id".to_string()),
                    Just("event_type".to_string()),
                    Just("event_at".to_string()),
                    Just("request_token".to_string()),
                    Just("type".to_string()),
                    Just("timestamp".to_string()),
                    Just("data".to_string()),
                    Just("eval_id".to_string()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let routes = routes();
        let _ = prepare(routes, &body, 0);
    }

    #[test]
    fn arbitrary_json_never_panics(value in arbitrary_json()) {
        let routes = routes();
        let body = serde_json::to_vec(&value).unwrap();
        let _ = prepare(routes, &body, 0);
    }

    #[test]
    fn valid_events_round_trip_field_for_field(
        id in "[A-Za-z0-9:_-]{1,40}",
        millis in 0i64..4_102_444_800_000,
        workflow in prop::option::of(".{0,20}"),
        decision in prop::option::of("[A-Z]{1,10}"),
        tags in prop::option::of(prop::collection::vec(".{0,10}", 0..4)),
        enrichments in prop::option::of(arbitrary_json()),
        received in 0i64..4_102_444_800_000,
    ) {
        let routes = routes();
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let mut data = json!({"eval_id": "e"});
        if let Some(w) = &workflow { data["workflow"] = json!(w); }
        if let Some(d) = &decision { data["decision"] = json!(d); }
        if let Some(t) = &tags { data["tags"] = json!(t); }
        if let Some(e) = &enrichments { data["data_enrichments"] = e.clone(); }
        let body = json!({
            "event_id": id, "event_at": at, "event_type": "evaluation_completed", "data": data,
        }).to_string();

        let prepared = prepare(routes, body.as_bytes(), received).unwrap();
        let prefix = prepared.route.wire_prefix.len();
        let record = decode::datum(&prepared.route.schema.schema, &prepared.payload[prefix..]).unwrap();

        prop_assert_eq!(&prepared.route.topic, "riskos.evaluation_completed");
        prop_assert_eq!(&record["event_id"], &json!(id));
        prop_assert_eq!(&record["occurred_at"], &json!(millis));
        prop_assert_eq!(&record["received_at"], &json!(received));
        prop_assert_eq!(&record["envelope"], &json!("EVENT"));
        prop_assert_eq!(&record["raw"], &json!(body));
        prop_assert_eq!(&record["data"]["workflow"], &json!(workflow));
        prop_assert_eq!(&record["data"]["decision"], &json!(decision));
        prop_assert_eq!(&record["data"]["tags"], &json!(tags));
        let enrichments_back = record["data"]["data_enrichments"]
            .as_str()
            .map(|t| serde_json::from_str::<Value>(t).unwrap());
        let expected = enrichments.filter(|e| !e.is_null());
        prop_assert_eq!(enrichments_back, expected);
    }

    #[test]
    fn prepared_payloads_are_exactly_what_apache_avro_reads_and_writes(
        data in arbitrary_json(),
        extra in prop::option::of(arbitrary_json()),
        event_type in prop_oneof![
            Just("evaluation_completed"),
            Just("case_management_notification_case_closure"),
            Just("create:cases"),
            Just("update:cases:status"),
            Just("something:else"),
        ],
        request_token in any::<bool>(),
    ) {
        // The converter writes Avro itself; apache-avro is the oracle: its reader takes the
        // payload as exactly one datum of the route's schema, and its writer writes the value it
        // read back to the same bytes. Anything that does not fit is an error naming a field.
        use apache_avro::reader::datum::GenericDatumReader;
        use apache_avro::writer::datum::GenericDatumWriter;
        use riskos_connector::pipeline::PrepareError;
        let routes = routes();
        let mut body = if request_token {
            json!({"request_token": "r", "timestamp": 1, "type": event_type, "description": "d"})
        } else {
            json!({"event_id": "e", "event_at": "2025-01-01T00:00:00Z", "event_type": event_type})
        };
        body["data"] = data;
        if let Some(extra) = extra {
            body["customer_metadata"] = extra;
        }
        let body = serde_json::to_vec(&body).unwrap();
        match prepare(routes, &body, 5) {
            Ok(prepared) => {
                let schema = &prepared.route.schema.schema;
                let datum = &prepared.payload[prepared.route.wire_prefix.len()..];
                let mut rest = datum;
                let value = GenericDatumReader::builder(schema).build().unwrap().read_value(&mut rest).unwrap();
                prop_assert!(rest.is_empty(), "{} bytes after the datum", rest.len());
                prop_assert!(value.validate(schema));
                let mut again = Vec::new();
                GenericDatumWriter::builder(schema).build().unwrap().write_value(&mut again, value).unwrap();
                prop_assert_eq!(&again[..], datum);
            }
            Err(PrepareError::Schema { error, .. }) => {
                prop_assert!(error.field().starts_with("data"), "{}", error);
            }
            Err(other) => prop_assert!(false, "{}", other),
        }
    }
}
