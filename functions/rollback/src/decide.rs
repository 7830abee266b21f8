//! The decision: whether to act on a request and on which revision — the guard-rails (frozen,
//! cool-down, paused, a GitOps owner, the alarm's timing), the last-known-good target choice,
//! and the patch or the abort sent through the [`Workloads`] port.
//!
//! What to do is decided by pure functions ([`before_reading`], [`judge_deployment`],
//! [`target`], [`judge_rollout`]); [`deployment`] and [`rollout`] read and write through the
//! port, so the rules run on the in-memory fake in tests.

use std::future::Future;
use std::time::Instant;

use breakwater::clock::rfc3339;
use breakwater::kube::rollout::{equal_ignore_hash, revision_of};
use breakwater::kube::workloads::{
    DeploymentWithSets, KubeWorkloads, Patched, Resource, Workloads,
};
use breakwater::ports::Alarms;
use breakwater::Result;
use serde_json::Value;

use crate::gitops::{self, ArgoCd, Suspend};
use crate::record::{record_key, Decision, Intent, Marked, Outcome, WorkloadRecord};
pub use crate::request::{Asker, Request};
use crate::settings::RollbackSettings;
use crate::undo::{self, Revision};
use crate::workload::Kind;
use crate::RollbackFunction;

/// How often a decision is made again after a concurrent change.
pub const DECISION_ATTEMPTS: usize = 3;

/// The rules a decision applies, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// An alarm acts only on a rollout at most this old (ms).
    pub lookback_ms: u64,
    /// How long a revision must run to count as good, and the bake window after a rollback (ms).
    pub bake_ms: u64,
    /// The time after a rollback during which no other is made (ms).
    pub cooldown_ms: u64,
    /// Decide, but change nothing.
    pub dry_run: bool,
}

impl Rules {
    /// The rules of `settings`.
    pub fn of(settings: &RollbackSettings, dry_run: bool) -> Self {
        Rules {
            lookback_ms: settings.lookback_ms,
            bake_ms: settings.bake_ms,
            cooldown_ms: settings.cooldown_ms,
            dry_run,
        }
    }
}

/// What a verdict needs of the cluster next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Decided: nothing to send.
    Done(Outcome, String),
    /// Send `patch`, which takes the Deployment to `target` (`why` says why that one).
    Patch {
        /// The revision rolled back to (boxed: it carries the template and annotations).
        target: Box<Revision>,
        /// The JSON patch.
        patch: Value,
        /// Why this revision.
        why: &'static str,
    },
}

fn done(outcome: Outcome, reason: impl Into<String>) -> Step {
    Step::Done(outcome, reason.into())
}

/// The guard-rails decided before the cluster is read: a workload frozen by configuration, and
/// the cool-down after the last rollback.
pub fn before_reading(
    frozen: bool,
    record: &WorkloadRecord,
    now: u64,
    rules: &Rules,
) -> Option<(Outcome, String)> {
    if frozen {
        return Some((
            Outcome::NotActing,
            "the workload is frozen (BREAKWATER_ROLLBACK_FROZEN)".into(),
        ));
    }
    let last = record.last_rollback_ms?;
    let next = last + rules.cooldown_ms;
    (now < next).then(|| {
        (
            Outcome::NotActing,
            format!(
                "cool-down: rolled back at {}, the next rollback is allowed from {}",
                rfc3339(last),
                rfc3339(next)
            ),
        )
    })
}

