//! The drain: deadline-aware, PDB-aware and explainable.
//!
//! Pods are chosen like `kubectl drain` (mirror, DaemonSet, finished and terminating pods stay),
//! evicted in tiers (workloads → other `kube-system` pods → `system-*-critical` pods), every pod
//! of a tier at once, through the eviction subresource with a UID precondition. After a budget's
//! refusal the pod is asked again as soon as the budget allows a disruption: the drainer watches
//! the budget the refusal names (a replacement becoming Ready frees it), and asks again at least
//! every [`BUDGET_WAIT_MAX`] whatever the watch says; a refusal that names no budget, throttling
//! and failures are retried with jittered backoff. At `deadline − the pod's grace period` the
//! pod's policy decides: `override-at-deadline` deletes it with the grace clamped to the time
//! left, `respect-pdb` leaves it, `delete-now` never waited. An evicted pod is watched until it is
//! gone. Every pod that blocked is reported with the budget that blocked it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use breakwater::clock::Clock;
use breakwater::kube::pods::{Deletion, Eviction, PodInfo, Pods, Waited};
use breakwater::report::picture::Lane;
use breakwater::Result;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};

/// The annotation (on a pod or its namespace) that chooses a pod's policy.
pub const POLICY_ANNOTATION: &str = "breakwater.io/drain-policy";

/// What happens to a pod whose budget still refuses at `deadline − grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Keep asking until the deadline; never delete.
    RespectPdb,
    /// Delete it then, with the grace clamped to the time left (the default).
    OverrideAtDeadline,
    /// Delete it at once, without asking the budget.
    DeleteNow,
}

impl Policy {
    /// `respect-pdb`, `override-at-deadline`, `delete-now`.
    pub fn parse(text: &str) -> Option<Policy> {
        match text {
            "respect-pdb" => Some(Policy::RespectPdb),
            "override-at-deadline" => Some(Policy::OverrideAtDeadline),
            "delete-now" => Some(Policy::DeleteNow),
            _ => None,
        }
    }
}

/// A pod to evict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (the eviction's precondition).
    pub uid: String,
    /// `terminationGracePeriodSeconds`.
    pub grace_s: i64,
    /// 1 workloads, 2 other `kube-system` pods, 3 `system-*-critical` pods.
    pub tier: u8,
    /// Its policy.
    pub policy: Policy,
}

impl Candidate {
    fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Why a pod on the node is left alone.
pub fn skip_reason(pod: &PodInfo) -> Option<&'static str> {
    if pod.annotations.contains_key("kubernetes.io/config.mirror") {
        return Some("mirror pod");
    }
    if pod.controller_kind.as_deref() == Some("DaemonSet") {
        return Some("DaemonSet pod");
    }
    if matches!(pod.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return Some("finished");
    }
    if pod.terminating {
        return Some("already terminating");
    }
    None
}

/// The eviction tier of a pod.
pub fn tier(pod: &PodInfo) -> u8 {
    let priority = pod.priority_class.as_deref().unwrap_or_default();
    if priority.starts_with("system-") && priority.ends_with("-critical") {
        3
    } else if pod.namespace == "kube-system" {
        2
    } else {
        1
    }
}

/// Splits the node's pods into candidates and the ones left alone (with why).
pub fn choose(
    pods: &[PodInfo],
    namespace_policies: &BTreeMap<String, Policy>,
    default: Policy,
) -> (Vec<Candidate>, Vec<String>) {
    let mut candidates = Vec::new();
    let mut left = Vec::new();
    for pod in pods {
        let namespace = pod.namespace.clone();
        let name = pod.name.clone();
        if let Some(why) = skip_reason(pod) {
            left.push(format!("{namespace}/{name}: {why}"));
            continue;
        }
        let policy = pod
            .annotations
            .get(POLICY_ANNOTATION)
            .and_then(|p| Policy::parse(p))
            .or_else(|| namespace_policies.get(&namespace).copied())
            .unwrap_or(default);
        candidates.push(Candidate {
            grace_s: pod.grace_s.unwrap_or(30),
            uid: pod.uid.clone(),
            tier: tier(pod),
            policy,
            namespace,
            name,
        });
    }
    candidates
        .sort_by(|a, b| (a.tier, &a.namespace, &a.name).cmp(&(b.tier, &b.namespace, &b.name)));
    (candidates, left)
}

