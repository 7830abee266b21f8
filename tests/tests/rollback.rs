//! Rollback end to end: moto for CloudWatch (alarms and their tags), S3, SNS, Secrets Manager
//! and SSM (the signing secrets); the Kubernetes emulator's Deployment controller for the
//! cluster; the real `kubectl rollout undo` for the differential checks. Every claimed mutation
//! is read back from the emulator or moto. Lambda's `Invoke` (the webhook hand-off) is answered
//! by [`LambdaStandIn`], which forwards every other call to moto.

use std::convert::Infallible;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breakwater::aws::cloudwatch::CloudWatchAlarms;
use breakwater::aws::secrets::{aws_sdk_secretsmanager as secretsmanager, aws_sdk_ssm as ssm};
use breakwater::aws::Aws;
use breakwater::clock::{Clock, ManualClock, SystemClock};
use breakwater::config::{Env, Settings};
use breakwater::kube::rollout::{semantic, CHANGE_CAUSE, REVISION};
use breakwater::kube::KubeClients;
use breakwater::Toolkit;
use breakwater_sandbox::kube::fixtures::{canary_rollout, deployment};
use breakwater_sandbox::kube::KubeEmulator;
use breakwater_sandbox::rollback_scene::{
    alarm_event, roll_out, rollback_scene, set_alarm, RollbackScene,
};
use breakwater_sandbox::seed::{read_notifications, seed, Estate, ReceivedNotification};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rollback::chat::webhook::{pagerduty_signature, slack_signature};
use rollback::settings::RollbackSettings;
use rollback::RollbackFunction;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::common::{aws, kubectl, unique};

crate::common::moto_server!();

type Function = RollbackFunction<CloudWatchAlarms>;

const CLUSTER: &str = "prod";
const MINUTE: u64 = 60_000;
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const PAGERDUTY_SECRET: &str = "pd-webhook-secret";

struct World {
    estate: Estate,
    scene: RollbackScene,
    emu: KubeEmulator,
    direct: Aws,
    clock: ManualClock,
    function: Arc<Function>,
    region: String,
    lambda: LambdaStandIn,
}

/// One `Invoke` the function sent to Lambda.
#[derive(Debug, Clone)]
struct Queued {
    /// The function named in the path.
    function: String,
    /// `X-Amz-Invocation-Type` (`RequestResponse` when absent, as Lambda reads it).
    invocation_type: String,
    /// The event.
    payload: Value,
}

