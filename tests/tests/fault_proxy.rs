//! The fault proxy's rules against real SDK traffic: 5xx and throttling are retried by the SDK
//! until they run out, latency delays, rules scoped to another region or with zero probability
//! never fire, and exhausted retries surface as `Retryable`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use breakwater::clock::SystemClock;
use breakwater::state::StateStore;
use breakwater::Error;
use breakwater_sandbox::proxy::{Fault, FaultProxy, Rule};
use serde_json::json;

use crate::common::{aws, unique};

crate::common::moto_server!();

async fn store_through(proxy: &FaultProxy) -> StateStore {
    let direct = aws(&moto().endpoint(), "us-east-1").await;
    let bucket = unique("proxy");
    direct
        .s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let proxied = aws(&proxy.endpoint(), "us-east-1").await;
    StateStore::new(proxied.s3(), bucket, Arc::new(SystemClock))
}

#[tokio::test]
async fn server_errors_and_latency_are_injected_and_survived() {
    let proxy = FaultProxy::start(&moto().endpoint(), 1).await.unwrap();
    let store = store_through(&proxy).await;
    proxy.add_rule(
        Rule::always(Fault::ServerError)
            .service("s3")
            .operation("PutObject")
            .times(2),
    );
    proxy.add_rule(
        Rule::always(Fault::Latency(Duration::from_millis(300)))
            .operation("GetObject")
            .times(1),
    );
    // Rules that must never fire.
    proxy.add_rule(Rule::always(Fault::Drop).region("eu-west-1"));
    proxy.add_rule(Rule::always(Fault::Drop).probability(0.0));

    store
        .create("k.json", &json!({"v": 1}))
        .await
        .unwrap()
        .expect("created after two 500s");
    let started = Instant::now();
    let read = store
        .get::<serde_json::Value>("k.json")
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(read.value, json!({"v": 1}));

    let statuses: Vec<(String, Option<u16>, Option<String>)> = proxy
        .calls()
        .into_iter()
        .map(|c| (c.operation, c.status, c.fault))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (
                "PutObject".to_string(),
                Some(500),
                Some("ServerError".to_string())
            ),
            (
                "PutObject".to_string(),
                Some(500),
                Some("ServerError".to_string())
            ),
            ("PutObject".to_string(), Some(200), None),
            (
                "GetObject".to_string(),
                Some(200),
                Some("Latency(300ms)".to_string())
            ),
        ]
    );
}

#[tokio::test]
async fn throttling_that_outlasts_the_retries_is_a_retryable_error_and_writes_nothing() {
    let proxy = FaultProxy::start(&moto().endpoint(), 2).await.unwrap();
    let store = store_through(&proxy).await;
    proxy.add_rule(
        Rule::always(Fault::Throttle)
            .service("s3")
            .operation("PutObject"),
    );
    let result = store.create("never.json", &json!({})).await;
    assert!(
        matches!(result, Err(Error::Retryable(ref m)) if m.contains("SlowDown")),
        "{result:?}"
    );
    // Every attempt was throttled, none reached moto.
    let calls = proxy.calls();
    assert!(
        calls.len() >= 2 && calls.iter().all(|c| c.status == Some(503)),
        "{calls:#?}"
    );
    proxy.clear_rules();
    assert_eq!(
        store.get::<serde_json::Value>("never.json").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn query_and_json_protocol_services_get_their_own_throttling_shape() {
    let proxy = FaultProxy::start(&moto().endpoint(), 3).await.unwrap();
    let aws = aws(&proxy.endpoint(), "us-east-1").await;
    proxy.add_rule(Rule::always(Fault::Throttle).service("sns"));
    let err = aws.sns().list_topics().send().await.expect_err("throttled");
    assert_eq!(
        Error::from_sdk("list topics", &err).error_type(),
        "Retryable"
    );
    let text = breakwater::aws::describe_sdk_error(&err);
    assert!(text.contains("Throttling"), "{text}");
}

#[tokio::test]
async fn cloudwatch_throttling_is_answered_in_cbor_and_retried_by_the_sdk() {
    // CloudWatch speaks Smithy RPC v2 CBOR: a throttle the SDK cannot parse would surface as
    // "unknown code" instead of being retried.
    let proxy = FaultProxy::start(&moto().endpoint(), 3).await.unwrap();
    proxy.add_rule(
        Rule::always(Fault::Throttle)
            .operation("DescribeAlarms")
            .times(2),
    );
    let proxied = aws(&proxy.endpoint(), "us-east-1").await;
    let answer = proxied.cloudwatch().describe_alarms().send().await;
    assert!(answer.is_ok(), "{answer:?}");
    assert_throttled_twice_then_answered(&proxy, "DescribeAlarms", 400);
}

/// What the proxy saw of a call throttled twice and then answered: three attempts of `operation`,
/// the first two refused with `status`.
fn assert_throttled_twice_then_answered(proxy: &FaultProxy, operation: &str, status: u16) {
    let calls = proxy.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(calls.iter().all(|c| c.operation == operation));
    assert_eq!(
        calls.iter().filter(|c| c.status == Some(status)).count(),
        2,
        "{calls:#?}"
    );
}

#[tokio::test]
async fn ec2_throttling_is_answered_as_ec2_does_and_retried_by_the_sdk() {
    // EC2 speaks its own query protocol: `<Response><Errors>` and 503 RequestLimitExceeded. A
    // throttle in another service's shape would surface as "unknown code" and not be retried.
    let proxy = FaultProxy::start(&moto().endpoint(), 5).await.unwrap();
    proxy.add_rule(
        Rule::always(Fault::Throttle)
            .operation("DescribeInstances")
            .times(2),
    );
    let proxied = aws(&proxy.endpoint(), "us-east-1").await;
    let answer = proxied.ec2().describe_instances().send().await;
    assert!(answer.is_ok(), "{answer:?}");
    assert_throttled_twice_then_answered(&proxy, "DescribeInstances", 503);

    // The SDK reads the code of an error it is not retrying: the shape is EC2's.
    proxy.add_rule(Rule::always(Fault::Throttle).operation("DescribeInstances"));
    let err = proxied
        .ec2()
        .describe_instances()
        .send()
        .await
        .expect_err("throttled until the retries run out");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&err),
        Some("RequestLimitExceeded"),
        "{err:?}"
    );
}