/// What became of one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum PodOutcome {
    /// Evicted through its budget.
    Evicted {
        /// `namespace/name`.
        pod: String,
        /// Refusals before it went.
        refusals: u32,
        /// The last refusal's reason (the API server names the budget), if it was refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        held_by: Option<String>,
    },
    /// Gone (or replaced) before it was evicted.
    Gone {
        /// `namespace/name`.
        pod: String,
    },
    /// Deleted over its budget at `deadline − grace` (or at once under `delete-now`).
    Forced {
        /// `namespace/name`.
        pod: String,
        /// The grace given.
        grace_s: i64,
        /// What blocked it (the budget's refusal), if anything did.
        blocked_by: Option<String>,
        /// The policy that forced it.
        policy: Policy,
    },
    /// Still there at the deadline (`respect-pdb`, or the API failing).
    Blocked {
        /// `namespace/name`.
        pod: String,
        /// Why.
        reason: String,
    },
}

/// The whole drain, for the notification, the log and the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DrainReport {
    /// Per pod.
    pub pods: Vec<PodOutcome>,
    /// Left alone, with why.
    pub left_alone: Vec<String>,
    /// Evicted or forced pods still terminating at the deadline.
    pub still_terminating: Vec<String>,
    /// Whether anything was blocked or still there at the deadline.
    pub deadline_missed: bool,
    /// A pod is covered by more than one budget (the eviction API cannot work for it).
    pub escalations: Vec<String>,
    /// How long the drain took (ms).
    pub took_ms: u64,
    /// When the drain began (ms since the epoch).
    #[serde(default)]
    pub started_ms: u64,
    /// Its deadline (ms since the epoch).
    #[serde(default)]
    pub deadline_ms: u64,
    /// Per pod, in the order they settled: when it was asked, settled, and read back gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<PodTiming>,
    /// Drained for another cause than a spot reclaim (no instance is reclaimed at the deadline):
    /// what the notification says of the instance, e.g. "has an AWS Health scheduled change
    /// (AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED, from …)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Drained on a rebalance recommendation (no instance is reclaimed at the deadline).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebalance: bool,
    /// The node's load-balancer targets, deregistered before the first eviction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancers: Option<crate::targets::LoadBalancerDrain>,
}

/// When one pod's eviction was asked, when it settled (evicted, forced or given up), and when
/// the pod was read back gone (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodTiming {
    /// `namespace/name`.
    pub pod: String,
    /// Asked.
    pub asked_ms: u64,
    /// Settled.
    pub settled_ms: u64,
    /// Read back gone, if before the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_ms: Option<u64>,
}

impl PodOutcome {
    /// The pod, `namespace/name`.
    pub fn pod(&self) -> &str {
        match self {
            PodOutcome::Evicted { pod, .. }
            | PodOutcome::Gone { pod }
            | PodOutcome::Forced { pod, .. }
            | PodOutcome::Blocked { pod, .. } => pod,
        }
    }
}

impl DrainReport {
    /// Pods evicted through their budgets.
    pub fn evicted(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| matches!(p, PodOutcome::Evicted { .. }))
            .count()
    }

    /// Pods deleted over their budgets.
    pub fn forced(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| matches!(p, PodOutcome::Forced { .. }))
            .count()
    }

    /// A lane per pod for the report's picture, in the order they were asked.
    pub fn lanes(&self) -> Vec<Lane> {
        let mut lanes: Vec<Lane> = self
            .pods
            .iter()
            .map(|p| {
                let timing = self.timings.iter().find(|t| t.pod == p.pod());
                let (outcome, held_by, refusals) = match p {
                    PodOutcome::Evicted {
                        refusals, held_by, ..
                    } => ("evicted", held_by.as_deref(), *refusals),
                    PodOutcome::Gone { .. } => ("gone", None, 0),
                    PodOutcome::Forced { blocked_by, .. } => ("forced", blocked_by.as_deref(), 0),
                    PodOutcome::Blocked { reason, .. } => ("blocked", Some(reason.as_str()), 0),
                };
                Lane {
                    pod: p.pod().to_string(),
                    outcome: outcome.into(),
                    asked_ms: timing.map_or(self.started_ms, |t| t.asked_ms),
                    settled_ms: timing.map_or(self.started_ms + self.took_ms, |t| t.settled_ms),
                    gone_ms: timing.and_then(|t| t.gone_ms),
                    held_by: held_by.map(budget_named),
                    refusals,
                    still_terminating: self.still_terminating.iter().any(|s| s == p.pod()),
                }
            })
            .collect();
        lanes.sort_by(|a, b| (a.asked_ms, &a.pod).cmp(&(b.asked_ms, &b.pod)));
        // The load-balancer targets first: deregistered, then drained (or still draining when
        // the evictions began).
        if let Some(lb) = &self.load_balancers {
            let targets = lb.targets.iter().map(|t| Lane {
                pod: format!("LB {} {}", t.target_group, t.target),
                outcome: match (&t.registered_again, t.done_ms) {
                    (Some(state), _) => format!("registered again ({state})"),
                    (None, Some(_)) => "deregistered".into(),
                    (None, None) => "still draining".into(),
                },
                asked_ms: lb.started_ms,
                settled_ms: t.done_ms.unwrap_or(lb.ended_ms),
                gone_ms: None,
                held_by: None,
                refusals: 0,
                still_terminating: false,
            });
            lanes.splice(0..0, targets);
        }
        lanes
    }
}

