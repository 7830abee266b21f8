//! An in-memory cluster's pods ([`Pods`]), behaving as the adapter does against the Kubernetes
//! emulator: an evicted or deleted pod terminates for its grace period (on `tokio::time`, so
//! paused-time tests run in milliseconds) and is then gone; the UID precondition answers
//! `Replaced` / `Gone`; budgets refuse, throttle or cover a pod twice when told to, and a budget
//! that refuses a while allows again [`REPLACEMENT_READY`] after its watch begins; every call is
//! recorded. Also [`PausedClock`], a [`Clock`] that reads `tokio::time`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::kube::pods::{Deletion, Eviction, PodInfo, Pods, Waited};

/// A [`Clock`] on `tokio::time`: starts at `start_ms` and moves as (paused) tokio time does.
#[derive(Debug, Clone, Copy)]
pub struct PausedClock {
    start_ms: u64,
    origin: Instant,
}

impl PausedClock {
    /// A clock that reads `start_ms` now.
    pub fn at(start_ms: u64) -> Self {
        PausedClock {
            start_ms,
            origin: Instant::now(),
        }
    }
}

impl Clock for PausedClock {
    fn now_ms(&self) -> u64 {
        self.start_ms + self.origin.elapsed().as_millis() as u64
    }
}

/// How long a budget that refuses a while takes to allow again, as its watch sees it (a
/// replacement becoming Ready).
pub const REPLACEMENT_READY: Duration = Duration::from_secs(1);

/// How a pod's budget answers its evictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Budget {
    /// Refuses this many times (`None`: always) with this explanation, then allows.
    Refuses {
        /// How many refusals are left (`None`: never allows).
        times: Option<u32>,
        /// The server's explanation.
        reason: String,
    },
    /// More than one budget covers the pod: the API server answers 500 to every eviction.
    Multiple,
}

/// Failures to inject, by operation, each answered once (shared by the Kubernetes fakes).
#[derive(Debug, Default)]
pub(crate) struct Failures(VecDeque<(String, Error)>);

impl Failures {
    /// The next call of `op` fails with `error`.
    pub(crate) fn push(&mut self, op: &str, error: Error) {
        self.0.push_back((op.to_string(), error));
    }

    /// The failure waiting for `op`, if any (taken).
    pub(crate) fn take(&mut self, op: &str) -> Option<Error> {
        let i = self.0.iter().position(|(o, _)| o == op)?;
        self.0.remove(i).map(|(_, e)| e)
    }
}

#[derive(Debug)]
struct FakePod {
    info: PodInfo,
    /// When a terminating pod is gone.
    gone_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    pods: BTreeMap<String, FakePod>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    budgets: BTreeMap<String, Budget>,
    throttles: u32,
    failures: Failures,
    calls: Vec<String>,
}

impl State {
    fn sweep(&mut self) {
        let now = Instant::now();
        self.pods.retain(|_, p| p.gone_at.is_none_or(|at| now < at));
    }

    fn failure(&mut self, op: &str) -> Option<Error> {
        self.failures.take(op)
    }

    fn terminate(&mut self, label: &str, grace_s: i64) {
        let at = Instant::now() + Duration::from_secs(u64::try_from(grace_s).unwrap_or(0));
        if let Some(p) = self.pods.get_mut(label) {
            p.info.terminating = true;
            // A shorter grace shortens a termination under way; a longer one does not.
            p.gone_at = Some(p.gone_at.map_or(at, |g| g.min(at)));
        }
        self.sweep();
    }
}

/// The fake: cheap to clone (clones share the cluster).
#[derive(Debug, Clone, Default)]
pub struct FakePods(Arc<Mutex<State>>);

impl FakePods {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) a pod.
    pub fn add(&self, pod: PodInfo) -> &Self {
        self.state().pods.insert(
            pod.label(),
            FakePod {
                info: pod,
                gone_at: None,
            },
        );
        self
    }

    /// Adds a namespace with annotations.
    pub fn namespace(&self, name: &str, annotations: &[(&str, &str)]) -> &Self {
        let map = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.state().namespaces.insert(name.to_string(), map);
        self
    }

    /// Sets how the budget of `namespace/name` answers.
    pub fn budget(&self, pod: &str, budget: Budget) -> &Self {
        self.state().budgets.insert(pod.to_string(), budget);
        self
    }

    /// The next `times` evictions (of any pod) are throttled (429 without a budget cause).
    pub fn throttle(&self, times: u32) -> &Self {
        self.state().throttles = times;
        self
    }

    /// The next call of `op` (`on_node`, `namespace`, `evict`, `delete`, `gone`, `budget`) fails
    /// so.
    pub fn fail_next(&self, op: &str, error: Error) -> &Self {
        self.state().failures.push(op, error);
        self
    }

    /// The pods still there (terminating or not), as `namespace/name`.
    pub fn present(&self) -> Vec<String> {
        let mut s = self.state();
        s.sweep();
        s.pods.keys().cloned().collect()
    }

    /// Whether `namespace/name` is there and terminating.
    pub fn terminating(&self, pod: &str) -> bool {
        let mut s = self.state();
        s.sweep();
        s.pods.get(pod).is_some_and(|p| p.info.terminating)
    }

    /// Every call made, in order (`evict shop/web-0`, `delete shop/web-0 grace 5`, …).
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// The calls whose text starts with `prefix`.
    pub fn calls_of(&self, prefix: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect()
    }
}

