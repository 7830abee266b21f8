//! Tiering against moto (with the sandbox's lifecycle, versioning and expected-owner fidelity):
//! foreign rules kept, a second run writes nothing, undo restores the exact configuration,
//! excluded buckets untouched, concurrent invocations write once, bad input changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, Tag, Tagging, TransitionDefaultMinimumObjectSize,
};
use breakwater::aws::buckets::S3Buckets;
use breakwater::aws::Aws;
use breakwater::clock::SystemClock;
use breakwater::config::Settings;
use breakwater::lifecycle::LifecycleConfiguration;
use breakwater::ports::{BucketStorage, Buckets, StorageMetrics};
use breakwater::Toolkit;
use breakwater_sandbox::moto::Moto;
use breakwater_sandbox::proxy::{Fault, FaultProxy, Rule};
use breakwater_sandbox::seed::{read_notifications, seed, Estate};
use serde_json::{json, Value};
use tiering::regions::S3BucketRegions;
use tiering::{TieringFunction, TieringSettings};

use crate::common::{aws, read_text, unique};

crate::common::moto_server!();

/// Storage metrics from a table (the CloudWatch adapter itself is tested with aws-smithy-mocks).
#[derive(Debug, Default)]
struct Table(BTreeMap<String, BucketStorage>);

impl StorageMetrics for Table {
    async fn bucket_storage(
        &self,
        bucket: &str,
        _now_ms: u64,
    ) -> breakwater::Result<BucketStorage> {
        Ok(self.0.get(bucket).cloned().unwrap_or_default())
    }
}

struct World {
    direct: Aws,
    estate: Estate,
    proxy: FaultProxy,
    function: TieringFunction<S3Buckets, Table, S3BucketRegions>,
}

async fn world_on(endpoint: &str, table: Table) -> World {
    let direct = aws(endpoint, "us-east-1").await;
    let estate = seed(
        direct.config(),
        "us-east-1",
        "us-west-2",
        &format!("-{}", unique("t")),
    )
    .await
    .unwrap();
    let proxy = FaultProxy::start(endpoint, 3).await.unwrap();
    let aws = Arc::new(Aws::for_endpoint(&proxy.endpoint(), "us-east-1").await);
    let settings = Settings {
        region: "us-east-1".into(),
        state_bucket: estate.primary.state_bucket.clone(),
        topic_arn: Some(estate.primary.topic_arn.clone()),
        dry_run: false,
        lease_ttl: Duration::from_secs(60),
        idempotency_ttl: Duration::from_secs(900),
        function_name: "tiering".into(),
    };
    let toolkit = Toolkit::with_aws(settings, aws.clone(), Arc::new(SystemClock));
    let function = TieringFunction {
        buckets: S3Buckets::new(aws.s3(), "123456789012"),
        metrics: table,
        regions: S3BucketRegions::new(aws.clone()),
        toolkit,
        settings: TieringSettings {
            account: "123456789012".into(),
            concurrency: 8,
            skip_log_targets: true,
            creation_grace: Duration::from_secs(3),
        },
    };
    World {
        direct,
        estate,
        proxy,
        function,
    }
}

async fn world() -> World {
    world_on(&moto().endpoint(), Table::default()).await
}

impl World {
    async fn bucket(&self, prefix: &str, tags: &[(&str, &str)]) -> String {
        let name = unique(prefix);
        self.direct
            .s3()
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap();
        if !tags.is_empty() {
            crate::common::tag_bucket(&self.direct.s3(), &name, tags).await;
        }
        name
    }

    async fn lifecycle(&self, bucket: &str) -> LifecycleConfiguration {
        S3Buckets::new(self.direct.s3(), "123456789012")
            .lifecycle(bucket)
            .await
            .unwrap()
    }

    async fn run(&self, event: Value) -> Value {
        self.function.handle(event, &unique("req")).await.unwrap()
    }

    fn lifecycle_writes(&self, bucket: &str) -> usize {
        self.proxy
            .calls()
            .iter()
            .filter(|c| {
                c.path.contains(bucket)
                    && matches!(
                        c.operation.as_str(),
                        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle"
                    )
            })
            .count()
    }
}