/// The budget a refusal names: the API server says "The disruption budget web needs 2 healthy
/// pods and has 2 currently", or "The disruption budget web is still being processed by the
/// server." (`k8s.io/kubernetes` `pkg/registry/core/pod/storage/eviction.go`).
fn budget_of(reason: &str) -> Option<&str> {
    const SAID: &str = "disruption budget ";
    let at = reason.find(SAID)?;
    reason[at + SAID.len()..]
        .split_whitespace()
        .next()
        .filter(|name| !name.is_empty())
}

/// The budget a refusal names, as `PDB web`; any other reason is kept as it is.
fn budget_named(reason: &str) -> String {
    match budget_of(reason) {
        Some(name) => format!("PDB {name}"),
        None => reason.to_string(),
    }
}

/// The longest a refused pod waits on its budget's watch before it is asked again anyway (what
/// `kubectl drain` waits between tries): a watch that misses the moment, or a budget rule the
/// watch does not read (an unready pod's, `unhealthyPodEvictionPolicy`), costs at most this.
pub const BUDGET_WAIT_MAX: Duration = Duration::from_secs(5);

/// Namespace policies from the namespaces' annotations (a namespace that cannot be read has none).
pub async fn namespace_policies<P: Pods>(
    pods: &P,
    namespaces: &[String],
) -> BTreeMap<String, Policy> {
    let mut out = BTreeMap::new();
    for ns in namespaces {
        if let Ok(Some(annotations)) = pods.namespace_annotations(ns).await {
            if let Some(p) = annotations
                .get(POLICY_ANNOTATION)
                .and_then(|p| Policy::parse(p))
            {
                out.insert(ns.clone(), p);
            }
        }
    }
    out
}

/// The pods on `node`.
pub async fn pods_on<P: Pods>(pods: &P, node: &str) -> Result<Vec<PodInfo>> {
    pods.on_node(node).await
}

/// The namespaces of `pods`, sorted, once each.
pub fn namespaces_of(pods: &[PodInfo]) -> Vec<String> {
    let mut ns: Vec<String> = pods.iter().map(|p| p.namespace.clone()).collect();
    ns.sort();
    ns.dedup();
    ns
}

/// The drainer: the cluster's pods, the clock and the deadline (ms since the epoch).
#[derive(Clone)]
pub struct Drainer<P> {
    /// The cluster's pods.
    pub client: P,
    /// The function's clock.
    pub clock: Arc<dyn Clock>,
    /// When the instance goes, less the safety margin.
    pub deadline_ms: u64,
}

impl<P> std::fmt::Debug for Drainer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drainer")
            .field("deadline_ms", &self.deadline_ms)
            .finish_non_exhaustive()
    }
}

/// A small deterministic jitter (0.8–1.2) from the pod and attempt, so that parallel retries do
/// not march in step.
fn jitter(seed: &str, attempt: u32) -> f64 {
    let h = seed
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64 ^ u64::from(attempt), |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    0.8 + (h % 401) as f64 / 1000.0
}

