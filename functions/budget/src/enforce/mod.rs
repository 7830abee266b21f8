//! The engine that climbs and descends the ladder over the ports: observe, record in the ledger,
//! act, record again; and undo in reverse order, leaving alone whatever a person changed since.

use std::collections::BTreeMap;

use breakwater::ports::{Databases, InlinePolicy, NodeGroups, RolePolicies, Scaling};
use breakwater::state::{StateStore, Versioned};
use breakwater::{Error, Result};
use serde::Serialize;

use crate::guardrail;
use crate::hold::{self, Undo};
use crate::ledger::{EnforcementState, LedgerEntry, Observed, Resource, Restoration};
use crate::settings::BudgetSettings;
use crate::stoppable;
use crate::targets;

mod restore;

/// What one run did, for the response, the notification and the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    /// Changes made (or, in dry-run, that would be made).
    pub changed: Vec<String>,
    /// Resources a person changed after enforcement: reported, not overwritten.
    pub left_alone: Vec<String>,
    /// Resources not touched, and why (not eligible, over the cap, already there, AWS cannot).
    pub skipped: Vec<String>,
    /// Changes AWS refused, with its reason: the resource was left as it was and the others of
    /// the level went on.
    pub failed: Vec<String>,
    /// Estimated saving per day of the changes made, in USD (on-demand prices, us-east-1).
    pub saving_per_day_usd: f64,
    /// Changes whose saving could not be estimated (unknown instance type or class).
    pub unestimated: Vec<String>,
}

/// The engine over the ports and the store.
#[derive(Debug)]
pub struct Engine<'a, N, D, R> {
    /// EKS node groups.
    pub node_groups: &'a N,
    /// RDS databases.
    pub databases: &'a D,
    /// IAM role policies (the L4 guard-rail).
    pub roles: &'a R,
    /// The state store.
    pub store: &'a StateStore,
    /// The budget function's settings.
    pub settings: &'a BudgetSettings,
    /// Plan only.
    pub dry_run: bool,
}

