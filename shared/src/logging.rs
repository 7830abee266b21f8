//! Structured JSON logs on stdout. Every line inside an invocation carries the Lambda request id
//! (from the runtime's `Lambda runtime invoke` span) and any ids the handler adds with its own
//! span, such as the event's id, in the line's `spans` list.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::Env;

/// The level named by `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls) or `RUST_LOG`,
/// `INFO` when neither is set or understood.
pub fn level_from_env(env: &Env) -> LevelFilter {
    let raw = env
        .optional("AWS_LAMBDA_LOG_LEVEL")
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
    tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .with_writer(writer)
        .finish()
}

/// Installs the JSON subscriber on stdout for the whole process (call once, first thing in `main`).
pub fn init() {
    let level = level_from_env(&Env::from_process());
    // A second init (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(json_subscriber(level, std::io::stdout));
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
        // THEN each line is JSON with the request id, and the event id where it is in scope
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert_eq!(line["spans"][0]["requestId"], "req-1", "{line}");
        }
        assert_eq!(lines[1]["spans"][1]["event_id"], "evt-9");
        assert_eq!(lines[1]["node"], "ip-10-0-0-1");
        assert_eq!(lines[1]["level"], "WARN");
    }

    #[test]
    fn log_level_comes_from_lambda_settings_first() {
        let env = Env::from_pairs([("AWS_LAMBDA_LOG_LEVEL", "debug"), ("RUST_LOG", "error")]);
        assert_eq!(level_from_env(&env), LevelFilter::DEBUG);
        assert_eq!(
            level_from_env(&Env::from_pairs([("RUST_LOG", "warn")])),
            LevelFilter::WARN
        );
        assert_eq!(level_from_env(&Env::default()), LevelFilter::INFO);
    }
}
