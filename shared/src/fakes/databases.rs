//! In-memory RDS instances and Aurora clusters: the fake of [`Databases`], stopping and starting
//! as moto's RDS does (at once) and refusing what RDS refuses, with the calls made and a knob to
//! make any call fail.
//!
//! RDS refuses to stop a database that is not `available` and to start one that is not `stopped`
//! (`InvalidDBInstanceState`, `InvalidDBClusterStateFault`), and refuses to stop a read replica
//! or a Multi-AZ SQL Server instance (RDS user guide, "Stopping an Amazon RDS DB instance
//! temporarily", Limitations:
//! https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_StopInstance.html). The adapter
//! reports each refusal, and an unknown identifier (`DBInstanceNotFound`), as [`Error::Aws`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::fakes::calls::Calls;
use crate::ports::{Database, DatabaseKind, Databases};

#[derive(Debug, Default)]
struct Inner {
    databases: BTreeMap<(DatabaseKind, String), Database>,
    /// Instances that are members of an Aurora cluster (started and stopped with it).
    members: BTreeSet<String>,
}

/// The databases of one region.
#[derive(Debug, Default)]
pub struct MemoryDatabases {
    inner: Mutex<Inner>,
    calls: Calls,
}

/// The operations that change nothing.
const READS: &[&str] = &["list", "describe"];

impl MemoryDatabases {
    /// No databases.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a standalone instance or a cluster.
    pub fn add(&self, database: Database) {
        let mut inner = self.lock();
        inner.members.remove(&database.id);
        inner
            .databases
            .insert((database.kind, database.id.clone()), database);
    }

    /// Adds an instance that is a member of an Aurora cluster: described, never listed.
    pub fn add_member(&self, instance: Database) {
        let mut inner = self.lock();
        inner.members.insert(instance.id.clone());
        inner
            .databases
            .insert((DatabaseKind::Instance, instance.id.clone()), instance);
    }

    /// Sets the status of a database (`stopping`, `backing-up`, …) as RDS would report it.
    pub fn set_status(&self, kind: DatabaseKind, id: &str, status: &str) {
        if let Some(db) = self.lock().databases.get_mut(&(kind, id.to_string())) {
            db.status = status.to_string();
        }
    }

    /// The next call of `operation` (`list`, `describe`, `stop`, `start`) fails with `error`
    /// (see [`crate::fakes::calls::throttled`] and [`crate::fakes::calls::busy`]).
    pub fn fail_next(&self, operation: &'static str, error: Error) {
        self.calls.fail_next(operation, error);
    }

    /// Every call, in order, as `operation target`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.all()
    }

    /// The stops and starts asked for, in order (`stop instance/x`, `start cluster/y`).
    pub fn changes(&self) -> Vec<String> {
        self.calls.changes(READS)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops (`available` to `stopped`) or starts (back) `id`, or refuses as RDS does.
    fn transition(&self, op: &'static str, kind: DatabaseKind, id: &str) -> Result<()> {
        let (noun, refusal) = match kind {
            DatabaseKind::Instance => ("DB instance", "InvalidDBInstanceState"),
            DatabaseKind::Cluster => ("DB cluster", "InvalidDBClusterStateFault"),
        };
        self.calls.record(op, &target(kind, id))?;
        let what = format!("{op} {noun} {id}");
        let (from, to) = if op == "stop" {
            ("available", "stopped")
        } else {
            ("stopped", "available")
        };
        let mut inner = self.lock();
        let Some(db) = inner.databases.get_mut(&(kind, id.to_string())) else {
            let code = match kind {
                DatabaseKind::Instance => "DBInstanceNotFound",
                DatabaseKind::Cluster => "DBClusterNotFoundFault",
            };
            return Err(Error::Aws(format!("{what}: {code} (fake)")));
        };
        let sql_server_multi_az = db.multi_az
            && db
                .engine
                .as_deref()
                .is_some_and(|e| e.starts_with("sqlserver"));
        if kind == DatabaseKind::Instance
            && op == "stop"
            && (db.replica_source.is_some() || sql_server_multi_az)
        {
            return Err(Error::Aws(format!(
                "{what}: InvalidDBClusterStateFault (this instance cannot be stopped) (fake)"
            )));
        }
        if db.status != from {
            return Err(Error::Aws(format!(
                "{what}: {refusal} (it is {}, not {from}) (fake)",
                db.status
            )));
        }
        db.status = to.to_string();
        Ok(())
    }
}

fn target(kind: DatabaseKind, id: &str) -> String {
    match kind {
        DatabaseKind::Instance => format!("instance/{id}"),
        DatabaseKind::Cluster => format!("cluster/{id}"),
    }
}

impl Databases for MemoryDatabases {
    async fn list(&self) -> Result<Vec<Database>> {
        self.calls.record("list", "")?;
        let inner = self.lock();
        Ok(inner
            .databases
            .values()
            .filter(|d| !(d.kind == DatabaseKind::Instance && inner.members.contains(&d.id)))
            .cloned()
            .collect())
    }

    async fn describe(&self, kind: DatabaseKind, id: &str) -> Result<Option<Database>> {
        self.calls.record("describe", &target(kind, id))?;
        Ok(self.lock().databases.get(&(kind, id.to_string())).cloned())
    }

    async fn stop(&self, kind: DatabaseKind, id: &str) -> Result<()> {
        self.transition("stop", kind, id)
    }

    async fn start(&self, kind: DatabaseKind, id: &str) -> Result<()> {
        self.transition("start", kind, id)
    }
}
