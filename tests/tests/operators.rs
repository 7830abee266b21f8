//! The operator's commands end to end: the `breakwater` binary against moto, and the real function
//! binaries (with their template roles enforced) reading what it wrote.

use std::path::Path;
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
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", moto().endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", REGION.into()),
        ("BREAKWATER_STATE_BUCKET", bucket.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (ok, stdout, stderr) = operator(&env, args);
    assert!(ok, "breakwater {args:?} failed: {stderr}");
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

/// Runs `breakwater args…` as an operator in `env` (`LocalEstate::operator_env`): its exit
/// status, stdout and stderr.
fn operator(env: &[(String, String)], args: &[&str]) -> (bool, String, String) {
    operator_in(&std::env::temp_dir(), env, args)
}

/// [`operator`] in the working directory `dir`.
fn operator_in(
    dir: &std::path::Path,
    env: &[(String, String)],
    args: &[&str],
) -> (bool, String, String) {
    let output = Command::new(breakwater_sandbox::bin_dir("debug").join("breakwater"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("the breakwater binary runs (make test builds it first)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// `make up`'s estate in a moto of its own, named as `make up` names it (no test suffix).
async fn own_estate() -> (
    breakwater_sandbox::moto::Moto,
    breakwater::aws::Aws,
    breakwater_sandbox::local::LocalEstate,
) {
    let own = crate::common::start_moto();
    let direct = aws(&own.endpoint(), REGION).await;
    let local = breakwater_sandbox::local::LocalEstate::start(
        direct.config(),
        &breakwater_sandbox::bin_dir("debug"),
        "",
        None,
    )
    .await
    .unwrap();
    (own, direct, local)
}

/// The `breakwater` commands of docs/dr-drill.md between the `make drill` markers (what
/// `make drill` runs), split into words.
fn drill_block() -> Vec<Vec<String>> {
    let doc =
        std::fs::read_to_string(breakwater_sandbox::workspace_root().join("docs/dr-drill.md"))
            .unwrap();
    let begin = doc
        .find("<!-- make drill: begin -->")
        .expect("the begin marker");
    let end = doc
        .find("<!-- make drill: end -->")
        .expect("the end marker");
    doc[begin..end]
        .lines()
        .filter(|l| l.starts_with("breakwater "))
        .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
        .collect()
}

/// #20: the DR drill's commands, exactly as docs/dr-drill.md gives them (and `make drill` runs
/// them), against a fresh sandbox estate: `precheck` says ready; `drill` checks the drill with
/// the function first (a dry-run preflight, answered at once), starts it asynchronously through
/// the Lambda API (`Event`: 202), and follows it from its execution record, step by step, to its
/// end; `history` and `report` read it back. The drill ran in the real failover binary with its
/// template role, against moto, the ARC cluster and the standby cluster's API server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dr_drill_runbook_runs_as_written_followed_live_to_its_end_then_reported() {
    use breakwater_sandbox::failover_scene::observe;
    use breakwater_sandbox::seed::SECONDARY;

    // The runbook's names: plan `shop`, no test suffix.
    let (_own, direct, local) = own_estate().await;
    let env = local.operator_env(SECONDARY);
    let plan = local.failover.name.clone();
    assert_eq!(plan, "shop");
    let before = observe(direct.config(), &local.estate, &local.failover)
        .await
        .unwrap();
    let block = drill_block();
    let verbs: Vec<&str> = block
        .iter()
        .map(|w| {
            w.iter()
                .find(|a| !a.starts_with("--") && *a != "us-west-2")
                .unwrap()
                .as_str()
        })
        .collect();
    assert_eq!(
        verbs,
        ["precheck", "plan", "drill", "history", "report"],
        "{block:?}"
    );
    let dir = std::env::temp_dir().join(unique("drill"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut outputs = Vec::new();
    for words in &block {
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let (ok, out, err) = operator_in(&dir, &env, &args);
        assert!(ok, "breakwater {args:?} failed:\n{out}\n{err}");
        outputs.push(out);
    }
    assert!(outputs[0].contains("plan shop: READY"), "{}", outputs[0]);
    assert!(outputs[1].contains("within target"), "{}", outputs[1]);
    let out = outputs[2].clone();
    // Followed live: each step as it began and ended, then the outcome.
    let line_of = |mark: char, step: &str| {
        out.lines()
            .position(|l| l.contains(mark) && l.contains(&format!(" {step} ")))
            .unwrap_or_else(|| panic!("{step} never shown {mark}:\n{out}"))
    };
    assert!(out.starts_with("following execution "), "{out}");
    for step in ["database", "nodes"] {
        assert!(line_of('▸', step) < line_of('✓', step), "{out}");
        assert!(
            line_of('✓', step) < line_of('✓', "traffic"),
            "{step} after traffic:\n{out}"
        );
    }
    for (a, b) in [
        ("traffic", "verify"),
        ("verify", "cleanup"),
        ("cleanup", "report"),
    ] {
        assert!(line_of('✓', a) < line_of('✓', b), "{a} after {b}:\n{out}");
    }
    let summary = out
        .lines()
        .find(|l| l.starts_with("drill ") && l.contains(" SUCCEEDED: RTO "))
        .unwrap_or_else(|| panic!("no summary line:\n{out}"));
    assert!(summary.contains("(target 900 s)"), "{summary}");
    let id = summary.split_whitespace().nth(1).unwrap().to_string();

    // What went over the wire: the preflight (RequestResponse, dry run) then one Event.
    let calls: Vec<_> = local
        .lambda
        .invoked()
        .into_iter()
        .filter(|i| i.payload["command"] == "drill")
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].invocation_type, "RequestResponse");
    assert_eq!(calls[0].payload["dry_run"], true);
    assert_eq!(calls[1].invocation_type, "Event");
    assert!(calls[1].payload.get("dry_run").is_none(), "{calls:?}");
    assert_eq!(calls[1].payload["by"], "alice");

    // Read back: the record says succeeded, the estate is as before but for the drill copy,
    // which the clean-up deleted.
    let store = breakwater::state::StateStore::new(
        direct.s3_in(SECONDARY),
        &local.estate.secondary.state_bucket,
        std::sync::Arc::new(SystemClock),
    );
    let exec = store
        .get::<failover::engine::Execution>(&failover::engine::Execution::key(&id))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(exec.outcome, "succeeded");
    assert_eq!(exec.trigger, "manual drill by alice");
    let after = observe(direct.config(), &local.estate, &local.failover)
        .await
        .unwrap();
    assert_eq!(after.replica.0, "gone");
    assert_eq!(after.node_group, before.node_group);
    assert_eq!(after.controls, before.controls);
    assert_eq!(after.record, before.record);

    let row = outputs[3]
        .lines()
        .find(|l| l.ends_with(&id))
        .unwrap_or_else(|| panic!("{}", outputs[3]));
    assert!(
        row.contains(" drill ") && row.contains(" succeeded "),
        "{row}"
    );
    let out = &outputs[4];
    assert!(out.starts_with(&format!("# drill of plan {plan}")), "{out}");
    assert!(out.contains(&format!("- execution: `{id}`")), "{out}");
    assert!(out.contains("| rto_within_target | true |"), "{out}");
    let svg = dir.join("drill.svg");
    let drawn = std::fs::read_to_string(&svg).unwrap();
    // The picture: the RTO against the plan's target, the critical path marked, the phases
    assert!(drawn.starts_with("<svg"), "{drawn}");
    for said in [
        "within the 900 s target",
        "critical path (sets the RTO)",
        "RTO ends: verified",
        ">database (done)<",
        ">cleanup (done)<",
    ] {
        assert!(drawn.contains(said), "{said}: {drawn}");
    }
    // The finished notification links the report in the S3 console.
    let notes = breakwater_sandbox::seed::read_notifications(
        direct.config(),
        SECONDARY,
        &local.estate.secondary.queue_url,
        2,
    )
    .await
    .unwrap();
    let finished = notes
        .iter()
        .find(|n| n.message.contains(&id) && n.message.contains("Report: s3://"))
        .unwrap_or_else(|| panic!("no finished notification: {notes:?}"));
    let link = format!(
        "https://us-west-2.console.aws.amazon.com/s3/object/{}?region=us-west-2&prefix=reports%2Ffailover%2F{id}.md",
        local.estate.secondary.state_bucket
    );
    assert!(finished.message.contains(&link), "{}", finished.message);

    // Once more: the drill copy is gone, so the preflight refuses, and nothing is queued.
    let (ok, _, err) = operator(&env, &["drill", "--confirm", &plan, "--by", "alice"]);
    assert!(!ok);
    assert!(err.contains("does not exist; nothing was changed"), "{err}");
    let events = local
        .lambda
        .invoked()
        .into_iter()
        .filter(|i| i.invocation_type == "Event")
        .count();
    assert_eq!(events, 1);
    // And the precheck says why it cannot, with a non-zero exit.
    let (ok, out, _) = operator(&env, &["precheck"]);
    assert!(!ok);
    assert!(out.contains(&format!("plan {plan}: NOT READY")), "{out}");
}

/// A failed asynchronous invocation is retried as the template says (`MaximumRetryAttempts`
/// 2), then its invocation record lands in the failure destination; `breakwater redrive`
/// re-delivers an event's `requestPayload` to the function and deletes the message, and keeps a
/// manual command (not de-duplicated: it would act again) unless told otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_lands_in_the_failure_queue_and_redrive_delivers_it_again() {
    use aws_sdk_lambda::primitives::Blob;
    use breakwater_sandbox::local::LocalEstate;
    use breakwater_sandbox::seed::{regional, SECONDARY};

    let direct = aws(&moto().endpoint(), REGION).await;
    let suffix = format!("-{}", unique("redrive"));
    let local = LocalEstate::start(
        direct.config(),
        &breakwater_sandbox::bin_dir("debug"),
        &suffix,
        None,
    )
    .await
    .unwrap();
    let env = local.operator_env(SECONDARY);
    // An event the function refuses (an alarm state that does not exist), and a command it
    // refuses (a wrong confirmation): every attempt of each fails.
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(
            breakwater_sandbox::workspace_root().join("events/failover/malformed-alarm.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let command = json!({"command": "failover", "confirm": "not-the-plan", "by": "cron"});
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&regional(direct.config(), SECONDARY))
            .endpoint_url(local.lambda.endpoint())
            .build(),
    );
    for payload in [&event, &command] {
        let queued = lambda
            .invoke()
            .function_name(&local.failover_function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
            .unwrap();
        assert_eq!(queued.status_code(), 202);
    }
    // The records, read back without taking them (visibility 0).
    let sqs = aws_sdk_sqs::Client::new(&regional(direct.config(), SECONDARY));
    let queued = || async {
        let got = sqs
            .receive_message()
            .queue_url(&local.failover_failures)
            .visibility_timeout(0)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        got.messages()
            .iter()
            .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap())
            .collect::<Vec<_>>()
    };
    // Each failed after three attempts 1 s and 2 s apart, one after the other: 6 s or more.
    let mut records = Vec::new();
    for _ in 0..60 {
        records = queued().await;
        if records.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(record["responseContext"]["functionError"], "Unhandled");
        assert_eq!(record["responsePayload"]["errorType"], "InvalidEvent");
    }
    assert!(records.iter().any(|r| r["requestPayload"] == event));
    assert!(records.iter().any(|r| r["requestPayload"] == command));

    let (ok, out, err) = operator(&env, &["redrive", "failover", "--dry-run"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("would re-deliver") && out.contains("CloudWatch Alarm State Change"),
        "{out}"
    );
    assert!(out.contains("a manual command acts again"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("0 re-delivered to ")),
        "{out}"
    );
    assert_eq!(queued().await.len(), 2, "a dry run leaves every message");

    let (ok, out, err) = operator(&env, &["redrive", "failover"]);
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("1 re-delivered to ")),
        "{out}"
    );
    // The event's message is gone (its new attempts fail again only after the retry waits),
    // the command's stays.
    let left = queued().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["requestPayload"], command);
    let delivered = |payload: &Value| {
        local
            .lambda
            .invoked()
            .into_iter()
            .filter(|i| i.invocation_type == "Event" && &i.payload == payload)
            .count()
    };
    assert_eq!(delivered(&event), 2);
    assert_eq!(delivered(&command), 1);
    // A function the stack does not have is refused before any queue is read.
    let (ok, _, err) = operator(&env, &["redrive", "failovr"]);
    assert!(!ok);
    assert!(err.contains("no function \"failovr\""), "{err}");
}

/// #20: every `aws`, `make` and `sam` command in docs/ names an operation, options and targets
/// that exist (sandbox/docs_commands.py: botocore's models, the AWS CLI's global options, the
/// Makefile); the `breakwater` ones are parsed by the command's own tests.
#[test]
fn every_aws_and_make_command_in_the_docs_exists() {
    let python = breakwater_sandbox::moto::python().unwrap();
    let root = breakwater_sandbox::workspace_root();
    let output = Command::new(python)
        .arg(root.join("sandbox/docs_commands.py"))
        .current_dir(&root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains(", 0 drifted"), "{text}");
}

/// #20: `make up`'s estate lets every function run with the events of `events/` (what
/// `make invoke` does): each binary, with its template role and the environment
/// `LocalEstate::function_env` gives it, acts on the estate, and what it changed is read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_runs_with_its_example_event_against_the_local_estate() {
    // The example events' names: no test suffix.
    let (_own, _, local) = own_estate().await;
    let root = breakwater_sandbox::workspace_root();
    let run = |function: &'static str, file: &'static str| {
        let (region, env) = local.function_env(function).unwrap();
        let (text, _) = breakwater_sandbox::local::with_estate_ids(
            &std::fs::read_to_string(root.join(file)).unwrap(),
            &local.example_ids(),
        );
        let event: Value = serde_json::from_str(&text).unwrap();
        async move {
            let binary = breakwater_sandbox::bin_dir("debug").join(function);
            let mut process = FunctionProcess::start(&binary, function, &region, &env)
                .await
                .unwrap();
            process.wait_init().await.unwrap();
            let answer = process.invoke(&event).await.unwrap().answer();
            process.kill().await;
            answer.unwrap_or_else(|e| panic!("{function} {file}: {e}"))
        }
    };
    // spot: the example instance is the estate's first spot instance; its node is cordoned.
    let r = run("spot", "events/spot/interruption-warning.json").await;
    assert_eq!(r["outcome"], "drained", "{r}");
    let node = r["node"].as_str().unwrap();
    let read = local.spot.1.get("nodes", "", node).unwrap();
    assert_eq!(read["spec"]["unschedulable"], true, "{read}");
    // … and `breakwater report --function spot` (no id: the newest) shows its drain, the
    // picture a lane per pod against the deadline
    let env = local.operator_env(&local.estate.primary.region);
    let report = |function: &str, svg: &str| {
        let (ok, stdout, stderr) =
            operator(&env, &["report", "--function", function, "--svg", svg]);
        assert!(ok, "breakwater report --function {function}: {stderr}");
        stdout
    };
    let dir = std::env::temp_dir().join(unique("reports"));
    std::fs::create_dir_all(&dir).unwrap();
    let picture = |name: &str| dir.join(name).to_string_lossy().to_string();
    let shown = report("spot", &picture("spot.svg"));
    assert!(
        shown.starts_with(&format!("# Spot drain of node {node}")),
        "{shown}"
    );
    let drawn = std::fs::read_to_string(picture("spot.svg")).unwrap();
    assert!(
        drawn.contains("drain against the deadline") && drawn.contains("deadline at 110 s"),
        "{drawn}"
    );
    // rollback: the alarm is the estate's; the example's alarm began before the last rollout,
    // so the decision is not to act, and the Deployment stays at revision 2.
    let r = run("rollback", "events/rollback/alarm-state-change.json").await;
    assert_eq!(r["decisions"][0]["outcome"], "not-acting", "{r}");
    assert_eq!(
        r["decisions"][0]["workload"], "prod/shop/Deployment/web",
        "{r}"
    );
    let web = local.rollback.get("deployments", "shop", "web").unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:2"
    );
    // budget: the budget named in the alert is the estate's, read live.
    let r = run("budget", "events/budget/sns-actual-over-85.json").await;
    assert_eq!(r["budget"], local.budget.budget, "{r}");
    // … and the period's report is its ladder, this evaluation its one reading
    let shown = report("budget", &picture("budget.svg"));
    assert!(
        shown.contains(&format!(
            "# Budget {}: the enforcement ladder in {}",
            local.budget.budget,
            r["period"].as_str().unwrap()
        )),
        "{shown}"
    );
    let drawn = std::fs::read_to_string(picture("budget.svg")).unwrap();
    assert!(
        drawn.contains("level held") && drawn.contains("L3: actual ≥ 85 %"),
        "{drawn}"
    );
    // tiering: the opted-in bucket is planned, nothing written.
    let r = run("tiering", "events/tiering/command-plan.json").await;
    let planned = r["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["bucket"] == local.tiered.as_str())
        .unwrap_or_else(|| panic!("{r}"));
    assert_ne!(planned["outcome"], "not-opted-in", "{planned}");
    // failover: the precheck of the estate's plan is ready.
    let r = run("failover", "events/failover/command-precheck.json").await;
    assert_eq!(r["ready"], true, "{r}");
    // A person asks rollback for shop/web: revision 2 → a new revision 3 with web:1's template,
    // for the rollback runbook's commands below.
    let r = run("rollback", "events/rollback/command-rollback.json").await;
    assert_eq!(r["outcome"], "rolled-back", "{r}");
    let image = |kube: &KubeEmulator| {
        kube.get("deployments", "shop", "web").unwrap()["spec"]["template"]["spec"]["containers"][0]
            ["image"]
            .clone()
    };
    assert_eq!(image(&local.rollback), "web:1");
    // Every kubectl command of docs/, run as written against the cluster it is meant for
    runbook_kubectl(&local, node, &dir).await;
    assert_eq!(
        image(&local.rollback),
        "web:2",
        "the rollback runbook's way forward again"
    );
}

