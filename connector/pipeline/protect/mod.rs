//! Field protection: personal data dropped, hashed or encrypted before a record reaches Kafka.
//!
//! | file | job |
//! |---|---|
//! | [`keys`] | `[protection]` keys, the hash-token and encrypted-value formats |
//! | this file | the policies, the [`Plan`] of one schema's protected fields, applying it to an event, revealing a decoded record |
//!
//! A schema marks a field with `"riskos.protect": "drop" | "hash" | "encrypt"`, at any depth
//! under `data` (inside records, arrays and maps) and on the top-level `description`:
//!
//! - `drop`: stored as `null` (or the field's default);
//! - `hash`: a keyed token `h2.<kid>.<fp>.<mac>` (equal values, equal tokens);
//! - `encrypt`: `e2.<kid>.<fp>.<box>`, AES-256-GCM under a key derived for the value, bound to
//!   the record's topic, key and the field's path.
//!
//! On an array (or map) field the policy applies to each item (value); on anything else to the
//! whole value. `hash` and `encrypt` need a field that takes a string (the token or box),
//! `drop` one that takes `null` or has a default: [`Plan::of`] refuses other schemas at
//! start-up, naming the field.
//!
//! Paths, which the encrypted values are bound to, name object members with `.` and array
//! items by index: `data.reviewer_email`, `data.matches[2].name`, `data.attributes.color` (a
//! map's value under its key), `description`, `raw`. (`e1` values, of the first format, were
//! bound with `[]` for every index: [`keys::FieldPath`] keeps both.)

pub mod keys;

use std::borrow::Cow;
use std::collections::HashMap;

use apache_avro::schema::{Name, RecordField, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

pub use keys::{associated_data, FieldPath, Keyring, ProtectionConfig, UnprotectError};

/// The field attribute naming a field's policy.
pub const PROTECT_ATTRIBUTE: &str = "riskos.protect";

/// What happens to a protected field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Stored as `null` (or the field's default).
    Drop,
    /// A keyed pseudonym.
    Hash,
    /// Authenticated encryption.
    Encrypt,
}

impl Policy {
    /// The attribute's value.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Drop => "drop",
            Policy::Hash => "hash",
            Policy::Encrypt => "encrypt",
        }
    }
}

/// What happens to the body kept in `raw` (and to quarantined bodies), per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RawPolicy {
    /// The body as received.
    Keep,
    /// The whole body as one encrypted value (`raw` path): replay works for key holders.
    #[default]
    Encrypt,
    /// Nothing (`raw` is empty, a quarantined record's value too): no replay.
    Drop,
}

/// One endpoint's protection: its keys and whether its records' fields and bodies are
/// protected.
#[derive(Debug, Clone, Copy)]
pub struct Protection<'k> {
    /// The keys (`None`: no keys configured).
    pub keys: Option<&'k Keyring>,
    /// Apply the schemas' field policies.
    pub fields: bool,
    /// The body's policy.
    pub raw: RawPolicy,
}

