//! The budget function's own settings, read once at init; errors name the variable.

use breakwater::config::{ConfigError, Env};

use crate::ladder::Thresholds;

/// What the budget function is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSettings {
    /// `BREAKWATER_ACCOUNT_ID`: the account whose budgets are read.
    pub account: String,
    /// `BREAKWATER_BUDGET_NAMES`: the budgets enforced (comma-separated; names may contain spaces).
    pub budgets: Vec<String>,
    /// `BREAKWATER_BUDGET_CLUSTERS`: the EKS clusters whose non-critical node groups may be scaled.
    pub clusters: Vec<String>,
    /// `BREAKWATER_BUDGET_THRESHOLDS`: `L1=90,L2=100,L3=85,L4=100` (percent of the limit).
    pub thresholds: Thresholds,
    /// `BREAKWATER_BUDGET_HYSTERESIS`: points below a threshold before its level is released (default 5).
    pub hysteresis: f64,
    /// `BREAKWATER_BUDGET_MAX_TARGETS`: at most this many resources changed per level per run (default 10).
    pub max_targets: usize,
    /// `BREAKWATER_BUDGET_GUARDRAIL_ROLES`: IAM roles that get the L4 deny policy (comma-separated;
    /// none, the default, leaves L4 a notice only).
    pub guardrail_roles: Vec<String>,
}

impl BudgetSettings {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let account = env.account_id("BREAKWATER_ACCOUNT_ID")?;
        let budgets = env.list("BREAKWATER_BUDGET_NAMES");
        if budgets.is_empty() {
            return Err(ConfigError {
                variable: "BREAKWATER_BUDGET_NAMES",
                reason: "is required but not set".into(),
            });
        }
        let thresholds = match env.optional("BREAKWATER_BUDGET_THRESHOLDS") {
            Some(text) => Thresholds::parse(&text).map_err(|reason| ConfigError {
                variable: "BREAKWATER_BUDGET_THRESHOLDS",
                reason,
            })?,
            None => Thresholds::default(),
        };
        let hysteresis = match env.optional("BREAKWATER_BUDGET_HYSTERESIS") {
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|h| (0.0..=50.0).contains(h))
                .ok_or(ConfigError {
                    variable: "BREAKWATER_BUDGET_HYSTERESIS",
                    reason: format!("{v:?} is not a number of points in 0..=50"),
                })?,
            None => 5.0,
        };
        let max_targets = env.whole_number("BREAKWATER_BUDGET_MAX_TARGETS", 10, 1..=100)?;
        let guardrail_roles = env.list("BREAKWATER_BUDGET_GUARDRAIL_ROLES");
        for role in &guardrail_roles {
            crate::guardrail::check_role_name(role).map_err(|reason| ConfigError {
                variable: "BREAKWATER_BUDGET_GUARDRAIL_ROLES",
                reason,
            })?;
        }
        Ok(BudgetSettings {
            account,
            budgets,
            clusters: env.list("BREAKWATER_BUDGET_CLUSTERS"),
            thresholds,
            hysteresis,
            max_targets,
            guardrail_roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_and_names_bad_variables() {
        let env = Env::from_pairs([
            ("BREAKWATER_ACCOUNT_ID", "123456789012"),
            ("BREAKWATER_BUDGET_NAMES", "platform monthly, data team"),
            ("BREAKWATER_BUDGET_CLUSTERS", "prod-east"),
        ]);
        let s = BudgetSettings::from_env(&env).unwrap();
        assert_eq!(s.budgets, vec!["platform monthly", "data team"]);
        assert_eq!(s.clusters, vec!["prod-east"]);
        assert_eq!((s.hysteresis, s.max_targets), (5.0, 10));
        assert!(
            s.guardrail_roles.is_empty(),
            "the guard-rail is off by default"
        );
        for (var, value) in [
            ("BREAKWATER_ACCOUNT_ID", "12345"),
            ("BREAKWATER_BUDGET_THRESHOLDS", "L9=1"),
            ("BREAKWATER_BUDGET_HYSTERESIS", "90"),
            ("BREAKWATER_BUDGET_MAX_TARGETS", "0"),
            (
                "BREAKWATER_BUDGET_GUARDRAIL_ROLES",
                "ci-deployer, arn:aws:iam::1:role/x",
            ),
        ] {
            let env = Env::from_pairs([
                ("BREAKWATER_ACCOUNT_ID", "123456789012"),
                ("BREAKWATER_BUDGET_NAMES", "b"),
                (var, value),
            ]);
            assert_eq!(BudgetSettings::from_env(&env).unwrap_err().variable, var);
        }
    }
}
