//! Contract tests of the database, bucket and storage-metrics fakes: each scenario is written
//! once over the port and run against the in-memory fake and against the real adapter on moto,
//! with the same assertions.

use std::collections::BTreeMap;

use aws_sdk_rds::types::Tag as RdsTag;
use breakwater::aws::buckets::S3Buckets;
use breakwater::aws::cloudwatch::CloudWatchStorage;
use breakwater::aws::rds::RdsDatabases;
use breakwater::clock::{Clock, SystemClock};
use breakwater::fakes::buckets::MemoryBuckets;
use breakwater::fakes::databases::MemoryDatabases;
use breakwater::fakes::storage_metrics::MemoryStorageMetrics;
use breakwater::lifecycle::{LifecycleConfiguration, LifecycleRule, RuleFilter, Transition};
use breakwater::ports::{BucketFacts, Buckets, Database, DatabaseKind, Databases, StorageMetrics};
use breakwater::Error;
use breakwater_sandbox::seed::ACCOUNT;

use crate::common::{aws, tag_bucket, unique};

crate::common::moto_server!();

/// The identifiers a database scenario works on.
struct DbIds {
    /// An available PostgreSQL instance tagged `team=data`.
    postgres: String,
    /// An available Multi-AZ SQL Server instance.
    sqlserver: String,
    /// An available Aurora PostgreSQL cluster.
    cluster: String,
    /// The cluster's member instance.
    member: String,
}

/// Databases: cluster members are not listed; stop and start move between `available` and
/// `stopped`, and RDS refuses a stop or start from the wrong state, a stop of a Multi-AZ SQL
/// Server instance, and an unknown identifier.
async fn databases_contract(dbs: &impl Databases, ids: &DbIds) {
    use DatabaseKind::{Cluster, Instance};
    // GIVEN the databases, WHEN they are listed, THEN the member is not among them
    let listed: Vec<(DatabaseKind, String)> = dbs
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.kind, d.id))
        .collect();
    assert!(
        listed.contains(&(Instance, ids.postgres.clone())),
        "{listed:?}"
    );
    assert!(
        listed.contains(&(Instance, ids.sqlserver.clone())),
        "{listed:?}"
    );
    assert!(
        listed.contains(&(Cluster, ids.cluster.clone())),
        "{listed:?}"
    );
    assert!(
        !listed.contains(&(Instance, ids.member.clone())),
        "{listed:?}"
    );
    // THEN each is described with its engine, Multi-AZ and tags
    let pg = dbs
        .describe(Instance, &ids.postgres)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pg.status, "available");
    assert_eq!(pg.engine.as_deref(), Some("postgres"));
    assert!(!pg.multi_az);
    assert_eq!(pg.tags.get("team").map(String::as_str), Some("data"));
    let ms = dbs
        .describe(Instance, &ids.sqlserver)
        .await
        .unwrap()
        .unwrap();
    assert!(ms.multi_az);
    assert!(dbs.describe(Instance, "absent-db").await.unwrap().is_none());
    assert!(dbs
        .describe(Cluster, "absent-cluster")
        .await
        .unwrap()
        .is_none());
    assert!(dbs.describe(Instance, &ids.member).await.unwrap().is_some());
    // WHEN the instance is stopped, THEN it is stopped, and a second stop is refused
    dbs.stop(Instance, &ids.postgres).await.unwrap();
    let status =
        |kind, id: String| async move { dbs.describe(kind, &id).await.unwrap().unwrap().status };
    assert_eq!(status(Instance, ids.postgres.clone()).await, "stopped");
    let err = dbs.stop(Instance, &ids.postgres).await.unwrap_err();
    assert!(matches!(err, Error::Aws(_)), "{err:?}");
    // WHEN it is started, THEN it is available, and a second start is refused
    dbs.start(Instance, &ids.postgres).await.unwrap();
    assert_eq!(status(Instance, ids.postgres.clone()).await, "available");
    let err = dbs.start(Instance, &ids.postgres).await.unwrap_err();
    assert!(matches!(err, Error::Aws(_)), "{err:?}");
    // WHEN the Multi-AZ SQL Server instance is stopped, THEN RDS refuses and it stays available
    let err = dbs.stop(Instance, &ids.sqlserver).await.unwrap_err();
    assert!(matches!(err, Error::Aws(_)), "{err:?}");
    assert_eq!(status(Instance, ids.sqlserver.clone()).await, "available");
    // WHEN the cluster is stopped and started, THEN it follows, refusing repeats
    dbs.stop(Cluster, &ids.cluster).await.unwrap();
    assert_eq!(status(Cluster, ids.cluster.clone()).await, "stopped");
    assert!(matches!(
        dbs.stop(Cluster, &ids.cluster).await,
        Err(Error::Aws(_))
    ));
    dbs.start(Cluster, &ids.cluster).await.unwrap();
    assert_eq!(status(Cluster, ids.cluster.clone()).await, "available");
    assert!(matches!(
        dbs.start(Cluster, &ids.cluster).await,
        Err(Error::Aws(_))
    ));
    // WHEN an unknown database is stopped, THEN RDS refuses
    assert!(matches!(
        dbs.stop(Instance, "absent-db").await,
        Err(Error::Aws(_))
    ));
    assert!(matches!(
        dbs.start(Cluster, "absent-cluster").await,
        Err(Error::Aws(_))
    ));
}

