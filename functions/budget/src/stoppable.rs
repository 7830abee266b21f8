//! Which RDS databases AWS will not stop, so that enforcement skips them with the reason instead
//! of attempting a stop RDS refuses. Decided from the listing alone (DescribeDBInstances and
//! DescribeDBClusters carry every field used here): no call per database.
//!
//! DB instances — "Stopping an Amazon RDS DB instance temporarily" (Amazon RDS User Guide,
//! USER_StopInstance), Limitations: "You can't stop a DB instance that has a read replica, or
//! that is a read replica" and "You can't stop an Amazon RDS for SQL Server DB instance in a
//! Multi-AZ configuration" (both still in the current page). `ReadReplicaDBInstanceIdentifiers`
//! names replicas in other regions by ARN, and `ReadReplicaDBClusterIdentifiers` the Aurora read
//! replica of an instance: both make the instance a source.
//!
//! DB clusters — "Stopping and starting an Amazon Aurora DB cluster" (Amazon Aurora User Guide,
//! aurora-cluster-stop-start), Limitations: a cluster that is part of an Aurora global database
//! (the current page allows it only when the cluster is the global database's only member, which
//! the listing cannot tell, so any member is skipped), a cluster that has a cross-Region read
//! replica or "acts as the replication target for data from another DB cluster, or acts as the
//! replication master", an Aurora Serverless v1 cluster (`EngineMode` `serverless`) and a
//! multi-master cluster (`EngineMode` `multimaster`). And "Limitations of Multi-AZ DB clusters
//! for Amazon RDS" (Amazon RDS User Guide): a Multi-AZ DB cluster (a cluster whose engine is not
//! Aurora's: `mysql`, `postgres`) does not support "Stopping and starting".

use breakwater::ports::{Database, DatabaseKind};

/// Why RDS would refuse to stop `db`, `None` when nothing documented stands in the way.
pub fn refusal(db: &Database) -> Option<String> {
    match db.kind {
        DatabaseKind::Instance => instance_refusal(db),
        DatabaseKind::Cluster => cluster_refusal(db),
    }
}

fn instance_refusal(db: &Database) -> Option<String> {
    if let Some(source) = &db.replica_source {
        return Some(format!(
            "a read replica of {source}; RDS cannot stop a read replica"
        ));
    }
    if !db.replicas.is_empty() {
        return Some(format!(
            "the source of the read replica {}; RDS cannot stop an instance that has a read replica",
            db.replicas.join(", ")
        ));
    }
    let engine = db.engine.as_deref().unwrap_or_default();
    if db.multi_az && engine.to_ascii_lowercase().contains("sqlserver") {
        return Some(format!(
            "SQL Server ({engine}) in a Multi-AZ configuration; RDS cannot stop it"
        ));
    }
    None
}

