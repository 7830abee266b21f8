//! `sandbox`: run Breakwater on this machine without AWS. This file only parses the command line
//! and dispatches; the scenes, demos and benches live in the library (`functions/`, `play.rs`).
//!
//! ```text
//! sandbox demo  [--bin-dir DIR]                 the game day: every scene through the real binaries, then a report
//! sandbox gameday [--faults 0.2] [--kills 0.1] [--seed N] [--bin-dir DIR]
//!                                                the same under injected AWS faults and crashes at step boundaries
//! sandbox up [--bin-dir DIR]                     start moto and `serve` (detached); writes target/sandbox/<region>.env
//! sandbox serve --moto URL [--bin-dir DIR]       the estate, its emulators and the Lambda API, until SIGTERM
//! sandbox down                                   stop what `up` started, by its process ids
//! sandbox invoke BINARY EVENT.json [--bin-dir D] run a function binary once against the `up` sandbox
//! sandbox bench --bin-dir D --arm64-dir D NAME…  the bench table (init, invoke p50/p99, RSS, ARM64 size)
//! sandbox budget-bench | sweep-bench | spot-bench | rollback-bench | failover-bench
//!                                                each function's own figure (sandbox/src/functions/*/bench.rs)
//! sandbox bench-summary                          the one table of `make bench`
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use breakwater_sandbox::bench::{self, Target};
use breakwater_sandbox::function_env::FunctionEnv;
use breakwater_sandbox::functions::{self, budget, failover, rollback, spot, tiering};
use breakwater_sandbox::local::LocalEstate;
use breakwater_sandbox::moto::{self, Lifetime, Moto};
use breakwater_sandbox::play::Faults;
use breakwater_sandbox::runtime::FunctionProcess;
use breakwater_sandbox::scenes::{self, read_event};
use breakwater_sandbox::seed::{self, PRIMARY, SECONDARY};
use breakwater_sandbox::{bin_dir, failover_scene, sdk_config, workspace_root, SandboxError};
use serde_json::json;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The benches run functions in this process: their metric lines (EMF) go to a file, and the
    // terminal shows the tables only.
    if args.first().is_some_and(|c| c.ends_with("bench")) {
        let raw = workspace_root().join("target/bench/metrics.log");
        if let Err(e) = breakwater::metrics::send_to_file(&raw) {
            eprintln!("metric lines stay on stdout ({}: {e})", raw.display());
        }
    }
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]).await,
        Some("gameday") => gameday(&args[1..]).await,
        Some("up") => up(&args[1..]).await,
        Some("serve") => serve(&args[1..]).await,
        Some("down") => down(),
        Some("invoke") => invoke(&args[1..]).await,
        Some("bench") => bench_command(&args[1..]).await,
        Some("sweep-bench") => sweep_bench(&args[1..]).await,
        Some("budget-bench") => functions::budget::bench::command(),
        Some("spot-bench") => spot_bench(&args[1..]).await,
        Some("rollback-bench") => rollback_bench(&args[1..]).await,
        Some("failover-bench") => failover_bench(&args[1..]).await,
        Some("bench-summary") => bench::summary().map(|t| println!("{t}")),
        _ => Err(SandboxError::Io(
            "usage: sandbox demo | gameday [--faults 0.2] [--kills 0.1] [--seed N] | up | down | invoke BINARY EVENT.json | bench --bin-dir DIR --arm64-dir DIR NAME... | sweep-bench | budget-bench | spot-bench [--warnings N] [--speed X] | rollback-bench [--events N] | failover-bench [--runs N]".into(),
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sandbox: {err}");
            ExitCode::FAILURE
        }
    }
}

fn option(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn positional(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a.starts_with("--") {
            skip = true;
        } else {
            out.push(a.clone());
        }
    }
    out
}

fn state_dir() -> PathBuf {
    workspace_root().join("target/sandbox")
}

