//! The ports: tiny traits named for what the functions need from AWS (node groups, databases,
//! budgets), with plain domain types. Adapters in [`crate::aws`] implement them over the SDK;
//! tests implement them in memory. Business rules never import an SDK type.

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// An EKS managed node group's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeGroupId {
    /// The cluster.
    pub cluster: String,
    /// The node group.
    pub name: String,
}

impl std::fmt::Display for NodeGroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.cluster, self.name)
    }
}

/// A node group's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaling {
    /// minSize.
    pub min: i32,
    /// maxSize.
    pub max: i32,
    /// desiredSize.
    pub desired: i32,
}

impl std::fmt::Display for Scaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "min {} / desired {} / max {}",
            self.min, self.desired, self.max
        )
    }
}

/// A node group as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeGroup {
    /// Its identity.
    pub id: NodeGroupId,
    /// Its ARN.
    pub arn: String,
    /// Its sizes.
    pub scaling: Scaling,
    /// `ACTIVE`, `UPDATING`, `DEGRADED`, …
    pub status: String,
    /// Instance types.
    pub instance_types: Vec<String>,
    /// `ON_DEMAND` or `SPOT`.
    pub capacity_type: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// EKS managed node groups.
pub trait NodeGroups: Send + Sync {
    /// Every node group of `cluster`.
    fn list(&self, cluster: &str) -> impl Future<Output = Result<Vec<NodeGroup>>> + Send;
    /// One node group, `None` when it does not exist.
    fn describe(&self, id: &NodeGroupId) -> impl Future<Output = Result<Option<NodeGroup>>> + Send;
    /// Sets min/desired/max with an idempotency token; returns the update id.
    fn update_scaling(
        &self,
        id: &NodeGroupId,
        scaling: Scaling,
        token: &str,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Adds or replaces tags on the node group.
    fn tag(
        &self,
        arn: &str,
        tags: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// An RDS DB instance or an Aurora DB cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseKind {
    /// A DB instance (not a member of a cluster).
    Instance,
    /// An Aurora DB cluster.
    Cluster,
}

/// A database as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    /// Instance or cluster.
    pub kind: DatabaseKind,
    /// Its identifier.
    pub id: String,
    /// Its ARN.
    pub arn: String,
    /// `available`, `stopped`, `stopping`, `starting`, …
    pub status: String,
    /// The instance class (instances only).
    pub class: Option<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Its engine (`postgres`, `sqlserver-se`, `aurora-mysql`, …): `Engine`.
    #[serde(default)]
    pub engine: Option<String>,
    /// Whether it is Multi-AZ: `MultiAZ`.
    #[serde(default)]
    pub multi_az: bool,
    /// What it replicates, when it is a read replica: an instance's
    /// `ReadReplicaSourceDBInstanceIdentifier` (an identifier, an ARN across regions), a
    /// cluster's `ReplicationSourceIdentifier`.
    #[serde(default)]
    pub replica_source: Option<String>,
    /// Its read replicas: an instance's `ReadReplicaDBInstanceIdentifiers` (ARNs for those in
    /// other regions) and `ReadReplicaDBClusterIdentifiers`, a cluster's
    /// `ReadReplicaIdentifiers`.
    #[serde(default)]
    pub replicas: Vec<String>,
    /// A cluster's `EngineMode` (`provisioned`, `serverless` for Aurora Serverless v1,
    /// `multimaster`, `global`, …); `None` for an instance.
    #[serde(default)]
    pub engine_mode: Option<String>,
    /// The Aurora global database a cluster belongs to: `GlobalClusterIdentifier`.
    #[serde(default)]
    pub global_cluster: Option<String>,
}

/// RDS instances and Aurora clusters of one region.
pub trait Databases: Send + Sync {
    /// Every standalone instance and every cluster.
    fn list(&self) -> impl Future<Output = Result<Vec<Database>>> + Send;
    /// One database, `None` when it does not exist.
    fn describe(
        &self,
        kind: DatabaseKind,
        id: &str,
    ) -> impl Future<Output = Result<Option<Database>>> + Send;
    /// Stops it.
    fn stop(&self, kind: DatabaseKind, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Starts it.
    fn start(&self, kind: DatabaseKind, id: &str) -> impl Future<Output = Result<()>> + Send;
}

/// A budget's confirmed figures, as the Budgets API reports them (decimal strings, never floats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetFigures {
    /// The budget's name.
    pub name: String,
    /// The limit.
    pub limit: String,
    /// Actual spend this period.
    pub actual: String,
    /// Forecast spend this period (absent early in a period).
    pub forecast: Option<String>,
    /// `DAILY`, `MONTHLY`, `QUARTERLY`, `ANNUALLY`.
    pub time_unit: String,
    /// The currency unit (`USD`).
    pub unit: String,
}

/// AWS Budgets.
pub trait Budgets: Send + Sync {
    /// The budget `name` of `account`, `None` when it does not exist.
    fn describe(
        &self,
        account: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<BudgetFigures>>> + Send;
}

/// What decides whether a bucket may be tiered, besides its tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BucketFacts {
    /// Versioning is enabled (or suspended, with versions kept).
    pub versioned: bool,
    /// Object Lock is enabled.
    pub object_lock: bool,
    /// The bucket is a replication source.
    pub replication_source: bool,
    /// Requester pays.
    pub requester_pays: bool,
    /// The bucket policy lets the S3 log-delivery service write to it.
    pub log_delivery_target: bool,
}

/// S3 buckets of one account, every call made with `ExpectedBucketOwner`.
pub trait Buckets: Send + Sync {
    /// Every bucket's name.
    fn list(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// The bucket's tags (none: empty).
    fn tags(&self, bucket: &str) -> impl Future<Output = Result<BTreeMap<String, String>>> + Send;
    /// Versioning, Object Lock, replication, requester pays, log delivery.
    fn facts(&self, bucket: &str) -> impl Future<Output = Result<BucketFacts>> + Send;
    /// The lifecycle configuration (none: empty).
    fn lifecycle(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<crate::lifecycle::LifecycleConfiguration>> + Send;
    /// Replaces the lifecycle configuration (no rules: deletes it).
    fn put_lifecycle(
        &self,
        bucket: &str,
        config: &crate::lifecycle::LifecycleConfiguration,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// A bucket's stored bytes per storage type (CloudWatch's daily `BucketSizeBytes`) and object count.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BucketStorage {
    /// Bytes per CloudWatch `StorageType` (`StandardStorage`, `GlacierStorage`, …).
    pub bytes_by_storage_type: BTreeMap<String, f64>,
    /// `NumberOfObjects` (all storage types), when reported.
    pub objects: Option<f64>,
}

/// S3 storage metrics.
pub trait StorageMetrics: Send + Sync {
    /// The latest daily figures of `bucket` as of `now_ms`.
    fn bucket_storage(
        &self,
        bucket: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<BucketStorage>> + Send;
}

/// What a role holds under one inline policy name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InlinePolicy {
    /// The role does not exist.
    NoRole,
    /// The role has no inline policy of that name.
    Absent,
    /// The role has it, with this document (JSON).
    Present {
        /// The policy document.
        document: String,
    },
}

/// Inline policies of IAM roles (a global service).
pub trait RolePolicies: Send + Sync {
    /// The role's tags, `None` when the role does not exist.
    fn role_tags(
        &self,
        role: &str,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>>> + Send;
    /// The inline policy `name` of `role`.
    fn get(&self, role: &str, name: &str) -> impl Future<Output = Result<InlinePolicy>> + Send;
    /// Adds or replaces the inline policy `name` of `role`.
    fn put(
        &self,
        role: &str,
        name: &str,
        document: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the inline policy `name` of `role`; one already gone is not an error.
    fn delete(&self, role: &str, name: &str) -> impl Future<Output = Result<()>> + Send;
}

/// An Auto Scaling lifecycle action waiting on an instance (from an `EC2 Instance-terminate
/// Lifecycle Action` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleAction {
    /// `AutoScalingGroupName`.
    pub group: String,
    /// `LifecycleHookName`.
    pub hook: String,
    /// `LifecycleActionToken`.
    pub token: String,
    /// `EC2InstanceId`.
    pub instance_id: String,
}

/// Amazon EC2 Auto Scaling's lifecycle actions.
pub trait LifecycleHooks: Send + Sync {
    /// Lets the instance go on (`CONTINUE`): `false` when the action is no longer waiting
    /// (completed already, or its heartbeat timeout passed).
    fn complete(&self, action: &LifecycleAction) -> impl Future<Output = Result<bool>> + Send;
}

/// An EC2 instance as far as spot handling needs it (from its tags and placement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// `i-…`.
    pub id: String,
    /// `eks:cluster-name`.
    pub cluster: Option<String>,
    /// `eks:nodegroup-name`.
    pub node_group: Option<String>,
    /// `aws:autoscaling:groupName`.
    pub auto_scaling_group: Option<String>,
    /// `karpenter.sh/nodepool`.
    pub node_pool: Option<String>,
    /// `spot` or `on-demand`.
    pub capacity: String,
    /// The availability zone.
    pub az: String,
    /// `m5.large`.
    pub instance_type: String,
    /// The private DNS name (a hint for the node name only).
    pub private_dns: Option<String>,
    /// `running`, `shutting-down`, …
    pub state: String,
    /// The VPC it runs in (its target groups are that VPC's).
    #[serde(default)]
    pub vpc: Option<String>,
    /// Every private IPv4 address of its network interfaces, primary and secondary (the VPC CNI
    /// gives pods secondary addresses: an `ip` target on one of them is a pod of this node).
    #[serde(default)]
    pub private_ips: Vec<String>,
}

/// One registration of an instance, or of one of its addresses, in an ELBv2 target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The target group's ARN.
    pub target_group_arn: String,
    /// Its name (for people).
    pub target_group: String,
    /// The target: an instance id (`instance` target type) or an IP address (`ip`).
    pub target_id: String,
    /// The port it was registered with (it must be given back to deregister it: DeregisterTargets,
    /// Targets: "If you specified a port override when you registered a target, you must specify
    /// both the target ID and the port when you deregister it").
    pub port: Option<i32>,
    /// The target group's `deregistration_delay.timeout_seconds` (ELB's default is 300).
    pub delay_s: u64,
}

/// The ELBv2 target groups of one region.
pub trait TargetGroups: Send + Sync {
    /// Every registration in `vpc`'s target groups of the targets `ids` (instance ids and IP
    /// addresses), draining ones included, each with its group's deregistration delay.
    fn registrations(
        &self,
        vpc: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Registration>>> + Send;
    /// Deregisters them (a target already gone is not an error). Every group is tried; the
    /// error names the groups that failed.
    fn deregister(&self, registrations: &[Registration])
        -> impl Future<Output = Result<()>> + Send;
    /// Those of `registrations` still listed by their group, with their state (`draining`, or
    /// `initial`/`healthy`/… when something registered them again); one not listed has completed
    /// its deregistration.
    fn listed(
        &self,
        registrations: &[Registration],
    ) -> impl Future<Output = Result<Vec<(Registration, String)>>> + Send;
}

/// EC2 instances of one region.
pub trait Instances: Send + Sync {
    /// One instance, `None` when EC2 does not know it.
    fn describe(&self, id: &str) -> impl Future<Output = Result<Option<InstanceInfo>>> + Send;
}

/// A CloudWatch alarm's current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmState {
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub value: String,
    /// When it entered that state (ms since the epoch).
    pub since_ms: Option<u64>,
    /// CloudWatch's reason.
    pub reason: String,
}

/// CloudWatch alarms of one region.
pub trait Alarms: Send + Sync {
    /// The alarm's state, `None` when it does not exist.
    fn state(&self, name: &str) -> impl Future<Output = Result<Option<AlarmState>>> + Send;
    /// The alarm's tags (by ARN); an alarm without tags has none.
    fn tags(&self, arn: &str) -> impl Future<Output = Result<BTreeMap<String, String>>> + Send;
}

/// A DB instance as a failover sees it: where it replicates from, and whether it takes writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Its identifier.
    pub id: String,
    /// Its ARN.
    pub arn: String,
    /// `available`, `modifying`, `rebooting`, `backing-up`, …
    pub status: String,
    /// The instance it replicates from (`ReadReplicaSourceDBInstanceIdentifier`); `None` once
    /// promoted (or for a primary).
    pub source: Option<String>,
    /// The instance class.
    pub class: Option<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// `StorageEncrypted`: a cross-region replica of it needs a key of the replica's region.
    #[serde(default)]
    pub encrypted: bool,
    /// `KmsKeyId`: the key its storage is encrypted with (`None`: unencrypted).
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

impl ReplicaStatus {
    /// Promoted (or a primary) and available: it takes writes.
    pub fn writable(&self) -> bool {
        self.source.is_none() && self.status == "available"
    }
}

/// An Aurora global database as a failover sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalCluster {
    /// Its identifier.
    pub id: String,
    /// `available`, `failing-over`, `switching-over`, …
    pub status: String,
    /// The ARN of the member that is the writer.
    pub writer: Option<String>,
    /// `FailoverState.Status` while a failover or switchover runs (`pending`, `failing-over`, …).
    pub failover_state: Option<String>,
    /// `Engine`: `aurora-mysql`, `aurora-postgresql` (`DescribeGlobalClusters`).
    #[serde(default)]
    pub engine: Option<String>,
    /// `EngineVersion`: `8.0.mysql_aurora.3.04.0`, `15.4`, … (it decides which lag metric
    /// Aurora publishes).
    #[serde(default)]
    pub engine_version: Option<String>,
}

/// Where a cross-region read replica is created and how it is encrypted
/// (`CreateDBInstanceReadReplica`, Amazon RDS API Reference): all in the replica's region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaPlacement {
    /// `KmsKeyId`, a key of the replica's region. Required for an encrypted source in another
    /// region ("If you create an encrypted read replica in a different AWS Region, then you
    /// must specify a KMS key identifier for the destination AWS Region"), refused in the same
    /// region.
    pub kms_key_id: Option<String>,
    /// `DBSubnetGroupName`: the replica's subnet group (its VPC) in its region; without it the
    /// replica lands in the default VPC, if the region has one.
    pub subnet_group: Option<String>,
    /// `VpcSecurityGroupIds`: security groups of that VPC.
    pub security_groups: Vec<String>,
}

/// A call that changed something, with the request id AWS returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// The request id (`x-amzn-RequestId`), when the service returned one.
    pub request_id: Option<String>,
    /// The id of what the call started (an update, a change), when it started something.
    pub started: Option<String>,
}

