//! The pause switch: an operator stops a function from acting, with no redeploy
//! (`breakwater pause spot`), and starts it again (`breakwater resume spot`).
//!
//! A pause is one record in the region's state bucket, `control/<function>/pause.json`, which the
//! function reads at the start of every invocation ([`unless_paused`]). While it stands the
//! invocation runs as a dry run (the same code path `BREAKWATER_DRY_RUN` takes: everything is read
//! and decided, nothing in AWS or Kubernetes is changed), logs and notifies what it would have
//! done, and answers `{"outcome": "paused", "would_have": …}`. The dry run is scoped to the one
//! invocation through a task-local, so a warm container acts again on the first invocation after
//! `resume`.
//!
//! A pause takes effect at the next invocation: an invocation already running (a failover
//! between its steps) is not stopped half way, which would leave the estate split.

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Settings;
use crate::error::Result;
use crate::notify::Notification;
use crate::state::{Idempotent, StateStore};
use crate::Toolkit;

/// The functions a pause can name, as their records and `breakwater pause` spell them.
pub const FUNCTIONS: [&str; 5] = ["budget", "tiering", "spot", "rollback", "failover"];

tokio::task_local! {
    /// Set for the length of one paused invocation.
    static PAUSED: bool;
}

/// The key of `function`'s pause record (the template grants each function `s3:GetObject` on
/// `control/<function>/*` only: a function cannot pause or resume itself or another).
pub fn pause_key(function: &str) -> String {
    format!("control/{function}/pause.json")
}

/// Who paused a function, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// The operator (the caller's ARN when the CLI could read it).
    pub by: String,
    /// When (RFC 3339).
    pub since: String,
    /// Why, in the operator's words.
    pub reason: String,
}

/// Whether this invocation changes nothing: `BREAKWATER_DRY_RUN`, or a pause read at its start.
pub fn dry_run(settings: &Settings) -> bool {
    settings.dry_run || paused()
}

/// Whether this invocation runs under a pause.
pub fn paused() -> bool {
    PAUSED.try_with(|paused| *paused).unwrap_or(false)
}

impl StateStore {
    /// The pause standing for `function`, if any.
    pub async fn pause_of(&self, function: &str) -> Result<Option<Pause>> {
        Ok(self
            .get::<Pause>(&pause_key(function))
            .await?
            .map(|v| v.value))
    }

    /// Pauses `function` (a second pause replaces the first: the latest reason stands).
    pub async fn pause(&self, function: &str, pause: &Pause) -> Result<()> {
        self.put(&pause_key(function), pause).await.map(|_| ())
    }

    /// Lifts `function`'s pause; `true` when there was one.
    pub async fn resume(&self, function: &str) -> Result<bool> {
        let had = self.pause_of(function).await?.is_some();
        self.delete(&pause_key(function)).await?;
        Ok(had)
    }
}

/// Runs `work` (one invocation of `function`) unless a pause stands; under a pause, runs it as a
/// dry run and answers what it would have done (see the module's documentation).
///
/// A pause that cannot be read fails the invocation (Lambda retries it): the function needs the
/// same bucket for its leases, and acting against an operator's pause is the worse mistake.
pub async fn unless_paused<F>(toolkit: &Toolkit, function: &str, work: F) -> Result<Value>
where
    F: Future<Output = Result<Value>>,
{
    let Some(pause) = toolkit.store.pause_of(function).await? else {
        return work.await;
    };
    let answer = PAUSED.scope(true, work).await?;
    let would_have = would_have(&answer);
    let message = format!("paused: {would_have}");
    tracing::warn!(
        function,
        paused_by = %pause.by,
        paused_since = %pause.since,
        would_have = %would_have,
        "paused: nothing was changed"
    );
    // A repeat delivery was answered (and notified) the first time; an event that needs nothing
    // (ignored, a status) is only logged; what it would have done is told once per pause (a
    // failover held by the pause would otherwise say so on every 1-minute tick).
    if answer["repeat"] != true && acts(&answer) {
        // Under the function's own idempotency prefix (its role may write there only;
        // failover's is `idempotency/failover-*`).
        let scope = if function == "failover" {
            "failover-paused"
        } else {
            function
        };
        let told = format!(
            "paused-{}-{:016x}",
            pause.since,
            fnv1a(would_have.as_bytes())
        );
        let ttl = toolkit.settings.idempotency_ttl;
        let first = toolkit
            .store
            .once(scope, &told, "pause", ttl, || async { Ok(()) })
            .await;
        if !matches!(first, Ok(Idempotent::Fresh(()))) {
            return Ok(paused_answer(pause, message, answer));
        }
        let note = Notification::new(
            format!("breakwater {function} is paused: nothing was changed"),
            format!(
                "{function} is paused (by {}, since {}: {}). Nothing was changed. It {would_have}.\n\
                 Resume it with `breakwater resume {function}`.",
                pause.by, pause.since, pause.reason
            ),
        )
        .attribute("function", function)
        .attribute("kind", "paused")
        .details(answer.clone());
        // The answer must not be lost to a notification that failed: it is logged.
        if let Err(e) = toolkit.notifier.publish(&note).await {
            tracing::warn!(error_type = e.error_type(), error = %e, "the pause notification did not go out");
        }
    }
    Ok(paused_answer(pause, message, answer))
}