impl<N: NodeGroups, D: Databases, R: RolePolicies> Engine<'_, N, D, R> {
    /// Applies what `level` does.
    pub async fn apply_level(
        &self,
        state: &mut Versioned<EnforcementState>,
        level: u8,
        out: &mut Outcome,
    ) -> Result<()> {
        // Boxed: each level's future is large, and inlining all of them into the caller's made
        // the whole invocation's future overflow a 2 MiB stack in debug builds.
        match level {
            2 => Box::pin(self.scale_down_node_groups(state, out)).await,
            3 => Box::pin(self.stop_databases(state, out)).await,
            4 => Box::pin(self.attach_guardrails(state, out)).await,
            _ => Ok(()),
        }
    }

    async fn scale_down_node_groups(
        &self,
        state: &mut Versioned<EnforcementState>,
        out: &mut Outcome,
    ) -> Result<()> {
        let mut touched = 0;
        let mut transient = None;
        for cluster in &self.settings.clusters {
            let groups = match self.node_groups.list(cluster).await {
                Ok(groups) => groups,
                Err(err) => {
                    failed(err, &format!("cluster {cluster}"), out, &mut transient);
                    continue;
                }
            };
            for group in groups {
                let label = format!("node group {}", group.id);
                if let Err(why) = targets::node_group_eligible(&group.tags) {
                    out.skipped.push(format!("{label}: {why}"));
                    continue;
                }
                let target = hold::hold(group.scaling, targets::floor(&group.tags));
                if target == group.scaling {
                    out.skipped
                        .push(format!("{label}: already at its floor ({})", group.scaling));
                    continue;
                }
                if touched >= self.settings.max_targets {
                    out.skipped.push(format!(
                        "{label}: over the cap of {} targets per run",
                        self.settings.max_targets
                    ));
                    continue;
                }
                touched += 1;
                let resource = Resource::NodeGroup {
                    id: group.id.clone(),
                    arn: group.arn.clone(),
                };
                let saving = hourly_price(
                    group
                        .instance_types
                        .first()
                        .map(String::as_str)
                        .unwrap_or_default(),
                )
                .map(|p| p * 24.0 * f64::from(group.scaling.desired - target.desired));
                let line = format!("{label}: {} → {}", group.scaling, target);
                if self.dry_run {
                    out.changed.push(format!("would scale {line}"));
                    continue;
                }
                let key = resource.ledger_key(&state.value.budget, &state.value.period);
                let entry = LedgerEntry {
                    resource,
                    level: 2,
                    before: Observed::Scaling(group.scaling),
                    after: Observed::Scaling(target),
                    applied_at_ms: self.store.clock().now_ms(),
                    update_id: None,
                    restops: 0,
                    restored: None,
                    failure: None,
                };
                let Some((entry, etag)) = self.record(&key, entry, &label, out).await? else {
                    continue;
                };
                self.remember(state, &key).await?;
                let mut tags = BTreeMap::new();
                tags.insert(
                    targets::BEFORE_TAG.to_string(),
                    format!(
                        "min={},desired={},max={}",
                        group.scaling.min, group.scaling.desired, group.scaling.max
                    ),
                );
                if let Err(err) = self.node_groups.tag(&group.arn, tags).await {
                    tracing::warn!(node_group = %group.id, error = %err, "could not tag the recorded sizes; the ledger has them");
                }
                let token = request_token(&[
                    "budget",
                    &state.value.period,
                    &group.id.cluster,
                    &group.id.name,
                    "down",
                ]);
                // Scale to the entry's own target: a reused entry keeps the sizes recorded first.
                let Observed::Scaling(to) = entry.after else {
                    return Err(Error::CorruptRecord {
                        key,
                        reason: format!("a node group's entry holds {}", entry.after),
                    });
                };
                match self.node_groups.update_scaling(&group.id, to, &token).await {
                    Ok(update_id) => {
                        let done = LedgerEntry {
                            update_id: Some(update_id),
                            failure: None,
                            ..entry
                        };
                        self.store.replace(&key, &done, &etag).await?;
                        out.changed.push(format!("scaled {line}"));
                        add_saving(out, &label, saving);
                    }
                    Err(err) => {
                        self.refused(&key, entry, &etag, &err).await?;
                        failed(err, &label, out, &mut transient);
                    }
                }
            }
        }
        transient.map_or(Ok(()), Err)
    }

    async fn stop_databases(
        &self,
        state: &mut Versioned<EnforcementState>,
        out: &mut Outcome,
    ) -> Result<()> {
        let mut touched = 0;
        let mut transient = None;
        let databases = self.databases.list().await?;
        for db in &databases {
            let resource = Resource::Database {
                kind: db.kind,
                id: db.id.clone(),
            };
            let label = resource.label();
            if let Err(why) = targets::database_eligible(&db.tags) {
                out.skipped.push(format!("{label}: {why}"));
                continue;
            }
            if db.status != "available" {
                out.skipped.push(format!("{label}: status {}", db.status));
                continue;
            }
            if let Some(why) = stoppable::refusal(db) {
                out.skipped.push(format!("{label}: {why} (not attempted)"));
                continue;
            }
            if touched >= self.settings.max_targets {
                out.skipped.push(format!(
                    "{label}: over the cap of {} targets per run",
                    self.settings.max_targets
                ));
                continue;
            }
            touched += 1;
            if self.dry_run {
                out.changed.push(format!("would stop {label}"));
                continue;
            }
            let key = resource.ledger_key(&state.value.budget, &state.value.period);
            let entry = LedgerEntry {
                resource,
                level: 3,
                before: Observed::Status {
                    status: db.status.clone(),
                },
                after: Observed::Status {
                    status: "stopped".into(),
                },
                applied_at_ms: self.store.clock().now_ms(),
                update_id: None,
                restops: 0,
                restored: None,
                failure: None,
            };
            let Some((entry, etag)) = self.record(&key, entry, &label, out).await? else {
                continue;
            };
            self.remember(state, &key).await?;
            if let Err(err) = self.databases.stop(db.kind, &db.id).await {
                self.refused(&key, entry, &etag, &err).await?;
                failed(err, &label, out, &mut transient);
                continue;
            }
            self.store
                .replace(
                    &key,
                    &LedgerEntry {
                        applied_at_ms: self.store.clock().now_ms(),
                        failure: None,
                        ..entry
                    },
                    &etag,
                )
                .await?;
            out.changed.push(format!("stopped {label}"));
            add_saving(
                out,
                &label,
                db.class.as_deref().and_then(hourly_price).map(|p| p * 24.0),
            );
        }
        transient.map_or(Ok(()), Err)
    }

    /// Puts the deny policy on every configured role (none configured: L4 is a notice only).
    async fn attach_guardrails(
        &self,
        state: &mut Versioned<EnforcementState>,
        out: &mut Outcome,
    ) -> Result<()> {
        let document = guardrail::document(&state.value.budget, &state.value.period);
        let mut transient = None;
        for role in &self.settings.guardrail_roles {
            let resource = Resource::Role { name: role.clone() };
            let label = resource.label();
            let (key, value) = guardrail::OPT_IN_TAG;
            let tags = match self.roles.role_tags(role).await {
                Ok(tags) => tags,
                Err(err) => {
                    failed(err, &label, out, &mut transient);
                    continue;
                }
            };
            match tags {
                Some(tags) if tags.get(key).map(String::as_str) == Some(value) => {}
                Some(_) => {
                    out.skipped.push(format!(
                        "{label}: not tagged {key}={value}; no guard-rail put on it"
                    ));
                    continue;
                }
                None => {
                    out.skipped
                        .push(format!("{label}: no such role; no guard-rail put on it"));
                    continue;
                }
            }
            let before = self.observe(&resource).await?;
            match before {
                Observed::Missing => {
                    out.skipped
                        .push(format!("{label}: no such role; no guard-rail put on it"));
                    continue;
                }
                Observed::Guardrail { attached: true } => {
                    out.skipped
                        .push(format!("{label}: already holds {}", guardrail::POLICY_NAME));
                    continue;
                }
                _ => {}
            }
            if self.dry_run {
                out.changed.push(format!(
                    "would deny new capacity to {label} (inline policy {})",
                    guardrail::POLICY_NAME
                ));
                continue;
            }
            let key = resource.ledger_key(&state.value.budget, &state.value.period);
            let entry = LedgerEntry {
                resource,
                level: 4,
                before,
                after: Observed::Guardrail { attached: true },
                applied_at_ms: self.store.clock().now_ms(),
                update_id: None,
                restops: 0,
                restored: None,
                failure: None,
            };
            let Some((entry, etag)) = self.record(&key, entry, &label, out).await? else {
                continue;
            };
            self.remember(state, &key).await?;
            if let Err(err) = self
                .roles
                .put(role, guardrail::POLICY_NAME, &document)
                .await
            {
                self.refused(&key, entry, &etag, &err).await?;
                failed(err, &label, out, &mut transient);
                continue;
            }
            self.store
                .replace(
                    &key,
                    &LedgerEntry {
                        applied_at_ms: self.store.clock().now_ms(),
                        failure: None,
                        ..entry
                    },
                    &etag,
                )
                .await?;
            out.changed.push(format!(
                "denied new capacity to {label} (inline policy {}: {} actions)",
                guardrail::POLICY_NAME,
                guardrail::DENIED_ACTIONS.len()
            ));
        }
        transient.map_or(Ok(()), Err)
    }

    async fn observe(&self, resource: &Resource) -> Result<Observed> {
        Ok(match resource {
            Resource::NodeGroup { id, .. } => match self.node_groups.describe(id).await? {
                Some(g) => Observed::Scaling(g.scaling),
                None => Observed::Missing,
            },
            Resource::Database { kind, id } => match self.databases.describe(*kind, id).await? {
                Some(d) => Observed::Status { status: d.status },
                None => Observed::Missing,
            },
            Resource::Role { name } => match self.roles.get(name, guardrail::POLICY_NAME).await? {
                InlinePolicy::NoRole => Observed::Missing,
                InlinePolicy::Absent => Observed::Guardrail { attached: false },
                InlinePolicy::Present { .. } => Observed::Guardrail { attached: true },
            },
        })
    }

    /// Puts a node group's sizes back (whole or in part).
    async fn put_sizes(&self, entry: &LedgerEntry, sizes: Scaling) -> Result<()> {
        let Resource::NodeGroup { id, .. } = &entry.resource else {
            return Err(Error::CorruptRecord {
                key: entry.resource.label(),
                reason: "sizes recorded for something that is not a node group".into(),
            });
        };
        let token = request_token(&[
            "budget",
            &entry.applied_at_ms.to_string(),
            &id.cluster,
            &id.name,
            "up",
        ]);
        self.node_groups
            .update_scaling(id, sizes, &token)
            .await
            .map(drop)
    }

    async fn put_back(&self, entry: &LedgerEntry) -> Result<()> {
        match (&entry.resource, &entry.before) {
            (Resource::NodeGroup { .. }, Observed::Scaling(before)) => {
                self.put_sizes(entry, *before).await
            }
            (Resource::Database { kind, id }, _) => self.databases.start(*kind, id).await,
            (Resource::Role { name }, _) => self.roles.delete(name, guardrail::POLICY_NAME).await,
            (resource, before) => Err(Error::CorruptRecord {
                key: resource.label(),
                reason: format!("cannot restore to {before}"),
            }),
        }
    }

    /// Writes the ledger entry before acting, so that a repeat never records the enforced state
    /// as the "before" one. An entry already there is reused when its change was never made (an
    /// earlier run failed between recording and acting: the step is unknown, not done) and
    /// replaced when it was restored earlier in the period; otherwise the resource is skipped.
    async fn record(
        &self,
        key: &str,
        entry: LedgerEntry,
        label: &str,
        out: &mut Outcome,
    ) -> Result<Option<(LedgerEntry, String)>> {
        if let Some(etag) = self.store.create(key, &entry).await? {
            return Ok(Some((entry, etag)));
        }
        let Some(existing) = self.store.get::<LedgerEntry>(key).await? else {
            return Err(Error::Conflict(format!("ledger entry {key} vanished")));
        };
        // Restored earlier in the period, or refused by AWS last time: record afresh.
        if existing.value.restored.is_some() || existing.value.failure.is_some() {
            let etag = self.store.replace(key, &entry, &existing.etag).await?;
            return Ok(Some((entry, etag)));
        }
        if existing.value.before == entry.before {
            return Ok(Some((existing.value, existing.etag)));
        }
        out.skipped
            .push(format!("{label}: already enforced this period"));
        Ok(None)
    }

    /// Marks the entry of a change AWS refused with the reason (a transient failure leaves the
    /// entry as it is: the redelivery makes the change with the sizes recorded first).
    async fn refused(&self, key: &str, entry: LedgerEntry, etag: &str, err: &Error) -> Result<()> {
        if !err.is_retryable() {
            let marked = LedgerEntry {
                failure: Some(err.to_string()),
                ..entry
            };
            self.store.replace(key, &marked, etag).await?;
        }
        Ok(())
    }

    async fn remember(&self, state: &mut Versioned<EnforcementState>, key: &str) -> Result<()> {
        if !state.value.ledger.iter().any(|k| k == key) {
            state.value.ledger.push(key.to_string());
            save(self.store, state).await?;
        }
        Ok(())
    }
}