/// `--bin-dir`, else the release binaries.
fn bins(args: &[String]) -> PathBuf {
    option(args, "--bin-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir("release"))
}

/// `--NAME N`, else `default`.
fn number(args: &[String], name: &str, default: usize) -> usize {
    option(args, name)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn share(args: &[String], name: &str, default: f64) -> Result<f64, SandboxError> {
    let Some(text) = option(args, name) else {
        return Ok(default);
    };
    let value = match text.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => text.trim().parse::<f64>(),
    };
    value
        .ok()
        .filter(|v| (0.0..=0.9).contains(v))
        .ok_or_else(|| {
            SandboxError::Io(format!(
                "{name} {text:?}: a share between 0 and 0.9 (or 0%–90%)"
            ))
        })
}

async fn gameday(args: &[String]) -> Result<(), SandboxError> {
    let faults = Faults {
        rate: share(args, "--faults", 0.2)?,
        kills: share(args, "--kills", 0.1)?,
        seed: option(args, "--seed")
            .map(|s| s.parse::<u64>())
            .transpose()
            .map_err(|e| SandboxError::Io(format!("--seed: {e}")))?
            .unwrap_or(7),
    };
    play(args, Some(faults)).await
}

async fn demo(args: &[String]) -> Result<(), SandboxError> {
    play(args, None).await
}

async fn play(args: &[String], faults: Option<Faults>) -> Result<(), SandboxError> {
    breakwater_sandbox::play::play(bins(args), option(args, "--report-dir"), faults).await
}

/// Whether the process in `file` (a pid) is alive.
fn alive(file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// Starts moto (detached) and `sandbox serve` (detached: the estate, the emulators and the
/// Lambda API), and returns once the estate is seeded and its environment files written.
async fn up(args: &[String]) -> Result<(), SandboxError> {
    let dir = state_dir();
    for name in ["moto.pid", "serve.pid"] {
        if let Some(pid) = alive(&dir.join(name)) {
            return Err(SandboxError::Moto(format!(
                "already up ({name}: {pid}); run `make down` first"
            )));
        }
    }
    for region in [PRIMARY, SECONDARY] {
        let _ = std::fs::remove_file(dir.join(format!("{region}.env")));
    }
    let moto = Moto::start(Lifetime::Detached)?;
    let endpoint = moto.endpoint();
    let moto_pid = moto.detach();
    std::fs::write(dir.join("moto.pid"), moto_pid.to_string())
        .map_err(|e| SandboxError::Io(e.to_string()))?;
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path).map_err(|e| SandboxError::Io(e.to_string()))?;
    let exe = std::env::current_exe().map_err(|e| SandboxError::Io(e.to_string()))?;
    let mut command = std::process::Command::new(exe);
    command
        .args(["serve", "--moto", &endpoint, "--bin-dir"])
        .arg(bins(args))
        .stdin(std::process::Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(|e| SandboxError::Io(e.to_string()))?,
        )
        .stderr(log);
    // Its own process group: the terminal's Ctrl-C after `make up` does not reach it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .map_err(|e| SandboxError::Io(format!("start sandbox serve: {e}")))?;
    std::fs::write(dir.join("serve.pid"), child.id().to_string())
        .map_err(|e| SandboxError::Io(e.to_string()))?;
    let ready = dir.join(format!("{SECONDARY}.env"));
    let started = std::time::Instant::now();
    while !ready.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let _ = moto::stop_pid(moto_pid);
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(SandboxError::Io(format!(
                "sandbox serve exited ({status}) before the estate was up:\n{log}"
            )));
        }
        if started.elapsed() > std::time::Duration::from_secs(120) {
            return Err(SandboxError::Io(format!(
                "the estate was not up after 120 s: see {}",
                log_path.display()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    println!("moto is up at {endpoint} (pid {moto_pid}); the estate is seeded; the Lambda API and the emulators run in pid {} (log: {}).", child.id(), log_path.display());
    println!(
        "the operator's environment, per region: source {}/{{{PRIMARY},{SECONDARY}}}.env",
        dir.display()
    );
    println!("follow a drill: make drill   (or: source {}; target/release/breakwater --region {SECONDARY} drill --confirm shop)", ready.display());
    println!("invoke a function: make invoke FUNCTION=probe EVENT=events/probe/record.json");
    println!("stop it: make down");
    Ok(())
}

/// The estate `up` keeps running, until SIGTERM or Ctrl-C: writes the environment files once
/// it is ready.
async fn serve(args: &[String]) -> Result<(), SandboxError> {
    let endpoint = option(args, "--moto").ok_or_else(|| {
        SandboxError::Io("usage: sandbox serve --moto URL [--bin-dir DIR]".into())
    })?;
    let dir = state_dir();
    let config = sdk_config(&endpoint).await;
    let local =
        LocalEstate::start(&config, &bins(args), "", Some(dir.join("functions.log"))).await?;
    let write = |name: &str, vars: Vec<(String, String)>| {
        let text: String = vars
            .into_iter()
            .map(|(k, v)| format!("export {k}={v}\n"))
            .collect();
        std::fs::write(dir.join(name), text).map_err(|e| SandboxError::Io(e.to_string()))
    };
    // A function's environment in the primary region (`make invoke`).
    write(
        "sandbox.env",
        FunctionEnv::primary(&endpoint, &local.estate)
            .with("AWS_REGION", PRIMARY)
            .into_vars(),
    )?;
    std::fs::write(
        dir.join("estate.json"),
        serde_json::to_vec_pretty(&local.estate).unwrap_or_default(),
    )
    .map_err(|e| SandboxError::Io(e.to_string()))?;
    // Each function's environment in the estate (`make invoke`), and the example ids of
    // events/ mapped to the estate's.
    std::fs::create_dir_all(dir.join("functions")).map_err(|e| SandboxError::Io(e.to_string()))?;
    for function in breakwater::control::FUNCTIONS {
        if let Some((region, vars)) = local.function_env(function) {
            let mut vars = vars;
            vars.push(("AWS_REGION".into(), region));
            write(&format!("functions/{function}.env"), vars)?;
        }
    }
    std::fs::write(
        dir.join("examples.json"),
        serde_json::to_vec_pretty(&local.example_ids()).unwrap_or_default(),
    )
    .map_err(|e| SandboxError::Io(e.to_string()))?;
    write(&format!("{PRIMARY}.env"), local.operator_env(PRIMARY))?;
    // Last: its existence tells `up` the estate is ready.
    write(&format!("{SECONDARY}.env"), local.operator_env(SECONDARY))?;
    println!(
        "serving: the Lambda API at {} ({} in {SECONDARY})",
        local.lambda.endpoint(),
        local.failover_function
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| SandboxError::Io(e.to_string()))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("stopping");
    drop(local);
    Ok(())
}

fn down() -> Result<(), SandboxError> {
    let dir = state_dir();
    let mut stopped = Vec::new();
    for name in ["serve.pid", "moto.pid"] {
        let file = dir.join(name);
        if let Ok(pid) = std::fs::read_to_string(&file) {
            if let Ok(pid) = pid.trim().parse::<u32>() {
                moto::stop_pid(pid)?;
                stopped.push(format!("{} (pid {pid})", name.trim_end_matches(".pid")));
            }
            let _ = std::fs::remove_file(&file);
        }
    }
    for name in [
        "sandbox.env".to_string(),
        format!("{PRIMARY}.env"),
        format!("{SECONDARY}.env"),
    ] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    if stopped.is_empty() {
        println!("nothing to stop");
    } else {
        println!("stopped {}", stopped.join(", "));
    }
    Ok(())
}

/// The environment `make up` wrote for `name` (its own for one of the five, else the primary
/// region's), and its region.
fn sandbox_env(name: &str) -> Result<(String, Vec<(String, String)>), SandboxError> {
    let own = state_dir().join(format!("functions/{name}.env"));
    let path = if own.exists() {
        own
    } else {
        state_dir().join("sandbox.env")
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|_| SandboxError::Moto("the sandbox is not up: run `make up` first".into()))?;
    let vars: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("export ").and_then(|kv| kv.split_once('=')))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let region = vars
        .iter()
        .rev()
        .find(|(k, _)| k == "AWS_REGION")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| PRIMARY.to_string());
    Ok((region, vars))
}

/// `event` with the example ids of events/ swapped for the estate's (`examples.json`); each
/// swap is printed.
fn with_estate_ids(event: serde_json::Value) -> serde_json::Value {
    let Ok(text) = std::fs::read_to_string(state_dir().join("examples.json")) else {
        return event;
    };
    let pairs: Vec<(String, String)> = serde_json::from_str(&text).unwrap_or_default();
    let (body, said) = breakwater_sandbox::local::with_estate_ids(&event.to_string(), &pairs);
    for line in said {
        println!("{line}");
    }
    serde_json::from_str(&body).unwrap_or(event)
}

async fn invoke(args: &[String]) -> Result<(), SandboxError> {
    let positional = positional(args);
    let (Some(name), Some(event_path)) = (positional.first(), positional.get(1)) else {
        return Err(SandboxError::Io(
            "usage: sandbox invoke BINARY EVENT.json [--bin-dir DIR]".into(),
        ));
    };
    let bins = bins(args);
    let (region, env) = sandbox_env(name)?;
    let event = with_estate_ids(read_event(Path::new(event_path))?);
    let mut process = FunctionProcess::start(&bins.join(name), name, &region, &env).await?;
    let init = process.wait_init().await?;
    let invocation = process.invoke(&event).await?;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for line in process.output() {
        println!("log | {line}");
    }
    println!(
        "init {:.2} ms, invoke {:.2} ms, peak RSS {} KiB",
        init.as_secs_f64() * 1000.0,
        invocation.duration.as_secs_f64() * 1000.0,
        process.peak_rss_kib().unwrap_or_default()
    );
    process.kill().await;
    match invocation.outcome {
        Ok(response) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&response).unwrap_or_default()
            );
            Ok(())
        }
        Err(e) => Err(SandboxError::Function(format!(
            "{}: {}",
            e.error_type, e.error_message
        ))),
    }
}

