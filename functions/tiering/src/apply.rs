//! Tiering one bucket: observe (tags, exclusions, the current configuration), decide (the
//! merge), and — only in apply mode — write under a per-bucket lease, after a re-read, with a
//! read-back to verify and a ledger entry that lets `undo` restore the exact previous
//! configuration.

use std::time::Duration;

use breakwater::invocation::{with_lease, Leased};
use breakwater::lifecycle::LifecycleConfiguration;
use breakwater::ports::Buckets;
use breakwater::state::{key_segment, StateStore};
use breakwater::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::merge::{equivalent, is_managed, merge, Merge};
use crate::policy::{Policy, PolicyDecision};

/// Plan (decide and report) or apply (write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decide only.
    Plan,
    /// Decide and write.
    Apply,
}

/// What happened to one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketOutcome {
    /// The bucket.
    pub bucket: String,
    /// `written`, `would-write`, `unchanged`, `skipped`, `excluded`, `not-opted-in`, `bad-tag`,
    /// `busy`, `not-found`, `undone`.
    pub outcome: String,
    /// Why, when it was not written.
    pub reason: Option<String>,
    /// The managed rules in force after this run.
    pub managed_rules: Vec<String>,
}

impl BucketOutcome {
    fn new(bucket: &str, outcome: &str, reason: Option<String>) -> Self {
        BucketOutcome {
            bucket: bucket.into(),
            outcome: outcome.into(),
            reason,
            managed_rules: Vec::new(),
        }
    }
}

/// One write Breakwater made to a bucket's lifecycle, for `undo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerWrite {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Who (the invocation).
    pub by: String,
    /// The configuration before.
    pub before: LifecycleConfiguration,
    /// The configuration written.
    pub after: LifecycleConfiguration,
    /// Whether it was undone.
    pub undone: bool,
}

/// A bucket's ledger: every write, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// The writes.
    pub writes: Vec<LedgerWrite>,
}

fn ledger_key(bucket: &str) -> String {
    format!("ledger/tiering/{}.json", key_segment(bucket))
}

/// What a tiering run needs.
#[derive(Debug)]
pub struct Tierer<'a, B> {
    /// S3.
    pub buckets: &'a B,
    /// The state store.
    pub store: &'a StateStore,
    /// Skip buckets that receive S3 server access logs.
    pub skip_log_targets: bool,
    /// How long a bucket's lease lasts.
    pub lease_ttl: Duration,
    /// Plan only, whatever the mode.
    pub dry_run: bool,
}

