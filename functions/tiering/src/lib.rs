//! `tiering`: S3 lifecycle tiering that never clobbers. Opted-in buckets (tag
//! `breakwater:tiering=on`) get managed rules — hot → Standard-IA → Glacier → Deep Archive, in
//! object-size bands — merged beside everyone else's rules, written only when something changed,
//! read back, and recorded so that `undo` restores the exact previous configuration.

pub mod apply;
pub mod merge;
pub mod policy;
pub mod regions;
pub mod savings;
pub mod validate;

use std::time::Duration;

use breakwater::config::{is_bucket_name, ConfigError, Env};
use breakwater::events::{Routes, Trigger};
use breakwater::invocation;
use breakwater::metrics::{Metrics, Unit};
use breakwater::notify::Notification;
use breakwater::ports::{Buckets, StorageMetrics};
use breakwater::report::Picture;
use breakwater::{Error, Result, Toolkit};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::apply::{BucketOutcome, Mode, Tierer};
use crate::policy::{Policy, PolicyDecision};
use crate::regions::{elsewhere, BucketRegions, LocatedBucket};

const EVENTBRIDGE: &[(&str, &str)] = &[
    ("aws.s3", "AWS API Call via CloudTrail"),
    ("aws.events", "Scheduled Event"),
];
const COMMANDS: &[&str] = &["plan", "apply", "undo", "report"];
/// The CloudTrail calls that can change what a bucket needs.
const BUCKET_CALLS: &[&str] = &[
    "CreateBucket",
    "PutBucketTagging",
    "DeleteBucketTagging",
    "PutBucketLifecycle",
    "PutBucketLifecycleConfiguration",
    "DeleteBucketLifecycle",
];

/// The tiering function's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TieringSettings {
    /// `BREAKWATER_ACCOUNT_ID`: the account that must own every bucket touched.
    pub account: String,
    /// `BREAKWATER_TIERING_CONCURRENCY`: buckets evaluated at once in a sweep (default 16).
    pub concurrency: usize,
    /// `BREAKWATER_TIERING_SKIP_LOG_TARGETS`: leave buckets that receive access logs alone (default true).
    pub skip_log_targets: bool,
    /// How long to retry `NoSuchBucket` for a bucket CloudTrail says was just created.
    pub creation_grace: Duration,
}

impl TieringSettings {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let account = env.account_id("BREAKWATER_ACCOUNT_ID")?;
        let concurrency = env.whole_number("BREAKWATER_TIERING_CONCURRENCY", 16, 1..=64)?;
        Ok(TieringSettings {
            account,
            concurrency,
            skip_log_targets: env.flag("BREAKWATER_TIERING_SKIP_LOG_TARGETS", true)?,
            creation_grace: Duration::from_secs(10),
        })
    }
}

/// The function: toolkit, settings, ports.
#[derive(Debug)]
pub struct TieringFunction<B, M, L> {
    /// Shared settings, store, notifier.
    pub toolkit: Toolkit,
    /// Tiering settings.
    pub settings: TieringSettings,
    /// S3.
    pub buckets: B,
    /// CloudWatch storage metrics.
    pub metrics: M,
    /// Where each bucket lives: only the home region's buckets are this deployment's.
    pub regions: L,
}

impl<B: Buckets, M: StorageMetrics, L: BucketRegions> TieringFunction<B, M, L> {
    /// `Some(skipped)` when `bucket` is listed in another region than this deployment's (S3 would
    /// answer every call 301 PermanentRedirect); a bucket not listed is left to the calls that
    /// follow (a just-created bucket, another account's).
    async fn in_other_region(&self, bucket: &str) -> Result<Option<BucketOutcome>> {
        let listed = self.regions.located(Some(bucket)).await?;
        Ok(listed
            .iter()
            .find(|b| b.name == bucket)
            .and_then(|b| self.away(b)))
    }

    fn away(&self, bucket: &LocatedBucket) -> Option<BucketOutcome> {
        elsewhere(bucket, &self.toolkit.settings.region).map(|why| BucketOutcome {
            bucket: bucket.name.clone(),
            outcome: "skipped".into(),
            reason: Some(why),
            managed_rules: Vec::new(),
        })
    }

