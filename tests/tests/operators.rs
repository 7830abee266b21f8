//! The operator's commands end to end: the `breakwater` binary against moto, and the real function
//! binaries (with their template roles enforced) reading what it wrote.

use std::process::Command;

use breakwater::clock::{Clock, SystemClock};
use breakwater_sandbox::kube::KubeEmulator;
use breakwater_sandbox::runtime::FunctionProcess;
use breakwater_sandbox::scenes::{spot_nodes, spot_scene};
use breakwater_sandbox::seed::{read_events, read_notifications, seed};
use serde_json::{json, Value};

use crate::common::{aws, unique};

crate::common::moto_server!();

const REGION: &str = "us-east-1";

/// Runs `breakwater args…` against moto and the state bucket; its stdout, or a panic with its
/// stderr when it fails.
fn breakwater(bucket: &str, args: &[&str]) -> String {
    let output = Command::new(breakwater_sandbox::bin_dir("debug").join("breakwater"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("BREAKWATER_STATE_BUCKET", bucket)
        .output()
        .expect("the breakwater binary runs (make test builds it first)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    );
    assert!(
        output.status.success(),
        "breakwater {args:?} failed: {stderr}"
    );
    stdout
}

fn warning(instance: &str, id: &str) -> Value {
    json!({"version": "0", "id": id, "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2", "account": "123456789012",
        "time": breakwater::clock::rfc3339(SystemClock.now_ms()), "region": REGION, "resources": [],
        "detail": {"instance-id": instance, "instance-action": "terminate"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_spot_function_changes_nothing_and_says_what_it_would_have_done_until_resumed() {
    // GIVEN the spot binary (its template role enforced) over a cluster of two spot nodes
    let direct = aws(&moto().endpoint(), REGION).await;
    let suffix = format!("-{}", unique("op"));
    let estate = seed(direct.config(), REGION, "us-west-2", &suffix)
        .await
        .unwrap();
    let scene = spot_scene(direct.config(), REGION, &suffix, 2)
        .await
        .unwrap();
    let emu = KubeEmulator::start(SystemClock.now_ms(), 10.0)
        .await
        .unwrap();
    let nodes = spot_nodes(&emu, &scene).unwrap();
    let bucket = estate.primary.state_bucket.clone();
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", moto().endpoint()),
        ("BREAKWATER_STATE_BUCKET", bucket.clone()),
        ("BREAKWATER_TOPIC_ARN", estate.primary.topic_arn.clone()),
        ("BREAKWATER_EVENT_BUS", "default".to_string()),
        ("BREAKWATER_SPOT_CLUSTERS", scene.cluster.clone()),
        ("BREAKWATER_KUBE_ENDPOINT", emu.endpoint()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let binary = breakwater_sandbox::bin_dir("debug").join("spot");
    let mut spot = FunctionProcess::start(&binary, "spot", REGION, &env)
        .await
        .expect("spot starts (make test builds it first)");
    spot.wait_init().await.unwrap();
    read_notifications(direct.config(), REGION, &estate.primary.queue_url, 0)
        .await
        .unwrap();

    // WHEN an operator pauses spot, and a warning arrives
    let said = breakwater(&bucket, &["pause", "spot", "--reason", "node upgrade"]);
    assert!(said.contains("paused spot"), "{said}");
    let status = breakwater(&bucket, &["status"]);
    assert!(
        status.contains("spot      PAUSED since") && status.contains("node upgrade"),
        "{status}"
    );
    assert!(status.contains("budget    acting"), "{status}");
    let writes_before = emu.requests().iter().filter(|r| r.method != "GET").count();
    let answer = spot
        .invoke(&warning(&scene.instances[0], "paused-1"))
        .await
        .unwrap()
        .answer()
        .unwrap();

    // THEN nothing changed in the cluster, and the answer and the notification say what would have
    assert_eq!(answer["outcome"], "paused", "{answer}");
    assert_eq!(answer["paused"]["reason"], "node upgrade", "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.starts_with("paused: would have acted: cordon"),
        "{answer}"
    );
    assert_eq!(answer["would_have"]["would_cordon"], true, "{answer}");
    let writes: Vec<String> = emu
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(writes.len(), writes_before, "{writes:?}");
    let node = emu.get("nodes", "", &nodes[0]).unwrap();
    assert!(node["spec"]["unschedulable"].is_null(), "{node}");
    let notes = read_notifications(direct.config(), REGION, &estate.primary.queue_url, 2)
        .await
        .unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        notes[0].subject,
        "breakwater spot is paused: nothing was changed"
    );
    assert!(
        notes[0].message.contains("It would have acted: cordon")
            && notes[0].message.contains("breakwater resume spot"),
        "{}",
        notes[0].message
    );
    assert_eq!(
        notes[0].attributes.get("kind").map(String::as_str),
        Some("paused")
    );
    // … and so does the event on the default bus, read back from a rule's target queue.
    let events = read_events(direct.config(), REGION, &estate.primary.events_queue_url, 2)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0]["source"], &events[0]["detail-type"]),
        (&json!("breakwater"), &json!("spot paused"))
    );
    assert_eq!(events[0]["detail"]["function"], "spot");
    assert_eq!(
        events[0]["detail"]["topic"],
        estate.primary.topic_arn.as_str()
    );
    assert!(events[0]["detail"]["summary"]
        .as_str()
        .unwrap()
        .contains("would have acted: cordon"));

    // WHEN the operator resumes it, the next warning acts (the same warm process)
    let said = breakwater(&bucket, &["resume", "spot"]);
    assert!(said.contains("resumed spot"), "{said}");
    let status = breakwater(&bucket, &["status"]);
    assert!(status.contains("spot      acting"), "{status}");
    let answer = spot
        .invoke(&warning(&scene.instances[0], "after-resume"))
        .await
        .unwrap()
        .answer()
        .unwrap();
    assert_eq!(answer["outcome"], "drained", "{answer}");
    let node = emu.get("nodes", "", &nodes[0]).unwrap();
    assert_eq!(node["spec"]["unschedulable"], true, "{node}");
    let events = read_events(direct.config(), REGION, &estate.primary.events_queue_url, 2)
        .await
        .unwrap();
    let types: Vec<&str> = events
        .iter()
        .filter_map(|e| e["detail-type"].as_str())
        .collect();
    assert_eq!(types, ["spot drained"], "{events:?}");
    spot.kill().await;

    // A function that does not exist is refused, naming the five.
    let refused = Command::new(breakwater_sandbox::bin_dir("debug").join("breakwater"))
        .args(["pause", "spots", "--reason", "x", "--state-bucket", &bucket])
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_REGION", REGION)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("one of budget, tiering, spot"));
}
