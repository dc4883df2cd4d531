//! Wire encodings: a fixed prefix per schema, then the Avro binary datum.
//!
//! Confluent wire format: magic byte `0x00`, the registry's schema id as a big-endian `u32`.

use apache_avro::schema::Schema;
use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;

/// Avro could not write a value the converter produced (a bug, never the sender's fault).
#[derive(Debug, thiserror::Error)]
#[error("avro encoding failed: {0}")]
pub struct EncodeError(#[from] apache_avro::Error);

/// The 5-byte Confluent prefix for a registered schema id.
pub fn confluent_prefix(schema_id: u32) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(5);
    prefix.push(0u8);
    prefix.extend_from_slice(&schema_id.to_be_bytes());
    prefix
}

/// Writes `prefix` followed by `value` encoded with `schema` into one buffer.
pub fn encode(prefix: &[u8], schema: &Schema, value: Avro) -> Result<Vec<u8>, EncodeError> {
    let mut buffer = Vec::with_capacity(1024);
    buffer.extend_from_slice(prefix);
    GenericDatumWriter::builder(schema)
        .build()?
        .write_value(&mut buffer, value)?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confluent_prefix_is_magic_byte_and_big_endian_id() {
        assert_eq!(confluent_prefix(0x0102_0304), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn encode_appends_the_datum_after_the_prefix() {
        let bytes = encode(&[0, 0, 0, 0, 7], &Schema::String, Avro::String("a".into())).unwrap();
        assert_eq!(bytes, vec![0, 0, 0, 0, 7, 2, b'a']);
    }
}
