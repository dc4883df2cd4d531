//! Logs and traces: `tracing` to stderr as JSON ([`json_line`]) or text, filtered by `RUST_LOG`
//! or `log.level` and written a buffer at a time ([`log_buffer`]); and, when
//! `tracing.otlp_endpoint` is set, spans exported over OTLP/HTTP with a W3C trace-context
//! propagator so a caller's `traceparent` becomes the request span's parent.

pub(crate) mod json_line;
pub(crate) mod log_buffer;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

pub(crate) mod config;

pub use config::{LogConfig, LogFormat, TracingConfig};

/// Keeps the exporter and the log buffer alive; [`Telemetry::shutdown`] flushes spans and log
/// lines still buffered (dropping it writes the log lines too).
#[must_use]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    logs: log_buffer::Flusher,
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter; writes the log lines left.
    pub fn shutdown(self) {
        self.logs.finish();
        if let Some(provider) = self.provider {
            if let Err(error) = provider.shutdown() {
                eprintln!("riskos-connector: flushing traces failed: {error}");
            }
        }
    }
}

/// Installs the global subscriber. Call once, before anything logs. Must run inside a Tokio
/// runtime when OTLP export is on.
pub fn init(log: &LogConfig, traces: &TracingConfig) -> anyhow::Result<Telemetry> {
    let (logs, flusher) = log_layers(log, Box::new(std::io::stderr()));
    let provider = match &traces.otlp_endpoint {
        Some(endpoint) => Some(otlp_provider(endpoint, &traces.service_name)?),
        None => None,
    };
    let otel = provider.as_ref().map(|p| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        tracing_opentelemetry::layer().with_tracer(p.tracer("riskos-connector"))
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init();
    Ok(Telemetry {
        provider,
        logs: flusher,
    })
}

/// Targets never logged below `warn`, whatever the level: aws-sigv4 writes the canonical
/// request at `trace`, and an MSK IAM token's request holds the session token.
const CAPPED_TARGETS: &[&str] = &["aws_sigv4"];

/// `RUST_LOG`, else `level`, with [`CAPPED_TARGETS`] held at `warn`.
fn level_filter(level: &str) -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    CAPPED_TARGETS.iter().fold(filter, |filter, target| {
        match format!("{target}=warn").parse() {
            Ok(directive) => filter.add_directive(directive),
            Err(_) => filter,
        }
    })
}

/// The logging layers — the level filter (`RUST_LOG`, else `log.level`) and the formatter
/// (`log.format`) writing through a [`log_buffer::LogBuffer`] into `out` — and the buffer's
/// flusher. What `init` installs; `riskos-bench logging` times the same layers.
pub fn log_layers<S>(
    log: &LogConfig,
    out: Box<dyn std::io::Write + Send>,
) -> (Box<dyn Layer<S> + Send + Sync>, log_buffer::Flusher)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter = level_filter(&log.level);
    let (buffer, flusher) = log_buffer::LogBuffer::start(out);
    let fmt = tracing_subscriber::fmt::layer().with_writer(buffer);
    let fmt = match log.format {
        LogFormat::Json => fmt
            .fmt_fields(json_line::JsonLineFields)
            .event_format(json_line::JsonLine)
            .boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    (filter.and_then(fmt).boxed(), flusher)
}

fn otlp_provider(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_headers(Default::default())
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_string())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Makes `headers`' `traceparent` (when valid and a propagator is installed) the parent of
/// `span`.
pub fn adopt_trace_context(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    struct Extractor<'a>(&'a axum::http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Extractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    let context =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&Extractor(headers)));
    let _ = span.set_parent(context);
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn aws_sigv4_never_logs_below_warn_even_at_trace() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry()
            .with(level_filter("trace"))
            .with(tracing_subscriber::fmt::layer().with_writer(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "aws_sigv4::http_request::sign", "X-Amz-Security-Token=s3cr3t");
            tracing::trace!(target: "riskos_connector::delivery::kafka", "traced");
        });
        let printed = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(printed.contains("traced"), "{printed}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
    }
}
