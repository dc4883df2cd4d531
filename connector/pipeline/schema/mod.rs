//! Schemas: the catalog of `schemas/`, the record builder, the JSON→Avro converter, the wire
//! encodings and the registry client (its config section, authentication, OAuth tokens and
//! TLS in files of their own).

pub(crate) mod catalog;
pub(crate) mod compat;
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