/// RDS replicas and Aurora global databases of one region.
pub trait Replicas: Send + Sync {
    /// One DB instance, `None` when it does not exist.
    fn instance(&self, id: &str) -> impl Future<Output = Result<Option<ReplicaStatus>>> + Send;
    /// `PromoteReadReplica`.
    fn promote(&self, id: &str) -> impl Future<Output = Result<Changed>> + Send;
    /// One global database, `None` when it does not exist.
    fn global_cluster(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<GlobalCluster>>> + Send;
    /// `FailoverGlobalCluster` with `AllowDataLoss=true` when `allow_data_loss`, else
    /// `SwitchoverGlobalCluster` (the planned move, no data loss).
    fn move_global_writer(
        &self,
        id: &str,
        target_cluster_arn: &str,
        allow_data_loss: bool,
    ) -> impl Future<Output = Result<Changed>> + Send;
    /// `CreateDBInstanceReadReplica` of `source_arn` (another region's instance) named `id`,
    /// placed and encrypted as `placement` says.
    fn create_replica(
        &self,
        id: &str,
        source_arn: &str,
        placement: &ReplicaPlacement,
        tags: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Changed>> + Send;
    /// `DeleteDBInstance` without a final snapshot (drill copies only).
    fn delete_instance(&self, id: &str) -> impl Future<Output = Result<Changed>> + Send;
}

/// A DNS record a failover writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// The name, fully qualified (`api.example.com.`).
    pub name: String,
    /// `A`, `AAAA`, `CNAME`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds.
    pub ttl: i64,
    /// The value.
    pub value: String,
}

/// Route 53's records (its control plane is in us-east-1: a failover's last resort).
pub trait Dns: Send + Sync {
    /// The record `name`/`kind` of the zone, `None` when absent.
    fn record(
        &self,
        zone: &str,
        name: &str,
        kind: &str,
    ) -> impl Future<Output = Result<Option<DnsRecord>>> + Send;
    /// One `ChangeResourceRecordSets` batch of `UPSERT`s; `started` is the change id.
    fn upsert(
        &self,
        zone: &str,
        records: &[DnsRecord],
        comment: &str,
    ) -> impl Future<Output = Result<Changed>> + Send;
    /// `GetChange`: `PENDING` or `INSYNC`.
    fn change_status(&self, change_id: &str) -> impl Future<Output = Result<String>> + Send;
}

/// One regional endpoint of a Route 53 ARC cluster, as `DescribeCluster` and CloudFormation's
/// `AWS::Route53RecoveryControl::Cluster` attribute `ClusterEndpoints` give it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEndpoint {
    /// Its URL (`https://host-….<region>.example.aws/v1`).
    pub endpoint: String,
    /// The region it is in: requests to it are signed for this region.
    pub region: String,
}

