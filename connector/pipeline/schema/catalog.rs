//! The schema catalog: every `.avsc` file in `schemas/`, parsed once at start-up.
//!
//! Each file is a complete value schema (a record) that names the event type it is for with the
//! record attribute `"riskos.event_type"`. The value `"*"` marks the generic schema used for
//! event types that have no file of their own. Start-up checks that every schema carries the
//! envelope fields the record builder fills, so a broken file fails fast with its name.
//!
//! A schema may also say which entity its records are partitioned by, with the record
//! attribute `"riskos.partition_by": "data.case_token"`: a dotted path of record fields under
//! `data` (no arrays, no maps) ending at a string (or a union with one), checked at load. The
//! value found there in the stored record (after protection: a hashed field's token, equal for
//! equal values under one hash key) picks the partition as Kafka's Java producer picks it for a
//! key ([`crate::delivery::kafka::partition`]); the Kafka key stays the event id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apache_avro::schema::{Name, Schema};
use serde_json::Value as Json;

use super::convert::Names;
use super::record::ENVELOPE_FIELDS;

/// Record attribute naming the event type a schema is for.
pub(crate) const EVENT_TYPE_ATTRIBUTE: &str = "riskos.event_type";
/// Record attribute naming the field whose value picks a record's partition.
pub(crate) const PARTITION_BY_ATTRIBUTE: &str = "riskos.partition_by";
/// [`EVENT_TYPE_ATTRIBUTE`] value of the schema for types without a schema of their own.
pub(crate) const FALLBACK_EVENT_TYPE: &str = "*";

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
    pub plan: crate::pipeline::protect::Plan,
    /// The field its records are partitioned by (`riskos.partition_by`), checked at load.
    pub partition_by: Option<PartitionBy>,
}

/// A `riskos.partition_by` path: record fields from the top-level `data` down to a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionBy {
    /// The path as written, e.g. `data.case_token`.
    pub path: String,
    /// Its field names below `data`.
    steps: Vec<String>,
}

impl PartitionBy {
    /// Checks `path` against `schema` (the top-level record): each step a field of a record
    /// (or of a union's record), the last one taking a string.
    pub fn parse(path: &str, schema: &Schema, names: &Names) -> Result<Self, String> {
        let bad = |why: String| format!("\"{PARTITION_BY_ATTRIBUTE}\": \"{path}\": {why}");
        let mut parts = path.split('.');
        if parts.next() != Some("data") {
            return Err(bad(
                "must be a path under `data`, e.g. \"data.case_token\"".into()
            ));
        }
        let steps: Vec<String> = parts.map(str::to_string).collect();
        if steps.is_empty() || steps.iter().any(|s| s.is_empty() || s.contains("[]")) {
            return Err(bad(
                "must name record fields under `data` joined by `.` (no arrays or maps)".into(),
            ));
        }
        let mut at = field_schema(schema, names, "data")
            .ok_or_else(|| bad("the schema has no record field `data`".into()))?;
        let mut walked = String::from("data");
        for step in &steps {
            at = field_schema(at, names, step)
                .ok_or_else(|| bad(format!("`{walked}` has no record field `{step}`")))?;
            walked.push('.');
            walked.push_str(step);
        }
        let takes_string = match resolve(at, names) {
            Schema::String => true,
            Schema::Union(union) => union
                .variants()
                .iter()
                .any(|v| matches!(resolve(v, names), Schema::String)),
            _ => false,
        };
        if !takes_string {
            return Err(bad(
                "the field must be a string or a union with a string".into()
            ));
        }
        Ok(Self {
            path: path.to_string(),
            steps,
        })
    }

    /// The value at the path in `data` (the event's data, as stored), when it is a
    /// non-empty string.
    pub fn value_in<'d>(&self, data: &'d Json) -> Option<&'d str> {
        self.steps
            .iter()
            .try_fold(data, |at, step| at.get(step))?
            .as_str()
            .filter(|v| !v.is_empty())
    }
}

fn resolve<'s>(schema: &'s Schema, names: &'s Names) -> &'s Schema {
    match schema {
        Schema::Ref { name } => names.get(name).unwrap_or(schema),
        other => other,
    }
}

