//! Spot handling end to end: moto for EC2, EKS, S3 and SNS, the Kubernetes API emulator for the
//! cluster. A 50-pod node drains inside the deadline; a budget that never allows a disruption is
//! overridden at `deadline − grace` and reported; DaemonSet, mirror and finished pods stay;
//! duplicates and reordering make one handling; repeated interruptions fail over to on-demand
//! exactly once and return exactly once; foreign, unknown and malformed events change nothing.

use std::sync::Arc;
use std::time::Duration;

use breakwater::aws::autoscaling::AsgLifecycle;
use breakwater::aws::ec2::Ec2Instances;
use breakwater::aws::eks::EksNodeGroups;
use breakwater::aws::elbv2::ElbTargetGroups;
use breakwater::aws::Aws;
use breakwater::clock::{Clock, ManualClock, SystemClock};
use breakwater::config::{Env, Settings};
use breakwater::kube::KubeClients;
use breakwater::ports::{NodeGroupId, NodeGroups, Scaling};
use breakwater::Toolkit;
use breakwater_sandbox::kube::fixtures::{fifty_pod_workload, pdb, pod, replica_set};
use breakwater_sandbox::kube::KubeEmulator;
use breakwater_sandbox::proxy::{Fault, FaultProxy, Rule};
use breakwater_sandbox::scenes::{
    instance_network, spot_nodes, spot_scene, target_group, targets_listed, SpotScene,
};
use breakwater_sandbox::seed::{read_notifications, seed, Estate};
use serde_json::{json, Value};
use spot::settings::SpotSettings;
use spot::SpotFunction;

use crate::common::{aws, read_text, unique};

crate::common::moto_server!();

type Function = SpotFunction<Ec2Instances, EksNodeGroups>;

struct World {
    estate: Estate,
    scene: SpotScene,
    nodes: Vec<String>,
    emu: KubeEmulator,
    direct: Aws,
    proxy: FaultProxy,
    function: Arc<Function>,
    region: String,
}

async fn world(
    region: &str,
    instances: usize,
    factor: f64,
    clock: Arc<dyn Clock>,
    extra: &[(&str, &str)],
) -> World {
    world_with_lease(
        region,
        instances,
        factor,
        clock,
        extra,
        Duration::from_secs(180),
    )
    .await
}

async fn world_with_lease(
    region: &str,
    instances: usize,
    factor: f64,
    clock: Arc<dyn Clock>,
    extra: &[(&str, &str)],
    lease_ttl: Duration,
) -> World {
    let direct = aws(&moto().endpoint(), region).await;
    let suffix = format!("-{}", unique("s"));
    let estate = seed(direct.config(), region, "us-west-2", &suffix)
        .await
        .unwrap();
    let scene = spot_scene(direct.config(), region, &suffix, instances)
        .await
        .unwrap();
    let emu = KubeEmulator::start(clock.now_ms(), factor).await.unwrap();
    let nodes = spot_nodes(&emu, &scene).unwrap();
    let proxy = FaultProxy::start(&moto().endpoint(), 7).await.unwrap();
    let aws = Arc::new(Aws::for_endpoint(&proxy.endpoint(), region).await);
    let settings = Settings {
        region: region.into(),
        state_bucket: estate.primary.state_bucket.clone(),
        topic_arn: Some(estate.primary.topic_arn.clone()),
        dry_run: false,
        lease_ttl,
        idempotency_ttl: Duration::from_secs(900),
        function_name: "spot".into(),
    };
    let on_demand = format!(
        "{}/{}={}",
        scene.cluster, scene.spot_node_group, scene.on_demand_node_group
    );
    let mut pairs = vec![
        ("BREAKWATER_SPOT_CLUSTERS", scene.cluster.as_str()),
        ("BREAKWATER_SPOT_ON_DEMAND", on_demand.as_str()),
    ];
    pairs.extend_from_slice(extra);
    let spot_settings = SpotSettings::from_env(&Env::from_pairs(pairs)).unwrap();
    let function = SpotFunction {
        instances: Ec2Instances::new(aws.ec2()),
        node_groups: EksNodeGroups::new(aws.eks()),
        target_groups: ElbTargetGroups::new(aws.elbv2()),
        lifecycle: AsgLifecycle::new(aws.autoscaling()),
        kube: KubeClients::new(Some(emu.endpoint())).unwrap(),
        toolkit: Toolkit::with_aws(settings, aws.clone(), clock),
        settings: spot_settings,
    };
    World {
        estate,
        scene,
        nodes,
        emu,
        direct,
        proxy,
        function: Arc::new(function),
        region: region.into(),
    }
}

impl World {
    fn event(&self, detail_type: &str, id: &str, time_ms: u64, detail: Value) -> Value {
        json!({"version": "0", "id": id, "detail-type": detail_type, "source": "aws.ec2",
            "account": "123456789012", "time": breakwater::clock::rfc3339(time_ms), "region": self.region,
            "resources": [], "detail": detail})
    }

    fn warning(&self, instance: &str, id: &str, time_ms: u64) -> Value {
        self.event(
            "EC2 Spot Instance Interruption Warning",
            id,
            time_ms,
            json!({"instance-id": instance, "instance-action": "terminate"}),
        )
    }

    async fn handle(&self, event: Value) -> Value {
        self.function.handle(event, &unique("req")).await.unwrap()
    }

    fn tick(&self, id: &str) -> Value {
        json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-23T06:00:00Z", "region": self.region,
            "resources": [], "detail": {}})
    }

    fn update_configs(&self) -> usize {
        self.proxy
            .calls()
            .iter()
            .filter(|c| c.path.contains("/on-demand/update-config") && c.fault.is_none())
            .count()
    }

    fn pods_on(&self, node: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .emu
            .list("pods")
            .iter()
            .filter(|p| p["spec"]["nodeName"] == node)
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }

    async fn on_demand(&self) -> Scaling {
        EksNodeGroups::new(self.direct.eks())
            .describe(&NodeGroupId {
                cluster: self.scene.cluster.clone(),
                name: self.scene.on_demand_node_group.clone(),
            })
            .await
            .unwrap()
            .unwrap()
            .scaling
    }
}

