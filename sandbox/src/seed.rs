//! The seeded two-region estate that the sandbox, the tests and the demo start from: per region a
//! versioned state bucket, the notification topic, an SQS queue subscribed to the topic so that
//! notifications can be read back, and an EventBridge rule on the default bus sending this
//! estate's Breakwater events to another queue. Later scenes add databases, clusters and buckets.

use aws_config::SdkConfig;
use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// moto's default account.
pub const ACCOUNT: &str = "123456789012";
/// The region the game day and the benches treat as the primary (production).
pub const PRIMARY: &str = "us-east-1";
/// The standby region.
pub const SECONDARY: &str = "us-west-2";

/// What was seeded in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionEstate {
    /// The region.
    pub region: String,
    /// The state bucket.
    pub state_bucket: String,
    /// The notification topic.
    pub topic_arn: String,
    /// The queue subscribed to the topic.
    pub queue_url: String,
    /// The queue the rule `breakwater-events<suffix>` sends this estate's events to (source
    /// `breakwater`, `detail.topic` this estate's topic: tests sharing one server share the bus).
    #[serde(default)]
    pub events_queue_url: String,
}

/// The two-region estate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estate {
    /// The account.
    pub account: String,
    /// The primary region (production).
    pub primary: RegionEstate,
    /// The secondary region (standby).
    pub secondary: RegionEstate,
}

/// An S3 client in `region` with path-style addressing (moto on loopback has no bucket hosts).
pub fn s3(config: &SdkConfig, region: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&regional(config, region))
            .force_path_style(true)
            .build(),
    )
}

/// The same configuration in another region.
pub fn regional(config: &SdkConfig, region: &str) -> SdkConfig {
    config
        .to_builder()
        .region(aws_config::Region::new(region.to_string()))
        .build()
}

/// Seeds both regions. Names carry `suffix`, so that tests sharing one server do not collide.
pub async fn seed(
    config: &SdkConfig,
    primary: &str,
    secondary: &str,
    suffix: &str,
) -> Result<Estate, SandboxError> {
    Ok(Estate {
        account: ACCOUNT.to_string(),
        primary: seed_region(config, primary, suffix).await?,
        secondary: seed_region(config, secondary, suffix).await?,
    })
}

async fn seed_region(
    config: &SdkConfig,
    region: &str,
    suffix: &str,
) -> Result<RegionEstate, SandboxError> {
    let config = regional(config, region);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);

    let state_bucket = format!("breakwater-state-{ACCOUNT}-{region}{suffix}");
    let mut create = s3.create_bucket().bucket(&state_bucket);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    create
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create bucket {state_bucket}"), &e))?;
    s3.put_bucket_versioning()
        .bucket(&state_bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("enable versioning on {state_bucket}"), &e))?;

    let topic_name = format!("breakwater-notifications{suffix}");
    let topic_arn = sns
        .create_topic()
        .name(&topic_name)
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create topic {topic_name}"), &e))?
        .topic_arn()
        .unwrap_or_default()
        .to_string();
    let queue_name = format!("breakwater-notifications-tap{suffix}");
    let queue_url = create_queue(&sqs, &queue_name).await?;
    let queue_arn = format!("arn:aws:sqs:{region}:{ACCOUNT}:{queue_name}");
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("subscribe {queue_arn} to {topic_arn}"), &e))?;
    let events_queue_url = events_tap(&config, region, suffix, &topic_arn).await?;
    Ok(RegionEstate {
        region: region.to_string(),
        state_bucket,
        topic_arn,
        queue_url,
        events_queue_url,
    })
}

/// Creates the queue `name`; its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, SandboxError> {
    Ok(sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create queue {name}"), &e))?
        .queue_url()
        .unwrap_or_default()
        .to_string())
}

/// A rule on the default bus matching this estate's Breakwater events, and its target queue.
async fn events_tap(
    config: &SdkConfig,
    region: &str,
    suffix: &str,
    topic_arn: &str,
) -> Result<String, SandboxError> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let events = aws_sdk_eventbridge::Client::new(config);
    let queue_name = format!("breakwater-events-tap{suffix}");
    let queue_url = create_queue(&sqs, &queue_name).await?;
    let rule = format!("breakwater-events{suffix}");
    let pattern = serde_json::json!({"source": ["breakwater"], "detail": {"topic": [topic_arn]}});
    events
        .put_rule()
        .name(&rule)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("put rule {rule}"), &e))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("tap")
        .arn(format!("arn:aws:sqs:{region}:{ACCOUNT}:{queue_name}"))
        .build()
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    events
        .put_targets()
        .rule(&rule)
        .targets(target)
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("put the target of rule {rule}"), &e))?;
    Ok(queue_url)
}

/// Drains an events queue: every EventBridge event delivered so far, as the rule's target
/// receives it (the whole event: `source`, `detail-type`, `detail`, …); waits up to
/// `wait_seconds` for the first.
pub async fn read_events(
    config: &SdkConfig,
    region: &str,
    queue_url: &str,
    wait_seconds: i32,
) -> Result<Vec<serde_json::Value>, SandboxError> {
    drain(config, region, queue_url, wait_seconds).await
}

/// Every message body in `queue_url` so far, as JSON, each deleted once read; waits up to
/// `wait_seconds` for the first.
async fn drain(
    config: &SdkConfig,
    region: &str,
    queue_url: &str,
    wait_seconds: i32,
) -> Result<Vec<serde_json::Value>, SandboxError> {
    let sqs = aws_sdk_sqs::Client::new(&regional(config, region));
    let mut out = Vec::new();
    let mut wait = wait_seconds;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait)
            .send()
            .await
            .map_err(|e| SandboxError::aws(&format!("receive from {queue_url}"), &e))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(out);
        }
        wait = 0;
        for m in messages {
            out.push(serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or_default());
            if let Some(handle) = m.receipt_handle() {
                let _ = sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
    }
}

/// A notification as read back from the subscribed queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedNotification {
    /// The SNS message id.
    pub message_id: String,
    /// The subject.
    pub subject: String,
    /// The body.
    pub message: String,
    /// The message attributes (name → string value).
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// Drains the queue: every notification delivered so far (waits up to `wait_seconds` for the first).
pub async fn read_notifications(
    config: &SdkConfig,
    region: &str,
    queue_url: &str,
    wait_seconds: i32,
) -> Result<Vec<ReceivedNotification>, SandboxError> {
    let envelopes = drain(config, region, queue_url, wait_seconds).await?;
    Ok(envelopes
        .iter()
        .map(|envelope| ReceivedNotification {
            message_id: envelope["MessageId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            subject: envelope["Subject"].as_str().unwrap_or_default().to_string(),
            message: envelope["Message"].as_str().unwrap_or_default().to_string(),
            attributes: envelope["MessageAttributes"]
                .as_object()
                .map(|attrs| {
                    attrs
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v["Value"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect())
}
