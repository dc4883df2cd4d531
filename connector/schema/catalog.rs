//! The schema catalog: every `.avsc` file in `schemas/`, parsed once at start-up.
//!
//! Each file is a complete value schema (a record) that names the event type it is for with the
//! record attribute `"riskos.event_type"`. The value `"*"` marks the generic schema used for
//! event types that have no file of their own. Start-up checks that every schema carries the
//! envelope fields the record builder fills, so a broken file fails fast with its name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apache_avro::schema::{Name, Schema};
use serde_json::Value as Json;

use super::convert::Names;
use super::record::ENVELOPE_FIELDS;

/// Record attribute naming the event type a schema is for.
pub const EVENT_TYPE_ATTRIBUTE: &str = "riskos.event_type";
/// [`EVENT_TYPE_ATTRIBUTE`] value of the schema for types without a schema of their own.
pub const FALLBACK_EVENT_TYPE: &str = "*";

/// A schema file that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The folder cannot be read.
    #[error("cannot read schema folder {dir}: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// A file cannot be read.
    #[error("cannot read {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// A file is not a valid Avro schema or lacks what the connector needs.
    #[error("{file}: {reason}")]
    Invalid { file: PathBuf, reason: String },
    /// Two files claim the same event type.
    #[error("{first} and {second} both declare event type `{event_type}`")]
    Duplicate {
        event_type: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// No schema declares `"riskos.event_type": "*"`.
    #[error("no schema in {0} declares \"riskos.event_type\": \"*\" (the schema for unrecognized event types)")]
    NoFallback(PathBuf),
}

/// One parsed value schema.
#[derive(Debug)]
pub struct SchemaEntry {
    /// The event type it is for, or `"*"` for the fallback.
    pub event_type: String,
    /// Where it was read from (for messages).
    pub file: PathBuf,
    /// The schema text as written, which is what gets registered.
    pub text: String,
    /// The parsed schema.
    pub schema: Schema,
    /// Named types inside it, for the converter.
    pub names: Names,
    /// Its protected fields (`riskos.protect`), checked at load.
    pub plan: crate::protect::Plan,
}

impl SchemaEntry {
    /// True for the schema of unrecognized event types.
    pub fn is_fallback(&self) -> bool {
        self.event_type == FALLBACK_EVENT_TYPE
    }

    /// Parses one schema file's text.
    pub fn parse(file: &Path, text: String) -> Result<Self, CatalogError> {
        let invalid = |reason: String| CatalogError::Invalid {
            file: file.to_path_buf(),
            reason,
        };
        let json: Json = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let event_type = json
            .get(EVENT_TYPE_ATTRIBUTE)
            .and_then(Json::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                invalid(format!(
                    "the top-level record needs a string attribute \"{EVENT_TYPE_ATTRIBUTE}\""
                ))
            })?
            .to_string();
        let schema = Schema::parse(&json).map_err(|e| invalid(e.to_string()))?;
        let names = names_of(&schema).map_err(|e| invalid(e.to_string()))?;
        check_envelope_fields(&schema).map_err(invalid)?;
        let plan = crate::protect::Plan::of(&schema, &names).map_err(invalid)?;
        Ok(Self {
            event_type,
            file: file.to_path_buf(),
            text,
            schema,
            names,
            plan,
        })
    }
}

/// All schemas, by event type.
#[derive(Debug)]
pub struct Catalog {
    by_event_type: HashMap<String, Arc<SchemaEntry>>,
    fallback: Arc<SchemaEntry>,
}