impl Pods for FakePods {
    async fn on_node(&self, node: &str) -> Result<Vec<PodInfo>> {
        let mut s = self.state();
        s.calls.push(format!("on_node {node}"));
        if let Some(e) = s.failure("on_node") {
            return Err(e);
        }
        s.sweep();
        Ok(s.pods
            .values()
            .filter(|p| p.info.node == node)
            .map(|p| p.info.clone())
            .collect())
    }

    async fn namespace_annotations(
        &self,
        namespace: &str,
    ) -> Result<Option<BTreeMap<String, String>>> {
        let mut s = self.state();
        s.calls.push(format!("namespace {namespace}"));
        if let Some(e) = s.failure("namespace") {
            return Err(e);
        }
        Ok(s.namespaces.get(namespace).cloned())
    }

    async fn evict(&self, namespace: &str, name: &str, uid: &str) -> Result<Eviction> {
        let label = format!("{namespace}/{name}");
        let mut s = self.state();
        s.calls.push(format!("evict {label}"));
        if let Some(e) = s.failure("evict") {
            return Err(e);
        }
        s.sweep();
        let Some(pod) = s.pods.get(&label) else {
            return Ok(Eviction::Gone);
        };
        if pod.info.uid != uid {
            return Ok(Eviction::Replaced);
        }
        let grace = pod.info.grace_s.unwrap_or(30);
        if s.throttles > 0 {
            s.throttles -= 1;
            return Ok(Eviction::Throttled {
                retry_after: Duration::from_secs(1),
            });
        }
        match s.budgets.get_mut(&label) {
            Some(Budget::Multiple) => return Ok(Eviction::MultipleBudgets),
            Some(Budget::Refuses { times, reason }) if *times != Some(0) => {
                if let Some(t) = times {
                    *t -= 1;
                }
                return Ok(Eviction::Blocked {
                    reason: reason.clone(),
                });
            }
            _ => {}
        }
        s.terminate(&label, grace);
        Ok(Eviction::Evicted)
    }

    async fn delete(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        grace_s: i64,
    ) -> Result<Deletion> {
        let label = format!("{namespace}/{name}");
        // As the adapter: a transient failure is tried again, at most READ_ATTEMPTS in all.
        let mut attempt = 1;
        loop {
            let failed = {
                let mut s = self.state();
                s.calls.push(format!("delete {label} grace {grace_s}"));
                s.failure("delete")
            };
            match failed {
                Some(e) if e.is_retryable() && attempt < crate::kube::READ_ATTEMPTS => {
                    tokio::time::sleep(crate::kube::read_pause(attempt, None)).await;
                    attempt += 1;
                }
                Some(e) => return Err(e),
                None => break,
            }
        }
        let mut s = self.state();
        s.sweep();
        match s.pods.get(&label) {
            Some(p) if p.info.uid == uid => {
                s.terminate(&label, grace_s);
                Ok(Deletion::Deleted)
            }
            _ => Ok(Deletion::Gone),
        }
    }

    async fn gone(&self, namespace: &str, name: &str, uid: &str, wait: Duration) -> Result<bool> {
        let label = format!("{namespace}/{name}");
        let ends = {
            let mut s = self.state();
            s.calls.push(format!("gone {label}"));
            if let Some(e) = s.failure("gone") {
                return Err(e);
            }
            s.sweep();
            match s.pods.get(&label) {
                Some(p) if p.info.uid == uid => p.gone_at,
                _ => return Ok(true),
            }
        };
        // As the watch: back when the kubelet removes it, or when the wait is over.
        let until = Instant::now() + wait;
        tokio::time::sleep_until(ends.map_or(until, |at| at.min(until))).await;
        let mut s = self.state();
        s.sweep();
        Ok(s.pods.get(&label).is_none_or(|p| p.info.uid != uid))
    }

    async fn budget_allows(&self, namespace: &str, name: &str, wait: Duration) -> Result<Waited> {
        let frees = {
            let mut s = self.state();
            s.calls.push(format!("budget {namespace}/{name}"));
            if let Some(e) = s.failure("budget") {
                return Err(e);
            }
            // The budget as the refusals of the pods it covers name it ("The disruption budget
            // web needs …").
            let names = |reason: &str| {
                reason
                    .split_once("disruption budget ")
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    == Some(name)
            };
            let covered: Vec<&Budget> = s
                .budgets
                .iter()
                .filter(|(pod, _)| pod.starts_with(&format!("{namespace}/")))
                .map(|(_, b)| b)
                .filter(|b| matches!(b, Budget::Refuses { reason, .. } if names(reason)))
                .collect();
            if covered.is_empty() {
                Some(Duration::ZERO)
            } else if covered
                .iter()
                .any(|b| matches!(b, Budget::Refuses { times: None, .. }))
            {
                None
            } else {
                Some(REPLACEMENT_READY)
            }
        };
        // A budget that refuses a while allows again once a replacement is Ready.
        match frees {
            Some(Duration::ZERO) => Ok(Waited::Already),
            Some(after) if after <= wait => {
                tokio::time::sleep(after).await;
                Ok(Waited::Came)
            }
            _ => {
                tokio::time::sleep(wait).await;
                Ok(Waited::TimedOut)
            }
        }
    }
}
