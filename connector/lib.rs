//! riskos-connector: RiskOS and request-token webhooks in, Avro records on per-event-type
//! compacted Kafka topics out. The HTTP reply waits for Kafka's ack.
//!
//! Data flows one way through these modules:
//!
//! | step | module | job |
//! |---|---|---|
//! | admit | [`auth`] | the auth mode (basic, bearer, OAuth2 JWT + token endpoint, HMAC), source IPs |
//! | ingress | [`http`] | router, guard and limits, TLS listener, webhook handler (content type, size), health, error→status |
//! | normalize | [`envelope`] | two envelope styles → one [`envelope::Event`] |
//! | encode | [`schema`] | catalog of `schemas/`, record builder, JSON→Avro converter, wire prefix, registry |
//! | route | [`route`] | event type → topic and schema |
//! | produce | [`kafka`] | the shared idempotent producer, topic creation |
//! | glue | [`pipeline`] | prepare (pure) and deliver, used by the handler and the CLI |
//!
//! [`config`] holds every setting, [`app`] builds and runs the service, [`telemetry`] sets up
//! logs. `main.rs` only parses the command line.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod envelope;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod net;
pub mod pipeline;
pub mod record_size;
pub mod route;
pub mod schema;
pub mod secret;
pub mod setting;
pub mod telemetry;
pub mod tools;
pub mod topology;
