//! `drill`, `failover`, `switchover`, `failback`: checked by the function first (a preflight:
//! the same command as a dry run, answered at once, so that a refusal is read here and not lost
//! in an asynchronous invocation), then started asynchronously, then followed step by step from
//! the execution record in the state bucket until it ends. `plan`, `precheck`, `history` and
//! `report` read what the function says and writes.

use std::fmt::Write as _;
use std::time::Duration;

use breakwater::clock::{rfc3339, Clock, SystemClock};
use breakwater::{Error, Result};
use failover::engine::{Execution, StepState};
use failover::PlanState;
use serde_json::{json, Value};

use crate::invoke::Function;
use crate::Operator;

/// How long an asynchronous start may take to show as an execution record.
const START_WAIT: Duration = Duration::from_secs(60);
/// How often the execution record is read while following.
const POLL: Duration = Duration::from_millis(500);
/// How far the function's clock may be behind this machine's.
const CLOCK_MARGIN_MS: u64 = 5_000;
/// A record that has not moved for this long belongs to an execution nothing drives any more
/// (the function's timeout is 15 minutes; the 1-minute tick resumes one that was cut off).
const STALLED: Duration = Duration::from_secs(20 * 60);

/// What a manual command asks of the failover function.
#[derive(Debug, Clone)]
pub struct Request {
    /// `drill`, `failover`, `switchover` or `failback`.
    pub command: String,
    /// The plan's name, as a confirmation.
    pub confirm: String,
    /// Who asks.
    pub by: String,
    /// A failover's accepted data loss (seconds).
    pub accept_data_loss_seconds: Option<u64>,
    /// A drill's inline plan.
    pub plan: Option<Value>,
}

impl Request {
    fn payload(&self, dry_run: bool) -> Value {
        let mut p = json!({"command": self.command, "confirm": self.confirm, "by": self.by});
        if let Some(s) = self.accept_data_loss_seconds {
            p["accept_data_loss_seconds"] = json!(s);
        }
        if let Some(plan) = &self.plan {
            p["plan"] = plan.clone();
        }
        if dry_run {
            p["dry_run"] = json!(true);
        }
        p
    }
}

/// What was started: the execution's id, and the plan's RTO target as the function read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The execution's id.
    pub id: String,
    /// The plan's RTO target (seconds).
    pub rto_target_seconds: Option<u64>,
}

