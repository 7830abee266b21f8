//! The budget binary through the Lambda Runtime API emulator: an alert delivered
//! ten times enforces once, and a malformed event changes nothing.

use breakwater_sandbox::proxy::FaultProxy;
use breakwater_sandbox::runtime::FunctionProcess;
use breakwater_sandbox::scenes::{budget_alert_text, budget_scene, set_spend, sns_event};
use breakwater_sandbox::seed::{read_notifications, seed};
use serde_json::json;

use crate::common::{aws, unique};

crate::common::moto_server!();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_alert_ten_times_through_the_binary_enforces_once() {
    // GIVEN a budget scene of its own region, and the binary talking to moto through a counting proxy
    let region = "ap-southeast-2";
    let direct = aws(&moto().endpoint(), region).await;
    let suffix = format!("-{}", unique("bb"));
    let estate = seed(direct.config(), region, "us-west-2", &suffix)
        .await
        .unwrap();
    let scene = budget_scene(direct.config(), region, &suffix)
        .await
        .unwrap();
    // The spend as DescribeBudget returns it: a double's full expansion (AWS CLI reference,
    // `aws budgets describe-budget`, example output), forecast 107 % of the limit.
    set_spend(
        direct.config(),
        &scene.budget,
        "2460",
        "1700.455999999999903593561612069606781005859375",
        Some("2641.54800000000022919266484677791595458984375"),
    )
    .await
    .unwrap();
    let proxy = FaultProxy::start(&moto().endpoint(), 5).await.unwrap();
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", proxy.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        (
            "BREAKWATER_STATE_BUCKET",
            estate.primary.state_bucket.clone(),
        ),
        ("BREAKWATER_TOPIC_ARN", estate.primary.topic_arn.clone()),
        ("BREAKWATER_ACCOUNT_ID", "123456789012".into()),
        ("BREAKWATER_BUDGET_NAMES", scene.budget.clone()),
        ("BREAKWATER_BUDGET_CLUSTERS", scene.cluster.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let binary = breakwater_sandbox::bin_dir("debug").join("budget");
    let mut function = FunctionProcess::start(&binary, "budget", region, &env)
        .await
        .unwrap();

    // WHEN the same forecast alert arrives ten times, then a malformed event
    let text = budget_alert_text(
        &scene.budget,
        "FORECASTED",
        "$2,460.00",
        "$2,460.00",
        "$2,600.00",
    );
    let event = sns_event("dup-1", "AWS Budgets: over", &text);
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let invocation = function.invoke(&event).await.unwrap();
        outcomes.push(invocation.outcome.expect("handled"));
    }
    let malformed = function
        .invoke(&json!({"Records": [{"EventSource": "aws:sns"}]}))
        .await
        .unwrap();

    // THEN one enforcement: the node group scaled once, one notification
    assert_eq!(outcomes[0]["level_after"], 2, "{}", outcomes[0]);
    assert!(
        outcomes[1..].iter().all(|o| o["repeat"] == true),
        "{outcomes:#?}"
    );
    let updates = proxy
        .calls()
        .iter()
        .filter(|c| c.path.ends_with("/update-config"))
        .count();
    assert_eq!(updates, 1);
    let err = malformed.outcome.expect_err("refused");
    assert_eq!(err.error_type, "InvalidEvent");
    let notes = read_notifications(direct.config(), region, &estate.primary.queue_url, 2)
        .await
        .unwrap();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(
        notes[0].attributes.get("level").map(String::as_str),
        Some("2")
    );
}