/// Saves the state with a compare-and-swap on the version read.
pub async fn save(store: &StateStore, state: &mut Versioned<EnforcementState>) -> Result<()> {
    state.etag = store
        .replace(
            &EnforcementState::key(&state.value.budget),
            &state.value,
            &state.etag,
        )
        .await?;
    Ok(())
}

/// Records a change AWS refused. A transient failure (throttling, 5xx, busy) is kept to be
/// returned once the others of the step are done, so that the delivery is retried; any other is
/// the resource's own and the step goes on without it.
fn failed(err: Error, label: &str, out: &mut Outcome, transient: &mut Option<Error>) {
    out.failed.push(format!("{label}: {err}"));
    if err.is_retryable() && transient.is_none() {
        *transient = Some(err);
    }
}

/// A stopped database counts as "as enforcement left it" while it is still stopping.
fn is_enforced_state(found: &Observed, after: &Observed) -> bool {
    matches!((found, after), (Observed::Status { status }, Observed::Status { status: a }) if a == "stopped" && status == "stopping")
}

/// A database that is starting or available is back to running.
fn is_running(found: &Observed, before: &Observed) -> bool {
    matches!((found, before), (Observed::Status { status }, Observed::Status { .. }) if status == "available" || status == "starting")
}

fn add_saving(out: &mut Outcome, label: &str, saving: Option<f64>) {
    match saving {
        Some(s) => out.saving_per_day_usd += s,
        None => out.unestimated.push(label.to_string()),
    }
}

