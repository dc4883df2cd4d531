//! `riskos-connector validate FILE...`: normalization and encoding offline (no Kafka, no
//! registry), printing the record each file would become or the exact error.

use std::path::Path;

use serde_json::{json, Value};

use crate::config::Config;
use crate::pipeline::prepare;
use crate::route::Routes;
use crate::schema::decode;

/// The routes as `validate` uses them: from `schemas/`, single-object framing, no registry.
pub fn offline_routes(config: &Config) -> anyhow::Result<Routes> {
    let catalog = crate::schema::Catalog::load(&config.schemas.dir)?;
    Ok(crate::route::single_object_routes(
        &catalog,
        &config.topics.prefix,
    ))
}

/// The JSON line for one file: `{"file", "ok": true, "topic", "key", "record"}` or
/// `{"file", "ok": false, "reason", "field", "error"}`.
pub fn validate_file(routes: &Routes, path: &Path) -> Value {
    let file = path.display().to_string();
    let body = match std::fs::read(path) {
        Ok(body) => body,
        Err(e) => {
            return json!({"file": file, "ok": false, "reason": "unreadable", "error": e.to_string()})
        }
    };
    let received_at = crate::clock::now_millis();
    match prepare(routes, &body, received_at) {
        Ok(prepared) => {
            let prefix = prepared.route.wire_prefix.len();
            let record = decode::datum(&prepared.route.schema.schema, &prepared.payload[prefix..])
                .unwrap_or_else(|e| json!({"decode_error": e.to_string()}));
            json!({
                "file": file, "ok": true, "topic": prepared.route.topic,
                "key": prepared.key, "record": record,
            })
        }
        Err(error) => json!({
            "file": file, "ok": false, "reason": error.reason(),
            "field": error.field(), "error": error.to_string(),
        }),
    }
}