impl Protection<'_> {
    /// Nothing protected: what the offline tools and property tests use.
    pub const OFF: Protection<'static> = Protection {
        keys: None,
        fields: false,
        raw: RawPolicy::Keep,
    };

    /// The body as it is to be stored in `raw` or in quarantine, for `topic` and `key`:
    /// borrowed as it is (`keep`), empty (`drop`), or one encrypted value (`encrypt`, ASCII).
    pub fn body<'b>(&self, body: &'b [u8], topic: &str, key: &str) -> Cow<'b, [u8]> {
        match self.raw {
            RawPolicy::Keep => Cow::Borrowed(body),
            RawPolicy::Drop => Cow::Borrowed(&[]),
            RawPolicy::Encrypt => Cow::Owned(
                self.keyring()
                    .encrypt(body, topic, key, RAW_PATH)
                    .into_bytes(),
            ),
        }
    }

    fn keyring(&self) -> &Keyring {
        self.keys
            .expect("protection with a policy that needs keys has a keyring (checked at start-up)")
    }

    /// Applies `plan` to a record's `data` and `description`, for `topic` and `key`.
    pub fn apply(
        &self,
        plan: &Plan,
        data: &mut Json,
        description: &mut Option<String>,
        topic: &str,
        key: &str,
    ) {
        if !self.fields {
            return;
        }
        for target in &plan.targets {
            match target.steps.split_first() {
                Some((Step::Field(root), rest)) if root == "data" => {
                    let mut path = String::from("data");
                    self.apply_at(target.policy, rest, data, &mut path, topic, key);
                }
                Some((Step::Field(root), [])) if root == "description" => {
                    let Some(text) = description.take() else {
                        continue;
                    };
                    let mut value = Json::String(text);
                    self.protect(target.policy, &mut value, "description", topic, key);
                    *description = value.as_str().map(str::to_string);
                }
                _ => {}
            }
        }
    }

    fn apply_at(
        &self,
        policy: Policy,
        steps: &[Step],
        value: &mut Json,
        path: &mut String,
        topic: &str,
        key: &str,
    ) {
        let Some((step, rest)) = steps.split_first() else {
            self.protect(policy, value, path, topic, key);
            return;
        };
        let before = path.len();
        match (step, value) {
            (Step::Field(name), Json::Object(object)) => {
                if let Some(child) = object.get_mut(name) {
                    path.push('.');
                    path.push_str(name);
                    self.apply_at(policy, rest, child, path, topic, key);
                }
            }
            (Step::Items, Json::Array(items)) => {
                for (index, item) in items.iter_mut().enumerate() {
                    path.truncate(before);
                    keys::push_index(path, index);
                    self.apply_at(policy, rest, item, path, topic, key);
                }
            }
            (Step::Values, Json::Object(entries)) => {
                for (name, child) in entries.iter_mut() {
                    path.truncate(before);
                    path.push('.');
                    path.push_str(name);
                    self.apply_at(policy, rest, child, path, topic, key);
                }
            }
            // A value of another shape than the schema's: the converter will name the field.
            _ => {}
        }
        path.truncate(before);
    }

    fn protect(&self, policy: Policy, value: &mut Json, path: &str, topic: &str, key: &str) {
        if value.is_null() {
            return;
        }
        *value = match policy {
            Policy::Drop => Json::Null,
            Policy::Hash => Json::String(self.keyring().hash(&canonical(value))),
            Policy::Encrypt => {
                let plaintext = serde_json::to_vec(value).expect("JSON serializes");
                Json::String(self.keyring().encrypt(&plaintext, topic, key, path))
            }
        };
    }
}

/// True when `text` is the JSON text of an encrypted value (a `riskos.json` field's content).
fn is_json_text_of_box(text: &str) -> bool {
    text.strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .is_some_and(keys::is_encrypted)
}

/// The path encrypted bodies are bound to.
pub const RAW_PATH: &str = "raw";

/// The bytes a hash token is computed over: a string's UTF-8 bytes, anything else's compact
/// JSON text.
pub fn canonical(value: &Json) -> Vec<u8> {
    match value {
        Json::String(s) => s.as_bytes().to_vec(),
        other => serde_json::to_vec(other).expect("JSON serializes"),
    }
}

/// A step from a record to a protected value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A record field (an object member).
    Field(String),
    /// Every item of an array.
    Items,
    /// Every value of a map.
    Values,
}

/// One protected place in a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// From the record's root.
    pub steps: Vec<Step>,
    /// Its policy.
    pub policy: Policy,
}

impl Target {
    /// The path as documented (`data.matches[].name`; a map's values as `.*`).
    pub fn path(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            match step {
                Step::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Step::Items => out.push_str("[]"),
                Step::Values => out.push_str(".*"),
            }
        }
        out
    }
}

/// Every protected field of one schema, found once at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The protected places.
    pub targets: Vec<Target>,
}

