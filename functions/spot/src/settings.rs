//! The spot function's settings, read once at init; errors name the variable.

use std::collections::BTreeMap;

use breakwater::config::{ConfigError, Env};

use crate::drain::Policy;

/// What to do on a rebalance recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalancePolicy {
    /// Nothing.
    Ignore,
    /// Cordon, and uncordon if no warning follows in time.
    Cordon,
    /// Drain as for a warning.
    Drain,
}

/// The spot function's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotSettings {
    /// `BREAKWATER_SPOT_CLUSTERS`: the EKS clusters this deployment manages (others are dropped).
    pub clusters: Vec<String>,
    /// `BREAKWATER_SPOT_SAFETY_MARGIN_SECONDS`: the deadline is the warning + 120 s − this (default 10).
    pub safety_margin_s: u64,
    /// `BREAKWATER_SPOT_DRAIN_POLICY`: `respect-pdb` | `override-at-deadline` (default) | `delete-now`.
    pub default_policy: Policy,
    /// `BREAKWATER_SPOT_LIFECYCLE_HOOKS`: the names of the Auto Scaling termination lifecycle
    /// hooks this deployment completes (none by default: another hook — EKS managed node
    /// groups' own, another team's — is left to its owner).
    pub lifecycle_hooks: Vec<String>,
    /// `BREAKWATER_SPOT_SCHEDULED_DRAIN_SECONDS`: how long an AWS Health scheduled change's
    /// drain runs (default 110, a warning's time less the default margin; at most 150, inside
    /// the function's 180-s timeout). Earlier when the change itself is nearer.
    pub scheduled_drain_ms: u64,
    /// `BREAKWATER_SPOT_REBALANCE`: `cordon` (default), `ignore`, `drain`, and per node group
    /// `cluster/nodegroup=drain` entries after a comma.
    pub rebalance_default: RebalancePolicy,
    /// Per `cluster/nodegroup`.
    pub rebalance: BTreeMap<String, RebalancePolicy>,
    /// `BREAKWATER_SPOT_UNCORDON_MINUTES`: a rebalance-cordoned node is uncordoned after this
    /// without a warning (default 10).
    pub uncordon_after_ms: u64,
    /// `BREAKWATER_SPOT_ON_DEMAND`: `cluster/spot-nodegroup=on-demand-nodegroup,…`.
    pub on_demand: BTreeMap<String, String>,
    /// `BREAKWATER_SPOT_FAILOVER_THRESHOLD`: interruptions in one pool inside the window (default 3).
    pub failover_threshold: usize,
    /// `BREAKWATER_SPOT_WINDOW_MINUTES`: the sliding window (default 10).
    pub window_ms: u64,
    /// `BREAKWATER_SPOT_ON_DEMAND_STEP`: nodes added to the on-demand group (default 2).
    pub on_demand_step: i32,
    /// `BREAKWATER_SPOT_ON_DEMAND_CAP`: the on-demand group's desired size never exceeds this (default 10).
    pub on_demand_cap: i32,
    /// `BREAKWATER_SPOT_STABLE_MINUTES`: interruption-free time before returning (default 30).
    pub stable_ms: u64,
    /// `BREAKWATER_SPOT_LB_WAIT_MAX_SECONDS`: after deregistering the node's load-balancer
    /// targets, the longest wait for them to finish draining before the first eviction (default
    /// 30, 0 = deregister and go on). The wait also ends when every target has completed its
    /// deregistration, at the longest deregistration delay, and at half the time left before the
    /// deadline, so that the evictions keep the other half.
    pub lb_wait_max_ms: u64,
}

fn rebalance_policy(text: &str) -> Option<RebalancePolicy> {
    match text {
        "ignore" => Some(RebalancePolicy::Ignore),
        "cordon" => Some(RebalancePolicy::Cordon),
        "drain" => Some(RebalancePolicy::Drain),
        _ => None,
    }
}

