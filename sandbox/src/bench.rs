//! Measures a function binary the way Lambda would run it: init time (exec → first `/next`,
//! median of several cold starts), cold start to first response (init plus that fresh process's
//! first invocation of the bench event, which builds the SDK clients and makes the first AWS
//! calls: what a cold start costs an event, which init alone leaves out; moto is plain HTTP on
//! loopback, so no TLS handshake is in it), invoke time (p50/p99 over many warm
//! invocations of its main event) and peak RSS, beside its ARM64 stripped size.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::runtime::FunctionProcess;
use crate::SandboxError;

/// What to measure.
#[derive(Debug)]
pub struct Target {
    /// The binary's name.
    pub name: String,
    /// The native build that runs here.
    pub native: PathBuf,
    /// The ARM64 build that ships (its size is reported).
    pub arm64: PathBuf,
    /// The environment it runs with.
    pub env: Vec<(String, String)>,
    /// The main event; `{{n}}` anywhere in a string is replaced by the invocation number, so that
    /// each invocation can be a fresh one.
    pub event: Value,
}

/// The figures of one binary.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The binary's name.
    pub name: String,
    /// The ARM64 stripped size in bytes, when the ARM64 build exists.
    pub arm64_bytes: Option<u64>,
    /// Median init time.
    pub init: Duration,
    /// Median of init plus the first invocation of the same fresh process.
    pub first_action: Duration,
    /// Median invoke time.
    pub p50: Duration,
    /// 99th-percentile invoke time.
    pub p99: Duration,
    /// Peak RSS in KiB after the invocations.
    pub peak_rss_kib: u64,
}

/// Runs the measurements: `cold_starts` starts for init, `invocations` warm invocations.
pub async fn measure(
    target: &Target,
    cold_starts: usize,
    invocations: usize,
) -> Result<Figures, SandboxError> {
    let mut inits = Vec::with_capacity(cold_starts);
    let mut firsts = Vec::with_capacity(cold_starts);
    for n in 0..cold_starts {
        let mut process =
            FunctionProcess::start(&target.native, &target.name, "us-east-1", &target.env).await?;
        let init = process.wait_init().await?;
        // Numbered apart from the warm invocations, so that each is a fresh event too.
        let first = invoke(&mut process, target, COLD_NUMBERS + n).await?;
        inits.push(init);
        firsts.push(init + first);
        process.kill().await;
    }
    let mut process =
        FunctionProcess::start(&target.native, &target.name, "us-east-1", &target.env).await?;
    process.wait_init().await?;
    let mut durations = Vec::with_capacity(invocations);
    for n in 0..invocations {
        durations.push(invoke(&mut process, target, n).await?);
    }
    let peak_rss_kib = process.peak_rss_kib().unwrap_or_default();
    process.kill().await;
    Ok(Figures {
        name: target.name.clone(),
        arm64_bytes: std::fs::metadata(&target.arm64).ok().map(|m| m.len()),
        init: percentile(&mut inits, 50),
        first_action: percentile(&mut firsts, 50),
        p50: percentile(&mut durations, 50),
        p99: percentile(&mut durations, 99),
        peak_rss_kib,
    })
}

/// Where the cold starts' event numbers begin (the warm invocations count from 0).
const COLD_NUMBERS: usize = 1_000_000;

/// Sends the main event numbered `n`; the function's failure is the bench's.
async fn invoke(
    process: &mut FunctionProcess,
    target: &Target,
    n: usize,
) -> Result<Duration, SandboxError> {
    let invocation = process.invoke(&numbered(&target.event, n)).await?;
    if let Err(e) = &invocation.outcome {
        return Err(SandboxError::Function(format!(
            "{} failed its main event: {}: {}",
            target.name, e.error_type, e.error_message
        )));
    }
    Ok(invocation.duration)
}