/// The preflight, then the asynchronous start; the execution once its record exists.
pub async fn start(op: &Operator, function: &Function, request: &Request) -> Result<Started> {
    let preflight = function.call(&request.payload(true)).await?;
    match (preflight["outcome"].as_str(), preflight["dry_run"].as_str()) {
        (Some("dry-run"), Some("request")) => {}
        (Some("dry-run"), _) => {
            return Err(Error::Conflict(format!(
                "{} is deployed as a dry run (DryRun=true): it would start {} and starts \
                 nothing; redeploy with DryRun=false to act",
                function.name,
                preflight["would_start"].as_str().unwrap_or("it")
            )))
        }
        (Some("paused"), _) => {
            return Err(Error::Conflict(format!(
                "{} (nothing was started; `breakwater resume failover` lifts the pause)",
                preflight["message"]
                    .as_str()
                    .unwrap_or("failover is paused")
            )))
        }
        _ => {
            return Err(Error::Aws(format!(
                "the preflight of {} answered {preflight}: nothing was started",
                request.command
            )))
        }
    }
    let rto_target_seconds = preflight["plan"]["rto_target_seconds"].as_u64();
    let plan_key = failover::plan_key(&request.confirm);
    let state = || async {
        Ok::<_, Error>(
            op.store
                .get::<PlanState>(&plan_key)
                .await?
                .map(|v| v.value)
                .unwrap_or_default(),
        )
    };
    // Joining an execution of the same mode already running (the function does the same).
    if let Some(active) = state().await?.active {
        if let Some(exec) = op.store.get::<Execution>(&Execution::key(&active)).await? {
            if exec.value.mode.as_str() == request.command && !exec.value.finished() {
                println!(
                    "execution {active} ({}) is already running: following it",
                    exec.value.trigger
                );
                return Ok(Started {
                    id: active,
                    rto_target_seconds,
                });
            }
        }
    }
    let asked_ms = SystemClock.now_ms();
    function.start(&request.payload(false)).await?;
    // Ours: this mode, this trigger, begun after it was asked for (a margin for clocks). Another
    // execution begun meanwhile (an automatic failover, another operator's) is not followed.
    let trigger = format!("manual {} by {}", request.command, request.by);
    let asked = std::time::Instant::now();
    while asked.elapsed() < START_WAIT {
        let now = state().await?;
        for id in [now.active, now.last].into_iter().flatten() {
            let Some(exec) = op.store.get::<Execution>(&Execution::key(&id)).await? else {
                continue;
            };
            let e = &exec.value;
            if e.mode.as_str() == request.command
                && e.trigger == trigger
                && e.started_ms + CLOCK_MARGIN_MS >= asked_ms
            {
                return Ok(Started {
                    id,
                    rto_target_seconds,
                });
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Err(Error::Aws(format!(
        "{} was queued but no execution of plan {} began within {} s: read the function's log \
         group, and its failure queue (`breakwater redrive failover --dry-run` lists it)",
        request.command,
        request.confirm,
        START_WAIT.as_secs()
    )))
}

fn step_line(name: &str, step: &failover::engine::Step, started: u64) -> String {
    let at = |ms: Option<u64>| {
        ms.map(|m| format!("{:>6.1} s", m.saturating_sub(started) as f64 / 1000.0))
            .unwrap_or_else(|| "       ".into())
    };
    let (mark, when) = match step.state {
        StepState::Running => ("▸", at(step.started_ms)),
        StepState::Done => ("✓", at(step.finished_ms)),
        StepState::Failed => ("✗", at(step.finished_ms)),
        StepState::Skipped => ("–", at(step.finished_ms)),
        StepState::Pending => (" ", String::new()),
    };
    let detail = if step.state == StepState::Running {
        "running".to_string()
    } else {
        step.detail.clone()
    };
    format!("  {mark} {when}  {name:<9} {detail}")
}

/// How following ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The execution ended: the last lines, and whether it succeeded.
    Ended(String, bool),
    /// The operator stopped following (Ctrl-C); the execution goes on.
    Interrupted(String),
}

/// Follows execution `id` until it ends (or Ctrl-C: the execution goes on); an error when its
/// record has not moved for [`STALLED`].
pub async fn follow(op: &Operator, id: &str, target: Option<u64>) -> Result<Followed> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let say = |line: String| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    say(format!(
        "following execution {id} (Ctrl-C stops following, not the execution)"
    ));
    let mut shown: std::collections::BTreeMap<String, StepState> = Default::default();
    let mut last_tick = std::time::Instant::now();
    let (mut last_seen, mut moved) = (String::new(), std::time::Instant::now());
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let Some(exec) = op.store.get::<Execution>(&Execution::key(id)).await? else {
            bar.finish_and_clear();
            return Err(Error::Aws(format!(
                "execution {id}: no record at s3://{}/{}",
                op.store.bucket(),
                Execution::key(id)
            )));
        };
        let exec = exec.value;
        let seen = serde_json::to_string(&(&exec.steps, &exec.outcome)).unwrap_or_default();
        if seen != last_seen {
            (last_seen, moved) = (seen, std::time::Instant::now());
        } else if moved.elapsed() > STALLED {
            bar.finish_and_clear();
            return Err(Error::Aws(format!(
                "execution {id} has not moved for {} minutes: nothing drives it (the function's \
                 log group says why; its 1-minute tick resumes it once the function runs again)",
                STALLED.as_secs() / 60
            )));
        }
        for name in exec.mode.steps() {
            let Some(step) = exec.steps.get(name) else {
                continue;
            };
            if step.state != StepState::Pending && shown.get(name.as_str()) != Some(&step.state) {
                shown.insert(name.as_str().to_string(), step.state);
                say(step_line(name.as_str(), step, exec.detected_ms));
            }
        }
        let now = SystemClock.now_ms();
        // The RTO as the report measures it: detected → verified healthy (then a drill's
        // clean-up goes on, outside it).
        let figures = failover::engine::figures(&exec);
        let rto = figures
            .rto_ms
            .unwrap_or(now.saturating_sub(exec.detected_ms)) as f64
            / 1000.0;
        let so_far = if figures.rto_ms.is_some() {
            "RTO"
        } else {
            "RTO so far"
        };
        let target_text = target
            .map(|t| format!(" (target {t} s)"))
            .unwrap_or_default();
        if exec.finished() {
            bar.finish_and_clear();
            let ok = exec.outcome == "succeeded";
            let mut out = String::new();
            let _ = writeln!(
                out,
                "{} {} {}: RTO {}{target_text}; ended {:.1} s after it began, at {}",
                exec.mode.as_str(),
                id,
                exec.outcome.to_uppercase(),
                figures.rto,
                exec.finished_ms
                    .unwrap_or(now)
                    .saturating_sub(exec.detected_ms) as f64
                    / 1000.0,
                rfc3339(exec.finished_ms.unwrap_or(now))
            );
            for note in &exec.notes {
                let _ = writeln!(out, "  note: {note}");
            }
            let _ = writeln!(out, "report: breakwater report {id}");
            return Ok(Followed::Ended(out, ok));
        }
        bar.set_message(format!(
            "{} {}: {so_far} {rto:.0} s{target_text}",
            exec.mode.as_str(),
            exec.outcome
        ));
        if bar.is_hidden() && last_tick.elapsed() >= Duration::from_secs(10) {
            last_tick = std::time::Instant::now();
            println!("  … {so_far} {rto:.0} s{target_text}");
        }
        tokio::select! {
            _ = &mut interrupted => {
                bar.finish_and_clear();
                return Ok(Followed::Interrupted(format!(
                    "stopped following; execution {id} goes on (breakwater status, breakwater report {id} once it ends)"
                )));
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Every execution in the state bucket, newest first.
async fn executions(op: &Operator) -> Result<Vec<Execution>> {
    let mut runs = Vec::new();
    for key in op.keys("failover/executions/").await? {
        if let Some(exec) = op.store.get::<Execution>(&key).await? {
            runs.push(exec.value);
        }
    }
    runs.sort_by_key(|e| std::cmp::Reverse(e.started_ms));
    Ok(runs)
}

/// The newest execution's id.
pub async fn newest(op: &Operator) -> Result<String> {
    executions(op)
        .await?
        .into_iter()
        .next()
        .map(|e| e.id)
        .ok_or_else(|| Error::NotFound(format!("no execution in s3://{}", op.store.bucket())))
}

/// The executions, newest first (at most `limit`).
pub async fn history(op: &Operator, limit: usize) -> Result<String> {
    let runs = executions(op).await?;
    let mut out = String::new();
    if runs.is_empty() {
        let _ = writeln!(out, "no execution in s3://{}", op.store.bucket());
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:<9} {:>8}  execution",
        "started", "mode", "outcome", "RTO"
    );
    for e in runs.iter().take(limit) {
        let rto = failover::engine::figures(e)
            .rto_ms
            .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:<9} {:>8}  {}",
            rfc3339(e.started_ms),
            e.mode.as_str(),
            e.outcome,
            rto,
            e.id
        );
    }
    Ok(out)
}

/// The newest report `function` wrote (`reports/<function>/<id>.md` last written): its id as
/// it stands in the key.
pub async fn newest_report(op: &Operator, function: &str) -> Result<String> {
    let prefix = format!("reports/{}/", breakwater::state::key_segment(function));
    op.listed(&prefix)
        .await?
        .into_iter()
        .filter_map(|(k, at)| {
            Some((
                at,
                k.strip_prefix(&prefix)?.strip_suffix(".md")?.to_string(),
            ))
        })
        .max()
        .map(|(_, id)| id)
        .ok_or_else(|| Error::NotFound(format!("no report in s3://{}/{prefix}", op.store.bucket())))
}

/// The report `id` of `function`: its Markdown, and its picture written to `svg_path`. The id
/// is as `history` or a notification gives it, or as it stands in the key (`%`-encoded).
pub async fn report(op: &Operator, function: &str, id: &str, svg_path: &str) -> Result<String> {
    let folder = format!("reports/{}", breakwater::state::key_segment(function));
    let mut base = format!("{folder}/{}", breakwater::state::key_segment(id));
    let mut markdown = op.store.get_document(&format!("{base}.md")).await?;
    if markdown.is_none() && id.contains('%') {
        // An id copied from a key (`newest_report`, the console) is already encoded.
        base = format!("{folder}/{id}");
        markdown = op.store.get_document(&format!("{base}.md")).await?;
    }
    let Some(markdown) = markdown else {
        return Err(Error::NotFound(format!(
            "no report s3://{}/{base}.md (an execution still running has none yet: breakwater status)",
            op.store.bucket()
        )));
    };
    let mut out = String::from_utf8_lossy(&markdown).into_owned();
    if let Some(svg) = op.store.get_document(&format!("{base}.svg")).await? {
        std::fs::write(svg_path, svg)
            .map_err(|e| Error::Internal(format!("writing {svg_path}: {e}")))?;
        let _ = writeln!(out, "\n(the picture: {svg_path})");
    }
    Ok(out)
}

/// `plan`: the steps, their order, endpoints and expected timeline against the RTO.
pub fn plan_table(answer: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan {} ({}): expected RTO {} s against a target of {} s: {}",
        answer["plan"].as_str().unwrap_or("?"),
        answer["plan_hash"].as_str().unwrap_or("?"),
        answer["expected_rto_seconds"],
        answer["rto_target_seconds"],
        if answer["within_target"].as_bool() == Some(true) {
            "within target"
        } else {
            "OVER TARGET"
        }
    );
    for step in answer["steps"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<9} {:>5} s  {}  {}  {}",
            step["step"].as_str().unwrap_or("?"),
            step["expected_seconds"],
            step["call"].as_str().unwrap_or(""),
            step["target"].as_str().unwrap_or(""),
            step["endpoint"].as_str().unwrap_or("")
        );
    }
    if let Some(blocked) = answer["blocked_if_primary_is_down"].as_array() {
        if !blocked.is_empty() {
            let _ = writeln!(
                out,
                "  needs the primary region: {}",
                Value::from(blocked.clone())
            );
        }
    }
    out
}

/// `precheck`: one line per check, and whether the plan can fail over now.
pub fn precheck_table(answer: &Value) -> (String, bool) {
    let ready = answer["ready"].as_bool() == Some(true);
    let mut out = String::new();
    for check in answer["checks"].as_array().into_iter().flatten() {
        let ok = check["ok"].as_bool() == Some(true);
        let _ = writeln!(
            out,
            "  {} {:<28} {}",
            if ok { "ok " } else { "NOT" },
            check["check"].as_str().unwrap_or("?"),
            check["detail"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(
        out,
        "plan {}: {}",
        answer["plan"].as_str().unwrap_or("?"),
        if ready { "READY" } else { "NOT READY" }
    );
    (out, ready)
}
