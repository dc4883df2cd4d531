//! Decoding what the connector produced, with schema_registry_converter's own decoder (it
//! fetches the writer schema by the id in the Confluent header), and comparing with the JSON
//! that was posted.

use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use serde_json::Value as Json;

/// Decodes a Confluent-framed Avro value through the registry at `registry_url`.
pub async fn decode(registry_url: &str, payload: &[u8]) -> Json {
    let decoder = AvroDecoder::new(SrSettings::new(registry_url.to_string()));
    let result = decoder.decode(Some(payload)).await.expect("decodes");
    to_json(result.value)
}

pub use riskos_connector::pipeline::schema::decode::to_json;

/// Asserts that every field of the decoded `data` equals the posted JSON's `data`: a field the
/// posted JSON lacks must be null; a JSON-text field must parse back to the posted value.
/// Returns how many fields were compared.
pub fn assert_data_matches(decoded: &Json, posted: &Json, context: &str) -> usize {
    let (Json::Object(decoded), Json::Object(posted)) = (decoded, posted) else {
        if let Json::String(text) = decoded {
            // JSON-text data (the unrecognized schema).
            let parsed: Json = serde_json::from_str(text).expect("data is JSON text");
            assert_eq!(&parsed, posted, "{context}: data");
            return 1;
        }
        panic!("{context}: data is not an object: {decoded}");
    };
    let mut compared = 0;
    for (key, value) in decoded {
        let sent = posted.get(key).cloned().unwrap_or(Json::Null);
        let field = format!("{context}: data.{key}");
        match (value, &sent) {
            (Json::String(text), Json::Array(_) | Json::Object(_)) => {
                let parsed: Json = serde_json::from_str(text).expect("JSON text field");
                assert_eq!(parsed, sent, "{field}");
            }
            (Json::Object(_), Json::Object(_)) => {
                compared += assert_data_matches(value, &sent, &field);
            }
            (Json::Array(items), Json::Array(sent_items)) => {
                assert_eq!(items.len(), sent_items.len(), "{field}");
                for (i, (item, sent_item)) in items.iter().zip(sent_items).enumerate() {
                    if item.is_object() {
                        compared += assert_data_matches(item, sent_item, &format!("{field}[{i}]"));
                    } else {
                        assert_eq!(item, sent_item, "{field}[{i}]");
                    }
                }
            }
            _ => assert_eq!(value, &sent, "{field}"),
        }
        compared += 1;
    }
    compared
}