impl Plan {
    /// The policies of `schema` (a record), checked: each protected field can hold what its
    /// policy stores, and sits where the connector applies policies (under `data`, or the
    /// top-level `description`). Errors name the field.
    pub fn of(schema: &Schema, names: &HashMap<Name, Schema>) -> Result<Self, String> {
        let Schema::Record(record) = schema else {
            return Ok(Self::default());
        };
        let mut plan = Self::default();
        for field in &record.fields {
            let steps = vec![Step::Field(field.name.clone())];
            match field.name.as_str() {
                "data" | "description" => plan.collect(field, steps, names, 0)?,
                _ => {
                    if policy_of(field)?.is_some() {
                        return Err(format!(
                            "field `{}`: only fields under `data` and `description` can be \
                             protected",
                            field.name
                        ));
                    }
                }
            }
        }
        Ok(plan)
    }

    /// True when a policy needs hash keys.
    pub fn hashes(&self) -> bool {
        self.targets.iter().any(|t| t.policy == Policy::Hash)
    }

    /// True when a policy needs encryption keys.
    pub fn encrypts(&self) -> bool {
        self.targets.iter().any(|t| t.policy == Policy::Encrypt)
    }

    fn collect(
        &mut self,
        field: &RecordField,
        steps: Vec<Step>,
        names: &HashMap<Name, Schema>,
        depth: usize,
    ) -> Result<(), String> {
        let at = Target {
            steps: steps.clone(),
            policy: Policy::Drop,
        }
        .path();
        if let Some(policy) = policy_of(field)? {
            let mut steps = steps;
            let holder = element_holder(&field.schema, names, &mut steps);
            let fits = match policy {
                Policy::Drop => {
                    field.default.is_some() || accepts(&field.schema, names, &Schema::Null)
                }
                Policy::Hash | Policy::Encrypt => accepts(holder, names, &Schema::String),
            };
            if !fits {
                return Err(format!(
                    "field `{at}`: \"{PROTECT_ATTRIBUTE}\": \"{}\" needs a field that {}",
                    policy.name(),
                    match policy {
                        Policy::Drop => "takes null or has a default",
                        _ => "takes a string (or an array or map of them)",
                    }
                ));
            }
            self.targets.push(Target { steps, policy });
            return Ok(());
        }
        if depth > 32 {
            return Ok(());
        }
        self.descend(&field.schema, steps, names, depth + 1)
    }