impl<P: Pods + Clone> Drainer<P> {
    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    async fn sleep_until(&self, at_ms: u64, at_most: Duration) {
        let wait = Duration::from_millis(at_ms.saturating_sub(self.now())).min(at_most);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    async fn delete(&self, c: &Candidate) -> Result<i64> {
        let left_s = (self.deadline_ms.saturating_sub(self.now()) / 1000) as i64;
        let grace = left_s.clamp(1, c.grace_s.max(1));
        // Under the UID precondition (the adapter retries 429, 5xx and cut connections): a
        // pod already gone, or replaced under its name, was given no grace.
        match self
            .client
            .delete(&c.namespace, &c.name, &c.uid, grace)
            .await?
        {
            Deletion::Deleted => Ok(grace),
            Deletion::Gone => Ok(0),
        }
    }

    /// Evicts one pod, retrying refusals until its policy says otherwise.
    pub async fn evict_pod(&self, c: Candidate) -> (PodOutcome, Option<String>) {
        let pod = c.label();
        let force_at = self
            .deadline_ms
            .saturating_sub(c.grace_s.max(0) as u64 * 1000);
        if c.policy == Policy::DeleteNow {
            return match self.delete(&c).await {
                Ok(grace_s) => (
                    PodOutcome::Forced {
                        pod,
                        grace_s,
                        blocked_by: None,
                        policy: c.policy,
                    },
                    None,
                ),
                Err(e) => (
                    PodOutcome::Blocked {
                        pod,
                        reason: e.to_string(),
                    },
                    None,
                ),
            };
        }
        let mut refusals = 0u32;
        let mut blocked_by: Option<String> = None;
        // The last budget refusal only (an error in between is not what held the pod).
        let mut refused_by: Option<String> = None;
        let mut escalation = None;
        let mut allowed_at_once = 0u32;
        for attempt in 0u32.. {
            let answer = self.client.evict(&c.namespace, &c.name, &c.uid).await;
            let mut pause = Duration::from_millis((250u64 << attempt.min(3)).min(2_000));
            // The budget that refused, to watch until it allows a disruption.
            let mut watch = None;
            match answer {
                Ok(Eviction::Evicted) => {
                    let held_by = refused_by.filter(|_| refusals > 0);
                    return (
                        PodOutcome::Evicted {
                            pod,
                            refusals,
                            held_by,
                        },
                        escalation,
                    );
                }
                Ok(Eviction::Gone | Eviction::Replaced) => {
                    return (PodOutcome::Gone { pod }, escalation)
                }
                Ok(Eviction::Blocked { reason }) => {
                    refusals += 1;
                    watch = budget_of(&reason).map(str::to_string);
                    refused_by = Some(reason.clone());
                    blocked_by = Some(reason);
                }
                Ok(Eviction::MultipleBudgets) => {
                    refusals += 1;
                    let why = "covered by more than one PodDisruptionBudget; the eviction API cannot evict it".to_string();
                    escalation = Some(format!("{pod}: {why}"));
                    refused_by = Some(why.clone());
                    blocked_by = Some(why);
                    // Asking again will not help; wait for the policy's moment.
                    pause = Duration::from_millis(force_at.saturating_sub(self.now()));
                }
                Ok(Eviction::Throttled { retry_after }) => pause = retry_after,
                Err(e) if e.is_retryable() => blocked_by = Some(e.to_string()),
                Err(e) => {
                    return (
                        PodOutcome::Blocked {
                            pod,
                            reason: e.to_string(),
                        },
                        escalation,
                    )
                }
            }
            let now = self.now();
            if now >= force_at {
                match c.policy {
                    Policy::OverrideAtDeadline | Policy::DeleteNow => {
                        return match self.delete(&c).await {
                            Ok(grace_s) => (
                                PodOutcome::Forced {
                                    pod,
                                    grace_s,
                                    blocked_by,
                                    policy: c.policy,
                                },
                                escalation,
                            ),
                            Err(e) => (
                                PodOutcome::Blocked {
                                    pod,
                                    reason: e.to_string(),
                                },
                                escalation,
                            ),
                        };
                    }
                    Policy::RespectPdb if now >= self.deadline_ms => {
                        let reason = blocked_by.unwrap_or_else(|| "the deadline passed".into());
                        return (PodOutcome::Blocked { pod, reason }, escalation);
                    }
                    Policy::RespectPdb => {}
                }
            }
            let next = if c.policy == Policy::RespectPdb {
                self.deadline_ms
            } else {
                force_at
            };
            if let Some(budget) = watch {
                let wait = Duration::from_millis(next.max(now + 1) - now).min(BUDGET_WAIT_MAX);
                match self.client.budget_allows(&c.namespace, &budget, wait).await {
                    // A budget that allowed at once, twice in a row, while its pod is refused
                    // (a name misread, a webhook's refusal worded as a budget's): the backoff,
                    // not a loop of asks.
                    Ok(Waited::Already) => {
                        allowed_at_once += 1;
                        if allowed_at_once < 2 {
                            continue;
                        }
                    }
                    Ok(_) => {
                        allowed_at_once = 0;
                        continue;
                    }
                    // A budget that cannot be watched (RBAC, a failure): the backoff instead.
                    Err(e) => {
                        tracing::warn!(pod = %pod, budget = %budget, error = %e, "cannot watch the budget; asking again after a pause");
                    }
                }
            }
            let pause = Duration::from_secs_f64(pause.as_secs_f64() * jitter(&pod, attempt));
            self.sleep_until(next.max(now + 1), pause).await;
        }
        unreachable!("the loop returns")
    }

    /// Drains: every tier's pods at once; the next tier starts when the previous one has
    /// settled, or at the latest when its cut-off comes (the deadline minus 40 s, then 25 s), so
    /// that a blocked workload cannot keep system pods from moving.
    pub async fn drain(&self, candidates: Vec<Candidate>, left_alone: Vec<String>) -> DrainReport {
        let started = self.now();
        let mut report = DrainReport {
            left_alone,
            started_ms: started,
            deadline_ms: self.deadline_ms,
            ..DrainReport::default()
        };
        // Two kinds of work run together: a pod's eviction (it settles), then, once evicted or
        // forced, the watch for it to be gone (so that its lane says when it went).
        let mut running: FuturesUnordered<BoxFuture<'_, Done>> = FuturesUnordered::new();
        let mut pending = 0usize;
        for tier in 1..=3u8 {
            let cutoff = match tier {
                2 => self.deadline_ms.saturating_sub(40_000),
                3 => self.deadline_ms.saturating_sub(25_000),
                _ => 0,
            };
            // Wait for what runs to settle, or for this tier's cut-off.
            while pending > 0 && self.now() < cutoff {
                let wait = Duration::from_millis(cutoff.saturating_sub(self.now()));
                tokio::select! {
                    Some(done) = running.next() => {
                        if self.settle(&mut report, &mut running, done) {
                            pending -= 1;
                        }
                    }
                    _ = tokio::time::sleep(wait) => break,
                }
            }
            for c in candidates.iter().filter(|c| c.tier == tier).cloned() {
                let me = self.clone();
                running.push(Box::pin(async move {
                    let asked_ms = me.now();
                    let uid = c.uid.clone();
                    let done = me.evict_pod(c).await;
                    Done::Settled((done, asked_ms, me.now()), uid)
                }));
                pending += 1;
            }
        }
        while let Some(done) = running.next().await {
            self.settle(&mut report, &mut running, done);
        }
        report.still_terminating.sort();
        report.deadline_missed = report
            .pods
            .iter()
            .any(|p| matches!(p, PodOutcome::Blocked { .. }))
            || !report.still_terminating.is_empty();
        report.took_ms = self.now().saturating_sub(started);
        report
    }

    /// Records what came back; a pod evicted or forced is then watched until it is gone.
    /// Whether it was an eviction that settled.
    fn settle<'a>(
        &self,
        report: &mut DrainReport,
        running: &mut FuturesUnordered<BoxFuture<'a, Done>>,
        done: Done,
    ) -> bool
    where
        P: 'a,
    {
        match done {
            Done::Settled(settled, uid) => {
                let ((outcome, _), _, _) = &settled;
                if matches!(
                    outcome,
                    PodOutcome::Evicted { .. } | PodOutcome::Forced { .. }
                ) {
                    let pod = outcome.pod().to_string();
                    let me = self.clone();
                    running.push(Box::pin(async move {
                        let gone = me.watch_gone(&pod, &uid).await;
                        Done::Gone(pod, gone)
                    }));
                }
                record(report, settled);
                true
            }
            Done::Gone(pod, Some(at)) => {
                if let Some(t) = report.timings.iter_mut().find(|t| t.pod == pod) {
                    t.gone_ms = Some(at);
                }
                false
            }
            Done::Gone(pod, None) => {
                report.still_terminating.push(pod);
                false
            }
        }
    }

