//! The OpenAPI 3.1 document of the HTTP surface, built from the config: each endpoint's
//! webhook (its envelopes, security scheme and required headers), its token endpoint when one
//! is served, `/healthz`, `/readyz`, `/metrics` and `/openapi.json` itself. Every status the
//! [error mapping](super::error) can give is listed with its headers and body, so a client,
//! gateway or scanner (the tests run schemathesis against a live connector) can check every
//! answer against it. Served at `GET /openapi.json`; `docs/openapi.json` is the document of
//! `docs/openapi.toml` (refreshed by `UPDATE_OPENAPI=1 cargo test --test openapi`).
//!
//! Secrets never appear: required headers are listed by name only.

use serde_json::{json, Map, Value};

use crate::ingress::auth::standard_webhooks::{STANDARD_HEADERS, SVIX_HEADERS};
use crate::ingress::auth::AuthMode;
use crate::ingress::endpoint::EndpointConfig;
use crate::pipeline::envelope::EnvelopeKind;

/// Where the document is served.
pub const PATH: &str = "/openapi.json";

/// The document for the endpoints (`[[endpoints]]`), their bodies at most `max_body_bytes`.
pub fn document(endpoints: &[EndpointConfig], max_body_bytes: usize) -> Value {
    let mut paths = Map::new();
    let mut schemes = Map::new();
    for endpoint in endpoints {
        let security = security(endpoint, &mut schemes);
        paths.insert(
            endpoint.path.clone(),
            json!({"post": webhook(endpoint, security, max_body_bytes)}),
        );
        if let Some(path) = token_endpoint_path(endpoint) {
            let scheme = format!("{}_token_client", endpoint.name);
            schemes.insert(
                scheme.clone(),
                json!({
                    "type": "http",
                    "scheme": "basic",
                    "description": "Client authentication (RFC 6749 §2.3.1); or `client_id` and \
                                    `client_secret` in the body.",
                }),
            );
            paths.insert(
                path.to_string(),
                json!({"post": token_operation(endpoint, &scheme)}),
            );
        }
    }
    paths.insert("/healthz".into(), healthz());
    paths.insert("/readyz".into(), readyz());
    paths.insert("/metrics".into(), metrics());
    paths.insert(PATH.into(), openapi());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "riskos-connector",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Receives RiskOS and request-token webhooks and produces them to Kafka. \
                            A webhook is answered 200 only after Kafka acknowledged the record (or \
                            the local spool took it); the sender retries 408, 429 and 503.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "securitySchemes": schemes,
            "schemas": schemas(),
            "headers": headers(),
        },
    })
}

/// The token endpoint's path, when `endpoint` serves one (as [`TokenIssuer`] decides).
///
/// [`TokenIssuer`]: crate::ingress::auth::token_endpoint::TokenIssuer
fn token_endpoint_path(endpoint: &EndpointConfig) -> Option<&str> {
    let token = &endpoint.auth.oauth2.token_endpoint;
    (endpoint.auth.mode == Some(AuthMode::OAuth2) && token.enabled()).then_some(token.path.as_str())
}

