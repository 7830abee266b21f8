//! The `breakwater` command: what an operator does to a deployed Breakwater (or to the sandbox,
//! with `AWS_ENDPOINT_URL` set by `make up`), without a redeploy.
//!
//! It talks to the region's state bucket, the same records the functions read: the pause switch
//! (`control/<function>/pause.json`, [`breakwater::control`]), the leases of work in progress
//! (`leases/<function>/…`) and the failover plans' execution records.

use std::fmt::Write as _;

pub mod failover;
pub mod invoke;
pub mod redrive;

use ::failover::engine::Execution;
use ::failover::PlanState;
use breakwater::clock::{rfc3339, Clock, SystemClock};
use breakwater::control::{Pause, FUNCTIONS};
use breakwater::state::StateStore;
use breakwater::{Error, Result};
use serde_json::Value;

/// The region's state bucket, and the raw S3 client to list it.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The records.
    pub store: StateStore,
    s3: aws_sdk_s3::Client,
}

impl Operator {
    /// The operator's view of `bucket` through `s3`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str) -> Self {
        let store = StateStore::new(
            s3.clone(),
            bucket,
            std::sync::Arc::new(SystemClock) as std::sync::Arc<dyn Clock>,
        );
        Operator { store, s3 }
    }

    /// Pauses each of `functions`; what was done, one line each.
    pub async fn pause(&self, functions: &[String], by: &str, reason: &str) -> Result<String> {
        let pause = Pause {
            by: by.to_string(),
            since: rfc3339(SystemClock.now_ms()),
            reason: reason.to_string(),
        };
        let mut out = String::new();
        for function in functions {
            self.store.pause(function, &pause).await?;
            let _ = writeln!(
                out,
                "paused {function}: from its next invocation it changes nothing and says what it would have done (resume: breakwater resume {function})"
            );
        }
        Ok(out)
    }

    /// Lifts the pause of each of `functions`; what was done, one line each.
    pub async fn resume(&self, functions: &[String]) -> Result<String> {
        let mut out = String::new();
        for function in functions {
            let line = if self.store.resume(function).await? {
                format!("resumed {function}: its next invocation acts")
            } else {
                format!("{function} was not paused")
            };
            let _ = writeln!(out, "{line}");
        }
        Ok(out)
    }

    /// Per function: its pause, the work it holds a lease for now, and (failover) the execution
    /// running or last run of each plan.
    pub async fn status(&self) -> Result<String> {
        let now = SystemClock.now_ms();
        let mut out = String::new();
        for function in FUNCTIONS {
            let pause = match self.store.pause_of(function).await? {
                Some(p) => format!("PAUSED since {} by {}: {}", p.since, p.by, p.reason),
                None => "acting".to_string(),
            };
            let _ = writeln!(out, "{function:<9} {pause}");
            for (key, lease) in self.leases(function, now).await? {
                let _ = writeln!(
                    out,
                    "          working: {} (held by {} until {})",
                    key.trim_start_matches(&format!("leases/{function}/")),
                    lease["data"]["owner"].as_str().unwrap_or("?"),
                    rfc3339(lease["data"]["expires_at_ms"].as_u64().unwrap_or_default())
                );
            }
            if function == "failover" {
                for line in self.executions().await? {
                    let _ = writeln!(out, "          {line}");
                }
            }
        }
        Ok(out)
    }

    /// The live leases under `leases/<function>/`.
    async fn leases(&self, function: &str, now: u64) -> Result<Vec<(String, Value)>> {
        let mut live = Vec::new();
        for key in self.keys(&format!("leases/{function}/")).await? {
            let Some(body) = self.store.get_document(&key).await? else {
                continue;
            };
            let lease: Value = serde_json::from_slice(&body).unwrap_or_default();
            if lease["data"]["expires_at_ms"].as_u64().unwrap_or_default() > now {
                live.push((key, lease));
            }
        }
        Ok(live)
    }

    /// One line per failover plan: the execution running, else the last one.
    async fn executions(&self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        for key in self.keys("failover/plans/").await? {
            let Some(state) = self.store.get::<PlanState>(&key).await? else {
                continue;
            };
            let plan = key
                .trim_start_matches("failover/plans/")
                .trim_end_matches(".json");
            let (word, id) = match (&state.value.active, &state.value.last) {
                (Some(id), _) => ("running", id),
                (None, Some(id)) => ("last", id),
                (None, None) => continue,
            };
            let exec = self.store.get::<Execution>(&Execution::key(id)).await?;
            let detail = match exec {
                Some(e) => format!("{} {}", e.value.mode.as_str(), e.value.outcome),
                None => "(its record is gone)".into(),
            };
            lines.push(format!("plan {plan}: {word} execution {id}: {detail}"));
        }
        Ok(lines)
    }

    /// Every key under `prefix` (ListObjectsV2, page by page).
    pub(crate) async fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .listed(prefix)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// The keys under `prefix` with when each was last written (seconds since the epoch).
    pub(crate) async fn listed(&self, prefix: &str) -> Result<Vec<(String, i64)>> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(self.store.bucket())
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                Error::Aws(format!(
                    "listing s3://{}/{prefix}: {e}",
                    self.store.bucket()
                ))
            })?;
            keys.extend(page.contents().iter().filter_map(|o| {
                let modified = o.last_modified().map_or(0, |t| t.secs());
                o.key().map(|k| (k.to_string(), modified))
            }));
        }
        Ok(keys)
    }
}

/// The functions a command names: one (checked), or all five when none is named.
pub fn functions(named: Option<&str>) -> std::result::Result<Vec<String>, String> {
    match named {
        None => Ok(FUNCTIONS.iter().map(|f| f.to_string()).collect()),
        Some(f) if FUNCTIONS.contains(&f) => Ok(vec![f.to_string()]),
        Some(f) => Err(format!(
            "no function {f:?}: one of {}",
            FUNCTIONS.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_names_one_function_or_all() {
        assert_eq!(functions(Some("spot")).unwrap(), vec!["spot"]);
        assert_eq!(functions(None).unwrap().len(), 5);
        let err = functions(Some("spots")).unwrap_err();
        assert!(err.contains("one of budget, tiering, spot"), "{err}");
    }
}
