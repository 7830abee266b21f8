//! Serving a handler on the Lambda runtime: every failure, at init or in an invocation, becomes
//! one JSON log line naming its stable error type before it is handed to Lambda.

use std::future::Future;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::clock::Clock;
use crate::control::unless_paused;
use crate::error::Error;
use crate::metrics::{Metrics, Unit};
use crate::Toolkit;

/// Logs an init failure (a bad setting names its variable) and hands it to the runtime.
pub fn init_failed(err: Error) -> lambda_runtime::Error {
    tracing::error!(error_type = err.error_type(), error = %err, "init failed");
    err.into()
}

/// Serves `handler(payload, request_id)` until the runtime stops. Every invocation first reads
/// the function's pause switch in `toolkit`'s state bucket and, when it stands, runs as a dry
/// run ([`crate::control::unless_paused`]). Every invocation is counted (`Breakwater` /
/// `Invocations` and `InvocationMilliseconds`, dimensions `Function` = `function` and `Outcome` =
/// the answer's `outcome`, or the error type): the dashboard's "taken and refused" per function.
pub async fn serve<F, Fut>(
    function: &'static str,
    toolkit: &Toolkit,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value, String) -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let started = std::time::Instant::now();
        // Boxed: the handlers' futures are deep enough to overflow the compiler's layout queries
        // when nested in the runtime's own; one allocation per invocation is nothing.
        let result = match foreign_account(&event.payload, &event.context.invoked_function_arn) {
            Some(err) => Err(err),
            // A Function URL request (the rollback webhook) keeps its HTTP answer (401 for a
            // bad signature, 503 for PagerDuty to retry): it only verifies and hands off, and
            // the hand-off's own invocation reads the pause.
            None if is_function_url(&event.payload) => {
                Box::pin(handler(event.payload, event.context.request_id)).await
            }
            None => {
                let work = handler(event.payload, event.context.request_id);
                Box::pin(unless_paused(toolkit, function, work)).await
            }
        };
        if let Err(err) = &result {
            tracing::error!(error_type = err.error_type(), error = %err, "invocation failed");
        }
        invocation_metrics(function, &result, started.elapsed())
            .emit(crate::clock::SystemClock.now_ms());
        result
    }))
    .await
}

fn invocation_metrics(
    function: &str,
    result: &Result<Value, Error>,
    took: std::time::Duration,
) -> Metrics {
    let outcome = match result {
        Ok(answer) => answer["outcome"].as_str().unwrap_or("answered"),
        Err(err) => err.error_type(),
    };
    let mut m = Metrics::new(function, outcome);
    m.add("Invocations", 1.0, Unit::Count).add(
        "InvocationMilliseconds",
        took.as_secs_f64() * 1000.0,
        Unit::Milliseconds,
    );
    m
}

/// Whether an invocation is a Lambda Function URL request (payload format 2.0: `rawPath` and
/// `requestContext.http`, "Invoking Lambda function URLs", Lambda Developer Guide).
pub fn is_function_url(payload: &Value) -> bool {
    payload
        .get("requestContext")
        .is_some_and(|c| c.get("http").is_some())
        && payload.get("rawPath").is_some()
}

/// An event that names another account than the one the function runs in (the account of its
/// own ARN): an EventBridge event's `account`, an alarm action's `accountId`. Refused before any
/// handler sees it, whatever the function; events that name no account pass.
fn foreign_account(payload: &Value, function_arn: &str) -> Option<Error> {
    let own = function_arn.split(':').nth(4).filter(|a| !a.is_empty())?;
    let named = payload
        .get("account")
        .or_else(|| payload.get("accountId"))
        .and_then(Value::as_str)?;
    (named != own).then(|| {
        Error::InvalidEvent(format!(
            "the event is from account {named:?}; this function runs in account {own}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:breakwater-spot";

    #[test]
    fn events_from_another_account_are_refused() {
        let eventbridge = json!({"detail-type": "x", "account": "210987654321"});
        let err = foreign_account(&eventbridge, ARN).expect("refused");
        assert!(err.to_string().contains("210987654321"), "{err}");
        let alarm = json!({"alarmData": {}, "accountId": "210987654321"});
        assert!(foreign_account(&alarm, ARN).is_some());
    }

    #[test]
    fn every_invocation_is_counted_under_its_outcome_or_error_type() {
        let took = std::time::Duration::from_millis(12);
        let doc =
            &invocation_metrics("spot", &Ok(json!({"outcome": "drained"})), took).documents(0)[0];
        assert_eq!(
            (doc["Function"].as_str(), doc["Outcome"].as_str()),
            (Some("spot"), Some("drained"))
        );
        assert_eq!(doc["Invocations"], 1.0);
        assert_eq!(doc["InvocationMilliseconds"], 12.0);
        let failed = Err(Error::InvalidEvent("x".into()));
        let doc = &invocation_metrics("spot", &failed, took).documents(0)[0];
        assert_eq!(doc["Outcome"], "InvalidEvent");
    }

    #[test]
    fn own_account_and_events_without_one_pass() {
        assert!(foreign_account(&json!({"account": "123456789012"}), ARN).is_none());
        assert!(foreign_account(&json!({"command": "status"}), ARN).is_none());
        assert!(foreign_account(&json!({"account": "210987654321"}), "").is_none());
    }
}
