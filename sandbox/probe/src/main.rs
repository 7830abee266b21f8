//! probe: a minimal real Lambda on the shared crate, used to test the sandbox end to end. For the
//! command `{"command": "record", "id": "...", "key": "...", "value": ...}` it writes
//! `probe/<key>.json` to the state bucket with a compare-and-swap and publishes a notification,
//! exactly once per event id.

use breakwater::config::Env;
use breakwater::events::{Routes, Trigger};
use breakwater::metrics::{Metrics, Unit};
use breakwater::notify::Notification;
use breakwater::{Error, Toolkit};
use lambda_runtime::{service_fn, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const ROUTES: Routes = Routes {
    function: "probe",
    eventbridge: &[],
    alarm_actions: false,
    sns: false,
    commands: &["record"],
    account: None,
    regions: Vec::new(),
};

/// What the probe stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProbeRecord {
    key: String,
    value: Value,
    writes: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    breakwater::logging::init();
    let toolkit = Toolkit::from_env(&Env::from_process())
        .await
        .map_err(breakwater::lambda::init_failed)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handle(&toolkit, event)
    }))
    .await
}

async fn handle(toolkit: &Toolkit, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let started = std::time::Instant::now();
    let result = decide_and_apply(toolkit, event).await;
    let outcome = match &result {
        Ok(v) => v["outcome"].as_str().unwrap_or("acted").to_string(),
        Err(e) => e.error_type().to_string(),
    };
    let mut metrics = Metrics::new("probe", &outcome);
    metrics.add(
        "Duration",
        started.elapsed().as_secs_f64() * 1000.0,
        Unit::Milliseconds,
    );
    metrics.emit(toolkit.store.clock().now_ms());
    if let Err(err) = &result {
        tracing::error!(error_type = err.error_type(), error = %err, "refused");
    }
    result
}

async fn decide_and_apply(toolkit: &Toolkit, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let trigger = ROUTES.route(event.payload)?;
    let Trigger::Command { body, .. } = trigger else {
        return Err(Error::InvalidEvent("probe takes only commands".into()));
    };
    let id = body["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::InvalidEvent("id: a non-empty string is required".into()))?;
    let key = body["key"]
        .as_str()
        .ok_or_else(|| Error::InvalidEvent("key: a string is required".into()))?;
    if key.is_empty()
        || key.len() > 64
        || !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(Error::InvalidEvent(format!(
            "key: {key:?} is not 1-64 of [a-z0-9-]"
        )));
    }
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    let span = tracing::info_span!("probe", event_id = %id, key = %key);
    let _entered = span.enter();
    if toolkit.settings.dry_run {
        tracing::info!("dry run: would write probe/{key}.json");
        return Ok(json!({"outcome": "dry-run", "key": key}));
    }
    let owner = format!(
        "{}:{}",
        toolkit.settings.function_name, event.context.request_id
    );
    let store = &toolkit.store;
    let done = store
        .once(
            "probe",
            id,
            &owner,
            toolkit.settings.idempotency_ttl,
            || async {
                let record_key = format!("probe/{key}.json");
                let writes = loop {
                    let current = store.get::<ProbeRecord>(&record_key).await?;
                    let writes = current.as_ref().map_or(0, |c| c.value.writes) + 1;
                    let next = ProbeRecord {
                        key: key.to_string(),
                        value: value.clone(),
                        writes,
                    };
                    let written = match &current {
                        None => store
                            .create(&record_key, &next)
                            .await
                            .map(|etag| etag.is_some()),
                        Some(c) => match store.replace(&record_key, &next, &c.etag).await {
                            Ok(_) => Ok(true),
                            Err(Error::Conflict(_)) => Ok(false),
                            Err(e) => Err(e),
                        },
                    };
                    if written? {
                        break writes;
                    }
                };
                let notification = Notification::new(
                    format!("probe recorded {key}"),
                    format!("The probe wrote {record_key} (write number {writes})."),
                )
                .attribute("function", "probe")
                .attribute("key", key)
                .attribute("event_id", id);
                let message_id = toolkit.notifier.publish(&notification).await?;
                tracing::info!(writes, "recorded");
                Ok(json!({"key": key, "writes": writes, "message_id": message_id}))
            },
        )
        .await?;
    let repeat = done.is_repeat();
    Ok(json!({"outcome": if repeat { "repeat" } else { "acted" }, "result": done.into_inner()}))
}
