//! Schemas: the catalog of `schemas/`, the record builder, the JSON→Avro converter, the wire
//! encodings and the registry client (its config section, authentication, OAuth tokens and
//! TLS in files of their own).

pub mod catalog;
pub mod compat;
pub mod config;
pub mod convert;
pub mod decode;
pub mod encode;
pub mod error_chain;
pub mod record;
pub mod registry;
pub mod registry_auth;
pub mod registry_config;
pub mod registry_oauth;
pub mod registry_tls;

pub use catalog::{Catalog, CatalogError, SchemaEntry};
pub use convert::ConvertError;
pub use registry::{Registry, RegistryError, RegistryStatus};
pub use registry_config::{CompatibilityLevel, RegistryOAuthConfig, SchemaRegistryConfig};
