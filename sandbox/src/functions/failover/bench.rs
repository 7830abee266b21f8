//! The failover figures of `make bench` (`sandbox failover-bench`): orchestration overhead, and
//! recovery against the critical path with simulated AWS latencies, through the release binary.

use std::path::Path;

use aws_config::SdkConfig;

use super::demo::{outage, recovery_ms};
use super::scene::Latencies;
use crate::moto::{Lifetime, Moto};
use crate::seed::{self, Estate, PRIMARY, SECONDARY};
use crate::SandboxError;

/// `sandbox failover-bench [--runs N]`: runs the figures against a fresh moto, records the
/// headline for the summary and prints the table.
pub async fn command(bins: &Path, runs: usize) -> Result<(), SandboxError> {
    let mut moto = Moto::start(Lifetime::TiedToParent)?;
    let config = crate::sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let table = bench(
        &config,
        &moto.endpoint(),
        &estate,
        &bins.join("failover"),
        runs,
    )
    .await;
    moto.stop();
    let (table, figure) = table?;
    crate::bench::record_figure("failover", &figure);
    println!("{table}");
    Ok(())
}

/// The failover figures: orchestration overhead (a zero-latency failover) and the measured
/// recovery against the critical path AWS sets (simulated latencies), `runs` times each; the
/// table, and the headline for the summary.
pub async fn bench(
    config: &SdkConfig,
    endpoint: &str,
    estate: &Estate,
    binary: &Path,
    runs: usize,
) -> Result<(String, String), SandboxError> {
    let quiet = |_: &str| {};
    let mut overhead = Vec::new();
    let mut calls = 0;
    for i in 0..runs {
        let o = outage(
            &quiet,
            config,
            endpoint,
            estate,
            binary,
            &format!("-oh{i}"),
            Latencies::default(),
            10,
        )
        .await?;
        overhead.push((
            o.invocation_ms - o.aws_busy_ms,
            o.invocation_ms,
            o.aws_busy_ms,
        ));
        calls = o.calls;
    }
    // AWS's minutes scaled to seconds (promotion ~5 min → 20 s, node group ~3 min → 12 s). The
    // traffic step is one UpdateRoutingControlStates against the ARC cluster (no change to wait
    // for: the scene's plan moves no records, so `dns` is not on the path). The function's own
    // time does not scale with them: the absolute excess is the figure to carry to real
    // latencies, where it is a smaller share.
    let latencies = Latencies {
        promote: 20.0,
        nodes: 12.0,
        dns: 0.0,
    };
    let critical = latencies.promote.max(latencies.nodes);
    let mut recovery = Vec::new();
    for i in 0..runs {
        let o = outage(
            &quiet,
            config,
            endpoint,
            estate,
            binary,
            &format!("-rto{i}"),
            latencies,
            50,
        )
        .await?;
        let ms = recovery_ms(&o.execution)
            .ok_or_else(|| SandboxError::Function(format!("no recovery figure: {}", o.answer)))?;
        recovery.push(ms / 1000.0);
    }
    overhead.sort_by(|a, b| a.0.total_cmp(&b.0));
    recovery.sort_by(f64::total_cmp);
    let (oh, wall, busy) = overhead[overhead.len() / 2];
    let r = recovery[recovery.len() / 2];
    let within = (r - critical) / critical * 100.0;
    let figure = format!(
        "overhead median {oh:.0} ms; decided → traffic {r:.3} s vs critical path {critical:.3} s ({:+.2} %)",
        within
    );
    let table = format!(
        "| measure | value | target |\n|---|---|---|\n\
         | orchestration overhead: a whole failover (zero AWS latency, {calls} AWS calls), wall time minus time with an AWS call outstanding | median {oh:.0} ms (of {wall:.0} ms; moto busy {busy:.0} ms) over {runs} runs | < 1000 ms |\n\
         | decided → traffic moved with promotion {:.0} s ∥ node group {:.0} s, then one routing-control update | median {r:.3} s vs critical path {critical:.3} s: {:+.0} ms, {within:+.2} % (all: {}) | within 2 % |\n\
         The overhead counts the function's poll sleeps (10 ms after each act) as its own time: an upper bound. The recovery is read from the execution record (decided → traffic step done); the latencies are moto's, per resource, from the sandbox tags.",
        latencies.promote, latencies.nodes,
        (r - critical) * 1000.0,
        recovery.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(", ")
    );
    Ok((table, figure))
}