fn uid(v: &Value) -> String {
    v["metadata"]["uid"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifty_pod_node_with_budgets_drains_inside_the_deadline() {
    // The emulator's kubelet runs at 4× (5 s of grace in 1.25 s; a replacement is Ready in 0.5 s).
    let w = world("us-east-2", 1, 4.0, Arc::new(SystemClock), &[]).await;
    let node = w.nodes[0].clone();
    fifty_pod_workload(&w.emu, &node, "shop").unwrap();
    // The warning was sent 60 s ago: 50 s are left before the deadline (120 s − 10 s margin).
    let sent = SystemClock.now_ms() - 60_000;
    let r = w
        .handle(w.warning(&w.scene.instances[0], "e-1", sent))
        .await;
    assert_eq!(r["outcome"], "drained", "{r}");
    let report = &r["report"];
    assert_eq!(report["deadline_missed"], false, "{r}");
    let evicted = report["pods"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["outcome"] == "evicted")
        .count();
    assert_eq!(evicted, 50, "{r}");
    // How fast the cordon is, is measured by `make bench` (spot-bench), not asserted against this
    // machine's wall clock (a `cordon_ms < 1000` here failed under load, before and after issue 18
    // alike).
    assert!(report["took_ms"].as_u64().unwrap() < 50_000, "{r}");
    assert!(r["cordon_ms"].as_f64().is_some(), "{r}");
    // Every budget held: some evictions were refused and retried.
    assert!(report["pods"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["refusals"].as_u64() > Some(0)));
    // What is left on the node is what must stay; the node is cordoned, tainted, out of load balancers.
    assert_eq!(
        w.pods_on(&node),
        vec!["kube-proxy-shop", "node-exporter-shop-x", "report-shop"]
    );
    let n = w.emu.get("nodes", "", &node).unwrap();
    assert_eq!(n["spec"]["unschedulable"], true);
    assert_eq!(n["spec"]["taints"][0]["key"], "breakwater.io/draining");
    assert_eq!(
        n["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"],
        "true"
    );
    // A Kubernetes Event on the node says what is happening.
    let events = w.emu.list("events");
    assert!(
        events
            .iter()
            .any(|e| e["involvedObject"]["name"] == node.as_str()
                && e["reason"] == "SpotInterruption"),
        "{events:?}"
    );
    // On the wire: every eviction carried deleteOptions with the pod's UID.
    for e in w
        .emu
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/eviction"))
    {
        assert!(
            e.body["deleteOptions"]["preconditions"]["uid"].is_string(),
            "{}",
            e.body
        );
    }
    // One notification, saying what happened.
    let notes = read_notifications(
        w.direct.config(),
        &w.estate.primary.region,
        &w.estate.primary.queue_url,
        1,
    )
    .await
    .unwrap();
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].subject.contains("50 evicted"),
        "{}",
        notes[0].subject
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_leaves_its_load_balancers_before_the_first_eviction() {
    // GIVEN a node (with a 50-pod workload) that is a target of three groups of its VPC: a
    // NodePort group with a port override and a 3-s deregistration delay, an `ip` group holding
    // its primary address with ELB's default 300-s delay, and a group of another instance that
    // must be left alone; the load-balancer wait is at most 6 s
    let w = world(
        "ca-central-1",
        2,
        4.0,
        Arc::new(SystemClock),
        &[("BREAKWATER_SPOT_LB_WAIT_MAX_SECONDS", "6")],
    )
    .await;
    let node = w.nodes[0].clone();
    fifty_pod_workload(&w.emu, &node, "shop").unwrap();
    let (instance, other) = (&w.scene.instances[0], &w.scene.instances[1]);
    let (vpc, ip) = instance_network(w.direct.config(), instance).await.unwrap();
    let suffix = unique("tg");
    let node_port = target_group(
        w.direct.config(),
        &format!("np-{suffix}"),
        &vpc,
        "instance",
        &[(instance, 30080)],
        3,
    )
    .await
    .unwrap();
    let pod_ips = target_group(
        w.direct.config(),
        &format!("ip-{suffix}"),
        &vpc,
        "ip",
        &[(&ip, 8080)],
        300,
    )
    .await
    .unwrap();
    let others = target_group(
        w.direct.config(),
        &format!("ot-{suffix}"),
        &vpc,
        "instance",
        &[(other, 30080)],
        3,
    )
    .await
    .unwrap();
    // WHEN its interruption warning arrives (sent 10 s ago: 100 s to the deadline)
    let sent = SystemClock.now_ms() - 10_000;
    let r = w.handle(w.warning(instance, "e-lb", sent)).await;
    assert_eq!(r["outcome"], "drained", "{r}");
    let report = &r["report"];
    let lb = &report["load_balancers"];
    // THEN both of its registrations were deregistered, with their ports (read back from ELB:
    // the NodePort one has completed, the `ip` one is still draining; the other node's is
    // untouched)
    assert_eq!(
        targets_listed(w.direct.config(), &node_port).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        targets_listed(w.direct.config(), &pod_ips).await.unwrap(),
        vec![format!("{ip}:8080 draining")]
    );
    assert_eq!(
        targets_listed(w.direct.config(), &others).await.unwrap(),
        vec![format!("{other}:30080 healthy")]
    );
    // AND the evictions waited for the NodePort target to complete (its 3-s delay: moto keeps a
    // deregistered target draining for the whole delay) and no longer than the 6-s bound for the
    // `ip` one, which is reported still draining
    let targets = lb["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{lb}");
    let started = lb["started_ms"].as_u64().unwrap();
    let ended = lb["ended_ms"].as_u64().unwrap();
    let np = targets
        .iter()
        .find(|t| t["target"] == format!("{instance}:30080").as_str())
        .unwrap();
    let done = np["done_ms"]
        .as_u64()
        .expect("the NodePort target completed");
    assert!(done - started >= 3_000, "completed after its delay: {lb}");
    assert_eq!(np["delay_s"], 3);
    let ipt = targets
        .iter()
        .find(|t| t["target"] == format!("{ip}:8080").as_str())
        .unwrap();
    assert!(ipt.get("done_ms").is_none(), "{lb}");
    assert_eq!(ipt["delay_s"], 300);
    assert!(
        (6_000..12_000).contains(&(ended - started)),
        "bounded at 6 s: {lb}"
    );
    assert_eq!(
        lb["ended_because"], "BREAKWATER_SPOT_LB_WAIT_MAX_SECONDS reached with 1 still draining",
        "{lb}"
    );
    let first_eviction = report["timings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["asked_ms"].as_u64().unwrap())
        .min()
        .unwrap();
    assert!(
        first_eviction >= ended,
        "no eviction before the load balancers: {lb}"
    );
    assert_eq!(report["deadline_missed"], false, "{r}");
    // AND the drain report and its picture say so: a phase, two actions, a lane per target
    let saved = read_text(
        &w.direct,
        &w.estate.primary.state_bucket,
        &format!("reports/spot/{instance}.svg"),
    )
    .await;
    assert!(
        saved.contains(&format!("LB np-{suffix} {instance}:30080")),
        "{saved}"
    );
    assert!(saved.contains("still draining"), "{saved}");
    let notes = read_notifications(
        w.direct.config(),
        &w.estate.primary.region,
        &w.estate.primary.queue_url,
        1,
    )
    .await
    .unwrap();
    assert!(
        notes[0].message.contains(
            "Load balancers: 2 target(s) deregistered before the first eviction, 1 still draining"
        ),
        "{}",
        notes[0].message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_that_never_allows_is_overridden_at_the_deadline_and_named() {
    let w = world("us-west-1", 1, 4.0, Arc::new(SystemClock), &[]).await;
    let node = w.nodes[0].clone();
    w.emu.with(|c| c.pause_replication(true));
    // A single-replica ledger with minAvailable 1 (never allows), and a pod that respects its budget.
    let rs = w
        .emu
        .create(
            "replicasets",
            "money",
            replica_set("ledger-7f", "ledger", 1),
        )
        .unwrap();
    w.emu
        .create(
            "pods",
            "money",
            pod(
                "ledger-0",
                &node,
                "ledger",
                Some(("ReplicaSet", "ledger-7f", &uid(&rs))),
                5,
            ),
        )
        .unwrap();
    w.emu
        .create(
            "poddisruptionbudgets",
            "money",
            pdb("ledger", "ledger", Some(json!(1)), None),
        )
        .unwrap();
    let mut careful = pod("vault-0", &node, "vault", None, 5);
    careful["metadata"]["annotations"] = json!({"breakwater.io/drain-policy": "respect-pdb"});
    w.emu.create("pods", "money", careful).unwrap();
    w.emu
        .create(
            "poddisruptionbudgets",
            "money",
            pdb("vault", "vault", Some(json!(1)), None),
        )
        .unwrap();
    w.emu.with(|c| c.pause_replication(false));
    // 8 s left: the ledger pod (5 s of grace) is forced at about 3 s.
    let sent = SystemClock.now_ms() - 102_000;
    // That the drain ends at the deadline (not later) is told on paused time, on the fakes:
    // functions/spot/tests/drain.rs, a_budget_that_never_allows_is_overridden_at_the_deadline_less_the_grace_and_named.
    let r = w
        .handle(w.warning(&w.scene.instances[0], "e-2", sent))
        .await;
    let pods = r["report"]["pods"].as_array().unwrap();
    let ledger = pods.iter().find(|p| p["pod"] == "money/ledger-0").unwrap();
    assert_eq!(ledger["outcome"], "forced", "{r}");
    assert!(
        ledger["blocked_by"]
            .as_str()
            .unwrap()
            .contains("disruption budget ledger"),
        "{r}"
    );
    let grace = ledger["grace_s"].as_i64().unwrap();
    assert!(
        (1..=5).contains(&grace),
        "the grace is clamped to the time left: {grace}"
    );
    let vault = pods.iter().find(|p| p["pod"] == "money/vault-0").unwrap();
    assert_eq!(vault["outcome"], "blocked", "{r}");
    assert_eq!(r["report"]["deadline_missed"], true);
    assert!(
        w.emu.get("pods", "money", "vault-0").unwrap()["metadata"]["deletionTimestamp"].is_null()
    );
    let notes = read_notifications(
        w.direct.config(),
        &w.estate.primary.region,
        &w.estate.primary.queue_url,
        1,
    )
    .await
    .unwrap();
    assert_eq!(notes.len(), 1);
    let instance = &w.scene.instances[0];
    for needle in [
        "money/ledger-0",
        "disruption budget ledger",
        "money/vault-0",
        "NOT evicted",
        // The report's page in the console, and the command that shows it
        &format!("/s3/object/{}?region=", w.estate.primary.state_bucket),
        &format!("breakwater report --function spot {instance}"),
    ] {
        assert!(
            notes[0].message.contains(needle),
            "{needle}: {}",
            notes[0].message
        );
    }
    // AND the drain's report is in the state bucket (written under the function's role), its
    // picture's lanes naming the budget that held each pod — from the API server's own words
    let key = format!("reports/spot/{instance}");
    let bucket = &w.estate.primary.state_bucket;
    let stored: Value =
        serde_json::from_str(&read_text(&w.direct, bucket, &format!("{key}.json")).await).unwrap();
    let report = &stored["data"];
    assert_eq!(report["outcome"], "deadline-missed", "{report}");
    let picture = &report["picture"];
    assert_eq!(picture["kind"], "drain", "{report}");
    let lanes = picture["lanes"].as_array().unwrap();
    let lane = |pod: &str| lanes.iter().find(|l| l["pod"] == pod).unwrap().clone();
    let (ledger, vault) = (lane("money/ledger-0"), lane("money/vault-0"));
    assert_eq!(
        (&ledger["outcome"], &ledger["held_by"]),
        (&json!("forced"), &json!("PDB ledger"))
    );
    assert_eq!(
        (&vault["outcome"], &vault["held_by"]),
        (&json!("blocked"), &json!("PDB vault"))
    );
    // … the ledger pod forced before the deadline, the vault pod given up at it
    let deadline = picture["deadline_ms"].as_u64().unwrap();
    assert_eq!(
        deadline,
        sent + 110_000,
        "the warning's time + 120 s − the 10 s margin"
    );
    assert!(
        ledger["settled_ms"].as_u64().unwrap() < deadline,
        "{ledger}"
    );
    assert!(vault["settled_ms"].as_u64().unwrap() >= deadline, "{vault}");
    let svg = read_text(&w.direct, bucket, &format!("{key}.svg")).await;
    assert!(
        svg.contains("forced past PDB ledger") && svg.contains("held: PDB vault"),
        "{svg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_deliveries_make_one_drain_and_one_notification_and_the_story_merges() {
    let w = world("ca-central-1", 3, 4.0, Arc::new(SystemClock), &[]).await;
    let (a, b, c) = (
        w.scene.instances[0].clone(),
        w.scene.instances[1].clone(),
        w.scene.instances[2].clone(),
    );
    w.emu
        .create("pods", "shop", pod("solo", &w.nodes[0], "solo", None, 1))
        .unwrap();
    let sent = SystemClock.now_ms() - 30_000;
    // 50 copies of one event and 50 distinct events for the same instance, all at once.
    let mut calls = Vec::new();
    for i in 0..100 {
        let id = if i % 2 == 0 {
            "dup".to_string()
        } else {
            format!("other-{i}")
        };
        let event = w.warning(&a, &id, sent);
        let f = w.function.clone();
        calls.push(tokio::spawn(async move {
            f.handle(event, &format!("req-{i}")).await
        }));
    }
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for call in calls {
        let r = call.await.unwrap().unwrap();
        *outcomes
            .entry(r["outcome"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(outcomes.get("drained"), Some(&1), "{outcomes:?}");
    let cordons = w
        .emu
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains(&w.nodes[0]))
        .count();
    assert_eq!(cordons, 1, "{outcomes:?}");
    let evictions = w
        .emu
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/solo/eviction"))
        .count();
    assert_eq!(evictions, 1);

    // A rebalance recommendation cordons B; the warning that follows continues the same story.
    let r = w
        .handle(w.event(
            "EC2 Instance Rebalance Recommendation",
            "rb-1",
            sent,
            json!({"instance-id": b}),
        ))
        .await;
    assert_eq!(r["outcome"], "cordoned", "{r}");
    assert_eq!(
        w.emu.get("nodes", "", &w.nodes[1]).unwrap()["spec"]["unschedulable"],
        true
    );
    let r = w.handle(w.warning(&b, "w-b", sent)).await;
    assert_eq!(r["outcome"], "drained", "{r}");
    let status = w
        .handle(json!({"command": "status", "instance_id": b}))
        .await;
    let history = status["record"]["history"].to_string();
    assert!(
        history.contains("rebalance") && history.contains("drained"),
        "{status}"
    );

    // A `running` state change is ignored (it must not end a story before it starts) …
    let r = w
        .handle(w.event(
            "EC2 Instance State-change Notification",
            "sc-c-running",
            sent,
            json!({"instance-id": c, "state": "running"}),
        ))
        .await;
    assert_eq!(r["outcome"], "ignored", "{r}");
    // … C terminates; its warning arriving late changes nothing.
    let r = w
        .handle(w.event(
            "EC2 Instance State-change Notification",
            "sc-c",
            sent,
            json!({"instance-id": c, "state": "terminated"}),
        ))
        .await;
    assert_eq!(r["outcome"], "ended", "{r}");
    let r = w.handle(w.warning(&c, "w-c", sent)).await;
    assert_eq!(r["outcome"], "already-ended", "{r}");
    assert_eq!(
        w.emu.get("nodes", "", &w.nodes[2]).unwrap()["spec"]["unschedulable"],
        Value::Null
    );

    let notes = read_notifications(
        w.direct.config(),
        &w.estate.primary.region,
        &w.estate.primary.queue_url,
        2,
    )
    .await
    .unwrap();
    assert_eq!(
        notes.len(),
        2,
        "one per drained instance: {:?}",
        notes.iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_interruptions_in_a_pool_fail_over_once_and_return_once() {
    let clock = ManualClock::at(1_795_392_000_000);
    let w = world(
        "eu-central-1",
        20,
        0.0,
        Arc::new(clock.clone()),
        &[("BREAKWATER_SPOT_FAILOVER_THRESHOLD", "3")],
    )
    .await;
    let before = w.on_demand().await;
    for (i, instance) in w.scene.instances.clone().iter().enumerate() {
        clock.advance(Duration::from_secs(10));
        let r = w
            .handle(w.warning(instance, &format!("w-{i}"), clock.now_ms()))
            .await;
        assert_eq!(r["outcome"], "drained", "{r}");
    }
    let raised = w.on_demand().await;
    assert_eq!(
        raised,
        Scaling {
            min: 3,
            desired: 3,
            max: 10
        },
        "one step of 2 over {before}"
    );
    let updates = w
        .proxy
        .calls()
        .iter()
        .filter(|c| c.path.contains("/on-demand/update-config"))
        .count();
    assert_eq!(updates, 1, "exactly one scale-up");
    // 29 minutes after the last interruption: it stays; after 30 it returns, once.
    clock.advance(Duration::from_secs(29 * 60));
    let r = w.handle(json!({"version": "0", "id": "tick-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-23T06:00:00Z", "region": w.region, "resources": [], "detail": {}})).await;
    assert!(r["actions"].to_string().contains("stays raised"), "{r}");
    clock.advance(Duration::from_secs(2 * 60));
    for tick in ["tick-2", "tick-3"] {
        w.handle(json!({"version": "0", "id": tick, "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-23T06:00:00Z", "region": w.region, "resources": [], "detail": {}})).await;
    }
    assert_eq!(w.on_demand().await, before);
    let updates = w
        .proxy
        .calls()
        .iter()
        .filter(|c| c.path.contains("/on-demand/update-config"))
        .count();
    assert_eq!(updates, 2, "one scale-up and one return");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_unknown_and_malformed_events_change_nothing() {
    let w = world("ap-south-1", 1, 0.0, Arc::new(SystemClock), &[]).await;
    let now = SystemClock.now_ms();
    let cases = [
        (
            w.warning(&w.scene.foreign_instance, "f-1", now),
            "foreign-instance",
        ),
        (
            w.warning("i-0123456789abcdef0", "f-2", now),
            "unknown-instance",
        ),
        (w.warning("not-an-instance", "f-3", now), "rejected"),
        (
            w.event(
                "EC2 Spot Instance Interruption Warning",
                "f-4",
                now,
                json!({}),
            ),
            "rejected",
        ),
        (
            json!({"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2"}),
            "rejected",
        ),
        (json!({"something": "else"}), "rejected"),
    ];
    for (event, expected) in cases {
        let r = w.function.handle(event.clone(), "req").await;
        if expected == "rejected" {
            // Bad input is an InvalidEvent error.
            let err = r.expect_err("bad input is an InvalidEvent error");
            assert_eq!(err.error_type(), "InvalidEvent", "{event} → {err}");
        } else {
            let r = r.unwrap();
            assert_eq!(r["outcome"], expected, "{event} → {r}");
        }
    }
    assert!(
        w.emu.requests().iter().all(|r| r.method == "GET"),
        "no mutation of the cluster"
    );
    assert!(w.proxy.calls().iter().all(
        |c| !c.operation.contains("UpdateNodegroupConfig") && !c.path.contains("update-config")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_without_a_warning_is_uncordoned_and_a_missing_node_ends_the_story() {
    let clock = ManualClock::at(1_795_392_000_000);
    let w = world("eu-north-1", 2, 0.0, Arc::new(clock.clone()), &[]).await;
    let (a, b) = (w.scene.instances[0].clone(), w.scene.instances[1].clone());
    let tick = |id: &str| {
        json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-23T06:00:00Z", "region": w.region, "resources": [], "detail": {}})
    };
    // A rebalance recommendation cordons (the default policy) …
    let r = w
        .handle(w.event(
            "EC2 Instance Rebalance Recommendation",
            "rb",
            clock.now_ms(),
            json!({"instance-id": a}),
        ))
        .await;
    assert_eq!(r["outcome"], "cordoned", "{r}");
    // … the schedule leaves it cordoned for 10 minutes …
    clock.advance(Duration::from_secs(9 * 60));
    w.handle(tick("t-1")).await;
    assert_eq!(
        w.emu.get("nodes", "", &w.nodes[0]).unwrap()["spec"]["unschedulable"],
        true
    );
    // … and uncordons it (taint and label gone too) when no warning followed.
    clock.advance(Duration::from_secs(2 * 60));
    let r = w.handle(tick("t-2")).await;
    assert!(r["actions"].to_string().contains("uncordoned"), "{r}");
    let node = w.emu.get("nodes", "", &w.nodes[0]).unwrap();
    assert!(node["spec"]["unschedulable"].is_null(), "{node}");
    assert!(
        node["spec"]["taints"].as_array().is_none_or(Vec::is_empty),
        "{node}"
    );
    assert!(
        node["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"]
            .is_null()
    );

    // An instance whose node is already gone: success, the story ends, nothing is patched.
    let before = w
        .emu
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    w.emu.with(|c| {
        let kind = breakwater_sandbox::kube::store::find_kind("", "v1", "nodes").unwrap();
        c.delete(kind, "", &w.nodes[1], &json!({})).unwrap();
    });
    let r = w.handle(w.warning(&b, "w-b", clock.now_ms())).await;
    assert_eq!(r["outcome"], "ended", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("node is already gone"),
        "{r}"
    );
    assert_eq!(
        w.emu
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .count(),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_on_demand_accounting_never_stops_the_drain() {
    // GIVEN an on-demand group name that does not exist (a typo in BREAKWATER_SPOT_ON_DEMAND)
    // and a threshold of one interruption
    let w = world(
        "eu-west-3",
        1,
        4.0,
        Arc::new(SystemClock),
        &[("BREAKWATER_SPOT_FAILOVER_THRESHOLD", "1")],
    )
    .await;
    let typo = format!("{}/{}=on-demnad", w.scene.cluster, w.scene.spot_node_group);
    let w = World {
        function: Arc::new(SpotFunction {
            instances: Ec2Instances::new(w.function.toolkit.aws.ec2()),
            node_groups: EksNodeGroups::new(w.function.toolkit.aws.eks()),
            target_groups: ElbTargetGroups::new(w.function.toolkit.aws.elbv2()),
            lifecycle: AsgLifecycle::new(w.function.toolkit.aws.autoscaling()),
            kube: KubeClients::new(Some(w.emu.endpoint())).unwrap(),
            toolkit: w.function.toolkit.clone(),
            settings: SpotSettings::from_env(&Env::from_pairs([
                ("BREAKWATER_SPOT_CLUSTERS", w.scene.cluster.as_str()),
                ("BREAKWATER_SPOT_ON_DEMAND", typo.as_str()),
                ("BREAKWATER_SPOT_FAILOVER_THRESHOLD", "1"),
            ]))
            .unwrap(),
        }),
        ..w
    };
    w.emu
        .create("pods", "shop", pod("solo", &w.nodes[0], "solo", None, 1))
        .unwrap();
    // WHEN the warning comes
    let sent = SystemClock.now_ms() - 60_000;
    let r = w
        .handle(w.warning(&w.scene.instances[0], "acc-1", sent))
        .await;
    // THEN the node is drained all the same, and the accounting's error is reported
    assert_eq!(r["outcome"], "drained", "{r}");
    assert_eq!(r["report"]["pods"][0]["outcome"], "evicted", "{r}");
    assert!(
        r["failover_error"].as_str().unwrap().contains("on-demnad"),
        "{r}"
    );
    let status = w
        .handle(json!({"command": "status", "instance_id": w.scene.instances[0]}))
        .await;
    assert!(
        status["record"]["history"]
            .to_string()
            .contains("on-demand accounting failed"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_scale_up_is_retried_by_the_next_interruption() {
    // GIVEN a threshold of one interruption, and EKS answering the first UpdateNodegroupConfig
    // with 409 ResourceInUseException (the on-demand group is being updated)
    let w = world(
        "eu-west-2",
        2,
        4.0,
        Arc::new(SystemClock),
        &[("BREAKWATER_SPOT_FAILOVER_THRESHOLD", "1")],
    )
    .await;
    let before = w.on_demand().await;
    w.proxy.add_rule(
        Rule::always(Fault::Conflict)
            .service("eks")
            .operation("UpdateNodegroupConfig")
            .times(1),
    );
    let sent = SystemClock.now_ms() - 60_000;
    // WHEN the first warning's raise fails
    let r = w
        .handle(w.warning(&w.scene.instances[0], "raise-1", sent))
        .await;
    assert_eq!(r["outcome"], "drained", "{r}");
    assert!(r["failover_error"].is_string(), "{r}");
    assert_eq!(w.on_demand().await, before, "not raised yet");
    // THEN the next interruption raises it (the failover was not taken for done) …
    let r = w
        .handle(w.warning(&w.scene.instances[1], "raise-2", sent))
        .await;
    assert_eq!(r["outcome"], "drained", "{r}");
    assert_eq!(r["failover"]["action"], "scaled-up", "{r}");
    assert_eq!(
        w.on_demand().await,
        Scaling {
            min: 3,
            desired: 3,
            max: 10
        }
    );
    // … once
    assert_eq!(w.update_configs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_on_demand_group_returns_its_min_when_cluster_autoscaler_moved_desired() {
    let clock = ManualClock::at(1_795_392_000_000);
    let w = world(
        "ap-southeast-2",
        1,
        0.0,
        Arc::new(clock.clone()),
        &[("BREAKWATER_SPOT_FAILOVER_THRESHOLD", "1")],
    )
    .await;
    let before = w.on_demand().await;
    // GIVEN a failover that raised the on-demand group
    let r = w
        .handle(w.warning(&w.scene.instances[0], "ca-1", clock.now_ms()))
        .await;
    assert_eq!(r["failover"]["action"], "scaled-up", "{r}");
    let raised = w.on_demand().await;
    // AND Cluster Autoscaler then moved desired inside [min, max], as it does
    let id = NodeGroupId {
        cluster: w.scene.cluster.clone(),
        name: w.scene.on_demand_node_group.clone(),
    };
    let autoscaled = Scaling {
        desired: raised.desired + 2,
        ..raised
    };
    EksNodeGroups::new(w.direct.eks())
        .update_scaling(&id, autoscaled, "cluster-autoscaler")
        .await
        .unwrap();
    // WHEN the stable period has passed
    clock.advance(Duration::from_secs(31 * 60));
    let r = w.handle(w.tick("ca-tick")).await;
    // THEN min (Breakwater's) returns; desired (the autoscaler's now) stays
    assert!(r["actions"].to_string().contains("returned"), "{r}");
    assert_eq!(
        w.on_demand().await,
        Scaling {
            min: before.min,
            desired: autoscaled.desired,
            max: before.max
        },
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_karpenter_node_is_drained_and_raises_no_node_group() {
    // GIVEN a spot instance without the managed-node-group tags — what the EC2 adapter sees of a
    // Karpenter node (Karpenter v1 tags `eks:eks-cluster-name`, `kubernetes.io/cluster/<name>`
    // and `karpenter.sh/nodepool`, never `eks:cluster-name` or `eks:nodegroup-name`) — whose
    // node, labelled by Karpenter, is in the managed cluster
    let w = world(
        "sa-east-1",
        1,
        4.0,
        Arc::new(SystemClock),
        &[("BREAKWATER_SPOT_FAILOVER_THRESHOLD", "1")],
    )
    .await;
    let instance = w.scene.instances[0].clone();
    let described = w
        .direct
        .ec2()
        .describe_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    for tag in described.reservations()[0].instances()[0].tags() {
        w.direct
            .ec2()
            .delete_tags()
            .resources(&instance)
            .tags(tag.clone())
            .send()
            .await
            .unwrap();
    }
    let info =
        breakwater::ports::Instances::describe(&Ec2Instances::new(w.direct.ec2()), &instance)
            .await
            .unwrap()
            .unwrap();
    assert_eq!((info.cluster, info.node_group), (None, None));
    let node = w.nodes[0].clone();
    w.emu
        .with(|c| {
            let kind = breakwater_sandbox::kube::store::find_kind("", "v1", "nodes").unwrap();
            c.patch(
                kind,
                "",
                &node,
                "application/merge-patch+json",
                &json!({"metadata": {"labels": {"eks.amazonaws.com/nodegroup": null,
                    "karpenter.sh/nodepool": "default", "karpenter.sh/capacity-type": "spot"}}}),
                false,
            )
        })
        .unwrap();
    w.emu
        .create("pods", "shop", pod("solo", &node, "solo", None, 1))
        .unwrap();
    // WHEN its interruption warning comes
    let r = w
        .handle(w.warning(&instance, "karpenter-1", SystemClock.now_ms() - 60_000))
        .await;
    // THEN it is drained as the cluster's node, and no node group is raised for it
    assert_eq!(r["outcome"], "drained", "{r}");
    assert_eq!(r["report"]["pods"][0]["outcome"], "evicted", "{r}");
    assert_eq!(
        w.emu.get("nodes", "", &node).unwrap()["spec"]["unschedulable"],
        true
    );
    assert_eq!(w.update_configs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_longer_than_the_lease_keeps_it_against_a_second_event() {
    // GIVEN a lease of 2 s and a drain that runs about 6 s (a budget that never allows, a pod
    // that respects it)
    let w = world_with_lease(
        "eu-south-1",
        1,
        4.0,
        Arc::new(SystemClock),
        &[],
        Duration::from_secs(2),
    )
    .await;
    let node = w.nodes[0].clone();
    w.emu.with(|c| c.pause_replication(true));
    let mut careful = pod("vault-0", &node, "vault", None, 5);
    careful["metadata"]["annotations"] = json!({"breakwater.io/drain-policy": "respect-pdb"});
    w.emu.create("pods", "money", careful).unwrap();
    w.emu
        .create(
            "poddisruptionbudgets",
            "money",
            pdb("vault", "vault", Some(json!(1)), None),
        )
        .unwrap();
    w.emu.with(|c| c.pause_replication(false));
    let instance = w.scene.instances[0].clone();
    let sent = SystemClock.now_ms() - 104_000;
    let first = {
        let (f, event) = (w.function.clone(), w.warning(&instance, "long-1", sent));
        tokio::spawn(async move { f.handle(event, "first").await })
    };
    // WHEN a second event for the instance comes after the lease's first 2 s have passed
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let second = w.handle(w.warning(&instance, "long-2", sent)).await;
    // THEN the first drain still holds the lease: the second does not drain concurrently
    assert_eq!(second["outcome"], "in-progress", "{second}");
    assert_eq!(second["by"], "first", "{second}");
    let first = first.await.unwrap().unwrap();
    assert_eq!(first["outcome"], "drained", "{first}");
    let cordons = w
        .emu
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains(&node))
        .count();
    assert_eq!(cordons, 1, "one cordon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_never_uncordons_a_node_whose_lease_is_held() {
    let clock = ManualClock::at(1_795_392_000_000);
    let w = world("ap-northeast-1", 1, 0.0, Arc::new(clock.clone()), &[]).await;
    let instance = w.scene.instances[0].clone();
    let node = w.nodes[0].clone();
    // GIVEN a node that another controller tainted, then cordoned on a rebalance recommendation
    let gpu = json!({"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"});
    w.emu
        .with(|c| {
            let kind = breakwater_sandbox::kube::store::find_kind("", "v1", "nodes").unwrap();
            c.patch(
                kind,
                "",
                &node,
                "application/merge-patch+json",
                &json!({"spec": {"taints": [gpu.clone()]}}),
                false,
            )
        })
        .unwrap();
    let r = w
        .handle(w.event(
            "EC2 Instance Rebalance Recommendation",
            "rb-held",
            clock.now_ms(),
            json!({"instance-id": instance}),
        ))
        .await;
    assert_eq!(r["outcome"], "cordoned", "{r}");
    clock.advance(Duration::from_secs(11 * 60));
    // AND a warning being handled right now (it holds the instance's lease)
    let store = &w.function.toolkit.store;
    let held = match store
        .acquire_lease(
            "spot",
            &instance,
            "warning-in-flight",
            Duration::from_secs(60),
        )
        .await
        .unwrap()
    {
        breakwater::state::Acquisition::Acquired(l) => l,
        other => panic!("{other:?}"),
    };
    // WHEN the schedule comes, the uncordon being due
    let r = w.handle(w.tick("held-tick")).await;
    // THEN it leaves the node cordoned
    assert!(r["actions"].to_string().contains("being handled"), "{r}");
    assert_eq!(
        w.emu.get("nodes", "", &node).unwrap()["spec"]["unschedulable"],
        true
    );
    // AND once the lease is free it uncordons, keeping the other controller's taint
    store.release_lease(held).await.unwrap();
    let r = w.handle(w.tick("free-tick")).await;
    assert!(r["actions"].to_string().contains("uncordoned"), "{r}");
    let n = w.emu.get("nodes", "", &node).unwrap();
    assert!(n["spec"]["unschedulable"].is_null(), "{n}");
    assert_eq!(n["spec"]["taints"], json!([gpu]), "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncordon_that_fails_keeps_neither_the_others_nor_the_return_from_running() {
    use breakwater_sandbox::kube::Throttle;
    let clock = ManualClock::at(1_795_392_000_000);
    let w = world(
        "eu-west-1",
        2,
        0.0,
        Arc::new(clock.clone()),
        &[("BREAKWATER_SPOT_FAILOVER_THRESHOLD", "1")],
    )
    .await;
    let before = w.on_demand().await;
    // GIVEN a failover to on-demand, and a node cordoned on a rebalance recommendation
    let r = w
        .handle(w.warning(&w.scene.instances[0], "w-ret", clock.now_ms()))
        .await;
    assert_eq!(r["failover"]["action"], "scaled-up", "{r}");
    let r = w
        .handle(w.event(
            "EC2 Instance Rebalance Recommendation",
            "rb-ret",
            clock.now_ms(),
            json!({"instance-id": w.scene.instances[1]}),
        ))
        .await;
    assert_eq!(r["outcome"], "cordoned", "{r}");
    // AND the API server throttling every try of the uncordon when both are due (a node write
    // is made again from a fresh read after a transient failure, 5 times in all)
    clock.advance(Duration::from_secs(31 * 60));
    w.emu.throttle(Throttle {
        method: Some("PATCH".into()),
        path_contains: w.nodes[1].clone(),
        times: 5,
        retry_after_seconds: 1,
    });
    // WHEN the schedule comes
    let r = w.handle(w.tick("t-ret-1")).await;
    // THEN the on-demand group returns all the same, and the uncordon is reported for later
    let actions = r["actions"].to_string();
    assert!(actions.contains("could not uncordon"), "{r}");
    assert!(actions.contains("returned"), "{r}");
    assert_eq!(w.on_demand().await, before);
    // AND the next tick uncordons
    let r = w.handle(w.tick("t-ret-2")).await;
    assert!(r["actions"].to_string().contains("uncordoned"), "{r}");
    assert!(w.emu.get("nodes", "", &w.nodes[1]).unwrap()["spec"]["unschedulable"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_waits_for_the_schedules_short_hold_instead_of_being_dropped() {
    let w = world("us-east-1", 1, 4.0, Arc::new(SystemClock), &[]).await;
    let instance = w.scene.instances[0].clone();
    // GIVEN the schedule holding the instance's lease (an uncordon takes well under a second)
    let store = w.function.toolkit.store.clone();
    let held = match store
        .acquire_lease(
            "spot",
            &instance,
            "schedule:tick-9",
            Duration::from_secs(60),
        )
        .await
        .unwrap()
    {
        breakwater::state::Acquisition::Acquired(l) => l,
        other => panic!("{other:?}"),
    };
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        store.release_lease(held).await.unwrap();
    });
    // WHEN the interruption warning arrives meanwhile
    let r = w
        .handle(w.warning(&instance, "w-wait", SystemClock.now_ms() - 60_000))
        .await;
    releaser.await.unwrap();
    // THEN it is handled once the schedule lets go, not answered "in progress" and lost
    assert_eq!(r["outcome"], "drained", "{r}");
}

/// An AWS Health scheduled change of `instances` (the schema's shape: "Reference: AWS Health
/// events Amazon EventBridge schema"), starting at `start_ms`.
fn health_event(w: &World, id: &str, instances: &[&str], start_ms: u64) -> Value {
    let start = breakwater::clock::rfc3339(start_ms);
    // RFC 1123, as the schema's samples write `startTime`: `Sat, 05 Jun 2016 15:10:09 GMT`.
    let (date, time) = (&start[..10], &start[11..19]);
    let (y, m, d) = (&date[..4], &date[5..7], &date[8..10]);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][m.parse::<usize>().unwrap() - 1];
    let entities: Vec<Value> = instances
        .iter()
        .map(|i| json!({"entityValue": i}))
        .collect();
    json!({"version": "0", "id": id, "detail-type": "AWS Health Event", "source": "aws.health",
        "account": "123456789012", "time": breakwater::clock::rfc3339(SystemClock.now_ms()),
        "region": w.region, "resources": instances,
        "detail": {"eventArn": format!("arn:aws:health:{}::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/{id}", w.region),
            "service": "EC2", "eventTypeCode": "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
            "eventTypeCategory": "scheduledChange", "startTime": format!("Mon, {d} {month} {y} {time} GMT"),
            "eventDescription": [{"language": "en_US", "latestDescription": "retirement"}],
            "affectedEntities": entities}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_health_scheduled_change_drains_at_once_and_forces_nothing_until_the_change_is_near()
{
    // A scheduled change's drain runs 6 s here (110 s by default), with the default 10-s margin.
    let w = world(
        "eu-west-2",
        2,
        4.0,
        Arc::new(SystemClock),
        &[("BREAKWATER_SPOT_SCHEDULED_DRAIN_SECONDS", "6")],
    )
    .await;
    // On each node: a ledger pod whose budget never allows (forced at the deadline by the
    // default policy), and a pod with no budget.
    w.emu.with(|c| c.pause_replication(true));
    for (i, node) in w.nodes.iter().enumerate() {
        let ns = format!("money-{i}");
        w.emu
            .create("pods", &ns, pod("ledger-0", node, "ledger", None, 2))
            .unwrap();
        w.emu
            .create(
                "poddisruptionbudgets",
                &ns,
                pdb("ledger", "ledger", Some(json!(1)), None),
            )
            .unwrap();
        w.emu
            .create("pods", &ns, pod("batch-0", node, "batch", None, 1))
            .unwrap();
    }
    w.emu.with(|c| c.pause_replication(false));
    let now = SystemClock.now_ms();
    // WHEN AWS Health schedules the first instance's retirement in three days
    let far = health_event(&w, "h-1", &[&w.scene.instances[0]], now + 3 * 86_400_000);
    let r = w.handle(far.clone()).await;
    // THEN its node is cordoned and drained at once; the blocked pod is reported, not forced
    let one = &r["instances"][0];
    assert_eq!(one["outcome"], "drained", "{r}");
    let node = &w.nodes[0];
    assert_eq!(
        w.emu.get("nodes", "", node).unwrap()["spec"]["unschedulable"],
        true
    );
    let pods = one["report"]["pods"].as_array().unwrap();
    let outcome = |name: &str| pods.iter().find(|p| p["pod"] == name).unwrap()["outcome"].clone();
    assert_eq!(outcome("money-0/batch-0"), "evicted", "{one}");
    assert_eq!(
        outcome("money-0/ledger-0"),
        "blocked",
        "not forced days before the change: {one}"
    );
    assert!(
        w.emu.get("pods", "money-0", "ledger-0").unwrap()["metadata"]["deletionTimestamp"]
            .is_null()
    );
    assert!(
        one["report"]["cause"].as_str().unwrap().starts_with(
            "has an AWS Health scheduled change (AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED, from "
        ),
        "{one}"
    );
    // … with an Event on the node that says why
    let events = w.emu.list("events");
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "ScheduledChange"
                && e["involvedObject"]["name"] == node.as_str()),
        "{events:?}"
    );
    // WHEN the same Health event is delivered again THEN nothing more happens
    let again = w.handle(far).await;
    assert_eq!(again["instances"][0]["repeat"], true, "{again}");
    // WHEN the second instance's change starts in 15 s (5 s past the margin) THEN its deadline
    // is the change's, and the blocked pod is forced before it, as for a warning
    let near = health_event(
        &w,
        "h-2",
        &[&w.scene.instances[1]],
        SystemClock.now_ms() + 15_000,
    );
    let r = w.handle(near).await;
    let two = &r["instances"][0];
    let pods = two["report"]["pods"].as_array().unwrap();
    let ledger = pods
        .iter()
        .find(|p| p["pod"] == "money-1/ledger-0")
        .unwrap();
    assert_eq!(ledger["outcome"], "forced", "{two}");
    // AND a notification for each says it is a scheduled change, not a reclaim
    let notes = read_notifications(
        w.direct.config(),
        &w.estate.primary.region,
        &w.estate.primary.queue_url,
        2,
    )
    .await
    .unwrap();
    assert_eq!(notes.len(), 2, "{notes:?}");
    for n in &notes {
        assert!(
            n.message.contains(
                "has an AWS Health scheduled change (AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED"
            ),
            "{}",
            n.message
        );
    }
    // A Health event that is not an EC2 scheduled change is not ours; one naming only a
    // Dedicated Host names no node.
    let mut issue = health_event(&w, "h-3", &[&w.scene.instances[0]], now);
    issue["detail"]["eventTypeCategory"] = json!("issue");
    assert_eq!(w.handle(issue).await["outcome"], "not-a-scheduled-change");
    let host = health_event(&w, "h-4", &["h-0123456789abcdef0"], now);
    assert_eq!(w.handle(host).await["instances"], json!([]));
}

/// An `EC2 Instance-terminate Lifecycle Action` event for `action` (Amazon EC2 Auto Scaling User
/// Guide, "Auto Scaling events"; aws-node-termination-handler quotes the same shape).
fn lifecycle_event(w: &World, id: &str, action: &Value) -> Value {
    json!({"version": "0", "id": id, "detail-type": "EC2 Instance-terminate Lifecycle Action",
        "source": "aws.autoscaling", "account": "123456789012",
        "time": breakwater::clock::rfc3339(SystemClock.now_ms()), "region": w.region,
        "resources": [format!("arn:aws:autoscaling:{}:123456789012:autoScalingGroup:1:autoScalingGroupName/{}", w.region, action["group"].as_str().unwrap())],
        "detail": {"LifecycleActionToken": action["token"], "AutoScalingGroupName": action["group"],
            "LifecycleHookName": action["hook"], "EC2InstanceId": action["instance"],
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_scaling_termination_hook_waits_for_the_drain_and_is_completed_once() {
    use breakwater::aws::autoscaling::aws_sdk_autoscaling as asg;
    let w = world(
        "ca-west-1",
        1,
        4.0,
        Arc::new(SystemClock),
        &[
            ("BREAKWATER_SPOT_SCHEDULED_DRAIN_SECONDS", "6"),
            ("BREAKWATER_SPOT_LIFECYCLE_HOOKS", "drain"),
        ],
    )
    .await;
    // GIVEN a self-managed node group: an Auto Scaling group with a termination lifecycle hook,
    // its instance a node of the cluster (found by its providerID), running a pod
    let auto = w.direct.autoscaling();
    let group = unique("nodes");
    let image = w
        .direct
        .ec2()
        .describe_images()
        .send()
        .await
        .unwrap()
        .images()[0]
        .image_id()
        .unwrap()
        .to_string();
    auto.create_launch_configuration()
        .launch_configuration_name(&group)
        .image_id(image)
        .instance_type("m5.large")
        .send()
        .await
        .unwrap();
    auto.create_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .launch_configuration_name(&group)
        .min_size(0)
        .max_size(3)
        .desired_capacity(1)
        .availability_zones(&w.scene.az)
        .send()
        .await
        .unwrap();
    auto.put_lifecycle_hook()
        .auto_scaling_group_name(&group)
        .lifecycle_hook_name("drain")
        .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
        .heartbeat_timeout(300)
        .send()
        .await
        .unwrap();
    let groups = auto
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&group)
        .send()
        .await
        .unwrap();
    let instance = groups.auto_scaling_groups()[0].instances()[0]
        .instance_id()
        .unwrap()
        .to_string();
    let node = "ip-10-9-0-1.ec2.internal";
    w.emu
        .create(
            "nodes",
            "",
            breakwater_sandbox::kube::fixtures::node(
                node,
                &instance,
                &w.scene.az,
                "self-managed",
                "ON_DEMAND",
            ),
        )
        .unwrap();
    w.emu
        .create("pods", "jobs", pod("report-0", node, "report", None, 1))
        .unwrap();
    // WHEN the group scales in: the instance waits on the hook (Terminating:Wait)
    auto.terminate_instance_in_auto_scaling_group()
        .instance_id(&instance)
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .unwrap();
    let state = |auto: asg::Client, instance: String| async move {
        auto.describe_auto_scaling_instances()
            .instance_ids(instance)
            .send()
            .await
            .unwrap()
            .auto_scaling_instances()
            .first()
            .and_then(|i| i.lifecycle_state().map(str::to_string))
    };
    assert_eq!(
        state(auto.clone(), instance.clone()).await.as_deref(),
        Some("Terminating:Wait")
    );
    let action = moto()
        .lifecycle_actions()
        .unwrap()
        .into_iter()
        .find(|a| a["instance"] == instance.as_str())
        .expect("the hook holds an action open");
    // AND its event arrives
    let r = w.handle(lifecycle_event(&w, "asg-1", &action)).await;
    // THEN the node is cordoned and drained, and only then is the action completed (CONTINUE):
    // the instance leaves the group and terminates
    assert_eq!(r["outcome"], "drained", "{r}");
    assert_eq!(r["lifecycle"], "continued", "{r}");
    assert_eq!(
        w.emu.get("nodes", "", node).unwrap()["spec"]["unschedulable"],
        true
    );
    let pods = r["report"]["pods"].as_array().unwrap();
    assert_eq!(pods[0]["outcome"], "evicted", "{r}");
    assert!(
        r["report"]["cause"].as_str().unwrap().contains(&format!(
            "Auto Scaling group {group} (lifecycle hook drain)"
        )),
        "{r}"
    );
    assert_eq!(
        state(auto.clone(), instance.clone()).await,
        None,
        "gone from the group"
    );
    let ec2 = w
        .direct
        .ec2()
        .describe_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    let ran = &ec2.reservations()[0].instances()[0];
    assert_eq!(
        ran.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("terminated")
    );
    assert!(moto()
        .lifecycle_actions()
        .unwrap()
        .iter()
        .all(|a| a["instance"] != instance.as_str()));
    // WHEN the event is delivered again, or retried under another id THEN nothing more is
    // drained, and the action is no longer waiting
    let again = w.handle(lifecycle_event(&w, "asg-1", &action)).await;
    assert_eq!(
        (again["repeat"].clone(), again["lifecycle"].clone()),
        (json!(true), json!("no-longer-waiting")),
        "{again}"
    );
    let retried = w.handle(lifecycle_event(&w, "asg-1-retry", &action)).await;
    assert_eq!(retried["lifecycle"], "no-longer-waiting", "{retried}");
    // AND another hook (EKS managed node groups' own), the hook's test notification, and an
    // instance of another cluster, are left alone
    let mut eks = action.clone();
    eks["hook"] = json!("Terminate-LC-Hook");
    let r = w.handle(lifecycle_event(&w, "asg-4", &eks)).await;
    assert_eq!(r["outcome"], "not-our-hook", "{r}");
    let mut test = lifecycle_event(&w, "asg-2", &action);
    test["detail"] =
        json!({"Event": "autoscaling:TEST_NOTIFICATION", "AutoScalingGroupName": group});
    assert_eq!(w.handle(test).await["outcome"], "not-a-termination");
    let mut foreign = action.clone();
    foreign["instance"] = json!(w.scene.foreign_instance);
    let r = w.handle(lifecycle_event(&w, "asg-3", &foreign)).await;
    assert_eq!(r["outcome"], "foreign-instance", "{r}");
    assert!(r.get("lifecycle").is_none(), "not ours to complete: {r}");
}
