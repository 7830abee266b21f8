//! The bad-input corpus: every function's real binary, configured over a scene it would act on,
//! is sent truncated JSON, wrong types, unknown detail types, oversized and deeply nested payloads,
//! events from another account or region, near misses (`events/bad/<function>/`) and forged
//! requests. Each must be refused with an error (or an HTTP 4xx), the process must live on, and
//! nothing may change: no mutating call reaches moto through the counting proxy, no write reaches
//! the Kubernetes emulator. A last, valid event per function must then act, so the counting
//! itself is shown to see mutations.

use std::path::PathBuf;

use breakwater::clock::Clock;
use breakwater_sandbox::kube::KubeEmulator;
use breakwater_sandbox::proxy::FaultProxy;
use breakwater_sandbox::runtime::FunctionProcess;
use breakwater_sandbox::seed::{seed, Estate, ACCOUNT};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::common::{aws, unique};

crate::common::moto_server!();

const REGION: &str = "us-east-1";
const SECONDARY: &str = "us-west-2";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Names of the files of `events/<function>/` that are bad on purpose.
fn bad_by_name(name: &str) -> bool {
    ["malformed", "forged", "wrong", "unknown"]
        .iter()
        .any(|m| name.contains(m))
}

fn files(dir: &PathBuf) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The corpus for one function: `(what, bytes)`.
fn corpus(function: &str) -> Vec<(String, Bytes)> {
    let mut cases: Vec<(String, Bytes)> = Vec::new();
    let mut add = |what: String, body: Vec<u8>| cases.push((what, Bytes::from(body)));
    for (name, body) in files(&root().join("events/bad").join(function)) {
        add(format!("events/bad/{function}/{name}"), body);
    }
    let own = files(&root().join("events").join(function));
    for (name, body) in &own {
        if bad_by_name(name) {
            add(format!("events/{function}/{name}"), body.clone());
            continue;
        }
        add(
            format!("truncated events/{function}/{name}"),
            body[..body.len() / 2].to_vec(),
        );
        let Ok(mut event) = serde_json::from_slice::<Value>(body) else {
            continue;
        };
        if event.get("detail-type").is_some() {
            let mut other = event.clone();
            other["account"] = json!("210987654321");
            add(
                format!("events/{function}/{name} from another account"),
                other.to_string().into_bytes(),
            );
            other = event.clone();
            other["region"] = json!("ap-south-1");
            add(
                format!("events/{function}/{name} from another region"),
                other.to_string().into_bytes(),
            );
            if event["detail-type"] == "Scheduled Event" {
                continue; // its detail is `{}` and read by nobody
            }
            event["detail"] = json!(["not", "an", "object"]);
            add(
                format!("events/{function}/{name} with detail of the wrong type"),
                event.to_string().into_bytes(),
            );
        } else if event.get("command").is_some() {
            event["command"] = json!(["status"]);
            add(
                format!("events/{function}/{name} with command of the wrong type"),
                event.to_string().into_bytes(),
            );
        }
    }
    for (what, body) in [
        ("an empty body", String::new()),
        ("a JSON array", "[1, 2, 3]".into()),
        ("a JSON string", "\"rollback everything\"".into()),
        ("JSON null", "null".into()),
        ("a number", "42".into()),
        ("an empty object", "{}".into()),
        ("not JSON at all", "<xml>hello</xml>".into()),
        ("10,000 nested arrays", "[".repeat(10_000) + &"]".repeat(10_000)),
        (
            "a 1 MiB command name",
            json!({"command": "x".repeat(1 << 20)}).to_string(),
        ),
        (
            "an unknown command",
            json!({"command": "self-destruct", "id": "bad-1"}).to_string(),
        ),
        (
            "an unknown detail type",
            json!({"version": "0", "id": "bad-2", "detail-type": "Totally Unknown", "source": "aws.ec2",
                "account": ACCOUNT, "time": "2026-11-23T04:00:00Z", "region": REGION, "resources": [], "detail": {}})
            .to_string(),
        ),
        (
            "a 2 MiB detail with an unknown detail type",
            json!({"version": "0", "id": "bad-3", "detail-type": "Totally Unknown", "source": "aws.ec2",
                "account": ACCOUNT, "time": "2026-11-23T04:00:00Z", "region": REGION, "resources": [],
                "detail": {"padding": vec![0u8; 1 << 20]}})
            .to_string(),
        ),
    ] {
        add(what.to_string(), body.into_bytes());
    }
    cases
}

