//! The bake window's end: every rollback is checked again once its window has passed — the
//! alarm, and the rollout's progress — and verified (its revision marked good) or escalated,
//! once.

use breakwater::kube::workloads::Workloads;
use breakwater::ports::Alarms;
use breakwater::{Error, Result};
use serde_json::{json, Value};

use crate::record::{record_key, BakingIndex, Decision, Outcome, BAKING_KEY};
use crate::undo::Progress;
use crate::workload::{Kind, Workload};
use crate::RollbackFunction;

impl<A: Alarms> RollbackFunction<A> {
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
            let checked = self
                .under_lease(&workload, owner, || self.verify_one(&workload, now))
                .await?;
            results.push(checked);
        }
        let resumed = self.resume_syncs(owner).await?;
        Ok(json!({"outcome": "verified", "checked": results, "gitops": resumed}))
    }

    pub(crate) async fn unindex(&self, name: &str) -> Result<()> {
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
        let workloads = self.workloads();
        let (progress_ok, progress) = match workload.kind {
            Kind::Deployment => match workloads.deployment(workload.at()).await? {
                Some(read) => {
                    let p = Progress::of(&read.deployment);
                    (p.complete() && !p.deadline_exceeded, p.to_string())
                }
                None => (false, "the deployment is gone".to_string()),
            },
            Kind::Rollout => {
                let r = workloads.rollout(workload.at()).await?.unwrap_or_default();
                let phase = r["status"]["phase"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string();
                match &bake.to_hash {
                    // A promoted update rolled back: the target is the stable ReplicaSet, Healthy.
                    Some(hash) => (
                        r["status"]["stableRS"] == hash.as_str() && phase == "Healthy",
                        format!(
                            "phase {phase}, stable ReplicaSet {}",
                            r["status"]["stableRS"].as_str().unwrap_or("none")
                        ),
                    ),
                    // An aborted rollout is Degraded by design; what matters is that it is
                    // still aborted.
                    None => (r["status"]["abort"] == true, format!("phase {phase}")),
                }
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
        serde_json::to_value(&decision)
            .map_err(|e| Error::Internal(format!("encode decision: {e}")))
    }
}