/// What a Deployment as read calls for. Marks the running revision bad when an alarm blames it,
/// takes back an intent this decision wrote before a patch it sent, and fills in the decision's
/// revisions.
pub fn judge_deployment(
    request: &Request,
    read: &DeploymentWithSets,
    record: &mut WorkloadRecord,
    decision: &mut Decision,
    now: u64,
    rules: &Rules,
) -> Step {
    let w = &request.workload;
    let deployment = &read.deployment;
    if undo::frozen(deployment) {
        return done(
            Outcome::NotActing,
            format!(
                "the deployment is frozen (annotation {}=true)",
                undo::FREEZE
            ),
        );
    }
    if deployment["spec"]["paused"] == true {
        return done(Outcome::Refused, format!(
            "the deployment is paused; resume it first (kubectl rollout resume deployment/{}) — a paused deployment is not rolled back",
            w.name
        ));
    }
    let history = undo::history(deployment, &read.replica_sets);
    let current = undo::current(deployment, &history).cloned();
    decision.from_revision = current.as_ref().map(|r| r.number);
    if let Some(intent) = record.intent.take().filter(|i| i.decision == decision.id) {
        if current.as_ref().is_some_and(|c| c.hash == intent.to_hash) {
            decision.from_revision = intent.from_revision;
            decision.to_revision = Some(intent.to_revision);
            decision.to_hash = Some(intent.to_hash);
            return done(
                Outcome::RolledBack,
                format!(
                    "rolled back to revision {} (the patch was sent by an earlier attempt of this decision, which did not finish its records)",
                    intent.to_revision
                ),
            );
        }
    }
    if let Some(step) = blame(request, current.as_ref(), record, now, rules) {
        return step;
    }
    let (target, why) = match target(
        request.to_revision,
        &history,
        current.as_ref(),
        record,
        rules.bake_ms,
    ) {
        Ok(t) => t,
        Err((outcome, why)) => return done(outcome, why),
    };
    decision.to_revision = Some(target.number);
    if equal_ignore_hash(&target.template, &deployment["spec"]["template"]) {
        return done(
            Outcome::NoOp,
            format!(
                "skipped: the deployment's template already matches revision {}",
                target.number
            ),
        );
    }
    if rules.dry_run {
        return done(
            Outcome::NoOp,
            format!("dry run: would roll back to revision {}", target.number),
        );
    }
    let cause = format!(
        "breakwater rollback at {} by {}: revision {} → {}",
        rfc3339(now),
        request.asker.describe(),
        decision
            .from_revision
            .map(|n| n.to_string())
            .unwrap_or_else(|| "?".into()),
        target.number
    );
    let patch = undo::undo_patch(deployment, &target, &cause);
    Step::Patch {
        target: Box::new(target),
        patch,
        why,
    }
}

/// An alarm's verdict on the revision running: `Some` when it is not the deploy's fault (no
/// revision yet, the alarm began before the rollout, the rollout is older than the look-back);
/// otherwise the running revision is marked bad, for Deployments and Rollouts alike. A person's
/// request blames nothing.
fn blame(
    request: &Request,
    current: Option<&Revision>,
    record: &mut WorkloadRecord,
    now: u64,
    rules: &Rules,
) -> Option<Step> {
    let Asker::Alarm { name, since_ms } = &request.asker else {
        return None;
    };
    let Some(current) = current else {
        return Some(done(Outcome::NotActing, "no ReplicaSet matches the workload's template yet (a rollout is starting); not the deploy's alarm to judge"));
    };
    // A rollout is a new ReplicaSet, or a rollback Breakwater made (which reuses an old one).
    let rolled_out = current.created_ms.max(record.last_rollback_ms.unwrap_or(0));
    if *since_ms < rolled_out {
        return Some(done(Outcome::NotActing, format!(
            "the alarm began at {} before the last rollout ({}, revision {}): not the deploy's fault",
            rfc3339(*since_ms), rfc3339(rolled_out), current.number
        )));
    }
    if now.saturating_sub(rolled_out) > rules.lookback_ms {
        return Some(done(Outcome::NotActing, format!(
            "the last rollout (revision {}, {}) is older than the {}-minute look-back window: not the deploy's fault",
            current.number, rfc3339(rolled_out), rules.lookback_ms / 60_000
        )));
    }
    mark_bad(record, &current.hash, current.number, name, now);
    None
}