/// A function under test and what watches it.
struct Subject {
    name: &'static str,
    process: FunctionProcess,
    proxy: FaultProxy,
    kube: Option<KubeEmulator>,
}

/// Whether an answer refuses: an `ignored`, `unmapped` or `unknown-message` outcome (events
/// that are well-formed but need nothing; bad input itself is an `InvalidEvent` error, an SNS
/// delivery with one bad record included), an SNS delivery whose every record was refused as
/// above, or an HTTP 4xx from the Function URL.
fn refusal(answer: &Value) -> bool {
    let outcome = answer["outcome"].as_str().unwrap_or_default();
    matches!(outcome, "ignored" | "unmapped" | "unknown-message")
        || (outcome == "sns"
            && answer["records"]
                .as_array()
                .is_some_and(|r| !r.is_empty() && r.iter().all(refusal)))
        || answer["statusCode"]
            .as_u64()
            .is_some_and(|s| (400..500).contains(&s))
}

impl Subject {
    fn mutations(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .proxy
            .calls()
            .into_iter()
            .filter(|c| c.mutates())
            .map(|c| format!("{} {} {}", c.service, c.operation, c.path))
            .collect();
        if let Some(kube) = &self.kube {
            out.extend(
                kube.requests()
                    .into_iter()
                    .filter(|r| r.method != "GET")
                    .map(|r| format!("kube {} {}", r.method, r.path)),
            );
        }
        out
    }

    /// The control: a valid event acts, and the counting sees the change it made.
    async fn acts_on(&mut self, event: &Value, change: &str) -> Value {
        let answer = self.process.invoke(event).await.unwrap();
        assert!(
            answer.outcome.is_ok(),
            "{}: {:?}",
            self.name,
            answer.outcome
        );
        let changed = self.mutations();
        assert!(
            changed.iter().any(|m| m.contains(change)),
            "{}: the control changed {changed:?}",
            self.name
        );
        answer.outcome.unwrap_or_default()
    }

    /// Sends the whole corpus; returns what went wrong, one line per case.
    async fn refuses_everything(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        let cases = corpus(self.name);
        assert!(cases.len() >= 20, "{}: {} cases", self.name, cases.len());
        for (what, body) in cases {
            let before = self.mutations().len();
            let invocation = match self.process.invoke_raw(body.clone()).await {
                Ok(i) => i,
                Err(e) => {
                    failures.push(format!("{what}: the function did not answer: {e}"));
                    break;
                }
            };
            // An error refuses only as `InvalidEvent`: any other type (an AWS error, a caught
            // panic, a timeout) would be retried by Lambda and is a defect, not a refusal. A body
            // that is not JSON at all never reaches a function on AWS (Lambda's Invoke API answers
            // it with InvalidRequestContentException); here the runtime's own deserializer refuses
            // it before the handler, and that is the one other refusal allowed, as it is for JSON
            // nested deeper than serde_json reads (128 levels).
            let is_json = serde_json::from_slice::<Value>(&body).is_ok();
            let refused = match &invocation.outcome {
                Err(e) if !is_json => e.error_type.ends_with("DeserializeError"),
                Err(e) => e.error_type == "InvalidEvent",
                Ok(v) => refusal(v),
            };
            if !refused {
                let mut shown = format!("{:?}", invocation.outcome);
                shown.truncate(300);
                failures.push(format!("{what}: not refused as InvalidEvent: {shown}"));
            }
            let mut after = self.mutations().split_off(before);
            // The one write a bad input may cause: budget's spec wants an unrecognised message on
            // its topic told to a person, once (`unknown`: alert, do not act).
            if matches!(&invocation.outcome, Ok(v) if v["outcome"] == "unknown-message") {
                after.retain(|m| !(m.contains("/idempotency/budget/") || m == "sns Publish /"));
            }
            if !after.is_empty() {
                failures.push(format!("{what}: changed {after:?}"));
            }
        }
        failures
    }
}