impl SpotSettings {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let clusters = env.list("BREAKWATER_SPOT_CLUSTERS");
        if clusters.is_empty() {
            return Err(ConfigError {
                variable: "BREAKWATER_SPOT_CLUSTERS",
                reason: "is required but not set".into(),
            });
        }
        let default_policy = match env.optional("BREAKWATER_SPOT_DRAIN_POLICY") {
            Some(p) => Policy::parse(&p).ok_or(ConfigError {
                variable: "BREAKWATER_SPOT_DRAIN_POLICY",
                reason: format!("{p:?} is not respect-pdb, override-at-deadline or delete-now"),
            })?,
            None => Policy::OverrideAtDeadline,
        };
        let mut rebalance_default = RebalancePolicy::Cordon;
        let mut rebalance = BTreeMap::new();
        for entry in env.list("BREAKWATER_SPOT_REBALANCE") {
            let bad = || ConfigError {
                variable: "BREAKWATER_SPOT_REBALANCE",
                reason: format!(
                    "{entry:?} is not ignore|cordon|drain or cluster/nodegroup=ignore|cordon|drain"
                ),
            };
            match entry.split_once('=') {
                Some((group, p)) if group.contains('/') => {
                    rebalance.insert(
                        group.trim().to_string(),
                        rebalance_policy(p.trim()).ok_or_else(bad)?,
                    );
                }
                Some(_) => return Err(bad()),
                None => rebalance_default = rebalance_policy(&entry).ok_or_else(bad)?,
            }
        }
        let mut on_demand = BTreeMap::new();
        for entry in env.list("BREAKWATER_SPOT_ON_DEMAND") {
            match entry.split_once('=') {
                Some((spot, od)) if spot.contains('/') && !od.trim().is_empty() => {
                    on_demand.insert(spot.trim().to_string(), od.trim().to_string());
                }
                _ => {
                    return Err(ConfigError {
                        variable: "BREAKWATER_SPOT_ON_DEMAND",
                        reason: format!(
                            "{entry:?} is not cluster/spot-nodegroup=on-demand-nodegroup"
                        ),
                    })
                }
            }
        }
        let minutes = |name: &'static str, default: usize| -> Result<u64, ConfigError> {
            Ok(env.whole_number(name, default, 1..=1440)? as u64 * 60_000)
        };
        Ok(SpotSettings {
            clusters,
            safety_margin_s: env.whole_number(
                "BREAKWATER_SPOT_SAFETY_MARGIN_SECONDS",
                10,
                0..=60,
            )? as u64,
            default_policy,
            lifecycle_hooks: env.list("BREAKWATER_SPOT_LIFECYCLE_HOOKS"),
            scheduled_drain_ms: env.whole_number(
                "BREAKWATER_SPOT_SCHEDULED_DRAIN_SECONDS",
                110,
                1..=150,
            )? as u64
                * 1000,
            rebalance_default,
            rebalance,
            uncordon_after_ms: minutes("BREAKWATER_SPOT_UNCORDON_MINUTES", 10)?,
            on_demand,
            failover_threshold: env.whole_number(
                "BREAKWATER_SPOT_FAILOVER_THRESHOLD",
                3,
                1..=1000,
            )?,
            window_ms: minutes("BREAKWATER_SPOT_WINDOW_MINUTES", 10)?,
            on_demand_step: env.whole_number("BREAKWATER_SPOT_ON_DEMAND_STEP", 2, 1..=100)? as i32,
            on_demand_cap: env.whole_number("BREAKWATER_SPOT_ON_DEMAND_CAP", 10, 1..=1000)? as i32,
            stable_ms: minutes("BREAKWATER_SPOT_STABLE_MINUTES", 30)?,
            lb_wait_max_ms: env.whole_number("BREAKWATER_SPOT_LB_WAIT_MAX_SECONDS", 30, 0..=100)?
                as u64
                * 1000,
        })
    }

    /// The rebalance policy of a node group.
    pub fn rebalance_for(&self, cluster: &str, node_group: Option<&str>) -> RebalancePolicy {
        node_group
            .and_then(|g| self.rebalance.get(&format!("{cluster}/{g}")))
            .copied()
            .unwrap_or(self.rebalance_default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_maps_and_names_bad_variables() {
        let env = Env::from_pairs([
            ("BREAKWATER_SPOT_CLUSTERS", "prod-east"),
            ("BREAKWATER_SPOT_REBALANCE", "ignore, prod-east/batch=drain"),
            ("BREAKWATER_SPOT_ON_DEMAND", "prod-east/spot-a=on-demand"),
        ]);
        let s = SpotSettings::from_env(&env).unwrap();
        assert_eq!(
            s.rebalance_for("prod-east", Some("batch")),
            RebalancePolicy::Drain
        );
        assert_eq!(
            s.rebalance_for("prod-east", Some("web")),
            RebalancePolicy::Ignore
        );
        assert_eq!(s.on_demand["prod-east/spot-a"], "on-demand");
        assert_eq!(
            (s.failover_threshold, s.window_ms, s.safety_margin_s),
            (3, 600_000, 10)
        );
        for (var, value) in [
            ("BREAKWATER_SPOT_DRAIN_POLICY", "yolo"),
            ("BREAKWATER_SPOT_REBALANCE", "batch=drain"),
            ("BREAKWATER_SPOT_ON_DEMAND", "spot-a"),
            ("BREAKWATER_SPOT_SAFETY_MARGIN_SECONDS", "600"),
        ] {
            let env = Env::from_pairs([("BREAKWATER_SPOT_CLUSTERS", "c"), (var, value)]);
            assert_eq!(SpotSettings::from_env(&env).unwrap_err().variable, var);
        }
        assert_eq!(
            SpotSettings::from_env(&Env::from_pairs(Vec::<(&str, &str)>::new()))
                .unwrap_err()
                .variable,
            "BREAKWATER_SPOT_CLUSTERS"
        );
    }
}
