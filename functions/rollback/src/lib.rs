//! `rollback`: roll a Deployment back (or abort an Argo Rollout) when the alarm that guards it
//! goes into `ALARM` because of a deploy, or when a person asks through a signed Slack command or
//! PagerDuty note — and verify after a bake window, escalating when the alarm still fires.
//!
//! Every decision, including "not acting, because…", is a record in the state store and a
//! notification. Alarm deliveries are deduplicated by event id and serialised per workload by a
//! lease; the rollback itself is one JSON patch that `test`s the resourceVersion it was decided
//! on, so a concurrent deploy makes it decide again instead of being overwritten.

pub mod handoff;
pub mod secrets;

/// The SDK crates this function uses beyond the shared ones, for whoever sets up what it reads
/// (the sandbox and the integration tests put its signing secrets in Secrets Manager and SSM).
pub mod sdk {
    pub use aws_sdk_lambda as lambda;
    pub use aws_sdk_secretsmanager as secretsmanager;
    pub use aws_sdk_ssm as ssm;
}
pub mod settings;
pub mod undo;
pub mod webhook;
pub mod workload;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use breakwater::events::{Routes, Trigger};
use breakwater::kube::rollout::equal_ignore_hash;
use breakwater::kube::KubeClients;
use breakwater::metrics::{Metrics, Unit};
use breakwater::notify::Notification;
use breakwater::ports::Alarms;
use breakwater::state::{key_segment, Acquisition};
use breakwater::{Error, Result, Toolkit};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::settings::RollbackSettings;
use crate::undo::{Patched, Progress, Revision};
use crate::webhook::{HttpRequest, Unauthorized};
use crate::workload::{Kind, Workload};
pub use breakwater::events::{
    alarm_from_action, alarm_from_eventbridge, alarm_from_sns, AlarmFields,
};

const EVENTBRIDGE: &[(&str, &str)] = &[
    ("aws.cloudwatch", "CloudWatch Alarm State Change"),
    ("aws.events", "Scheduled Event"),
];
const COMMANDS: &[&str] = &["rollback", "verify", "status", handoff::COMMAND];
const BAKING_KEY: &str = "rollback/baking.json";
/// How often a decision is made again after a concurrent change.
const DECISION_ATTEMPTS: usize = 3;

/// What came of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The Deployment was patched back.
    RolledBack,
    /// The Rollout was aborted.
    Aborted,
    /// A guard-rail said no (the reason says which).
    NotActing,
    /// The request cannot be carried out (paused, unknown revision, not found).
    Refused,
    /// Already where the rollback would take it.
    NoOp,
    /// The bake window passed with the alarm clear and the rollout complete.
    Verified,
    /// The bake window passed and the alarm still fires (or the rollout did not complete).
    Escalated,
}

/// One decision, as audited and notified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The decision's id (the event id and the workload).
    pub id: String,
    /// When (ms).
    pub at_ms: u64,
    /// `cluster/namespace/Kind/name`.
    pub workload: String,
    /// Who or what asked: `alarm web-p95`, `slack:U123 (alice)`, `pagerduty:…`, `invoke:…`.
    pub trigger: String,
    /// The alarm, for alarm triggers.
    pub alarm: Option<String>,
    /// What came of it.
    pub outcome: Outcome,
    /// Why, in a sentence an operator can act on.
    pub reason: String,
    /// The revision running before.
    pub from_revision: Option<i64>,
    /// The revision rolled back to.
    pub to_revision: Option<i64>,
    /// Its `pod-template-hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_hash: Option<String>,
    /// What the verification saw.
    pub verified: Option<String>,
    /// Function time from the event's arrival to the patch answered (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patched_after_ms: Option<f64>,
}

/// A revision known to have tripped an alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marked {
    /// Its `pod-template-hash`.
    pub hash: String,
    /// Its revision number then.
    pub revision: i64,
    /// The alarm.
    pub alarm: String,
    /// When (ms).
    pub at_ms: u64,
}

/// A rollback waiting for its bake window to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bake {
    /// The alarm to re-check (none for a manual rollback).
    pub alarm: Option<String>,
    /// From.
    pub from_revision: Option<i64>,
    /// To.
    pub to_revision: Option<i64>,
    /// The target's hash (marked good when verified).
    pub to_hash: Option<String>,
    /// The decision it verifies.
    pub decision: String,
    /// When to check (ms).
    pub until_ms: u64,
}

/// One workload's memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRecord {
    /// Revisions that tripped an alarm: never rolled back onto.
    pub bad: Vec<Marked>,
    /// Hashes of revisions verified after a rollback.
    pub good: Vec<String>,
    /// The last rollback (ms): the cool-down runs from it.
    pub last_rollback_ms: Option<u64>,
    /// A rollback being verified.
    pub bake: Option<Bake>,
    /// The last decisions, newest last (`outcome: reason`).
    pub recent: Vec<String>,
    /// A rollback about to be sent, written before the patch: a run that finds the Deployment
    /// already on this revision after a crash records the rollback instead of deciding anew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Intent>,
}

/// What a rollback was about to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The decision it belongs to.
    pub decision: String,
    /// From.
    pub from_revision: Option<i64>,
    /// To.
    pub to_revision: i64,
    /// The target's hash.
    pub to_hash: String,
}

/// Workloads with a bake pending: `workload → until_ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BakingIndex {
    /// Pending bakes.
    pub workloads: BTreeMap<String, u64>,
}

fn record_key(workload: &Workload) -> String {
    format!("rollback/workloads/{}.json", workload.key())
}

/// Who asked for a rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asker {
    /// An alarm went into ALARM at `since_ms`.
    Alarm {
        /// The alarm.
        name: String,
        /// When it began.
        since_ms: u64,
    },
    /// A person or a system, by name (`slack:U123 (alice)`).
    Person(String),
}

impl Asker {
    fn describe(&self) -> String {
        match self {
            Asker::Alarm { name, .. } => format!("alarm {name}"),
            Asker::Person(who) => who.clone(),
        }
    }

    fn alarm(&self) -> Option<&str> {
        match self {
            Asker::Alarm { name, .. } => Some(name),
            Asker::Person(_) => None,
        }
    }
}

/// A rollback request, however it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to roll back.
    pub workload: Workload,
    /// Who asked.
    pub asker: Asker,
    /// A chosen revision (manual only).
    pub to_revision: Option<i64>,
    /// The delivery's id (deduplication).
    pub event_id: String,
}

