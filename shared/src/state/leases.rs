//! Leases: one writer per target at a time, taken over only after expiry, by compare-and-swap.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{key_segment, StateStore, RACE_ATTEMPTS};
use crate::error::{Error, Result};

impl StateStore {
    /// Acquires the lease `leases/<scope>/<id>` for `owner` for `ttl`.
    ///
    /// A free or expired lease is taken (the takeover is a compare-and-swap on the expired
    /// record, so of two racing takers exactly one wins); a lease the same owner already holds is
    /// extended; a live lease of another owner is reported as [`Acquisition::Held`].
    pub async fn acquire_lease(
        &self,
        scope: &str,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Acquisition> {
        let key = format!("leases/{scope}/{}", key_segment(id));
        for _ in 0..RACE_ATTEMPTS {
            let now = self.clock.now_ms();
            let fresh = LeaseRecord {
                owner: owner.to_string(),
                acquired_at_ms: now,
                expires_at_ms: now + ttl.as_millis() as u64,
                generation: 1,
            };
            if let Some(etag) = self.create(&key, &fresh).await? {
                return Ok(Acquisition::Acquired(Lease::from_record(
                    key, fresh, etag, None,
                )));
            }
            let Some(current) = self.get::<LeaseRecord>(&key).await? else {
                continue;
            };
            let live = current.value.expires_at_ms > now;
            if live && current.value.owner != owner {
                return Ok(Acquisition::Held {
                    owner: current.value.owner,
                    expires_at_ms: current.value.expires_at_ms,
                });
            }
            let previous = (current.value.owner != owner).then(|| current.value.owner.clone());
            let next = LeaseRecord {
                generation: current.value.generation + 1,
                ..fresh
            };
            match self.replace(&key, &next, &current.etag).await {
                Ok(etag) => {
                    return Ok(Acquisition::Acquired(Lease::from_record(
                        key, next, etag, previous,
                    )))
                }
                Err(Error::Conflict(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(Error::Conflict(format!(
            "lease {key}: lost {RACE_ATTEMPTS} races in a row"
        )))
    }

    /// Extends a held lease by `ttl` from now; `Conflict` when it was lost (taken over after expiry).
    pub async fn renew_lease(&self, lease: &mut Lease, ttl: Duration) -> Result<()> {
        let now = self.clock.now_ms();
        let record = LeaseRecord {
            owner: lease.owner.clone(),
            acquired_at_ms: lease.acquired_at_ms,
            expires_at_ms: now + ttl.as_millis() as u64,
            generation: lease.generation,
        };
        let etag = self
            .replace(&lease.key, &record, &lease.etag)
            .await
            .map_err(|e| match e {
                Error::Conflict(_) => {
                    Error::Conflict(format!("lease {}: lost by {}", lease.key, lease.owner))
                }
                other => other,
            })?;
        lease.etag = etag;
        lease.expires_at_ms = record.expires_at_ms;
        Ok(())
    }

    /// Releases a held lease (marks it expired with a compare-and-swap). Releasing a lease that
    /// someone else has since taken over changes nothing and is not an error.
    pub async fn release_lease(&self, lease: Lease) -> Result<()> {
        let record = LeaseRecord {
            owner: lease.owner.clone(),
            acquired_at_ms: lease.acquired_at_ms,
            expires_at_ms: 0,
            generation: lease.generation,
        };
        match self.replace(&lease.key, &record, &lease.etag).await {
            Ok(_) => Ok(()),
            Err(Error::Conflict(_)) => {
                tracing::warn!(lease = %lease.key, owner = %lease.owner, "lease was taken over before release");
                Ok(())
            }
            Err(other) => Err(other),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseRecord {
    owner: String,
    acquired_at_ms: u64,
    expires_at_ms: u64,
    generation: u64,
}

/// A lease this caller holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's key in the store.
    pub key: String,
    /// Who holds it.
    pub owner: String,
    /// When it was acquired (ms since the epoch).
    pub acquired_at_ms: u64,
    /// When it lapses unless renewed (ms since the epoch).
    pub expires_at_ms: u64,
    /// How many times it changed hands: a fencing token for what the holder writes.
    pub generation: u64,
    /// The owner whose expired lease this acquisition took over, if any.
    pub taken_over_from: Option<String>,
    etag: String,
}

impl Lease {
    fn from_record(
        key: String,
        record: LeaseRecord,
        etag: String,
        taken_over_from: Option<String>,
    ) -> Self {
        Lease {
            key,
            owner: record.owner,
            acquired_at_ms: record.acquired_at_ms,
            expires_at_ms: record.expires_at_ms,
            generation: record.generation,
            taken_over_from,
            etag,
        }
    }
}

/// The outcome of a lease acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquisition {
    /// This caller holds the lease.
    Acquired(Lease),
    /// Another owner holds a live lease.
    Held {
        /// The holder.
        owner: String,
        /// When the holder's lease lapses (ms since the epoch).
        expires_at_ms: u64,
    },
}
