//! Schemas: the catalog of `schemas/`, the record builder, the JSON→Avro converter, the wire
//! encodings and the registry client.

pub mod catalog;
pub mod compat;
pub mod convert;
pub mod decode;
pub mod encode;
pub mod record;
pub mod registry;

pub use catalog::{Catalog, CatalogError, SchemaEntry};
pub use convert::ConvertError;
pub use registry::{Registry, RegistryError, RegistryStatus};