fn base_env(endpoint: &str, estate: &Estate) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        (
            "BREAKWATER_STATE_BUCKET",
            estate.primary.state_bucket.clone(),
        ),
        ("BREAKWATER_TOPIC_ARN", estate.primary.topic_arn.clone()),
        ("BREAKWATER_ACCOUNT_ID", ACCOUNT.into()),
        ("BREAKWATER_PRIMARY_REGION", REGION.into()),
        ("BREAKWATER_SECONDARY_REGION", SECONDARY.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

async fn start(
    name: &'static str,
    estate: &Estate,
    extra: Vec<(String, String)>,
    kube: Option<KubeEmulator>,
    region: &str,
) -> Subject {
    let proxy = FaultProxy::start(&moto().endpoint(), 1).await.unwrap();
    let mut env = base_env(&proxy.endpoint(), estate);
    env.extend(extra);
    let binary = breakwater_sandbox::bin_dir("debug").join(name);
    let mut process = FunctionProcess::start(&binary, name, region, &env)
        .await
        .unwrap();
    process.wait_init().await.unwrap();
    Subject {
        name,
        process,
        proxy,
        kube,
    }
}

async fn estate(prefix: &str) -> (Estate, breakwater::aws::Aws, String) {
    let direct = aws(&moto().endpoint(), REGION).await;
    let suffix = format!("-{}", unique(prefix));
    let estate = seed(direct.config(), REGION, SECONDARY, &suffix)
        .await
        .unwrap();
    (estate, direct, suffix)
}

fn assert_refused(name: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{name}: {} bad inputs were not refused cleanly:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_refuses_the_corpus_and_changes_nothing() {
    use breakwater_sandbox::scenes::{budget_alert_text, budget_scene, set_spend, sns_event};
    let (estate, direct, suffix) = estate("bad-budget").await;
    let config = direct.config();
    let scene = budget_scene(config, REGION, &suffix).await.unwrap();
    set_spend(config, &scene.budget, "2460", "1700", Some("2600"))
        .await
        .unwrap();
    let extra = vec![
        ("BREAKWATER_BUDGET_NAMES".to_string(), scene.budget.clone()),
        (
            "BREAKWATER_BUDGET_CLUSTERS".to_string(),
            scene.cluster.clone(),
        ),
    ];
    let mut subject = start("budget", &estate, extra, None, REGION).await;
    let failures = subject.refuses_everything().await;
    assert_refused("budget", &failures);

    // The control: the forecast alert for the managed budget acts.
    let text = budget_alert_text(
        &scene.budget,
        "FORECASTED",
        "$2,460.00",
        "$2,460.00",
        "$2,600.00",
    );
    subject
        .acts_on(
            &sns_event("control-1", "AWS Budgets: over", &text),
            "UpdateNodegroupConfig",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiering_refuses_the_corpus_and_changes_nothing() {
    let (estate, direct, _suffix) = estate("bad-tiering").await;
    let mut subject = start("tiering", &estate, Vec::new(), None, REGION).await;
    let failures = subject.refuses_everything().await;
    assert_refused("tiering", &failures);

    // The control: a bucket tagged in (breakwater:tiering=on) gets its lifecycle written.
    let bucket = unique("bad-tiering-control");
    direct
        .s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    crate::common::tag_bucket(&direct.s3(), &bucket, &[("breakwater:tiering", "on")]).await;
    let mut event: Value = serde_json::from_slice(
        &std::fs::read(root().join("events/tiering/cloudtrail-put-bucket-tagging.json")).unwrap(),
    )
    .unwrap();
    event["id"] = json!(unique("control"));
    event["detail"]["requestParameters"]["bucketName"] = json!(bucket);
    // A PUT counts as a mutation even when S3 refused it: the answer says it was written.
    let answer = subject
        .acts_on(&event, "PutBucketLifecycleConfiguration")
        .await;
    assert_eq!(answer["outcome"], "written", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_refuses_the_corpus_and_changes_nothing() {
    use breakwater_sandbox::scenes::{spot_nodes, spot_scene};
    let (estate, direct, suffix) = estate("bad-spot").await;
    let config = direct.config();
    let scene = spot_scene(config, REGION, &suffix, 2).await.unwrap();
    let kube = KubeEmulator::start(breakwater::clock::SystemClock.now_ms(), 10.0)
        .await
        .unwrap();
    spot_nodes(&kube, &scene).unwrap();
    let extra = vec![
        (
            "BREAKWATER_SPOT_CLUSTERS".to_string(),
            scene.cluster.clone(),
        ),
        ("BREAKWATER_KUBE_ENDPOINT".to_string(), kube.endpoint()),
    ];
    kube.clear_requests();
    let mut subject = start("spot", &estate, extra, Some(kube), REGION).await;
    let failures = subject.refuses_everything().await;
    assert_refused("spot", &failures);

    // The control: a real warning for one of the scene's instances cordons its node.
    let now = breakwater::clock::SystemClock.now_ms();
    let warning = json!({"version": "0", "id": "control-1", "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2", "account": ACCOUNT, "time": breakwater::clock::rfc3339(now - 10_000),
        "region": REGION, "resources": [], "detail": {"instance-id": scene.instances[0], "instance-action": "terminate"}});
    subject.acts_on(&warning, "kube PATCH").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_refuses_the_corpus_and_changes_nothing() {
    use breakwater_sandbox::rollback_scene::{alarm_event, roll_out, rollback_scene, set_alarm};
    const MINUTE: u64 = 60_000;
    let (estate, direct, suffix) = estate("bad-rollback").await;
    let config = direct.config();
    let now = breakwater::clock::SystemClock.now_ms();
    let kube = KubeEmulator::start(now - 120 * MINUTE, 0.0).await.unwrap();
    // The cluster is named as in events/rollback/ ("prod"), so the near misses are near.
    let scene = rollback_scene(config, REGION, &suffix, "prod", &kube)
        .await
        .unwrap();
    kube.advance(115 * MINUTE);
    roll_out(&kube, "shop", "web", "web:2").unwrap();
    kube.advance(5 * MINUTE);
    let extra = vec![
        (
            "BREAKWATER_ROLLBACK_CLUSTERS".to_string(),
            "prod".to_string(),
        ),
        ("BREAKWATER_KUBE_ENDPOINT".to_string(), kube.endpoint()),
        // The signing secret where the function reads it (Secrets Manager, under the breakwater/
        // names its role may read), so forged and unsigned requests meet a real verification.
        ("BREAKWATER_ROLLBACK_SLACK_SECRET_ID".to_string(), {
            let name = unique("breakwater/slack");
            breakwater::aws::secrets::aws_sdk_secretsmanager::Client::new(config)
                .create_secret()
                .name(&name)
                .secret_string("sandbox-slack-signing-secret")
                .send()
                .await
                .unwrap();
            format!("secretsmanager:{name}")
        }),
    ];
    kube.clear_requests();
    let mut subject = start("rollback", &estate, extra, Some(kube), REGION).await;
    let failures = subject.refuses_everything().await;
    assert_refused("rollback", &failures);

    // The control: the scene's latency alarm in ALARM rolls web back.
    set_alarm(config, REGION, &scene.latency_alarm, "ALARM")
        .await
        .unwrap();
    let event = alarm_event(
        "control-1",
        REGION,
        &scene.latency_alarm,
        &scene.latency_alarm_arn,
        "OK",
        "ALARM",
        now - MINUTE,
    );
    subject.acts_on(&event, "kube PATCH").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_refuses_the_corpus_and_changes_nothing() {
    use breakwater_sandbox::failover_scene::{failover_scene, put_plan, Latencies};
    let (estate, direct, suffix) = estate("bad-failover").await;
    let config = direct.config();
    let scene = failover_scene(
        config,
        &estate,
        &suffix,
        Latencies::default(),
        "http://127.0.0.1:9/health",
    )
    .await
    .unwrap();
    put_plan(
        config,
        SECONDARY,
        &estate.secondary.state_bucket,
        &scene.plan,
    )
    .await
    .unwrap();
    let extra = vec![
        (
            "BREAKWATER_STATE_BUCKET".to_string(),
            estate.secondary.state_bucket.clone(),
        ),
        (
            "BREAKWATER_TOPIC_ARN".to_string(),
            estate.secondary.topic_arn.clone(),
        ),
    ];
    let mut subject = start("failover", &estate, extra, None, SECONDARY).await;
    let failures = subject.refuses_everything().await;
    assert_refused("failover", &failures);
    // (No control here: tests/failover.rs drives this binary through whole failovers.)
}