    fn tierer(&self) -> Tierer<'_, B> {
        Tierer {
            buckets: &self.buckets,
            store: &self.toolkit.store,
            skip_log_targets: self.settings.skip_log_targets,
            lease_ttl: self.toolkit.settings.lease_ttl,
            dry_run: self.toolkit.dry_run(),
        }
    }

    /// Handles one invocation; `owner` names it (the Lambda request id).
    pub async fn handle(&self, event: Value, owner: &str) -> Result<Value> {
        let routes = Routes {
            function: "tiering",
            eventbridge: EVENTBRIDGE,
            alarm_actions: false,
            sns: false,
            commands: COMMANDS,
            account: Some(self.settings.account.clone()),
            // EventBridge delivers a region's events to that region's bus: anything else is forged.
            regions: vec![self.toolkit.settings.region.clone()],
        };
        let trigger = routes.route(event)?;
        let span = invocation::event_span("tiering", trigger.event_id().as_deref());
        invocation::in_span(span, self.dispatch(trigger, owner)).await
    }

    /// Handles a routed trigger and counts it under its outcome.
    async fn dispatch(&self, trigger: Trigger, owner: &str) -> Result<Value> {
        let started = std::time::Instant::now();
        let result = match trigger {
            Trigger::EventBridge(e) if e.detail_type == "Scheduled Event" => {
                self.sweep(Mode::Apply, owner).await
            }
            Trigger::EventBridge(e) => {
                let call = e.detail["eventName"].as_str().unwrap_or_default();
                if !BUCKET_CALLS.contains(&call) {
                    return Err(invocation::invalid_event(format!(
                        "CloudTrail call {call:?} is not one that tiering follows"
                    )));
                }
                if let Some(code) = e.detail["errorCode"].as_str() {
                    tracing::info!(call, code, "the call failed; nothing changed");
                    return Ok(
                        invocation::Outcome::Ignored(format!("{call} failed with {code}"))
                            .into_value(),
                    );
                }
                let bucket = bucket_name(&e.detail["requestParameters"]["bucketName"])?;
                let outcome = self
                    .tier_new_or_changed(&bucket, call == "CreateBucket", owner)
                    .await?;
                Ok(json!({"outcome": outcome.outcome.clone(), "buckets": [outcome]}))
            }
            Trigger::Command { command, body } => self.command(&command, &body, owner).await,
            _ => Err(invocation::invalid_event(
                "tiering takes CloudTrail events, its schedule and commands",
            )),
        };
        let outcome = match &result {
            Ok(v) => v["outcome"].as_str().unwrap_or("acted").to_string(),
            Err(e) => e.error_type().to_string(),
        };
        let mut m = Metrics::new("tiering", &outcome);
        m.add(
            "Duration",
            started.elapsed().as_secs_f64() * 1000.0,
            Unit::Milliseconds,
        );
        if let Ok(v) = &result {
            for key in ["written", "unchanged", "skipped", "excluded"] {
                if let Some(n) = v["counts"][key].as_u64() {
                    m.add(
                        &format!("Buckets{}", capitalise(key)),
                        n as f64,
                        Unit::Count,
                    );
                }
            }
        }
        m.emit(self.toolkit.store.clock().now_ms());
        result
    }

    /// A bucket CloudTrail just named; a just-created bucket may answer `NoSuchBucket` for a moment.
    async fn tier_new_or_changed(
        &self,
        bucket: &str,
        created: bool,
        owner: &str,
    ) -> Result<BucketOutcome> {
        let mut delay = Duration::from_millis(250);
        let deadline = std::time::Instant::now()
            + if created {
                self.settings.creation_grace
            } else {
                Duration::ZERO
            };
        loop {
            if let Some(skipped) = self.in_other_region(bucket).await? {
                return Ok(skipped);
            }
            let outcome = self.tierer().tier(bucket, Mode::Apply, owner).await?;
            if outcome.outcome != "not-found" || std::time::Instant::now() + delay > deadline {
                if outcome.outcome == "written" {
                    self.notify_written(std::slice::from_ref(&outcome)).await?;
                }
                return Ok(outcome);
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }

    /// Evaluates every bucket of this region, `concurrency` at a time; the buckets of other
    /// regions are reported `skipped` with the region whose deployment tiers them.
    pub async fn sweep(&self, mode: Mode, owner: &str) -> Result<Value> {
        let mut names = Vec::new();
        let mut outcomes = Vec::new();
        for bucket in self.regions.located(None).await? {
            match self.away(&bucket) {
                Some(skipped) => outcomes.push(skipped),
                None => names.push(bucket.name),
            }
        }
        let tierer = self.tierer();
        let results: Vec<(String, Result<BucketOutcome>)> = stream::iter(names)
            .map(|name| {
                let tierer = &tierer;
                async move {
                    let result = tierer.tier(&name, mode, owner).await;
                    (name, result)
                }
            })
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await;
        for (name, result) in results {
            outcomes.push(result.unwrap_or_else(|e| BucketOutcome {
                bucket: name,
                outcome: "failed".into(),
                reason: Some(e.to_string()),
                managed_rules: Vec::new(),
            }));
        }
        outcomes.sort_by(|a, b| a.bucket.cmp(&b.bucket));
        let written: Vec<BucketOutcome> = outcomes
            .iter()
            .filter(|o| o.outcome == "written")
            .cloned()
            .collect();
        if !written.is_empty() {
            self.notify_written(&written).await?;
        }
        let mut counts = serde_json::Map::new();
        for o in &outcomes {
            let n = counts.entry(o.outcome.clone()).or_insert(json!(0));
            *n = json!(n.as_u64().unwrap_or(0) + 1);
        }
        Ok(
            json!({"outcome": if mode == Mode::Plan { "planned" } else { "swept" }, "counts": counts, "buckets": outcomes}),
        )
    }

    async fn command(&self, command: &str, body: &Value, owner: &str) -> Result<Value> {
        let bucket = match &body["bucket"] {
            Value::Null => None,
            other => Some(bucket_name(other)?),
        };
        match (command, bucket) {
            ("plan", None) => self.sweep(Mode::Plan, owner).await,
            ("apply", None) => self.sweep(Mode::Apply, owner).await,
            ("plan", Some(b)) => {
                let outcome = match self.in_other_region(&b).await? {
                    Some(skipped) => skipped,
                    None => self.tierer().tier(&b, Mode::Plan, owner).await?,
                };
                Ok(json!({"outcome": "planned", "buckets": [outcome]}))
            }
            ("apply", Some(b)) => {
                let outcome = match self.in_other_region(&b).await? {
                    Some(skipped) => skipped,
                    None => self.tierer().tier(&b, Mode::Apply, owner).await?,
                };
                if outcome.outcome == "written" {
                    self.notify_written(std::slice::from_ref(&outcome)).await?;
                }
                Ok(json!({"outcome": outcome.outcome.clone(), "buckets": [outcome]}))
            }
            ("undo", Some(b)) => {
                if body["confirm"].as_str() != Some(b.as_str()) {
                    return Err(invocation::invalid_event(format!(
                        "undo: \"confirm\" must repeat the bucket's name {b:?}"
                    )));
                }
                let outcome = match self.in_other_region(&b).await? {
                    Some(skipped) => skipped,
                    None => self.tierer().undo(&b, owner).await?,
                };
                Ok(json!({"outcome": outcome.outcome.clone(), "buckets": [outcome]}))
            }
            ("undo", None) => Err(invocation::invalid_event("undo: a bucket is required")),
            (_, bucket) => self.report(bucket.as_deref(), owner).await,
        }
    }

    /// The savings report of one bucket or every opted-in bucket of this region, written to the
    /// state bucket. In a report of every bucket, one that cannot be read (another region's,
    /// another account's, just deleted, refused) is left out with the reason instead of failing
    /// the report; a named bucket of this region must be readable.
    async fn report(&self, bucket: Option<&str>, owner: &str) -> Result<Value> {
        let listed = self.regions.located(bucket).await?;
        let mut names = Vec::new();
        let mut left_out: Vec<(String, String)> = Vec::new();
        for b in &listed {
            if bucket.is_some_and(|named| named != b.name) {
                continue;
            }
            match elsewhere(b, &self.toolkit.settings.region) {
                Some(why) => left_out.push((b.name.clone(), why)),
                None => names.push(b.name.clone()),
            }
        }
        if let Some(named) = bucket {
            // Not listed: not this account's or not there yet; the reads below say which.
            if !listed.iter().any(|b| b.name == named) {
                names.push(named.to_string());
            }
        }
        let now = self.toolkit.store.clock().now_ms();
        let mut estimates = Vec::new();
        for name in names {
            let read = async {
                Ok::<_, Error>((
                    self.buckets.tags(&name).await?,
                    self.buckets.facts(&name).await?,
                ))
            };
            let (tags, facts) = match read.await {
                Ok(found) => found,
                Err(e) if bucket.is_none() => {
                    left_out.push((name, e.to_string()));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let PolicyDecision::Tier(policy) = Policy::from_tags(&tags, facts.versioned) else {
                continue;
            };
            match self.metrics.bucket_storage(&name, now).await {
                Ok(storage) => estimates.push(savings::estimate(&name, &storage, &policy)),
                Err(e) if bucket.is_none() => left_out.push((name, e.to_string())),
                Err(e) => return Err(e),
            }
        }
        for (name, why) in &left_out {
            tracing::info!(bucket = %name, %why, "left out of the savings report");
        }
        let mut markdown = savings::markdown(&estimates);
        if !left_out.is_empty() {
            markdown.push_str("\n## Left out\n\n");
            for (name, why) in &left_out {
                markdown.push_str(&format!("- `{name}`: {why}\n"));
            }
        }
        let id = format!(
            "savings-{}",
            breakwater::clock::rfc3339(now).replace([':', '.'], "-")
        );
        let json_key = format!("reports/tiering/{id}.json");
        let md_key = format!("reports/tiering/{id}.md");
        let svg_key = format!("reports/tiering/{id}.svg");
        self.toolkit.store.put(&json_key, &estimates).await?;
        self.toolkit
            .store
            .put_document(
                &md_key,
                markdown.clone().into_bytes(),
                "text/markdown; charset=utf-8",
            )
            .await?;
        let picture = Picture::Tiers(savings::roll_up(&estimates)).to_svg(
            &format!(
                "Tiering: bytes per storage class, now and at the steady state ({} buckets)",
                estimates.len()
            ),
            &[],
        );
        self.toolkit
            .store
            .put_document(&svg_key, picture.into_bytes(), "image/svg+xml")
            .await?;
        tracing::info!(owner, report = %md_key, buckets = estimates.len(), "savings report written");
        let saving: f64 = estimates.iter().map(|s| s.monthly_saving).sum();
        Ok(json!({
            "outcome": "reported",
            "report": {"bucket": self.toolkit.store.bucket(), "json": json_key, "markdown": md_key, "svg": svg_key, "id": id},
            "monthly_saving": (saving * 100.0).round() / 100.0,
            "estimates": estimates,
            "left_out": left_out
                .iter()
                .map(|(bucket, reason)| json!({"bucket": bucket, "reason": reason}))
                .collect::<Vec<_>>(),
            "markdown": markdown,
        }))
    }

    async fn notify_written(&self, written: &[BucketOutcome]) -> Result<()> {
        let lines: Vec<String> = written
            .iter()
            .map(|o| format!("- {}: {}", o.bucket, o.managed_rules.join(", ")))
            .collect();
        let note = Notification::new(
            format!("tiering: lifecycle written on {} bucket(s)", written.len()),
            format!(
                "Breakwater wrote its tiering rules beside the existing ones (which were kept as they were):\n{}\n\nTo undo one: invoke tiering with {{\"command\": \"undo\", \"bucket\": \"<name>\", \"confirm\": \"<name>\"}}.",
                lines.join("\n")
            ),
        )
        .attribute("function", "tiering")
        .attribute("outcome", "written")
        .attribute("buckets", written.len().to_string());
        self.toolkit.notifier.publish(&note).await.map(drop)
    }
}

fn bucket_name(value: &Value) -> Result<String> {
    let name = value
        .as_str()
        .ok_or_else(|| Error::InvalidEvent("bucket: a bucket name is required".into()))?;
    if !is_bucket_name(name) {
        return Err(invocation::invalid_event(format!(
            "bucket: {name:?} is not a valid bucket name"
        )));
    }
    Ok(name.to_string())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
