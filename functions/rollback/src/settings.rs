//! The rollback function's settings, read once at init; errors name the variable. The signing
//! secrets are not settings: the settings name where they are kept (Secrets Manager or an SSM
//! `SecureString`), and [`breakwater::secrets`] reads them on first use.

use std::collections::BTreeMap;

use breakwater::config::{ConfigError, Env};
use breakwater::secrets::{SecretCache, SecretRef};

use crate::gitops::ArgoCd;
use crate::workload::Workload;

/// The variables that held the secrets themselves before they moved to Secrets Manager / SSM:
/// they are never read (a value there is logged as ignored, never used).
pub const PLAINTEXT_SECRET_VARIABLES: &[&str] = &[
    "BREAKWATER_ROLLBACK_SLACK_SIGNING_SECRET",
    "BREAKWATER_ROLLBACK_PAGERDUTY_SECRET",
];

/// The rollback settings.
#[derive(Debug, Clone)]
pub struct RollbackSettings {
    /// `BREAKWATER_ROLLBACK_CLUSTERS`: the clusters this deployment may act on (required).
    pub clusters: Vec<String>,
    /// `BREAKWATER_ROLLBACK_ALARMS`: `alarm-name=cluster/namespace/Kind/name,…`, consulted
    /// before the alarm's tags.
    pub alarms: BTreeMap<String, Vec<Workload>>,
    /// `BREAKWATER_ROLLBACK_LOOKBACK_MINUTES`: an alarm is the deploy's fault only if the rollout
    /// happened this recently and before the alarm began (default 60).
    pub lookback_ms: u64,
    /// `BREAKWATER_ROLLBACK_BAKE_MINUTES`: the bake window after a rollback, and the time a
    /// revision must have lived to count as known good (default 10).
    pub bake_ms: u64,
    /// `BREAKWATER_ROLLBACK_COOLDOWN_MINUTES`: at most one rollback per workload in this (default 30).
    pub cooldown_ms: u64,
    /// `BREAKWATER_ROLLBACK_FROZEN`: workloads never rolled back (the annotation
    /// `breakwater.io/rollback-freeze: "true"` does the same from the cluster).
    pub frozen: Vec<Workload>,
    /// `BREAKWATER_ROLLBACK_SLACK_SECRET_ID`: where Slack's signing secret is kept (Slack off
    /// when unset).
    pub slack_secret: Option<SecretRef>,
    /// `BREAKWATER_ROLLBACK_SLACK_USERS`: Slack user ids allowed to roll back (empty: anyone in
    /// the workspace that can use the command).
    pub slack_users: Vec<String>,
    /// `BREAKWATER_ROLLBACK_SLACK_TEAMS`: Slack workspace (team) ids whose commands are taken
    /// (empty: any workspace the app is installed in). Checked against the signed body's
    /// `team_id`, so a command from another workspace sharing the app is refused.
    pub slack_teams: Vec<String>,
    /// `BREAKWATER_ROLLBACK_PAGERDUTY_SECRET_ID`: where the v3 webhook subscription's secret is
    /// kept (off when unset).
    pub pagerduty_secret: Option<SecretRef>,
    /// `BREAKWATER_ROLLBACK_PAGERDUTY_USERS`: PagerDuty user ids (`P…`, the v3 event's
    /// `agent.id` of type `user_reference`) whose notes are taken (empty: anyone who can annotate
    /// the incident). With a list, a note whose agent is not a listed user is refused.
    pub pagerduty_users: Vec<String>,
    /// The signing secrets read so far (shared by clones).
    pub secrets: SecretCache,
    /// `BREAKWATER_ROLLBACK_HANDOFF_FUNCTION`: the function a verified webhook request is queued
    /// for (`Invoke`, `InvocationType: Event`); default this function itself
    /// (`AWS_LAMBDA_FUNCTION_NAME`). A separate webhook function names the alarm function here.
    pub handoff_function: Option<String>,
    /// `BREAKWATER_ROLLBACK_WEBHOOK_MAX_BODY_BYTES`: a Function URL request with a larger body is
    /// refused (413) before anything is read from it (default 16384; a slash command is a few
    /// hundred bytes, a PagerDuty v3 event a few kilobytes).
    pub max_body_bytes: usize,
    /// Where Argo CD keeps its Applications (`BREAKWATER_ARGOCD_CLUSTER`, one of the clusters,
    /// default the workload's own; `BREAKWATER_ARGOCD_NAMESPACE`, default `argocd`).
    pub argocd: ArgoCd,
}

