//! The two modes that change nothing: `plan` (the steps against live state, with endpoints and
//! the expected timeline) and `precheck` (readiness, published as `FailoverReady`).

use breakwater::kube::capacity::Capacity;
use breakwater::kube::workloads::ObjectAt;
use breakwater::metrics::{Metrics, Unit};
use breakwater::ports::{
    Alarms, Dns, MetricReader, MetricSwitches, NodeGroups, Replicas, RoutingControls,
};
use breakwater::probe::Probe;
use breakwater::Result;
use serde_json::{json, Value};

use crate::dependencies;
use crate::engine::{replica_lag, LagAt};
use crate::estate::{self, DatabaseSeen, Look};
use crate::plan::{Database, LoadedPlan};
use crate::FailoverFunction;

impl<
        R: Replicas,
        N: NodeGroups,
        D: Dns,
        M: MetricReader,
        C: RoutingControls,
        W: MetricSwitches,
        K: Capacity,
        P: Probe,
        A: Alarms,
    > FailoverFunction<R, N, D, M, C, W, K, P, A>
{
    /// `plan`: the steps against live state, with endpoints and the expected timeline.
    pub(crate) async fn plan_mode(&self, plan: &LoadedPlan) -> Result<Value> {
        let p = &plan.plan;
        let mut steps = Vec::new();
        let mut observed = Vec::new();
        let rds = |r: &str| format!("https://rds.{r}.amazonaws.com");
        let arc_endpoints = |rc: &crate::plan::RoutingControlPlan| {
            rc.cluster_endpoints
                .iter()
                .map(|e| format!("{} ({})", e.endpoint, e.region))
                .collect::<Vec<_>>()
        };
        let monitoring = format!("https://monitoring.{}.amazonaws.com", p.secondary_region);
        if let Some(rc) = &p.traffic.routing_controls {
            steps.push(json!({"step": "fence", "call": "route53-recovery-cluster:UpdateRoutingControlStates", "target": format!("{} Off", rc.primary), "endpoint": format!("any of: {}", arc_endpoints(rc).join(", ")), "expected_seconds": 1}));
        }
        let look = Look {
            db: &self.ports.secondary_db,
            instance: plan.database.replica().unwrap_or_default(),
            node_groups: true,
            traffic: None,
            controls: false,
        };
        let estate = estate::observe(
            plan,
            look,
            &self.ports.nodes,
            &self.ports.dns,
            &self.ports.switches,
            &self.ports.metric_switches,
        )
        .await?;
        let db_seconds = match (&plan.database, estate.database) {
            (Database::Rds { replica, .. }, DatabaseSeen::Instance(live)) => {
                observed.push(json!({"replica": replica, "status": live.as_ref().map(|d| d.status.clone()), "source": live.and_then(|d| d.source)}));
                steps.push(json!({"step": "database", "call": "rds:PromoteReadReplica", "target": replica, "endpoint": rds(&p.secondary_region), "expected_seconds": 300, "parallel_with": "nodes"}));
                300
            }
            (
                Database::AuroraGlobal {
                    global_cluster,
                    target_cluster_arn,
                    ..
                },
                DatabaseSeen::Global(live),
            ) => {
                observed.push(json!({"global_cluster": global_cluster, "writer": live.and_then(|g| g.writer)}));
                steps.push(json!({"step": "database", "call": "rds:FailoverGlobalCluster (AllowDataLoss) / SwitchoverGlobalCluster", "target": target_cluster_arn, "endpoint": rds(&p.secondary_region), "expected_seconds": 120, "parallel_with": "nodes"}));
                120
            }
            _ => unreachable!("the observer reads the plan's own kind of database"),
        };
        let mut eks_seconds = 0;
        for (id, target, live) in estate.node_groups {
            observed.push(json!({"node_group": id.to_string(), "now": live.map(|g| g.scaling.to_string()), "to": format!("min {} / desired {}", target.min, target.desired)}));
            steps.push(json!({"step": "nodes", "call": "eks:UpdateNodegroupConfig", "target": id.to_string(), "endpoint": format!("https://eks.{}.amazonaws.com", p.secondary_region), "expected_seconds": 240}));
            eks_seconds = 240;
        }
        let ttl = p.traffic.records.iter().map(|r| r.ttl).max().unwrap_or(0) as u64;
        // Metric switches: the alarm's 60-s period must pass and be evaluated before the health
        // checks follow (engine::metric_switch, "RTO cost on AWS").
        let traffic_seconds = if p.traffic.metric_switches.is_some() {
            120
        } else if p.traffic.records.is_empty() {
            30
        } else {
            60 + ttl
        };
        match &p.traffic.routing_controls {
            None if p.traffic.metric_switches.is_some() => {
                let ms = p.traffic.metric_switches.as_ref().expect("matched");
                steps.push(json!({"step": "traffic", "call": "cloudwatch:PutMetricData + DescribeAlarms", "target": format!("{}/{} {}={} = 1, {}={} = 0; alarm {} OK, alarm {} ALARM", ms.namespace, ms.metric, ms.dimension, ms.secondary.dimension_value, ms.dimension, ms.primary.dimension_value, ms.secondary.alarm, ms.primary.alarm), "endpoint": monitoring, "plane": "data", "expected_seconds": traffic_seconds}))
            }
            Some(rc) => steps.push(json!({"step": "traffic", "call": "route53-recovery-cluster:UpdateRoutingControlStates", "target": format!("{} On, {} Off", rc.secondary, rc.primary), "endpoint": format!("any of: {}", arc_endpoints(rc).join(", ")), "expected_seconds": traffic_seconds})),
            None => steps.push(json!({"step": "traffic", "call": "route53:ChangeResourceRecordSets + GetChange", "endpoint": "https://route53.amazonaws.com (Route 53's control plane: us-east-1)", "needs": "us-east-1", "last_resort": true, "expected_seconds": traffic_seconds})),
        }
        steps.push(json!({"step": "verify", "expected_seconds": 5}));
        let expected =
            p.detection.window_seconds + db_seconds.max(eks_seconds) + traffic_seconds + 5;
        Ok(json!({
            "mode": "plan", "plan": p.name, "plan_hash": plan.hash, "changes": "none",
            "steps": steps, "observed": observed,
            "dependencies": dependencies::failover(plan),
            "blocked_if_primary_is_down": dependencies::blocked_by_primary(plan),
            "expected_rto_seconds": expected, "rto_target_seconds": p.targets.rto_seconds,
            "within_target": expected <= p.targets.rto_seconds,
            "timeline": format!("detect {} s → max(database {db_seconds} s, nodes {eks_seconds} s) → traffic {traffic_seconds} s → verify 5 s", p.detection.window_seconds),
        }))
    }

    /// `precheck`: readiness, published as `FailoverReady` whatever happens — a read that fails
    /// (no ARC endpoint answers, a denied call, RDS or CloudWatch unavailable) is itself "not
    /// ready", with the error, so that the alarm on `FailoverReady` hears of it.
    pub(crate) async fn precheck(&self, plan: &LoadedPlan) -> Result<Value> {
        match self.prechecked(plan).await {
            Ok(answer) => Ok(answer),
            Err(e) => Ok(self.not_ready(&plan.plan.name, "read the estate", &e.to_string())),
        }
    }

    async fn prechecked(&self, plan: &LoadedPlan) -> Result<Value> {
        let p = &plan.plan;
        let mut checks: Vec<Value> = Vec::new();
        let mut check = |name: String, ok: bool, detail: String| {
            checks.push(json!({"check": name, "ok": ok, "detail": detail}))
        };
        let look = Look {
            db: &self.ports.secondary_db,
            instance: plan.database.replica().unwrap_or_default(),
            node_groups: true,
            traffic: Some(false),
            controls: true,
        };
        let estate = estate::observe(
            plan,
            look,
            &self.ports.nodes,
            &self.ports.dns,
            &self.ports.switches,
            &self.ports.metric_switches,
        )
        .await?;
        match (&plan.database, estate.database) {
            (Database::Rds { replica, .. }, DatabaseSeen::Instance(live)) => {
                match live {
                    Some(db) => check(
                        format!("replica {replica}"),
                        db.source.is_some() && db.status == "available",
                        format!("status {}, source {:?}", db.status, db.source),
                    ),
                    None => check(format!("replica {replica}"), false, "does not exist".into()),
                }
                self.lag_check(plan, replica, &mut check).await?;
            }
            (
                Database::AuroraGlobal {
                    global_cluster,
                    target_cluster_arn,
                    ..
                },
                DatabaseSeen::Global(live),
            ) => {
                let ok = live.as_ref().is_some_and(|g| {
                    g.status == "available" && g.writer.as_deref() != Some(target_cluster_arn)
                });
                check(
                    format!("global cluster {global_cluster}"),
                    ok,
                    format!("{live:?}"),
                );
                self.lag_check(plan, target_cluster_arn, &mut check).await?;
            }
            _ => unreachable!("the observer reads the plan's own kind of database"),
        }
        for (id, target, live) in estate.node_groups {
            match live {
                Some(g) => check(
                    format!("node group {id}"),
                    g.status == "ACTIVE",
                    format!("{} at {}; failover raises to min {} / desired {} (max raised if needed); types {:?}", g.status, g.scaling, target.min, target.desired, g.instance_types),
                ),
                None => check(format!("node group {id}"), false, "does not exist".into()),
            }
        }
        // The standby cluster's API server: the failover reads it to know when its capacity is
        // ready, so it must be readable now (the access entry and failover-rbac.yaml), and
        // every critical Deployment must exist.
        // Only the copy in the secondary region reads it (the standby cluster's access entry
        // maps that copy's role; the primary's copy never raises the standby's capacity).
        let here = self.toolkit.settings.region.as_str();
        if let Some(eks) = p.eks.as_ref().filter(|_| here != p.secondary_region) {
            check(
                format!("cluster {} (Kubernetes API)", eks.cluster),
                true,
                format!(
                    "read by the copy in {}, not from {here}",
                    p.secondary_region
                ),
            );
        }
        if let Some(eks) = p.eks.as_ref().filter(|_| here == p.secondary_region) {
            let mut seen = Vec::new();
            let mut problems = Vec::new();
            for group in &eks.node_groups {
                match self
                    .ports
                    .capacity
                    .node_group_nodes(&eks.cluster, &group.name)
                    .await
                {
                    Ok(n) => seen.push(format!(
                        "{}: {} nodes, {} Ready",
                        group.name, n.registered, n.ready
                    )),
                    Err(e) => problems.push(format!("{}: {e}", group.name)),
                }
            }
            for w in &eks.critical_workloads {
                let at = ObjectAt {
                    cluster: &eks.cluster,
                    namespace: &w.namespace,
                    name: &w.deployment,
                };
                match self.ports.capacity.deployment_pods(at).await {
                    Ok(Some(d)) => {
                        seen.push(format!("{at}: {} of {} pods ready", d.ready, d.desired))
                    }
                    Ok(None) => problems.push(format!("{at}: no such Deployment")),
                    Err(e) => problems.push(format!("{at}: {e}")),
                }
            }
            let detail = if problems.is_empty() {
                seen.join("; ")
            } else {
                format!(
                    "{} (a failover could not tell when its capacity is ready: check the EKS \
                     access entry and deploy/kubernetes/failover-rbac.yaml)",
                    problems.join("; ")
                )
            };
            check(
                format!("cluster {} (Kubernetes API)", eks.cluster),
                problems.is_empty(),
                detail,
            );
        }
        if let (Some(rc), Some((primary_on, secondary_on))) =
            (&p.traffic.routing_controls, estate.controls)
        {
            check(
                format!("routing control {}", rc.primary),
                primary_on,
                format!("{} (expected On: the primary serves)", on_off(primary_on)),
            );
            check(
                format!("routing control {}", rc.secondary),
                !secondary_on,
                format!("{} (expected Off until a failover)", on_off(secondary_on)),
            );
        }
        if let (Some(ms), Some((primary, secondary))) =
            (&p.traffic.metric_switches, &estate.switch_alarms)
        {
            for (side, state, want, why) in [
                (
                    &ms.primary,
                    primary,
                    "OK",
                    "its health check healthy: the primary serves",
                ),
                (
                    &ms.secondary,
                    secondary,
                    "ALARM",
                    "its health check unhealthy until a failover",
                ),
            ] {
                let detail = match state {
                    Some(s) if s.value == "INSUFFICIENT_DATA" => format!(
                        "INSUFFICIENT_DATA (expected {want}, {why}): no value written yet — write \
                         {}/{} {}={} = {} in {} (docs/deploy-two-regions.md)",
                        ms.namespace,
                        ms.metric,
                        ms.dimension,
                        side.dimension_value,
                        u8::from(want == "OK"),
                        p.secondary_region
                    ),
                    Some(s) => format!("{} (expected {want}, {why})", s.value),
                    None => format!("does not exist in {}", p.secondary_region),
                };
                check(
                    format!("metric switch alarm {}", side.alarm),
                    state.as_ref().is_some_and(|s| s.value == want),
                    detail,
                );
            }
        }
        // The lint: nothing a failover needs may live only in the region it fails away from.
        let blocked = dependencies::blocked_by_primary(plan);
        check(
            format!("no dependency on {}", p.primary_region),
            blocked.is_empty(),
            if blocked.is_empty() {
                format!(
                    "every step can run with {} down (data planes and {} only)",
                    p.primary_region, p.secondary_region
                )
            } else {
                blocked.join("; ")
            },
        );
        for (want, live) in estate.records {
            check(
                format!("record {}", want.name),
                live.as_ref().is_some_and(|l| l.value == want.value),
                format!("{:?} (expected {})", live.map(|l| l.value), want.value),
            );
        }
        // A heartbeat signal that has not been heard within its stale time (forwarding never
        // set up, or broken) could not tell an outage from normal times.
        let board: Option<crate::signals::Board> = self
            .toolkit
            .store
            .get(&crate::plan_state::board_key(&p.name))
            .await?
            .map(|v| v.value);
        let now = self.now();
        for signal in crate::signals::of_kind(p, "heartbeat") {
            let stale_ms = signal.stale_seconds.unwrap_or(180) * 1000;
            let state = board.as_ref().and_then(|b| b.signals.get(&signal.name));
            let (ok, detail) = match state {
                Some(st) if !st.firing && now.saturating_sub(st.observed_ms) <= stale_ms => (
                    true,
                    format!("last heartbeat {} s ago", now.saturating_sub(st.observed_ms) / 1000),
                ),
                Some(st) => (false, st.detail.clone()),
                None => (
                    false,
                    format!("no heartbeat from {} received yet (is its FailoverHeartbeat rule delivering to this region's bus?)", p.primary_region),
                ),
            };
            checks.push(
                json!({"check": format!("heartbeat {}", signal.name), "ok": ok, "detail": detail}),
            );
        }
        let ready = checks.iter().all(|c| c["ok"] == true);
        self.publish_readiness(ready, &p.name);
        Ok(
            json!({"mode": "precheck", "plan": p.name, "plan_hash": plan.hash, "ready": ready, "checks": checks,
                  "permissions": "RDS, EKS and Route 53 have no DryRun for these calls: the calls above are the read half of each permission"}),
        )
    }
}