impl Catalog {
    /// Reads every `*.avsc` file in `dir`.
    pub fn load(dir: &Path) -> Result<Self, CatalogError> {
        let entries = std::fs::read_dir(dir).map_err(|source| CatalogError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "avsc"))
            .collect();
        files.sort();
        let mut schemas = Vec::with_capacity(files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| CatalogError::Read {
                file: file.clone(),
                source,
            })?;
            schemas.push(SchemaEntry::parse(&file, text)?);
        }
        Self::from_entries(dir, schemas)
    }

    /// Builds a catalog from parsed entries (exactly one must be the fallback).
    pub fn from_entries(dir: &Path, schemas: Vec<SchemaEntry>) -> Result<Self, CatalogError> {
        let mut by_event_type: HashMap<String, Arc<SchemaEntry>> = HashMap::new();
        let mut fallback = None;
        for entry in schemas {
            let entry = Arc::new(entry);
            if let Some(previous) = by_event_type.get(&entry.event_type) {
                return Err(CatalogError::Duplicate {
                    event_type: entry.event_type.clone(),
                    first: previous.file.clone(),
                    second: entry.file.clone(),
                });
            }
            if entry.is_fallback() {
                fallback = Some(entry.clone());
            }
            by_event_type.insert(entry.event_type.clone(), entry);
        }
        let fallback = fallback.ok_or_else(|| CatalogError::NoFallback(dir.to_path_buf()))?;
        by_event_type.remove(FALLBACK_EVENT_TYPE);
        Ok(Self {
            by_event_type,
            fallback,
        })
    }

    /// The schema for `event_type`, or `None` when it has none (use [`Catalog::fallback`]).
    pub fn get(&self, event_type: &str) -> Option<&Arc<SchemaEntry>> {
        self.by_event_type.get(event_type)
    }

    /// The schema for event types without one of their own.
    pub fn fallback(&self) -> &Arc<SchemaEntry> {
        &self.fallback
    }

    /// Every schema, the fallback included, in a stable order.
    pub fn entries(&self) -> Vec<&Arc<SchemaEntry>> {
        let mut all: Vec<_> = self.by_event_type.values().collect();
        all.sort_by(|a, b| a.event_type.cmp(&b.event_type));
        all.push(&self.fallback);
        all
    }
}

/// The named types defined inside `schema`, for resolving references while converting.
pub fn names_of(schema: &Schema) -> apache_avro::AvroResult<Names> {
    let resolved = apache_avro::schema::ResolvedSchema::new(schema)?;
    Ok(resolved
        .get_names()
        .iter()
        .map(|(name, schema): (&Name, &&Schema)| (name.clone(), (*schema).clone()))
        .collect())
}

/// Every value schema must have the fields the record builder fills, with compatible types.
fn check_envelope_fields(schema: &Schema) -> Result<(), String> {
    let Schema::Record(record) = schema else {
        return Err("the top-level schema must be a record".into());
    };
    for (name, accepts) in ENVELOPE_FIELDS {
        let Some(&index) = record.lookup.get(*name) else {
            return Err(format!("the record needs a field `{name}`"));
        };
        let field = &record.fields[index];
        if !accepts(&field.schema) {
            return Err(format!(
                "field `{name}` has an unsuitable type {:?}",
                field.schema
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemas_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
    }

    #[test]
    fn the_shipped_schemas_load() {
        let catalog = Catalog::load(&schemas_dir()).unwrap();
        for event_type in [
            "case_management_notification_case_closure",
            "evaluation_completed",
            "create:cases",
            "update:cases:status",
            "update:transactions:status",
            "create:bankaccountsnapshots:status_description",
            "create:reviews:is_entity",
        ] {
            assert!(catalog.get(event_type).is_some(), "{event_type}");
        }
        assert!(catalog.fallback().is_fallback());
        assert!(catalog.get("*").is_none());
    }

    #[test]
    fn a_schema_without_event_type_is_refused_by_file_name() {
        let err = SchemaEntry::parse(
            Path::new("x.avsc"),
            r#"{"type":"record","name":"X","fields":[]}"#.into(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("x.avsc: "), "{err}");
        assert!(err.to_string().contains(EVENT_TYPE_ATTRIBUTE), "{err}");
    }

    #[test]
    fn a_schema_without_envelope_fields_is_refused() {
        let err = SchemaEntry::parse(
            Path::new("x.avsc"),
            r#"{"type":"record","name":"X","riskos.event_type":"x","fields":[{"name":"event_id","type":"string"}]}"#.into(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("needs a field `event_type`"),
            "{err}"
        );
    }
}