fn numbered(event: &Value, n: usize) -> Value {
    match event {
        Value::String(s) => Value::String(s.replace("{{n}}", &n.to_string())),
        Value::Array(items) => Value::Array(items.iter().map(|v| numbered(v, n)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbered(v, n)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The nearest-rank percentile.
pub fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = (p * samples.len()).div_ceil(100).clamp(1, samples.len());
    samples[rank - 1]
}

/// Where `make bench` keeps its figures between its commands.
fn bench_dir() -> std::path::PathBuf {
    crate::workspace_root().join("target/bench")
}

/// Keeps a function's own figure (from its issue) for the summary table.
pub fn record_figure(function: &str, figure: &str) {
    use std::io::Write as _;
    let dir = bench_dir();
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("figures.tsv"))
    {
        let _ = writeln!(f, "{function}\t{}", figure.replace(['\t', '\n'], " "));
    }
}

/// Keeps the measured rows for the summary table.
pub fn record_rows(rows: &[Figures]) -> Result<(), crate::SandboxError> {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).map_err(|e| crate::SandboxError::Io(e.to_string()))?;
    let table = table(rows);
    std::fs::write(dir.join("table.md"), table).map_err(|e| crate::SandboxError::Io(e.to_string()))
}

/// One table: the measured rows, each function's own figures in a last column.
pub fn summary() -> Result<String, crate::SandboxError> {
    let dir = bench_dir();
    let table = std::fs::read_to_string(dir.join("table.md")).map_err(|e| {
        crate::SandboxError::Io(format!(
            "{}: {e} (run `make bench`)",
            dir.join("table.md").display()
        ))
    })?;
    let figures = std::fs::read_to_string(dir.join("figures.tsv")).unwrap_or_default();
    let own = |name: &str| -> String {
        let all: Vec<&str> = figures
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(f, _)| *f == name)
            .map(|(_, v)| v)
            .collect();
        if all.is_empty() {
            "—".into()
        } else {
            all.join("; ")
        }
    };
    let mut out = String::new();
    for (i, line) in table.lines().enumerate() {
        let name = line
            .trim_start_matches('|')
            .split('|')
            .next()
            .unwrap_or_default()
            .trim();
        let extra = match i {
            0 => " own figure |".to_string(),
            1 => "---|".to_string(),
            _ => format!(" {} |", own(name)),
        };
        out.push_str(line);
        out.push_str(&extra);
        out.push('\n');
    }
    Ok(out)
}

/// The table, each figure beside the floor's (the first row) as a ratio.
pub fn table(rows: &[Figures]) -> String {
    let Some(floor) = rows.first() else {
        return String::new();
    };
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!(" ({:.1}×)", a / b)
        } else {
            String::new()
        }
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = String::from(
        "| binary | ARM64 size | init (median) | cold start → first response (median) | invoke p50 | invoke p99 | peak RSS |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let size = match (r.arm64_bytes, floor.arm64_bytes) {
            (Some(a), Some(f)) => format!(
                "{:.2} MiB{}",
                a as f64 / 1_048_576.0,
                ratio(a as f64, f as f64)
            ),
            _ => "not built".to_string(),
        };
        out.push_str(&format!(
            "| {} | {} | {:.2} ms{} | {:.2} ms{} | {:.2} ms{} | {:.2} ms{} | {:.1} MiB{} |\n",
            r.name,
            size,
            ms(r.init),
            ratio(ms(r.init), ms(floor.init)),
            ms(r.first_action),
            ratio(ms(r.first_action), ms(floor.first_action)),
            ms(r.p50),
            ratio(ms(r.p50), ms(floor.p50)),
            ms(r.p99),
            ratio(ms(r.p99), ms(floor.p99)),
            r.peak_rss_kib as f64 / 1024.0,
            ratio(r.peak_rss_kib as f64, floor.peak_rss_kib as f64),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut xs: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut xs, 50), Duration::from_millis(50));
        assert_eq!(percentile(&mut xs, 99), Duration::from_millis(99));
        let mut one = vec![Duration::from_millis(7)];
        assert_eq!(percentile(&mut one, 99), Duration::from_millis(7));
    }

    #[test]
    fn numbering_reaches_nested_strings() {
        let e = serde_json::json!({"id": "bench-{{n}}", "inner": ["x{{n}}"], "k": 1});
        assert_eq!(
            numbered(&e, 3),
            serde_json::json!({"id": "bench-3", "inner": ["x3"], "k": 1})
        );
    }
}