fn minutes(env: &Env, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    let n = env.whole_number(name, usize::try_from(default).unwrap_or(1), 1..=10_080)?;
    Ok(u64::try_from(n).unwrap_or(default) * 60_000)
}

impl RollbackSettings {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let clusters = env.list("BREAKWATER_ROLLBACK_CLUSTERS");
        if clusters.is_empty() {
            return Err(ConfigError {
                variable: "BREAKWATER_ROLLBACK_CLUSTERS",
                reason: "is required but not set".into(),
            });
        }
        let default_cluster = (clusters.len() == 1).then(|| clusters[0].as_str());
        let mut alarms: BTreeMap<String, Vec<Workload>> = BTreeMap::new();
        for entry in env.list("BREAKWATER_ROLLBACK_ALARMS") {
            let (alarm, workload) = entry.split_once('=').ok_or(ConfigError {
                variable: "BREAKWATER_ROLLBACK_ALARMS",
                reason: format!("{entry:?} is not alarm-name=cluster/namespace/Kind/name"),
            })?;
            let workload = Workload::parse(workload, default_cluster).map_err(|e| ConfigError {
                variable: "BREAKWATER_ROLLBACK_ALARMS",
                reason: e.to_string(),
            })?;
            alarms
                .entry(alarm.trim().to_string())
                .or_default()
                .push(workload);
        }
        let frozen = env
            .list("BREAKWATER_ROLLBACK_FROZEN")
            .iter()
            .map(|w| Workload::parse(w, default_cluster))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError {
                variable: "BREAKWATER_ROLLBACK_FROZEN",
                reason: e.to_string(),
            })?;
        let secret = |name: &'static str| {
            env.optional(name)
                .map(|v| SecretRef::parse(name, &v))
                .transpose()
        };
        for plain in PLAINTEXT_SECRET_VARIABLES.iter().copied() {
            if env.optional(plain).is_some() {
                tracing::error!(variable = plain, "a signing secret in a plain environment variable is ignored; keep it in Secrets Manager or an SSM SecureString and name it in the variable ending _SECRET_ID");
            }
        }
        let argocd = ArgoCd {
            cluster: env.optional("BREAKWATER_ARGOCD_CLUSTER"),
            namespace: env
                .optional("BREAKWATER_ARGOCD_NAMESPACE")
                .unwrap_or_else(|| "argocd".into()),
        };
        let ns = &argocd.namespace;
        let label = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        if ns.is_empty() || ns.len() > 63 || !ns.bytes().all(label) || ns.starts_with('-') {
            return Err(ConfigError {
                variable: "BREAKWATER_ARGOCD_NAMESPACE",
                reason: format!("{ns:?} is not a namespace name"),
            });
        }
        if let Some(hub) = argocd.cluster.as_ref().filter(|c| !clusters.contains(c)) {
            return Err(ConfigError {
                variable: "BREAKWATER_ARGOCD_CLUSTER",
                reason: format!("{hub:?} is not one of BREAKWATER_ROLLBACK_CLUSTERS"),
            });
        }
        Ok(RollbackSettings {
            argocd,
            lookback_ms: minutes(env, "BREAKWATER_ROLLBACK_LOOKBACK_MINUTES", 60)?,
            bake_ms: minutes(env, "BREAKWATER_ROLLBACK_BAKE_MINUTES", 10)?,
            cooldown_ms: minutes(env, "BREAKWATER_ROLLBACK_COOLDOWN_MINUTES", 30)?,
            slack_secret: secret("BREAKWATER_ROLLBACK_SLACK_SECRET_ID")?,
            slack_users: env.list("BREAKWATER_ROLLBACK_SLACK_USERS"),
            slack_teams: env.list("BREAKWATER_ROLLBACK_SLACK_TEAMS"),
            pagerduty_secret: secret("BREAKWATER_ROLLBACK_PAGERDUTY_SECRET_ID")?,
            pagerduty_users: env.list("BREAKWATER_ROLLBACK_PAGERDUTY_USERS"),
            secrets: SecretCache::default(),
            handoff_function: env.optional("BREAKWATER_ROLLBACK_HANDOFF_FUNCTION"),
            max_body_bytes: env.whole_number(
                "BREAKWATER_ROLLBACK_WEBHOOK_MAX_BODY_BYTES",
                16_384,
                512..=1_048_576,
            )?,
            clusters,
            alarms,
            frozen,
        })
    }

    /// The cluster of `namespace/name` commands: the only one configured.
    pub fn default_cluster(&self) -> Option<&str> {
        (self.clusters.len() == 1).then(|| self.clusters[0].as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mappings_and_secret_references_and_ignores_a_plain_secret() {
        let env = Env::from_pairs([
            ("BREAKWATER_ROLLBACK_CLUSTERS", "prod"),
            (
                "BREAKWATER_ROLLBACK_ALARMS",
                "web-5xx=shop/web, web-p95=prod/shop/Deployment/web,canary=shop/Rollout/api",
            ),
            (
                "BREAKWATER_ROLLBACK_SLACK_SECRET_ID",
                "ssm:/breakwater/slack",
            ),
            ("BREAKWATER_ROLLBACK_PAGERDUTY_SECRET", "s3cr3t-value"),
            ("BREAKWATER_ROLLBACK_BAKE_MINUTES", "5"),
        ]);
        let s = RollbackSettings::from_env(&env).unwrap();
        assert_eq!(
            s.alarms["web-5xx"][0].to_string(),
            "prod/shop/Deployment/web"
        );
        assert_eq!(s.alarms["canary"][0].to_string(), "prod/shop/Rollout/api");
        assert_eq!(s.bake_ms, 300_000);
        assert_eq!(
            s.slack_secret,
            Some(SecretRef::Parameter("/breakwater/slack".into()))
        );
        assert_eq!(s.pagerduty_secret, None, "a plain secret is never used");
        assert!(!format!("{s:?}").contains("s3cr3t-value"));
        let plain = Env::from_pairs([
            ("BREAKWATER_ROLLBACK_CLUSTERS", "prod"),
            ("BREAKWATER_ROLLBACK_SLACK_SECRET_ID", "s3cr3t-value"),
        ]);
        let err = RollbackSettings::from_env(&plain).unwrap_err();
        assert_eq!(err.variable, "BREAKWATER_ROLLBACK_SLACK_SECRET_ID");
        let bad = Env::from_pairs([
            ("BREAKWATER_ROLLBACK_CLUSTERS", "prod"),
            ("BREAKWATER_ROLLBACK_ALARMS", "web-5xx"),
        ]);
        let err = RollbackSettings::from_env(&bad).unwrap_err();
        assert_eq!(err.variable, "BREAKWATER_ROLLBACK_ALARMS");
        for (variable, value) in [
            ("BREAKWATER_ARGOCD_NAMESPACE", "Argo_CD"),
            ("BREAKWATER_ARGOCD_CLUSTER", "hub"),
        ] {
            let bad =
                Env::from_pairs([("BREAKWATER_ROLLBACK_CLUSTERS", "prod"), (variable, value)]);
            assert_eq!(
                RollbackSettings::from_env(&bad).unwrap_err().variable,
                variable
            );
        }
        assert_eq!(s.argocd, crate::gitops::ArgoCd::default());
        assert!(RollbackSettings::from_env(&Env::from_pairs([("X", "y")])).is_err());
    }
}