/// Every `kubectl` command in docs/ (a code span or a line of a code block), its placeholders
/// filled from the estate, run with the real kubectl against the cluster its page is about: the
/// spot runbook on the drained node's cluster, the rollback runbook on `shop/web` after a
/// rollback (2 → 3, web:1's template), the failover runbook and `failover-rbac.yaml` on the
/// standby cluster. A command no page-to-cluster rule covers fails the test, so the docs cannot
/// grow a command nobody runs. Each must succeed; what it shows or changes is read back.
async fn runbook_kubectl(local: &breakwater_sandbox::local::LocalEstate, node: &str, dir: &Path) {
    let Some(kubectl) = crate::common::kubectl() else {
        println!("SKIPPED: no kubectl on PATH (Debian's kubernetes-client provides one)");
        return;
    };
    // The failover runbook's node commands are for a standby whose group was raised: raise it
    // (EKS, in moto) and wait for its nodes to join the standby cluster.
    let scene = &local.failover;
    use breakwater::ports::NodeGroups as _;
    let standby = aws(&local.moto, breakwater_sandbox::seed::SECONDARY).await;
    breakwater::aws::eks::EksNodeGroups::new(standby.eks())
        .update_scaling(
            &breakwater::ports::NodeGroupId {
                cluster: scene.cluster.clone(),
                name: scene.node_group.clone(),
            },
            breakwater::ports::Scaling {
                min: 0,
                desired: 2,
                max: 4,
            },
            "runbook-raise",
        )
        .await
        .unwrap();
    let joined = || scene.kube.list("nodes").len() >= 2;
    for _ in 0..100 {
        if joined() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(joined(), "{:?}", scene.kube.list("nodes"));
    let root = breakwater_sandbox::workspace_root();
    let mut commands = Vec::new();
    for page in docs_pages(&root.join("docs")) {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        for line in text.lines() {
            let spans = line.split('`').skip(1).step_by(2);
            let block = std::iter::once(line.trim()).filter(|l| l.starts_with("kubectl "));
            for command in spans.filter(|c| c.starts_with("kubectl ")).chain(block) {
                commands.push((name.clone(), command.to_string()));
            }
        }
    }
    assert!(commands.len() >= 12, "{commands:#?}");
    let config = |kube: &KubeEmulator, name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        kube.write_kubeconfig(&d).unwrap()
    };
    let spot = config(&local.spot.1, "spot");
    let rollback = config(&local.rollback, "rollback");
    let standby = config(&local.failover.kube, "standby");
    let mut ran = 0;
    for (page, command) in &commands {
        let config = match page.as_str() {
            "docs/runbooks/spot.md" => &spot,
            "docs/runbooks/rollback.md" => &rollback,
            "docs/runbooks/failover.md" => &standby,
            "docs/deploy-two-regions.md" if command.contains("spot-rbac") => &spot,
            "docs/deploy-two-regions.md" if command.contains("rollback-rbac") => &rollback,
            "docs/deploy-two-regions.md" if command.contains("failover-rbac") => &standby,
            _ => panic!("{page}: `{command}`: no cluster of the sandbox runs it (add it here)"),
        };
        let filled = command
            .replace("<node>", node)
            .replace("<name>", "web")
            .replace("<ns>", "shop")
            .replace("<the one rolled back from>", "2")
            .replace("<standby cluster>", "emulator");
        assert!(
            !filled.contains('<'),
            "{page}: a placeholder left in `{filled}`"
        );
        let mut args: Vec<&str> = filled.split_whitespace().skip(1).collect();
        if args.contains(&"apply") {
            // A departure, named: the emulator serves no OpenAPI document, which kubectl's
            // schema validation downloads first; the objects are still sent, created and read
            // back below.
            args.push("--validate=false");
        }
        let out = Command::new(&kubectl)
            .current_dir(&root)
            .env("KUBECONFIG", config)
            .env("HOME", dir)
            .args(&args)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{page}: `{filled}` failed:\n{said}");
        // What each shows, as the page says it shows it
        let expect: &[&str] = match filled.split_whitespace().nth(1).unwrap_or_default() {
            // The emulator prints as the API server does (server-side Table printing)
            "get" if filled.contains("get node ") => &["Ready,SchedulingDisabled"],
            // … the group's nodes, joining (NotReady) or Ready: the runbook's "nodes still
            // joining" case
            "get" if filled.contains("nodegroup=web") => {
                &["STATUS", ".web.compute.internal", "Ready"]
            }
            "rollout" if filled.contains("history") => &["carol@example.com"],
            "-n" => &["Replicas:", "shop"],
            _ => &[],
        };
        for e in expect {
            assert!(
                said.contains(e),
                "{page}: `{filled}` does not show {e:?}:\n{said}"
            );
        }
        ran += 1;
    }
    assert_eq!(ran, commands.len());
    // Read back: only DaemonSet and mirror pods left on the node, as `get pods -A` showed;
    // the node uncordoned and its taint gone; the RBAC of each cluster applied
    for pod in local.spot.1.list("pods") {
        let stays = pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
            || !pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null();
        assert!(pod["spec"]["nodeName"] != node || stays, "{pod}");
    }
    let read = local.spot.1.get("nodes", "", node).unwrap();
    assert!(read["spec"]["unschedulable"] != json!(true), "{read}");
    let taints = read["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !taints.iter().any(|t| t["key"] == "breakwater.io/draining"),
        "{taints:?}"
    );
    for (kube, group) in [
        (&local.spot.1, "breakwater-spot"),
        (&local.rollback, "breakwater-rollback"),
        (&*local.failover.kube, "breakwater-failover"),
    ] {
        let bindings = kube.list("clusterrolebindings");
        assert!(
            bindings.iter().any(|b| b["subjects"][0]["name"] == group),
            "{group}: {bindings:?}"
        );
    }
}

/// The Markdown pages under `dir`, recursively, sorted.
fn docs_pages(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            pages.extend(docs_pages(&path));
        } else if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}