impl<
        R: Replicas,
        N: NodeGroups,
        D: Dns,
        M: MetricReader,
        C: RoutingControls,
        W: MetricSwitches,
        K: Capacity,
        P: Probe,
        A: Alarms,
    > FailoverFunction<R, N, D, M, C, W, K, P, A>
{
    /// The lag check: the metric the RPO guard reads (the same function: `ReplicaLag`, or the
    /// Aurora metric the global database's engine version publishes), its latest sample, named.
    async fn lag_check(
        &self,
        plan: &LoadedPlan,
        target: &str,
        check: &mut impl FnMut(String, bool, String),
    ) -> Result<()> {
        let rpo = plan.plan.targets.rpo_seconds;
        let reading = replica_lag(
            &plan.database,
            target,
            &self.ports.secondary_db,
            &self.ports.metrics,
            LagAt::Latest(self.now()),
        )
        .await?;
        let shown = match (reading.seconds, reading.sample) {
            (Some(s), _) => format!("{s} s"),
            (None, Some((v, _))) => format!("unknown ({v}: replication not active)"),
            (None, None) => "unknown (no sample in the last 5 minutes)".into(),
        };
        check(
            "replica lag".into(),
            reading.seconds.is_some_and(|l| l <= rpo as f64),
            format!(
                "{shown} (RPO {rpo} s), read as the RPO guard reads it: {}",
                reading.metric
            ),
        );
        Ok(())
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "On"
    } else {
        "Off"
    }
}

impl<
        R: Replicas,
        N: NodeGroups,
        D: Dns,
        M: MetricReader,
        C: RoutingControls,
        W: MetricSwitches,
        K: Capacity,
        P: Probe,
        A: Alarms,
    > FailoverFunction<R, N, D, M, C, W, K, P, A>
{
    /// `FailoverReady` 1 or 0, one stream (`Function=failover, Outcome=precheck`) for the
    /// template's `FailoverNotReadyAlarm`.
    fn publish_readiness(&self, ready: bool, plan: &str) {
        let mut m = Metrics::new("failover", "precheck");
        m.add("FailoverReady", if ready { 1.0 } else { 0.0 }, Unit::Count)
            .property("plan", plan.to_string());
        m.emit(self.now());
    }

    /// A precheck that could not run its checks (the plan does not load, a read failed): not
    /// ready, and why.
    pub(crate) fn not_ready(&self, plan: &str, check: &str, reason: &str) -> Value {
        self.publish_readiness(false, plan);
        json!({"mode": "precheck", "ready": false,
               "checks": [{"check": check, "ok": false, "detail": reason}]})
    }
}