/// Adds `endpoint`'s security schemes and returns its operation's `security`.
fn security(endpoint: &EndpointConfig, schemes: &mut Map<String, Value>) -> Value {
    let name = |suffix: &str| format!("{}_{suffix}", endpoint.name);
    let api_key = |header: &str, description: &str| json!({"type": "apiKey", "in": "header", "name": header, "description": description});
    let mut require = Map::new();
    match endpoint.auth.mode {
        None | Some(AuthMode::None) => return json!([]),
        Some(AuthMode::Basic) => {
            schemes.insert(name("basic"), json!({"type": "http", "scheme": "basic"}));
            require.insert(name("basic"), json!([]));
        }
        Some(AuthMode::Bearer) => {
            schemes.insert(
                name("bearer"),
                json!({"type": "http", "scheme": "bearer", "description": "A static token."}),
            );
            require.insert(name("bearer"), json!([]));
        }
        Some(AuthMode::OAuth2) => {
            let oauth2 = &endpoint.auth.oauth2;
            let scopes = match &oauth2.required_scope {
                Some(scope) => json!({scope.clone(): "Required to send webhooks."}),
                None => json!({}),
            };
            let scheme = match token_endpoint_path(endpoint) {
                Some(path) => json!({
                    "type": "oauth2",
                    "description": "JWT access tokens from the built-in token endpoint or the \
                                    identity provider, as `Authorization: Bearer`.",
                    "flows": {"clientCredentials": {"tokenUrl": path, "scopes": scopes}},
                }),
                None => json!({
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": format!("JWT access tokens issued by `{}`.", oauth2.issuer),
                }),
            };
            schemes.insert(name("oauth2"), scheme);
            let scopes: Vec<&String> = oauth2.required_scope.iter().collect();
            require.insert(name("oauth2"), json!(scopes));
        }
        Some(AuthMode::Hmac) => {
            let hmac = &endpoint.auth.hmac;
            schemes.insert(
                name("hmac"),
                api_key(
                    &hmac.header,
                    "HMAC-SHA256 of the body (hex or base64; an optional `sha256=` prefix).",
                ),
            );
            require.insert(name("hmac"), json!([]));
            if let Some(timestamp) = &hmac.timestamp_header {
                schemes.insert(
                    name("hmac_timestamp"),
                    api_key(timestamp, "Unix seconds, covered by the signature."),
                );
                require.insert(name("hmac_timestamp"), json!([]));
            }
        }
        Some(AuthMode::StandardWebhooks) => {
            // Two alternatives (a request meets one requirement object of the list): the
            // Standard Webhooks names, or the ones Svix sends by default; never a mix.
            let mut alternatives = Vec::new();
            for (family, [id, timestamp, signature]) in
                [("webhook", STANDARD_HEADERS), ("svix", SVIX_HEADERS)]
            {
                let mut require = Map::new();
                for (suffix, header, description) in [
                    ("id", id, "The message id (idempotency key)."),
                    ("timestamp", timestamp, "Unix seconds."),
                    (
                        "signature",
                        signature,
                        "`v1,<base64 HMAC-SHA256>` and/or `v1a,<base64 Ed25519>` signatures.",
                    ),
                ] {
                    let scheme = name(&format!("{family}_{suffix}"));
                    schemes.insert(scheme.clone(), api_key(header, description));
                    require.insert(scheme, json!([]));
                }
                alternatives.push(Value::Object(require));
            }
            return Value::Array(alternatives);
        }
    }
    json!([require])
}

/// `POST <endpoint.path>`.
fn webhook(endpoint: &EndpointConfig, security: Value, max_body_bytes: usize) -> Value {
    let envelopes: Vec<Value> = endpoint
        .envelopes
        .iter()
        .map(|kind| match kind {
            EnvelopeKind::Event => json!({"$ref": "#/components/schemas/RiskOsEvent"}),
            EnvelopeKind::RequestToken => {
                json!({"$ref": "#/components/schemas/RequestTokenEvent"})
            }
        })
        .collect();
    let body = json!({"schema": {"oneOf": envelopes}});
    let parameters: Vec<Value> = endpoint
        .required_headers
        .iter()
        .map(|header| {
            json!({
                "name": header.name,
                "in": "header",
                "required": true,
                "description": "A static header the sender must present (its value is a secret).",
                "schema": {"type": "string"},
            })
        })
        .collect();
    let mut responses = rejections(&[
        (
            "400",
            "Not a usable webhook: not JSON, neither envelope, or a field the schema refuses \
             (the body is kept raw in the quarantine topic), or a body that broke off before \
             its end (`body_read`, nothing kept).",
        ),
        (
            "401",
            "No valid credentials, or a required header missing or wrong.",
        ),
        (
            "403",
            "The client address is not in the endpoint's `allow_cidrs`.",
        ),
        (
            "408",
            "The request took longer than `http.request_timeout_ms` or the body than \
             `http.body_read_timeout_ms`; retry.",
        ),
        (
            "413",
            &format!("The body is larger than {max_body_bytes} bytes (`http.max_body_bytes`)."),
        ),
        (
            "415",
            "`Content-Type` is not `application/json` or `application/*+json` (UTF-8).",
        ),
        (
            "429",
            "Over the endpoint's `rate_limit_per_ip`, or (`hmac`, `standard-webhooks`) this \
             address already holds a quarter of the endpoint's body bytes in flight; retry \
             after `Retry-After`.",
        ),
        (
            "431",
            "Request headers larger than `http.max_header_bytes`.",
        ),
        (
            "503",
            "Not stored (Kafka slow or down and no spool, overload, shutting down); retry after \
             `Retry-After`.",
        ),
    ]);
    responses.insert(
        "200".into(),
        json!({
            "description": "Stored: on its event topic (`accepted`) or kept raw in the quarantine \
                            topic for a schema fix and replay (`quarantined`).",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
        }),
    );
    json!({
        "operationId": format!("webhook_{}", endpoint.name),
        "summary": format!("Webhooks of endpoint `{}`", endpoint.name),
        "tags": ["webhooks"],
        "security": security,
        "parameters": parameters,
        "requestBody": {
            "required": true,
            "content": {"application/json": body.clone(), "application/*+json": body},
        },
        "responses": sorted(responses),
    })
}