/// A team's own rule: delete logs/ after 7 days, with the small-object setting of an old bucket.
async fn put_foreign_rule(w: &World, bucket: &str) {
    let rule = LifecycleRule::builder()
        .id("team-expire-logs")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("logs/").build())
        .expiration(LifecycleExpiration::builder().days(7).build())
        .build()
        .unwrap();
    w.direct
        .s3()
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .unwrap(),
        )
        .transition_default_minimum_object_size(
            TransitionDefaultMinimumObjectSize::VariesByStorageClass,
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_rules_are_kept_a_second_run_writes_nothing_and_undo_restores_exactly() {
    // GIVEN an opted-in bucket with a team's own rule
    let w = world().await;
    let bucket = w.bucket("data", &[("breakwater:tiering", "on")]).await;
    put_foreign_rule(&w, &bucket).await;
    let before = w.lifecycle(&bucket).await;
    assert_eq!(before.rules.len(), 1);

    // WHEN tiering applies, twice
    let first = w.run(json!({"command": "apply", "bucket": bucket})).await;
    let second = w.run(json!({"command": "apply", "bucket": bucket})).await;

    // THEN the first wrote beside the team's rule, the second changed nothing
    assert_eq!(first["outcome"], "written", "{first}");
    assert_eq!(second["outcome"], "unchanged", "{second}");
    assert_eq!(w.lifecycle_writes(&bucket), 1);
    let after = w.lifecycle(&bucket).await;
    assert_eq!(
        after.rules[0], before.rules[0],
        "the team's rule is kept exactly"
    );
    assert_eq!(
        after.transition_default_minimum_object_size.as_deref(),
        Some("varies_by_storage_class")
    );
    let managed: Vec<&str> = after
        .rules
        .iter()
        .filter_map(|r| r.id.as_deref())
        .filter(|id| id.starts_with("breakwater-tiering-"))
        .collect();
    assert_eq!(
        managed,
        vec!["breakwater-tiering-warm-cold", "breakwater-tiering-archive"]
    );
    assert_eq!(
        after.rules[1].scope().size_greater_than,
        Some(512 * 1024),
        "size bands survive the round trip"
    );

    // AND undo restores exactly what was there, once
    let undo = w
        .run(json!({"command": "undo", "bucket": bucket, "confirm": bucket}))
        .await;
    assert_eq!(undo["outcome"], "undone", "{undo}");
    assert_eq!(w.lifecycle(&bucket).await, before);
    let again = w
        .run(json!({"command": "undo", "bucket": bucket, "confirm": bucket}))
        .await;
    assert_eq!(again["outcome"], "unchanged", "{again}");

    // AND the write was announced with the way to undo it
    let notes = read_notifications(
        w.direct.config(),
        "us-east-1",
        &w.estate.primary.queue_url,
        2,
    )
    .await
    .unwrap();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(
        notes[0].message.contains(&bucket) && notes[0].message.contains("\"command\": \"undo\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_leaves_a_configuration_changed_since_alone() {
    let w = world().await;
    let bucket = w.bucket("data", &[("breakwater:tiering", "on")]).await;
    w.run(json!({"command": "apply", "bucket": bucket})).await;
    put_foreign_rule(&w, &bucket).await; // someone replaced the whole configuration since
    let changed = w.lifecycle(&bucket).await;
    let undo = w
        .run(json!({"command": "undo", "bucket": bucket, "confirm": bucket}))
        .await;
    assert_eq!(undo["outcome"], "skipped", "{undo}");
    assert_eq!(w.lifecycle(&bucket).await, changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_out_locked_foreign_owned_and_requester_pays_buckets_are_untouched() {
    let w = world().await;
    let untagged = w.bucket("plain", &[]).await;
    let opted_out = w.bucket("optout", &[("breakwater:tiering", "off")]).await;
    let foreign = w
        .bucket(
            "theirs",
            &[
                ("breakwater:tiering", "on"),
                ("sandbox:owner-account", "999999999999"),
            ],
        )
        .await;
    let locked = unique("locked");
    w.direct
        .s3()
        .create_bucket()
        .bucket(&locked)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    crate::common::tag_bucket(&w.direct.s3(), &locked, &[("breakwater:tiering", "on")]).await;
    let payer = w.bucket("payer", &[("breakwater:tiering", "on")]).await;
    w.direct
        .s3()
        .put_bucket_request_payment()
        .bucket(&payer)
        .request_payment_configuration(
            aws_sdk_s3::types::RequestPaymentConfiguration::builder()
                .payer(aws_sdk_s3::types::Payer::Requester)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let bad_tag = w
        .bucket(
            "badtag",
            &[
                ("breakwater:tiering", "on"),
                ("breakwater:tiering-days", "10:20:30"),
            ],
        )
        .await;
    let cases = [
        (&untagged, "not-opted-in"),
        (&opted_out, "not-opted-in"),
        (&foreign, "excluded"),
        (&locked, "excluded"),
        (&payer, "excluded"),
        (&bad_tag, "bad-tag"),
    ];
    for (bucket, expected) in cases {
        let r = w.run(json!({"command": "apply", "bucket": bucket})).await;
        assert_eq!(r["outcome"], expected, "{bucket}: {r}");
        assert_eq!(w.lifecycle_writes(bucket), 0, "{bucket}");
        assert!(
            bucket == &foreign || w.lifecycle(bucket).await.rules.is_empty(),
            "{bucket}"
        );
    }
    let locked_reason = w.run(json!({"command": "plan", "bucket": locked})).await;
    assert!(
        locked_reason["buckets"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("Object Lock"),
        "{locked_reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_invocations_for_one_bucket_write_once() {
    let w = Arc::new(world().await);
    let bucket = w.bucket("race", &[("breakwater:tiering", "on")]).await;
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let w = w.clone();
            let bucket = bucket.clone();
            tokio::spawn(async move { w.run(json!({"command": "apply", "bucket": bucket})).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap()["outcome"].as_str().unwrap().to_string());
    }
    outcomes.sort();
    assert_eq!(w.lifecycle_writes(&bucket), 1, "{outcomes:?}");
    assert!(outcomes.contains(&"written".to_string()), "{outcomes:?}");
}

fn cloudtrail(call: &str, bucket: Value) -> Value {
    json!({
        "version": "0", "id": unique("ct"), "detail-type": "AWS API Call via CloudTrail", "source": "aws.s3",
        "account": "123456789012", "time": "2026-11-22T21:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"eventSource": "s3.amazonaws.com", "eventName": call, "awsRegion": "us-east-1",
                   "requestParameters": {"bucketName": bucket, "Host": "s3.amazonaws.com"}, "recipientAccountId": "123456789012"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_answering_no_such_bucket_right_after_creation_is_retried_and_bad_input_changes_nothing(
) {
    let w = Arc::new(world().await);
    // CreateBucket arrives before the bucket answers: the fault proxy holds the creation back
    // 600 ms (a latency rule, not a sleep in the test).
    let late = unique("late");
    w.proxy.add_rule(Rule {
        count: Some(1),
        ..Rule::always(Fault::Latency(Duration::from_millis(600)))
            .service("s3")
            .operation("CreateBucket")
    });
    let creator = {
        let w = w.clone();
        let late = late.clone();
        tokio::spawn(async move {
            w.bucket_named_through_the_proxy(&late).await;
        })
    };
    let r = w.run(cloudtrail("CreateBucket", json!(late))).await;
    creator.await.unwrap();
    assert_eq!(r["outcome"], "written", "{r}");

    // A bucket that never appears is reported, not half-written.
    let never = unique("never");
    let r = w.run(cloudtrail("CreateBucket", json!(never))).await;
    assert_eq!(r["outcome"], "not-found", "{r}");

    // Malformed events are refused with the reason.
    let bad = [
        (
            cloudtrail("PutObject", json!("x-bucket")),
            "not one that tiering follows",
        ),
        (
            cloudtrail("PutBucketTagging", json!("Not_A_Bucket")),
            "not a valid bucket name",
        ),
        (
            cloudtrail("PutBucketTagging", Value::Null),
            "bucket name is required",
        ),
        (json!({"command": "undo", "bucket": late}), "confirm"),
        (json!({"command": "undo"}), "bucket is required"),
        (
            json!({"command": "apply", "bucket": 42}),
            "bucket name is required",
        ),
    ];
    let writes_before = w
        .proxy
        .calls()
        .iter()
        .filter(|c| c.operation.starts_with("Put") && c.operation != "PutObject")
        .count();
    for (event, expected) in bad {
        let err = w.function.handle(event.clone(), "req").await.unwrap_err();
        assert_eq!(err.error_type(), "InvalidEvent", "{event}");
        assert!(err.to_string().contains(expected), "{event}: {err}");
    }
    let writes_after = w
        .proxy
        .calls()
        .iter()
        .filter(|c| c.operation.starts_with("Put") && c.operation != "PutObject")
        .count();
    assert_eq!(writes_before, writes_after);
}

impl World {
    /// Creates and opts in `name`, its creation sent through the fault proxy (and its rules).
    async fn bucket_named_through_the_proxy(&self, name: &str) {
        let proxied = aws(&self.proxy.endpoint(), "us-east-1").await;
        self.create_opted_in(&proxied.s3(), name).await;
    }

    async fn bucket_named(&self, name: &str) {
        self.create_opted_in(&self.direct.s3(), name).await;
    }

    /// Creates `name` through `s3` and tags it in (directly).
    async fn create_opted_in(&self, s3: &aws_sdk_s3::Client, name: &str) {
        s3.create_bucket().bucket(name).send().await.unwrap();
        crate::common::tag_bucket(&self.direct.s3(), name, &[("breakwater:tiering", "on")]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_tiers_every_opted_in_bucket_once_and_reports_the_saving() {
    // A server of its own: a sweep lists every bucket of the account.
    let own = Moto::start(breakwater_sandbox::moto::Lifetime::TiedToParent).unwrap();
    let mut table = Table::default();
    for i in 0..4 {
        table.0.insert(
            format!("sweep-on-{i}"),
            BucketStorage {
                bytes_by_storage_type: [("StandardStorage".to_string(), 500.0 * 1_073_741_824.0)]
                    .into(),
                objects: Some(125_000.0),
            },
        );
    }
    let w = world_on(&own.endpoint(), table).await;
    for i in 0..4 {
        w.bucket_named(&format!("sweep-on-{i}")).await;
    }
    for i in 0..6 {
        w.direct
            .s3()
            .create_bucket()
            .bucket(format!("sweep-off-{i}"))
            .send()
            .await
            .unwrap();
    }
    let tick = json!({"version": "0", "id": "tick-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-22T03:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    let first = w.run(tick.clone()).await;
    assert_eq!(first["counts"]["written"], 4, "{first}");
    let writes = w
        .proxy
        .calls()
        .iter()
        .filter(|c| c.operation == "PutBucketLifecycleConfiguration")
        .count();
    let second = w.run(json!({"command": "apply"})).await;
    assert_eq!(second["counts"]["unchanged"], 4, "{second}");
    assert_eq!(
        w.proxy
            .calls()
            .iter()
            .filter(|c| c.operation == "PutBucketLifecycleConfiguration")
            .count(),
        writes,
        "a second sweep writes nothing"
    );

    // Undo of a bucket that had no configuration deletes Breakwater's.
    let undo = w
        .run(json!({"command": "undo", "bucket": "sweep-on-0", "confirm": "sweep-on-0"}))
        .await;
    assert_eq!(undo["outcome"], "undone", "{undo}");
    assert!(w.lifecycle("sweep-on-0").await.rules.is_empty());

    // Another account's bucket in the listing is left out of the report, not fatal to it.
    w.bucket(
        "theirs",
        &[
            ("breakwater:tiering", "on"),
            ("sandbox:owner-account", "999999999999"),
        ],
    )
    .await;
    let report = w.run(json!({"command": "report"})).await;
    assert_eq!(report["estimates"].as_array().unwrap().len(), 4, "{report}");
    assert!(report["monthly_saving"].as_f64().unwrap() > 0.0, "{report}");
    let key = report["report"]["markdown"].as_str().unwrap();
    let md = w
        .direct
        .s3()
        .get_object()
        .bucket(&w.estate.primary.state_bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(md.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    assert!(
        text.contains("# S3 tiering savings") && text.contains("sweep-on-3"),
        "{text}"
    );
    // Per bucket, bytes per class now and at the steady state: the lifecycle moves bytes, it
    // neither makes nor loses any
    for estimate in report["estimates"].as_array().unwrap() {
        let total = |field: &str| -> f64 {
            estimate["classes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c[field].as_f64().unwrap())
                .sum()
        };
        let (now, steady) = (total("now_bytes"), total("steady_bytes"));
        assert!(now > 0.0 && (now - steady).abs() < 1.0, "{estimate}");
    }
    // … drawn beside the Markdown, the same id
    let svg_key = report["report"]["svg"].as_str().unwrap();
    assert_eq!(svg_key.strip_suffix(".svg"), key.strip_suffix(".md"));
    let svg = read_text(&w.direct, &w.estate.primary.state_bucket, svg_key).await;
    assert!(
        svg.contains("(4 buckets)") && svg.contains(">Glacier Deep Archive<"),
        "{svg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tiering_event_file_is_accepted_and_names_what_it_found() {
    let w = world().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/tiering");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // The sweeps would act on every bucket of the shared server; they run in the sweep test.
        if name == "schedule.json" || name == "command-plan.json" || name == "command-report.json" {
            continue;
        }
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let r = w
            .function
            .handle(event, "req-file")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let outcome = r["buckets"][0]["outcome"].as_str().unwrap_or_default();
        assert!(["not-found", "unchanged"].contains(&outcome), "{name}: {r}");
        checked += 1;
    }
    assert_eq!(checked, 8);
    assert_eq!(
        w.proxy
            .calls()
            .iter()
            .filter(|c| c.operation == "PutBucketLifecycleConfiguration")
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_metrics_adapter_reads_s3_daily_metrics_from_cloudwatch() {
    use breakwater::aws::cloudwatch::CloudWatchStorage;
    use breakwater::clock::Clock;
    // GIVEN a day-old S3 storage datapoint per storage type in CloudWatch (moto, through the
    // sandbox's bridge for the Rust SDK's CBOR protocol)
    let direct = aws(&moto().endpoint(), "eu-south-1").await;
    let bucket = unique("metrics");
    let now = SystemClock.now_ms();
    breakwater_sandbox::scenes::s3_storage_metrics(
        direct.config(),
        "eu-south-1",
        &bucket,
        &[("StandardStorage", 2.0e12), ("GlacierStorage", 5.0e11)],
        125_000.0,
        now,
    )
    .await
    .unwrap();
    // WHEN the adapter reads them
    let storage = CloudWatchStorage::new(direct.cloudwatch())
        .bucket_storage(&bucket, now)
        .await
        .unwrap();
    // THEN each storage type and the object count come back; absent types are absent
    assert_eq!(
        storage.bytes_by_storage_type.get("StandardStorage"),
        Some(&2.0e12)
    );
    assert_eq!(
        storage.bytes_by_storage_type.get("GlacierStorage"),
        Some(&5.0e11)
    );
    assert!(!storage
        .bytes_by_storage_type
        .contains_key("DeepArchiveStorage"));
    assert_eq!(storage.objects, Some(125_000.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_refuses_a_one_predicate_and_as_s3_does_and_the_default_policy_is_accepted() {
    // GIVEN an opted-in bucket without prefix tags (the default, whole-bucket policy)
    let w = world().await;
    let bucket = w.bucket("whole", &[("breakwater:tiering", "on")]).await;

    // WHEN a configuration whose Filter is an And holding only ObjectSizeGreaterThan is sent
    let one_predicate = LifecycleRule::builder()
        .id("one-predicate")
        .status(ExpirationStatus::Enabled)
        .filter(
            LifecycleRuleFilter::builder()
                .and(
                    aws_sdk_s3::types::LifecycleRuleAndOperator::builder()
                        .object_size_greater_than(1_677_722)
                        .build(),
                )
                .build(),
        )
        .transitions(
            aws_sdk_s3::types::Transition::builder()
                .days(365)
                .storage_class(aws_sdk_s3::types::TransitionStorageClass::DeepArchive)
                .build(),
        )
        .build()
        .unwrap();
    let refused = w
        .direct
        .s3()
        .put_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(one_predicate)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();

    // THEN the sandbox answers as S3 does: 400 MalformedXML ("a logical AND to two or more
    // predicates", S3 API reference, LifecycleRuleAndOperator)
    assert_eq!(
        refused.raw_response().map(|r| r.status().as_u16()),
        Some(400)
    );
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&refused),
        Some("MalformedXML")
    );

    // AND tiering's default policy is written, with the archive band filtered on size alone
    let r = w.run(json!({"command": "apply", "bucket": bucket})).await;
    assert_eq!(r["outcome"], "written", "{r}");
    let stored = w.lifecycle(&bucket).await;
    let archive = stored
        .rules
        .iter()
        .find(|r| r.id.as_deref() == Some("breakwater-tiering-archive"))
        .unwrap();
    assert_eq!(
        archive.filter,
        Some(breakwater::lifecycle::RuleFilter::SizeGreaterThan { bytes: 1_677_722 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_in_another_region_is_skipped_with_its_region_and_the_report_still_completes() {
    // GIVEN (a server of its own: a sweep lists every bucket) an opted-in bucket in the home
    // region, us-east-1, and one in eu-west-1, created and tagged through eu-west-1
    let own = Moto::start(breakwater_sandbox::moto::Lifetime::TiedToParent).unwrap();
    let mut table = Table::default();
    let home = "region-home-on".to_string();
    let away = "region-away-on".to_string();
    for name in [&home, &away] {
        table.0.insert(
            name.clone(),
            BucketStorage {
                bytes_by_storage_type: [("StandardStorage".to_string(), 100.0 * 1_073_741_824.0)]
                    .into(),
                objects: Some(10_000.0),
            },
        );
    }
    let w = world_on(&own.endpoint(), table).await;
    w.bucket_named(&home).await;
    let europe = aws(&own.endpoint(), "eu-west-1").await;
    europe
        .s3()
        .create_bucket()
        .bucket(&away)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    europe
        .s3()
        .put_bucket_tagging()
        .bucket(&away)
        .tagging(
            Tagging::builder()
                .tag_set(
                    Tag::builder()
                        .key("breakwater:tiering")
                        .value("on")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // AND the sandbox answers a request for it sent to us-east-1 as S3 does: 301
    // PermanentRedirect naming the bucket's region in x-amz-bucket-region
    let redirected = w
        .direct
        .s3()
        .get_bucket_tagging()
        .bucket(&away)
        .send()
        .await
        .unwrap_err();
    let raw = redirected.raw_response().unwrap();
    assert_eq!(raw.status().as_u16(), 301);
    assert_eq!(raw.headers().get("x-amz-bucket-region"), Some("eu-west-1"));
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&redirected),
        Some("PermanentRedirect")
    );

    // WHEN the us-east-1 deployment sweeps, is asked for the bucket, and reports
    let sweep = w.run(json!({"command": "apply"})).await;
    let asked = w.run(json!({"command": "apply", "bucket": away})).await;
    let report = w.run(json!({"command": "report"})).await;

    // THEN the home bucket is tiered, the other is skipped with the region that tiers it, and
    // nothing was sent to the wrong region's endpoint
    let outcome_of = |v: &Value, name: &str| {
        v["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["bucket"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {v}"))
    };
    assert_eq!(outcome_of(&sweep, &home)["outcome"], "written", "{sweep}");
    for answer in [outcome_of(&sweep, &away), asked["buckets"][0].clone()] {
        assert_eq!(answer["outcome"], "skipped", "{answer}");
        assert!(
            answer["reason"].as_str().unwrap().contains("eu-west-1"),
            "{answer}"
        );
    }
    assert!(
        w.proxy.calls().iter().all(|c| c.status != Some(301)),
        "{:#?}",
        w.proxy
            .calls()
            .iter()
            .filter(|c| c.status == Some(301))
            .collect::<Vec<_>>()
    );
    let away_lifecycle = S3Buckets::new(europe.s3(), "123456789012")
        .lifecycle(&away)
        .await
        .unwrap();
    assert!(away_lifecycle.rules.is_empty(), "{away_lifecycle:?}");

    // AND the savings report completes, estimating the home bucket and leaving the other out
    // with its reason
    let estimated: Vec<&str> = report["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["bucket"].as_str())
        .collect();
    assert_eq!(estimated, vec![home.as_str()], "{report}");
    let left_out = report["left_out"].as_array().unwrap();
    assert!(
        left_out
            .iter()
            .any(|l| l["bucket"] == away.as_str()
                && l["reason"].as_str().unwrap().contains("eu-west-1")),
        "{report}"
    );
    assert!(
        report["markdown"].as_str().unwrap().contains(&away),
        "{report}"
    );
}
