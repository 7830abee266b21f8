//! What a rollback remembers and tells: the decision (audited in the state store, notified,
//! logged, counted), each workload's record (revisions that alarmed, revisions verified good,
//! the cool-down, a pending bake, an intent written before a patch) and the index of bakes.

use std::collections::BTreeMap;
use std::time::Instant;

use breakwater::metrics::{Metrics, Unit};
use breakwater::notify::Notification;
use breakwater::ports::Alarms;
use breakwater::state::key_segment;
use breakwater::Result;
use serde::{Deserialize, Serialize};

use crate::gitops::Suspension;
use crate::request::Request;
use crate::workload::Workload;
use crate::RollbackFunction;

/// Where the workloads with a bake pending are listed.
pub(crate) const BAKING_KEY: &str = "rollback/baking.json";
/// Where the workloads whose GitOps owner is suspended are listed.
pub(crate) const SUSPENDED_KEY: &str = "rollback/gitops-suspended.json";

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
    /// Git moved past the revision rolled back: the GitOps owner's sync was resumed.
    SyncResumed,
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

impl Decision {
    /// The decision `id` on `request` at `now`, before anything is decided (not acting, no
    /// reason yet).
    pub fn undecided(id: &str, request: &Request, now: u64) -> Self {
        Decision {
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
        }
    }
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
    /// The GitOps owner whose automated sync a rollback suspended, until Git moves past the
    /// revision rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<Suspension>,
    /// After a GitOps owner was resumed, until when the guard watches the workload: a sync that
    /// puts back a revision that alarmed is rolled back again at once (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guarded_until_ms: Option<u64>,
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

/// Workloads with a bake pending (`workload → until_ms`), or with a GitOps owner suspended
/// (`workload → since_ms`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BakingIndex {
    /// Pending bakes.
    pub workloads: BTreeMap<String, u64>,
}

pub(crate) fn record_key(workload: &Workload) -> String {
    format!("rollback/workloads/{}.json", workload.key())
}

impl<A: Alarms> RollbackFunction<A> {
    /// The workload's record (the default when it has none yet).
    pub(crate) async fn load_record(&self, workload: &Workload) -> Result<WorkloadRecord> {
        Ok(self
            .toolkit
            .store
            .get::<WorkloadRecord>(&record_key(workload))
            .await?
            .map(|v| v.value)
            .unwrap_or_default())
    }

    pub(crate) async fn decide_and_record(
        &self,
        request: &Request,
        id: &str,
        started: Instant,
    ) -> Result<Decision> {
        let store = &self.toolkit.store;
        let rkey = record_key(&request.workload);
        let mut record = self.load_record(&request.workload).await?;
        let now = self.now_ms();
        let mut decision = Decision::undecided(id, request, now);
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
        // Listed whenever a suspension is recorded (the insert is idempotent): one listing
        // missed by an earlier decision is made good.
        if let Some(s) = &record.gitops {
            let (name, since) = (request.workload.to_string(), s.owner().at_ms);
            store
                .update::<BakingIndex, _>(SUSPENDED_KEY, |index| {
                    index.workloads.insert(name.clone(), since) != Some(since)
                })
                .await?;
        }
        self.remember(&mut record, &decision);
        store.put(&rkey, &record).await?;
        self.audit(&decision, Some(function_ms)).await?;
        Ok(decision)
    }

    pub(crate) fn remember(&self, record: &mut WorkloadRecord, decision: &Decision) {
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
    pub(crate) async fn audit(&self, decision: &Decision, function_ms: Option<f64>) -> Result<()> {
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
            Outcome::SyncResumed => "resumed the GitOps sync of",
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
}
