//! The failover figures of `make bench` (`sandbox failover-bench`): orchestration overhead, and
//! recovery against the critical path with simulated AWS latencies, through the release binary.

use std::path::Path;

use aws_config::SdkConfig;

use super::demo::{outage, outage_with, recovery_ms, Switch};
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
    // The nodes join 18 s after the update (~4½ min on AWS) and the critical pods are ready
    // 4 s later: the capacity, not the promotion, is the longer branch.
    let latencies = Latencies {
        promote: 20.0,
        nodes: 12.0,
        dns: 0.0,
        boot: 18.0,
        pod_ready: 4.0,
    };
    let critical = latencies
        .promote
        .max(latencies.nodes.max(latencies.boot + latencies.pod_ready));
    // The whole of the primary region (us-east-1) is lost, its ARC endpoint with it: one of
    // the cluster's five endpoints down; then a second one (eu-west-1) down as well.
    let mut rows = Vec::new();
    let mut headline = String::new();
    for (label, switch) in [
        (
            "1 of 5 ARC endpoints down (us-east-1's)",
            Switch::RoutingControls,
        ),
        (
            "2 of 5 ARC endpoints down (us-east-1's and eu-west-1's)",
            Switch::RoutingControlsAlsoDown("eu-west-1"),
        ),
    ] {
        let mut recovery = Vec::new();
        let mut parts = Vec::new();
        let mut rto = Vec::new();
        for i in 0..runs {
            let o = outage_with(
                &quiet,
                config,
                endpoint,
                estate,
                binary,
                &format!("-rto{}{i}", rows.len()),
                latencies,
                50,
                switch,
            )
            .await?;
            let ms = recovery_ms(&o.execution).ok_or_else(|| {
                SandboxError::Function(format!("no recovery figure: {}", o.answer))
            })?;
            recovery.push(ms / 1000.0);
            let branch = latencies.nodes.max(latencies.boot + latencies.pod_ready);
            parts.push((ms / 1000.0, excess(&o.execution, branch)));
            let healthy = o.execution["steps"]["verify"]["finished_ms"].as_u64();
            let detected = o.execution["detected_ms"].as_u64();
            match (healthy, detected) {
                (Some(h), Some(d)) => rto.push(h.saturating_sub(d) as f64 / 1000.0),
                _ => {
                    return Err(SandboxError::Function(format!(
                        "the execution was not verified healthy: {}",
                        o.answer
                    )))
                }
            }
        }
        recovery.sort_by(f64::total_cmp);
        rto.sort_by(f64::total_cmp);
        let r = recovery[recovery.len() / 2];
        parts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let breakdown = match parts[parts.len() / 2].1 {
            Some((asked, waited, moved)) => format!(
                "in that run, the capacity asked for {asked:.0} ms after the decision, ready \
                 {waited:+.0} ms off its {:.0} s, traffic moved in {moved:.0} ms",
                latencies.nodes.max(latencies.boot + latencies.pod_ready)
            ),
            None => "in that run, the record lacks a step's times".to_string(),
        };
        let rto_median = rto[rto.len() / 2];
        let within = (r - critical) / critical * 100.0;
        if headline.is_empty() {
            headline = format!(
                "decided → traffic {r:.3} s vs critical path {critical:.3} s ({within:+.2} %)"
            );
        }
        rows.push(format!(
            "| us-east-1 lost whole, {label}: decided → traffic moved, with promotion {:.0} s ∥ nodes Ready {:.0} s + critical pods ready {:.0} s (node group ACTIVE {:.0} s), then one routing-control update | median {r:.3} s vs critical path {critical:.3} s: {:+.0} ms, {within:+.2} % (all: {}); {breakdown} | within 2 % |\n\
             | the same: RTO, first signal → verified healthy (the first signal: the primary's last heartbeat, stale after 120 s) | median {rto_median:.3} s (all: {}) | the plan's 900 s |",
            latencies.promote,
            latencies.boot,
            latencies.pod_ready,
            latencies.nodes,
            (r - critical) * 1000.0,
            recovery.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(", "),
            rto.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(", "),
        ));
    }
    overhead.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (oh, wall, busy) = overhead[overhead.len() / 2];
    let figure = format!("overhead median {oh:.0} ms; {headline}");
    let table = format!(
        "| measure | value | target |\n|---|---|---|\n\
         | orchestration overhead: a whole failover (zero AWS latency, {calls} AWS calls), wall time minus time with an AWS call outstanding | median {oh:.0} ms (of {wall:.0} ms; moto busy {busy:.0} ms) over {runs} runs | < 1000 ms |\n\
         {}\n\
         The overhead counts the function's poll sleeps (10 ms after each act) as its own time: an upper bound. The recovery is read from the execution record (decided → traffic step done); the latencies are moto's, per resource, from the sandbox tags, and the Kubernetes emulator's (nodes join Ready and pods become ready as the node group grows).",
        rows.join("\n")
    );
    Ok((table, figure))
}

/// Where a run's excess over the critical path went, from its execution record (ms): how long
/// after the decision the capacity was asked for, how far off its branch (`branch_s`: the node
/// group ACTIVE, or its nodes' boot and the pods' readiness, whichever is longer) it was seen
/// ready, and how long the traffic step took once the writer and the capacity were ready.
/// `None` when the record lacks one of the times.
fn excess(execution: &serde_json::Value, branch_s: f64) -> Option<(f64, f64, f64)> {
    let ms = |v: &serde_json::Value| v.as_u64().map(|v| v as f64);
    let started = ms(&execution["started_ms"])?;
    let asked = execution["actions"]
        .as_array()?
        .iter()
        .find(|a| a["operation"] == "UpdateNodegroupConfig")
        .and_then(|a| ms(&a["at_ms"]))?;
    let step = |name: &str, end: &str| ms(&execution["steps"][name][end]);
    let nodes = step("nodes", "finished_ms")?;
    let ready = step("database", "finished_ms")?.max(nodes);
    Some((
        asked - started,
        nodes - asked - branch_s * 1000.0,
        step("traffic", "finished_ms")? - ready,
    ))
}
