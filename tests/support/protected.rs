//! What a body carries that the schemas protect: its protected values found through the
//! schema's plan (the paths the connector binds encrypted values to), and the text a leak of
//! each would show. Used by `protection.rs` in `tests/surface` and in `tests/kafka`.

use riskos_connector::pipeline::envelope::normalize;
use riskos_connector::pipeline::protect::{Policy, Step};
use riskos_connector::pipeline::schema::Catalog;
use serde_json::{json, Value};

/// One protected value of a body: where, its policy, and what was sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub path: String,
    pub policy: Policy,
    pub value: Value,
}

/// Every protected value `body` carries, found through its schema's plan (the same paths the
/// connector binds encrypted values to).
pub fn protected_values(catalog: &Catalog, body: &[u8]) -> Vec<Sent> {
    let event = normalize(serde_json::from_slice(body).unwrap()).unwrap();
    let schema = catalog
        .get(&event.event_type)
        .unwrap_or_else(|| catalog.fallback());
    let mut out = Vec::new();
    for target in &schema.plan.targets {
        let (root, rest) = target.steps.split_first().unwrap();
        match root {
            Step::Field(name) if name == "data" => {
                walk(&event.data, rest, "data".into(), target.policy, &mut out);
            }
            Step::Field(name) if name == "description" => {
                if let Some(text) = &event.description {
                    out.push(Sent {
                        path: "description".into(),
                        policy: target.policy,
                        value: Value::String(text.clone()),
                    });
                }
            }
            _ => unreachable!("plans hold data and description only"),
        }
    }
    out
}

fn walk(value: &Value, steps: &[Step], path: String, policy: Policy, out: &mut Vec<Sent>) {
    let Some((step, rest)) = steps.split_first() else {
        if !value.is_null() {
            out.push(Sent {
                path,
                policy,
                value: value.clone(),
            });
        }
        return;
    };
    match (step, value) {
        (Step::Field(name), Value::Object(object)) => {
            if let Some(child) = object.get(name) {
                walk(child, rest, format!("{path}.{name}"), policy, out);
            }
        }
        (Step::Items, Value::Array(items)) => {
            for item in items {
                walk(item, rest, format!("{path}[]"), policy, out);
            }
        }
        (Step::Values, Value::Object(entries)) => {
            for (key, child) in entries {
                walk(child, rest, format!("{path}.{key}"), policy, out);
            }
        }
        _ => {}
    }
}

/// The text a leak would show: a string as is, anything else as JSON; too short to be
/// told from other bytes (`1`, `ok`) is not searched.
pub fn needle(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    (text.len() >= 4).then_some(text)
}

/// The first value at a protection path in a decoded record (`[]` takes the first item).
pub fn first_at(record: &Value, path: &str) -> Value {
    let mut at = record;
    for part in path.split('.') {
        let (name, items) = match part.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        at = &at[name];
        if items {
            at = &at[0];
        }
    }
    at.clone()
}

/// Bodies written for this test: personal data where the schemas protect it, a body the
/// schema refuses (quarantined 200) and one that is not JSON (quarantined 400).
pub fn written_payloads(catalog: &Catalog, base: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, body) in base {
        // Every protected string value replaced by a recognisable personal value, so a leak
        // cannot hide behind a short or common fixture value.
        let mut json: Value = serde_json::from_slice(body).unwrap();
        let sent = protected_values(catalog, body);
        for (i, s) in sent.iter().enumerate() {
            if s.value.is_string() {
                set_first(
                    &mut json,
                    &s.path,
                    json!(format!("Jane Personal-{i} <jane.{i}@example.org>")),
                );
            }
        }
        out.push((
            format!("written from {name}"),
            serde_json::to_vec(&json).unwrap(),
        ));
    }
    out
}

/// Sets the first value at a protection path (`data.a[].b`, map values by key).
pub fn set_first(root: &mut Value, path: &str, new: Value) {
    let mut parts = path.split('.').peekable();
    let mut at = root;
    while let Some(part) = parts.next() {
        let (name, items) = match part.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        let Some(next) = at.get_mut(name) else { return };
        at = if items {
            match next.get_mut(0) {
                Some(first) => first,
                None => return,
            }
        } else {
            next
        };
        if parts.peek().is_none() {
            *at = new;
            return;
        }
    }
}