fn paused_answer(pause: Pause, message: String, answer: Value) -> Value {
    json!({
        "outcome": "paused",
        "paused": pause,
        "message": message,
        "would_have": answer,
    })
}

/// FNV-1a: a short, stable key for what a paused invocation would have done.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether a dry-run answer names something the function would have changed.
fn acts(answer: &Value) -> bool {
    let mut lines = Vec::new();
    would_lines(answer, &mut lines);
    !lines.is_empty()
        || answer["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("dry-run") || o.starts_with("would"))
}

/// What a dry-run answer says would have happened, in one line: "would have acted: " and every
/// `would_<x>` field and "would …" sentence it carries, else "would have answered <outcome>".
pub fn would_have(answer: &Value) -> String {
    let mut lines = Vec::new();
    would_lines(answer, &mut lines);
    if lines.is_empty() {
        let outcome = answer["outcome"].as_str().unwrap_or("answered");
        return format!("would have answered {outcome:?}");
    }
    format!("would have acted: {}", lines.join("; "))
}

fn would_lines(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                match (name.strip_prefix("would_"), field) {
                    (Some(what), Value::Bool(true)) => out.push(what.replace('_', " ")),
                    (Some(what), Value::Array(items)) if !items.is_empty() => {
                        let items: Vec<String> = items.iter().map(plain).collect();
                        out.push(format!("{} {}", what.replace('_', " "), items.join(", ")));
                    }
                    (Some(what), Value::String(s)) => {
                        out.push(format!("{} {s}", what.replace('_', " ")))
                    }
                    (Some(_), _) => {}
                    (None, field) => would_lines(field, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| would_lines(v, out)),
        Value::String(s) => {
            if let Some(rest) = s.strip_prefix("would ") {
                out.push(rest.to_string());
            }
        }
        _ => {}
    }
}

fn plain(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::fakes::object_store::MemoryObjects;

    fn store() -> StateStore {
        StateStore::over(
            Arc::new(MemoryObjects::new("state")),
            Arc::new(ManualClock::at(0)),
        )
    }

    #[test]
    fn a_dry_run_answer_is_said_in_one_line() {
        let spot = json!({"outcome": "dry-run", "instance": "i-1", "would_cordon": true,
            "would_evict": ["shop/web-1", "shop/web-2"], "left_alone": []});
        assert_eq!(
            would_have(&spot),
            "would have acted: cordon; evict shop/web-1, shop/web-2"
        );
        let budget = json!({"outcome": "dry-run", "changed": ["would scale shop/batch to 0"]});
        assert_eq!(
            would_have(&budget),
            "would have acted: scale shop/batch to 0"
        );
        assert!(acts(&budget));
        let status = json!({"outcome": "status", "record": null});
        assert_eq!(would_have(&status), "would have answered \"status\"");
        assert!(!acts(&status));
    }

    #[tokio::test]
    async fn a_pause_is_read_written_and_lifted() {
        let store = store();
        assert_eq!(store.pause_of("spot").await.unwrap(), None);
        let pause = Pause {
            by: "arn:aws:iam::123456789012:user/ana".into(),
            since: "2026-12-01T10:00:00.000Z".into(),
            reason: "maintenance".into(),
        };
        store.pause("spot", &pause).await.unwrap();
        assert_eq!(store.pause_of("spot").await.unwrap(), Some(pause));
        assert_eq!(store.pause_of("budget").await.unwrap(), None);
        assert!(store.resume("spot").await.unwrap());
        assert!(!store.resume("spot").await.unwrap());
        assert_eq!(store.pause_of("spot").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_dry_run_lasts_one_invocation() {
        let settings = Settings {
            region: "us-east-1".into(),
            state_bucket: "state".into(),
            topic_arn: None,
            dry_run: false,
            lease_ttl: std::time::Duration::from_secs(60),
            idempotency_ttl: std::time::Duration::from_secs(900),
            function_name: "spot".into(),
        };
        assert!(!dry_run(&settings));
        let inside = PAUSED.scope(true, async { dry_run(&settings) }).await;
        assert!(inside);
        assert!(!dry_run(&settings));
    }
}
