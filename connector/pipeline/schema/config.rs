//! `[schemas]`: where the value schemas are and how records are framed, owned here;
//! the configuration layers and checks them with the rest.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[schemas]`: the value schemas.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemasConfig {
    /// Folder holding one `.avsc` file per event type. Default `schemas`.
    pub dir: PathBuf,
    /// Wire format of record values: `confluent` (magic byte + registry schema id; the default
    /// when `schema_registry.url` is set) or `single-object` (Avro single-object encoding:
    /// `C3 01` + CRC-64-AVRO fingerprint; the default without a registry, the `.avsc` files are
    /// then the contract).
    pub encoding: Option<Encoding>,
}

impl Default for SchemasConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("schemas"),
            encoding: None,
        }
    }
}

/// Wire format of record values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// Confluent wire format through a Schema Registry.
    Confluent,
    /// Avro single-object encoding, no registry.
    SingleObject,
}