/// `POST <token_endpoint.path>`.
fn token_operation(endpoint: &EndpointConfig, scheme: &str) -> Value {
    let body = json!({"schema": {"$ref": "#/components/schemas/TokenRequest"}});
    let mut responses = rejections(&[
        (
            "400",
            "RFC 6749 §5.2 `invalid_request` or `unsupported_grant_type` in `error`.",
        ),
        ("401", "`invalid_client`: unknown client or wrong secret."),
        (
            "403",
            "The client address is not in the endpoint's `allow_cidrs`.",
        ),
        ("408", "The request took too long."),
        ("413", "The body is larger than 8 KiB."),
        (
            "429",
            "Over the rate limit, or the address must wait after repeated failed client \
             authentications; retry after `Retry-After`.",
        ),
        (
            "431",
            "Request headers larger than `http.max_header_bytes`.",
        ),
        ("503", "Overloaded; retry after `Retry-After`."),
    ]);
    responses.insert(
        "200".into(),
        json!({
            "description": "An access token (RFC 6749 §5.1).",
            "headers": {
                "X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"},
                "Cache-Control": {"required": true, "schema": {"const": "no-store"}},
                "Pragma": {"required": true, "schema": {"const": "no-cache"}},
            },
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}},
            },
        }),
    );
    json!({
        "operationId": format!("token_{}", endpoint.name),
        "summary": format!("OAuth2 client-credentials tokens for endpoint `{}`", endpoint.name),
        "tags": ["oauth2"],
        "security": [{scheme: []}, {}],
        "requestBody": {
            "required": true,
            "content": {"application/x-www-form-urlencoded": body.clone(), "application/json": body},
        },
        "responses": sorted(responses),
    })
}

/// Rejections as [`ApiError`](super::ApiError) answers them: its body, `Connection: close`,
/// `Retry-After` on 429 and 503, `WWW-Authenticate` on 401.
fn rejections(statuses: &[(&str, &str)]) -> Map<String, Value> {
    statuses
        .iter()
        .map(|(status, description)| {
            let mut headers = json!({
                "X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"},
                "Connection": {"$ref": "#/components/headers/Connection"},
            });
            match *status {
                "401" => {
                    headers["WWW-Authenticate"] =
                        json!({"$ref": "#/components/headers/WWW-Authenticate"})
                }
                "429" | "503" => {
                    headers["Retry-After"] = json!({"$ref": "#/components/headers/Retry-After"})
                }
                _ => {}
            }
            let response = json!({
                "description": description,
                "headers": headers,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Rejection"}},
                },
            });
            (status.to_string(), response)
        })
        .collect()
}

fn sorted(map: Map<String, Value>) -> Value {
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(entries.into_iter().collect())
}

fn healthz() -> Value {
    json!({"get": {
        "operationId": "healthz",
        "summary": "Liveness: the process is up and serving (`starting` while start-up waits, \
                    e.g. for the schema registry). With a registry, `checks.schema_registry` is \
                    its last background check: shown, never a reason to restart.",
        "tags": ["operations"],
        "security": [],
        "responses": {"200": {
            "description": "Alive.",
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"enum": ["ok", "starting"]},
                    "checks": {
                        "type": "object",
                        "properties": {"schema_registry": {"enum": ["ok", "unreachable"]}},
                    },
                },
            }}},
        }},
    }})
}

fn readyz() -> Value {
    json!({"get": {
        "operationId": "readyz",
        "summary": "Readiness: started, not shutting down, spool below its high-water mark, \
                    Kafka reachable (the schema registry is not asked: schemas are resolved at \
                    start-up).",
        "tags": ["operations"],
        "security": [],
        "responses": {
            "200": {
                "description": "Ready (Kafka may be `degraded` while a spool takes webhooks).",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}},
            },
            "503": {
                "description": "Not ready; `failed` names the first failed check.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NotReady"}}},
            },
        },
    }})
}

