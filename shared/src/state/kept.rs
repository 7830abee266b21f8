//! A lease kept for as long as the work under it goes on: checked before each write, renewed
//! while long work runs, released once.
//!
//! Work can outlast the lease's time to live (spot's warning drain runs to `warning + 120 s −
//! margin`): the lease is then renewed (the store's compare-and-swap `renew_lease`) every third of
//! its time while the work runs, and checked before every write — renewed first when less than
//! half of it is left — so that whatever is written under it is written by the one holder. A
//! renewal that finds the lease taken over (`Conflict`), or a lease that lapsed while S3 could not
//! be reached, means another invocation may be acting: the work stops with `Conflict` instead of
//! writing over it. [`crate::invocation::with_kept_lease`] takes and releases it.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;

use super::{Lease, StateStore};
use crate::error::{Error, Result};

/// A lease this invocation holds and keeps.
#[derive(Debug)]
pub struct KeptLease {
    store: StateStore,
    ttl: Duration,
    key: String,
    lease: Mutex<Option<Lease>>,
}

impl KeptLease {
    /// Keeps `lease` (acquired for `ttl`).
    pub fn new(store: StateStore, lease: Lease, ttl: Duration) -> Self {
        KeptLease {
            store,
            ttl,
            key: lease.key.clone(),
            lease: Mutex::new(Some(lease)),
        }
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    async fn renew_if(&self, below_ms: u64) -> Result<()> {
        let mut held = self.lease.lock().await;
        let Some(lease) = held.as_mut() else {
            return Err(Error::Conflict("the lease was lost".into()));
        };
        let now = self.store.clock().now_ms();
        let left = lease.expires_at_ms.saturating_sub(now);
        if left > below_ms {
            return Ok(());
        }
        match self.store.renew_lease(lease, self.ttl).await {
            Ok(()) => Ok(()),
            Err(Error::Conflict(why)) => {
                *held = None;
                Err(Error::Conflict(why))
            }
            Err(e) if left == 0 => {
                // It lapsed while the store could not be reached: someone may have taken it.
                *held = None;
                Err(Error::Conflict(format!(
                    "the lease lapsed while it could not be renewed: {e}"
                )))
            }
            Err(e) => {
                // Still ours for `left` ms: the next check renews.
                tracing::warn!(error = %e, left_ms = left, "could not renew the lease yet");
                Ok(())
            }
        }
    }

    /// Before a write: `Ok` while the lease is this invocation's, renewed when less than half
    /// of its time is left; `Conflict` when it was lost.
    pub async fn check(&self) -> Result<()> {
        self.renew_if(self.ttl_ms() / 2).await
    }

    /// Runs `work` while renewing the lease every third of its time to live. A lost lease stops
    /// the work (`Conflict`); a renewal that fails for a while is retried until the lease would
    /// lapse.
    ///
    /// The renewals run beside the work, both polled by one `select!`: a renewal that waits on
    /// S3 (retries, a slow answer) never pauses the drain and its deadline.
    pub async fn keep_while<F: Future>(&self, work: F) -> Result<F::Output> {
        let period = (self.ttl / 3).max(Duration::from_millis(100));
        let renewals = async {
            loop {
                tokio::time::sleep(period).await;
                match self.renew_if(u64::MAX).await {
                    Ok(()) => {}
                    Err(Error::Conflict(why)) => return why,
                    Err(e) => tracing::warn!(error = %e, "could not renew the lease"),
                }
            }
        };
        tokio::select! {
            out = work => Ok(out),
            why = renewals => {
                tracing::error!(%why, "lost the lease mid-work; stopping");
                Err(Error::Conflict(why))
            }
        }
    }

    /// The lease's key (`leases/<scope>/<id>`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Releases the lease once (a lost or already released one needs nothing).
    pub async fn release(&self) -> Result<()> {
        let Some(lease) = self.lease.lock().await.take() else {
            return Ok(());
        };
        self.store.release_lease(lease).await
    }
}
