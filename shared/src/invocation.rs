//! One invocation policy for every function: bad input is an `InvalidEvent` error, outcomes are
//! typed, a lease is held around work (waited for, checked and renewed when the work needs it)
//! and released on every path with one policy, a repeat delivery is marked,
//! and the event id rides on every log line through the invocation's span.
//!
//! The span is attached with `Instrument` rather than `span.enter()`: a guard held across an
//! `.await` leaks the span into whatever the executor polls next
//! (https://docs.rs/tracing/latest/tracing/struct.Span.html#in-asynchronous-code).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::state::{Acquisition, Idempotent, KeptLease, StateStore};

/// The one answer to bad input: an `InvalidEvent` error (errorType `InvalidEvent`); nothing was
/// changed.
pub fn invalid_event(reason: impl Into<String>) -> Error {
    Error::InvalidEvent(reason.into())
}

/// How an invocation ended, before it is turned into the JSON a caller sees.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The work ran now; its result.
    Done(Value),
    /// The event had been handled before; the stored result, marked `"repeat": true`.
    Repeat(Value),
    /// The event needs nothing from this function; why.
    Ignored(String),
}

impl Outcome {
    /// The JSON result: a repeat carries `"repeat": true`, an ignored event
    /// `{"outcome": "ignored", "reason": …}`.
    pub fn into_value(self) -> Value {
        match self {
            Outcome::Done(value) => value,
            Outcome::Repeat(mut value) => {
                value["repeat"] = json!(true);
                value
            }
            Outcome::Ignored(reason) => json!({"outcome": "ignored", "reason": reason}),
        }
    }
}

impl From<Idempotent<Value>> for Outcome {
    fn from(done: Idempotent<Value>) -> Self {
        match done {
            Idempotent::Fresh(value) => Outcome::Done(value),
            Idempotent::Repeat(value) => Outcome::Repeat(value),
        }
    }
}

/// The stored or fresh result of [`StateStore::once`], a repeat marked `"repeat": true`.
pub fn mark_repeat(done: Idempotent<Value>) -> Value {
    Outcome::from(done).into_value()
}

/// The span of one invocation: every log line inside carries `function` and `event_id`.
pub fn event_span(function: &str, event_id: Option<&str>) -> tracing::Span {
    tracing::info_span!("invocation", function, event_id = event_id.unwrap_or("-"))
}

/// Runs `work` inside `span` (see [`event_span`]), so that every line it logs carries the ids.
pub async fn in_span<F: Future>(span: tracing::Span, work: F) -> F::Output {
    work.instrument(span).await
}

/// The result of work under a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leased<T> {
    /// The lease was taken and the work ran; its result.
    Done(T),
    /// Another owner holds a live lease; nothing ran.
    Held {
        /// The holder.
        owner: String,
        /// When its lease lapses (ms since the epoch).
        expires_at_ms: u64,
    },
}

/// How long to wait for a lease another owner holds before answering [`Leased::Held`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// The longest wait in all.
    pub up_to: Duration,
    /// The pause between two attempts.
    pub every: Duration,
    /// Only a holder whose owner starts with this is waited for (`None`: any holder).
    pub holder_prefix: Option<&'static str>,
}

impl Patience {
    /// No wait: a held lease is answered at once.
    pub const NONE: Patience = Patience {
        up_to: Duration::ZERO,
        every: Duration::ZERO,
        holder_prefix: None,
    };

    /// Waits for any holder, up to `up_to`, trying again every `every`.
    pub fn up_to(up_to: Duration, every: Duration) -> Self {
        Patience {
            up_to,
            every,
            holder_prefix: None,
        }
    }

    /// Waits only for holders whose owner starts with `prefix`.
    pub fn for_holders(self, prefix: &'static str) -> Self {
        Patience {
            holder_prefix: Some(prefix),
            ..self
        }
    }

    fn waits_for(&self, holder: &str) -> bool {
        self.holder_prefix.is_none_or(|p| holder.starts_with(p))
    }
}