fn metrics() -> Value {
    json!({"get": {
        "operationId": "metrics",
        "summary": "Prometheus metrics (text exposition format).",
        "tags": ["operations"],
        "security": [],
        "responses": {"200": {
            "description": "The metrics.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }},
    }})
}

fn openapi() -> Value {
    json!({"get": {
        "operationId": "openapi",
        "summary": "This document.",
        "tags": ["operations"],
        "security": [],
        "responses": {"200": {
            "description": "The OpenAPI 3.1 document of this connector's HTTP surface.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }},
    }})
}

fn headers() -> Value {
    json!({
        "X-Request-Id": {
            "description": "The request's id: the caller's `X-Request-Id` when it is 1 to 128 \
                            visible ASCII characters, else a generated one. In every log line \
                            of the request.",
            "required": true,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        },
        "Connection": {
            "description": "A rejected request's body may be unread: the connection is closed \
                            after the answer.",
            "required": true,
            "schema": {"const": "close"},
        },
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "required": true,
            "schema": {"type": "integer", "minimum": 1},
        },
        "WWW-Authenticate": {
            "description": "The endpoint's scheme: `Basic`, `Bearer` (RFC 6750), \
                            `HMAC-SHA256` or `Standard-Webhooks`, realm `riskos-connector`.",
            "required": true,
            "schema": {"type": "string", "minLength": 1},
        },
    })
}

fn schemas() -> Value {
    json!({
        "RiskOsEvent": {
            "title": "RiskOS event",
            "description": "Other top-level fields (e.g. `customer_metadata`) are kept.",
            "type": "object",
            "required": ["event_id", "event_type", "event_at"],
            "properties": {
                "event_id": {"$ref": "#/components/schemas/EventId"},
                "event_type": {
                    "$ref": "#/components/schemas/EventType",
                    "description": "e.g. `create:cases`; names the topic.",
                },
                "event_at": {
                    "type": "string", "format": "date-time",
                    "description": "RFC 3339, up to nine fractional digits.",
                },
                "data": {"description": "The event's data; absent is null."},
            },
            "additionalProperties": true,
        },
        "RequestTokenEvent": {
            "title": "Request-token event",
            "description": "The older envelope (e.g. Alloy). Other top-level fields are kept.",
            "type": "object",
            "required": ["request_token", "type", "timestamp"],
            "properties": {
                "request_token": {"$ref": "#/components/schemas/EventId"},
                "type": {"$ref": "#/components/schemas/EventType"},
                "timestamp": {
                    "type": "integer", "minimum": 0,
                    "description": "Epoch milliseconds.",
                },
                "description": {"type": ["string", "null"]},
                "data": {"description": "The event's data; absent is null."},
            },
            "additionalProperties": true,
        },
        "EventId": {
            "description": "The Kafka key: at most 256 UTF-8 bytes, no control characters, no \
                            surrounding whitespace.",
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f](?:[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f])?$",
        },
        "EventType": {
            "description": "At most 256 UTF-8 bytes, no control characters.",
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
        },
        "Accepted": {
            "type": "object",
            "required": ["status", "event_id"],
            "properties": {
                "status": {"enum": ["accepted", "quarantined"]},
                "event_id": {"type": "string", "description": "The stored event id (Kafka key)."},
                "reason": {"type": "string", "description": "Why it was quarantined."},
                "duplicate": {
                    "const": true,
                    "description": "An identical earlier request already stored it.",
                },
                "spooled": {
                    "const": true,
                    "description": "On the local spool, waiting for Kafka.",
                },
            },
            "additionalProperties": false,
        },
        "Rejection": {
            "type": "object",
            "required": ["status", "error"],
            "properties": {
                "status": {"const": "rejected"},
                "error": {
                    "type": "string",
                    "description": "What was wrong; on the token endpoint, the RFC 6749 §5.2 \
                                    error code.",
                },
            },
            "additionalProperties": false,
        },
        "TokenRequest": {
            "type": "object",
            "required": ["grant_type"],
            "properties": {
                "grant_type": {"const": "client_credentials"},
                "client_id": {"type": "string"},
                "client_secret": {"type": "string"},
                "scope": {"type": "string"},
            },
            "additionalProperties": true,
        },
        "TokenResponse": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in"],
            "properties": {
                "access_token": {"type": "string", "description": "A JWT (HS256)."},
                "token_type": {"const": "Bearer"},
                "expires_in": {"type": "integer", "minimum": 1},
                "scope": {"type": "string"},
            },
            "additionalProperties": false,
        },
        "Checks": {
            "type": "object",
            "description": "Each check (`starting`, `shutdown`, `spool`, `kafka`) and its \
                            result.",
            "additionalProperties": {"enum": ["ok", "failed", "degraded"]},
        },
        "Ready": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": {"const": "ready"},
                "checks": {"$ref": "#/components/schemas/Checks"},
            },
        },
        "NotReady": {
            "type": "object",
            "required": ["status", "failed", "checks"],
            "properties": {
                "status": {"const": "not_ready"},
                "failed": {"type": "string"},
                "checks": {"$ref": "#/components/schemas/Checks"},
            },
        },
    })
}
