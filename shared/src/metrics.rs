//! CloudWatch Embedded Metric Format: metrics as one JSON log line on stdout, turned into metrics by
//! CloudWatch Logs, with no API call on the hot path.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{json, Map, Value};

/// The one namespace of Breakwater's metrics.
pub const NAMESPACE: &str = "Breakwater";

/// EMF accepts at most 100 metrics per document.
const MAX_METRICS: usize = 100;

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
    /// Bytes.
    Bytes,
    /// No unit (levels, ratios).
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::Bytes => "Bytes",
            Unit::None => "None",
        }
    }
}

/// A set of metrics sharing the dimensions `Function` and `Outcome`.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: String,
    outcome: String,
    values: Vec<(String, f64, Unit)>,
    properties: BTreeMap<String, Value>,
}

impl Metrics {
    /// Metrics of `function` with the given outcome (`acted`, `refused`, `noop`, `failed`, …).
    pub fn new(function: &str, outcome: &str) -> Self {
        Metrics {
            function: function.into(),
            outcome: outcome.into(),
            values: Vec::new(),
            properties: BTreeMap::new(),
        }
    }

    /// Adds a value.
    pub fn add(&mut self, name: &str, value: f64, unit: Unit) -> &mut Self {
        self.values.push((name.to_string(), value, unit));
        self
    }

    /// Adds a searchable property that is not a metric (an event id, an execution id).
    pub fn property(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.properties.insert(name.to_string(), value.into());
        self
    }

    /// The EMF documents (one per 100 metrics) at `timestamp_ms`.
    pub fn documents(&self, timestamp_ms: u64) -> Vec<Value> {
        self.values
            .chunks(MAX_METRICS)
            .map(|chunk| {
                let mut doc = Map::new();
                for (k, v) in &self.properties {
                    doc.insert(k.clone(), v.clone());
                }
                doc.insert("Function".into(), json!(self.function));
                doc.insert("Outcome".into(), json!(self.outcome));
                let definitions: Vec<Value> = chunk
                    .iter()
                    .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
                    .collect();
                for (name, value, _) in chunk {
                    doc.insert(name.clone(), json!(value));
                }
                doc.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": NAMESPACE,
                            "Dimensions": [["Function", "Outcome"]],
                            "Metrics": definitions,
                        }],
                    }),
                );
                Value::Object(doc)
            })
            .collect()
    }

    /// Writes the documents as lines to `out`.
    pub fn write_to(&self, timestamp_ms: u64, out: &mut impl Write) -> std::io::Result<()> {
        for doc in self.documents(timestamp_ms) {
            writeln!(out, "{doc}")?;
        }
        Ok(())
    }

    /// Writes the documents to stdout, where CloudWatch Logs picks them up (or to the file
    /// [`send_to_file`] named: the sandbox's benches keep their tables readable).
    pub fn emit(&self, timestamp_ms: u64) {
        let written = match SINK.get() {
            Some(file) => {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                self.write_to(timestamp_ms, &mut *file)
            }
            None => self.write_to(timestamp_ms, &mut std::io::stdout().lock()),
        };
        if let Err(err) = written {
            tracing::warn!(error = %err, "could not write metrics");
        }
    }
}

/// Where [`Metrics::emit`] writes when not to stdout.
static SINK: std::sync::OnceLock<std::sync::Mutex<std::fs::File>> = std::sync::OnceLock::new();

/// Sends every metric line this process emits from now on to the end of the file at `path`
/// instead of stdout (a process that runs functions in-process, such as the sandbox's benches);
/// the first call wins.
pub fn send_to_file(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let _ = SINK.set(std::sync::Mutex::new(file));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_emf_line_with_function_and_outcome_dimensions() {
        let mut m = Metrics::new("spot", "acted");
        m.add("TimeToCordon", 180.0, Unit::Milliseconds)
            .add("PodsEvicted", 12.0, Unit::Count);
        m.property("instanceId", "i-0abc");
        let mut out = Vec::new();
        m.write_to(1_700_000_000_000, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        let doc: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(doc["Function"], "spot");
        assert_eq!(doc["Outcome"], "acted");
        assert_eq!(doc["PodsEvicted"], 12.0);
        assert_eq!(doc["instanceId"], "i-0abc");
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Breakwater");
        assert_eq!(directive["Dimensions"], json!([["Function", "Outcome"]]));
        assert_eq!(
            directive["Metrics"][0],
            json!({"Name": "TimeToCordon", "Unit": "Milliseconds"})
        );
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
    }

    #[test]
    fn splits_past_one_hundred_metrics() {
        let mut m = Metrics::new("tiering", "acted");
        for i in 0..150 {
            m.add(&format!("m{i}"), 1.0, Unit::Count);
        }
        let docs = m.documents(0);
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            100
        );
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            50
        );
    }
}