impl<B: Buckets> Tierer<'_, B> {
    /// Observes, decides and (in apply mode) writes one bucket. `owner` names this invocation.
    pub async fn tier(&self, bucket: &str, mode: Mode, owner: &str) -> Result<BucketOutcome> {
        let tags = match self.buckets.tags(bucket).await {
            Ok(tags) => tags,
            Err(Error::NotFound(why)) => {
                return Ok(BucketOutcome::new(bucket, "not-found", Some(why)))
            }
            Err(Error::Forbidden(why)) => {
                return Ok(BucketOutcome::new(
                    bucket,
                    "excluded",
                    Some(format!("not this account's bucket ({why})")),
                ))
            }
            Err(e) => return Err(e),
        };
        // Only an opted-in bucket is worth the six calls that read its facts.
        let policy = match Policy::from_tags(&tags, false) {
            PolicyDecision::Tier(policy) => policy,
            PolicyDecision::NotOptedIn(why) => {
                return Ok(BucketOutcome::new(bucket, "not-opted-in", Some(why)))
            }
            PolicyDecision::BadTag(why) => {
                return Ok(BucketOutcome::new(bucket, "bad-tag", Some(why)))
            }
        };
        let facts = self.buckets.facts(bucket).await?;
        let exclusion = if facts.object_lock {
            Some("Object Lock is enabled")
        } else if facts.replication_source {
            Some("it is a replication source")
        } else if facts.requester_pays {
            Some("requester pays")
        } else if facts.log_delivery_target && self.skip_log_targets {
            Some("it receives S3 server access logs")
        } else {
            None
        };
        if let Some(why) = exclusion {
            return Ok(BucketOutcome::new(
                bucket,
                "excluded",
                Some(why.to_string()),
            ));
        }
        let policy = Policy {
            versioned: facts.versioned,
            ..policy
        };
        let current = self.buckets.lifecycle(bucket).await?;
        match merge(&current, &policy) {
            Merge::Unchanged => {
                Ok(self.with_rules(BucketOutcome::new(bucket, "unchanged", None), &current))
            }
            Merge::Skip(why) => Ok(BucketOutcome::new(bucket, "skipped", Some(why))),
            Merge::Write(merged) if mode == Mode::Plan || self.dry_run => {
                Ok(self.with_rules(BucketOutcome::new(bucket, "would-write", None), &merged))
            }
            Merge::Write(_) => self.write(bucket, &policy, owner).await,
        }
    }

    async fn write(&self, bucket: &str, policy: &Policy, owner: &str) -> Result<BucketOutcome> {
        let ttl = self.lease_ttl;
        let work = || self.write_held(bucket, policy, owner);
        match with_lease(self.store, "tiering", bucket, owner, ttl, work).await? {
            Leased::Done(outcome) => Ok(outcome),
            Leased::Held { owner: holder, .. } => Ok(BucketOutcome::new(
                bucket,
                "busy",
                Some(format!("{holder} is writing it")),
            )),
        }
    }

    async fn write_held(
        &self,
        bucket: &str,
        policy: &Policy,
        owner: &str,
    ) -> Result<BucketOutcome> {
        // Re-read under the lease: another writer may have finished a moment ago.
        let before = self.buckets.lifecycle(bucket).await?;
        let merged = match merge(&before, policy) {
            Merge::Write(merged) => merged,
            Merge::Unchanged => {
                return Ok(self.with_rules(BucketOutcome::new(bucket, "unchanged", None), &before))
            }
            Merge::Skip(why) => return Ok(BucketOutcome::new(bucket, "skipped", Some(why))),
        };
        let write = LedgerWrite {
            at_ms: self.store.clock().now_ms(),
            by: owner.into(),
            before,
            after: merged.clone(),
            undone: false,
        };
        self.record(bucket, write).await?;
        self.buckets.put_lifecycle(bucket, &merged).await?;
        let read_back = self.buckets.lifecycle(bucket).await?;
        if !equivalent(&read_back, &merged) {
            return Err(Error::Conflict(format!(
                "bucket {bucket}: the configuration read back differs from the one written (a concurrent writer?); the next sweep re-evaluates it"
            )));
        }
        Ok(self.with_rules(BucketOutcome::new(bucket, "written", None), &merged))
    }

    async fn record(&self, bucket: &str, write: LedgerWrite) -> Result<()> {
        let key = ledger_key(bucket);
        for _ in 0..5 {
            match self.store.get::<Ledger>(&key).await? {
                None => {
                    if self
                        .store
                        .create(
                            &key,
                            &Ledger {
                                writes: vec![write.clone()],
                            },
                        )
                        .await?
                        .is_some()
                    {
                        return Ok(());
                    }
                }
                Some(mut ledger) => {
                    ledger.value.writes.push(write.clone());
                    match self.store.replace(&key, &ledger.value, &ledger.etag).await {
                        Ok(_) => return Ok(()),
                        Err(Error::Conflict(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Err(Error::Conflict(format!(
            "ledger {key}: too many concurrent writers"
        )))
    }

    /// Restores the configuration before Breakwater's last write, if nobody changed it since.
    pub async fn undo(&self, bucket: &str, owner: &str) -> Result<BucketOutcome> {
        let ttl = self.lease_ttl;
        let work = || self.undo_held(bucket);
        match with_lease(self.store, "tiering", bucket, owner, ttl, work).await? {
            Leased::Done(outcome) => Ok(outcome),
            Leased::Held { owner: holder, .. } => Err(Error::Conflict(format!(
                "bucket {bucket} is being written by {holder}"
            ))),
        }
    }

    async fn undo_held(&self, bucket: &str) -> Result<BucketOutcome> {
        let key = ledger_key(bucket);
        let Some(mut ledger) = self.store.get::<Ledger>(&key).await? else {
            return Ok(BucketOutcome::new(
                bucket,
                "unchanged",
                Some("Breakwater never wrote this bucket's lifecycle".into()),
            ));
        };
        let Some(index) = ledger.value.writes.iter().rposition(|w| !w.undone) else {
            return Ok(BucketOutcome::new(
                bucket,
                "unchanged",
                Some("every write was already undone".into()),
            ));
        };
        let write = ledger.value.writes[index].clone();
        let current = self.buckets.lifecycle(bucket).await?;
        if !equivalent(&current, &write.after) {
            return Ok(BucketOutcome::new(
                bucket,
                "skipped",
                Some("the configuration changed after Breakwater's write; it is left as it is, not undone".into()),
            ));
        }
        if self.dry_run {
            return Ok(BucketOutcome::new(bucket, "would-undo", None));
        }
        self.buckets.put_lifecycle(bucket, &write.before).await?;
        let read_back = self.buckets.lifecycle(bucket).await?;
        if !equivalent(&read_back, &write.before) {
            return Err(Error::Conflict(format!(
                "bucket {bucket}: the restored configuration reads back differently"
            )));
        }
        ledger.value.writes[index].undone = true;
        self.store
            .replace(&key, &ledger.value, &ledger.etag)
            .await?;
        Ok(self.with_rules(BucketOutcome::new(bucket, "undone", None), &write.before))
    }

    fn with_rules(
        &self,
        mut outcome: BucketOutcome,
        config: &LifecycleConfiguration,
    ) -> BucketOutcome {
        outcome.managed_rules = config
            .rules
            .iter()
            .filter(|r| is_managed(r))
            .filter_map(|r| r.id.clone())
            .collect();
        outcome
    }
}
