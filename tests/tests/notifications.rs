//! Notifications published through the shared notifier are read back from the subscribed queue,
//! and reports land in the state bucket.

use std::sync::Arc;

use breakwater::clock::SystemClock;
use breakwater::notify::{Notification, Notifier};
use breakwater::report::{Phase, Report};
use breakwater::state::StateStore;
use breakwater_sandbox::seed::{read_notifications, seed};

use crate::common::{aws, unique};

crate::common::moto_server!();

#[tokio::test]
async fn a_published_notification_is_read_back_from_the_sqs_queue_with_its_attributes() {
    // GIVEN the seeded two-region estate
    let aws = aws(&moto().endpoint(), "us-west-2").await;
    let suffix = format!("-{}", unique("n"));
    let estate = seed(aws.config(), "us-east-1", "us-west-2", &suffix)
        .await
        .unwrap();
    // WHEN a notification is published to the secondary region's topic
    let notifier = Notifier::new(aws.sns_in("us-west-2"), &estate.secondary.topic_arn);
    let sent = Notification::new(
        "spot: node ip-10-0-1-7 drained",
        "Node ip-10-0-1-7 was drained in 41 s.",
    )
    .attribute("function", "spot")
    .attribute("outcome", "acted")
    .details(serde_json::json!({"pods_evicted": 12}));
    let message_id = notifier
        .publish(&sent)
        .await
        .unwrap()
        .expect("a message id");
    // THEN exactly that notification is in the secondary's queue, and none in the primary's
    let received = read_notifications(aws.config(), "us-west-2", &estate.secondary.queue_url, 2)
        .await
        .unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].message_id, message_id);
    assert_eq!(received[0].subject, "spot: node ip-10-0-1-7 drained");
    assert!(received[0]
        .message
        .starts_with("Node ip-10-0-1-7 was drained in 41 s."));
    assert!(received[0].message.contains("\"pods_evicted\": 12"));
    assert_eq!(
        received[0].attributes.get("function").map(String::as_str),
        Some("spot")
    );
    assert_eq!(
        received[0].attributes.get("outcome").map(String::as_str),
        Some("acted")
    );
    let primary = read_notifications(aws.config(), "us-east-1", &estate.primary.queue_url, 0)
        .await
        .unwrap();
    assert!(primary.is_empty(), "{primary:?}");
}

#[tokio::test]
async fn a_report_is_written_as_json_and_markdown_to_the_state_bucket() {
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let bucket = unique("reports");
    aws.s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let store = StateStore::new(aws.s3(), &bucket, Arc::new(SystemClock));
    let mut report = Report::new("failover", "exec/42", "Drill", "acted");
    report.phases.push(Phase {
        name: "detected".into(),
        started_at_ms: 0,
        finished_at_ms: 1500,
        detail: "quorum 2/3".into(),
    });
    let location = report.write(&store).await.unwrap();
    assert_eq!(location.json_key, "reports/failover/exec%2F42.json");
    let json = store
        .get::<Report>(&location.json_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(json.value, report);
    let md = aws
        .s3()
        .get_object()
        .bucket(&bucket)
        .key(&location.markdown_key)
        .send()
        .await
        .unwrap();
    assert_eq!(md.content_type(), Some("text/markdown; charset=utf-8"));
    let text = String::from_utf8(md.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    assert!(text.contains("| detected |"), "{text}");
}
