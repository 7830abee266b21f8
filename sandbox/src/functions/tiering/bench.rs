//! The tiering figure of `make bench` (`sandbox sweep-bench`): a sweep of many buckets against
//! moto through the release binary, beside the ceiling of moto itself for the same calls.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::demo::{tick_with_id, tiering_env};
use super::scene::tag_bucket;
use crate::moto::{Lifetime, Moto};
use crate::proxy::FaultProxy;
use crate::runtime::FunctionProcess;
use crate::scenes::read_event;
use crate::seed::{self, PRIMARY, SECONDARY};
use crate::{workspace_root, SandboxError};

/// The 1,000-bucket sweep against moto, beside the ceiling of moto itself for the same calls.
pub async fn command(bins: &Path, count: usize) -> Result<(), SandboxError> {
    use futures_util::stream::{self, StreamExt};
    let concurrency = 16;
    let moto = Moto::start(Lifetime::TiedToParent)?;
    let config = crate::sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let s3 = seed::s3(&config, PRIMARY);
    eprintln!("creating {count} buckets, one in five opted in");
    let created: Vec<Result<(), SandboxError>> = stream::iter(0..count)
        .map(|i| {
            let s3 = s3.clone();
            async move {
                let name = format!("sweep-{i:04}");
                s3.create_bucket()
                    .bucket(&name)
                    .send()
                    .await
                    .map_err(SandboxError::estate)?;
                if i % 5 == 0 {
                    tag_bucket(&s3, &name, &[("breakwater:tiering", "on")]).await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    created.into_iter().collect::<Result<Vec<_>, _>>()?;
    let proxy = FaultProxy::start(&moto.endpoint(), 1).await?;
    let mut env = tiering_env(&proxy.endpoint(), &estate);
    env.push((
        "BREAKWATER_TIERING_CONCURRENCY".into(),
        concurrency.to_string(),
    ));
    let mut process = FunctionProcess::start(&bins.join("tiering"), "tiering", PRIMARY, &env)
        .await?
        .with_timeout(std::time::Duration::from_secs(600));
    process.wait_init().await?;
    let tick: Value = read_event(&workspace_root().join("events/tiering/schedule.json"))?;
    let first = process.invoke(&tick_with_id(&tick, "bench 1")).await?;
    let first_counts = first
        .outcome
        .map_err(|e| SandboxError::Function(e.error_message))?["counts"]
        .clone();
    let calls_before = proxy.calls().len();
    let second = process.invoke(&tick_with_id(&tick, "bench 2")).await?;
    let second_counts = second
        .outcome
        .map_err(|e| SandboxError::Function(e.error_message))?["counts"]
        .clone();
    process.kill().await;
    let second_calls: Vec<_> = proxy.calls().into_iter().skip(calls_before).collect();
    let writes = second_calls
        .iter()
        .filter(|c| c.operation == "PutBucketLifecycleConfiguration")
        .count();
    // The ceiling: the same read calls straight at moto, as fast as it answers them at the same concurrency.
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let base = moto.endpoint();
    let replay_started = Instant::now();
    let replayed: Vec<bool> = stream::iter(
        second_calls
            .iter()
            .filter(|c| c.method == "GET" && c.service == "s3"),
    )
    .map(|c| {
        let client = client.clone();
        let uri = format!("{base}{}", c.path);
        async move {
            let Ok(uri) = uri.parse::<hyper::Uri>() else {
                return false;
            };
            client.get(uri).await.is_ok()
        }
    })
    .buffer_unordered(concurrency)
    .collect()
    .await;
    let ceiling = replay_started.elapsed();
    let per_s = |d: std::time::Duration| count as f64 / d.as_secs_f64();
    println!("| sweep of {count} buckets (1 in 5 opted in), concurrency {concurrency} | time | buckets/s |\n|---|---:|---:|");
    println!(
        "| first sweep (writes {}) | {:.2} s | {:.0} |",
        first_counts["written"],
        first.duration.as_secs_f64(),
        per_s(first.duration)
    );
    println!(
        "| second sweep ({writes} writes; {second_counts}) | {:.2} s | {:.0} |",
        second.duration.as_secs_f64(),
        per_s(second.duration)
    );
    println!(
        "| moto alone, the second sweep's {} reads replayed | {:.2} s | {:.0} |",
        replayed.len(),
        ceiling.as_secs_f64(),
        per_s(ceiling)
    );
    println!(
        "\nsecond sweep at {:.0} % of the emulator's ceiling for the same calls",
        ceiling.as_secs_f64() / second.duration.as_secs_f64() * 100.0
    );
    crate::bench::record_figure(
        "tiering",
        &format!(
            "sweep of {count} buckets: {:.0} buckets/s, {:.0} % of moto's ceiling for the same reads",
            per_s(second.duration),
            ceiling.as_secs_f64() / second.duration.as_secs_f64() * 100.0
        ),
    );
    Ok(())
}