/// Route 53 ARC routing controls, read and set through a cluster's regional endpoints: the data
/// plane of traffic, with no dependency on Route 53's control plane in us-east-1 ("ARC ensures
/// that at least three out of the five Regional cluster endpoints are always accessible",
/// <https://docs.aws.amazon.com/r53recovery/latest/dg/routing-control.update.api.html>).
///
/// `cluster` is the cluster's endpoints; an implementation tries them in turn until one answers.
pub trait RoutingControls: Send + Sync {
    /// Whether each routing control is `On`, in the order asked (`GetRoutingControlState`);
    /// [`crate::Error::NotFound`] for a control the cluster does not have.
    fn states(
        &self,
        cluster: &[ClusterEndpoint],
        controls: &[String],
    ) -> impl Future<Output = Result<Vec<bool>>> + Send;
    /// Sets every control in one `UpdateRoutingControlStates` (all or nothing). The cluster
    /// evaluates its safety rules on the state the change would produce: a change one of them
    /// forbids is refused ([`crate::Error::Conflict`]) and changes nothing.
    fn set(
        &self,
        cluster: &[ClusterEndpoint],
        states: &[(String, bool)],
    ) -> impl Future<Output = Result<Changed>> + Send;
}

/// One side of a CloudWatch-metric traffic switch: the metric the failover function writes with
/// `PutMetricData` in the secondary region (1: the side takes traffic, 0: it does not), and the
/// alarm on it there that a Route 53 health check of type `CLOUDWATCH_METRIC` watches
/// (`AlarmIdentifier`: "The name of the CloudWatch alarm that you want Amazon Route 53 health
/// checkers to use to determine whether this health check is healthy", and its region; Route 53
/// API Reference, <https://docs.aws.amazon.com/Route53/latest/APIReference/API_AlarmIdentifier.html>):
/// the alarm OK, the check healthy; in ALARM, unhealthy. The alarm, not the metric, is what
/// Route 53 reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SwitchMetric {
    /// The metric's namespace (a custom one: `AWS/` is reserved).
    pub namespace: String,
    /// The metric's name.
    pub metric: String,
    /// Its one dimension, `(name, value)`: the side (e.g. `("Region", "us-east-1")`).
    pub dimension: (String, String),
}

