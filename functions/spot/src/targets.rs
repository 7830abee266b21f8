//! Out of the load balancers before the first eviction (aws-node-termination-handler #316).
//!
//! Cordoning labels nothing out of an ELBv2 target group by itself: the AWS Load Balancer
//! Controller or whoever registered the node removes it on its own schedule, and a target that is
//! still registered when its node is reclaimed drops the requests in flight. So, right after the
//! cordon, every registration of the instance (`instance` targets) and of its private addresses
//! (`ip` targets: the VPC CNI gives pods secondary addresses of the node's network interfaces) in
//! the target groups of its VPC is deregistered, and the evictions wait until ELB has completed
//! the deregistrations, bounded (below).
//!
//! ELB's facts this follows (Application Load Balancers User Guide, "Deregistration delay";
//! DeregisterTargets, ELBv2 API Reference):
//! - "The initial state of a deregistering target is draining. After the deregistration delay
//!   elapses, the deregistration process completes and the state of the target is unused";
//! - "If a deregistering target has no in-flight requests and no active connections, Elastic Load
//!   Balancing immediately completes the deregistration process, without waiting for the
//!   deregistration delay to elapse" — so the state is read back, not the delay assumed;
//! - the default delay is 300 s, more than the whole warning: the wait ends at the first of every
//!   target done, the longest delay, `BREAKWATER_SPOT_LB_WAIT_MAX_SECONDS`, and half the time left
//!   before the deadline (the evictions keep the other half);
//! - a port override given at registration must be given to deregister.
//!
//! A failure here never stops the drain: it is reported and the evictions begin.

use std::time::Duration;

use breakwater::clock::Clock;
use breakwater::ports::{InstanceInfo, Registration, TargetGroups};
use serde::{Deserialize, Serialize};

/// How often the targets' states are read while they drain.
const POLL: Duration = Duration::from_secs(1);

/// The longest one lookup or deregistration may take (the ELB client retries within it).
const CALL_LIMIT: Duration = Duration::from_secs(10);

/// What happened to the node's load-balancer targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancerDrain {
    /// When the targets were looked up (ms since the epoch).
    pub started_ms: u64,
    /// When the evictions were let begin.
    pub ended_ms: u64,
    /// Every target deregistered.
    pub targets: Vec<TargetDrain>,
    /// Why the wait ended, for people.
    pub ended_because: String,
    /// What failed (the drain went on without waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One deregistered target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetDrain {
    /// The target group's name.
    pub target_group: String,
    /// `i-…` or an address, `:port` when registered with one.
    pub target: String,
    /// The group's deregistration delay.
    pub delay_s: u64,
    /// When it was read back done draining; none: still draining when the wait ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_ms: Option<u64>,
    /// Listed again in this state while it drained: something registered it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_again: Option<String>,
}

impl LoadBalancerDrain {
    /// One line for the record, the report and the notification: how many targets, how each
    /// ended, how long the evictions waited and why.
    pub fn summary(&self) -> String {
        let again = self
            .targets
            .iter()
            .filter(|t| t.registered_again.is_some())
            .count();
        let still = self.still_draining();
        format!(
            "{} target(s) deregistered before the first eviction, {still} still draining, {again} registered again by something else, {} done, after {:.1} s ({})",
            self.targets.len(),
            self.targets.len() - still - again,
            self.ended_ms.saturating_sub(self.started_ms) as f64 / 1000.0,
            self.error.as_deref().unwrap_or(&self.ended_because)
        )
    }

    /// Targets still draining when the evictions began.
    pub fn still_draining(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| t.done_ms.is_none() && t.registered_again.is_none())
            .count()
    }
}

