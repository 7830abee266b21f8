//! A fake of [`Replicas`]: RDS read replicas and Aurora global databases in memory. A change
//! (promotion, global failover or switchover, replica creation, deletion) stays in progress for a
//! set number of reads, then lands, so a test scripts "promotion takes three minutes" in reads.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::calls::{busy, Calls};
use crate::error::{Error, Result};
use crate::ports::{Changed, GlobalCluster, ReplicaPlacement, ReplicaStatus, Replicas};

/// A change in progress: the reads left before it lands.
#[derive(Debug)]
struct Landing<T> {
    reads_left: usize,
    then: Option<T>,
}

#[derive(Debug, Default)]
struct State {
    instances: BTreeMap<String, ReplicaStatus>,
    instance_changes: BTreeMap<String, Landing<ReplicaStatus>>,
    globals: BTreeMap<String, GlobalCluster>,
    global_changes: BTreeMap<String, Landing<GlobalCluster>>,
    /// Instances of other regions this region's RDS reads as encrypted (by ARN).
    encrypted_elsewhere: std::collections::BTreeSet<String>,
    /// How each replica was asked to be created.
    placements: BTreeMap<String, ReplicaPlacement>,
    requests: u64,
}

/// [`Replicas`] in memory.
#[derive(Debug, Default)]
pub struct FakeReplicas {
    state: Mutex<State>,
    reads_per_change: Mutex<usize>,
    /// The calls made, by operation (`instance`, `promote`, `global_cluster`,
    /// `failover_global_cluster`, `switchover_global_cluster`, `create_replica`,
    /// `delete_instance`), and failures to answer with.
    pub calls: Calls,
}

/// The reads of [`FakeReplicas`] (every other operation changes something).
pub const READS: &[&str] = &["instance", "global_cluster"];

impl FakeReplicas {
    /// An empty region whose changes land at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every change started from now on stays in progress for `reads` reads of its target.
    pub fn changes_take(self, reads: usize) -> Self {
        *self.reads_per_change.lock().unwrap() = reads;
        self
    }

    /// A read replica `id` of `source` (`None`: a primary), available.
    pub fn with_instance(self, id: &str, source: Option<&str>) -> Self {
        let status = ReplicaStatus {
            id: id.into(),
            arn: format!("arn:aws:rds:us-west-2:123456789012:db:{id}"),
            status: "available".into(),
            source: source.map(str::to_string),
            class: Some("db.t3.micro".into()),
            tags: BTreeMap::new(),
            encrypted: false,
            kms_key_id: None,
        };
        self.state
            .lock()
            .unwrap()
            .instances
            .insert(id.into(), status);
        self
    }

    /// Encrypts an instance's storage with `kms_key_id` (a key of this region).
    pub fn encrypted_with(self, id: &str, kms_key_id: &str) -> Self {
        if let Some(i) = self.state.lock().unwrap().instances.get_mut(id) {
            i.encrypted = true;
            i.kms_key_id = Some(kms_key_id.into());
        }
        self
    }

    /// The instance `arn` of another region is encrypted: a replica of it created here needs a
    /// key of this region, as RDS requires.
    pub fn sees_encrypted(self, arn: &str) -> Self {
        self.state
            .lock()
            .unwrap()
            .encrypted_elsewhere
            .insert(arn.into());
        self
    }

    /// How the replica `id` was asked to be created (`None`: never asked).
    pub fn placement(&self, id: &str) -> Option<ReplicaPlacement> {
        self.state.lock().unwrap().placements.get(id).cloned()
    }

    /// A global database whose writer is `writer` (a cluster ARN), available.
    pub fn with_global(self, id: &str, writer: &str) -> Self {
        let global = GlobalCluster {
            id: id.into(),
            status: "available".into(),
            writer: Some(writer.into()),
            failover_state: None,
            engine: Some("aurora-postgresql".into()),
            engine_version: Some("15.4".into()),
        };
        self.state.lock().unwrap().globals.insert(id.into(), global);
        self
    }