/// The function.
#[derive(Debug)]
pub struct RollbackFunction<A> {
    /// Shared settings, store, notifier.
    pub toolkit: Toolkit,
    /// Rollback settings.
    pub settings: RollbackSettings,
    /// CloudWatch alarms (tags, state).
    pub alarms: A,
    /// Kubernetes clients per cluster.
    pub kube: KubeClients,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidEvent(reason.into())
}

impl<A: Alarms> RollbackFunction<A> {
    fn routes(&self) -> Routes {
        Routes {
            function: "rollback",
            eventbridge: EVENTBRIDGE,
            alarm_actions: true,
            sns: true,
            commands: COMMANDS,
            account: None,
            regions: vec![self.toolkit.settings.region.clone()],
        }
    }

    fn now_ms(&self) -> u64 {
        self.toolkit.store.clock().now_ms()
    }

    /// Handles one invocation. Malformed events are answered `rejected` (a retry would not
    /// change them, and nothing was changed); Function URL requests get an HTTP answer.
    pub async fn handle(&self, event: Value, owner: &str) -> Result<Value> {
        if webhook::is_http(&event) {
            return Ok(self.on_http(&event, owner).await);
        }
        let trigger = match self.routes().route(event) {
            Ok(t) => t,
            Err(Error::InvalidEvent(reason)) => return Ok(self.rejected(&reason)),
            Err(e) => return Err(e),
        };
        let id = trigger.event_id().unwrap_or_else(|| owner.to_string());
        let outcome = match trigger {
            Trigger::EventBridge(e) if e.detail_type == "Scheduled Event" => {
                return self.verify_bakes(owner).await
            }
            Trigger::Command { command, .. } if command == "verify" => {
                return self.verify_bakes(owner).await
            }
            Trigger::Command { command, body } if command == "status" => self.status(&body).await,
            Trigger::Command { command, body } if command == handoff::COMMAND => {
                self.on_handed_off(&body, &id, owner).await
            }
            Trigger::EventBridge(e) => {
                let fields =
                    alarm_from_eventbridge(&e.detail, e.resources.as_ref().and_then(|r| r.first()));
                match fields {
                    Ok(f) => self.on_alarm(f, &id, owner).await,
                    Err(e) => Err(e),
                }
            }
            Trigger::AlarmAction(a) => match serde_json::to_value(&*a) {
                Ok(v) => match alarm_from_action(&v) {
                    Ok(f) => self.on_alarm(f, &id, owner).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(invalid(format!("alarm action payload: {e}"))),
            },
            Trigger::Sns(s) => {
                let mut answers = Vec::new();
                for record in &s.records {
                    let message = record.sns.message.clone();
                    let id = record.sns.message_id.clone();
                    let answer = match serde_json::from_str::<Value>(&message) {
                        Ok(m) if m.get("AlarmName").is_some() => match alarm_from_sns(&m) {
                            Ok(f) => self.on_alarm(f, &id, owner).await,
                            Err(e) => Err(e),
                        },
                        Ok(m) if m.get("command").and_then(Value::as_str) == Some("rollback") => {
                            self.on_command(&m, &id, "sns", owner).await
                        }
                        Ok(_) => Err(invalid(
                            "SNS message: neither a CloudWatch alarm notification nor a rollback command",
                        )),
                        Err(e) => Err(invalid(format!("SNS message is not JSON: {e}"))),
                    };
                    answers.push(match answer {
                        Ok(v) => v,
                        Err(Error::InvalidEvent(reason)) => self.rejected(&reason),
                        Err(e) => return Err(e),
                    });
                }
                Ok(json!({"outcome": "sns", "records": answers}))
            }
            Trigger::Command { body, .. } => self.on_command(&body, &id, "invoke", owner).await,
        };
        match outcome {
            Err(Error::InvalidEvent(reason)) => Ok(self.rejected(&reason)),
            other => other,
        }
    }

    fn rejected(&self, reason: &str) -> Value {
        tracing::error!(
            reason,
            "rejected a malformed or unexpected event; nothing changed"
        );
        self.count("rejected", "EventsRejected");
        json!({"outcome": "rejected", "reason": reason})
    }

    fn count(&self, outcome: &str, metric: &str) {
        let mut m = Metrics::new("rollback", outcome);
        m.add(metric, 1.0, Unit::Count);
        m.emit(self.now_ms());
    }

    /// An alarm transition: only one into ALARM acts; the workloads come from the configured
    /// mapping, else from the alarm's tags.
    async fn on_alarm(&self, alarm: AlarmFields, id: &str, owner: &str) -> Result<Value> {
        if alarm.state != "ALARM" || alarm.previous == "ALARM" {
            tracing::info!(alarm = %alarm.name, state = %alarm.state, previous = %alarm.previous,
                "not a transition into ALARM; nothing to do");
            self.count("ignored", "AlarmsIgnored");
            return Ok(json!({"outcome": "ignored", "alarm": alarm.name,
                "reason": format!("{} → {} is not a transition into ALARM", alarm.previous, alarm.state)}));
        }
        let workloads = match self.settings.alarms.get(&alarm.name) {
            Some(w) => w.clone(),
            None => match &alarm.arn {
                Some(arn) => {
                    let tags = self.alarms.tags(arn).await?;
                    Workload::from_tags(&tags)?.into_iter().collect()
                }
                None => Vec::new(),
            },
        };
        if workloads.is_empty() {
            tracing::warn!(alarm = %alarm.name, "the alarm maps to no workload (no configured mapping, no breakwater:* tags); dropped");
            self.count("unmapped", "AlarmsUnmapped");
            return Ok(json!({"outcome": "unmapped", "alarm": alarm.name,
                "reason": "no workload is mapped to this alarm (BREAKWATER_ROLLBACK_ALARMS or the alarm's breakwater:* tags)"}));
        }
        // One transition is one event, whichever shape delivered it (EventBridge, the alarm
        // action, SNS) and however often: the id is the alarm and the time it entered ALARM.
        let transition = format!("{}@{}", alarm.name, alarm.since_ms);
        tracing::debug!(delivery = id, %transition, "alarm transition");
        let mut decisions = Vec::new();
        for workload in workloads {
            let request = Request {
                workload,
                asker: Asker::Alarm {
                    name: alarm.name.clone(),
                    since_ms: alarm.since_ms,
                },
                to_revision: None,
                event_id: transition.clone(),
            };
            decisions.push(match self.request(request, owner).await {
                Ok(d) => d,
                // A tag naming a cluster this deployment does not manage: that workload only.
                Err(Error::InvalidEvent(reason)) => self.rejected(&reason),
                Err(e) => return Err(e),
            });
        }
        Ok(json!({"outcome": "decided", "alarm": alarm.name, "decisions": decisions}))
    }

    /// `{"command": "status", "workload": "…"}`: the workload's record — the revisions that
    /// alarmed, the last rollback, a pending bake, the last decisions and why.
    async fn status(&self, body: &Value) -> Result<Value> {
        let workload = body["workload"].as_str().ok_or_else(|| {
            invalid("status command: `workload` (cluster/namespace/Kind/name) is required")
        })?;
        let workload = Workload::parse(workload, self.settings.default_cluster())?;
        let record = self.load_record(&workload).await?;
        Ok(json!({"outcome": "status", "workload": workload.to_string(), "record": record}))
    }

    /// The workload's record (the default when it has none yet).
    async fn load_record(&self, workload: &Workload) -> Result<WorkloadRecord> {
        Ok(self
            .toolkit
            .store
            .get::<WorkloadRecord>(&record_key(workload))
            .await?
            .map(|v| v.value)
            .unwrap_or_default())
    }

    /// `{"command": "rollback", "workload": "cluster/ns/Kind/name", "toRevision": 3,
    /// "requestedBy": "…", "id": "…"}` from a direct invoke or SNS.
    async fn on_command(&self, body: &Value, id: &str, via: &str, owner: &str) -> Result<Value> {
        let workload = body["workload"].as_str().ok_or_else(|| {
            invalid("rollback command: `workload` (cluster/namespace/Kind/name) is required")
        })?;
        let workload = Workload::parse(workload, self.settings.default_cluster())?;
        let to_revision = match body.get("toRevision") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().filter(|n| *n > 0).ok_or_else(|| {
                invalid("rollback command: `toRevision` must be a positive whole number")
            })?),
        };
        let by = body["requestedBy"].as_str().unwrap_or("unnamed");
        let request = Request {
            workload,
            asker: Asker::Person(format!("{via}:{by}")),
            to_revision,
            event_id: id.to_string(),
        };
        self.request(request, owner).await
    }

    /// One request: deduplicated by event id and workload, serialised by the workload's lease.
    pub async fn request(&self, request: Request, owner: &str) -> Result<Value> {
        let started = Instant::now();
        if !self.settings.clusters.contains(&request.workload.cluster) {
            return Err(invalid(format!(
                "cluster {} is not one this deployment manages ({})",
                request.workload.cluster,
                self.settings.clusters.join(", ")
            )));
        }
        // A person can name anything: a workload that is not there is refused before a record
        // is written (an alarm's workload comes from configuration and is decided, and kept).
        if matches!(request.asker, Asker::Person(_)) {
            let client = self
                .kube
                .client(&self.toolkit.aws, &request.workload.cluster, self.now_ms())
                .await?;
            if !undo::exists(&client, &request.workload).await? {
                return Err(invalid(format!(
                    "{} not found: nothing to roll back",
                    request.workload
                )));
            }
        }
        let store = &self.toolkit.store;
        let key = format!("{}@{}", request.event_id, request.workload);
        let ttl = self.toolkit.settings.idempotency_ttl;
        let span = tracing::info_span!("rollback", workload = %request.workload, trigger = %request.asker.describe());
        let result = store
            .once("rollback", &key, owner, ttl, || async {
                let lease = self.lease(&request.workload, owner).await?;
                let decided = self.decide_and_record(&request, &key, started).await;
                if let Err(e) = store.release_lease(lease).await {
                    tracing::warn!(error = %e, "could not release the workload lease; it expires on its own");
                }
                decided
            })
            .instrument(span)
            .await;
        match result {
            Ok(done) => {
                let repeat = done.is_repeat();
                let mut v = serde_json::to_value(done.into_inner())
                    .map_err(|e| Error::Aws(format!("encode decision: {e}")))?;
                if repeat {
                    v["repeat"] = json!(true);
                }
                Ok(v)
            }
            Err(Error::Conflict(why)) => {
                tracing::info!(%why, "the same delivery is being handled by another invocation");
                Ok(json!({"outcome": "in-progress", "reason": why}))
            }
            Err(e) => Err(e),
        }
    }

    /// The workload's lease, waited for a little (another alarm for the same workload decides
    /// in well under a second).
    async fn lease(&self, workload: &Workload, owner: &str) -> Result<breakwater::state::Lease> {
        let store = &self.toolkit.store;
        let waited = Instant::now();
        for attempt in 0..40u64 {
            match store
                .acquire_lease(
                    "rollback",
                    &workload.to_string(),
                    owner,
                    self.toolkit.settings.lease_ttl,
                )
                .await?
            {
                Acquisition::Acquired(lease) => return Ok(lease),
                Acquisition::Held { owner: other, .. } => {
                    tracing::info!(holder = %other, "another invocation is deciding for this workload; waiting");
                    tokio::time::sleep(Duration::from_millis(100 + 25 * attempt.min(16))).await;
                }
            }
        }
        Err(Error::Retryable(format!(
            "the lease of {workload} stayed held for {:.0} s",
            waited.elapsed().as_secs_f64()
        )))
    }

    async fn decide_and_record(
        &self,
        request: &Request,
        id: &str,
        started: Instant,
    ) -> Result<Decision> {
        let store = &self.toolkit.store;
        let rkey = record_key(&request.workload);
        let mut record = self.load_record(&request.workload).await?;
        let now = self.now_ms();
        let mut decision = Decision {
            id: id.to_string(),
            at_ms: now,
            workload: request.workload.to_string(),
            trigger: request.asker.describe(),
            alarm: request.asker.alarm().map(str::to_string),
            outcome: Outcome::NotActing,
            reason: String::new(),
            from_revision: None,
            to_revision: None,
            to_hash: None,
            verified: None,
            patched_after_ms: None,
        };
        let (outcome, reason) = self
            .decide(request, &mut record, &mut decision, now, started)
            .await?;
        decision.outcome = outcome;
        decision.reason = reason;
        let function_ms = started.elapsed().as_secs_f64() * 1000.0;
        if matches!(outcome, Outcome::RolledBack | Outcome::Aborted) {
            record.last_rollback_ms = Some(now);
            let until_ms = now + self.settings.bake_ms;
            record.bake = Some(Bake {
                alarm: decision.alarm.clone(),
                from_revision: decision.from_revision,
                to_revision: decision.to_revision,
                to_hash: decision.to_hash.clone(),
                decision: id.to_string(),
                until_ms,
            });
            let name = request.workload.to_string();
            store
                .update::<BakingIndex, _>(BAKING_KEY, |index| {
                    index.workloads.insert(name.clone(), until_ms) != Some(until_ms)
                })
                .await?;
        }
        self.remember(&mut record, &decision);
        store.put(&rkey, &record).await?;
        self.audit(&decision, Some(function_ms)).await?;
        Ok(decision)
    }

    fn remember(&self, record: &mut WorkloadRecord, decision: &Decision) {
        record.recent.push(format!(
            "{} {:?}: {}",
            breakwater::clock::rfc3339(decision.at_ms),
            decision.outcome,
            decision.reason
        ));
        let excess = record.recent.len().saturating_sub(20);
        record.recent.drain(..excess);
    }

    /// The audit record, the notification, the log line and the metric of one decision.
    async fn audit(&self, decision: &Decision, function_ms: Option<f64>) -> Result<()> {
        let store = &self.toolkit.store;
        let (year, month, day) = breakwater::clock::civil_date(decision.at_ms);
        let key = format!(
            "rollback/decisions/{year:04}-{month:02}-{day:02}/{}-{}.json",
            decision.at_ms,
            key_segment(&decision.id)
        );
        store.put(&key, decision).await?;
        let verb = match decision.outcome {
            Outcome::RolledBack => "rolled back",
            Outcome::Aborted => "aborted",
            Outcome::NotActing => "did not act on",
            Outcome::Refused => "refused to roll back",
            Outcome::NoOp => "left unchanged",
            Outcome::Verified => "verified the rollback of",
            Outcome::Escalated => "ESCALATION: rollback did not fix",
        };
        let revisions = match (decision.from_revision, decision.to_revision) {
            (Some(f), Some(t)) => format!(" (revision {f} → {t})"),
            _ => String::new(),
        };
        let summary = format!(
            "Breakwater {verb} {}{revisions}, asked by {}: {}",
            decision.workload, decision.trigger, decision.reason
        );
        let outcome = serde_json::to_value(decision.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut notification = Notification::new(
            format!("rollback {outcome}: {}", decision.workload),
            summary.clone(),
        )
        .attribute("function", "rollback")
        .attribute("outcome", outcome.clone())
        .attribute("workload", decision.workload.clone())
        .details(serde_json::to_value(decision).unwrap_or_default());
        if decision.outcome == Outcome::Escalated {
            notification = notification.attribute("severity", "critical");
        }
        self.toolkit.notifier.publish(&notification).await?;
        match decision.outcome {
            Outcome::Escalated | Outcome::Refused => {
                tracing::error!(outcome = %outcome, record = %key, "{summary}")
            }
            Outcome::NotActing => tracing::warn!(outcome = %outcome, record = %key, "{summary}"),
            _ => tracing::info!(outcome = %outcome, record = %key, "{summary}"),
        }
        let mut m = Metrics::new("rollback", &outcome);
        m.add("Decisions", 1.0, Unit::Count);
        if matches!(decision.outcome, Outcome::RolledBack | Outcome::Aborted) {
            m.add("Rollbacks", 1.0, Unit::Count);
        }
        if decision.outcome == Outcome::Escalated {
            m.add("Escalations", 1.0, Unit::Count);
        }
        if let Some(ms) = function_ms {
            m.add("DecisionMilliseconds", ms, Unit::Milliseconds);
        }
        m.property("Workload", decision.workload.clone());
        m.emit(self.now_ms());
        Ok(())
    }

    async fn decide(
        &self,
        request: &Request,
        record: &mut WorkloadRecord,
        decision: &mut Decision,
        now: u64,
        started: Instant,
    ) -> Result<(Outcome, String)> {
        let workload = &request.workload;
        if self.settings.frozen.contains(workload) {
            return Ok((
                Outcome::NotActing,
                "the workload is frozen (BREAKWATER_ROLLBACK_FROZEN)".into(),
            ));
        }
        if let Some(last) = record.last_rollback_ms {
            let next = last + self.settings.cooldown_ms;
            if now < next {
                return Ok((
                    Outcome::NotActing,
                    format!(
                        "cool-down: rolled back at {}, the next rollback is allowed from {}",
                        breakwater::clock::rfc3339(last),
                        breakwater::clock::rfc3339(next)
                    ),
                ));
            }
        }
        let client = self
            .kube
            .client(&self.toolkit.aws, &workload.cluster, now)
            .await?;
        match workload.kind {
            Kind::Deployment => {
                self.decide_deployment(&client, request, record, decision, now, started)
                    .await
            }
            Kind::Rollout => {
                self.decide_rollout(&client, request, decision, started)
                    .await
            }
        }
    }

    async fn decide_deployment(
        &self,
        client: &kube::Client,
        request: &Request,
        record: &mut WorkloadRecord,
        decision: &mut Decision,
        now: u64,
        started: Instant,
    ) -> Result<(Outcome, String)> {
        let w = &request.workload;
        let mut last_change = String::new();
        for _ in 0..DECISION_ATTEMPTS {
            let Some((deployment, sets)) =
                undo::read_deployment(client, &w.namespace, &w.name).await?
            else {
                return Ok((
                    Outcome::Refused,
                    format!("deployment {}/{} not found", w.namespace, w.name),
                ));
            };
            if undo::frozen(&deployment) {
                return Ok((
                    Outcome::NotActing,
                    format!(
                        "the deployment is frozen (annotation {}=true)",
                        undo::FREEZE
                    ),
                ));
            }
            if deployment["spec"]["paused"] == true {
                return Ok((Outcome::Refused, format!(
                    "the deployment is paused; resume it first (kubectl rollout resume deployment/{}) — a paused deployment is not rolled back",
                    w.name
                )));
            }
            if let Some(owner) = undo::gitops_owner(&deployment) {
                return Ok((Outcome::NotActing, format!(
                    "owned by {owner}: a rollback here would be undone by the next sync; roll back in Git (reported only)"
                )));
            }
            let history = undo::history(&deployment, &sets);
            let current = undo::current(&deployment, &history).cloned();
            decision.from_revision = current.as_ref().map(|r| r.number);
            if let Some(intent) = record.intent.take().filter(|i| i.decision == decision.id) {
                if current.as_ref().is_some_and(|c| c.hash == intent.to_hash) {
                    decision.from_revision = intent.from_revision;
                    decision.to_revision = Some(intent.to_revision);
                    decision.to_hash = Some(intent.to_hash);
                    return Ok((
                        Outcome::RolledBack,
                        format!(
                            "rolled back to revision {} (the patch was sent by an earlier attempt of this decision, which did not finish its records)",
                            intent.to_revision
                        ),
                    ));
                }
            }
            if let Asker::Alarm { name, since_ms } = &request.asker {
                let Some(current) = &current else {
                    return Ok((Outcome::NotActing, "no ReplicaSet matches the deployment's template yet (a rollout is starting); not the deploy's alarm to judge".into()));
                };
                // A rollout is a new ReplicaSet, or a rollback Breakwater made (which reuses an old one).
                let rolled_out = current.created_ms.max(record.last_rollback_ms.unwrap_or(0));
                if *since_ms < rolled_out {
                    return Ok((Outcome::NotActing, format!(
                        "the alarm began at {} before the last rollout ({}, revision {}): not the deploy's fault",
                        breakwater::clock::rfc3339(*since_ms), breakwater::clock::rfc3339(rolled_out), current.number
                    )));
                }
                if now.saturating_sub(rolled_out) > self.settings.lookback_ms {
                    return Ok((Outcome::NotActing, format!(
                        "the last rollout (revision {}, {}) is older than the {}-minute look-back window: not the deploy's fault",
                        current.number, breakwater::clock::rfc3339(rolled_out), self.settings.lookback_ms / 60_000
                    )));
                }
                if !record.bad.iter().any(|m| m.hash == current.hash) {
                    record.bad.push(Marked {
                        hash: current.hash.clone(),
                        revision: current.number,
                        alarm: name.clone(),
                        at_ms: now,
                    });
                }
            }
            let (target, why) = match self.target(request, &history, current.as_ref(), record) {
                Ok(t) => t,
                Err((outcome, why)) => return Ok((outcome, why)),
            };
            decision.to_revision = Some(target.number);
            if equal_ignore_hash(&target.template, &deployment["spec"]["template"]) {
                return Ok((
                    Outcome::NoOp,
                    format!(
                        "skipped: the deployment's template already matches revision {}",
                        target.number
                    ),
                ));
            }
            let cause = format!(
                "breakwater rollback at {} by {}: revision {} → {}",
                breakwater::clock::rfc3339(now),
                request.asker.describe(),
                decision
                    .from_revision
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "?".into()),
                target.number
            );
            let patch = undo::undo_patch(&deployment, &target, &cause);
            if self.toolkit.settings.dry_run {
                return Ok((
                    Outcome::NoOp,
                    format!("dry run: would roll back to revision {}", target.number),
                ));
            }
            record.intent = Some(Intent {
                decision: decision.id.clone(),
                from_revision: decision.from_revision,
                to_revision: target.number,
                to_hash: target.hash.clone(),
            });
            self.toolkit.store.put(&record_key(w), &*record).await?;
            let patched = undo::patch_deployment(client, &w.namespace, &w.name, &patch).await?;
            record.intent = None;
            match patched {
                Patched::Applied(_) => {
                    decision.to_hash = Some(target.hash.clone());
                    decision.patched_after_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                    return Ok((
                        Outcome::RolledBack,
                        format!(
                            "rolled back to revision {} ({}, {})",
                            target.number, target.replica_set, why
                        ),
                    ));
                }
                Patched::Gone => {
                    return Ok((
                        Outcome::Refused,
                        format!("deployment {}/{} was deleted", w.namespace, w.name),
                    ))
                }
                Patched::Changed(why) => {
                    tracing::warn!(%why, "the deployment changed between read and patch; deciding again");
                    last_change = why;
                }
            }
        }
        Ok((Outcome::NotActing, format!(
            "the deployment kept changing under the decision ({DECISION_ATTEMPTS} attempts; last: {last_change}); a deploy is in progress"
        )))
    }

    /// The revision to go back to: the one asked for, else the newest that survived its bake
    /// time and never alarmed (last known good), else the previous one if it never alarmed.
    fn target(
        &self,
        request: &Request,
        history: &[Revision],
        current: Option<&Revision>,
        record: &WorkloadRecord,
    ) -> std::result::Result<(Revision, &'static str), (Outcome, String)> {
        let bad = |r: &Revision| record.bad.iter().find(|m| m.hash == r.hash);
        if let Some(wanted) = request.to_revision {
            let Some(r) = history.iter().find(|r| r.number == wanted) else {
                return Err((
                    Outcome::Refused,
                    format!("unable to find revision {wanted} in the rollout history"),
                ));
            };
            if let Some(m) = bad(r) {
                return Err((Outcome::Refused, format!(
                    "revision {wanted} tripped alarm {} at {}; Breakwater does not roll back onto it",
                    m.alarm, breakwater::clock::rfc3339(m.at_ms)
                )));
            }
            return Ok((r.clone(), "the revision asked for"));
        }
        if history.len() < 2 {
            return Err((
                Outcome::NotActing,
                "no rollout history: there is no earlier revision".into(),
            ));
        }
        let is_current = |r: &Revision| current.is_some_and(|c| c.hash == r.hash);
        // A revision survived its bake time if the next one came at least a bake window later.
        let replaced_at = |r: &Revision| {
            history
                .iter()
                .filter(|n| n.number > r.number)
                .map(|n| n.created_ms.max(r.created_ms))
                .min()
        };
        let survived = |r: &Revision| {
            record.good.contains(&r.hash)
                || replaced_at(r).is_some_and(|t| t - r.created_ms >= self.settings.bake_ms)
        };
        let candidates: Vec<&Revision> = history
            .iter()
            .rev()
            .filter(|r| !is_current(r) && bad(r).is_none())
            .collect();
        if let Some(good) = candidates.iter().find(|r| survived(r)) {
            return Ok((
                (*good).clone(),
                "last known good: the newest revision that survived its bake time and never alarmed",
            ));
        }
        match undo::previous(history) {
            Some(prev) if !is_current(prev) && bad(prev).is_none() => Ok((
                prev.clone(),
                "the previous revision (none survived its bake time; it never alarmed)",
            )),
            _ => Err((Outcome::NotActing, "every earlier revision has tripped an alarm or none survived its bake time: nothing known good to go back to".into())),
        }
    }

    async fn decide_rollout(
        &self,
        client: &kube::Client,
        request: &Request,
        decision: &mut Decision,
        started: Instant,
    ) -> Result<(Outcome, String)> {
        let w = &request.workload;
        let Some(rollout) = undo::read_rollout(client, &w.namespace, &w.name).await? else {
            return Ok((
                Outcome::Refused,
                format!("rollout {}/{} not found", w.namespace, w.name),
            ));
        };
        if undo::frozen(&rollout) {
            return Ok((
                Outcome::NotActing,
                format!("the rollout is frozen (annotation {}=true)", undo::FREEZE),
            ));
        }
        if let Some(owner) = undo::gitops_owner(&rollout) {
            return Ok((Outcome::NotActing, format!(
                "owned by {owner}: an abort here may be undone by the next sync; abort in Git (reported only)"
            )));
        }
        let revision = rollout["metadata"]["annotations"]["rollout.argoproj.io/revision"]
            .as_str()
            .and_then(|r| r.parse().ok());
        decision.from_revision = revision;
        if rollout["status"]["abort"] == true {
            return Ok((
                Outcome::NoOp,
                format!(
                    "already aborted ({})",
                    rollout["status"]["message"]
                        .as_str()
                        .unwrap_or("no message")
                ),
            ));
        }
        let stable = rollout["status"]["stableRS"].as_str().unwrap_or_default();
        let current = rollout["status"]["currentPodHash"]
            .as_str()
            .unwrap_or_default();
        if !stable.is_empty() && stable == current {
            return Ok((
                Outcome::NotActing,
                "no update in progress (the current pods are the stable ones): nothing to abort"
                    .into(),
            ));
        }
        if self.toolkit.settings.dry_run {
            return Ok((Outcome::NoOp, "dry run: would abort the rollout".into()));
        }
        match undo::abort_rollout(client, &w.namespace, &w.name).await? {
            Patched::Applied(_) => {
                decision.patched_after_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            }
            Patched::Gone => return Ok((Outcome::Refused, "the rollout was deleted".into())),
            Patched::Changed(why) => {
                return Ok((Outcome::NotActing, format!("the rollout changed: {why}")))
            }
        }
        let after = undo::read_rollout(client, &w.namespace, &w.name)
            .await?
            .unwrap_or_default();
        Ok((
            Outcome::Aborted,
            format!(
                "aborted: traffic back to the stable ReplicaSet {stable}; phase now {} ({})",
                after["status"]["phase"].as_str().unwrap_or("unknown"),
                after["status"]["message"].as_str().unwrap_or("no message")
            ),
        ))
    }

    /// The schedule tick: every bake whose window has passed is checked — the alarm again, and
    /// the rollout's progress — and verified or escalated, once.
    pub async fn verify_bakes(&self, owner: &str) -> Result<Value> {
        let store = &self.toolkit.store;
        let now = self.now_ms();
        let index = store
            .get::<BakingIndex>(BAKING_KEY)
            .await?
            .map(|v| v.value)
            .unwrap_or_default();
        let mut results = Vec::new();
        for (name, until) in index.workloads {
            if until > now {
                results.push(json!({"workload": name, "outcome": "baking", "until": breakwater::clock::rfc3339(until)}));
                continue;
            }
            let workload = match Workload::parse(&name, None) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(workload = %name, error = %e, "unreadable entry in the baking index; dropped");
                    self.unindex(&name).await?;
                    continue;
                }
            };
            let lease = self.lease(&workload, owner).await?;
            let checked = self.verify_one(&workload, now).await;
            if let Err(e) = store.release_lease(lease).await {
                tracing::warn!(error = %e, "could not release the workload lease; it expires on its own");
            }
            results.push(checked?);
        }
        Ok(json!({"outcome": "verified", "checked": results}))
    }

    async fn unindex(&self, name: &str) -> Result<()> {
        self.toolkit
            .store
            .update::<BakingIndex, _>(BAKING_KEY, |index| index.workloads.remove(name).is_some())
            .await
            .map(|_| ())
    }

    async fn verify_one(&self, workload: &Workload, now: u64) -> Result<Value> {
        let store = &self.toolkit.store;
        let rkey = record_key(workload);
        let mut record = self.load_record(workload).await?;
        let Some(bake) = record.bake.clone() else {
            self.unindex(&workload.to_string()).await?;
            return Ok(json!({"workload": workload.to_string(), "outcome": "nothing-pending"}));
        };
        if bake.until_ms > now {
            return Ok(json!({"workload": workload.to_string(), "outcome": "baking"}));
        }
        let client = self
            .kube
            .client(&self.toolkit.aws, &workload.cluster, now)
            .await?;
        let (progress_ok, progress) = match workload.kind {
            Kind::Deployment => {
                match undo::read_deployment(&client, &workload.namespace, &workload.name).await? {
                    Some((d, _)) => {
                        let p = Progress::of(&d);
                        (p.complete() && !p.deadline_exceeded, p.to_string())
                    }
                    None => (false, "the deployment is gone".to_string()),
                }
            }
            Kind::Rollout => {
                let r = undo::read_rollout(&client, &workload.namespace, &workload.name)
                    .await?
                    .unwrap_or_default();
                let phase = r["status"]["phase"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string();
                // An aborted rollout is Degraded by design; what matters is that it is still aborted.
                (r["status"]["abort"] == true, format!("phase {phase}"))
            }
        };
        let alarm = match &bake.alarm {
            Some(name) => self.alarms.state(name).await?,
            None => None,
        };
        let firing = alarm.as_ref().is_some_and(|a| a.value == "ALARM");
        let minutes = self.settings.bake_ms / 60_000;
        let (outcome, reason) = if bake.alarm.is_some() && alarm.is_none() {
            // Not found is not clear: a deleted alarm, or one this role cannot see (composite
            // alarms are returned only to DescribeAlarms granted on `*`). Nothing is verified.
            (Outcome::Escalated, format!(
                "alarm {} was not found {minutes} min after the rollback (deleted, or not visible to this role: composite alarms need cloudwatch:DescribeAlarms on *); rollout: {progress}. Nothing was verified: a person is needed",
                bake.alarm.as_deref().unwrap_or_default()
            ))
        } else if firing {
            (Outcome::Escalated, format!(
                "alarm {} is still in ALARM {minutes} min after the rollback ({}); rollout: {progress}. A person is needed: the cause may not be the deploy",
                bake.alarm.as_deref().unwrap_or_default(),
                alarm.map(|a| a.reason).unwrap_or_default()
            ))
        } else if !progress_ok {
            (
                Outcome::Escalated,
                format!(
                "the rollback did not complete within the {minutes}-minute bake window: {progress}"
            ),
            )
        } else {
            if let Some(hash) = &bake.to_hash {
                if !record.good.contains(hash) {
                    record.good.push(hash.clone());
                }
            }
            (
                Outcome::Verified,
                format!(
                    "{}rollout: {progress}",
                    match &bake.alarm {
                        Some(a) => format!(
                            "alarm {a} is {}; ",
                            alarm.map(|s| s.value).unwrap_or_default()
                        ),
                        None => String::new(),
                    }
                ),
            )
        };
        let decision = Decision {
            id: format!("verify:{}", bake.decision),
            at_ms: now,
            workload: workload.to_string(),
            trigger: "bake window".into(),
            alarm: bake.alarm.clone(),
            outcome,
            reason,
            from_revision: bake.from_revision,
            to_revision: bake.to_revision,
            to_hash: bake.to_hash.clone(),
            verified: Some(progress),
            patched_after_ms: None,
        };
        record.bake = None;
        self.remember(&mut record, &decision);
        store.put(&rkey, &record).await?;
        self.audit(&decision, None).await?;
        self.unindex(&workload.to_string()).await?;
        serde_json::to_value(&decision).map_err(|e| Error::Aws(format!("encode decision: {e}")))
    }

    /// A Function URL request: verified, then read. Any refusal is a 401 and changes nothing. A
    /// verified request is acknowledged at once and carried out by an asynchronous invocation
    /// ([`handoff`]): Slack gives a slash command 3000 ms.
    async fn on_http(&self, event: &Value, owner: &str) -> Value {
        let Some(request) = HttpRequest::from_event(event) else {
            return webhook::response(400, &json!({"error": "not a Function URL request"}));
        };
        let now = self.now_ms();
        let refused = |why: Unauthorized| {
            tracing::warn!(reason = %why.0, path = %request.path, "refused an unauthenticated request; nothing changed");
            self.count("unauthorized", "RequestsRefused");
            webhook::response(401, &json!({"error": "unauthorized"}))
        };
        if request.method != "POST" {
            return webhook::response(405, &json!({"error": "POST only"}));
        }
        if request.body.len() > self.settings.max_body_bytes {
            self.count("too-large", "RequestsRefused");
            return webhook::response(413, &json!({"error": "request body too large"}));
        }
        let (source, reference) = match request.path.as_str() {
            "/slack" => ("slack", &self.settings.slack_secret),
            "/pagerduty" => ("pagerduty", &self.settings.pagerduty_secret),
            _ => return webhook::response(404, &json!({"error": "no such route"})),
        };
        let Some(reference) = reference else {
            return refused(Unauthorized(format!("{source} is not configured")));
        };
        let secret = match self
            .settings
            .secrets
            .get(&self.toolkit.aws, reference)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                // Not judged (nothing was compared), so not a 401; and nothing is done.
                tracing::error!(error = %e, %reference, "could not read the signing secret; the request is not judged");
                self.count("secret-unavailable", "RequestsRefused");
                return webhook::response(503, &json!({"error": "temporarily unavailable"}));
            }
        };
        let (id, answer) = if source == "slack" {
            let signature = match webhook::verify_slack(&secret, &request, now) {
                Ok(s) => s,
                Err(why) => return refused(why),
            };
            let id = webhook::request_id("slack", &signature);
            if !self.first_time("slack", &id, owner).await {
                return refused(Unauthorized("replayed Slack request".into()));
            }
            let answer = self.on_slack(&request, &id, owner).await;
            (id, answer)
        } else {
            let (id, payload) = match webhook::verify_pagerduty(&secret, &request, now) {
                Ok(p) => p,
                Err(why) => return refused(why),
            };
            if !self.first_time("pagerduty", &id, owner).await {
                return refused(Unauthorized("replayed PagerDuty event".into()));
            }
            let answer = self.on_pagerduty(&payload, &id, owner).await;
            (id, answer)
        };
        match answer {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "the signed request could not be handed on");
                // It was recorded as seen before the hand-off failed: forget it, so that the
                // sender's retry is taken rather than refused as a replay.
                if let Err(e) = self.toolkit.store.delete(&replay_key(source, &id)).await {
                    tracing::error!(error = %e, "could not forget the failed request's replay record");
                }
                if source == "pagerduty" {
                    // PagerDuty's v3 webhooks retry a delivery that is not answered with a 2xx.
                    return webhook::response(503, &json!({"error": "could not start; retry"}));
                }
                webhook::response(
                    200,
                    &json!({"response_type": "ephemeral",
                    "text": "Breakwater could not start this request; nothing was changed. Try again, or see the function's logs"}),
                )
            }
        }
    }

    /// Whether this signature / event id was never seen (a create-once record). The record names
    /// the invocation: the store takes a conditional write that finds a byte-identical record for
    /// its own lost first attempt, so two replays in the same millisecond must not write the same
    /// bytes.
    async fn first_time(&self, source: &str, id: &str, owner: &str) -> bool {
        let key = replay_key(source, id);
        match self
            .toolkit
            .store
            .create(
                &key,
                &json!({"seen_at_ms": self.now_ms(), "invocation": owner}),
            )
            .await
        {
            Ok(created) => created.is_some(),
            Err(e) => {
                tracing::error!(error = %e, "could not record the request for replay protection; refusing it");
                false
            }
        }
    }

    async fn on_slack(&self, request: &HttpRequest, id: &str, owner: &str) -> Result<Value> {
        let form = webhook::form(&request.body);
        let user = form.get("user_id").cloned().unwrap_or_default();
        let name = form.get("user_name").cloned().unwrap_or_default();
        if !self.settings.slack_users.is_empty() && !self.settings.slack_users.contains(&user) {
            tracing::warn!(%user, "a Slack user not in BREAKWATER_ROLLBACK_SLACK_USERS asked for a rollback");
            return Ok(webhook::response(
                200,
                &json!({"response_type": "ephemeral",
                "text": format!("<@{user}> is not allowed to roll back (BREAKWATER_ROLLBACK_SLACK_USERS)")}),
            ));
        }
        let text = form.get("text").cloned().unwrap_or_default();
        let by = format!("slack:{user} ({name})");
        let answer = self.acknowledge("slack", &text, &by, id, owner).await?;
        Ok(webhook::response(
            200,
            &json!({"response_type": "in_channel", "text": answer}),
        ))
    }

    async fn on_pagerduty(&self, payload: &Value, id: &str, owner: &str) -> Result<Value> {
        let event = &payload["event"];
        let kind = event["event_type"].as_str().unwrap_or_default();
        if kind != "incident.annotated" {
            return Ok(webhook::response(
                200,
                &json!({"outcome": "ignored",
                "reason": format!("{kind} is not a note; a rollback is asked for with a note \"rollback <workload> [revision]\"")}),
            ));
        }
        let text = event["data"]["content"].as_str().unwrap_or_default();
        let who = event["agent"]["summary"].as_str().unwrap_or("unknown");
        let incident = event["data"]["incident"]["id"].as_str().unwrap_or("?");
        let by = format!("pagerduty:{who} (incident {incident})");
        let answer = self.acknowledge("pagerduty", text, &by, id, owner).await?;
        Ok(webhook::response(
            200,
            &json!({"outcome": "accepted", "text": answer}),
        ))
    }

    /// A verified request's answer: a usage error at once; otherwise the request is queued for an
    /// asynchronous invocation of this function and acknowledged.
    async fn acknowledge(
        &self,
        source: &str,
        text: &str,
        by: &str,
        id: &str,
        owner: &str,
    ) -> Result<String> {
        let (workload, _) = match self.parse_text(text) {
            Ok(parsed) => parsed,
            Err(usage) => return Ok(usage),
        };
        let queued = handoff::event(source, text, by, id);
        let target = self
            .settings
            .handoff_function
            .as_deref()
            .unwrap_or(&self.toolkit.settings.function_name);
        handoff::invoke_async(&self.toolkit.aws, target, &queued).await?;
        tracing::info!(request = id, %workload, by, %owner, "acknowledged; the rollback runs in an asynchronous invocation");
        Ok(format!(
            "accepted: Breakwater is deciding on {workload} (request {id}); the outcome goes to the Breakwater notification topic"
        ))
    }

    /// The queued half of a webhook request ([`handoff`]): decided like any other request.
    async fn on_handed_off(&self, body: &Value, id: &str, owner: &str) -> Result<Value> {
        let text = body["text"].as_str().unwrap_or_default();
        let by = body["requestedBy"]
            .as_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("webhook command: `requestedBy` is required"))?;
        let answer = self.on_text(text, by, id, owner).await?;
        Ok(json!({"outcome": "handled", "request": id, "text": answer}))
    }

    /// `rollback <workload> [revision]`, or the usage sentence to answer.
    fn parse_text(&self, text: &str) -> std::result::Result<(Workload, Option<i64>), String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let usage = "usage: rollback <namespace>/<name> | <cluster>/<namespace>/<Deployment|Rollout>/<name> [revision]";
        let (workload, revision) = match words.as_slice() {
            [verb, w] if verb.eq_ignore_ascii_case("rollback") => (*w, None),
            [verb, w, r] if verb.eq_ignore_ascii_case("rollback") => (*w, Some(*r)),
            _ => return Err(usage.to_string()),
        };
        let workload = Workload::parse(workload, self.settings.default_cluster())
            .map_err(|e| format!("{e}; {usage}"))?;
        let to_revision = match revision.map(str::parse::<i64>) {
            None => None,
            Some(Ok(n)) if n > 0 => Some(n),
            Some(_) => return Err(format!("the revision must be a positive number; {usage}")),
        };
        Ok((workload, to_revision))
    }

    /// `rollback <workload> [revision]` from a person; answers in a sentence.
    async fn on_text(&self, text: &str, by: &str, id: &str, owner: &str) -> Result<String> {
        let (workload, to_revision) = match self.parse_text(text) {
            Ok(parsed) => parsed,
            Err(usage) => return Ok(usage),
        };
        let request = Request {
            workload,
            asker: Asker::Person(by.to_string()),
            to_revision,
            event_id: id.to_string(),
        };
        match self.request(request, owner).await {
            Ok(d) => Ok(format!(
                "{}: {}",
                d["outcome"].as_str().unwrap_or("decided"),
                d["reason"].as_str().unwrap_or_default()
            )),
            Err(Error::InvalidEvent(why)) => Ok(why),
            Err(e) => Err(e),
        }
    }
}

