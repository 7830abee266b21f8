//! The one estate observer: the database, the node groups, the routing controls or the metric
//! switches' alarms, and the records, read the same way for `plan`, `precheck` and the verify step, each of which then
//! judges what it sees by its own rule.

use breakwater::ports::{
    AlarmState, Dns, DnsRecord, GlobalCluster, MetricSwitches, NodeGroup, NodeGroupId, NodeGroups,
    ReplicaStatus, Replicas, RoutingControls,
};
use breakwater::Result;

use crate::plan::{Database, LoadedPlan, NodeGroupTarget};

/// What to read: the database through `db` (the region whose copy is judged), and optionally
/// Route 53 (`plan` reads no DNS: it lists the traffic calls without observing them).
pub(crate) struct Look<'a, R> {
    /// RDS in the region whose database is judged.
    pub db: &'a R,
    /// The DB instance to read (an RDS plan; ignored for an Aurora global database).
    pub instance: &'a str,
    /// Whether the node groups are read.
    pub node_groups: bool,
    /// `Some(secondary)`: read the records as they should stand with traffic on the secondary
    /// (`true`) or on the primary (`false`).
    pub traffic: Option<bool>,
    /// Whether the routing controls (through the ARC cluster's data plane) or the metric
    /// switches' alarms (`DescribeAlarms` in the secondary region) are read.
    pub controls: bool,
}

/// The database as read.
#[derive(Debug)]
pub(crate) enum DatabaseSeen {
    /// An RDS instance, `None` when it does not exist.
    Instance(Option<ReplicaStatus>),
    /// An Aurora global database, `None` when it does not exist.
    Global(Option<GlobalCluster>),
}

/// The estate as read.
#[derive(Debug)]
pub(crate) struct Estate<'p> {
    /// The database.
    pub database: DatabaseSeen,
    /// Each planned node group: its identity, its failover size, what EKS says of it.
    pub node_groups: Vec<(NodeGroupId, &'p NodeGroupTarget, Option<NodeGroup>)>,
    /// The routing controls, `(primary On, secondary On)`: `None` when not read (or the plan
    /// has none).
    pub controls: Option<(bool, bool)>,
    /// The metric switches' alarms, `(primary, secondary)` (`None` inside: the alarm does not
    /// exist); `None` when not read (or the plan has none).
    pub switch_alarms: Option<(Option<AlarmState>, Option<AlarmState>)>,
    /// Each planned record as it should stand, and as it stands.
    pub records: Vec<(DnsRecord, Option<DnsRecord>)>,
}

/// Reads the estate of `plan` as `look` says, one call per resource.
pub(crate) async fn observe<
    'p,
    R: Replicas,
    N: NodeGroups,
    D: Dns,
    C: RoutingControls,
    W: MetricSwitches,
>(
    plan: &'p LoadedPlan,
    look: Look<'_, R>,
    nodes: &N,
    dns: &D,
    switches: &C,
    metric_switches: &W,
) -> Result<Estate<'p>> {
    let p = &plan.plan;
    let database = match &plan.database {
        Database::Rds { .. } => DatabaseSeen::Instance(look.db.instance(look.instance).await?),
        Database::AuroraGlobal { global_cluster, .. } => {
            DatabaseSeen::Global(look.db.global_cluster(global_cluster).await?)
        }
    };
    let mut node_groups = Vec::new();
    if look.node_groups {
        for (id, target) in p.node_groups() {
            let live = nodes.describe(&id).await?;
            node_groups.push((id, target, live));
        }
    }
    let mut controls = None;
    if let (true, Some(rc)) = (look.controls, &p.traffic.routing_controls) {
        let states = switches
            .states(
                &rc.cluster_endpoints,
                &[rc.primary.clone(), rc.secondary.clone()],
            )
            .await?;
        if let [primary, secondary] = states[..] {
            controls = Some((primary, secondary));
        }
    }
    let mut switch_alarms = None;
    if let (true, Some(ms)) = (look.controls, &p.traffic.metric_switches) {
        switch_alarms = Some((
            metric_switches.alarm(&ms.primary.alarm).await?,
            metric_switches.alarm(&ms.secondary.alarm).await?,
        ));
    }
    let mut records = Vec::new();
    if let (Some(secondary), Some(zone)) = (look.traffic, &p.traffic.zone_id) {
        for r in &p.traffic.records {
            let want = r.record(secondary);
            let live = dns.record(zone, &want.name, &want.kind).await?;
            records.push((want, live));
        }
    }
    Ok(Estate {
        database,
        node_groups,
        controls,
        switch_alarms,
        records,
    })
}