    /// Watches (until the deadline) an evicted or forced pod until it is gone; when it was seen
    /// gone, or `None` if it was still there at the deadline.
    async fn watch_gone(&self, pod: &str, uid: &str) -> Option<u64> {
        let (ns, name) = pod.split_once('/').unwrap_or_default();
        loop {
            let left = Duration::from_millis(self.deadline_ms.saturating_sub(self.now()));
            match self.client.gone(ns, name, uid, left).await {
                Ok(true) => return Some(self.now()),
                Ok(false) if left.is_zero() => return None,
                Ok(false) => {}
                // A watch that fails: look again a second later.
                Err(e) => {
                    tracing::warn!(pod = %pod, error = %e, "cannot watch a deleted pod; looking again");
                    if left.is_zero() {
                        return None;
                    }
                    self.sleep_until(self.deadline_ms, Duration::from_secs(1))
                        .await;
                }
            }
        }
    }
}

/// A pod's eviction settled: what became of it (and any escalation), when it was asked, when
/// it settled.
type Settled = ((PodOutcome, Option<String>), u64, u64);

/// What the drain's concurrent work comes back with.
enum Done {
    /// An eviction settled (the pod's UID beside it).
    Settled(Settled, String),
    /// A deleted pod was read back gone at this time, or was still there at the deadline.
    Gone(String, Option<u64>),
}