/// Deregisters the instance's targets and waits for ELB to complete, bounded as the module says.
/// `None` when the instance has no target in its VPC's target groups (or no VPC). Every ELB call
/// has its own time limit, so a stalled request cannot hold the evictions either.
pub async fn leave_load_balancers<T: TargetGroups>(
    groups: &T,
    clock: &dyn Clock,
    info: &InstanceInfo,
    deadline_ms: u64,
    wait_max_ms: u64,
) -> Option<LoadBalancerDrain> {
    let vpc = info.vpc.as_deref()?;
    let started_ms = clock.now_ms();
    let half_left = deadline_ms.saturating_sub(started_ms) / 2;
    let mut ids = vec![info.id.clone()];
    ids.extend(info.private_ips.iter().cloned());
    let failed = |what: String, targets: Vec<TargetDrain>| {
        tracing::error!(error = %what, "load-balancer deregistration failed; the drain goes on");
        Some(LoadBalancerDrain {
            started_ms,
            ended_ms: clock.now_ms(),
            targets,
            ended_because: "failed".into(),
            error: Some(what),
        })
    };
    let lookup_limit = CALL_LIMIT.min(Duration::from_millis(half_left.max(1)));
    let registrations =
        match tokio::time::timeout(lookup_limit, groups.registrations(vpc, &ids)).await {
            Ok(Ok(r)) if r.is_empty() => {
                tracing::info!(%vpc, "the node is a target of no load balancer");
                return None;
            }
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return failed(format!("looking up its targets: {e}"), Vec::new()),
            Err(_) => {
                return failed(
                    format!(
                        "looking up its targets took over {} s",
                        lookup_limit.as_secs()
                    ),
                    Vec::new(),
                )
            }
        };
    let mut targets: Vec<TargetDrain> = registrations.iter().map(target_drain).collect();
    // A group that refused is reported; the others are still waited for.
    let error = match tokio::time::timeout(CALL_LIMIT, groups.deregister(&registrations)).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("deregistering: {e}")),
        Err(_) => Some(format!(
            "deregistering took over {} s",
            CALL_LIMIT.as_secs()
        )),
    };
    if let Some(e) = &error {
        tracing::error!(error = %e, "a deregistration failed; waiting for the rest");
    }
    tracing::info!(
        targets = targets.len(),
        groups = ?targets.iter().map(|t| t.target_group.as_str()).collect::<std::collections::BTreeSet<_>>(),
        "deregistered from the load balancers"
    );
    // The delay runs from the deregistration, and ELB completes at its end: one more read is
    // allowed for that.
    let longest_ms = registrations
        .iter()
        .map(|r| r.delay_s * 1000)
        .max()
        .unwrap_or(0);
    let delay_ends =
        (clock.now_ms() + longest_ms + POLL.as_millis() as u64).saturating_sub(started_ms);
    let (bound_ms, bound) = [
        (delay_ends, "the longest deregistration delay elapsed"),
        (wait_max_ms, "BREAKWATER_SPOT_LB_WAIT_MAX_SECONDS reached"),
        (half_left, "half the time to the deadline spent"),
    ]
    .into_iter()
    .min_by_key(|(ms, _)| *ms)
    .unwrap_or((0, "no wait"));
    let until_ms = started_ms + bound_ms;
    let mut pending = registrations;
    let ended_because = loop {
        if wait_max_ms == 0 {
            break "BREAKWATER_SPOT_LB_WAIT_MAX_SECONDS is 0: no wait".to_string();
        }
        match tokio::time::timeout(POLL * 3, groups.listed(&pending)).await {
            Ok(Ok(listed)) => {
                let now = clock.now_ms();
                let mut still = Vec::new();
                for r in pending {
                    let Some(t) = targets
                        .iter_mut()
                        .find(|t| t.target == label(&r) && t.target_group == r.target_group)
                    else {
                        continue;
                    };
                    match listed.iter().find(|(l, _)| *l == r) {
                        // Not listed: ELB has completed the deregistration.
                        None => {
                            t.done_ms.get_or_insert(now);
                        }
                        Some((_, state)) if state == "draining" => still.push(r),
                        // Listed again in another state: something registered it again (the
                        // AWS Load Balancer Controller re-registers a Ready pod's `ip` target).
                        Some((_, state)) => {
                            t.registered_again = Some(state.clone());
                        }
                    }
                }
                pending = still;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not read the targets' states; the drain goes on");
                break format!("the states could not be read: {e}");
            }
            Err(_) => break "reading the states stalled; the drain goes on".to_string(),
        }
        if pending.is_empty() {
            break "no target left draining".to_string();
        }
        let now = clock.now_ms();
        if now >= until_ms {
            break format!("{bound} with {} still draining", pending.len());
        }
        tokio::time::sleep(POLL.min(Duration::from_millis(until_ms - now))).await;
    };
    let drained = LoadBalancerDrain {
        started_ms,
        ended_ms: clock.now_ms(),
        targets,
        ended_because,
        error,
    };
    tracing::info!(
        waited_ms = drained.ended_ms.saturating_sub(started_ms),
        still_draining = drained.still_draining(),
        registered_again = drained.targets.iter().filter(|t| t.registered_again.is_some()).count(),
        why = %drained.ended_because,
        "load balancers drained; evicting"
    );
    Some(drained)
}

