//! Once per event: an effect run to completion once per `(function, event id)`, its result stored
//! and returned to a repeat delivery (at-least-once in, exactly-once effect).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{claim_token, key_segment, StateStore, Versioned, RACE_ATTEMPTS};
use crate::error::{Error, Result};

impl StateStore {
    /// Runs `effect` to completion once per `(function, event_id)`, as far as the store can
    /// tell: the claim is written before the effect and the result after it, so an owner that
    /// dies in between leaves a claim that lapses after `ttl`, and the effect runs again then
    /// (at least once; effects are idempotent by design).
    ///
    /// The first delivery creates an in-progress record, runs the effect and stores its result;
    /// a repeat returns the stored result without running anything. A duplicate that arrives
    /// while the first is still running gets `Conflict` (the caller's retry will find the stored
    /// result). An effect that failed, or whose owner vanished past `ttl`, may be run again.
    ///
    /// Each claim carries a token of its own, so a claim this call wrote is recognised as its
    /// own when the write's answer was lost and the SDK's retry was refused (412).
    pub async fn once<T, F, Fut>(
        &self,
        function: &str,
        event_id: &str,
        owner: &str,
        ttl: Duration,
        effect: F,
    ) -> Result<Idempotent<T>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let key = format!("idempotency/{function}/{}", key_segment(event_id));
        let token = claim_token(self.clock.now_ms());
        let mut etag = None;
        for _ in 0..RACE_ATTEMPTS {
            let now = self.clock.now_ms();
            let claim = IdempotencyRecord::InProgress {
                owner: owner.to_string(),
                expires_at_ms: now + ttl.as_millis() as u64,
                claim: token.clone(),
            };
            if let Some(created) = self.create(&key, &claim).await? {
                etag = Some(created);
                break;
            }
            let Some(current) = self.get::<IdempotencyRecord>(&key).await? else {
                continue;
            };
            match current.value {
                IdempotencyRecord::Completed { result, .. } => {
                    let stored =
                        serde_json::from_value(result).map_err(|e| Error::CorruptRecord {
                            key: key.clone(),
                            reason: e.to_string(),
                        })?;
                    return Ok(Idempotent::Repeat(stored));
                }
                IdempotencyRecord::InProgress { claim, .. } if claim == token => {
                    // This call's own claim (a write whose answer was lost): it holds it.
                    etag = Some(current.etag);
                    break;
                }
                IdempotencyRecord::InProgress {
                    owner: other,
                    expires_at_ms,
                    ..
                } if expires_at_ms > now => {
                    return Err(Error::Conflict(format!(
                        "event {event_id} is already being handled by {other}"
                    )));
                }
                IdempotencyRecord::InProgress { .. } | IdempotencyRecord::Failed { .. } => {
                    match self.replace(&key, &claim, &current.etag).await {
                        Ok(taken) => {
                            etag = Some(taken);
                            break;
                        }
                        Err(Error::Conflict(_)) => continue,
                        Err(other) => return Err(other),
                    }
                }
            }
        }
        let Some(etag) = etag else {
            return Err(Error::Conflict(format!(
                "idempotency record {key}: lost {RACE_ATTEMPTS} races in a row"
            )));
        };
        match effect().await {
            Ok(value) => {
                let result = serde_json::to_value(&value)
                    .map_err(|e| Error::Internal(format!("encode result of {key}: {e}")))?;
                let done = IdempotencyRecord::Completed {
                    result,
                    completed_at_ms: self.clock.now_ms(),
                };
                if let Err(err) = self.settle(&key, &done, &etag, &token).await {
                    // The effect happened; a failed bookkeeping write must not report it as failed.
                    tracing::error!(record = %key, error = %err, "effect done but its idempotency record was not completed");
                }
                Ok(Idempotent::Fresh(value))
            }
            Err(err) => {
                let failed = IdempotencyRecord::Failed {
                    error: err.to_string(),
                    failed_at_ms: self.clock.now_ms(),
                };
                if let Err(write_err) = self.settle(&key, &failed, &etag, &token).await {
                    tracing::warn!(record = %key, error = %write_err, "could not mark the idempotency record failed");
                }
                Err(err)
            }
        }
    }

    /// Replaces this call's claim (`token`, version `etag`) with how it ended. A refusal (a 409
    /// while another conditional write was in flight, a 412) is read again: while the record
    /// is still this claim, the write is made on the version read; a claim taken over after
    /// its lapse is left to its new owner.
    async fn settle(
        &self,
        key: &str,
        outcome: &IdempotencyRecord,
        etag: &str,
        token: &str,
    ) -> Result<()> {
        let mut etag = etag.to_string();
        for _ in 0..RACE_ATTEMPTS {
            match self.replace(key, outcome, &etag).await {
                Ok(_) => return Ok(()),
                Err(Error::Conflict(why)) => match self.get::<IdempotencyRecord>(key).await? {
                    Some(Versioned {
                        value: IdempotencyRecord::InProgress { claim, .. },
                        etag: current,
                    }) if claim == token => etag = current,
                    _ => return Err(Error::Conflict(why)),
                },
                Err(other) => return Err(other),
            }
        }
        Err(Error::Conflict(format!(
            "idempotency record {key}: lost {RACE_ATTEMPTS} races in a row"
        )))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum IdempotencyRecord {
    InProgress {
        owner: String,
        expires_at_ms: u64,
        /// The claim's own token (records written before it had none).
        #[serde(default)]
        claim: String,
    },
    Completed {
        result: serde_json::Value,
        completed_at_ms: u64,
    },
    Failed {
        error: String,
        failed_at_ms: u64,
    },
}

/// The result of an idempotent run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotent<T> {
    /// The effect ran now.
    Fresh(T),
    /// The effect had already run; this is its stored result.
    Repeat(T),
}

impl<T> Idempotent<T> {
    /// The result, fresh or stored.
    pub fn into_inner(self) -> T {
        match self {
            Idempotent::Fresh(v) | Idempotent::Repeat(v) => v,
        }
    }

    /// Whether this delivery was a repeat.
    pub fn is_repeat(&self) -> bool {
        matches!(self, Idempotent::Repeat(_))
    }
}
