//! The fault proxy's rules against real SDK and kube-rs traffic: 5xx and throttling are retried
//! by the SDK until they run out, latency delays, rules scoped to another region or with zero
//! probability never fire, exhausted retries surface as `Retryable`; 403, 409 and 412 come in
//! each service's shape; a change can take effect and lose its answer; and the Kubernetes API
//! gets 429 with Retry-After, 409, 500 and dropped connections as Status objects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use breakwater::clock::SystemClock;
use breakwater::state::StateStore;
use breakwater::Error;
use breakwater_sandbox::proxy::{Fault, FaultProxy, Rule};
use breakwater_sandbox::runtime::FunctionProcess;
use serde_json::json;

use crate::common::{aws, read_object, unique};

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

#[tokio::test]
async fn a_change_that_took_effect_upstream_loses_its_answer_and_the_sdks_retry_is_refused_412() {
    // GIVEN a create-once PUT (If-None-Match: *) whose first attempt reaches moto, after which
    // the connection resets instead of answering
    let proxy = FaultProxy::start(&moto().endpoint(), 6).await.unwrap();
    let store = store_through(&proxy).await;
    let proxied = aws(&proxy.endpoint(), "us-east-1").await;
    proxy.add_rule(
        Rule::always(Fault::ResetAfterCommit)
            .operation("PutObject")
            .times(1),
    );
    let mutations_before = proxy.mutations_done();
    // WHEN the SDK sends it
    let answer = proxied
        .s3()
        .put_object()
        .bucket(store.bucket())
        .key("claim.json")
        .if_none_match("*")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{}"))
        .send()
        .await;
    // THEN the SDK retried the reset, and the retry found the object its first attempt made
    let err = answer.expect_err("the retry is refused: the object exists");
    assert_eq!(
        breakwater::aws::http_status(&err),
        Some(412),
        "{}",
        breakwater::aws::describe_sdk_error(&err)
    );
    let puts: Vec<(Option<u16>, Option<String>)> = proxy
        .calls()
        .into_iter()
        .map(|c| (c.status, c.fault))
        .collect();
    assert_eq!(
        puts,
        vec![
            (Some(200), Some("ResetAfterCommit".to_string())),
            (Some(412), None)
        ]
    );
    // AND the proxy counts the change as made (a game day's step boundary)
    assert_eq!(proxy.mutations_done(), mutations_before + 1);
}

#[tokio::test]
async fn access_denied_and_conflicts_come_in_each_services_shape() {
    // S3 (REST-XML), EKS (REST-JSON) and SNS (query): 403, 409 and 412 as each service words
    // them (S3 error responses; conditional writes: 412 PreconditionFailed, and 409
    // ConditionalRequestConflict "retry on 409" —
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
    let proxy = FaultProxy::start(&moto().endpoint(), 7).await.unwrap();
    let store = store_through(&proxy).await;
    let proxied = aws(&proxy.endpoint(), "us-east-1").await;
    proxy.add_rule(
        Rule::always(Fault::AccessDenied)
            .operation("GetObject")
            .times(1),
    );
    proxy.add_rule(
        Rule::always(Fault::Conflict)
            .operation("PutObject")
            .times(1),
    );
    proxy.add_rule(
        Rule::always(Fault::PreconditionFailed)
            .operation("PutObject")
            .times(1),
    );
    proxy.add_rule(Rule::always(Fault::AccessDenied).service("eks").times(1));
    proxy.add_rule(Rule::always(Fault::Conflict).service("eks").times(1));
    proxy.add_rule(Rule::always(Fault::AccessDenied).service("sns").times(1));

    let code = |e: &dyn aws_sdk_s3::error::ProvideErrorMetadata| e.code().map(str::to_string);
    let get = proxied
        .s3()
        .get_object()
        .bucket(store.bucket())
        .key("k")
        .send()
        .await
        .expect_err("denied");
    assert_eq!(
        (breakwater::aws::http_status(&get), code(&get).as_deref()),
        (Some(403), Some("AccessDenied"))
    );
    // The store sends a conditional write answered 409 again (nothing was written: "retry on
    // 409"), and reads the 412 that then answers it as a lost race, never as a service error.
    let raced = store.replace("k.json", &json!({}), "\"etag\"").await;
    assert!(
        matches!(raced, Err(Error::Conflict(ref m)) if m.contains("HTTP 412")),
        "{raced:?}"
    );
    let puts: Vec<Option<u16>> = proxy
        .calls()
        .iter()
        .filter(|c| c.operation == "PutObject")
        .map(|c| c.status)
        .collect();
    assert_eq!(puts, vec![Some(409), Some(412)], "the 409 was sent again");
    let eks = proxied
        .eks()
        .list_clusters()
        .send()
        .await
        .expect_err("denied");
    assert_eq!(
        (breakwater::aws::http_status(&eks), code(&eks).as_deref()),
        (Some(403), Some("AccessDeniedException"))
    );
    let eks = proxied
        .eks()
        .list_clusters()
        .send()
        .await
        .expect_err("conflict");
    assert_eq!(code(&eks).as_deref(), Some("ResourceInUseException"));
    let sns = proxied
        .sns()
        .list_topics()
        .send()
        .await
        .expect_err("denied");
    assert_eq!(
        (breakwater::aws::http_status(&sns), code(&sns).as_deref()),
        (Some(403), Some("AccessDenied"))
    );
    assert_eq!(
        Error::from_sdk("list topics", &sns).error_type(),
        "Forbidden"
    );
}