async fn bench_command(args: &[String]) -> Result<(), SandboxError> {
    let bins = bins(args);
    let arm64 = option(args, "--arm64-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/lambda"));
    let cold_starts: usize = option(args, "--cold-starts")
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let invocations: usize = option(args, "--invocations")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let names = positional(args);
    let mut moto = Moto::start(Lifetime::TiedToParent)?;
    let config = sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let mut rows = Vec::new();
    for name in &names {
        let mut env = FunctionEnv::primary(&moto.endpoint(), &estate).into_vars();
        let event = match name.as_str() {
            "hello-floor" => json!({"hello": "world"}),
            "probe" => {
                json!({"command": "record", "id": "bench-{{n}}", "key": "bench-{{n}}", "value": {"n": "{{n}}"}})
            }
            "budget" => {
                // A forecast alert: the first escalates to L2, every later one is confirmed and held.
                let scene = scenes::budget_scene(&config, PRIMARY, "").await?;
                scenes::set_spend(&config, &scene.budget, "2460", "1700", Some("2600")).await?;
                env = budget::demo::budget_env(&moto.endpoint(), &estate, &scene, None);
                let text = scenes::budget_alert_text(
                    &scene.budget,
                    "FORECASTED",
                    "$2,460.00",
                    "$2,460.00",
                    "$2,600.00",
                );
                scenes::sns_event(
                    "bench-{{n}}",
                    "AWS Budgets: platform monthly has exceeded your alert threshold",
                    &text,
                )
            }
            "tiering" => {
                // A tag change on an opted-in bucket: the first is written, the rest are no-ops.
                let s3 = seed::s3(&config, PRIMARY);
                s3.create_bucket()
                    .bucket("bench-tiering")
                    .send()
                    .await
                    .map_err(SandboxError::estate)?;
                tiering::scene::tag_bucket(&s3, "bench-tiering", &[("breakwater:tiering", "on")])
                    .await?;
                env = tiering::demo::tiering_env(&moto.endpoint(), &estate);
                let mut event = read_event(
                    &workspace_root().join("events/tiering/cloudtrail-put-bucket-tagging.json"),
                )?;
                event["detail"]["requestParameters"]["bucketName"] = json!("bench-tiering");
                event["id"] = json!("bench-{{n}}");
                event
            }
            "rollback" => {
                // An alarm transition for an alarm that names no workload: init, the tag lookup
                // in CloudWatch and the runtime round trip (the rollback itself: rollback-bench).
                env.push(("BREAKWATER_ROLLBACK_CLUSTERS".into(), "prod".into()));
                let mut event =
                    read_event(&workspace_root().join("events/rollback/alarm-state-change.json"))?;
                event["id"] = json!("bench-{{n}}");
                event["region"] = json!(PRIMARY);
                event
            }
            "failover" => {
                // A tick with the primary's probe failing: the plan read, the probe, the signal
                // board's compare-and-swap and the quorum (one signal of three: watching).
                let scene = failover_scene::failover_scene(
                    &config,
                    &estate,
                    "-bench",
                    Default::default(),
                    "http://127.0.0.1:9/health",
                )
                .await?;
                failover_scene::put_plan(
                    &config,
                    PRIMARY,
                    &estate.primary.state_bucket,
                    &scene.plan,
                )
                .await?;
                env.push(("BREAKWATER_PRIMARY_REGION".into(), PRIMARY.into()));
                env.push(("BREAKWATER_SECONDARY_REGION".into(), SECONDARY.into()));
                read_event(&workspace_root().join("events/failover/schedule.json"))?
            }
            "spot" => {
                // The status of an instance: init, the S3 read and the runtime round trip.
                env.push(("BREAKWATER_SPOT_CLUSTERS".into(), "shop".into()));
                read_event(&workspace_root().join("events/spot/command-status.json"))?
            }
            other => read_event(&workspace_root().join(format!("events/{other}/bench.json")))?,
        };
        let target = Target {
            name: name.clone(),
            native: bins.join(name),
            arm64: arm64.join(name).join("bootstrap"),
            env,
            event,
        };
        eprintln!("measuring {name}: {cold_starts} cold starts, {invocations} invocations");
        rows.push(bench::measure(&target, cold_starts, invocations).await?);
    }
    moto.stop();
    bench::record_rows(&rows)?;
    println!("{}", bench::table(&rows));
    println!(
        "init and invoke times and RSS are measured on this machine's native ({}) release build, with the same profile as the ARM64 build whose size is shown; the probe's invocations each make ~5 calls to moto on loopback.",
        std::env::consts::ARCH
    );
    Ok(())
}