fn fake_db(
    kind: DatabaseKind,
    id: &str,
    engine: &str,
    multi_az: bool,
    tags: &[(&str, &str)],
) -> Database {
    Database {
        kind,
        id: id.to_string(),
        arn: format!("arn:aws:rds:us-east-1:{ACCOUNT}:db:{id}"),
        status: "available".into(),
        class: Some("db.t3.micro".into()),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        engine: Some(engine.into()),
        multi_az,
        replica_source: None,
        replicas: vec![],
        engine_mode: None,
        global_cluster: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_databases_fake_stops_starts_and_refuses_as_rds_does() {
    // GIVEN the same databases in the fake and on moto
    let ids = DbIds {
        postgres: unique("pg"),
        sqlserver: unique("mssql"),
        cluster: unique("aurora"),
        member: unique("aurora-1"),
    };
    let fake = MemoryDatabases::new();
    fake.add(fake_db(
        DatabaseKind::Instance,
        &ids.postgres,
        "postgres",
        false,
        &[("team", "data")],
    ));
    fake.add(fake_db(
        DatabaseKind::Instance,
        &ids.sqlserver,
        "sqlserver-se",
        true,
        &[],
    ));
    fake.add(fake_db(
        DatabaseKind::Cluster,
        &ids.cluster,
        "aurora-postgresql",
        false,
        &[],
    ));
    fake.add_member(fake_db(
        DatabaseKind::Instance,
        &ids.member,
        "aurora-postgresql",
        false,
        &[],
    ));
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let rds = aws.rds();
    for (id, engine, multi_az) in [
        (&ids.postgres, "postgres", false),
        (&ids.sqlserver, "sqlserver-se", true),
    ] {
        rds.create_db_instance()
            .db_instance_identifier(id)
            .engine(engine)
            .db_instance_class("db.t3.micro")
            .allocated_storage(20)
            .master_username("admin")
            .master_user_password("password-123")
            .multi_az(multi_az)
            .tags(RdsTag::builder().key("team").value("data").build())
            .send()
            .await
            .unwrap();
    }
    rds.create_db_cluster()
        .db_cluster_identifier(&ids.cluster)
        .engine("aurora-postgresql")
        .master_username("admin")
        .master_user_password("password-123")
        .send()
        .await
        .unwrap();
    rds.create_db_instance()
        .db_instance_identifier(&ids.member)
        .db_cluster_identifier(&ids.cluster)
        .engine("aurora-postgresql")
        .db_instance_class("db.t3.medium")
        .send()
        .await
        .unwrap();
    // WHEN / THEN the same scenario holds on both
    databases_contract(&fake, &ids).await;
    databases_contract(&RdsDatabases::new(rds), &ids).await;
    // AND the fake recorded the changes asked for, refused ones included
    assert_eq!(fake.changes().len(), 11, "{:?}", fake.changes());
}

fn tiering_rule(filter: RuleFilter) -> LifecycleConfiguration {
    LifecycleConfiguration {
        rules: vec![LifecycleRule {
            id: Some("breakwater-tiering".into()),
            enabled: true,
            filter: Some(filter),
            transitions: vec![Transition {
                days: Some(30),
                date: None,
                storage_class: "GLACIER_IR".into(),
            }],
            ..LifecycleRule::default()
        }],
        transition_default_minimum_object_size: None,
    }
}

/// Buckets: listed with their tags and facts; a lifecycle written is read back, a one-predicate
/// `And` is refused as malformed and changes nothing, no rules delete it; an unknown bucket is
/// `NotFound`.
async fn buckets_contract(buckets: &impl Buckets, tagged: &str, plain: &str) {
    // GIVEN a tagged bucket and a plain one, WHEN listed, THEN both are there
    let listed = buckets.list().await.unwrap();
    assert!(
        listed.iter().any(|b| b == tagged) && listed.iter().any(|b| b == plain),
        "{listed:?}"
    );
    // THEN the tags are read, and a bucket without tags has none
    let tags = buckets.tags(tagged).await.unwrap();
    assert_eq!(
        tags,
        BTreeMap::from([
            ("team".to_string(), "data".to_string()),
            ("tiering".into(), "on".into())
        ])
    );
    assert!(buckets.tags(plain).await.unwrap().is_empty());
    // THEN a fresh bucket has no versioning, lock, replication, requester pays or log delivery
    assert_eq!(buckets.facts(plain).await.unwrap(), BucketFacts::default());
    assert_eq!(
        buckets.lifecycle(plain).await.unwrap(),
        LifecycleConfiguration::default()
    );
    // WHEN a lifecycle is written without a minimum object size, THEN it reads back as written,
    // with S3's default minimum size for transitions
    let config = tiering_rule(RuleFilter::Prefix {
        prefix: "logs/".into(),
    });
    buckets.put_lifecycle(plain, &config).await.unwrap();
    let read = LifecycleConfiguration {
        transition_default_minimum_object_size: Some("all_storage_classes_128K".into()),
        ..config.clone()
    };
    assert_eq!(buckets.lifecycle(plain).await.unwrap(), read);
    // WHEN an And with a single predicate is written, THEN S3 refuses it and nothing changes
    let one = tiering_rule(RuleFilter::And {
        prefix: Some("logs/".into()),
        tags: vec![],
        size_greater_than: None,
        size_less_than: None,
    });
    let err = buckets.put_lifecycle(plain, &one).await.unwrap_err();
    assert!(
        matches!(&err, Error::Aws(m) if m.contains("malformed")),
        "{err:?}"
    );
    assert_eq!(buckets.lifecycle(plain).await.unwrap(), read);
    // WHEN no rules are written, THEN the configuration is gone (twice: no error)
    for _ in 0..2 {
        buckets
            .put_lifecycle(plain, &LifecycleConfiguration::default())
            .await
            .unwrap();
    }
    assert_eq!(
        buckets.lifecycle(plain).await.unwrap(),
        LifecycleConfiguration::default()
    );
    // WHEN an unknown bucket is asked about, THEN NotFound
    let absent = format!("{plain}-absent");
    assert!(matches!(
        buckets.tags(&absent).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        buckets.lifecycle(&absent).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_buckets_fake_keeps_tags_and_lifecycles_and_refuses_as_s3_does() {
    // GIVEN the same two buckets in the fake and on moto
    let (tagged, plain) = (unique("tagged"), unique("plain"));
    let fake = MemoryBuckets::new();
    fake.set_tags(&tagged, &[("team", "data"), ("tiering", "on")]);
    fake.create(&plain);
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let s3 = aws.s3();
    for bucket in [&tagged, &plain] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    tag_bucket(&s3, &tagged, &[("team", "data"), ("tiering", "on")]).await;
    // WHEN / THEN the same scenario holds on both
    buckets_contract(&fake, &tagged, &plain).await;
    buckets_contract(&S3Buckets::new(s3, ACCOUNT), &tagged, &plain).await;
    // AND the fake recorded the four writes, the refused one included
    assert_eq!(fake.changes().len(), 4, "{:?}", fake.changes());
}

const DAY_MS: u64 = 86_400_000;

/// Storage metrics: each priced storage type's newest day within three days, and the object
/// count; a bucket without datapoints has none.
async fn storage_metrics_contract(
    metrics: &impl StorageMetrics,
    bucket: &str,
    quiet: &str,
    now: u64,
) {
    // WHEN the figures are read, THEN each priced storage type's newest day stands (an older
    // day's figure only where no newer one exists), and the unpriced type is left out
    let storage = metrics.bucket_storage(bucket, now).await.unwrap();
    assert_eq!(
        storage.bytes_by_storage_type,
        BTreeMap::from([
            ("StandardStorage".to_string(), 2.0e12),
            ("GlacierStorage".to_string(), 5.0e11),
            ("DeepArchiveStorage".to_string(), 1.0e9)
        ])
    );
    assert_eq!(storage.objects, Some(125_000.0));
    // WHEN a bucket without datapoints is read, THEN it has none
    let none = metrics.bucket_storage(quiet, now).await.unwrap();
    assert!(
        none.bytes_by_storage_type.is_empty() && none.objects.is_none(),
        "{none:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_metrics_fake_reports_the_newest_day_as_cloudwatch_does() {
    // GIVEN a bucket's daily datapoints one day old and, older, two and a half days old (other
    // figures, and a storage type the report does not price), in the fake and on moto
    let (bucket, quiet) = (unique("metrics"), unique("quiet"));
    let now = SystemClock.now_ms();
    let older: &[(&str, f64)] = &[
        ("StandardStorage", 3.0e12),
        ("DeepArchiveStorage", 1.0e9),
        ("IntelligentTieringFAStorage", 7.0e9),
    ];
    let newest: &[(&str, f64)] = &[("StandardStorage", 2.0e12), ("GlacierStorage", 5.0e11)];
    let fake = MemoryStorageMetrics::new();
    fake.publish(&bucket, older, 90_000.0, now - 5 * DAY_MS / 2);
    fake.publish(&bucket, newest, 125_000.0, now - DAY_MS);
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    // (the sandbox publishes a datapoint one day before the `now_ms` it is given)
    for (data, objects, at) in [
        (older, 90_000.0, now - 3 * DAY_MS / 2),
        (newest, 125_000.0, now),
    ] {
        breakwater_sandbox::scenes::s3_storage_metrics(
            aws.config(),
            "us-east-1",
            &bucket,
            data,
            objects,
            at,
        )
        .await
        .unwrap();
    }
    // WHEN / THEN the same scenario holds on both
    storage_metrics_contract(&fake, &bucket, &quiet, now).await;
    storage_metrics_contract(
        &CloudWatchStorage::new(aws.cloudwatch()),
        &bucket,
        &quiet,
        now,
    )
    .await;
    // AND the fake recorded both reads
    assert_eq!(
        fake.calls(),
        [
            format!("bucket_storage {bucket}"),
            format!("bucket_storage {quiet}")
        ]
    );
}
