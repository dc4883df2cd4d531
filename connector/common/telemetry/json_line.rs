//! The JSON log line: the fields `tracing-subscriber`'s JSON format writes with
//! `flatten_event(true)` and `with_current_span(false)` — `timestamp`, `level`, the event's
//! fields (`message` among them), `target`, and `spans`, each span's fields plus its `name`,
//! root first — written straight into the line.
//!
//! Why not `tracing-subscriber`'s own: for every line it parses each span's stored fields back
//! from JSON text into a `serde_json::Value` map and serializes them again, and it stores a
//! span's fields by building a `serde_json::Value` map first; with the request span on every
//! webhook's line that was most of what logging at `info` cost (perf, issue 26). Here
//! [`JsonLineFields`] writes a span's fields as a JSON object once, when the span is created,
//! and [`JsonLine`] copies that text into each line as it is; values are escaped as they are
//! written, without a `String` in between. The test compares both formats' lines field by
//! field, awkward text included.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{span, Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter (with [`JsonLineFields`] as the field formatter, which stores each span's
/// fields as a JSON object).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonLine;

/// The span field formatter: a span's fields as one JSON object, `{"a":1,"b":"x"}`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonLineFields;

impl<'w> FormatFields<'w> for JsonLineFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        writer.write_char('{')?;
        let mut visitor = Fields::new(&mut writer, true);
        fields.record(&mut visitor);
        visitor.result?;
        writer.write_char('}')
    }

    /// Fields recorded later (`span.record`) join the object: `{"a":1}` → `{"a":1,"b":2}`.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &span::Record<'_>,
    ) -> fmt::Result {
        let empty = !current.fields.ends_with('}') || current.fields == "{}";
        current
            .fields
            .truncate(current.fields.len().saturating_sub(1));
        if current.fields.is_empty() {
            current.fields.push('{');
        }
        let mut writer = current.as_writer();
        let mut visitor = Fields::new(&mut writer, empty);
        fields.record(&mut visitor);
        visitor.result?;
        writer.write_char('}')
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = Fields::new(&mut writer, false);
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        if let Some(scope) = ctx.event_scope() {
            let mut first = true;
            for span in scope.from_root() {
                writer.write_str(if first { ",\"spans\":[" } else { "," })?;
                first = false;
                let extensions = span.extensions();
                let stored = extensions
                    .get::<FormattedFields<N>>()
                    .map_or("", |f| f.fields.as_str());
                // `{"a":1,"b":2}` → `{"a":1,"b":2,"name":"…"}`; `{}` or nothing → `{"name":"…"}`.
                let inner = stored
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .unwrap_or("");
                writer.write_char('{')?;
                if !inner.is_empty() {
                    writer.write_str(inner)?;
                    writer.write_char(',')?;
                }
                writer.write_str("\"name\":")?;
                string(&mut writer, span.name())?;
                writer.write_char('}')?;
            }
            if !first {
                writer.write_char(']')?;
            }
        }
        writer.write_str("}\n")
    }
}

/// Writes each field as `"name":value`, a comma before each but (when `first`) the first.
struct Fields<'w, 'a> {
    out: &'w mut Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl<'w, 'a> Fields<'w, 'a> {
    fn new(out: &'w mut Writer<'a>, first: bool) -> Self {
        Self {
            out,
            first,
            result: Ok(()),
        }
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let comma = !std::mem::replace(&mut self.first, false);
        self.result = (|| {
            if comma {
                self.out.write_char(',')?;
            }
            string(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| string(w, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json writes an `f64`: shortest round-trip digits, `null` when not finite.
        self.put(field, |w| match serde_json::Number::from_f64(value) {
            Some(number) => write!(w, "{number}"),
            None => w.write_str("null"),
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |w| {
            w.write_char('"')?;
            write!(Escaping(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `text` as a JSON string, escaped as serde_json escapes it.
fn string(out: &mut Writer<'_>, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaping(out).write_str(text)?;
    out.write_char('"')
}

/// Writes what is written to it as the inside of a JSON string: `"` and `\` escaped, control
/// characters as `\n`, `\t`, … or `\u00XX`, as serde_json writes them (the test compares).
struct Escaping<'w, 'a>(&'w mut Writer<'a>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let bytes = text.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            // Escapes are ASCII, so `start..i` lies on character boundaries.
            self.0.write_str(&text[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&text[start..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value as Json;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    impl Lines {
        fn json(&self) -> Vec<Json> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
                .collect()
        }
    }

    /// What the connector logs, nested as a request's lines are, with text that needs escaping.
    fn log_some_lines() {
        let awkward = "quote \" backslash \\ newline \n return \r tab \t nul \u{0} bell \u{7} \
                       backspace \u{8} form feed \u{c} unit \u{1f} delete \u{7f} é 🦀 \u{2028}";
        let outer = tracing::info_span!(
            "request",
            request_id = "r-1",
            endpoint = %"riskos",
            client_ip = %std::net::Ipv4Addr::LOCALHOST,
        );
        let _outer = outer.enter();
        let inner = tracing::info_span!("ingress", peer = awkward, later = tracing::field::Empty);
        inner.record("later", 42_u64);
        let _inner = inner.enter();
        let empty = tracing::info_span!("empty", later = tracing::field::Empty);
        empty.record("later", "set after");
        let _empty = empty.enter();
        tracing::info!(
            event_id = %"e-1",
            event_at = 1_756_311_383_104_i64,
            partition = Some(0_i32),
            offset = None::<i64>,
            spooled = false,
            latency_ms = 7.672568,
            nan = f64::NAN,
            big = u128::MAX,
            detail = awkward,
            debugged = ?vec!["a", "b"],
            "accepted {}",
            awkward
        );
        drop(_empty);
        drop(_inner);
        tracing::warn!(kind = "rejected", "outside the inner span");
        drop(_outer);
        tracing::error!("no span at all");
    }

    fn lines_with(ours: bool) -> Vec<Json> {
        let lines = Lines::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(lines.clone())
            .json()
            .flatten_event(true)
            .with_current_span(false);
        if ours {
            let layer = layer.fmt_fields(JsonLineFields).event_format(JsonLine);
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, log_some_lines);
        } else {
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, log_some_lines);
        }
        lines.json()
    }

    #[test]
    fn lines_have_the_fields_and_values_of_tracing_subscribers_json_format() {
        let (ours, theirs) = (lines_with(true), lines_with(false));
        assert_eq!(ours.len(), 3);
        assert_eq!(ours.len(), theirs.len());
        for (mut ours, mut theirs) in ours.into_iter().zip(theirs) {
            // The timestamps differ by when each line was written; their shape does not.
            for line in [&mut ours, &mut theirs] {
                let stamp = line["timestamp"].take();
                let stamp = stamp.as_str().expect("a timestamp string");
                assert!(
                    stamp.len() == 27 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
                    "{stamp}"
                );
            }
            assert_eq!(ours, theirs);
        }
        let first = &lines_with(true)[0];
        assert_eq!(first["spans"][0]["name"], "request");
        assert_eq!(first["spans"][1]["name"], "ingress");
        assert_eq!(first["spans"][1]["later"], 42);
        assert_eq!(first["spans"][2]["later"], "set after");
        assert_eq!(first["event_at"], 1_756_311_383_104_i64);
        assert_eq!(first["nan"], Json::Null);
    }
}