/// `sandbox failover-bench [--runs N]`: orchestration overhead, and recovery against the
/// critical path with simulated AWS latencies.
async fn failover_bench(args: &[String]) -> Result<(), SandboxError> {
    failover::bench::command(&bins(args), number(args, "--runs", 3).max(1)).await
}

/// `sandbox rollback-bench [--events N]`: alarm event → rollback patch, function time.
async fn rollback_bench(args: &[String]) -> Result<(), SandboxError> {
    rollback::bench::command(number(args, "--events", 20).max(2)).await
}

/// `sandbox spot-bench [--warnings N] [--speed X]`: event → cordon time, and a 50-pod drain
/// against its floor and a sequential one-pod-at-a-time drainer, on an emulator whose clock runs
/// X × real time (10 by default).
async fn spot_bench(args: &[String]) -> Result<(), SandboxError> {
    let speed = match option(args, "--speed") {
        None => 10.0,
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|s| *s >= 1.0 && *s <= 100.0)
            .ok_or_else(|| SandboxError::Io(format!("--speed {text:?}: between 1 and 100")))?,
    };
    spot::bench::command(number(args, "--warnings", 20), speed).await
}

/// `sandbox sweep-bench [--buckets N]`: the sweep of many buckets against moto.
async fn sweep_bench(args: &[String]) -> Result<(), SandboxError> {
    tiering::bench::command(&bins(args), number(args, "--buckets", 1000)).await
}