    /// Sets a global database's engine and version (`aurora-mysql`, `8.0.mysql_aurora.3.03.1`).
    pub fn with_engine(self, id: &str, engine: &str, version: &str) -> Self {
        if let Some(g) = self.state.lock().unwrap().globals.get_mut(id) {
            g.engine = Some(engine.into());
            g.engine_version = Some(version.into());
        }
        self
    }

    /// Tags an instance (`breakwater:drill=true` marks a drill's copy).
    pub fn with_tag(self, id: &str, key: &str, value: &str) -> Self {
        if let Some(i) = self.state.lock().unwrap().instances.get_mut(id) {
            i.tags.insert(key.into(), value.into());
        }
        self
    }

    /// Sets an instance's status (`modifying`, `backing-up`, …) as if RDS had changed it.
    pub fn set_status(&self, id: &str, status: &str) {
        if let Some(i) = self.state.lock().unwrap().instances.get_mut(id) {
            i.status = status.into();
        }
    }

    /// The instance as stored now, without counting a call.
    pub fn peek(&self, id: &str) -> Option<ReplicaStatus> {
        self.state.lock().unwrap().instances.get(id).cloned()
    }

    /// The global database as stored now, without counting a call.
    pub fn peek_global(&self, id: &str) -> Option<GlobalCluster> {
        self.state.lock().unwrap().globals.get(id).cloned()
    }

    fn reads(&self) -> usize {
        *self.reads_per_change.lock().unwrap()
    }

    fn changed(state: &mut State) -> Changed {
        state.requests += 1;
        Changed {
            request_id: Some(format!("fake-rds-{}", state.requests)),
            started: None,
        }
    }
}

/// One read of something that may be changing: counts the read down, lands the change at zero.
fn read<T: Clone>(
    now: &mut BTreeMap<String, T>,
    changes: &mut BTreeMap<String, Landing<T>>,
    id: &str,
) -> Option<T> {
    if let Some(change) = changes.get_mut(id) {
        if change.reads_left == 0 {
            match changes.remove(id).and_then(|c| c.then) {
                Some(landed) => {
                    now.insert(id.into(), landed);
                }
                None => {
                    now.remove(id);
                }
            }
        } else {
            change.reads_left -= 1;
        }
    }
    now.get(id).cloned()
}

impl Replicas for FakeReplicas {
    async fn instance(&self, id: &str) -> Result<Option<ReplicaStatus>> {
        self.calls.record("instance", id)?;
        let state = &mut *self.state.lock().unwrap();
        Ok(read(&mut state.instances, &mut state.instance_changes, id))
    }

    async fn promote(&self, id: &str) -> Result<Changed> {
        self.calls.record("promote", id)?;
        let reads = self.reads();
        let state = &mut *self.state.lock().unwrap();
        let what = format!("promote read replica {id}");
        let Some(instance) = state.instances.get_mut(id) else {
            return Err(Error::NotFound(format!("{what}: DBInstanceNotFound")));
        };
        if instance.status != "available" || state.instance_changes.contains_key(id) {
            return Err(busy(&what, "InvalidDBInstanceState"));
        }
        if instance.source.is_none() {
            return Err(Error::Aws(format!(
                "{what}: InvalidDBInstanceState: not a read replica"
            )));
        }
        let promoted = ReplicaStatus {
            source: None,
            ..instance.clone()
        };
        if reads == 0 {
            *instance = promoted;
        } else {
            instance.status = "modifying".into();
            state.instance_changes.insert(
                id.into(),
                Landing {
                    reads_left: reads,
                    then: Some(promoted),
                },
            );
        }
        Ok(Self::changed(state))
    }

    async fn global_cluster(&self, id: &str) -> Result<Option<GlobalCluster>> {
        self.calls.record("global_cluster", id)?;
        let state = &mut *self.state.lock().unwrap();
        Ok(read(&mut state.globals, &mut state.global_changes, id))
    }