/// An AWS endpoint for the function: Lambda's `Invoke`
/// (`POST /2015-03-31/functions/{name}/invocations`) is recorded and answered as Lambda answers
/// an `Event` invocation (202, empty body: queued, not run); every other request goes to moto
/// unchanged (moto's Lambda runs functions in Docker, which the sandbox has not).
struct LambdaStandIn {
    endpoint: String,
    queued: Arc<Mutex<Vec<Queued>>>,
    /// While set, `Invoke` answers 500 `ServiceException` (Lambda's own failure) and queues
    /// nothing.
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl LambdaStandIn {
    async fn start(upstream: String) -> Self {
        use hyper::server::conn::http1;
        use hyper::service::service_fn;
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let queued = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Full<Bytes>>();
        let (seen, fails) = (queued.clone(), failing.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, client, upstream) = (seen.clone(), client.clone(), upstream.clone());
                let fails = fails.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        answer(
                            request,
                            seen.clone(),
                            fails.clone(),
                            client.clone(),
                            upstream.clone(),
                        )
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        LambdaStandIn {
            endpoint,
            queued,
            failing,
        }
    }

    /// Makes `Invoke` fail (true) or answer again (false).
    fn fail(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    fn queued(&self) -> Vec<Queued> {
        self.queued.lock().unwrap().clone()
    }
}

type Forwarder = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    seen: Arc<Mutex<Vec<Queued>>>,
    failing: Arc<std::sync::atomic::AtomicBool>,
    client: Forwarder,
    upstream: String,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let function = parts
        .uri
        .path()
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"));
    if let Some(function) = function {
        if failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(hyper::Response::builder()
                .status(500)
                .header("x-amzn-errortype", "ServiceException")
                .body(Full::new(Bytes::from_static(
                    br#"{"Type":"Service","message":"Lambda is failing"}"#,
                )))
                .unwrap());
        }
        let invocation_type = parts
            .headers
            .get("x-amz-invocation-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("RequestResponse")
            .to_string();
        let status = if invocation_type == "Event" { 202 } else { 501 };
        seen.lock().unwrap().push(Queued {
            function: function.to_string(),
            invocation_type,
            payload: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        return Ok(hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        forward = forward.header(name, value);
    }
    let answered = client.request(forward.body(Full::new(body)).unwrap()).await;
    Ok(match answered {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            hyper::Response::from_parts(parts, Full::new(body))
        }
        Err(e) => hyper::Response::builder()
            .status(502)
            .body(Full::new(Bytes::from(e.to_string())))
            .unwrap(),
    })
}

/// Slack's signing secret in Secrets Manager and PagerDuty's as an SSM SecureString (the two
/// places the function reads them from); returns the references for its environment.
async fn store_secrets(direct: &Aws, slack: &str, pagerduty: &str) -> (String, String) {
    let name = unique("breakwater/slack");
    secretsmanager::Client::new(direct.config())
        .create_secret()
        .name(&name)
        .secret_string(slack)
        .send()
        .await
        .unwrap();
    let parameter = format!("/{}", unique("breakwater/pagerduty"));
    ssm::Client::new(direct.config())
        .put_parameter()
        .name(&parameter)
        .value(pagerduty)
        .r#type(ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    (format!("secretsmanager:{name}"), format!("ssm:{parameter}"))
}

/// A world whose emulator starts `history_ms` before the function's now (so that a rollout
/// history can be laid down) and is advanced by [`World::at`].
async fn world(region: &str, history_ms: u64, extra: &[(&str, &str)]) -> World {
    let direct = aws(&moto().endpoint(), region).await;
    let suffix = format!("-{}", unique("r"));
    let estate = seed(direct.config(), region, "us-west-2", &suffix)
        .await
        .unwrap();
    let now = SystemClock.now_ms();
    let clock = ManualClock::at(now);
    let emu = KubeEmulator::start(now - history_ms, 0.0).await.unwrap();
    emu.with(|c| c.pod_ready_delay_ms = 1_000);
    let scene = rollback_scene(direct.config(), region, &suffix, CLUSTER, &emu)
        .await
        .unwrap();
    let lambda = LambdaStandIn::start(moto().endpoint()).await;
    let aws = Arc::new(Aws::for_endpoint(&lambda.endpoint, region).await);
    let settings = Settings {
        region: region.into(),
        state_bucket: estate.primary.state_bucket.clone(),
        topic_arn: Some(estate.primary.topic_arn.clone()),
        dry_run: false,
        lease_ttl: Duration::from_secs(60),
        idempotency_ttl: Duration::from_secs(900),
        function_name: "rollback".into(),
    };
    let (slack_ref, pagerduty_ref) = store_secrets(&direct, SLACK_SECRET, PAGERDUTY_SECRET).await;
    let mut pairs = vec![
        ("BREAKWATER_ROLLBACK_CLUSTERS", CLUSTER),
        ("BREAKWATER_ROLLBACK_SLACK_SECRET_ID", slack_ref.as_str()),
        (
            "BREAKWATER_ROLLBACK_PAGERDUTY_SECRET_ID",
            pagerduty_ref.as_str(),
        ),
    ];
    pairs.extend_from_slice(extra);
    let function = RollbackFunction {
        alarms: CloudWatchAlarms::new(aws.cloudwatch()),
        kube: KubeClients::new(Some(emu.endpoint())).unwrap(),
        toolkit: Toolkit::with_aws(settings, aws.clone(), Arc::new(clock.clone())),
        settings: RollbackSettings::from_env(&Env::from_pairs(pairs)).unwrap(),
    };
    World {
        estate,
        scene,
        emu,
        direct,
        clock,
        function: Arc::new(function),
        region: region.into(),
        lambda,
    }
}

impl World {
    /// Moves the emulator's clock to `offset_ms` before the function's now.
    fn at(&self, before_now_ms: u64) {
        let target = self.clock.now_ms() - before_now_ms;
        let now = self.emu.now_ms();
        assert!(target >= now, "the emulator's clock only moves forward");
        self.emu.advance(target - now);
    }

    /// Lays down revisions `web:2…` at the given times before now, then brings the emulator to now.
    fn history(&self, rollouts: &[(&str, u64)]) {
        for (image, before) in rollouts {
            self.at(*before);
            roll_out(&self.emu, "shop", "web", image).unwrap();
        }
        self.at(0);
    }

    async fn handle(&self, event: Value) -> Value {
        self.function.handle(event, &unique("req")).await.unwrap()
    }

    /// Handles an event expected to be refused as bad input: its `InvalidEvent` error.
    async fn refused(&self, event: Value) -> breakwater::Error {
        self.function
            .handle(event, &unique("req"))
            .await
            .expect_err("bad input is an InvalidEvent error")
    }

    /// Plays Lambda for the webhook hand-off: runs every queued asynchronous invocation not yet
    /// run, in order, and returns their answers.
    async fn run_queued(&self, from: usize) -> Vec<Value> {
        let mut answers = Vec::new();
        for q in self.lambda.queued().into_iter().skip(from) {
            assert_eq!(q.function, "rollback", "the function hands off to itself");
            assert_eq!(q.invocation_type, "Event", "asynchronously");
            answers.push(self.handle(q.payload).await);
        }
        answers
    }

    fn alarm(&self, id: &str, previous: &str, state: &str, began_before_ms: u64) -> Value {
        alarm_event(
            id,
            &self.region,
            &self.scene.latency_alarm,
            &self.scene.latency_alarm_arn,
            previous,
            state,
            self.clock.now_ms() - began_before_ms,
        )
    }

    fn tick(&self) -> Value {
        breakwater_sandbox::scenes::schedule_event(
            &unique("tick"),
            &self.region,
            self.clock.now_ms(),
        )
    }

    fn image(&self) -> String {
        self.deployment()["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn deployment(&self) -> Value {
        self.emu.get("deployments", "shop", "web").unwrap()
    }

    fn patches(&self) -> Vec<breakwater_sandbox::kube::KubeRequest> {
        self.emu
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .collect()
    }

    async fn notifications(&self) -> Vec<ReceivedNotification> {
        read_notifications(
            self.direct.config(),
            &self.region,
            &self.estate.primary.queue_url,
            1,
        )
        .await
        .unwrap()
    }

    async fn decisions(&self) -> usize {
        let listed = self
            .direct
            .s3()
            .list_objects_v2()
            .bucket(&self.estate.primary.state_bucket)
            .prefix("rollback/decisions/")
            .send()
            .await
            .unwrap();
        listed.contents().len()
    }

    fn slack(&self, text: &str, timestamp_s: u64, secret: &str) -> Value {
        self.slack_as("T1", "U42", text, timestamp_s, secret)
    }

    /// A signed slash command from `user` of workspace `team` (Slack's form fields).
    fn slack_as(
        &self,
        team: &str,
        user: &str,
        text: &str,
        timestamp_s: u64,
        secret: &str,
    ) -> Value {
        let body = format!(
            "token=x&team_id={team}&user_id={user}&user_name=alice&command=%2Fbreakwater&text={}&response_url=https%3A%2F%2Fhooks.slack.com%2Fx",
            text.replace(' ', "+").replace('/', "%2F")
        );
        let ts = timestamp_s.to_string();
        let signature = slack_signature(&SecretString::from(secret), &ts, body.as_bytes());
        function_url(
            "/slack",
            json!({"content-type": "application/x-www-form-urlencoded",
                "x-slack-request-timestamp": ts, "x-slack-signature": signature}),
            &body,
        )
    }

    fn pagerduty(&self, id: &str, note: &str, occurred_ms: u64, secret: &str) -> Value {
        let agent = json!({"id": "PBOB42", "summary": "Bob Oncall", "type": "user_reference",
            "self": "https://api.pagerduty.com/users/PBOB42"});
        self.pagerduty_by(agent, id, note, occurred_ms, secret)
    }

    /// A signed v3 `incident.annotated` event whose note was written by `agent` (PagerDuty's
    /// reference object: `user_reference` for a person).
    fn pagerduty_by(
        &self,
        agent: Value,
        id: &str,
        note: &str,
        occurred_ms: u64,
        secret: &str,
    ) -> Value {
        let body = json!({"event": {"id": id, "event_type": "incident.annotated",
            "resource_type": "incident", "occurred_at": breakwater::clock::rfc3339(occurred_ms),
            "agent": agent,
            "data": {"content": note, "incident": {"id": "Q1ABC"}}}})
        .to_string();
        let signature = pagerduty_signature(&SecretString::from(secret), body.as_bytes());
        function_url(
            "/pagerduty",
            json!({"content-type": "application/json", "x-pagerduty-signature": signature}),
            &body,
        )
    }
}

fn function_url(path: &str, headers: Value, body: &str) -> Value {
    json!({"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers, "isBase64Encoded": false, "body": body,
        "requestContext": {"http": {"method": "POST", "path": path, "sourceIp": "203.0.113.9"},
            "requestId": unique("url"), "timeEpoch": 0}})
}

fn revision(obj: &Value) -> String {
    obj["metadata"]["annotations"][REVISION]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_after_a_bad_deploy_rolls_back_once_to_the_last_known_good_revision() {
    // web:1 ran for hours; web:2 lived 6 minutes (less than the 10-minute bake); web:3 went out
    // 4 minutes ago and the latency alarm fired a minute ago.
    let w = world("eu-west-1", 4 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 10 * MINUTE), ("web:3", 4 * MINUTE)]);
    assert_eq!(revision(&w.deployment()), "3");
    assert_eq!(w.deployment()["status"]["availableReplicas"], 3);
    w.emu.clear_requests();

    // The same event delivered 10 times, all at once: one decision, one patch.
    let event = w.alarm("alarm-1", "OK", "ALARM", MINUTE);
    let mut handles = Vec::new();
    for _ in 0..10 {
        let f = w.function.clone();
        let e = event.clone();
        handles.push(tokio::spawn(async move {
            f.handle(e, &unique("req")).await.unwrap()
        }));
    }
    let mut answers = Vec::new();
    for h in handles {
        answers.push(h.await.unwrap());
    }
    let patches = w.patches();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].content_type, "application/json-patch+json");
    assert_eq!(
        patches[0].body[0]["op"], "test",
        "the patch tests the resourceVersion first"
    );
    let rolled: Vec<&Value> = answers
        .iter()
        .filter_map(|a| a["decisions"].as_array())
        .flatten()
        .filter(|d| d["outcome"] == "rolled-back" && d.get("repeat").is_none())
        .collect();
    assert_eq!(rolled.len(), 1, "{answers:?}");
    // Last known good is web:1 (web:2 never survived its bake), now revision 4.
    assert_eq!(rolled[0]["from_revision"], 3);
    assert_eq!(rolled[0]["to_revision"], 1);
    w.at(0);
    w.emu.advance(2_000);
    assert_eq!(w.image(), "web:1");
    let d = w.deployment();
    assert_eq!(
        revision(&d),
        "4",
        "the controller renumbers the reused ReplicaSet"
    );
    let cause = d["metadata"]["annotations"][CHANGE_CAUSE].as_str().unwrap();
    assert!(
        cause.contains("alarm web-p95-latency") && cause.contains("3 → 1"),
        "{cause}"
    );
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].message.contains("rolled back"),
        "{}",
        notes[0].message
    );

    // The same transition in the other two shapes — the alarm action's payload and an SNS
    // alarm notification — is the same event: the stored decision, no second patch.
    let at = event["detail"]["state"]["timestamp"].clone();
    let action = json!({"source": "aws.cloudwatch", "alarmArn": w.scene.latency_alarm_arn,
        "accountId": "123456789012", "time": at, "region": w.region,
        "alarmData": {"alarmName": w.scene.latency_alarm,
            "state": {"value": "ALARM", "reason": "Threshold Crossed", "timestamp": at},
            "previousState": {"value": "OK", "reason": "ok", "timestamp": at},
            "configuration": {"description": "p95", "metrics": []}}});
    let r = w.handle(action).await;
    assert_eq!(r["decisions"][0]["repeat"], true, "{r}");
    let message = json!({"AlarmName": w.scene.latency_alarm, "AlarmArn": w.scene.latency_alarm_arn,
        "NewStateValue": "ALARM", "OldStateValue": "OK", "StateChangeTime": at,
        "NewStateReason": "Threshold Crossed"});
    let sns = breakwater_sandbox::scenes::sns_event("m-sns-1", "ALARM", &message.to_string());
    let r = w.handle(sns).await;
    assert_eq!(r["records"][0]["decisions"][0]["repeat"], true, "{r}");
    assert_eq!(w.patches().len(), 1);

    // OK, and ALARM again from ALARM: nothing. A new transition inside the cool-down: reported only.
    let ok = w.handle(w.alarm("alarm-2", "ALARM", "OK", 0)).await;
    assert_eq!(ok["outcome"], "ignored");
    let repeat = w.handle(w.alarm("alarm-3", "ALARM", "ALARM", 0)).await;
    assert_eq!(repeat["outcome"], "ignored");
    let again = w.handle(w.alarm("alarm-4", "OK", "ALARM", 0)).await;
    assert_eq!(again["decisions"][0]["outcome"], "not-acting", "{again}");
    assert!(again["decisions"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("cool-down"));
    assert_eq!(w.patches().len(), 1);
    let notes = w.notifications().await;
    assert_eq!(
        notes.len(),
        1,
        "the cool-down decision is notified too: {notes:?}"
    );
    assert!(
        notes[0].message.contains("did not act"),
        "{}",
        notes[0].message
    );

    // A manual request onto the revision that alarmed is refused.
    let onto_bad = w
        .handle(
            json!({"command": "rollback", "workload": "prod/shop/Deployment/web",
            "toRevision": 3, "requestedBy": "carol", "id": "m-1"}),
        )
        .await;
    assert_eq!(
        onto_bad["outcome"], "not-acting",
        "cool-down first: {onto_bad}"
    );
    w.clock.advance(Duration::from_millis(31 * MINUTE));
    w.at(0);
    let onto_bad = w
        .handle(
            json!({"command": "rollback", "workload": "prod/shop/Deployment/web",
            "toRevision": 3, "requestedBy": "carol", "id": "m-2"}),
        )
        .await;
    assert_eq!(onto_bad["outcome"], "refused", "{onto_bad}");
    assert!(onto_bad["reason"]
        .as_str()
        .unwrap()
        .contains("tripped alarm"));
    assert_eq!(w.patches().len(), 1);
    assert_eq!(w.image(), "web:1");
    // Every decision is in the audit trail: the rollback, the cool-down, m-1, m-2.
    assert_eq!(w.decisions().await, 4);
    // And the workload's record says what an operator needs to know.
    let status = w
        .handle(json!({"command": "status", "workload": "prod/shop/Deployment/web"}))
        .await;
    let record = &status["record"];
    assert_eq!(record["bad"][0]["revision"], 3, "{status}");
    assert!(record["bake"].is_object(), "{status}");
    assert_eq!(record["recent"].as_array().unwrap().len(), 4, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bake_window_verifies_a_cleared_alarm_and_escalates_one_still_firing() {
    let w = world("eu-west-2", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 5 * MINUTE)]);
    set_alarm(
        w.direct.config(),
        &w.region,
        &w.scene.latency_alarm,
        "ALARM",
    )
    .await
    .unwrap();
    let r = w.handle(w.alarm("b-1", "OK", "ALARM", MINUTE)).await;
    assert_eq!(r["decisions"][0]["outcome"], "rolled-back", "{r}");
    assert_eq!(w.notifications().await.len(), 1);

    // Before the window ends the tick only waits.
    w.clock.advance(Duration::from_millis(5 * MINUTE));
    w.at(0);
    let tick = w.tick();
    let early = w.handle(tick.clone()).await;
    assert_eq!(early["checked"][0]["outcome"], "baking", "{early}");
    assert!(w.notifications().await.is_empty());

    // The alarm still fires after the window: escalated, once.
    w.clock.advance(Duration::from_millis(6 * MINUTE));
    w.at(0);
    let late = w.handle(tick.clone()).await;
    assert_eq!(late["checked"][0]["outcome"], "escalated", "{late}");
    let reason = late["checked"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("still in ALARM"), "{reason}");
    let notes = w.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].message.contains("ESCALATION"),
        "{}",
        notes[0].message
    );
    assert_eq!(
        notes[0].attributes.get("severity").map(String::as_str),
        Some("critical")
    );
    let after = w.handle(tick.clone()).await;
    assert_eq!(after["checked"], json!([]), "escalated once: {after}");

    // A second workload's rollback whose alarm clears is verified, and its revision marked good.
    let w2 = world("eu-west-3", 3 * 60 * MINUTE, &[]).await;
    w2.history(&[("web:2", 5 * MINUTE)]);
    let r = w2.handle(w2.alarm("v-1", "OK", "ALARM", MINUTE)).await;
    assert_eq!(r["decisions"][0]["outcome"], "rolled-back", "{r}");
    set_alarm(
        w2.direct.config(),
        &w2.region,
        &w2.scene.latency_alarm,
        "OK",
    )
    .await
    .unwrap();
    w2.clock.advance(Duration::from_millis(11 * MINUTE));
    w2.at(0);
    let done = w2.handle(w2.tick()).await;
    assert_eq!(done["checked"][0]["outcome"], "verified", "{done}");
    assert!(done["checked"][0]["verified"]
        .as_str()
        .unwrap()
        .contains("3/3 available"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_alarm_still_firing_after_the_bake_escalates_and_a_missing_one_is_not_taken_as_clear(
) {
    // GIVEN a composite alarm (the recommended way to combine error rate, latency and health)
    // guarding web, and a bad deploy
    let composite = unique("web-health");
    let mapping = format!("{composite}=prod/shop/Deployment/web");
    let w = world(
        "ap-northeast-3",
        3 * 60 * MINUTE,
        &[("BREAKWATER_ROLLBACK_ALARMS", mapping.as_str())],
    )
    .await;
    w.history(&[("web:2", 5 * MINUTE)]);
    w.direct
        .cloudwatch()
        .put_composite_alarm()
        .alarm_name(&composite)
        .alarm_rule(format!(
            "ALARM(\"{}\") OR ALARM(\"{}\")",
            w.scene.latency_alarm, w.scene.error_alarm
        ))
        .send()
        .await
        .unwrap();
    set_alarm(w.direct.config(), &w.region, &composite, "ALARM")
        .await
        .unwrap();
    let arn = format!(
        "arn:aws:cloudwatch:{}:123456789012:alarm:{composite}",
        w.region
    );
    let fired = alarm_event(
        "cx-1",
        &w.region,
        &composite,
        &arn,
        "OK",
        "ALARM",
        w.clock.now_ms() - MINUTE,
    );
    let r = w.handle(fired).await;
    assert_eq!(r["decisions"][0]["outcome"], "rolled-back", "{r}");
    // WHEN the bake window passes with the composite alarm still in ALARM
    w.clock.advance(Duration::from_millis(11 * MINUTE));
    w.at(0);
    let late = w.handle(w.tick()).await;
    // THEN the rollback is escalated, not verified (CloudWatch returns composite alarms only
    // when DescribeAlarms asks for them with AlarmTypes), and the target is not marked good
    assert_eq!(late["checked"][0]["outcome"], "escalated", "{late}");
    let reason = late["checked"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("still in ALARM"), "{reason}");
    let status = w
        .handle(json!({"command": "status", "workload": "prod/shop/Deployment/web"}))
        .await;
    assert_eq!(status["record"]["good"], json!([]), "{status}");

    // GIVEN another rollback guarded by a composite alarm that is then deleted
    let gone = unique("web-health");
    let mapping = format!("{gone}=prod/shop/Deployment/web");
    let w2 = world(
        "ap-east-1",
        3 * 60 * MINUTE,
        &[("BREAKWATER_ROLLBACK_ALARMS", mapping.as_str())],
    )
    .await;
    w2.history(&[("web:2", 5 * MINUTE)]);
    let cw = w2.direct.cloudwatch();
    cw.put_composite_alarm()
        .alarm_name(&gone)
        .alarm_rule(format!("ALARM(\"{}\")", w2.scene.latency_alarm))
        .send()
        .await
        .unwrap();
    let arn = format!("arn:aws:cloudwatch:{}:123456789012:alarm:{gone}", w2.region);
    let r = w2
        .handle(alarm_event(
            "cx-2",
            &w2.region,
            &gone,
            &arn,
            "OK",
            "ALARM",
            w2.clock.now_ms() - MINUTE,
        ))
        .await;
    assert_eq!(r["decisions"][0]["outcome"], "rolled-back", "{r}");
    cw.delete_alarms().alarm_names(&gone).send().await.unwrap();
    // WHEN the bake window passes
    w2.clock.advance(Duration::from_millis(11 * MINUTE));
    w2.at(0);
    let late = w2.handle(w2.tick()).await;
    // THEN "not found" is not "clear": escalated, nothing verified
    assert_eq!(late["checked"][0]["outcome"], "escalated", "{late}");
    let reason = late["checked"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("was not found"), "{reason}");
}

/// An alarm whose `breakwater:*` tags name a cluster this deployment does not manage: that
/// workload is acknowledged and dropped ("foreign-cluster"), nothing is patched, and the request
/// is not an error (the alarm may be shared with another deployment's cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_tagged_for_another_cluster_is_dropped_and_patches_nothing() {
    let w = world("eu-north-1", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 2 * MINUTE)]);
    w.emu.clear_requests();
    let name = format!("foreign-{}", unique("a"));
    let tag = |k: &str, v: &str| {
        aws_sdk_cloudwatch::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
    };
    aws_sdk_cloudwatch::Client::new(&breakwater_sandbox::seed::regional(
        w.direct.config(),
        &w.region,
    ))
    .put_metric_alarm()
    .alarm_name(&name)
    .namespace("AWS/ApplicationELB")
    .metric_name("TargetResponseTime")
    .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
    .period(60)
    .evaluation_periods(1)
    .threshold(1.0)
    .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
    .tags(tag("breakwater:cluster", "someone-elses-cluster"))
    .tags(tag("breakwater:namespace", "shop"))
    .tags(tag("breakwater:workload", "web"))
    .send()
    .await
    .unwrap();
    let r = w
        .handle(alarm_event(
            "f-1",
            &w.region,
            &name,
            &format!("arn:aws:cloudwatch:{}:123456789012:alarm:{name}", w.region),
            "OK",
            "ALARM",
            w.clock.now_ms(),
        ))
        .await;
    assert_eq!(r["outcome"], "decided", "{r}");
    assert_eq!(r["decisions"][0]["outcome"], "foreign-cluster", "{r}");
    assert!(
        r["decisions"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("someone-elses-cluster"),
        "{r}"
    );
    assert!(w.patches().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_rails_report_and_change_nothing() {
    let w = world("ap-south-1", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 30 * MINUTE)]);
    w.emu.clear_requests();
    // The alarm began before the rollout: not the deploy's fault.
    let before = w.handle(w.alarm("g-1", "OK", "ALARM", 45 * MINUTE)).await;
    assert_eq!(before["decisions"][0]["outcome"], "not-acting", "{before}");
    assert!(before["decisions"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("before the last rollout"));
    // An alarm with no mapping (no tags, not configured).
    let unmapped = w
        .handle(alarm_event(
            "g-2",
            &w.region,
            "someone-elses-alarm",
            &format!(
                "arn:aws:cloudwatch:{}:123456789012:alarm:someone-elses-alarm",
                w.region
            ),
            "OK",
            "ALARM",
            w.clock.now_ms(),
        ))
        .await;
    assert_eq!(unmapped["outcome"], "unmapped", "{unmapped}");
    // Outside the look-back window (web:2 went out 30 minutes ago; look-back set to 20).
    let w_short = world(
        "ap-southeast-1",
        3 * 60 * MINUTE,
        &[("BREAKWATER_ROLLBACK_LOOKBACK_MINUTES", "20")],
    )
    .await;
    w_short.history(&[("web:2", 30 * MINUTE)]);
    let old = w_short
        .handle(w_short.alarm("g-3", "OK", "ALARM", MINUTE))
        .await;
    assert!(
        old["decisions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("look-back"),
        "{old}"
    );
    assert!(w_short.patches().is_empty());
    // GitOps-owned, frozen and paused deployments.
    for (label_or_annotation, expect) in [
        // Argo CD's tracking label naming an Application that is not there: its sync cannot be
        // suspended, so the rollback would be undone by it (the suspension itself:
        // `an_argo_cd_owned_deployment_is_rolled_back_against_self_heal_…`).
        (
            json!({"metadata": {"labels": {"argocd.argoproj.io/instance": "shop"}}}),
            "Argo CD Application argocd/shop (label argocd.argoproj.io/instance=shop), whose sync cannot be suspended",
        ),
        (
            json!({"metadata": {"annotations": {"breakwater.io/rollback-freeze": "true"}}}),
            "frozen",
        ),
        (json!({"spec": {"paused": true}}), "paused"),
    ] {
        let kind = breakwater_sandbox::kube::store::find_kind("apps", "v1", "deployments").unwrap();
        w.emu
            .with(|c| {
                c.patch(
                    kind,
                    "shop",
                    "web",
                    "application/merge-patch+json",
                    &label_or_annotation,
                    false,
                )
            })
            .unwrap();
        let r = w
            .handle(
                json!({"command": "rollback", "workload": "prod/shop/Deployment/web",
                "requestedBy": "dave", "id": unique("g")}),
            )
            .await;
        assert!(r["reason"].as_str().unwrap().contains(expect), "{r}");
        let undo = json!({"metadata": {"labels": {"argocd.argoproj.io/instance": null,
                "app.kubernetes.io/instance": null},
            "annotations": {"breakwater.io/rollback-freeze": null}}, "spec": {"paused": null}});
        w.emu
            .with(|c| {
                c.patch(
                    kind,
                    "shop",
                    "web",
                    "application/merge-patch+json",
                    &undo,
                    false,
                )
            })
            .unwrap();
    }
    // A cluster this deployment does not manage, and a malformed event: InvalidEvent errors.
    let foreign = w
        .refused(
            json!({"command": "rollback", "workload": "staging/shop/Deployment/web", "id": "g-9"}),
        )
        .await;
    assert_eq!(foreign.error_type(), "InvalidEvent", "{foreign}");
    let malformed = w
        .refused(json!({"version": "0", "id": "g-10", "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": "123456789012", "region": w.region, "resources": [],
            "detail": {"state": {"value": "ALARM"}}}))
        .await;
    assert_eq!(malformed.error_type(), "InvalidEvent", "{malformed}");
    // An SNS delivery with one good record and one bad: refused whole, before the good one acts.
    let good = json!({"command": "rollback", "workload": "prod/shop/Deployment/web",
        "requestedBy": "erin", "id": "g-11"});
    let mut batch = breakwater_sandbox::scenes::sns_event("m-g-11", "rollback", &good.to_string());
    let mut bad = batch["Records"][0].clone();
    bad["Sns"]["MessageId"] = json!("m-g-12");
    bad["Sns"]["Message"] = json!("not json");
    batch["Records"].as_array_mut().unwrap().push(bad);
    let mixed = w.refused(batch.clone()).await;
    assert_eq!(mixed.error_type(), "InvalidEvent", "{mixed}");
    let patches: Vec<_> = w
        .patches()
        .into_iter()
        .filter(|p| {
            p.path.contains("/deployments/web") && p.content_type == "application/json-patch+json"
        })
        .collect();
    assert!(patches.is_empty(), "{patches:?}");
    assert_eq!(w.image(), "web:2");
    // The good record alone acts: the refusal above was the bad record's.
    batch["Records"].as_array_mut().unwrap().pop();
    let alone = w.handle(batch).await;
    assert_eq!(alone["records"][0]["outcome"], "rolled-back", "{alone}");
    assert_eq!(w.image(), "web:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_change_fails_the_test_and_the_decision_is_made_again() {
    let w = world("sa-east-1", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 5 * MINUTE)]);
    let kind = breakwater_sandbox::kube::store::find_kind("apps", "v1", "deployments").unwrap();
    // Between our read and our patch someone scales the deployment (the template is unchanged):
    // the test fails, the decision is made again on the new state, and the second patch applies.
    w.emu.interject("PATCH", "/deployments/web", move |c| {
        c.patch(
            kind,
            "shop",
            "web",
            "application/merge-patch+json",
            &json!({"spec": {"replicas": 4}}),
            false,
        )
        .unwrap();
    });
    let r = w.handle(w.alarm("c-1", "OK", "ALARM", MINUTE)).await;
    assert_eq!(r["decisions"][0]["outcome"], "rolled-back", "{r}");
    let patches = w.patches();
    let ours: Vec<_> = patches
        .iter()
        .filter(|p| p.content_type == "application/json-patch+json")
        .collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert_eq!(ours[0].status, 422, "the first patch's test failed");
    assert_eq!(ours[1].status, 200);
    assert_eq!(w.image(), "web:1");
    assert_eq!(
        w.deployment()["spec"]["replicas"],
        4,
        "the concurrent change is kept"
    );

    // A concurrent deploy (a new template) between read and patch: re-decided, and the new
    // rollout is younger than the alarm, so nothing is rolled back over it.
    let w = world("sa-east-1", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 5 * MINUTE)]);
    w.emu.interject("PATCH", "/deployments/web", move |c| {
        c.patch(kind, "shop", "web", "application/strategic-merge-patch+json",
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:3"}]}}}}), false)
            .unwrap();
    });
    let r = w.handle(w.alarm("c-2", "OK", "ALARM", MINUTE)).await;
    assert_eq!(r["decisions"][0]["outcome"], "not-acting", "{r}");
    assert!(
        r["decisions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("before the last rollout"),
        "{r}"
    );
    assert_eq!(
        w.image(),
        "web:3",
        "the concurrent deploy is not overwritten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_replayed_webhooks_get_401_and_change_nothing() {
    let w = world("ca-central-1", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 5 * MINUTE)]);
    w.emu.clear_requests();
    let now_s = w.clock.now_ms() / 1000;
    let status = |r: &Value| r["statusCode"].as_u64().unwrap();
    // Signed with another secret, stale, unsigned, a tampered body.
    assert_eq!(
        status(
            &w.handle(w.slack("rollback shop/web", now_s, "not-the-secret"))
                .await
        ),
        401
    );
    assert_eq!(
        status(
            &w.handle(w.slack("rollback shop/web", now_s - 301, SLACK_SECRET))
                .await
        ),
        401
    );
    let mut unsigned = w.slack("rollback shop/web", now_s, SLACK_SECRET);
    unsigned["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-slack-signature");
    assert_eq!(status(&w.handle(unsigned).await), 401);
    let mut tampered = w.slack("rollback shop/web", now_s, SLACK_SECRET);
    tampered["body"] = json!(tampered["body"]
        .as_str()
        .unwrap()
        .replace("alice", "mallory"));
    assert_eq!(status(&w.handle(tampered).await), 401);
    let now = w.clock.now_ms();
    assert_eq!(
        status(
            &w.handle(w.pagerduty("P1", "rollback shop/web", now, "wrong"))
                .await
        ),
        401
    );
    assert_eq!(
        status(
            &w.handle(w.pagerduty(
                "P2",
                "rollback shop/web",
                now - 6 * MINUTE,
                PAGERDUTY_SECRET
            ))
            .await
        ),
        401
    );
    assert!(w.patches().is_empty());
    assert_eq!(w.decisions().await, 0);

    assert!(w.lambda.queued().is_empty(), "nothing was handed on");

    // A good Slack command is acknowledged at once and handed on; the queued invocation rolls
    // back; the same request again is a replay.
    let good = w.slack("rollback shop/web", now_s, SLACK_SECRET);
    let r = w.handle(good.clone()).await;
    assert_eq!(status(&r), 200, "{r}");
    let text: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert!(
        text["text"].as_str().unwrap().starts_with("accepted"),
        "{text}"
    );
    let done = w.run_queued(0).await;
    assert_eq!(done.len(), 1);
    assert!(
        done[0]["text"].as_str().unwrap().starts_with("rolled-back"),
        "{done:?}"
    );
    assert_eq!(w.patches().len(), 1);
    assert_eq!(w.image(), "web:1");
    assert_eq!(status(&w.handle(good).await), 401, "replayed");
    assert_eq!(w.lambda.queued().len(), 1, "a replay is not handed on");
    assert_eq!(w.patches().len(), 1);
    let note = &w.notifications().await[0];
    assert!(
        note.message.contains("slack:U42 (alice)"),
        "{}",
        note.message
    );

    // A signed PagerDuty note, replayed: one decision (in the cool-down), then 401.
    let pd = w.pagerduty("P3", "rollback shop/web", now, PAGERDUTY_SECRET);
    let r = w.handle(pd.clone()).await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(r["body"].as_str().unwrap().contains("accepted"), "{r}");
    let done = w.run_queued(1).await;
    assert!(
        done[0]["text"].as_str().unwrap().contains("cool-down"),
        "{done:?}"
    );
    assert_eq!(status(&w.handle(pd).await), 401);
    assert_eq!(w.lambda.queued().len(), 2);
    assert_eq!(w.patches().len(), 1);
    assert_eq!(w.decisions().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pagerduty_note_whose_hand_off_fails_is_answered_503_and_its_retry_is_taken() {
    // GIVEN a bad deploy, and Lambda failing to queue invocations
    let w = world("ap-northeast-3", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 5 * MINUTE)]);
    w.lambda.fail(true);
    let now = w.clock.now_ms();
    let note = w.pagerduty("R1", "rollback shop/web", now, PAGERDUTY_SECRET);
    // WHEN PagerDuty delivers the signed note
    let r = w.handle(note.clone()).await;
    // THEN it is answered with a 5xx, so PagerDuty delivers it again, and nothing was queued
    assert_eq!(r["statusCode"], 503, "{r}");
    assert!(w.lambda.queued().is_empty());
    // WHEN Lambda recovers and PagerDuty retries the same delivery
    w.lambda.fail(false);
    let again = w.handle(note).await;
    // THEN the retry is taken, not refused as a replay, and queued once
    assert_eq!(again["statusCode"], 200, "{again}");
    assert_eq!(w.lambda.queued().len(), 1);
    assert_eq!(w.lambda.queued()[0].payload["text"], "rollback shop/web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_command_is_acknowledged_before_any_rollback_work_and_carried_out_asynchronously() {
    // GIVEN a bad deploy, and Slack's signing secret in Secrets Manager (not yet read)
    let w = world("ap-northeast-2", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 5 * MINUTE)]);
    w.emu.clear_requests();
    let now_s = w.clock.now_ms() / 1000;
    // WHEN a signed `/breakwater rollback shop/web` arrives at the Function URL
    let started = Instant::now();
    let r = w
        .handle(w.slack("rollback shop/web", now_s, SLACK_SECRET))
        .await;
    let answered_in = started.elapsed();
    // THEN it is answered 200 well inside Slack's 3000 ms (Slack API, "Slash commands":
    // respond within 3000 ms or use response_url), having touched no cluster and decided nothing
    assert_eq!(r["statusCode"], 200, "{r}");
    assert!(
        answered_in < Duration::from_millis(3_000),
        "{answered_in:?}"
    );
    assert!(w.emu.requests().is_empty(), "{:?}", w.emu.requests());
    assert_eq!(w.decisions().await, 0);
    // AND the verified command is queued for an asynchronous invocation of the same function
    let queued = w.lambda.queued();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].function, "rollback");
    assert_eq!(queued[0].invocation_type, "Event");
    assert_eq!(queued[0].payload["command"], "webhook");
    assert_eq!(queued[0].payload["text"], "rollback shop/web");
    assert_eq!(queued[0].payload["requestedBy"], "slack:U42 (alice)");
    let id = queued[0].payload["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("slack-"), "{id}");
    // WHEN Lambda runs it — twice, as an asynchronous invocation may be retried
    let first = w.run_queued(0).await;
    let again = w.handle(queued[0].payload.clone()).await;
    // THEN the rollback is made once and recorded once
    assert!(
        first[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("rolled-back"),
        "{first:?}"
    );
    assert_eq!(again["request"], id.as_str(), "{again}");
    let patches: Vec<_> = w
        .patches()
        .into_iter()
        .filter(|p| p.content_type == "application/json-patch+json")
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(w.image(), "web:1");
    assert_eq!(w.decisions().await, 1);
    // AND a usage error is answered at once, with nothing handed on
    let usage = w.handle(w.slack("please help", now_s, SLACK_SECRET)).await;
    assert!(usage["body"].as_str().unwrap().contains("usage"), "{usage}");
    assert_eq!(w.lambda.queued().len(), 1);
    // AND a body over the limit (16 KiB by default) is refused before anything is read from it
    let mut big = w.slack("rollback shop/web", now_s, SLACK_SECRET);
    big["body"] = json!(format!(
        "text=rollback+shop%2Fweb&pad={}",
        "x".repeat(20_000)
    ));
    assert_eq!(w.handle(big).await["statusCode"], 413);
    assert_eq!(w.lambda.queued().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_slack_users_and_workspaces_and_pagerduty_users_may_roll_back() {
    // GIVEN allow-lists for Slack's users and workspaces and PagerDuty's users
    let w = world(
        "eu-north-1",
        3 * 60 * MINUTE,
        &[
            ("BREAKWATER_ROLLBACK_SLACK_USERS", "U42,U7"),
            ("BREAKWATER_ROLLBACK_SLACK_TEAMS", "T1"),
            ("BREAKWATER_ROLLBACK_PAGERDUTY_USERS", "PBOB42"),
        ],
    )
    .await;
    w.history(&[("web:2", 5 * MINUTE)]);
    w.emu.clear_requests();
    let now_s = w.clock.now_ms() / 1000;
    let now = w.clock.now_ms();
    let body = |r: &Value| r["body"].as_str().unwrap_or_default().to_string();
    // WHEN correctly signed requests come from a listed user of another workspace, an unlisted
    // user of the listed workspace, a note by an unlisted PagerDuty user and one by an
    // integration (no user at all)
    let other_team = w
        .handle(w.slack_as("T999", "U42", "rollback shop/web", now_s, SLACK_SECRET))
        .await;
    let other_user = w
        .handle(w.slack_as("T1", "U666", "rollback shop/web", now_s, SLACK_SECRET))
        .await;
    let pd_user = json!({"id": "PMALLORY", "summary": "Mallory", "type": "user_reference"});
    let pd_other = w
        .handle(w.pagerduty_by(pd_user, "A1", "rollback shop/web", now, PAGERDUTY_SECRET))
        .await;
    let integration =
        json!({"id": "PINTEG1", "summary": "Datadog", "type": "integration_reference"});
    let pd_integration = w
        .handle(w.pagerduty_by(
            integration,
            "A2",
            "rollback shop/web",
            now,
            PAGERDUTY_SECRET,
        ))
        .await;
    // THEN each is answered 200 (PagerDuty retries anything else) with the refusal and the
    // variable that refused it, and nothing is handed on, decided or patched
    assert_eq!(other_team["statusCode"], 200, "{other_team}");
    assert!(
        body(&other_team)
            .contains("(T999) is not allowed to roll back (BREAKWATER_ROLLBACK_SLACK_TEAMS)"),
        "{other_team}"
    );
    assert!(
        body(&other_team).contains("ephemeral"),
        "only the asker sees it: {other_team}"
    );
    assert!(
        body(&other_user)
            .contains("<@U666> is not allowed to roll back (BREAKWATER_ROLLBACK_SLACK_USERS)"),
        "{other_user}"
    );
    for (r, who) in [
        (&pd_other, "Mallory (PMALLORY)"),
        (&pd_integration, "Datadog ()"),
    ] {
        assert_eq!(r["statusCode"], 200, "{r}");
        let answer: Value = serde_json::from_str(&body(r)).unwrap();
        assert_eq!(answer["outcome"], "refused", "{r}");
        assert!(
            answer["reason"].as_str().unwrap().starts_with(&format!(
                "{who} is not allowed to roll back (BREAKWATER_ROLLBACK_PAGERDUTY_USERS)"
            )),
            "{r}"
        );
    }
    assert!(w.lambda.queued().is_empty(), "{:?}", w.lambda.queued());
    assert!(w.emu.requests().is_empty(), "{:?}", w.emu.requests());
    assert_eq!(w.decisions().await, 0);
    assert_eq!(w.image(), "web:2");
    // WHEN a listed user of the listed workspace, and a listed PagerDuty user, ask
    let slack = w
        .handle(w.slack_as("T1", "U7", "rollback shop/web", now_s, SLACK_SECRET))
        .await;
    let pd = w
        .handle(w.pagerduty("A3", "rollback shop/web", now, PAGERDUTY_SECRET))
        .await;
    // THEN both are handed on; the first rolls back (read back from the emulator) and the second
    // finds it done
    assert!(body(&slack).contains("in_channel"), "{slack}");
    assert!(body(&pd).contains("accepted"), "{pd}");
    let queued = w.lambda.queued();
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert_eq!(queued[0].payload["requestedBy"], "slack:U7 (alice)");
    assert_eq!(
        queued[1].payload["requestedBy"],
        "pagerduty:Bob Oncall (incident Q1ABC)"
    );
    w.run_queued(0).await;
    assert_eq!(w.image(), "web:1");
    assert_eq!(w.decisions().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_cased_slack_signature_is_refused_and_cannot_replay_a_captured_request() {
    // GIVEN a captured, correctly signed Slack request
    let w = world("ap-southeast-2", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 5 * MINUTE)]);
    let now_s = w.clock.now_ms() / 1000;
    let captured = w.slack("rollback shop/web", now_s, SLACK_SECRET);
    let signature = captured["headers"]["x-slack-signature"]
        .as_str()
        .unwrap()
        .to_string();
    // WHEN it is replayed with the hex digits of its signature in upper case
    let mut recased = captured.clone();
    recased["headers"]["x-slack-signature"] =
        json!(format!("v0={}", signature[3..].to_ascii_uppercase()));
    let r = w.handle(recased).await;
    // THEN it is refused and nothing is handed on (the same MAC, another spelling)
    assert_eq!(r["statusCode"], 401, "{r}");
    assert!(w.lambda.queued().is_empty());
    // AND the original, sent once, is accepted once; re-cased after it, still refused
    assert_eq!(w.handle(captured.clone()).await["statusCode"], 200);
    let mut after = captured.clone();
    after["headers"]["x-slack-signature"] = json!(format!(
        "v0={}",
        signature[3..].replacen(|c: char| c.is_ascii_lowercase(), "F", 1)
    ));
    assert_eq!(w.handle(after).await["statusCode"], 401);
    assert_eq!(w.lambda.queued().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_secrets_are_read_from_secrets_manager_and_ssm_on_first_use_and_cached() {
    // GIVEN the world's secrets: Slack's in Secrets Manager, PagerDuty's an SSM SecureString
    let w = world("us-west-1", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 5 * MINUTE)]);
    let now_s = w.clock.now_ms() / 1000;
    let now = w.clock.now_ms();
    // WHEN requests signed with them arrive
    let slack = w
        .handle(w.slack("rollback shop/web", now_s, SLACK_SECRET))
        .await;
    let pd = w
        .handle(w.pagerduty("S1", "rollback shop/web", now, PAGERDUTY_SECRET))
        .await;
    // THEN both are verified with the stored secrets
    assert_eq!(slack["statusCode"], 200, "{slack}");
    assert_eq!(pd["statusCode"], 200, "{pd}");
    // WHEN the stored secrets are deleted
    let slack_ref = w.function.settings.slack_secret.clone().unwrap();
    let breakwater::secrets::SecretRef::SecretsManager(name) = slack_ref else {
        panic!("{slack_ref:?}")
    };
    secretsmanager::Client::new(w.direct.config())
        .delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    // THEN the cached value still verifies the next request (no read per request)
    let cached = w
        .handle(w.slack("rollback shop/web", now_s + 1, SLACK_SECRET))
        .await;
    assert_eq!(cached["statusCode"], 200, "{cached}");
    // AND a function with no cached value and no secret to read refuses to judge: 503, nothing queued
    let fresh = RollbackFunction {
        alarms: CloudWatchAlarms::new(w.direct.cloudwatch()),
        kube: KubeClients::new(Some(w.emu.endpoint())).unwrap(),
        toolkit: w.function.toolkit.clone(),
        settings: RollbackSettings::from_env(&Env::from_pairs([
            ("BREAKWATER_ROLLBACK_CLUSTERS", CLUSTER),
            (
                "BREAKWATER_ROLLBACK_SLACK_SECRET_ID",
                format!("secretsmanager:{name}").as_str(),
            ),
        ]))
        .unwrap(),
    };
    let queued = w.lambda.queued().len();
    let r = fresh
        .handle(w.slack("rollback shop/web", now_s + 2, SLACK_SECRET), "t")
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 503, "{r}");
    assert_eq!(w.lambda.queued().len(), queued);
    // AND an SSM parameter that is a plain String is not accepted as a signing secret
    let plain = format!("/{}", unique("breakwater/plain"));
    ssm::Client::new(w.direct.config())
        .put_parameter()
        .name(&plain)
        .value(PAGERDUTY_SECRET)
        .r#type(ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let from_plain = RollbackFunction {
        alarms: CloudWatchAlarms::new(w.direct.cloudwatch()),
        kube: KubeClients::new(Some(w.emu.endpoint())).unwrap(),
        toolkit: w.function.toolkit.clone(),
        settings: RollbackSettings::from_env(&Env::from_pairs([
            ("BREAKWATER_ROLLBACK_CLUSTERS", CLUSTER),
            (
                "BREAKWATER_ROLLBACK_PAGERDUTY_SECRET_ID",
                format!("ssm:{plain}").as_str(),
            ),
        ]))
        .unwrap(),
    };
    let r = from_plain
        .handle(
            w.pagerduty("S2", "rollback shop/web", now, PAGERDUTY_SECRET),
            "t",
        )
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 503, "{r}");
    assert_eq!(w.lambda.queued().len(), queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_alarm_aborts_the_argo_rollout() {
    let w = world(
        "ap-northeast-1",
        MINUTE,
        &[(
            "BREAKWATER_ROLLBACK_ALARMS",
            "checkout-canary-5xx=prod/shop/Rollout/checkout",
        )],
    )
    .await;
    w.at(0);
    w.emu
        .create("rollouts", "shop", canary_rollout("checkout", "checkout"))
        .unwrap();
    let event = alarm_event(
        "a-1",
        &w.region,
        "checkout-canary-5xx",
        &format!(
            "arn:aws:cloudwatch:{}:123456789012:alarm:checkout-canary-5xx",
            w.region
        ),
        "OK",
        "ALARM",
        w.clock.now_ms(),
    );
    let r = w.handle(event).await;
    assert_eq!(r["decisions"][0]["outcome"], "aborted", "{r}");
    let patch = w.patches().pop().unwrap();
    assert!(
        patch.path.ends_with("/rollouts/checkout/status"),
        "{}",
        patch.path
    );
    assert_eq!(patch.content_type, "application/merge-patch+json");
    let rollout = w.emu.get("rollouts", "shop", "checkout").unwrap();
    assert_eq!(rollout["status"]["abort"], true);
    assert_eq!(rollout["status"]["phase"], "Degraded");
    assert_eq!(
        rollout["status"]["canary"]["weights"]["canary"]["weight"],
        0
    );
    assert!(
        r["decisions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("RolloutAborted"),
        "{r}"
    );
}

// ---- Differential: the same emulator state, `kubectl rollout undo` against our rollback ----

/// The same history in any emulator: web:1, web:2, web:3 an hour apart (each survived its bake).
async fn build(emu: &KubeEmulator, paused: bool) {
    emu.create("namespaces", "", json!({"metadata": {"name": "shop"}}))
        .unwrap();
    emu.create(
        "nodes",
        "",
        breakwater_sandbox::kube::fixtures::node("n1", "i-1", "eu-north-1a", "apps", "ON_DEMAND"),
    )
    .unwrap();
    let mut d = deployment("web", "web", 2, "web:1");
    // Applied with `kubectl apply`: kubectl's rollback keeps the Deployment's own
    // last-applied-configuration (its DeploymentRollbacker's annotationsToSkip).
    d["metadata"]["annotations"] = json!({"team": "shop", "kubernetes.io/change-cause": "initial",
        "kubectl.kubernetes.io/last-applied-configuration":
            "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"}}"});
    emu.create("deployments", "shop", d).unwrap();
    for image in ["web:2", "web:3"] {
        emu.advance(60 * MINUTE);
        roll_out(emu, "shop", "web", image).unwrap();
    }
    emu.advance(60 * MINUTE);
    if paused {
        let kind = breakwater_sandbox::kube::store::find_kind("apps", "v1", "deployments").unwrap();
        emu.with(|c| {
            c.patch(
                kind,
                "shop",
                "web",
                "application/merge-patch+json",
                &json!({"spec": {"paused": true}}),
                false,
            )
        })
        .unwrap();
    }
}

fn comparable(emu: &KubeEmulator) -> (Value, Value, Vec<(String, String)>) {
    let d = emu.get("deployments", "shop", "web").unwrap();
    let mut annotations = d["metadata"]["annotations"].clone();
    annotations.as_object_mut().unwrap().remove(CHANGE_CAUSE);
    let mut sets: Vec<(String, String)> = emu
        .list("replicasets")
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["name"].as_str().unwrap().to_string(),
                revision(rs),
            )
        })
        .collect();
    sets.sort();
    (semantic(&d["spec"]), annotations, sets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_rollback_matches_kubectl_rollout_undo() {
    let Some(kubectl) = kubectl() else {
        println!("SKIPPED: no kubectl on PATH (Debian's kubernetes-client provides one)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("bw-undo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // (case, kubectl arguments, our toRevision, paused)
    let cases: [(&str, &[&str], Option<i64>, bool); 4] = [
        ("previous revision", &[], None, false),
        ("chosen revision", &["--to-revision=1"], Some(1), false),
        ("already matching", &["--to-revision=3"], Some(3), false),
        ("paused", &[], None, true),
    ];
    for (case, args, to_revision, paused) in cases {
        let ours = world("eu-north-1", 4 * 60 * MINUTE, &[]).await;
        // The world's scene made its own deployment; this comparison uses a fresh pair of emulators.
        let start = ours.emu.now_ms();
        let theirs_emu = KubeEmulator::start(start, 0.0).await.unwrap();
        let ours_emu = KubeEmulator::start(start, 0.0).await.unwrap();
        build(&theirs_emu, paused).await;
        build(&ours_emu, paused).await;
        assert_eq!(
            comparable(&theirs_emu),
            comparable(&ours_emu),
            "{case}: same start"
        );
        let before = comparable(&ours_emu);

        let config = theirs_emu.write_kubeconfig(&dir).unwrap();
        let mut command = Command::new(&kubectl);
        command
            .env("KUBECONFIG", &config)
            .env("HOME", &dir)
            .args(["rollout", "undo", "deployment/web", "-n", "shop"])
            .args(args);
        let out = command.output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{case}: kubectl: {}", said.trim());

        // Ours, through the whole function (a manual command), against the twin emulator.
        let function = RollbackFunction {
            alarms: CloudWatchAlarms::new(ours.direct.cloudwatch()),
            kube: KubeClients::new(Some(ours_emu.endpoint())).unwrap(),
            toolkit: ours.function.toolkit.clone(),
            settings: ours.function.settings.clone(),
        };
        let mut command = json!({"command": "rollback", "workload": "prod/shop/Deployment/web",
            "requestedBy": "differential", "id": unique("d")});
        if let Some(n) = to_revision {
            command["toRevision"] = json!(n);
        }
        let r = function.handle(command, "t").await.unwrap();
        println!("{case}: ours: {} — {}", r["outcome"], r["reason"]);
        theirs_emu.advance(1_000);
        ours_emu.advance(1_000);
        let (theirs_state, ours_state) = (comparable(&theirs_emu), comparable(&ours_emu));
        assert_eq!(
            theirs_state, ours_state,
            "{case}: kubectl and Breakwater differ"
        );
        match case {
            "previous revision" | "chosen revision" => {
                assert!(
                    out.status.success() && said.contains("rolled back"),
                    "{case}: {said}"
                );
                assert_eq!(r["outcome"], "rolled-back", "{case}: {r}");
                assert_ne!(ours_state, before, "{case}: something changed");
                let cause = ours_emu.get("deployments", "shop", "web").unwrap()["metadata"]
                    ["annotations"][CHANGE_CAUSE]
                    .clone();
                assert!(
                    cause.as_str().unwrap().contains("breakwater rollback"),
                    "{cause}"
                );
                let kept = ours_emu.get("deployments", "shop", "web").unwrap()["metadata"]
                    ["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                    .clone();
                assert!(kept.is_string(), "{case}: last-applied-configuration kept");
            }
            "already matching" => {
                assert!(said.contains("skipped rollback"), "{said}");
                assert_eq!(r["outcome"], "no-op", "{r}");
                assert_eq!(ours_state, before);
            }
            _ => {
                assert!(!out.status.success() && said.contains("paused"), "{said}");
                assert_eq!(r["outcome"], "refused", "{r}");
                assert_eq!(ours_state, before);
            }
        }
        let ours_patches = ours_emu
            .requests()
            .into_iter()
            .filter(|q| q.method == "PATCH")
            .count();
        let theirs_patches = theirs_emu
            .requests()
            .into_iter()
            .filter(|q| q.method == "PATCH")
            .count();
        assert_eq!(
            ours_patches, theirs_patches,
            "{case}: as many patches as kubectl sent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_patch_is_finished_by_the_retry_without_a_second_patch() {
    use breakwater_sandbox::proxy::{Fault, FaultProxy, Rule};
    let w = world("us-east-2", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 5 * MINUTE)]);
    w.emu.clear_requests();
    let proxy = Arc::new(FaultProxy::start(&moto().endpoint(), 11).await.unwrap());
    let aws = Arc::new(Aws::for_endpoint(&proxy.endpoint(), &w.region).await);
    let function = RollbackFunction {
        alarms: CloudWatchAlarms::new(aws.cloudwatch()),
        kube: KubeClients::new(Some(w.emu.endpoint())).unwrap(),
        toolkit: Toolkit::with_aws(
            w.function.toolkit.settings.clone(),
            aws,
            Arc::new(w.clock.clone()),
        ),
        settings: w.function.settings.clone(),
    };
    // When the patch reaches the cluster, S3 starts dropping writes: the records after the patch
    // fail (the SDK's three attempts), the invocation fails, and the event is delivered again.
    let p = proxy.clone();
    w.emu.interject("PATCH", "/deployments/web", move |_| {
        p.add_rule(
            Rule::always(Fault::Drop)
                .service("s3")
                .operation("PutObject")
                .times(3),
        )
    });
    let event = w.alarm("crash-1", "OK", "ALARM", MINUTE);
    let first = function.handle(event.clone(), "attempt-1").await;
    assert!(first.is_err(), "{first:?}");
    assert_eq!(w.image(), "web:1", "the patch itself went through");
    assert!(
        w.notifications().await.is_empty(),
        "nothing was announced yet"
    );
    let second = function.handle(event, "attempt-2").await.unwrap();
    let d = &second["decisions"][0];
    assert_eq!(d["outcome"], "rolled-back", "{second}");
    assert!(
        d["reason"].as_str().unwrap().contains("earlier attempt"),
        "{d}"
    );
    assert_eq!(
        (d["from_revision"].as_i64(), d["to_revision"].as_i64()),
        (Some(2), Some(1))
    );
    let patches: Vec<_> = w
        .patches()
        .into_iter()
        .filter(|p| p.content_type == "application/json-patch+json")
        .collect();
    assert_eq!(patches.len(), 1, "one patch in all: {patches:?}");
    assert_eq!(w.notifications().await.len(), 1);
    assert_eq!(w.decisions().await, 1);
    // The bake was scheduled by the retry: the tick after the window verifies it.
    w.clock.advance(Duration::from_millis(11 * MINUTE));
    w.at(0);
    let tick = w.handle(w.tick()).await;
    assert_eq!(tick["checked"][0]["outcome"], "verified", "{tick}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_the_signed_slack_command_from_events_once() {
    use breakwater_sandbox::runtime::FunctionProcess;
    let w = world("eu-central-1", 3 * 60 * MINUTE, &[]).await;
    w.history(&[("web:2", 5 * MINUTE)]);
    w.emu.clear_requests();
    // The files are signed with this secret; the binary finds it in Secrets Manager, named by
    // its ARN (what the template's parameter holds and its role is granted on).
    let slack_arn = secretsmanager::Client::new(w.direct.config())
        .create_secret()
        .name(unique("breakwater/slack"))
        .secret_string("sandbox-slack-signing-secret")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let env: Vec<(String, String)> = [
        // Every AWS call goes to moto, except Lambda's Invoke (the hand-off), answered here.
        ("AWS_ENDPOINT_URL", w.lambda.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        (
            "BREAKWATER_STATE_BUCKET",
            w.estate.primary.state_bucket.clone(),
        ),
        ("BREAKWATER_TOPIC_ARN", w.estate.primary.topic_arn.clone()),
        ("BREAKWATER_ROLLBACK_CLUSTERS", CLUSTER.into()),
        ("BREAKWATER_KUBE_ENDPOINT", w.emu.endpoint()),
        ("BREAKWATER_ROLLBACK_SLACK_SECRET_ID", slack_arn),
        // The files are signed at 2026-11-23T04:00Z: the binary's clock starts there.
        ("BREAKWATER_SANDBOX_NOW_MS", "1795406400000".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let binary = breakwater_sandbox::bin_dir("debug").join("rollback");
    let mut function = FunctionProcess::start(&binary, "rollback", &w.region, &env)
        .await
        .unwrap();
    let file = |name: &str| -> Value {
        let path = breakwater_sandbox::workspace_root()
            .join("events/rollback")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let forged = function
        .invoke(&file("slack-command-forged.json"))
        .await
        .unwrap();
    assert_eq!(
        forged.outcome.unwrap()["statusCode"],
        401,
        "{:#?}",
        function.output()
    );
    let signed = file("slack-command.json");
    let r = function.invoke(&signed).await.unwrap().outcome.unwrap();
    assert_eq!(r["statusCode"], 200, "{r} {:#?}", function.output());
    assert!(r["body"].as_str().unwrap().contains("accepted"), "{r}");
    assert!(w.patches().is_empty(), "acknowledged before acting");
    // Lambda runs the queued invocation: the same binary, an `Event` invocation of itself.
    let queued = w.lambda.queued();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(
        (
            queued[0].function.as_str(),
            queued[0].invocation_type.as_str()
        ),
        ("rollback", "Event")
    );
    let done = function
        .invoke(&queued[0].payload)
        .await
        .unwrap()
        .outcome
        .unwrap();
    assert!(
        done["text"].as_str().unwrap().starts_with("rolled-back"),
        "{done}"
    );
    let replay = function.invoke(&signed).await.unwrap().outcome.unwrap();
    assert_eq!(replay["statusCode"], 401);
    function.kill().await;
    assert_eq!(w.image(), "web:1");
    assert_eq!(w.patches().len(), 1);
    assert_eq!(w.lambda.queued().len(), 1);
    let note = &w.notifications().await[0];
    assert!(
        note.message.contains("slack:U2147483697 (alice)"),
        "{}",
        note.message
    );
}

// ---- GitOps owners: the emulator's Argo CD and Flux controllers self-heal and correct drift,
// so a rollback that did not suspend them would be undone (shown first, each time).

const SHOP_REPO: &str = "https://git.example.com/shop/deploy.git";
const ROOT_REPO: &str = "https://git.example.com/platform/apps.git";

fn argo_application(name: &str, repo: &str, destination: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"project": "default",
            "source": {"repoURL": repo, "targetRevision": "HEAD", "path": "."},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": destination},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}}})
}

/// The manifest of `shop/web` as a repository holds it: the live Deployment's template with
/// `image`.
fn web_manifest(w: &World, image: &str) -> Value {
    let live = w.deployment();
    let mut template = live["spec"]["template"].clone();
    template["spec"]["containers"][0]["image"] = json!(image);
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 3, "selector": live["spec"]["selector"], "template": template}})
}

/// A person's `kubectl rollout undo`-like edit of the image, outside Git.
fn edit_image(w: &World, image: &str) {
    let kind = breakwater_sandbox::kube::store::find_kind("apps", "v1", "deployments").unwrap();
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}});
    w.emu
        .with(|c| {
            c.patch(
                kind,
                "shop",
                "web",
                "application/strategic-merge-patch+json",
                &patch,
                false,
            )
        })
        .unwrap();
}

/// Pushes web:2 four minutes ago (the GitOps owner applies it) and shows, as the control, that
/// the owner undoes a rollback made outside Git; the bad commit's id.
fn push_bad_deploy(w: &World) -> String {
    w.at(4 * MINUTE);
    let bad = web_manifest(w, "web:2");
    let sha = w.emu.with(|c| c.git_push(SHOP_REPO, vec![bad]));
    w.at(0);
    assert_eq!(w.image(), "web:2");
    edit_image(w, "web:1");
    pass(w, 1_000);
    assert_eq!(
        w.image(),
        "web:2",
        "the owner undid a rollback made outside Git"
    );
    sha
}

/// Lets the emulator's controllers run for `ms` of function and emulator time.
fn pass(w: &World, ms: u64) {
    w.clock.advance(Duration::from_millis(ms));
    w.at(0);
}

fn gitops_requests_are_granted(w: &World) {
    let requests: Vec<_> = w
        .emu
        .requests()
        .into_iter()
        .filter(|r| {
            r.path.contains("argoproj.io/v1alpha1/namespaces/argocd")
                || r.path.contains("fluxcd.io")
        })
        .collect();
    crate::common::assert_rbac_allows(
        include_str!("../../deploy/kubernetes/rollback-rbac.yaml"),
        &requests,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argo_cd_owned_deployment_is_rolled_back_against_self_heal_and_resumed_when_git_moves_on(
) {
    // GIVEN web:1 running for hours, adopted by Argo CD application `shop` (automated, prune,
    // self-heal), which the app-of-apps `apps` creates and keeps in sync from its own repository
    let w = world("eu-west-3", 4 * 60 * MINUTE, &[]).await;
    w.emu
        .create("namespaces", "", json!({"metadata": {"name": "argocd"}}))
        .unwrap();
    w.emu
        .create(
            "applications",
            "argocd",
            argo_application("apps", ROOT_REPO, "argocd"),
        )
        .unwrap();
    let first = web_manifest(&w, "web:1");
    w.emu.with(|c| {
        c.git_push(ROOT_REPO, vec![argo_application("shop", SHOP_REPO, "shop")]);
        c.git_push(SHOP_REPO, vec![first]);
    });
    let shop = w
        .emu
        .get("applications", "argocd", "shop")
        .expect("the root application created it");
    assert_eq!(shop["status"]["sync"]["status"], "Synced", "{shop}");
    assert_eq!(
        w.deployment()["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        "shop:apps/Deployment:shop/web"
    );
    assert_eq!(revision(&w.deployment()), "1");
    // WHEN web:2 is pushed 4 minutes ago: Argo CD syncs it; self-heal undoes a rollback made
    // outside Git (the control), and the root application puts back a child's automated policy
    // removed by hand (argo-cd #5351)
    let bad_sha = push_bad_deploy(&w);
    let kind =
        breakwater_sandbox::kube::store::find_kind("argoproj.io", "v1alpha1", "applications")
            .unwrap();
    let off = json!([{"op": "remove", "path": "/spec/syncPolicy/automated"}]);
    w.emu
        .with(|c| {
            c.patch(
                kind,
                "argocd",
                "shop",
                "application/json-patch+json",
                &off,
                false,
            )
        })
        .unwrap();
    pass(&w, 1_000);
    assert!(
        w.emu.get("applications", "argocd", "shop").unwrap()["spec"]["syncPolicy"]["automated"]
            .is_object()
    );
    w.emu.clear_requests();

    // WHEN the latency alarm fires
    let r = w.handle(w.alarm("gitops-1", "OK", "ALARM", MINUTE)).await;
    let decision = &r["decisions"][0];
    assert_eq!(decision["outcome"], "rolled-back", "{r}");
    let reason = decision["reason"].as_str().unwrap();
    assert!(
        reason.contains("Argo CD Application argocd/shop")
            && reason.contains("its parent argocd/apps")
            && reason.contains(&format!("until Git moves past {bad_sha}")),
        "{reason}"
    );
    // THEN the rollback holds: both applications' automated sync is off, with a note; Argo CD
    // sees the drift and leaves it
    pass(&w, 5_000);
    assert_eq!(w.image(), "web:1", "the rollback held against self-heal");
    for name in ["shop", "apps"] {
        let app = w.emu.get("applications", "argocd", name).unwrap();
        assert!(
            app["spec"]["syncPolicy"].get("automated").is_none(),
            "{name}: {app}"
        );
        let note = app["metadata"]["annotations"][rollback::gitops::SUSPENDED]
            .as_str()
            .unwrap();
        assert!(
            note.contains("breakwater rolled back prod/shop/Deployment/web"),
            "{note}"
        );
    }
    let shop = w.emu.get("applications", "argocd", "shop").unwrap();
    assert_eq!(shop["status"]["sync"]["status"], "OutOfSync");
    assert_eq!(
        w.deployment()["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        "shop:apps/Deployment:shop/web",
        "still the application's"
    );
    // WHEN the schedule ticks and Git has not moved THEN it stays suspended
    let r = w.handle(w.tick()).await;
    assert_eq!(r["gitops"][0]["outcome"], "suspended", "{r}");
    // WHEN a commit that does not touch web lands (Git moves, but still holds web:2): the tick
    // resumes, and the resumed sync puts web:2 back
    let same = web_manifest(&w, "web:2");
    let unrelated = w.emu.with(|c| c.git_push(SHOP_REPO, vec![same]));
    pass(&w, 1_000);
    let r = w.handle(w.tick()).await;
    assert_eq!(r["gitops"][0]["outcome"], "sync-resumed", "{r}");
    pass(&w, 1_000);
    assert_eq!(
        w.image(),
        "web:2",
        "the resumed sync put the bad revision back"
    );
    // THEN the guard's next tick rolls it back again at once (no alarm, no cool-down wait) and
    // suspends the owners again, now until Git moves past the unrelated commit
    let r = w.handle(w.tick()).await;
    let again = &r["gitops"][0];
    assert_eq!(again["outcome"], "rolled-back", "{r}");
    assert!(
        again["trigger"]
            .as_str()
            .unwrap()
            .starts_with("breakwater guard: the resumed GitOps sync put back revision"),
        "{r}"
    );
    assert!(
        again["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("until Git moves past {unrelated}")),
        "{r}"
    );
    pass(&w, 5_000);
    assert_eq!(w.image(), "web:1", "rolled back again, and it holds");
    // WHEN the fix is pushed: Argo CD compares with it, but does not sync by itself
    let fix = web_manifest(&w, "web:3");
    let fix_sha = w.emu.with(|c| c.git_push(SHOP_REPO, vec![fix]));
    pass(&w, 1_000);
    assert_eq!(
        w.emu.get("applications", "argocd", "shop").unwrap()["status"]["sync"]["revision"],
        json!(fix_sha)
    );
    assert_eq!(w.image(), "web:1");
    // THEN the next tick resumes both, exactly as they were, and Argo CD syncs the fix
    let r = w.handle(w.tick()).await;
    assert_eq!(r["gitops"][0]["outcome"], "sync-resumed", "{r}");
    assert!(
        r["gitops"][0]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("now {fix_sha}")),
        "{r}"
    );
    pass(&w, 1_000);
    for name in ["shop", "apps"] {
        let app = w.emu.get("applications", "argocd", name).unwrap();
        assert_eq!(
            app["spec"]["syncPolicy"]["automated"],
            json!({"prune": true, "selfHeal": true}),
            "{name}"
        );
        assert!(
            app["metadata"]["annotations"]
                .get(rollback::gitops::SUSPENDED)
                .is_none(),
            "{name}"
        );
    }
    assert_eq!(w.image(), "web:3", "the fix is synced");
    let notes = w.notifications().await;
    assert!(
        notes.iter().any(|n| n.subject.contains("sync-resumed")),
        "{notes:?}"
    );
    // Every request the function sent was one the RBAC file grants.
    gitops_requests_are_granted(&w);
    // The real kubectl reads the Application through the emulator's discovery, as a person would.
    if let Some(kubectl) = kubectl() {
        let dir = std::env::temp_dir().join(format!("bw-argo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = w.emu.write_kubeconfig(&dir).unwrap();
        let out = Command::new(&kubectl)
            .env("KUBECONFIG", &config)
            .env("HOME", &dir)
            .args(["get", "applications.argoproj.io", "shop", "-n", "argocd"])
            .args(["-o", "jsonpath={.spec.syncPolicy.automated}"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            serde_json::from_str::<Value>(&said).unwrap(),
            json!({"prune": true, "selfHeal": true})
        );
    }
    // The guard watches the fix for a bake window, then lets the workload go.
    let r = w.handle(w.tick()).await;
    assert_eq!(r["gitops"][0]["outcome"], "guarding", "{r}");
    pass(&w, 11 * MINUTE);
    let r = w.handle(w.tick()).await;
    assert_eq!(r["gitops"][0]["outcome"], "nothing-suspended", "{r}");
    let r = w.handle(w.tick()).await;
    assert_eq!(r["gitops"], json!([]), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flux_owned_deployment_is_rolled_back_with_its_kustomization_suspended_and_resumed_when_the_source_moves(
) {
    // GIVEN web:2 applied by Kustomization flux-system/shop from GitRepository flux-system/shop
    let w = world("eu-south-1", 4 * 60 * MINUTE, &[]).await;
    w.emu
        .create(
            "namespaces",
            "",
            json!({"metadata": {"name": "flux-system"}}),
        )
        .unwrap();
    let first = web_manifest(&w, "web:1");
    w.emu.with(|c| c.git_push(SHOP_REPO, vec![first]));
    w.emu
        .create(
            "gitrepositories",
            "flux-system",
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository", "metadata": {"name": "shop", "namespace": "flux-system"},
        "spec": {"url": SHOP_REPO, "interval": "1m", "ref": {"branch": "main"}}}),
        )
        .unwrap();
    w.emu
        .create(
            "kustomizations",
            "flux-system",
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization", "metadata": {"name": "shop", "namespace": "flux-system"},
        "spec": {"interval": "5m", "path": "./", "prune": true, "targetNamespace": "shop",
            "sourceRef": {"kind": "GitRepository", "name": "shop"}}}),
        )
        .unwrap();
    assert_eq!(
        w.deployment()["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"],
        "shop"
    );
    // Control: Flux corrects a rollback made outside Git.
    let bad_sha = push_bad_deploy(&w);
    w.emu.clear_requests();

    // WHEN the latency alarm fires
    let r = w.handle(w.alarm("flux-1", "OK", "ALARM", MINUTE)).await;
    let decision = &r["decisions"][0];
    assert_eq!(decision["outcome"], "rolled-back", "{r}");
    let reason = decision["reason"].as_str().unwrap();
    assert!(
        reason.contains("Flux Kustomization flux-system/shop")
            && reason.contains(&format!("until Git moves past main@sha1:{bad_sha}")),
        "{reason}"
    );
    // THEN the Kustomization is suspended and the rollback holds
    pass(&w, 5_000);
    assert_eq!(w.image(), "web:1");
    let ks = w.emu.get("kustomizations", "flux-system", "shop").unwrap();
    assert_eq!(ks["spec"]["suspend"], true, "{ks}");
    let r = w.handle(w.tick()).await;
    assert_eq!(r["gitops"][0]["outcome"], "suspended", "{r}");
    // WHEN the fix is pushed THEN the tick resumes it and Flux applies the fix
    let fix = web_manifest(&w, "web:3");
    w.emu.with(|c| c.git_push(SHOP_REPO, vec![fix]));
    pass(&w, 1_000);
    assert_eq!(w.image(), "web:1", "suspended: nothing applied");
    let r = w.handle(w.tick()).await;
    assert_eq!(r["gitops"][0]["outcome"], "sync-resumed", "{r}");
    pass(&w, 1_000);
    let ks = w.emu.get("kustomizations", "flux-system", "shop").unwrap();
    assert_eq!(ks["spec"]["suspend"], false, "{ks}");
    assert!(ks["metadata"]["annotations"]
        .get(rollback::gitops::SUSPENDED)
        .is_none());
    assert_eq!(w.image(), "web:3");
    gitops_requests_are_granted(&w);
}

// ---- Argo Rollouts: one registry of revisions that alarmed, shared with Deployments

fn checkout_rollout(image: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "checkout", "namespace": "shop", "labels": {"app": "checkout"}},
        "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "checkout"}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}]}},
            "template": {"metadata": {"labels": {"app": "checkout"}},
                "spec": {"containers": [{"name": "checkout", "image": image}]}}}})
}

/// A merge patch of the Rollout `shop/checkout` (of its status subresource with `status_only`).
fn patch_checkout(w: &World, patch: &Value, status_only: bool) {
    let kind =
        breakwater_sandbox::kube::store::find_kind("argoproj.io", "v1alpha1", "rollouts").unwrap();
    w.emu
        .with(|c| {
            c.patch(
                kind,
                "shop",
                "checkout",
                "application/merge-patch+json",
                patch,
                status_only,
            )
        })
        .unwrap();
}

/// A new image for the Rollout (what `kubectl argo rollouts set image` does).
fn set_rollout_image(w: &World, image: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "checkout", "image": image}]}}}});
    patch_checkout(w, &patch, false);
}