/// Remembers that the revision `hash` tripped `alarm`: it is never rolled back onto.
fn mark_bad(record: &mut WorkloadRecord, hash: &str, revision: i64, alarm: &str, now: u64) {
    if !hash.is_empty() && !record.bad.iter().any(|m| m.hash == hash) {
        record.bad.push(Marked {
            hash: hash.to_string(),
            revision,
            alarm: alarm.to_string(),
            at_ms: now,
        });
    }
}

/// The revision to go back to: the one asked for, else the newest that survived its bake time
/// (the next revision came at least `bake_ms` later, or a rollback onto it was verified) and
/// never alarmed — the last known good — else the previous one if it never alarmed. The running
/// revision is never a target.
pub fn target(
    asked: Option<i64>,
    history: &[Revision],
    current: Option<&Revision>,
    record: &WorkloadRecord,
    bake_ms: u64,
) -> std::result::Result<(Revision, &'static str), (Outcome, String)> {
    let bad = |r: &Revision| record.bad.iter().find(|m| m.hash == r.hash);
    if let Some(wanted) = asked {
        let Some(r) = history.iter().find(|r| r.number == wanted) else {
            return Err((
                Outcome::Refused,
                format!("unable to find revision {wanted} in the rollout history"),
            ));
        };
        if let Some(m) = bad(r) {
            return Err((
                Outcome::Refused,
                format!(
                "revision {wanted} tripped alarm {} at {}; Breakwater does not roll back onto it",
                m.alarm, rfc3339(m.at_ms)
            ),
            ));
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
        record.good.contains(&r.hash) || replaced_at(r).is_some_and(|t| t - r.created_ms >= bake_ms)
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

/// A Deployment's decision: read, judge, suspend the sync of a GitOps owner ([`gitops`]), write
/// the intent (`persist`), patch; read and judge again when the Deployment changed between the
/// read and the patch. A suspension made by a decision that then did not roll back is resumed
/// at once.
#[allow(clippy::too_many_arguments)]
pub async fn deployment<W, P, F>(
    workloads: &W,
    argo: &ArgoCd,
    request: &Request,
    record: &mut WorkloadRecord,
    decision: &mut Decision,
    now: u64,
    rules: &Rules,
    started: Instant,
    persist: P,
) -> Result<(Outcome, String)>
where
    W: Workloads,
    P: Fn(WorkloadRecord) -> F,
    F: Future<Output = Result<()>>,
{
    let mut suspended_here = false;
    let verdict = deployment_once(
        workloads,
        argo,
        request,
        record,
        decision,
        now,
        rules,
        started,
        &persist,
        &mut suspended_here,
    )
    .await;
    // Resumed at once when nothing was rolled back; not after an error, which may have come
    // after the patch was applied (the retry's intent finds out).
    if suspended_here && matches!(verdict, Ok((outcome, _)) if outcome != Outcome::RolledBack) {
        if let Some(s) = record.gitops.take() {
            let said = gitops::resume_all(workloads, &s.chain).await?;
            persist(record.clone()).await?;
            let (outcome, reason) = verdict?;
            return Ok((
                outcome,
                format!("{reason} ({}: nothing was rolled back)", said.join("; ")),
            ));
        }
    }
    verdict
}

#[allow(clippy::too_many_arguments)]
async fn deployment_once<W, P, F>(
    workloads: &W,
    argo: &ArgoCd,
    request: &Request,
    record: &mut WorkloadRecord,
    decision: &mut Decision,
    now: u64,
    rules: &Rules,
    started: Instant,
    persist: &P,
    suspended_here: &mut bool,
) -> Result<(Outcome, String)>
where
    W: Workloads,
    P: Fn(WorkloadRecord) -> F,
    F: Future<Output = Result<()>>,
{
    let w = &request.workload;
    let mut last_change = String::new();
    let mut gitops_note = String::new();
    for _ in 0..DECISION_ATTEMPTS {
        let Some(read) = workloads.deployment(w.at()).await? else {
            return Ok((
                Outcome::Refused,
                format!("deployment {}/{} not found", w.namespace, w.name),
            ));
        };
        let (target, patch, why) =
            match judge_deployment(request, &read, record, decision, now, rules) {
                Step::Done(Outcome::NoOp, reason) if rules.dry_run => {
                    let owner = gitops::owner(&read.deployment, &w.cluster, argo)
                        .map(|o| format!(" (after suspending the automated sync of {o})"))
                        .unwrap_or_default();
                    return Ok((Outcome::NoOp, format!("{reason}{owner}")));
                }
                Step::Done(outcome, reason) => return Ok((outcome, reason)),
                Step::Patch { target, patch, why } => (*target, patch, why),
            };
        // A suspension recorded earlier holds only while its owner still does not sync (a person
        // may have turned it back on): otherwise it is made again.
        if let Some(s) = record.gitops.clone().filter(|_| !*suspended_here) {
            if gitops::still_suspended(workloads, &s).await? {
                gitops_note = format!(
                    "; {} stays suspended (since {})",
                    s.describe(),
                    rfc3339(s.owner().at_ms)
                );
            } else {
                tracing::warn!(owner = %s.describe(), "the recorded suspension no longer holds; suspending again");
                record.gitops = None;
            }
        }
        // A GitOps owner's sync is suspended first, or its next sync puts the bad revision back.
        if let (None, Some(owner)) = (
            &record.gitops,
            gitops::owner(&read.deployment, &w.cluster, argo),
        ) {
            let why = format!(
                "breakwater rolled back {w} at {} ({})",
                rfc3339(now),
                request.asker.describe()
            );
            match gitops::suspend(workloads, owner.clone(), argo, &why, &decision.id, now).await? {
                Suspend::Done(s) => {
                    gitops_note = format!(
                        "; {}: automated sync suspended until Git moves past {}",
                        s.describe(),
                        s.owner().revision
                    );
                    record.gitops = Some(s);
                    *suspended_here = true;
                }
                Suspend::NotNeeded(why) => gitops_note = format!("; {why}"),
                Suspend::Refused(why) => {
                    return Ok((Outcome::NotActing, format!(
                        "owned by {owner}, whose sync cannot be suspended: {why}; a rollback here would be undone by its next sync: roll back in Git (reported only)"
                    )))
                }
            }
        }
        record.intent = Some(Intent {
            decision: decision.id.clone(),
            from_revision: decision.from_revision,
            to_revision: target.number,
            to_hash: target.hash.clone(),
        });
        persist(record.clone()).await?;
        let patched = workloads.patch_deployment(w.at(), &patch).await?;
        record.intent = None;
        match patched {
            Patched::Applied(_) => {
                decision.to_hash = Some(target.hash.clone());
                decision.patched_after_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                return Ok((
                    Outcome::RolledBack,
                    format!(
                        "rolled back to revision {} ({}, {}){gitops_note}",
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

/// What an Argo Rollout as read calls for.
#[derive(Debug, Clone, PartialEq)]
pub enum RolloutStep {
    /// Decided: nothing to send.
    Done(Outcome, String),
    /// An update in progress: abort it (traffic back to the stable ReplicaSet).
    Abort,
    /// Fully promoted: send `patch`, which takes the Rollout back to `target`, then promote it
    /// fully.
    Undo {
        /// The revision rolled back to.
        target: Box<Revision>,
        /// The JSON patch of its spec.
        patch: Value,
        /// Why this revision.
        why: &'static str,
    },
}

/// What an Argo Rollout (with the ReplicaSets its selector lists) calls for. The revisions that
/// alarmed are remembered in the same record as a Deployment's: an update in progress that an
/// alarm blames is marked bad and aborted; a fully promoted one is judged as a Deployment is
/// (the look-back, the last known good never alarmed) and rolled back. Fills in the decision's
/// revisions.
pub fn judge_rollout(
    request: &Request,
    rollout: &Value,
    replica_sets: &[Value],
    record: &mut WorkloadRecord,
    decision: &mut Decision,
    now: u64,
    rules: &Rules,
) -> RolloutStep {
    let stop = |outcome, reason: String| RolloutStep::Done(outcome, reason);
    if undo::frozen(rollout) {
        return stop(
            Outcome::NotActing,
            format!("the rollout is frozen (annotation {}=true)", undo::FREEZE),
        );
    }
    if let Some(owner) = gitops::owner(rollout, "", &ArgoCd::default()) {
        return stop(Outcome::NotActing, format!(
            "owned by {owner}: an abort or a rollback here may be undone by the next sync; act in Git (reported only)"
        ));
    }
    if let Some(workload) = rollout["spec"]["workloadRef"]["name"].as_str() {
        return stop(Outcome::Refused, format!(
            "the rollout's template is Deployment {workload}'s (spec.workloadRef): roll that one back instead"
        ));
    }
    if rollout["spec"]["paused"] == true {
        return stop(Outcome::Refused, format!(
            "the rollout is paused (spec.paused); resume it first (kubectl argo rollouts resume {}) — a paused rollout is not rolled back",
            request.workload.name
        ));
    }
    // A new spec the controller has not taken yet: its status still describes the old one (and
    // the controller's reset of it would drop an abort sent now). Argo Rollouts writes
    // `observedGeneration` as a string.
    let generation = rollout["metadata"]["generation"].as_i64();
    let observed = match &rollout["status"]["observedGeneration"] {
        Value::String(s) => s.parse::<i64>().ok(),
        v => v.as_i64(),
    };
    if let (Some(generation), Some(observed)) = (generation, observed) {
        if observed < generation {
            return stop(Outcome::NotActing, format!(
                "the controller has not taken the rollout's new spec yet (generation {generation}, observed {observed}): a deploy is starting, not the revision's alarm to judge"
            ));
        }
    }
    decision.from_revision = Some(revision_of(rollout)).filter(|n| *n > 0);
    if rollout["status"]["abort"] == true {
        return stop(
            Outcome::NoOp,
            format!(
                "already aborted ({})",
                rollout["status"]["message"]
                    .as_str()
                    .unwrap_or("no message")
            ),
        );
    }
    let stable = rollout["status"]["stableRS"].as_str().unwrap_or_default();
    let current = rollout["status"]["currentPodHash"]
        .as_str()
        .unwrap_or_default();
    let history = undo::history(rollout, replica_sets);
    let in_progress = stable != current;
    if in_progress && request.to_revision.is_none() {
        // The canary is remembered bad when the alarm began after it started.
        let began = history
            .iter()
            .find(|r| r.hash == current)
            .map(|r| r.created_ms);
        if let Asker::Alarm { name, since_ms } = &request.asker {
            if began.is_none_or(|b| *since_ms >= b) {
                mark_bad(
                    record,
                    current,
                    decision.from_revision.unwrap_or(0),
                    name,
                    now,
                );
            }
        }
        if rules.dry_run {
            return stop(Outcome::NoOp, "dry run: would abort the rollout".into());
        }
        return RolloutStep::Abort;
    }
    let running = history.iter().find(|r| r.hash == stable).cloned();
    if let Some(Step::Done(outcome, reason)) = blame(request, running.as_ref(), record, now, rules)
    {
        return stop(outcome, reason);
    }
    let (target, why) = match target(
        request.to_revision,
        &history,
        running.as_ref(),
        record,
        rules.bake_ms,
    ) {
        Ok(t) => t,
        Err((outcome, why)) => return stop(outcome, why),
    };
    decision.to_revision = Some(target.number);
    if in_progress && target.hash == current {
        return stop(Outcome::Refused, format!(
            "revision {} is the canary in progress: a rollback does not promote it (kubectl argo rollouts promote does)",
            target.number
        ));
    }
    if in_progress && target.hash == stable {
        // Back to the stable ReplicaSet while an update is in progress: the abort.
        if rules.dry_run {
            return stop(Outcome::NoOp, "dry run: would abort the rollout".into());
        }
        return RolloutStep::Abort;
    }
    if target.hash == stable {
        return stop(
            Outcome::NoOp,
            format!(
                "skipped: revision {} is the stable one already",
                target.number
            ),
        );
    }
    if rules.dry_run {
        return stop(
            Outcome::NoOp,
            format!(
                "dry run: would roll back to revision {} and promote it fully",
                target.number
            ),
        );
    }
    let patch = undo::rollout_undo_patch(rollout, &target);
    RolloutStep::Undo {
        target: Box::new(target),
        patch,
        why,
    }
}

/// How long a rollback of a fully promoted Rollout waits for the controller to take the new
/// template (its `currentPodHash`) before promoting it: `promote --full` on a Rollout whose
/// current ReplicaSet is still the stable one has nothing to promote.
const OBSERVED_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A Rollout's decision: read (with its ReplicaSets), judge, then abort the update in progress,
/// or roll the promoted one back and promote it fully (the canary steps skipped for a revision
/// known good: argo-rollouts #2168), reading again when it changed between the read and the
/// patch.
pub async fn rollout<W: Workloads>(
    workloads: &W,
    request: &Request,
    record: &mut WorkloadRecord,
    decision: &mut Decision,
    now: u64,
    rules: &Rules,
    started: Instant,
) -> Result<(Outcome, String)> {
    let w = &request.workload;
    let mut last_change = String::new();
    for _ in 0..DECISION_ATTEMPTS {
        let Some(rollout) = workloads.rollout(w.at()).await? else {
            return Ok((
                Outcome::Refused,
                format!("rollout {}/{} not found", w.namespace, w.name),
            ));
        };
        let sets = workloads
            .replica_sets(w.at(), &rollout["spec"]["selector"])
            .await?;
        let (target, patch, why) =
            match judge_rollout(request, &rollout, &sets, record, decision, now, rules) {
                RolloutStep::Done(outcome, reason) => return Ok((outcome, reason)),
                RolloutStep::Abort => {
                    return abort(workloads, request, &rollout, decision, started).await
                }
                RolloutStep::Undo { target, patch, why } => (*target, patch, why),
            };
        let patched = match workloads
            .patch_object(Resource::ArgoRollout, w.at(), &patch)
            .await?
        {
            Patched::Applied(obj) => obj,
            Patched::Gone => return Ok((Outcome::Refused, "the rollout was deleted".into())),
            Patched::Changed(why) => {
                tracing::warn!(%why, "the rollout changed between read and patch; deciding again");
                last_change = why;
                continue;
            }
        };
        decision.to_hash = Some(target.hash.clone());
        decision.patched_after_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        // Promoted only once the controller has taken this template (the new generation
        // observed, the target current): it clears `promoteFull` when it first sees a new
        // template, and a template someone else sent meanwhile is not ours to promote. The
        // promotion carries the resourceVersion read, so that such a change fails it (409).
        let generation = patched["metadata"]["generation"].as_i64().unwrap_or(0);
        let waited = tokio::time::Instant::now();
        let mut taken = None;
        while waited.elapsed() < OBSERVED_WAIT {
            let now = workloads.rollout(w.at()).await?.unwrap_or_default();
            let observed = match &now["status"]["observedGeneration"] {
                Value::String(s) => s.parse::<i64>().unwrap_or(0),
                v => v.as_i64().unwrap_or(0),
            };
            if observed >= generation && now["status"]["currentPodHash"] == target.hash.as_str() {
                taken = Some(now);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let promoted = match &taken {
            Some(now) => {
                let rv = now["metadata"]["resourceVersion"].as_str().unwrap_or_default();
                match workloads.promote_rollout(w.at(), rv).await? {
                    Patched::Applied(_) => "promoted fully".to_string(),
                    Patched::Changed(why) => format!("NOT promoted: the rollout changed meanwhile ({why}); its canary steps run"),
                    Patched::Gone => "NOT promoted: the rollout was deleted".to_string(),
                }
            }
            None => format!(
                "NOT promoted: the controller had not taken the template within {} s; its canary steps run (kubectl argo rollouts promote --full)",
                OBSERVED_WAIT.as_secs()
            ),
        };
        let after = workloads.rollout(w.at()).await?.unwrap_or_default();
        return Ok((
            Outcome::RolledBack,
            format!(
                "rolled back to revision {} ({}, {}) and {promoted}; phase now {}",
                target.number,
                target.replica_set,
                why,
                after["status"]["phase"].as_str().unwrap_or("unknown")
            ),
        ));
    }
    Ok((Outcome::NotActing, format!(
        "the rollout kept changing under the decision ({DECISION_ATTEMPTS} attempts; last: {last_change}); a deploy is in progress"
    )))
}

/// Aborts the update in progress and reads the Rollout again to report the phase.
async fn abort<W: Workloads>(
    workloads: &W,
    request: &Request,
    rollout: &Value,
    decision: &mut Decision,
    started: Instant,
) -> Result<(Outcome, String)> {
    let w = &request.workload;
    let stable = rollout["status"]["stableRS"].as_str().unwrap_or_default();
    match workloads.abort_rollout(w.at()).await? {
        Patched::Applied(_) => {
            decision.patched_after_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        }
        Patched::Gone => return Ok((Outcome::Refused, "the rollout was deleted".into())),
        Patched::Changed(why) => {
            return Ok((Outcome::NotActing, format!("the rollout changed: {why}")))
        }
    }
    let after = workloads.rollout(w.at()).await?.unwrap_or_default();
    Ok((
        Outcome::Aborted,
        format!(
            "aborted: traffic back to the stable ReplicaSet {stable}; phase now {} ({})",
            after["status"]["phase"].as_str().unwrap_or("unknown"),
            after["status"]["message"].as_str().unwrap_or("no message")
        ),
    ))
}

impl<A: Alarms> RollbackFunction<A> {
    /// The workloads port over this function's clusters.
    pub(crate) fn workloads(&self) -> KubeWorkloads<'_> {
        KubeWorkloads::new(&self.kube, &self.toolkit.aws, self.toolkit.store.clock())
    }

    pub(crate) async fn decide(
        &self,
        request: &Request,
        record: &mut WorkloadRecord,
        decision: &mut Decision,
        now: u64,
        started: Instant,
    ) -> Result<(Outcome, String)> {
        let rules = Rules::of(&self.settings, self.toolkit.dry_run());
        let frozen = self.settings.frozen.contains(&request.workload);
        // The guard's request is about a revision already judged bad: no cool-down for it.
        let guard = matches!(request.asker, Asker::Guard(_));
        if let Some(verdict) = before_reading(frozen, record, now, &rules) {
            if !guard || frozen {
                return Ok(verdict);
            }
        }
        // The cluster's endpoint and CA (eks:DescribeCluster, once per container), where the
        // Kubernetes client was made before the workloads port: an unknown cluster fails here.
        self.kube
            .access(&self.toolkit.aws, &request.workload.cluster)
            .await?;
        let workloads = self.workloads();
        match request.workload.kind {
            Kind::Deployment => {
                let store = &self.toolkit.store;
                let key = record_key(&request.workload);
                let persist = |r: WorkloadRecord| {
                    let key = key.clone();
                    async move { store.put(&key, &r).await.map(|_| ()) }
                };
                deployment(
                    &workloads,
                    &self.settings.argocd,
                    request,
                    record,
                    decision,
                    now,
                    &rules,
                    started,
                    persist,
                )
                .await
            }
            Kind::Rollout => {
                rollout(&workloads, request, record, decision, now, &rules, started).await
            }
        }
    }
}
