//! `[log]` and `[tracing]`: logs and trace export, owned here; the configuration layers
//! and checks them with the rest.

use serde::{Deserialize, Serialize};

/// `[log]`: logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `json` (one object per line, for log shippers) or `text`. Default `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `riskos_connector=debug,rdkafka=warn`; `RUST_LOG`
    /// wins when set. Default `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

/// `[tracing]`: OpenTelemetry trace export (off by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// OTLP/HTTP collector base URL, e.g. `http://otel-collector:4318`; spans go to
    /// `<url>/v1/traces`. Unset = no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans. Default `riskos-connector`.
    pub service_name: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "riskos-connector".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}