/// The lease a piece of work runs under: `leases/<scope>/<id>`, taken by `owner` for `ttl`.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTerms<'a> {
    /// The kind of thing leased (`"spot"`, `"rollback"`, …).
    pub scope: &'a str,
    /// The thing itself (an instance, a workload, a plan).
    pub id: &'a str,
    /// Who takes it.
    pub owner: &'a str,
    /// How long it stands unless renewed ([`KeptLease::keep_while`]).
    pub ttl: Duration,
    /// How long to wait for another holder.
    pub patience: Patience,
}

/// Takes the lease `leases/<scope>/<id>` for `owner`, runs `work`, and releases the lease on
/// every path.
///
/// The one release policy: the work's own error wins; when the work succeeded, a failed release
/// is the error (the caller's retry finds the work done, and the lease lapses after `ttl`).
pub async fn with_lease<T, F, Fut>(
    store: &StateStore,
    scope: &str,
    id: &str,
    owner: &str,
    ttl: Duration,
    work: F,
) -> Result<Leased<T>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let terms = LeaseTerms {
        scope,
        id,
        owner,
        ttl,
        patience: Patience::NONE,
    };
    with_kept_lease(store, terms, |_| work()).await
}

/// [`with_lease`] for work that waits for the lease ([`Patience`]), checks it before its writes
/// or renews it while it runs: the work is handed the [`KeptLease`]. The same release policy.
pub async fn with_kept_lease<T, F, Fut>(
    store: &StateStore,
    terms: LeaseTerms<'_>,
    work: F,
) -> Result<Leased<T>>
where
    F: FnOnce(Arc<KeptLease>) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let lease = match acquire(store, &terms).await? {
        Acquisition::Acquired(lease) => Arc::new(KeptLease::new(store.clone(), lease, terms.ttl)),
        Acquisition::Held {
            owner,
            expires_at_ms,
        } => {
            return Ok(Leased::Held {
                owner,
                expires_at_ms,
            })
        }
    };
    let result = work(lease.clone()).await;
    let released = lease.release().await;
    match (result, released) {
        (Err(err), Err(release)) => {
            tracing::warn!(lease = %lease.key(), error = %release, "lease not released after failed work; it lapses after its ttl");
            Err(err)
        }
        (Err(err), Ok(())) => Err(err),
        (Ok(_), Err(release)) => Err(release),
        (Ok(value), Ok(())) => Ok(Leased::Done(value)),
    }
}