    fn descend(
        &mut self,
        schema: &Schema,
        steps: Vec<Step>,
        names: &HashMap<Name, Schema>,
        depth: usize,
    ) -> Result<(), String> {
        match schema {
            Schema::Record(record) => {
                for field in &record.fields {
                    let mut next = steps.clone();
                    next.push(Step::Field(field.name.clone()));
                    self.collect(field, next, names, depth)?;
                }
            }
            Schema::Array(array) => {
                let mut next = steps;
                next.push(Step::Items);
                self.descend(&array.items, next, names, depth)?;
            }
            Schema::Map(map) => {
                let mut next = steps;
                next.push(Step::Values);
                self.descend(&map.types, next, names, depth)?;
            }
            Schema::Union(union) => {
                for variant in union.variants() {
                    self.descend(variant, steps.clone(), names, depth)?;
                }
            }
            Schema::Ref { name } => {
                if let Some(named) = names.get(name) {
                    if depth <= 32 {
                        self.descend(named, steps, names, depth + 1)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The field's policy attribute, if any.
fn policy_of(field: &RecordField) -> Result<Option<Policy>, String> {
    let Some(value) = field.custom_attributes.get(PROTECT_ATTRIBUTE) else {
        return Ok(None);
    };
    serde_json::from_value(value.clone()).map(Some).map_err(|_| {
        format!(
            "field `{}`: \"{PROTECT_ATTRIBUTE}\" must be \"drop\", \"hash\" or \"encrypt\", not {value}",
            field.name
        )
    })
}

/// The schema a policy applies to: the items of an array (or values of a map) field, else the
/// field itself; adds the step.
fn element_holder<'s>(
    schema: &'s Schema,
    names: &'s HashMap<Name, Schema>,
    steps: &mut Vec<Step>,
) -> &'s Schema {
    let resolved = resolve(schema, names);
    let container = match resolved {
        Schema::Union(union) => union
            .variants()
            .iter()
            .map(|v| resolve(v, names))
            .find(|v| matches!(v, Schema::Array(_) | Schema::Map(_))),
        other => Some(other).filter(|s| matches!(s, Schema::Array(_) | Schema::Map(_))),
    };
    match container {
        Some(Schema::Array(array)) => {
            steps.push(Step::Items);
            &array.items
        }
        Some(Schema::Map(map)) => {
            steps.push(Step::Values);
            &map.types
        }
        _ => schema,
    }
}

fn resolve<'s>(schema: &'s Schema, names: &'s HashMap<Name, Schema>) -> &'s Schema {
    match schema {
        Schema::Ref { name } => names.get(name).unwrap_or(schema),
        other => other,
    }
}

/// True when `schema` is `wanted` or a union with it.
fn accepts(schema: &Schema, names: &HashMap<Name, Schema>, wanted: &Schema) -> bool {
    match resolve(schema, names) {
        Schema::Union(union) => union
            .variants()
            .iter()
            .any(|v| std::mem::discriminant(resolve(v, names)) == std::mem::discriminant(wanted)),
        other => std::mem::discriminant(other) == std::mem::discriminant(wanted),
    }
}

/// A value `reveal` could not open, and why (its path with array indexes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unopened {
    /// Where it is, e.g. `data.matches[2].name`.
    pub path: String,
    /// Why it stays closed: a key not held, another key under a held id, or a box that does
    /// not open here.
    pub error: UnprotectError,
}

/// Opens every encrypted value of a decoded record (`record` as JSON, paths as the
/// connector bound them) in place, with `keys`; returns how many it opened and each value it
/// could not open (left as it is). Used by `tail --reveal`.
pub fn reveal(keys: &Keyring, record: &mut Json, topic: &str, key: &str) -> (usize, Vec<Unopened>) {
    let mut unopened = Vec::new();
    let place = Place { keys, topic, key };
    let opened = place.reveal_at(record, &mut FieldPath::default(), &mut unopened);
    (opened, unopened)
}

/// The record `reveal` opens values of.
struct Place<'a> {
    keys: &'a Keyring,
    topic: &'a str,
    key: &'a str,
}

impl Place<'_> {
    fn open(
        &self,
        sealed: &str,
        path: &FieldPath,
        unopened: &mut Vec<Unopened>,
    ) -> Option<Vec<u8>> {
        self.keys
            .decrypt(sealed, self.topic, self.key, path)
            .map_err(|error| {
                unopened.push(Unopened {
                    path: path.indexed().to_string(),
                    error,
                })
            })
            .ok()
    }

    fn reveal_at(
        &self,
        value: &mut Json,
        path: &mut FieldPath,
        unopened: &mut Vec<Unopened>,
    ) -> usize {
        let before = path.mark();
        let opened = match value {
            // A `riskos.json` field stores JSON text: an encrypted one, the JSON text of its box.
            Json::String(text) if is_json_text_of_box(text) => {
                let plain = serde_json::from_str::<String>(text)
                    .ok()
                    .and_then(|sealed| self.open(&sealed, path, unopened));
                match plain.and_then(|plain| String::from_utf8(plain).ok()) {
                    Some(json_text) => {
                        *value = Json::String(json_text);
                        1
                    }
                    None => 0,
                }
            }
            Json::String(text) if keys::is_encrypted(text) => {
                match self.open(text, path, unopened) {
                    Some(plain) if path.indexed() == RAW_PATH => {
                        *value = Json::String(String::from_utf8_lossy(&plain).into_owned());
                        1
                    }
                    Some(plain) => match serde_json::from_slice(&plain) {
                        Ok(json) => {
                            *value = json;
                            1
                        }
                        Err(_) => 0,
                    },
                    None => 0,
                }
            }
            Json::Object(object) => {
                let mut opened = 0;
                for (name, child) in object.iter_mut() {
                    path.truncate(before);
                    path.push_member(name);
                    opened += self.reveal_at(child, path, unopened);
                }
                opened
            }
            Json::Array(items) => {
                let mut opened = 0;
                for (index, item) in items.iter_mut().enumerate() {
                    path.truncate(before);
                    path.push_index(index);
                    opened += self.reveal_at(item, path, unopened);
                }
                opened
            }
            _ => 0,
        };
        path.truncate(before);
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn schema(data_fields: Json) -> (Schema, HashMap<Name, Schema>) {
        let schema = Schema::parse(&json!({
            "type": "record", "name": "R",
            "fields": [
                {"name": "event_id", "type": "string"},
                {"name": "description", "type": ["null", "string"], "default": null,
                 "riskos.protect": "encrypt"},
                {"name": "data", "type": {"type": "record", "name": "D", "fields": data_fields}},
                {"name": "raw", "type": "string"}
            ]
        }))
        .unwrap();
        let names = apache_avro::schema::ResolvedSchema::try_from(&schema)
            .unwrap()
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), (*s).clone()))
            .collect();
        (schema, names)
    }

    fn keys() -> Keyring {
        Keyring::from_lines(&[K1], &[K1]).unwrap()
    }

    #[test]
    fn policies_reach_every_depth_and_keep_their_place() {
        let (schema, names) = schema(json!([
            {"name": "email", "type": ["null", "string"], "default": null, "riskos.protect": "encrypt"},
            {"name": "entity", "type": ["null", "string"], "default": null, "riskos.protect": "hash"},
            {"name": "note", "type": ["null", "string"], "default": null, "riskos.protect": "drop"},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": [], "riskos.protect": "hash"},
            {"name": "hits", "type": ["null", {"type": "array", "items": {"type": "record", "name": "Hit",
                "fields": [{"name": "name", "type": "string", "riskos.protect": "encrypt"},
                           {"name": "score", "type": "double"}]}}], "default": null},
            {"name": "attributes", "type": ["null", {"type": "map", "values": "string"}], "default": null,
             "riskos.protect": "encrypt"}
        ]));
        let plan = Plan::of(&schema, &names).unwrap();
        let paths: Vec<_> = plan.targets.iter().map(Target::path).collect();
        assert_eq!(
            paths,
            [
                "description",
                "data.email",
                "data.entity",
                "data.note",
                "data.tags[]",
                "data.hits[].name",
                "data.attributes.*"
            ]
        );
        let keys = keys();
        let protection = Protection {
            keys: Some(&keys),
            fields: true,
            raw: RawPolicy::Encrypt,
        };
        let mut data = json!({
            "email": "alice@example.com", "entity": "ent-42", "note": "called her",
            "tags": ["vip", "pep"], "hits": [{"name": "Alice A", "score": 0.9}],
            "attributes": {"dob": "1990-01-01"}, "other": "kept"
        });
        let mut description = Some("Alice's case".to_string());
        protection.apply(&plan, &mut data, &mut description, "t", "k");
        let text = format!("{data} {description:?}");
        for secret in [
            "alice@example.com",
            "ent-42",
            "called her",
            "vip",
            "Alice A",
            "1990",
            "Alice's",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(data["other"], "kept");
        assert_eq!(data["hits"][0]["score"], 0.9);
        assert_eq!(data["note"], Json::Null);
        assert_eq!(data["entity"], keys.hash(b"ent-42"));
        assert_eq!(data["tags"][1], keys.hash(b"pep"));
        let mut hit = FieldPath::of("data");
        hit.push_member("hits");
        hit.push_index(0);
        hit.push_member("name");
        let opened = keys
            .decrypt(data["hits"][0]["name"].as_str().unwrap(), "t", "k", &hit)
            .unwrap();
        assert_eq!(opened, b"\"Alice A\"");
        // The generic reveal finds the same paths (a map's value under its key).
        let mut record = json!({"description": description, "data": data});
        assert_eq!(reveal(&keys, &mut record, "t", "k"), (4, vec![]));
        assert_eq!(record["data"]["attributes"]["dob"], "1990-01-01");
        assert_eq!(record["data"]["email"], "alice@example.com");
        assert_eq!(record["description"], "Alice's case");
    }

    #[test]
    fn a_policy_the_field_cannot_hold_is_refused_naming_it() {
        for (fields, words) in [
            (
                json!([{"name": "n", "type": "long", "riskos.protect": "hash"}]),
                "data.n",
            ),
            (
                json!([{"name": "s", "type": "string", "riskos.protect": "drop"}]),
                "takes null",
            ),
            (
                json!([{"name": "s", "type": "string", "riskos.protect": "scramble"}]),
                "\"drop\"",
            ),
        ] {
            let (schema, names) = schema(fields);
            let error = Plan::of(&schema, &names).unwrap_err();
            assert!(error.contains(words), "{error}");
        }
        let top = Schema::parse(&json!({"type": "record", "name": "T", "fields": [
            {"name": "event_id", "type": "string", "riskos.protect": "hash"}]}))
        .unwrap();
        assert!(Plan::of(&top, &HashMap::new())
            .unwrap_err()
            .contains("only fields under"));
    }

    #[test]
    fn reveal_opens_the_json_text_of_an_encrypted_json_field() {
        // A `riskos.json` field holds JSON text; protected, the JSON text of its box.
        let keys = keys();
        let sealed = keys.encrypt(br#"{"score":0.9}"#, "t", "k", "data.enrichments");
        let mut record = json!({"data": {"enrichments": serde_json::to_string(&sealed).unwrap()}});
        assert_eq!(reveal(&keys, &mut record, "t", "k"), (1, vec![]));
        assert_eq!(record["data"]["enrichments"], r#"{"score":0.9}"#);
    }

    #[test]
    fn bodies_follow_the_raw_policy() {
        let keys = keys();
        let with = |raw| Protection {
            keys: Some(&keys),
            fields: true,
            raw,
        };
        assert_eq!(&*with(RawPolicy::Keep).body(b"{}", "t", "k"), b"{}");
        assert!(with(RawPolicy::Drop).body(b"{}", "t", "k").is_empty());
        let sealed = with(RawPolicy::Encrypt).body(b"{\"a\":1}", "t", "k");
        let sealed = std::str::from_utf8(&sealed).unwrap();
        assert_eq!(
            keys.decrypt(sealed, "t", "k", &FieldPath::of(RAW_PATH))
                .unwrap(),
            b"{\"a\":1}"
        );
    }

    #[test]
    fn items_of_an_array_are_bound_to_their_index_and_cannot_be_swapped() {
        let keys = keys();
        let (schema, names) = schema(json!([{"name": "names",
            "type": {"type": "array", "items": "string"}, "default": [],
            "riskos.protect": "encrypt"}]));
        let plan = Plan::of(&schema, &names).unwrap();
        let protection = Protection {
            keys: Some(&keys),
            fields: true,
            raw: RawPolicy::Drop,
        };
        let mut data = json!({"names": ["Alice", "Bob"]});
        protection.apply(&plan, &mut data, &mut None, "t", "k");
        let mut swapped = json!({"data": {"names": [data["names"][1], data["names"][0]]}});
        let (opened, unopened) = reveal(&keys, &mut swapped, "t", "k");
        assert_eq!(opened, 0);
        assert_eq!(
            unopened,
            ["data.names[0]", "data.names[1]"].map(|path| Unopened {
                path: path.into(),
                error: UnprotectError::Rejected
            })
        );
        let mut record = json!({"data": data});
        assert_eq!(reveal(&keys, &mut record, "t", "k").0, 2);
        assert_eq!(record["data"]["names"], json!(["Alice", "Bob"]));
    }

    #[test]
    fn reveal_reports_values_under_keys_it_does_not_hold_instead_of_passing_over_them() {
        let keys = keys();
        let sealed = keys.encrypt(b"\"Alice\"", "t", "k", "data.name");
        let again =
            Keyring::from_lines(&[], &["k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="]).unwrap();
        let other =
            Keyring::from_lines(&[], &["k9:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="]).unwrap();
        for (ring, expected) in [
            (&again, "another key under the same id"),
            (&other, "which is not configured"),
        ] {
            let mut record = json!({"data": {"name": sealed}});
            let (opened, unopened) = reveal(ring, &mut record, "t", "k");
            assert_eq!((opened, unopened.len()), (0, 1));
            assert_eq!(unopened[0].path, "data.name");
            let message = unopened[0].error.to_string();
            assert!(message.contains(expected), "{message}");
            assert_eq!(record["data"]["name"], sealed, "left as it is");
        }
    }
}
