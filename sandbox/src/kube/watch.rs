//! Watches (`GET …?watch=true`), as the API server streams them
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes>):
//! one JSON event per line, `{"type": "ADDED" | "MODIFIED" | "DELETED" | "ERROR", "object": …}`.
//!
//! - Without a `resourceVersion` (the server's "Get State and Start at Most Recent") or with
//!   `"0"` ("Start at Any") the watch starts with an `ADDED` event for every object that matches;
//!   with one, it sends what changed after it.
//! - A `resourceVersion` older than the removals the emulator keeps ends in an `ERROR` event with
//!   a 410 `Expired` status, as a compacted one does on the real server, and the client lists
//!   again.
//! - The server may end a watch at any time and the client watches again from the last
//!   resourceVersion it saw ("Watch bookmarks" and the client libraries' reflectors rely on it).
//!   The emulator ends each watch after the first batch of events, or at `timeoutSeconds` (on
//!   the emulator's clock or the wall clock, whichever comes first), so its answer is one body.
//! - Not kept: the intermediate states of an object changed twice since the watch's
//!   resourceVersion (the emulator has only the current state: one `MODIFIED` with it), and
//!   `ADDED` versus `MODIFIED` for an object created after that resourceVersion but before the
//!   watch was asked (reported `MODIFIED`).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::api::target;
use super::store::{ApiError, ResourceKind};
use super::{lock, State};
use crate::loopback::query_value;

/// How long a waiting watch sleeps when nothing changes before it looks at its timeout again.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// The emulator's default when a watch names no `timeoutSeconds` (the real server's is its
/// `--min-request-timeout`, 1800 s, randomised; shorter here, so that a watch whose client went
/// away does not keep the emulator's clock ticking for half an hour).
const DEFAULT_TIMEOUT_S: u64 = 300;

fn rv_of(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn event(kind: &str, object: &Value) -> String {
    json!({"type": kind, "object": object}).to_string()
}

/// A watch the server accepted.
pub(super) enum Watch {
    /// Its events are known at once.
    Ready(String),
    /// It waits for changes after resourceVersion `after`.
    Waiting {
        kind: &'static ResourceKind,
        namespace: Option<String>,
        labels: Option<String>,
        fields: Option<String>,
        after: u64,
        /// The names that matched when the watch began.
        present: BTreeSet<String>,
        timeout_s: u64,
    },
}

/// Accepts (or refuses) a watch on `path?query`: what it asks is checked, and the store read, at
/// once; [`Watch::events`] then waits.
pub(super) fn open(state: &State, path: &str, query: &str) -> Result<Watch, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (kind, namespace, tail) = target(&segments)?;
    if !tail.is_empty() {
        return Err(ApiError::bad_request(
            "a watch is asked on a collection; select one object with fieldSelector=metadata.name=…",
        ));
    }
    let labels = query_value(query, "labelSelector");
    let fields = query_value(query, "fieldSelector");
    let timeout_s = query_value(query, "timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(DEFAULT_TIMEOUT_S);
    let asked = query_value(query, "resourceVersion")
        .filter(|rv| !rv.is_empty() && rv != "0")
        .map(|rv| {
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))
        })
        .transpose()?;
    let cluster = state.cluster();
    let items = cluster.list(kind, namespace, labels.as_deref(), fields.as_deref())?;
    let present: BTreeSet<String> = items.iter().map(|o| name_of(o).to_string()).collect();
    let after = match asked {
        Some(after) => after,
        // Start at the current state: every object, ADDED.
        None if !items.is_empty() => {
            let lines: Vec<String> = items.iter().map(|o| event("ADDED", o)).collect();
            return Ok(Watch::Ready(lines.join("\n") + "\n"));
        }
        None => cluster.resource_version().parse().unwrap_or(0),
    };
    Ok(Watch::Waiting {
        kind,
        namespace: namespace.map(str::to_string),
        labels,
        fields,
        after,
        present,
        timeout_s,
    })
}

impl Watch {
    /// The events, one per line: the first batch of changes, or none at the timeout.
    pub(super) async fn events(self, state: &State) -> Result<String, ApiError> {
        match self {
            Watch::Ready(events) => Ok(events),
            Watch::Waiting {
                kind,
                namespace,
                labels,
                fields,
                after,
                present,
                timeout_s,
            } => {
                let selection = (
                    kind,
                    namespace.as_deref(),
                    labels.as_deref(),
                    fields.as_deref(),
                );
                changes(state, selection, after, &present, Instant::now(), timeout_s).await
            }
        }
    }
}

type Selection<'a> = (
    &'static ResourceKind,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

/// Waits for changes after resourceVersion `after` (`present`: the names that matched when the
/// watch began), or for the timeout.
async fn changes(
    state: &State,
    (kind, namespace, labels, fields): Selection<'_>,
    after: u64,
    present: &BTreeSet<String>,
    started: Instant,
    timeout_s: u64,
) -> Result<String, ApiError> {
    let started_ms = state.now_ms();
    let mut moved = state.moved.subscribe();
    let _waiting = Waiting::on(state);
    loop {
        // The clock is kept moving by the emulator's ticker while this watch waits.
        let (items, removed) = {
            let cluster = lock(&state.cluster);
            (
                cluster.list(kind, namespace, labels, fields)?,
                cluster.removed_since(kind, namespace, labels, fields, after)?,
            )
        };
        let Some(removed) = removed else {
            let expired = ApiError {
                code: 410,
                reason: "Expired",
                message: format!("too old resource version: {after}"),
                details: None,
            };
            return Ok(event("ERROR", &expired.status()) + "\n");
        };
        let mut events: Vec<(u64, String)> = items
            .iter()
            .filter(|o| rv_of(o) > after)
            .map(|o| {
                let kind = if present.contains(name_of(o)) {
                    "MODIFIED"
                } else {
                    "ADDED"
                };
                (rv_of(o), event(kind, o))
            })
            .collect();
        events.extend(
            removed
                .iter()
                .map(|obj| (rv_of(obj), event("DELETED", obj))),
        );
        if !events.is_empty() {
            events.sort_by_key(|(rv, _)| *rv);
            let lines: Vec<String> = events.into_iter().map(|(_, line)| line).collect();
            return Ok(lines.join("\n") + "\n");
        }
        let emulated_s = state.now_ms().saturating_sub(started_ms) / 1000;
        if started.elapsed().as_secs() >= timeout_s || emulated_s >= timeout_s {
            return Ok(String::new());
        }
        // Until the store changes (or a while, to look at the timeout again).
        let _ = tokio::time::timeout(LOOK_AGAIN, moved.changed()).await;
    }
}

/// A waiting watch, counted while it lives.
struct Waiting<'a>(&'a State);

impl<'a> Waiting<'a> {
    fn on(state: &'a State) -> Self {
        state.watching.fetch_add(1, Ordering::SeqCst);
        Waiting(state)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.watching.fetch_sub(1, Ordering::SeqCst);
    }
}
