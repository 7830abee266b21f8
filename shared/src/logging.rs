//! Structured JSON logs on stdout, one object per line, shaped as Powertools for AWS Lambda shapes
//! them: `timestamp`, `level`, `message`, the event's own fields, and, on every line inside an
//! invocation, `function_request_id`, `cold_start` and `xray_trace_id` as top-level fields (from
//! the runtime's `Lambda runtime invoke` span), with any ids the handler adds in its own spans
//! (`function`, `event_id`, …) beside them.
//!
//! Lambda filters application logs by their `level` key when `ApplicationLogLevel` is set
//! ("Log-level filtering", AWS Lambda Developer Guide); the metric lines (EMF) have no level and
//! count as INFO. The template therefore sets `ApplicationLogLevel: TRACE` and passes the operator's
//! level as `BREAKWATER_LOG_LEVEL`, which this subscriber applies: a level of WARN keeps every
//! metric.

use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::config::Env;

/// The level named by `BREAKWATER_LOG_LEVEL` (the template's `LogLevel`), else
/// `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls), else `RUST_LOG`; `INFO` when none
/// is set or understood.
pub fn level_from_env(env: &Env) -> LevelFilter {
    let raw = env
        .optional("BREAKWATER_LOG_LEVEL")
        .or_else(|| env.optional("AWS_LAMBDA_LOG_LEVEL"))
        .or_else(|| env.optional("RUST_LOG"))
        .unwrap_or_default();
    match raw.to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "WARN" => LevelFilter::WARN,
        "ERROR" | "FATAL" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

/// Builds the JSON subscriber writing to `writer`.
pub fn json_subscriber<W>(level: LevelFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // The level filters events only: the spans that carry the ids (the runtime's, the
    // invocation's) are INFO spans and must stay on at WARN for the WARN lines to carry them.
    let layer = tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(PowertoolsJson::default())
        .with_writer(writer)
        .with_filter(filter_fn(move |m| m.is_span() || *m.level() <= level));
    tracing_subscriber::registry().with(layer)
}

/// Installs the JSON subscriber on stdout for the whole process (call once, first thing in `main`).
pub fn init() {
    let level = level_from_env(&Env::from_process());
    // A second init (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(json_subscriber(level, std::io::stdout));
}

/// The line format: see the module's documentation.
#[derive(Debug, Default)]
struct PowertoolsJson {
    /// The request id of the process's first invocation: its lines are the cold start.
    first_request: OnceLock<String>,
}

/// The Lambda runtime's span fields, renamed to Powertools' keys.
fn key_of(span_field: &str) -> &str {
    match span_field {
        "requestId" => "function_request_id",
        "xrayTraceId" => "xray_trace_id",
        other => other,
    }
}

impl<S, N> FormatEvent<S, N> for PowertoolsJson
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
        let mut line = Map::new();
        let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        line.insert("timestamp".into(), crate::clock::rfc3339(now).into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        // The spans' fields, outermost first (JsonFields keeps each span's fields as JSON).
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    for (name, value) in fields {
                        line.insert(key_of(&name).to_string(), value);
                    }
                }
            }
        }
        if let Some(Value::String(id)) = line.get("function_request_id") {
            let first = self.first_request.get_or_init(|| id.clone());
            let cold = first == id;
            line.insert("cold_start".into(), cold.into());
        }
        event.record(&mut Fields(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Records an event's fields into the line.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn every_line_inside_an_invocation_carries_the_request_id_and_event_id() {
        // GIVEN the JSON subscriber
        let buffer = Buffer::default();
        let subscriber = json_subscriber(LevelFilter::INFO, buffer.clone());
        // WHEN a handler logs inside the runtime's span and its own
        tracing::subscriber::with_default(subscriber, || {
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
            let _a = invoke.enter();
            tracing::info!("received");
            let handle = tracing::info_span!("handle", event_id = "evt-9");
            let _b = handle.enter();
            tracing::warn!(node = "ip-10-0-0-1", "cordoned");
        });
        // THEN each line is JSON with the request id and the cold start at the top level, and
        // the event id where it is in scope
        let lines = lines_of(&buffer);
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert_eq!(line["function_request_id"], "req-1", "{line}");
            assert_eq!(line["cold_start"], true, "{line}");
        }
        assert_eq!(lines[0]["message"], "received");
        assert!(lines[0].get("event_id").is_none(), "{}", lines[0]);
        assert_eq!(lines[1]["event_id"], "evt-9");
        assert_eq!(lines[1]["node"], "ip-10-0-0-1");
        assert_eq!(lines[1]["level"], "WARN");
        assert!(lines[1]["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    fn lines_of(buffer: &Buffer) -> Vec<serde_json::Value> {
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn at_warn_the_lines_that_remain_still_carry_the_invocations_ids() {
        let buffer = Buffer::default();
        let subscriber = json_subscriber(LevelFilter::WARN, buffer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "req-7");
            let _a = invoke.enter();
            let handle = tracing::info_span!("invocation", event_id = "evt-7");
            let _b = handle.enter();
            tracing::info!("dropped");
            tracing::warn!("kept");
        });
        let lines = lines_of(&buffer);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["message"], "kept");
        assert_eq!(lines[0]["function_request_id"], "req-7");
        assert_eq!(lines[0]["event_id"], "evt-7");
        assert_eq!(lines[0]["cold_start"], true);
    }

    #[test]
    fn only_the_first_invocation_of_the_process_is_the_cold_start() {
        let buffer = Buffer::default();
        let subscriber = json_subscriber(LevelFilter::INFO, buffer.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("init");
            for id in ["req-1", "req-2"] {
                let invoke = tracing::info_span!("Lambda runtime invoke", requestId = id);
                let _a = invoke.enter();
                tracing::info!(n = 1, "handled");
            }
        });
        let lines = lines_of(&buffer);
        assert!(lines[0].get("cold_start").is_none(), "{}", lines[0]);
        assert_eq!(
            (
                lines[1]["cold_start"].as_bool(),
                lines[2]["cold_start"].as_bool()
            ),
            (Some(true), Some(false))
        );
        assert_eq!(lines[2]["function_request_id"], "req-2");
        assert_eq!(lines[2]["n"], 1);
    }

    #[test]
    fn log_level_comes_from_the_templates_setting_then_lambdas() {
        let env = Env::from_pairs([("AWS_LAMBDA_LOG_LEVEL", "debug"), ("RUST_LOG", "error")]);
        assert_eq!(level_from_env(&env), LevelFilter::DEBUG);
        let env = Env::from_pairs([
            ("BREAKWATER_LOG_LEVEL", "warn"),
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
        ]);
        assert_eq!(level_from_env(&env), LevelFilter::WARN);
        assert_eq!(
            level_from_env(&Env::from_pairs([("RUST_LOG", "warn")])),
            LevelFilter::WARN
        );
        assert_eq!(level_from_env(&Env::default()), LevelFilter::INFO);
    }
}
