//! The budget figure of `make bench` (`sandbox budget-bench`): the time to parse a Budgets
//! message and decide the level, over the golden corpus, as the median of repeated rounds (no
//! AWS call is involved). It runs in the sandbox's release binary, built in the same cargo
//! invocation as the functions, so that measuring it compiles nothing more (it was
//! `cargo run --release -p budget --example decide`, whose features unify differently).

use std::time::{Duration, Instant};

use budget::ladder::{next_level, Occasion, Thresholds};
use budget::message::{parse, Message};

use crate::{workspace_root, SandboxError};

/// Measures, prints the line and records the figure for the summary.
pub fn command() -> Result<(), SandboxError> {
    let dir = workspace_root().join("events/budget/messages");
    let mut corpus = Vec::new();
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| SandboxError::Io(format!("the golden corpus {}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry.map_err(|e| SandboxError::Io(e.to_string()))?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("txt") {
            corpus.push(
                std::fs::read_to_string(&path)
                    .map_err(|e| SandboxError::Io(format!("{}: {e}", path.display())))?,
            );
        }
    }
    if corpus.is_empty() {
        return Err(SandboxError::Io(format!(
            "no messages in {}",
            dir.display()
        )));
    }
    let thresholds = Thresholds::default();
    let rounds = 31;
    let per_round = 2_000;
    let mut samples = Vec::with_capacity(rounds);
    let mut levels = 0u64;
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..per_round {
            for body in &corpus {
                if let Message::Alert(alert) = parse(std::hint::black_box(body)) {
                    let pct = alert.amount.percent_of(alert.budgeted).unwrap_or(0.0);
                    levels += u64::from(next_level(
                        1,
                        pct,
                        Some(pct),
                        &thresholds,
                        5.0,
                        Occasion::Alert,
                    ));
                }
            }
        }
        samples.push(started.elapsed() / (per_round * corpus.len()) as u32);
    }
    samples.sort_unstable();
    let median: Duration = samples[rounds / 2];
    println!(
        "budget parse + decide: median {:.2} µs per message over {} corpus messages ({rounds} rounds × {per_round}; checksum {levels})",
        median.as_secs_f64() * 1e6,
        corpus.len()
    );
    crate::bench::record_figure(
        "budget",
        &format!(
            "parse + decide: median {:.2} µs per Budgets message",
            median.as_secs_f64() * 1e6
        ),
    );
    Ok(())
}
