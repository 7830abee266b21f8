//! Contract tests of the shared fakes: each scenario is written once over the port and run
//! against the in-memory fake and against the real adapter on moto, with the same assertions.

use std::collections::BTreeMap;
use std::sync::Arc;

use breakwater::aws::budgets::AwsBudgets;
use breakwater::aws::ec2::Ec2Instances;
use breakwater::aws::eventbridge::EventBridgeBus;
use breakwater::aws::iam::IamRolePolicies;
use breakwater::aws::objects::S3Objects;
use breakwater::aws::sns::SnsTopic;
use breakwater::clock::ManualClock;
use breakwater::fakes::budgets::MemoryBudgets;
use breakwater::fakes::bus::MemoryBus;
use breakwater::fakes::instances::MemoryInstances;
use breakwater::fakes::object_store::MemoryObjects;
use breakwater::fakes::role_policies::MemoryRolePolicies;
use breakwater::fakes::topic::MemoryTopic;
use breakwater::notify::{EventBus, Topic};
use breakwater::objects::{ObjectStore, PutOutcome};
use breakwater::ports::{
    BudgetFigures, Budgets, InlinePolicy, InstanceInfo, Instances, RolePolicies,
};
use breakwater::state::{Acquisition, StateStore};
use breakwater::Error;
use breakwater_sandbox::scenes::{set_spend, spot_scene};
use breakwater_sandbox::seed::ACCOUNT;

use crate::common::{aws, unique};

crate::common::moto_server!();

/// Objects: absent until created, created once, replaced only at the version read, overwritten
/// whatever is there, deleted (twice without error), with the ETag changing on every write.
async fn object_store_contract(store: Arc<dyn ObjectStore>) {
    let key = "contract/record.json";
    // GIVEN an empty bucket
    assert_eq!(store.get(key).await.unwrap(), None);
    // WHEN a record is created, THEN a second create is refused 412 and the first stands
    let first = match store
        .create_if_absent(key, b"one".to_vec(), "application/json")
        .await
        .unwrap()
    {
        PutOutcome::Written(etag) => etag,
        other => panic!("create: {other:?}"),
    };
    assert_eq!(
        store
            .create_if_absent(key, b"two".to_vec(), "application/json")
            .await
            .unwrap(),
        PutOutcome::PreconditionFailed
    );
    let read = store.get(key).await.unwrap().expect("created");
    assert_eq!(read.body, b"one");
    assert_eq!(read.etag, first);
    // WHEN it is replaced at a stale version, THEN 412; at the version read, THEN a new ETag
    assert_eq!(
        store
            .put_if_match(key, b"x".to_vec(), "application/json", "\"not-the-etag\"")
            .await
            .unwrap(),
        PutOutcome::PreconditionFailed
    );
    let second = match store
        .put_if_match(key, b"three".to_vec(), "application/json", &first)
        .await
        .unwrap()
    {
        PutOutcome::Written(etag) => etag,
        other => panic!("replace: {other:?}"),
    };
    assert_ne!(second, first);
    assert_eq!(
        store
            .put_if_match(key, b"four".to_vec(), "application/json", &first)
            .await
            .unwrap(),
        PutOutcome::PreconditionFailed
    );
    // WHEN a document is written unconditionally, THEN it replaces whatever was there
    let doc = "contract/report.md";
    for body in ["# a", "# b"] {
        let written = store
            .put(
                doc,
                body.as_bytes().to_vec(),
                "text/markdown",
                breakwater::objects::Precondition::None,
            )
            .await
            .unwrap();
        assert!(matches!(written, PutOutcome::Written(_)), "{written:?}");
    }
    assert_eq!(store.get(doc).await.unwrap().unwrap().body, b"# b");
    // WHEN a replace names a key that does not exist, THEN NotFound (S3's 404 NoSuchKey)
    let err = store
        .put_if_match("contract/absent", b"x".to_vec(), "application/json", &first)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    // WHEN objects are deleted, THEN they read absent, and a second delete is no error
    store.delete(key).await.unwrap();
    store.delete(key).await.unwrap();
    assert_eq!(store.get(key).await.unwrap(), None);
    // THEN the state store over it leases one owner at a time
    let clock = Arc::new(ManualClock::at(1_000_000));
    let state = StateStore::over(store, clock);
    let ttl = std::time::Duration::from_secs(60);
    assert!(matches!(
        state
            .acquire_lease("contract", "x", "a", ttl)
            .await
            .unwrap(),
        Acquisition::Acquired(_)
    ));
    assert!(matches!(
        state.acquire_lease("contract", "x", "b", ttl).await.unwrap(),
        Acquisition::Held { ref owner, .. } if owner == "a"
    ));
}