/// An idempotency token for an EKS update (≤ 64 characters of `[A-Za-z0-9-]`).
fn request_token(parts: &[&str]) -> String {
    let joined = parts.join("-");
    let cleaned: String = joined
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if cleaned.len() <= 64 {
        return cleaned;
    }
    // Keep it unique when long: a stable FNV-1a hash of the whole, after a readable prefix.
    let hash = joined.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}-{hash:016x}", &cleaned[..47])
}

/// On-demand hourly prices (us-east-1, Linux / single-AZ, as of 2026-11) of common types; other
/// types are reported as not estimated rather than guessed.
pub fn hourly_price(instance_type: &str) -> Option<f64> {
    Some(match instance_type {
        "t3.medium" => 0.0416,
        "t3.large" => 0.0832,
        "m5.large" | "m6i.large" => 0.096,
        "m5.xlarge" | "m6i.xlarge" => 0.192,
        "m6g.large" => 0.077,
        "m7g.large" => 0.0816,
        "c5.large" | "c6i.large" => 0.085,
        "c5.xlarge" | "c6i.xlarge" => 0.17,
        "r5.large" | "r6i.large" => 0.126,
        "db.t3.medium" => 0.072,
        "db.t3.large" => 0.145,
        "db.m5.large" | "db.m6i.large" => 0.171,
        "db.r5.large" | "db.r6i.large" => 0.25,
        "db.r6g.large" => 0.225,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_tokens_are_short_stable_and_distinct() {
        let a = request_token(&["budget", "2026-11", "prod", "batch", "down"]);
        assert_eq!(a, "budget-2026-11-prod-batch-down");
        let long1 = request_token(&["budget", "2026-11", &"c".repeat(60), "x", "down"]);
        let long2 = request_token(&["budget", "2026-11", &"c".repeat(60), "y", "down"]);
        assert!(long1.len() <= 64 && long1 != long2);
        assert_eq!(
            long1,
            request_token(&["budget", "2026-11", &"c".repeat(60), "x", "down"])
        );
    }
}