    async fn move_global_writer(
        &self,
        id: &str,
        target_cluster_arn: &str,
        allow_data_loss: bool,
    ) -> Result<Changed> {
        let (operation, verb, moving) = if allow_data_loss {
            ("failover_global_cluster", "fail over", "failing-over")
        } else {
            ("switchover_global_cluster", "switch over", "switching-over")
        };
        self.calls
            .record(operation, &format!("{id} → {target_cluster_arn}"))?;
        let reads = self.reads();
        let state = &mut *self.state.lock().unwrap();
        let what = format!("{verb} global cluster {id}");
        let Some(global) = state.globals.get_mut(id) else {
            return Err(Error::NotFound(format!(
                "{what}: GlobalClusterNotFoundFault"
            )));
        };
        if global.status != "available" {
            return Err(busy(&what, "InvalidGlobalClusterStateFault"));
        }
        let moved = GlobalCluster {
            writer: Some(target_cluster_arn.into()),
            status: "available".into(),
            failover_state: None,
            ..global.clone()
        };
        if reads == 0 {
            *global = moved;
        } else {
            global.status = moving.into();
            global.failover_state = Some(moving.into());
            state.global_changes.insert(
                id.into(),
                Landing {
                    reads_left: reads,
                    then: Some(moved),
                },
            );
        }
        Ok(Self::changed(state))
    }

    async fn create_replica(
        &self,
        id: &str,
        source_arn: &str,
        placement: &ReplicaPlacement,
        tags: BTreeMap<String, String>,
    ) -> Result<Changed> {
        self.calls.record("create_replica", id)?;
        let reads = self.reads();
        let state = &mut *self.state.lock().unwrap();
        let what = format!("create read replica {id} of {source_arn}");
        if state.instances.contains_key(id) {
            return Err(Error::Aws(format!("{what}: DBInstanceAlreadyExists")));
        }
        // RDS: "If you create an encrypted read replica in a different AWS Region, then you must
        // specify a KMS key identifier for the destination AWS Region" (CreateDBInstanceReadReplica,
        // KmsKeyId); without one it answers 400 InvalidParameterCombination "Cannot create a cross
        // region unencrypted read replica from encrypted source." (as seen in the wild:
        // terraform-aws-modules/terraform-aws-rds#428).
        let encrypted = state.encrypted_elsewhere.contains(source_arn);
        if encrypted && placement.kms_key_id.is_none() {
            return Err(Error::Aws(format!(
                "{what}: InvalidParameterCombination: Cannot create a cross region unencrypted read replica from encrypted source."
            )));
        }
        state.placements.insert(id.into(), placement.clone());
        let created = ReplicaStatus {
            id: id.into(),
            arn: format!("arn:aws:rds:us-west-2:123456789012:db:{id}"),
            status: "available".into(),
            source: Some(source_arn.into()),
            class: Some("db.t3.micro".into()),
            tags,
            encrypted,
            kms_key_id: placement.kms_key_id.clone().filter(|_| encrypted),
        };
        if reads == 0 {
            state.instances.insert(id.into(), created);
        } else {
            let creating = ReplicaStatus {
                status: "creating".into(),
                ..created.clone()
            };
            state.instances.insert(id.into(), creating);
            state.instance_changes.insert(
                id.into(),
                Landing {
                    reads_left: reads,
                    then: Some(created),
                },
            );
        }
        Ok(Self::changed(state))
    }

    async fn delete_instance(&self, id: &str) -> Result<Changed> {
        self.calls.record("delete_instance", id)?;
        let reads = self.reads();
        let state = &mut *self.state.lock().unwrap();
        let Some(instance) = state.instances.get_mut(id) else {
            return Err(Error::NotFound(format!(
                "delete DB instance {id}: DBInstanceNotFound"
            )));
        };
        if reads == 0 {
            state.instances.remove(id);
        } else {
            instance.status = "deleting".into();
            state.instance_changes.insert(
                id.into(),
                Landing {
                    reads_left: reads,
                    then: None,
                },
            );
        }
        Ok(Self::changed(state))
    }
}