/// Takes the lease, waiting for a holder as `terms.patience` allows.
async fn acquire(store: &StateStore, terms: &LeaseTerms<'_>) -> Result<Acquisition> {
    let mut waited = Duration::ZERO;
    loop {
        let got = store
            .acquire_lease(terms.scope, terms.id, terms.owner, terms.ttl)
            .await?;
        match &got {
            Acquisition::Held { owner, .. }
                if terms.patience.waits_for(owner) && waited < terms.patience.up_to =>
            {
                tracing::info!(holder = %owner, lease = %format!("{}/{}", terms.scope, terms.id), "lease held by another invocation; waiting");
                tokio::time::sleep(terms.patience.every).await;
                waited += terms.patience.every;
            }
            _ => return Ok(got),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::fakes::object_store::{MemoryObjects, ObjectFault};

    fn store() -> (Arc<MemoryObjects>, StateStore) {
        let objects = Arc::new(MemoryObjects::new("state"));
        let store = StateStore::over(objects.clone(), Arc::new(ManualClock::at(5_000)));
        (objects, store)
    }

    #[test]
    fn a_repeat_is_marked_and_an_ignored_event_says_why() {
        assert_eq!(
            mark_repeat(Idempotent::Repeat(json!({"outcome": "acted"}))),
            json!({"outcome": "acted", "repeat": true})
        );
        assert_eq!(
            mark_repeat(Idempotent::Fresh(json!({"outcome": "acted"}))),
            json!({"outcome": "acted"})
        );
        assert_eq!(
            Outcome::Ignored("nothing to do".into()).into_value(),
            json!({"outcome": "ignored", "reason": "nothing to do"})
        );
        assert_eq!(invalid_event("x").error_type(), "InvalidEvent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_released_after_work_that_failed() {
        // GIVEN a free lease
        let (_, store) = store();
        let ttl = Duration::from_secs(60);
        // WHEN work under it fails
        let failed = with_lease(&store, "s", "x", "a", ttl, || async {
            Err::<(), _>(Error::Retryable("boom".into()))
        })
        .await;
        // THEN the work's error is returned, and another owner can take the lease at once
        assert!(matches!(failed, Err(Error::Retryable(_))));
        let next = with_lease(&store, "s", "x", "b", ttl, || async { Ok(7) })
            .await
            .unwrap();
        assert_eq!(next, Leased::Done(7));
    }

    #[tokio::test(start_paused = true)]
    async fn work_under_a_held_lease_does_not_run() {
        // GIVEN a lease another owner holds
        let (objects, store) = store();
        let ttl = Duration::from_secs(60);
        store.acquire_lease("s", "x", "a", ttl).await.unwrap();
        let writes = objects.writes();
        // WHEN another owner asks to work under it
        let mut ran = false;
        let held = with_lease(&store, "s", "x", "b", ttl, || {
            ran = true;
            async { Ok(()) }
        })
        .await
        .unwrap();
        // THEN nothing ran, the holder is named, and only the refused create was sent
        assert!(!ran);
        assert!(matches!(held, Leased::Held { ref owner, .. } if owner == "a"));
        assert_eq!(objects.writes(), writes + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_release_after_successful_work_is_the_error() {
        // GIVEN work that succeeds, and a release that is throttled
        let (objects, store) = store();
        let ttl = Duration::from_secs(60);
        // WHEN the work runs under the lease
        let result = with_lease(&store, "s", "x", "a", ttl, || async {
            objects.inject(ObjectFault::Throttled);
            Ok(1)
        })
        .await;
        // THEN the release's error is returned
        assert!(matches!(result, Err(Error::Retryable(_))), "{result:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_patient_taker_waits_for_the_holder_it_may_wait_for_and_not_for_others() {
        // GIVEN a lease the schedule holds for two seconds more
        let (_, store) = store();
        let ttl = Duration::from_secs(60);
        let held = store
            .acquire_lease("s", "x", "schedule:1", ttl)
            .await
            .unwrap();
        let Acquisition::Acquired(held) = held else {
            panic!("free lease not acquired")
        };
        let releaser = {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                store.release_lease(held).await.unwrap();
            })
        };
        let terms = |owner, patience| LeaseTerms {
            scope: "s",
            id: "x",
            owner,
            ttl,
            patience,
        };
        let patient = Patience::up_to(Duration::from_secs(5), Duration::from_millis(200));
        // WHEN a taker that waits only for other holders asks
        let other = with_kept_lease(
            &store,
            terms("a", patient.for_holders("cron:")),
            |_| async { Ok(()) },
        )
        .await
        .unwrap();
        // THEN it is answered at once with the holder
        assert!(matches!(other, Leased::Held { ref owner, .. } if owner == "schedule:1"));
        // WHEN a taker that waits for the schedule asks
        let waited = with_kept_lease(
            &store,
            terms("b", patient.for_holders("schedule:")),
            |lease| async move {
                lease.check().await?;
                Ok(lease.key().to_string())
            },
        )
        .await
        .unwrap();
        // THEN it ran once the holder let go, under the lease it was handed
        assert_eq!(waited, Leased::Done("leases/s/x".to_string()));
        releaser.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn patience_runs_out_on_a_holder_that_keeps_its_lease() {
        // GIVEN a lease another owner keeps
        let (_, store) = store();
        let ttl = Duration::from_secs(60);
        store.acquire_lease("s", "x", "a", ttl).await.unwrap();
        // WHEN a taker waits up to one second
        let terms = LeaseTerms {
            scope: "s",
            id: "x",
            owner: "b",
            ttl,
            patience: Patience::up_to(Duration::from_secs(1), Duration::from_millis(250)),
        };
        let started = tokio::time::Instant::now();
        let held = with_kept_lease(&store, terms, |_| async { Ok(()) })
            .await
            .unwrap();
        // THEN it gives up after its patience, naming the holder
        assert!(matches!(held, Leased::Held { ref owner, .. } if owner == "a"));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