/// A kube-rs client for `endpoint` that does not retry (as Breakwater's).
fn kube_client(endpoint: &str) -> kube::Client {
    let mut config = kube::Config::new(endpoint.parse().unwrap());
    config.default_retry = false;
    config.read_timeout = Some(Duration::from_secs(5));
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn kubernetes_faults_are_status_objects_that_kube_rs_reads() {
    // GIVEN the Kubernetes emulator behind the proxy, with one node
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    let emu = breakwater_sandbox::kube::KubeEmulator::start(1_795_392_000_000, 0.0)
        .await
        .unwrap();
    emu.create(
        "nodes",
        "",
        breakwater_sandbox::kube::fixtures::node("n1", "i-0aaa", "us-east-1a", "spot-a", "SPOT"),
    )
    .unwrap();
    let proxy = FaultProxy::start(&emu.endpoint(), 8).await.unwrap();
    let nodes: Api<Node> = Api::all(kube_client(&proxy.endpoint()));
    let api_error = |r: Result<Node, kube::Error>| match r {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    };
    // WHEN a patch is throttled, a replace conflicts, a read fails with 500, a read is cut off
    proxy.add_rule(
        Rule::always(Fault::TooManyRequests)
            .service(breakwater_sandbox::proxy::KUBERNETES)
            .operation("Patch nodes")
            .times(1),
    );
    proxy.add_rule(
        Rule::always(Fault::Conflict)
            .operation("Update nodes")
            .times(1),
    );
    proxy.add_rule(
        Rule::always(Fault::ServerError)
            .operation("Get nodes")
            .times(1),
    );
    proxy.add_rule(Rule::always(Fault::Drop).operation("Get nodes").times(1));
    let cordon = Patch::Merge(json!({"spec": {"unschedulable": true}}));
    let throttled = nodes.patch("n1", &PatchParams::default(), &cordon).await;
    let current = emu.get("nodes", "", "n1").unwrap();
    let replaced = nodes
        .replace(
            "n1",
            &PostParams::default(),
            &serde_json::from_value(current).unwrap(),
        )
        .await;
    let failed = nodes.get("n1").await;
    let cut = nodes.get("n1").await;
    // THEN each is what the API server answers (a Status with its reason), and nothing changed
    assert_eq!(api_error(throttled), (429, "TooManyRequests".to_string()));
    assert_eq!(api_error(replaced), (409, "Conflict".to_string()));
    assert_eq!(api_error(failed), (500, "InternalError".to_string()));
    assert!(
        matches!(cut, Err(ref e) if !matches!(e, kube::Error::Api(_))),
        "{cut:?}"
    );
    assert_eq!(
        emu.get("nodes", "", "n1").unwrap()["spec"]["unschedulable"],
        serde_json::Value::Null
    );
    // AND the 429 carried the Retry-After a client must honour
    let calls = proxy.calls();
    assert_eq!(calls[0].operation, "Patch nodes");
    assert_eq!(calls[0].status, Some(429));
    assert!(
        calls.iter().all(|c| c.service == "kubernetes"),
        "{calls:#?}"
    );
    let retry_after = raw_status(&proxy.endpoint(), "/api/v1/nodes/n1", &proxy).await;
    assert_eq!(retry_after, (429, Some("1".to_string()), json!(1)));
}

/// A GET answered 429 by a fresh rule: (status, `Retry-After`, `details.retryAfterSeconds`).
async fn raw_status(
    endpoint: &str,
    path: &str,
    proxy: &FaultProxy,
) -> (u16, Option<String>, serde_json::Value) {
    use http_body_util::{BodyExt, Full};
    proxy.add_rule(
        Rule::always(Fault::Throttle)
            .operation("Get nodes")
            .times(1),
    );
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let response = client
        .request(
            hyper::Request::get(format!("{endpoint}{path}"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["kind"], "Status");
    (
        status,
        retry_after,
        body["details"]["retryAfterSeconds"].clone(),
    )
}

/// The probe binary on the sandbox clock `now_ms`, against moto, over a fresh bucket.
async fn probe_at(now_ms: u64) -> (FunctionProcess, String) {
    let bucket = unique("clock");
    let direct = aws(&moto().endpoint(), "us-east-1").await;
    direct
        .s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", moto().endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("BREAKWATER_STATE_BUCKET", bucket.clone()),
        ("BREAKWATER_IDEMPOTENCY_SECONDS", "60".into()),
        ("BREAKWATER_SANDBOX_NOW_MS", now_ms.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let binary = breakwater_sandbox::bin_dir("debug").join("probe");
    let mut probe = FunctionProcess::start(&binary, "probe", "us-east-1", &env)
        .await
        .expect("probe starts (make test builds it first)");
    probe.wait_init().await.unwrap();
    (probe, bucket)
}

/// When the probe completed event `id`, by its own clock.
async fn completed_at(bucket: &str, id: &str) -> u64 {
    read_object(moto(), bucket, &format!("idempotency/probe/{id}"))
        .await
        .unwrap()["data"]["completed_at_ms"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_started_again_after_a_crash_goes_on_from_its_clock_so_a_dead_claim_lapses() {
    // GIVEN the probe living on the sandbox clock, which handled an event
    const T: u64 = 1_796_083_200_000;
    let (mut probe, bucket) = probe_at(T).await;
    let record = |id: &str| json!({"command": "record", "id": id, "key": "clock"});
    probe.invoke(&record("e1")).await.unwrap().answer().unwrap();
    let first = completed_at(&bucket, "e1").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // WHEN its process dies and Lambda starts a new one for the next event
    probe.kill().await;
    probe.restart().await.unwrap();
    probe.invoke(&record("e2")).await.unwrap().answer().unwrap();
    // THEN the new process's clock goes on from the dead one's, not from where it began (a
    // claim the dead one took would otherwise look fresh to it)
    let second = completed_at(&bucket, "e2").await;
    assert!(
        second >= first + 1_500,
        "the clock started over: {first} then {second}"
    );
    // AND the claim of an attempt killed mid-event lapses a minute later by that clock, as
    // when Lambda retries the event a minute later
    let store = StateStore::new(
        aws(&moto().endpoint(), "us-east-1").await.s3(),
        bucket.clone(),
        Arc::new(SystemClock),
    );
    store
        .create(
            "idempotency/probe/e3",
            &json!({"status": "in_progress", "owner": "probe:killed", "claim": "dead",
                "expires_at_ms": probe.now_ms() + 60_000}),
        )
        .await
        .unwrap();
    let blocked = probe.invoke(&record("e3")).await.unwrap();
    assert!(blocked.outcome.is_err(), "{:?}", blocked.outcome);
    probe.advance(Duration::from_secs(60)).await.unwrap();
    let retried = probe.invoke(&record("e3")).await.unwrap();
    assert!(retried.outcome.is_ok(), "{:?}", retried.outcome);
    assert!(completed_at(&bucket, "e3").await >= second + 60_000);
    probe.kill().await;
}

#[tokio::test]
async fn a_lost_us_east_1_takes_its_own_calls_and_the_global_control_planes_and_spares_us_west_2() {
    // GIVEN buckets in both regions, reached through the proxy
    let proxy = FaultProxy::start(&moto().endpoint(), 1).await.unwrap();
    let direct_east = aws(&moto().endpoint(), "us-east-1").await;
    let direct_west = aws(&moto().endpoint(), "us-west-2").await;
    let east_bucket = unique("outage-east");
    let west_bucket = unique("outage-west");
    direct_east
        .s3()
        .create_bucket()
        .bucket(&east_bucket)
        .send()
        .await
        .unwrap();
    direct_west
        .s3()
        .create_bucket()
        .bucket(&west_bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint("us-west-2".into())
                .build(),
        )
        .send()
        .await
        .unwrap();
    // The healthy region's client, as the failover function in us-west-2 holds it.
    let east = aws(&proxy.endpoint(), "us-east-1").await;
    let west = aws(&proxy.endpoint(), "us-west-2").await;

    // WHEN us-east-1 is lost
    proxy.add_rule(Rule::region_outage("us-east-1"));
    let started = Instant::now();

    // THEN us-east-1's own endpoints do not answer …
    assert!(east
        .s3()
        .head_bucket()
        .bucket(&east_bucket)
        .send()
        .await
        .is_err());
    // … nor do the global control planes homed there, even from a client of us-west-2
    assert!(west.route53().list_hosted_zones().send().await.is_err());
    assert!(west.iam().list_roles().send().await.is_err());
    assert!(west
        .budgets()
        .describe_budgets()
        .account_id("123456789012")
        .send()
        .await
        .is_err());
    // … while us-west-2's data and control planes answer
    west.s3()
        .head_bucket()
        .bucket(&west_bucket)
        .send()
        .await
        .expect("us-west-2's S3 answers");
    aws_sdk_rds::Client::new(west.config())
        .describe_db_instances()
        .send()
        .await
        .expect("us-west-2's RDS answers");
    // AND every lost call was dropped unanswered, none reached moto
    let lost: Vec<_> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.fault.as_deref() == Some("Drop"))
        .map(|c| (c.service, c.region))
        .collect();
    for service in ["s3", "route53", "iam", "budgets"] {
        assert!(
            lost.iter().any(|(s, _)| s == service),
            "{service} was not dropped: {lost:?}"
        );
    }
    assert!(lost.iter().all(|(s, r)| r == "us-east-1" || s != "s3"));
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn an_upstream_that_cuts_the_connection_is_a_broken_connection_to_the_client_not_a_502() {
    // GIVEN a proxy whose upstream is gone (a dead port, or a second proxy that dropped the call)
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let proxy = FaultProxy::start(&format!("http://127.0.0.1:{port}"), 9)
        .await
        .unwrap();
    let store = StateStore::new(
        aws(&proxy.endpoint(), "us-east-1").await.s3(),
        "gone",
        Arc::new(SystemClock),
    );
    // WHEN the SDK calls through it
    let result = store.create("k.json", &json!({})).await;
    // THEN the SDK sees a dropped connection, retries it, and it surfaces as retryable — as
    // without the proxy — not as a service error with no code
    assert!(matches!(result, Err(Error::Retryable(_))), "{result:?}");
    assert!(
        proxy.calls().iter().all(|c| c.status.is_none()),
        "{:#?}",
        proxy.calls()
    );
}

#[tokio::test]
async fn kubernetes_reads_are_tried_again_after_a_throttle_a_5xx_or_a_cut_connection_and_writes_are_not(
) {
    // GIVEN the Kubernetes emulator behind the proxy, with one node
    use k8s_openapi::api::core::v1::Node;
    use kube::api::Api;
    let emu = breakwater_sandbox::kube::KubeEmulator::start(1_795_392_000_000, 0.0)
        .await
        .unwrap();
    emu.create(
        "nodes",
        "",
        breakwater_sandbox::kube::fixtures::node("n1", "i-0aaa", "us-east-1a", "spot-a", "SPOT"),
    )
    .unwrap();
    let proxy = FaultProxy::start(&emu.endpoint(), 9).await.unwrap();
    let client = kube_client(&proxy.endpoint());
    let nodes: Api<Node> = Api::all(client.clone());
    let kube = breakwater_sandbox::proxy::KUBERNETES;

    // WHEN a typed read is throttled, then cut off, before it is answered
    proxy.add_rule(Rule::always(Fault::TooManyRequests).service(kube).times(1));
    proxy.add_rule(Rule::always(Fault::Drop).service(kube).times(1));
    let node = breakwater::kube::read_with_retries(|| nodes.get_opt("n1")).await;
    // THEN the third try reads it (client-go also tries a throttled request again)
    assert!(node.unwrap().is_some());

    // WHEN a raw GET meets a 500, then an answer
    proxy.add_rule(Rule::always(Fault::ServerError).service(kube).times(1));
    let answer = breakwater::kube::ops::send_json(
        &client,
        hyper::Method::GET,
        "/api/v1/nodes/n1",
        "application/json",
        None,
        "get node n1",
    )
    .await
    .unwrap();
    // THEN the second try's answer is returned
    assert_eq!(answer.status, 200);

    // AND a read that keeps failing gives up after three tries, and a write is sent once
    proxy.add_rule(Rule::always(Fault::ServerError).service(kube).times(3));
    let before = proxy.calls().len();
    assert!(breakwater::kube::read_with_retries(|| nodes.get_opt("n1"))
        .await
        .is_err());
    assert_eq!(proxy.calls().len() - before, 3);
    proxy.add_rule(Rule::always(Fault::ServerError).service(kube).times(1));
    let before = proxy.calls().len();
    let written = breakwater::kube::ops::send_json(
        &client,
        hyper::Method::PATCH,
        "/api/v1/nodes/n1",
        "application/merge-patch+json",
        Some(&json!({"metadata": {"labels": {"a": "b"}}})),
        "label node n1",
    )
    .await
    .unwrap();
    assert_eq!(written.status, 500);
    assert_eq!(proxy.calls().len() - before, 1);
}