fn record(report: &mut DrainReport, ((outcome, escalation), asked_ms, settled_ms): Settled) {
    report.timings.push(PodTiming {
        pod: outcome.pod().to_string(),
        asked_ms,
        settled_ms,
        gone_ms: None,
    });
    report.pods.push(outcome);
    report.escalations.extend(escalation);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> PodInfo {
        PodInfo::from_json(v).unwrap()
    }

    #[test]
    fn chooses_like_kubectl_drain_and_orders_tiers() {
        let pods = vec![
            pod(
                json!({"metadata": {"name": "web", "namespace": "shop", "uid": "1"}, "spec": {"containers": []}}),
            ),
            pod(
                json!({"metadata": {"name": "coredns", "namespace": "kube-system", "uid": "2"},
                "spec": {"containers": [], "priorityClassName": "system-cluster-critical"}}),
            ),
            pod(
                json!({"metadata": {"name": "metrics", "namespace": "kube-system", "uid": "3"}, "spec": {"containers": []}}),
            ),
            pod(
                json!({"metadata": {"name": "proxy", "namespace": "kube-system", "annotations": {"kubernetes.io/config.mirror": "x"}}}),
            ),
            pod(
                json!({"metadata": {"name": "exporter", "namespace": "kube-system",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "e", "uid": "d", "controller": true}]}}),
            ),
            pod(
                json!({"metadata": {"name": "job", "namespace": "batch"}, "status": {"phase": "Succeeded"}}),
            ),
            pod(
                json!({"metadata": {"name": "old", "namespace": "shop", "deletionTimestamp": "2026-11-23T00:00:00Z"}}),
            ),
            pod(
                json!({"metadata": {"name": "db", "namespace": "data", "uid": "4",
                "annotations": {POLICY_ANNOTATION: "respect-pdb"}}, "spec": {"containers": [], "terminationGracePeriodSeconds": 60}}),
            ),
        ];
        let ns = BTreeMap::from([("shop".to_string(), Policy::DeleteNow)]);
        let (candidates, left) = choose(&pods, &ns, Policy::OverrideAtDeadline);
        let order: Vec<(&str, u8, Policy)> = candidates
            .iter()
            .map(|c| (c.name.as_str(), c.tier, c.policy))
            .collect();
        assert_eq!(
            order,
            vec![
                ("db", 1, Policy::RespectPdb),
                ("web", 1, Policy::DeleteNow),
                ("metrics", 2, Policy::OverrideAtDeadline),
                ("coredns", 3, Policy::OverrideAtDeadline),
            ]
        );
        assert_eq!(candidates[0].grace_s, 60);
        assert_eq!(left.len(), 4, "{left:?}");
        assert!(left.iter().any(|l| l.contains("DaemonSet")));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for i in 0..50 {
            let j = jitter(&format!("pod-{i}"), i);
            assert!((0.8..=1.2).contains(&j), "{j}");
        }
    }
}