/// The schema of field `name` of `schema` (a record, or a union with one record).
fn field_schema<'s>(schema: &'s Schema, names: &'s Names, name: &str) -> Option<&'s Schema> {
    let of_record = |s: &'s Schema| match resolve(s, names) {
        Schema::Record(record) => record
            .lookup
            .get(name)
            .map(|&index| &record.fields[index].schema),
        _ => None,
    };
    match resolve(schema, names) {
        Schema::Union(union) => union.variants().iter().find_map(of_record),
        other => of_record(other),
    }
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
        let plan = crate::pipeline::protect::Plan::of(&schema, &names).map_err(invalid)?;
        let partition_by = match json.get(PARTITION_BY_ATTRIBUTE) {
            None => None,
            Some(Json::String(path)) => {
                Some(PartitionBy::parse(path, &schema, &names).map_err(invalid)?)
            }
            Some(other) => {
                return Err(invalid(format!(
                    "\"{PARTITION_BY_ATTRIBUTE}\" must be a string path such as \"data.case_token\", not {other}"
                )))
            }
        };
        if let Some(by) = &partition_by {
            // An encrypted value differs in every record, a dropped one is gone: neither can
            // keep an entity on one partition. A hash token can.
            let scrambled = plan.targets.iter().find(|t| {
                t.path() == by.path && t.policy != crate::pipeline::protect::Policy::Hash
            });
            if let Some(target) = scrambled {
                return Err(invalid(format!(
                    "\"{PARTITION_BY_ATTRIBUTE}\": \"{}\": the field is protected with \"{}\", \
                     which stores a different value (or none) each time; partition by a field \
                     that is kept or hashed",
                    by.path,
                    target.policy.name()
                )));
            }
        }
        Ok(Self {
            event_type,
            file: file.to_path_buf(),
            text,
            schema,
            names,
            plan,
            partition_by,
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
pub(crate) fn names_of(schema: &Schema) -> apache_avro::AvroResult<Names> {
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
    fn the_shipped_schemas_partition_by_their_entity() {
        let catalog = Catalog::load(&schemas_dir()).unwrap();
        for (event_type, path) in [
            ("create:cases", "data.case_token"),
            ("update:cases:status", "data.case_token"),
            ("evaluation_completed", "data.eval_id"),
            ("case_management_notification_case_closure", "data.eval_id"),
            ("update:transactions:status", "data.case_data.case_token"),
            (
                "create:bankaccountsnapshots:status_description",
                "data.case_data.case_token",
            ),
            ("create:reviews:is_entity", "data.entity_token"),
        ] {
            let entry = catalog.get(event_type).unwrap();
            let by = entry.partition_by.as_ref().expect(event_type);
            assert_eq!(by.path, path, "{event_type}");
            let doc = entry.schema.doc().map_or("", String::as_str);
            assert!(
                doc.contains(path) && doc.contains("co-partitioned"),
                "{event_type}: {doc}"
            );
        }
        assert!(catalog.fallback().partition_by.is_none());
    }

    #[test]
    fn the_partition_value_is_a_non_empty_string_at_the_path() {
        let catalog = Catalog::load(&schemas_dir()).unwrap();
        let by = catalog
            .get("update:transactions:status")
            .unwrap()
            .partition_by
            .clone()
            .unwrap();
        let data = serde_json::json!({"case_data": {"case_token": "c-1"}});
        assert_eq!(by.value_in(&data), Some("c-1"));
        for data in [
            serde_json::json!({}),
            serde_json::json!({"case_data": null}),
            serde_json::json!({"case_data": {"case_token": null}}),
            serde_json::json!({"case_data": {"case_token": ""}}),
            serde_json::json!({"case_data": {"case_token": 7}}),
            serde_json::Value::Null,
        ] {
            assert_eq!(by.value_in(&data), None, "{data}");
        }
    }

    fn with_partition_by(rule: &str) -> Result<SchemaEntry, CatalogError> {
        let mut json: Json = serde_json::from_str(
            &std::fs::read_to_string(schemas_dir().join("create.cases.avsc")).unwrap(),
        )
        .unwrap();
        json[PARTITION_BY_ATTRIBUTE] = serde_json::from_str(rule).unwrap();
        SchemaEntry::parse(Path::new("cases.avsc"), json.to_string())
    }

    #[test]
    fn a_partition_rule_that_does_not_fit_the_schema_is_refused_by_file_name() {
        assert!(with_partition_by(r#""data.entity_token""#).is_ok());
        for (rule, why) in [
            (r#""data.nope""#, "`data` has no record field `nope`"),
            (r#""case_token""#, "must be a path under `data`"),
            (r#""data""#, "must name record fields under `data`"),
            (r#""data.tags[].tag_name""#, "no arrays or maps"),
            (
                r#""data.tags""#,
                "must be a string or a union with a string",
            ),
            (r#""data.case_created_timestamp""#, "must be a string"),
            (
                r#""data.case_token.x""#,
                "`data.case_token` has no record field `x`",
            ),
            ("7", "must be a string path"),
            (r#""data.sent_by""#, "protected with \"encrypt\""),
        ] {
            let err = with_partition_by(rule).unwrap_err().to_string();
            assert!(err.starts_with("cases.avsc: "), "{rule}: {err}");
            assert!(err.contains(why), "{rule}: {err}");
        }
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
