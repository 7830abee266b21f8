//! A real compiled Lambda binary (the sandbox probe) run through the Runtime API emulator against
//! moto, through the fault proxy, with its effects checked in moto.

use std::time::Duration;

use breakwater_sandbox::proxy::{Fault, FaultProxy, Rule};
use breakwater_sandbox::runtime::FunctionProcess;
use breakwater_sandbox::seed::{read_notifications, seed, Estate};
use serde_json::json;

use crate::common::{aws, read_object, unique};

crate::common::moto_server!();

async fn estate() -> Estate {
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    seed(
        aws.config(),
        "us-east-1",
        "us-west-2",
        &format!("-{}", unique("p")),
    )
    .await
    .unwrap()
}

async fn start_probe(endpoint: &str, estate: &Estate, extra: &[(&str, &str)]) -> FunctionProcess {
    let binary = breakwater_sandbox::bin_dir("debug").join("probe");
    let mut env: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.into()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        (
            "BREAKWATER_STATE_BUCKET".into(),
            estate.primary.state_bucket.clone(),
        ),
        (
            "BREAKWATER_TOPIC_ARN".into(),
            estate.primary.topic_arn.clone(),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    FunctionProcess::start(&binary, "probe", "us-east-1", &env)
        .await
        .expect("probe starts (make test builds it first)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_binary_acts_once_through_injected_throttling_and_dropped_connections() {
    // GIVEN the estate, and a fault proxy in front of moto that throttles and drops S3 and SNS calls
    let estate = estate().await;
    let proxy = FaultProxy::start(&moto().endpoint(), 7).await.unwrap();
    proxy.add_rule(
        Rule::always(Fault::Throttle)
            .service("s3")
            .operation("PutObject")
            .times(2),
    );
    proxy.add_rule(
        Rule::always(Fault::Drop)
            .service("s3")
            .operation("GetObject")
            .times(1),
    );
    proxy.add_rule(
        Rule::always(Fault::Throttle)
            .service("sns")
            .operation("Publish")
            .times(1),
    );
    let mut probe = start_probe(&proxy.endpoint(), &estate, &[]).await;
    let init = probe.wait_init().await.unwrap();

    // WHEN the same event is delivered twice
    let event = json!({"command": "record", "id": "evt-1", "key": "estate", "value": {"ok": true}});
    let first = probe.invoke(&event).await.unwrap();
    let second = probe.invoke(&event).await.unwrap();

    // THEN the first acted despite the faults, the second returned the stored result
    let first_response = first.outcome.clone().expect("first invocation succeeds");
    assert_eq!(first_response["outcome"], "acted", "{first_response}");
    assert_eq!(first_response["result"]["writes"], 1);
    let second_response = second.outcome.clone().expect("second invocation succeeds");
    assert_eq!(second_response["outcome"], "repeat");
    assert_eq!(second_response["result"], first_response["result"]);
    // AND the faults really happened
    let calls = proxy.calls();
    let mut injected: Vec<(String, String)> = calls
        .iter()
        .filter_map(|c| c.fault.clone().map(|f| (c.operation.clone(), f)))
        .collect();
    injected.sort();
    let expected = [
        ("GetObject", "Drop"),
        ("Publish", "Throttle"),
        ("PutObject", "Throttle"),
        ("PutObject", "Throttle"),
    ];
    assert_eq!(
        injected,
        expected.map(|(o, f)| (o.to_string(), f.to_string())),
        "{calls:#?}"
    );
    assert_eq!(proxy.faults_injected(), 4, "{calls:#?}");
    // AND the effect in moto is exactly one write and one notification
    let record = read_object(moto(), &estate.primary.state_bucket, "probe/estate.json")
        .await
        .expect("record in moto");
    assert_eq!(record["data"]["writes"], 1);
    assert_eq!(record["data"]["value"], json!({"ok": true}));
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let notes = read_notifications(aws.config(), "us-east-1", &estate.primary.queue_url, 2)
        .await
        .unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        notes[0].attributes.get("event_id").map(String::as_str),
        Some("evt-1")
    );
    // AND the figures were measured, and every log line of an invocation names its request id
    assert!(init > Duration::ZERO && first.duration > Duration::ZERO);
    assert!(probe.peak_rss_kib().unwrap_or(0) > 0);
    let output = probe.output();
    let logs: Vec<serde_json::Value> = output
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("level").is_some())
        .collect();
    assert!(!logs.is_empty(), "{output:#?}");
    for line in &logs {
        let request_id = &line["function_request_id"];
        assert!(
            request_id == first.request_id.as_str() || request_id == second.request_id.as_str(),
            "{line}"
        );
    }
    // AND an EMF line was written per invocation
    assert_eq!(
        output
            .iter()
            .filter(|l| l.contains("\"CloudWatchMetrics\""))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_get_a_clear_error_and_change_nothing() {
    let estate = estate().await;
    let mut probe = start_probe(&moto().endpoint(), &estate, &[]).await;
    let cases = [
        (
            json!({"command": "record", "id": "e", "key": "Bad Key"}),
            "key",
        ),
        (json!({"command": "record", "key": "fine"}), "id"),
        (json!({"command": "erase"}), "no command"),
        (
            json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}),
            "does not handle",
        ),
        (json!([1, 2, 3]), "expected a JSON object"),
    ];
    for (event, expected) in cases {
        let invocation = probe.invoke(&event).await.unwrap();
        let err = invocation.outcome.expect_err("refused");
        assert_eq!(err.error_type, "InvalidEvent", "{event}");
        assert!(
            err.error_message.contains(expected),
            "{event}: {}",
            err.error_message
        );
    }
    // Truncated JSON never reaches the handler: the runtime refuses it, and the process lives on.
    let truncated = probe
        .invoke_raw(bytes::Bytes::from_static(b"{\"command\": \"rec"))
        .await
        .unwrap();
    assert!(truncated.outcome.is_err());
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let listed = aws
        .s3()
        .list_objects_v2()
        .bucket(&estate.primary.state_bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "{:?}", listed.contents());
    let notes = read_notifications(aws.config(), "us-east-1", &estate.primary.queue_url, 0)
        .await
        .unwrap();
    assert!(notes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_without_writing_and_bad_settings_fail_init_naming_the_variable() {
    let estate = estate().await;
    let mut probe = start_probe(
        &moto().endpoint(),
        &estate,
        &[("BREAKWATER_DRY_RUN", "true")],
    )
    .await;
    let invocation = probe
        .invoke(&json!({"command": "record", "id": "d-1", "key": "dry"}))
        .await
        .unwrap();
    assert_eq!(invocation.outcome.unwrap()["outcome"], "dry-run");
    assert_eq!(
        read_object(moto(), &estate.primary.state_bucket, "probe/dry.json").await,
        None
    );

    let mut broken = start_probe(
        &moto().endpoint(),
        &estate,
        &[("BREAKWATER_LEASE_SECONDS", "forever")],
    )
    .await;
    let err = broken.wait_init().await.expect_err("init fails");
    assert!(
        err.to_string().contains("BREAKWATER_LEASE_SECONDS"),
        "{err}"
    );
}
