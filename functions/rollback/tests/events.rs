//! The event files in `events/rollback/` (what `make invoke` sends) read as their names say, and
//! the signed webhook requests verify at their own time with the sandbox secrets — and not
//! after the 5-minute window, nor with a byte changed.

use std::path::PathBuf;

use breakwater::events::{Routes, Trigger};
use rollback::chat::webhook::{verify_pagerduty, verify_slack, HttpRequest};
use rollback::{alarm_from_action, alarm_from_eventbridge, alarm_from_sns};
use secrecy::SecretString;
use serde_json::Value;

const SIGNED_AT_MS: u64 = 1_795_406_400_000; // 2026-11-23T04:00:00Z

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/rollback")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn routes() -> Routes {
    Routes {
        function: "rollback",
        eventbridge: &[
            ("aws.cloudwatch", "CloudWatch Alarm State Change"),
            ("aws.events", "Scheduled Event"),
        ],
        alarm_actions: true,
        sns: true,
        commands: &[
            "rollback",
            "verify",
            "status",
            rollback::chat::HANDOFF_COMMAND,
        ],
        account: None,
        regions: vec!["us-east-1".into()],
    }
}

#[test]
fn the_alarm_shapes_name_the_same_transition() {
    let eb = match routes().route(load("alarm-state-change.json")).unwrap() {
        Trigger::EventBridge(e) => {
            alarm_from_eventbridge(&e.detail, e.resources.as_ref().and_then(|r| r.first())).unwrap()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!((eb.previous.as_str(), eb.state.as_str()), ("OK", "ALARM"));
    let action = alarm_from_action(&load("alarm-action.json")).unwrap();
    let sns = load("sns-alarm.json");
    let message: Value =
        serde_json::from_str(sns["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    let from_sns = alarm_from_sns(&message).unwrap();
    assert_eq!(
        (eb.name.as_str(), eb.since_ms, eb.arn.clone()),
        (action.name.as_str(), action.since_ms, action.arn.clone())
    );
    assert_eq!((eb.since_ms, eb.arn), (from_sns.since_ms, from_sns.arn));
    assert_eq!(eb.since_ms, SIGNED_AT_MS);
    let malformed = load("malformed-alarm.json");
    assert!(alarm_from_eventbridge(&malformed["detail"], None).is_err());
    for name in [
        "alarm-state-change-ok.json",
        "command-rollback.json",
        "command-rollback-to-revision.json",
        "command-status.json",
        "command-verify.json",
        "schedule.json",
        "sns-command.json",
        "webhook-handoff.json",
    ] {
        routes().route(load(name)).unwrap();
    }
}

#[test]
fn the_signed_requests_verify_only_at_their_time_and_unchanged() {
    let slack = SecretString::from("sandbox-slack-signing-secret");
    let request = HttpRequest::from_event(&load("slack-command.json")).unwrap();
    let signature = verify_slack(&slack, &request, SIGNED_AT_MS).unwrap();
    // The hand-off file is what this request queues for the asynchronous invocation.
    let handoff = load("webhook-handoff.json");
    assert_eq!(
        handoff["id"],
        rollback::chat::webhook::request_id("slack", &signature).as_str()
    );
    assert!(verify_slack(&slack, &request, SIGNED_AT_MS + 6 * 60_000).is_err());
    let forged = HttpRequest::from_event(&load("slack-command-forged.json")).unwrap();
    assert!(verify_slack(&slack, &forged, SIGNED_AT_MS).is_err());
    let pagerduty = SecretString::from("sandbox-pagerduty-secret");
    let request = HttpRequest::from_event(&load("pagerduty-note.json")).unwrap();
    let (id, _) = verify_pagerduty(&pagerduty, &request, SIGNED_AT_MS).unwrap();
    assert_eq!(id, "01DEN8XXXRCTS1E1K6FR2Z3BNE");
    assert!(verify_pagerduty(&slack, &request, SIGNED_AT_MS).is_err());
}
