//! One invocation policy for every function: bad input is an `InvalidEvent` error, outcomes are
//! typed, a lease is held around work and released on every path, a repeat delivery is marked,
//! and the event id rides on every log line through the invocation's span.
//!
//! The span is attached with `Instrument` rather than `span.enter()`: a guard held across an
//! `.await` leaks the span into whatever the executor polls next
//! (https://docs.rs/tracing/latest/tracing/struct.Span.html#in-asynchronous-code).

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::state::{Acquisition, Idempotent, StateStore};

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
    let lease = match store.acquire_lease(scope, id, owner, ttl).await? {
        Acquisition::Acquired(lease) => lease,
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
    let key = lease.key.clone();
    let result = work().await;
    let released = store.release_lease(lease).await;
    match (result, released) {
        (Err(err), Err(release)) => {
            tracing::warn!(lease = %key, error = %release, "lease not released after failed work; it lapses after its ttl");
            Err(err)
        }
        (Err(err), Ok(())) => Err(err),
        (Ok(_), Err(release)) => Err(release),
        (Ok(value), Ok(())) => Ok(Leased::Done(value)),
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
}