/// CloudWatch-metric switches of one region (the secondary's, where the alarms live, so that
/// they outlive the primary region): the data plane of the second-choice traffic switch, with
/// no dependency on Route 53's control plane in us-east-1.
pub trait MetricSwitches: Send + Sync {
    /// `PutMetricData`: one standard-resolution datapoint of `value` for the side's metric,
    /// stamped by CloudWatch on receipt. Route 53 health checks support standard-resolution
    /// metrics only ("High-resolution metrics aren't supported", Route 53 API Reference,
    /// AlarmIdentifier).
    fn put(
        &self,
        metric: &SwitchMetric,
        value: f64,
    ) -> impl Future<Output = Result<Changed>> + Send;
    /// `DescribeAlarms`: the metric alarm's state, `None` when it does not exist.
    fn alarm(&self, name: &str) -> impl Future<Output = Result<Option<AlarmState>>> + Send;
}

/// CloudWatch metrics of one region.
pub trait MetricReader: Send + Sync {
    /// The latest datapoint (`Maximum` over one minute) of the metric in the last `lookback_ms`
    /// before `now_ms`: its value and time (ms), `None` when there is none.
    fn latest(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &[(&str, &str)],
        now_ms: u64,
        lookback_ms: u64,
    ) -> impl Future<Output = Result<Option<(f64, u64)>>> + Send;
    /// The last datapoint (`Maximum` over one minute) whose whole minute ended at or before
    /// `at_ms`, in the `lookback_ms` before it: its value and the minute's start (ms), `None`
    /// when there is none. The minute `at_ms` falls in is never read: its maximum could hold
    /// samples taken after `at_ms`.
    fn at_or_before(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &[(&str, &str)],
        at_ms: u64,
        lookback_ms: u64,
    ) -> impl Future<Output = Result<Option<(f64, u64)>>> + Send;
}