fn cluster_refusal(db: &Database) -> Option<String> {
    let engine = db.engine.as_deref().unwrap_or_default();
    if !engine.is_empty() && !engine.starts_with("aurora") {
        return Some(format!(
            "a Multi-AZ DB cluster ({engine}); RDS cannot stop a Multi-AZ DB cluster"
        ));
    }
    if let Some(global) = &db.global_cluster {
        return Some(format!(
            "part of the Aurora global database {global}; RDS stops such a cluster only when it is the global database's only member"
        ));
    }
    match db.engine_mode.as_deref() {
        Some("serverless") => {
            return Some(
                "an Aurora Serverless v1 cluster; RDS cannot stop Aurora Serverless v1".into(),
            )
        }
        Some("multimaster") => {
            return Some("an Aurora multi-master cluster; RDS cannot stop it".into())
        }
        Some("global") => {
            return Some(
                "part of an Aurora global database (engine mode global); RDS cannot stop it".into(),
            )
        }
        _ => {}
    }
    if let Some(source) = &db.replica_source {
        return Some(format!(
            "the replication target of {source}; RDS cannot stop a cluster that replicates another"
        ));
    }
    if !db.replicas.is_empty() {
        return Some(format!(
            "the replication source of {}; RDS cannot stop a cluster that has a read replica",
            db.replicas.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, engine: &str) -> Database {
        Database {
            kind: DatabaseKind::Instance,
            id: id.into(),
            arn: format!("arn:aws:rds:us-east-1:123456789012:db:{id}"),
            status: "available".into(),
            class: Some("db.m5.large".into()),
            tags: [("environment".to_string(), "dev".to_string())].into(),
            engine: Some(engine.into()),
            multi_az: false,
            replica_source: None,
            replicas: Vec::new(),
            engine_mode: None,
            global_cluster: None,
        }
    }

    fn cluster(id: &str, engine: &str) -> Database {
        Database {
            kind: DatabaseKind::Cluster,
            arn: format!("arn:aws:rds:us-east-1:123456789012:cluster:{id}"),
            engine_mode: Some("provisioned".into()),
            ..instance(id, engine)
        }
    }

    #[test]
    fn a_read_replica_is_not_stopped_and_names_its_source() {
        // GIVEN a replica of orders-dev, and one of an instance in another region (by ARN)
        let replica = Database {
            replica_source: Some("orders-dev".into()),
            ..instance("reports-replica", "postgres")
        };
        let cross = Database {
            replica_source: Some("arn:aws:rds:eu-west-1:123456789012:db:orders-eu".into()),
            ..instance("eu-copy", "postgres")
        };
        // THEN both are refused with the reason
        let why = refusal(&replica).unwrap();
        assert!(why.contains("read replica of orders-dev"), "{why}");
        assert!(refusal(&cross).unwrap().contains("orders-eu"));
    }

    #[test]
    fn the_source_of_a_read_replica_is_not_stopped_even_when_the_replica_is_in_another_region() {
        // GIVEN an instance whose replica is in this region, one whose replica is in another
        // region (ReadReplicaDBInstanceIdentifiers names it by ARN), and one with an Aurora
        // read replica cluster
        let here = Database {
            replicas: vec!["reports-replica".into()],
            ..instance("orders-dev", "postgres")
        };
        let eu = "arn:aws:rds:eu-west-1:123456789012:db:billing-eu";
        let elsewhere = Database {
            replicas: vec![eu.into()],
            ..instance("billing-dev", "mysql")
        };
        let aurora = Database {
            replicas: vec!["billing-aurora".into()],
            ..instance("legacy-dev", "mysql")
        };
        // THEN each is refused, naming its replica
        let why = refusal(&here).unwrap();
        assert!(
            why.contains("source of the read replica reports-replica"),
            "{why}"
        );
        assert!(refusal(&elsewhere).unwrap().contains(eu));
        assert!(refusal(&aurora).unwrap().contains("billing-aurora"));
    }

    #[test]
    fn a_sql_server_instance_is_not_stopped_in_multi_az_but_is_in_a_single_az() {
        // GIVEN the same SQL Server instance Multi-AZ and single-AZ, and a Multi-AZ PostgreSQL
        let multi = Database {
            multi_az: true,
            ..instance("ledger", "sqlserver-se")
        };
        let single = instance("ledger", "sqlserver-se");
        let postgres = Database {
            multi_az: true,
            ..instance("wiki", "postgres")
        };
        // THEN only the Multi-AZ SQL Server is refused
        let why = refusal(&multi).unwrap();
        assert!(
            why.contains("SQL Server (sqlserver-se) in a Multi-AZ"),
            "{why}"
        );
        assert_eq!(refusal(&single), None);
        assert_eq!(refusal(&postgres), None);
    }

    #[test]
    fn a_plain_instance_and_a_plain_aurora_cluster_may_be_stopped() {
        assert_eq!(refusal(&instance("scratch-dev", "postgres")), None);
        assert_eq!(refusal(&cluster("staging", "aurora-postgresql")), None);
        // AND a cluster the listing reports without an engine mode (Serverless v2, provisioned)
        let v2 = Database {
            engine_mode: None,
            ..cluster("staging-v2", "aurora-mysql")
        };
        assert_eq!(refusal(&v2), None);
    }

    #[test]
    fn an_aurora_serverless_v1_cluster_is_not_stopped() {
        let v1 = Database {
            engine_mode: Some("serverless".into()),
            ..cluster("reports", "aurora-mysql")
        };
        let why = refusal(&v1).unwrap();
        assert!(why.contains("Aurora Serverless v1"), "{why}");
    }

    #[test]
    fn an_aurora_multi_master_cluster_is_not_stopped() {
        let mm = Database {
            engine_mode: Some("multimaster".into()),
            ..cluster("writes", "aurora-mysql")
        };
        assert!(refusal(&mm).unwrap().contains("multi-master"));
    }

    #[test]
    fn a_cluster_in_an_aurora_global_database_is_not_stopped() {
        // GIVEN a member named by GlobalClusterIdentifier, and an older cluster in engine mode
        // `global`
        let member = Database {
            global_cluster: Some("orders-global".into()),
            ..cluster("orders", "aurora-postgresql")
        };
        let old = Database {
            engine_mode: Some("global".into()),
            ..cluster("orders-56", "aurora")
        };
        // THEN both are refused
        let why = refusal(&member).unwrap();
        assert!(why.contains("global database orders-global"), "{why}");
        assert!(refusal(&old).unwrap().contains("global database"));
    }

    #[test]
    fn a_cluster_that_replicates_or_is_replicated_across_regions_is_not_stopped() {
        let target = Database {
            replica_source: Some("arn:aws:rds:eu-west-1:123456789012:cluster:orders-eu".into()),
            ..cluster("orders-copy", "aurora-mysql")
        };
        let source = Database {
            replicas: vec!["arn:aws:rds:us-west-2:123456789012:cluster:orders-w".into()],
            ..cluster("orders", "aurora-mysql")
        };
        assert!(refusal(&target)
            .unwrap()
            .contains("replication target of arn:aws:rds:eu-west-1"));
        assert!(refusal(&source)
            .unwrap()
            .contains("replication source of arn:aws:rds:us-west-2"));
    }

    #[test]
    fn a_multi_az_db_cluster_of_rds_is_not_stopped() {
        // GIVEN a Multi-AZ DB cluster (RDS for PostgreSQL, not Aurora)
        let maz = Database {
            multi_az: true,
            engine_mode: Some("provisioned".into()),
            ..cluster("payments", "postgres")
        };
        let why = refusal(&maz).unwrap();
        assert!(why.contains("Multi-AZ DB cluster (postgres)"), "{why}");
    }
}