#[tokio::test]
async fn the_object_store_fake_behaves_as_s3_does() {
    // GIVEN the fake, and a fresh bucket on moto behind the S3 adapter
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let bucket = unique("contract");
    aws.s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    // WHEN / THEN the same scenario holds on both
    object_store_contract(Arc::new(MemoryObjects::new("fake"))).await;
    object_store_contract(Arc::new(S3Objects::new(aws.s3(), bucket))).await;
}

/// Topics: every publish gets a message id of its own; a deleted topic is `NotFound`.
async fn topic_contract(topic: &dyn Topic, gone: &dyn Topic) {
    // GIVEN a topic and message attributes
    let attributes = BTreeMap::from([("function".to_string(), "budget".to_string())]);
    // WHEN two messages are published
    let first = topic.publish("subject", "one", &attributes).await.unwrap();
    let second = topic
        .publish("subject", "two", &BTreeMap::new())
        .await
        .unwrap();
    // THEN each has an id of its own
    let (first, second) = (first.expect("an id"), second.expect("an id"));
    assert!(!first.is_empty());
    assert_ne!(first, second);
    // WHEN a message is published to a topic that does not exist, THEN NotFound
    let err = gone
        .publish("subject", "lost", &attributes)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn the_topic_fake_behaves_as_sns_does() {
    // GIVEN the fake, and a topic on moto behind the SNS adapter
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let created = aws
        .sns()
        .create_topic()
        .name(unique("contract"))
        .send()
        .await
        .unwrap();
    let arn = created.topic_arn().unwrap().to_string();
    let missing = format!("{arn}-deleted");
    // WHEN / THEN the same scenario holds on both
    let fake_gone = MemoryTopic::new("arn:aws:sns:us-east-1:123456789012:gone");
    fake_gone.delete();
    topic_contract(
        &MemoryTopic::new("arn:aws:sns:us-east-1:123456789012:t"),
        &fake_gone,
    )
    .await;
    topic_contract(
        &SnsTopic::new(aws.sns(), arn),
        &SnsTopic::new(aws.sns(), missing),
    )
    .await;
}

/// Event buses: every event put gets an id of its own (PutEvents' `Entries[].EventId`).
async fn bus_contract(bus: &dyn EventBus) {
    let detail = serde_json::json!({"function": "spot", "subject": "s"});
    let first = bus.put("spot drained", &detail).await.unwrap();
    let second = bus.put("spot drained", &detail).await.unwrap();
    let (first, second) = (first.expect("an id"), second.expect("an id"));
    assert!(!first.is_empty());
    assert_ne!(first, second);
}

#[tokio::test]
async fn the_event_bus_fake_behaves_as_eventbridge_does() {
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    bus_contract(&MemoryBus::new("default")).await;
    bus_contract(&EventBridgeBus::new(aws.events(), "default")).await;
}

/// Budgets: a budget is described with its limit, spend, forecast and period; an unknown one is
/// absent.
async fn budgets_contract(budgets: &impl Budgets, name: &str) {
    // WHEN the budget is described
    let figures = budgets
        .describe(ACCOUNT, name)
        .await
        .unwrap()
        .expect("the budget exists");
    // THEN its figures are those set
    let amount = |text: &str| text.parse::<f64>().unwrap();
    assert_eq!(figures.name, name);
    assert_eq!(amount(&figures.limit), 2460.0);
    assert_eq!(amount(&figures.actual), 800.0);
    assert_eq!(figures.forecast.as_deref().map(amount), Some(1800.0));
    assert_eq!(figures.time_unit, "MONTHLY");
    assert_eq!(figures.unit, "USD");
    // WHEN an unknown budget is described, THEN it is absent
    assert_eq!(
        budgets.describe(ACCOUNT, "no-such-budget").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn the_budgets_fake_behaves_as_aws_budgets_does() {
    // GIVEN a monthly budget on moto and the same in the fake
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let name = unique("contract-budget");
    set_spend(aws.config(), &name, "2460", "800", Some("1800"))
        .await
        .unwrap();
    let fake = MemoryBudgets::new();
    fake.set(
        ACCOUNT,
        BudgetFigures {
            name: name.clone(),
            limit: "2460".into(),
            actual: "800".into(),
            forecast: Some("1800".into()),
            time_unit: "MONTHLY".into(),
            unit: "USD".into(),
        },
    );
    // WHEN / THEN the same scenario holds on both
    budgets_contract(&fake, &name).await;
    budgets_contract(&AwsBudgets::new(aws.budgets()), &name).await;
}

/// Instances: a spot instance of a managed node group is described with its cluster, node group,
/// capacity, zone, type and state; an unknown id is absent.
async fn instances_contract(instances: &impl Instances, id: &str, cluster: &str, az: &str) {
    // WHEN the instance is described
    let found = instances.describe(id).await.unwrap().expect("it exists");
    // THEN it is placed as launched
    assert_eq!(found.id, id);
    assert_eq!(found.cluster.as_deref(), Some(cluster));
    assert_eq!(found.node_group.as_deref(), Some("spot-a"));
    assert_eq!(found.capacity, "spot");
    assert_eq!(found.az, az);
    assert_eq!(found.instance_type, "m5.large");
    assert_eq!(found.state, "running");
    // WHEN an unknown instance is described, THEN it is absent
    assert_eq!(
        instances.describe("i-0000000000000dead").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn the_instances_fake_behaves_as_ec2_does() {
    // GIVEN a spot instance of a node group on moto, and the same in the fake
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let scene = spot_scene(aws.config(), "us-east-1", &format!("-{}", unique("c")), 1)
        .await
        .unwrap();
    let id = scene.instances[0].clone();
    let fake = MemoryInstances::new();
    fake.launch(InstanceInfo {
        id: id.clone(),
        cluster: Some(scene.cluster.clone()),
        node_group: Some(scene.spot_node_group.clone()),
        auto_scaling_group: None,
        node_pool: None,
        capacity: "spot".into(),
        az: scene.az.clone(),
        instance_type: "m5.large".into(),
        private_dns: None,
        state: "running".into(),
        vpc: None,
        private_ips: Vec::new(),
    });
    // WHEN / THEN the same scenario holds on both
    instances_contract(&fake, &id, &scene.cluster, &scene.az).await;
    instances_contract(
        &Ec2Instances::new(aws.ec2()),
        &id,
        &scene.cluster,
        &scene.az,
    )
    .await;
}

/// Role policies: an inline policy is absent, put, read back, deleted (twice without error); a
/// missing role is told apart from a missing policy.
async fn role_policies_contract(roles: &impl RolePolicies, role: &str) {
    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ec2:RunInstances","Resource":"*"}]}"#;
    let parsed = |d: &str| serde_json::from_str::<serde_json::Value>(d).unwrap();
    // GIVEN a role without tags or policies
    assert_eq!(roles.role_tags(role).await.unwrap(), Some(BTreeMap::new()));
    assert_eq!(
        roles.get(role, "guard").await.unwrap(),
        InlinePolicy::Absent
    );
    // WHEN a policy is put, THEN it reads back
    roles.put(role, "guard", document).await.unwrap();
    match roles.get(role, "guard").await.unwrap() {
        InlinePolicy::Present { document: read } => assert_eq!(parsed(&read), parsed(document)),
        other => panic!("{other:?}"),
    }
    // WHEN it is deleted (twice), THEN it is absent
    roles.delete(role, "guard").await.unwrap();
    roles.delete(role, "guard").await.unwrap();
    assert_eq!(
        roles.get(role, "guard").await.unwrap(),
        InlinePolicy::Absent
    );
    // THEN a role that does not exist is told apart
    assert_eq!(roles.role_tags("no-such-role").await.unwrap(), None);
    assert_eq!(
        roles.get("no-such-role", "guard").await.unwrap(),
        InlinePolicy::NoRole
    );
}

#[tokio::test]
async fn the_role_policies_fake_behaves_as_iam_does() {
    // GIVEN an untagged role on moto, and the same in the fake
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let role = unique("contract-role");
    aws.iam()
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    let fake = MemoryRolePolicies::new();
    fake.create_role(&role, &[]);
    // WHEN / THEN the same scenario holds on both
    role_policies_contract(&fake, &role).await;
    role_policies_contract(&IamRolePolicies::new(aws.iam()), &role).await;
}