fn target_drain(r: &Registration) -> TargetDrain {
    TargetDrain {
        target_group: r.target_group.clone(),
        target: label(r),
        delay_s: r.delay_s,
        done_ms: None,
        registered_again: None,
    }
}

fn label(r: &Registration) -> String {
    match r.port {
        Some(port) => format!("{}:{port}", r.target_id),
        None => r.target_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use breakwater::fakes::pods::PausedClock;
    use breakwater::{Error, Result};

    use super::*;

    const START: u64 = 1_800_000_000_000;

    /// Target groups whose deregistered targets complete after their delay (paused time), or
    /// whose lookup fails.
    #[derive(Debug, Default)]
    struct Groups {
        registered: Vec<Registration>,
        deregistered: Mutex<Vec<(Registration, u64)>>,
        lookup_fails: bool,
        /// Targets something registers again as soon as they are deregistered.
        registered_again: Vec<String>,
        clock: Option<PausedClock>,
    }

    impl TargetGroups for Groups {
        async fn registrations(&self, _vpc: &str, ids: &[String]) -> Result<Vec<Registration>> {
            if self.lookup_fails {
                return Err(Error::Retryable("Throttling: Rate exceeded".into()));
            }
            Ok(self
                .registered
                .iter()
                .filter(|r| ids.contains(&r.target_id))
                .cloned()
                .collect())
        }
        async fn deregister(&self, registrations: &[Registration]) -> Result<()> {
            let now = self.clock.unwrap().now_ms();
            let mut d = self.deregistered.lock().unwrap();
            d.extend(
                registrations
                    .iter()
                    .map(|r| (r.clone(), now + r.delay_s * 1000)),
            );
            Ok(())
        }
        async fn listed(
            &self,
            registrations: &[Registration],
        ) -> Result<Vec<(Registration, String)>> {
            let now = self.clock.unwrap().now_ms();
            let d = self.deregistered.lock().unwrap();
            Ok(registrations
                .iter()
                .filter_map(|r| {
                    if self.registered_again.contains(&r.target_id) {
                        return Some((r.clone(), "initial".to_string()));
                    }
                    d.iter()
                        .any(|(x, until)| x == r && now < *until)
                        .then(|| (r.clone(), "draining".to_string()))
                })
                .collect())
        }
    }

    fn registration(group: &str, id: &str, delay_s: u64) -> Registration {
        Registration {
            target_group_arn: format!(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{group}/0"
            ),
            target_group: group.into(),
            target_id: id.into(),
            port: Some(30080),
            delay_s,
        }
    }

    fn instance() -> InstanceInfo {
        InstanceInfo {
            id: "i-0abc".into(),
            cluster: Some("shop".into()),
            node_group: None,
            auto_scaling_group: None,
            node_pool: None,
            capacity: "spot".into(),
            az: "us-east-1a".into(),
            instance_type: "m5.large".into(),
            private_dns: None,
            state: "running".into(),
            vpc: Some("vpc-1".into()),
            private_ips: vec!["10.0.1.7".into()],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_at_half_the_time_left_when_that_comes_first() {
        // GIVEN a target with ELB's default 300-s delay, a 30-s bound, and 40 s to the deadline
        let clock = PausedClock::at(START);
        let groups = Groups {
            registered: vec![
                registration("web", "10.0.1.7", 300),
                registration("api", "i-other", 5),
            ],
            clock: Some(clock),
            ..Groups::default()
        };
        // WHEN the node leaves its load balancers
        let lb = leave_load_balancers(&groups, &clock, &instance(), START + 40_000, 30_000)
            .await
            .unwrap();
        // THEN only its own address was deregistered, and the evictions wait exactly 20 s
        assert_eq!(lb.targets.len(), 1);
        assert_eq!(lb.targets[0].target, "10.0.1.7:30080");
        assert_eq!(lb.ended_ms - lb.started_ms, 20_000);
        assert_eq!(lb.still_draining(), 1);
        assert_eq!(
            lb.ended_because,
            "half the time to the deadline spent with 1 still draining"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_when_every_target_completes() {
        // GIVEN targets with 2-s and 4-s delays
        let clock = PausedClock::at(START);
        let groups = Groups {
            registered: vec![
                registration("web", "i-0abc", 2),
                registration("ip", "10.0.1.7", 4),
            ],
            clock: Some(clock),
            ..Groups::default()
        };
        let lb = leave_load_balancers(&groups, &clock, &instance(), START + 100_000, 30_000)
            .await
            .unwrap();
        // THEN each is seen done at the first read after its delay, and the wait ends with the last
        assert_eq!(lb.ended_because, "no target left draining");
        let done: Vec<u64> = lb
            .targets
            .iter()
            .map(|t| t.done_ms.unwrap() - START)
            .collect();
        assert_eq!(done, vec![2_000, 4_000]);
        assert_eq!(lb.ended_ms - lb.started_ms, 4_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_lookup_is_reported_and_the_drain_goes_on_at_once() {
        let clock = PausedClock::at(START);
        let groups = Groups {
            lookup_fails: true,
            clock: Some(clock),
            ..Groups::default()
        };
        let lb = leave_load_balancers(&groups, &clock, &instance(), START + 100_000, 30_000)
            .await
            .unwrap();
        assert_eq!(lb.ended_ms, lb.started_ms);
        assert!(
            lb.error.as_deref().unwrap().contains("Rate exceeded"),
            "{lb:?}"
        );
        // AND a node in no target group, or without a VPC, has nothing to report
        let none = Groups {
            clock: Some(clock),
            ..Groups::default()
        };
        assert_eq!(
            leave_load_balancers(&none, &clock, &instance(), START + 100_000, 30_000).await,
            None
        );
        let mut no_vpc = instance();
        no_vpc.vpc = None;
        assert_eq!(
            leave_load_balancers(&none, &clock, &no_vpc, START + 100_000, 30_000).await,
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_registered_again_is_reported_and_not_waited_for() {
        // GIVEN a pod address that the load balancer controller registers again at once, and the
        // instance's own target with a 3-s delay
        let clock = PausedClock::at(START);
        let groups = Groups {
            registered: vec![
                registration("web", "i-0abc", 3),
                registration("ip", "10.0.1.7", 300),
            ],
            registered_again: vec!["10.0.1.7".into()],
            clock: Some(clock),
            ..Groups::default()
        };
        let lb = leave_load_balancers(&groups, &clock, &instance(), START + 100_000, 30_000)
            .await
            .unwrap();
        // THEN the address is reported as registered again, and the wait ends with the other
        let again: Vec<_> = lb
            .targets
            .iter()
            .filter_map(|t| t.registered_again.clone())
            .collect();
        assert_eq!(again, vec!["initial".to_string()]);
        assert_eq!(lb.still_draining(), 0);
        assert_eq!(lb.ended_ms - lb.started_ms, 3_000);
        assert_eq!(
            lb.summary(),
            "2 target(s) deregistered before the first eviction, 0 still draining, 1 registered again by something else, 1 done, after 3.0 s (no target left draining)"
        );
        // AND with no wait allowed, the targets are deregistered and nothing is read back
        let lb = leave_load_balancers(&groups, &clock, &instance(), START + 100_000, 0)
            .await
            .unwrap();
        assert_eq!(lb.ended_ms, lb.started_ms);
        assert_eq!(
            lb.ended_because,
            "BREAKWATER_SPOT_LB_WAIT_MAX_SECONDS is 0: no wait"
        );
    }
}
