//! `riskos-connector validate FILE...`: normalization and encoding offline (no Kafka, no
//! registry), printing the record each file would become or the exact error. With the
//! `[protection]` keys configured, the record is protected as the endpoint would store it
//! (`"protected": true`); `--reveal` then also prints it with the encrypted values opened.

use std::path::Path;

use serde_json::{json, Value};

use crate::pipeline::envelope::EnvelopeKind;
use crate::pipeline::prepare_accepting;
use crate::pipeline::protect::{Keyring, Protection, RawPolicy};
use crate::pipeline::route::Routes;
use crate::pipeline::schema::decode;
use crate::wiring::config::{Config, EndpointConfig};

/// What `validate` checks files against: one endpoint's topic prefix and envelopes, with the
/// routes from `schemas/` in single-object framing (no registry).
pub struct Offline {
    routes: Routes,
    envelopes: Vec<EnvelopeKind>,
    keys: Option<Keyring>,
    fields: bool,
    raw: RawPolicy,
    reveal: bool,
}

impl Offline {
    /// The endpoint named (or the only one); with no endpoint configured, the defaults of
    /// one (`riskos.`, both envelopes), so a payload can be checked without a config.
    pub fn new(config: &Config, endpoint: Option<&str>, reveal: bool) -> anyhow::Result<Self> {
        let default = EndpointConfig::default();
        let endpoint = if config.endpoints.is_empty() && endpoint.is_none() {
            &default
        } else {
            config.endpoint(endpoint)?
        };
        let catalog = crate::pipeline::schema::Catalog::load(&config.schemas.dir)?;
        let keys = Keyring::from_config(&config.protection).map_err(|e| e.within("protection"))?;
        // Offline, a payload is checked even without keys: protected when both kinds are there.
        let keys = (keys.can_encrypt() && keys.can_hash()).then_some(keys);
        Ok(Self {
            routes: crate::pipeline::route::single_object_routes(&catalog, &endpoint.topic_prefix),
            envelopes: endpoint.envelopes.clone(),
            keys,
            fields: endpoint.protect_fields,
            raw: endpoint.raw,
            reveal,
        })
    }

    fn protection(&self) -> Protection<'_> {
        match &self.keys {
            Some(keys) => Protection {
                keys: Some(keys),
                fields: self.fields,
                raw: self.raw,
            },
            None => Protection::OFF,
        }
    }
}

/// The JSON line for one file: `{"file", "ok": true, "topic", "key", "record"}` or
/// `{"file", "ok": false, "reason", "field", "error"}`.
pub fn validate_file(offline: &Offline, path: &Path) -> Value {
    let file = path.display().to_string();
    let body = match std::fs::read(path) {
        Ok(body) => body,
        Err(e) => {
            return json!({"file": file, "ok": false, "reason": "unreadable", "error": e.to_string()})
        }
    };
    let received_at = crate::common::clock::now_millis();
    match prepare_accepting(
        &offline.routes,
        &offline.envelopes,
        offline.protection(),
        &body,
        received_at,
    ) {
        Ok(prepared) => {
            let prefix = prepared.route.wire_prefix.len();
            let record = decode::datum(&prepared.route.schema.schema, &prepared.payload[prefix..])
                .unwrap_or_else(|e| json!({"decode_error": e.to_string()}));
            let mut line = json!({
                "file": file, "ok": true, "topic": prepared.route.topic,
                "key": prepared.key, "protected": offline.keys.is_some(), "record": record,
            });
            if let (true, Some(keys)) = (offline.reveal, &offline.keys) {
                let mut revealed = line["record"].clone();
                crate::pipeline::protect::reveal(
                    keys,
                    &mut revealed,
                    &prepared.route.topic,
                    &prepared.key,
                );
                line["revealed"] = revealed;
            }
            line
        }
        Err(error) => json!({
            "file": file, "ok": false, "reason": error.reason(),
            "field": error.field(), "error": error.to_string(),
        }),
    }
}
