//! Schemas: the catalog of `schemas/`, the record builder, the JSON→Avro converter, the wire
//! encodings and the registry client (its config section, authentication, OAuth tokens and
//! TLS in files of their own).

pub(crate) mod catalog;
// Used only by `wiring` (start-up) and the tools, which the library has with feature `kafka` alone.
#[cfg_attr(not(feature = "kafka"), allow(dead_code, unreachable_pub))]
pub(crate) mod compat;
// Read only by `wiring` (start-up), which the library has with feature `kafka` alone.
#[cfg_attr(not(feature = "kafka"), allow(dead_code, unreachable_pub))]
pub(crate) mod config;
pub(crate) mod convert;
pub mod decode;
pub mod encode;
pub(crate) mod error_chain;
pub(crate) mod record;
pub(crate) mod registry;
pub(crate) mod registry_auth;
pub(crate) mod registry_config;
pub(crate) mod registry_oauth;
pub(crate) mod registry_tls;

pub use catalog::{Catalog, CatalogError, SchemaEntry};
pub use convert::ConvertError;
pub use registry::{Registry, RegistryError, RegistryStatus};
pub use registry_config::{CompatibilityLevel, RegistryOAuthConfig, SchemaRegistryConfig};
