//! `make bench`: the time to parse a Budgets message and decide the level, over the golden
//! corpus, as the median of repeated rounds (no AWS call is involved).

use std::time::{Duration, Instant};

use budget::ladder::{next_level, Occasion, Thresholds};
use budget::message::{parse, Message};

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/budget/messages");
    let mut corpus = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the golden corpus") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) == Some("txt") {
            corpus.push(std::fs::read_to_string(path).expect("message"));
        }
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
    // The summary table of `make bench` (sandbox bench-summary) reads it back.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("figures.tsv"))
    {
        use std::io::Write as _;
        let _ = writeln!(
            f,
            "budget\tparse + decide: median {:.2} µs per Budgets message",
            median.as_secs_f64() * 1e6
        );
    }
}