/// A person's `kubectl argo rollouts retry` and `promote --full` (status patches).
fn promote_by_hand(w: &World) {
    patch_checkout(
        w,
        &json!({"status": {"abort": false, "promoteFull": true}}),
        true,
    );
}

fn checkout(w: &World) -> Value {
    w.emu.get("rollouts", "shop", "checkout").unwrap()
}

fn checkout_image(w: &World) -> Value {
    checkout(w)["spec"]["template"]["spec"]["containers"][0]["image"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_rollout_is_rolled_back_past_the_canary_that_alarmed_and_promoted_at_once() {
    let w = world(
        "ca-central-1",
        4 * 60 * MINUTE,
        &[
            (
                "BREAKWATER_ROLLBACK_ALARMS",
                "checkout-p95=prod/shop/Rollout/checkout",
            ),
            ("BREAKWATER_ROLLBACK_COOLDOWN_MINUTES", "1"),
        ],
    )
    .await;
    // The alarm exists (the bake reads it back): P95 latency of checkout's load balancer.
    let arn = breakwater_sandbox::rollback_scene::put_latency_alarm(
        w.direct.config(),
        &w.region,
        "checkout-p95",
        "app/checkout/50dc6c495c0c9189",
        CLUSTER,
        "shop",
        "checkout",
    )
    .await
    .unwrap();
    let alarm = |id: &str| {
        alarm_event(
            id,
            &w.region,
            "checkout-p95",
            &arn,
            "OK",
            "ALARM",
            w.clock.now_ms() - MINUTE,
        )
    };
    // GIVEN checkout:1, then checkout:2 canaried and promoted three hours ago
    w.emu
        .create("rollouts", "shop", checkout_rollout("checkout:1"))
        .unwrap();
    assert_eq!(checkout(&w)["status"]["phase"], "Healthy");
    w.at(3 * 60 * MINUTE);
    set_rollout_image(&w, "checkout:2");
    assert_eq!(
        checkout(&w)["status"]["phase"],
        "Paused",
        "the canary stops at its pause step"
    );
    promote_by_hand(&w);
    let good = checkout(&w)["status"]["stableRS"].clone();
    // AND checkout:3 at its 20 % canary step when its alarm fires: aborted, and remembered bad
    w.at(10 * MINUTE);
    set_rollout_image(&w, "checkout:3");
    w.at(0);
    let r = w.handle(alarm("c-1")).await;
    assert_eq!(r["decisions"][0]["outcome"], "aborted", "{r}");
    assert_eq!(checkout(&w)["status"]["phase"], "Degraded");
    let bad = checkout(&w)["status"]["currentPodHash"].clone();
    // WHEN a person retries and promotes it fully anyway, and the alarm fires again
    promote_by_hand(&w);
    assert_eq!(
        checkout(&w)["status"]["stableRS"],
        bad,
        "checkout:3 fully promoted"
    );
    pass(&w, 2 * MINUTE);
    w.emu.clear_requests();
    let r = w.handle(alarm("c-2")).await;
    // THEN it is rolled back to checkout:2 (the newest that survived its bake and never alarmed)
    // as `kubectl argo rollouts undo` does, and promoted at once rather than canaried again
    let decision = &r["decisions"][0];
    assert_eq!(decision["outcome"], "rolled-back", "{r}");
    assert_eq!(decision["to_revision"], 2, "{r}");
    assert!(
        decision["reason"]
            .as_str()
            .unwrap()
            .contains("promoted fully"),
        "{r}"
    );
    let now = checkout(&w);
    assert_eq!(checkout_image(&w), "checkout:2");
    assert_eq!(
        (
            now["status"]["stableRS"].clone(),
            now["status"]["phase"].clone()
        ),
        (good, json!("Healthy"))
    );
    assert_eq!(
        now["metadata"]["annotations"]["rollout.argoproj.io/revision"], "4",
        "a rollback is a new revision"
    );
    let paths: Vec<String> = w.patches().iter().map(|p| p.path.clone()).collect();
    assert!(
        paths.iter().any(|p| p.ends_with("/rollouts/checkout")),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.ends_with("/rollouts/checkout/status")),
        "{paths:?}"
    );
    crate::common::assert_rbac_allows(
        include_str!("../../deploy/kubernetes/rollback-rbac.yaml"),
        &w.emu.requests(),
    );
    // WHEN a person asks for checkout:3's revision THEN it is refused: it alarmed
    pass(&w, 2 * MINUTE);
    let ask = json!({"command": "rollback", "workload": "prod/shop/Rollout/checkout",
        "toRevision": 3, "requestedBy": "alice", "id": unique("ask")});
    let r = w.handle(ask).await;
    assert_eq!(r["outcome"], "refused", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("tripped alarm checkout-p95"),
        "{r}"
    );
    // AND the bake window ends with the rollback verified: checkout:2 stable and Healthy
    pass(&w, 11 * MINUTE);
    let r = w.handle(w.tick()).await;
    let verified: Vec<&Value> = r["checked"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["workload"] == "prod/shop/Rollout/checkout")
        .collect();
    assert_eq!(verified[0]["outcome"], "verified", "{r}");
}
