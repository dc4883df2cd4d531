//! riskos-connector: RiskOS and request-token webhooks in, Avro records on per-event-type
//! compacted Kafka topics out. The HTTP reply waits for Kafka's ack.
//!
//! Data flows one way through these modules:
//!
//! | step | module | job |
//! |---|---|---|
//! | admit | [`auth`] | the auth modes (basic, bearer, OAuth2 JWT + token endpoint, HMAC, Standard Webhooks) |
//! | ingress | [`http`] | one route per endpoint, its guard (sources, rate, capacity share, credentials, required headers), TLS listener, webhook handler (content type, size), health, error→status |
//! | normalize | [`envelope`] | two envelope styles → one [`envelope::Event`] |
//! | encode | [`schema`] | catalog of `schemas/`, record builder, JSON→Avro converter, wire prefix, registry |
//! | route | [`route`] | event type → topic and schema |
//! | produce | [`kafka`] | the shared idempotent producer, topic creation |
//! | glue | [`pipeline`] | one per endpoint: prepare (pure), deliver with the `endpoint` header, quarantine |
//! | store | [`delivery`] | the duplicate cache over the store (Kafka + spool, or memory in tests) |
//!
//! [`config`] holds every setting (`[http]` for the listener, `[[endpoints]]` for each
//! webhook endpoint), [`topology`] sets up what the connector needs around it, [`app`] builds
//! and runs the service, [`fd_limit`] fits its connection cap to the open-file limit,
//! [`telemetry`] sets up logs. `main.rs` only parses the command line.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod envelope;
pub mod fd_limit;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod net;
pub mod pipeline;
pub mod protect;
pub mod record_size;
pub mod route;
pub mod schema;
pub mod secret;
pub mod setting;
pub mod telemetry;
pub mod tools;
pub mod topology;
