//! Wire encodings: a fixed prefix per schema, then the Avro binary datum (written by
//! [`super::record::write_record`] right after the prefix, into the same buffer).
//!
//! - Confluent wire format: magic byte `0x00`, the registry's schema id as a big-endian `u32`.
//! - Avro single-object encoding (Avro specification): marker `C3 01`, then the schema's
//!   CRC-64-AVRO (Rabin) fingerprint of its Parsing Canonical Form, little-endian.

use apache_avro::schema::Schema;

/// The 5-byte Confluent prefix for a registered schema id.
pub fn confluent_prefix(schema_id: u32) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(5);
    prefix.push(0u8);
    prefix.extend_from_slice(&schema_id.to_be_bytes());
    prefix
}

/// The 10-byte single-object prefix for a schema.
pub fn single_object_prefix(schema: &Schema) -> Vec<u8> {
    use digest::Digest;
    let fingerprint = apache_avro::rabin::Rabin::digest(canonical_form(schema).as_bytes());
    let mut prefix = Vec::with_capacity(10);
    prefix.extend_from_slice(&[0xC3, 0x01]);
    prefix.extend_from_slice(&fingerprint);
    prefix
}

/// The specification's Parsing Canonical Form. apache-avro 0.22 leaves logical types as
/// `{"type":"long"}` where the [PRIMITIVES] rule wants `"long"`, which changes the fingerprint;
/// in canonical form such an object can only be a wrapped primitive, so it is unwrapped here.
/// Checked against fastavro's fingerprints in the interop tests.
pub fn canonical_form(schema: &Schema) -> String {
    let mut form = schema.canonical_form();
    for primitive in [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ] {
        form = form.replace(
            &format!(r#"{{"type":"{primitive}"}}"#),
            &format!(r#""{primitive}""#),
        );
    }
    form
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confluent_prefix_is_magic_byte_and_big_endian_id() {
        assert_eq!(confluent_prefix(0x0102_0304), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn single_object_prefix_is_marker_and_fingerprint() {
        let prefix = single_object_prefix(&Schema::String);
        assert_eq!(prefix.len(), 10);
        assert_eq!(&prefix[..2], &[0xC3, 0x01]);
        // CRC-64-AVRO of the canonical form `"string"`, from the Avro specification's test data.
        let expected = (-8142146995180207161_i64).to_le_bytes();
        assert_eq!(&prefix[2..], &expected);
    }

    #[test]
    fn canonical_form_unwraps_logical_types() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_form(&schema),
            r#"{"name":"R","type":"record","fields":[{"name":"at","type":"long"}]}"#
        );
    }
}