/// Where a signed request is recorded as seen (replay protection).
fn replay_key(source: &str, id: &str) -> String {
    format!("rollback/webhooks/{source}/{}.json", key_segment(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_alarm_shapes_read_alike() {
        let eb = json!({"alarmName": "web-p95", "state": {"value": "ALARM", "reason": "r",
            "timestamp": "2026-11-23T03:00:00.000+0000"}, "previousState": {"value": "OK"}});
        let a = alarm_from_eventbridge(&eb, Some(&"arn:a".to_string())).unwrap();
        let action = json!({"alarmArn": "arn:a", "alarmData": eb});
        assert_eq!(alarm_from_action(&action).unwrap(), a);
        let sns = json!({"AlarmName": "web-p95", "NewStateValue": "ALARM", "OldStateValue": "OK",
            "StateChangeTime": "2026-11-23T03:00:00.000+0000", "AlarmArn": "arn:a", "NewStateReason": "r"});
        assert_eq!(alarm_from_sns(&sns).unwrap(), a);
        assert!(alarm_from_eventbridge(
            &json!({"alarmName": "x", "state": {"value": "BAD"}}),
            None
        )
        .is_err());
        assert!(alarm_from_eventbridge(&json!({"state": {"value": "ALARM"}}), None).is_err());
    }
}
