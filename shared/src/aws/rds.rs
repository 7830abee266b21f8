//! The RDS adapter: standalone DB instances and Aurora DB clusters; read replicas and Aurora
//! global databases for failover.

use std::collections::BTreeMap;

use aws_sdk_rds::operation::RequestId;
use aws_sdk_rds::types::Tag;

use crate::error::{Error, Result};
use crate::ports::{
    Changed, Database, DatabaseKind, Databases, GlobalCluster, ReplicaPlacement, ReplicaStatus,
    Replicas,
};

/// [`Databases`] over the RDS API of one region.
#[derive(Debug, Clone)]
pub struct RdsDatabases {
    client: aws_sdk_rds::Client,
}

impl RdsDatabases {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_rds::Client) -> Self {
        RdsDatabases { client }
    }

    /// One DB instance as RDS describes it, `None` when it does not exist.
    async fn db_instance(&self, id: &str) -> Result<Option<aws_sdk_rds::types::DbInstance>> {
        match self
            .client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(r) => Ok(r.db_instances().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::from_sdk(&format!("describe DB instance {id}"), &e)),
        }
    }
}

fn tags(list: Option<&[Tag]>) -> BTreeMap<String, String> {
    list.unwrap_or_default()
        .iter()
        .filter_map(|t| Some((t.key.clone()?, t.value.clone().unwrap_or_default())))
        .collect()
}

fn instance(db: &aws_sdk_rds::types::DbInstance) -> Database {
    Database {
        kind: DatabaseKind::Instance,
        id: db.db_instance_identifier.clone().unwrap_or_default(),
        arn: db.db_instance_arn.clone().unwrap_or_default(),
        status: db.db_instance_status.clone().unwrap_or_default(),
        class: db.db_instance_class.clone(),
        tags: tags(db.tag_list.as_deref()),
        engine: db.engine.clone(),
        multi_az: db.multi_az.unwrap_or(false),
        replica_source: db
            .read_replica_source_db_instance_identifier
            .clone()
            .filter(|s| !s.is_empty()),
        replicas: db
            .read_replica_db_instance_identifiers()
            .iter()
            .chain(db.read_replica_db_cluster_identifiers())
            .cloned()
            .collect(),
        engine_mode: None,
        global_cluster: None,
    }
}

fn cluster(db: &aws_sdk_rds::types::DbCluster) -> Database {
    Database {
        kind: DatabaseKind::Cluster,
        id: db.db_cluster_identifier.clone().unwrap_or_default(),
        arn: db.db_cluster_arn.clone().unwrap_or_default(),
        status: db.status.clone().unwrap_or_default(),
        class: db.db_cluster_instance_class.clone(),
        tags: tags(db.tag_list.as_deref()),
        engine: db.engine.clone(),
        multi_az: db.multi_az.unwrap_or(false),
        replica_source: db
            .replication_source_identifier
            .clone()
            .filter(|s| !s.is_empty()),
        replicas: db.read_replica_identifiers().to_vec(),
        engine_mode: db.engine_mode.clone(),
        global_cluster: db
            .global_cluster_identifier
            .clone()
            .filter(|s| !s.is_empty()),
    }
}

impl Databases for RdsDatabases {
    async fn list(&self) -> Result<Vec<Database>> {
        let mut out = Vec::new();
        let mut pages = self.client.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::from_sdk("describe DB instances", &e))?;
            // Members of an Aurora cluster are stopped and started with their cluster.
            out.extend(
                page.db_instances()
                    .iter()
                    .filter(|d| d.db_cluster_identifier.is_none())
                    .map(instance),
            );
        }
        let mut pages = self.client.describe_db_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::from_sdk("describe DB clusters", &e))?;
            out.extend(page.db_clusters().iter().map(cluster));
        }
        Ok(out)
    }

    async fn describe(&self, kind: DatabaseKind, id: &str) -> Result<Option<Database>> {
        match kind {
            DatabaseKind::Instance => Ok(self.db_instance(id).await?.as_ref().map(instance)),
            DatabaseKind::Cluster => match self
                .client
                .describe_db_clusters()
                .db_cluster_identifier(id)
                .send()
                .await
            {
                Ok(r) => Ok(r.db_clusters().first().map(cluster)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_db_cluster_not_found_fault()) =>
                {
                    Ok(None)
                }
                Err(e) => Err(Error::from_sdk(&format!("describe DB cluster {id}"), &e)),
            },
        }
    }

    async fn stop(&self, kind: DatabaseKind, id: &str) -> Result<()> {
        match kind {
            DatabaseKind::Instance => self
                .client
                .stop_db_instance()
                .db_instance_identifier(id)
                .send()
                .await
                .map(drop)
                .map_err(|e| Error::from_sdk(&format!("stop DB instance {id}"), &e)),
            DatabaseKind::Cluster => self
                .client
                .stop_db_cluster()
                .db_cluster_identifier(id)
                .send()
                .await
                .map(drop)
                .map_err(|e| Error::from_sdk(&format!("stop DB cluster {id}"), &e)),
        }
    }

    async fn start(&self, kind: DatabaseKind, id: &str) -> Result<()> {
        match kind {
            DatabaseKind::Instance => self
                .client
                .start_db_instance()
                .db_instance_identifier(id)
                .send()
                .await
                .map(drop)
                .map_err(|e| Error::from_sdk(&format!("start DB instance {id}"), &e)),
            DatabaseKind::Cluster => self
                .client
                .start_db_cluster()
                .db_cluster_identifier(id)
                .send()
                .await
                .map(drop)
                .map_err(|e| Error::from_sdk(&format!("start DB cluster {id}"), &e)),
        }
    }
}

fn replica(db: &aws_sdk_rds::types::DbInstance) -> ReplicaStatus {
    ReplicaStatus {
        id: db.db_instance_identifier.clone().unwrap_or_default(),
        arn: db.db_instance_arn.clone().unwrap_or_default(),
        status: db.db_instance_status.clone().unwrap_or_default(),
        source: db
            .read_replica_source_db_instance_identifier
            .clone()
            .filter(|s| !s.is_empty()),
        class: db.db_instance_class.clone(),
        tags: tags(db.tag_list.as_deref()),
        encrypted: db.storage_encrypted.unwrap_or(false),
        kms_key_id: db.kms_key_id.clone().filter(|k| !k.is_empty()),
    }
}

fn changed(request_id: Option<&str>) -> Changed {
    Changed {
        request_id: request_id.map(str::to_string),
        started: None,
    }
}

impl Replicas for RdsDatabases {
    async fn instance(&self, id: &str) -> Result<Option<ReplicaStatus>> {
        Ok(self.db_instance(id).await?.as_ref().map(replica))
    }

    async fn promote(&self, id: &str) -> Result<Changed> {
        let out = self
            .client
            .promote_read_replica()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| {
                // Backing up, modifying, rebooting: not now, later.
                let busy = e
                    .as_service_error()
                    .is_some_and(|s| s.is_invalid_db_instance_state_fault());
                Error::from_sdk_busy(
                    &format!("promote read replica {id}"),
                    &e,
                    busy,
                    "InvalidDBInstanceState",
                )
            })?;
        Ok(changed(out.request_id()))
    }

    async fn global_cluster(&self, id: &str) -> Result<Option<GlobalCluster>> {
        match self
            .client
            .describe_global_clusters()
            .global_cluster_identifier(id)
            .send()
            .await
        {
            Ok(r) => Ok(r.global_clusters().first().map(|g| GlobalCluster {
                id: g.global_cluster_identifier.clone().unwrap_or_default(),
                status: g.status.clone().unwrap_or_default(),
                writer: g
                    .global_cluster_members()
                    .iter()
                    .find(|m| m.is_writer == Some(true))
                    .and_then(|m| m.db_cluster_arn.clone()),
                failover_state: g
                    .failover_state
                    .as_ref()
                    .and_then(|f| f.status.as_ref())
                    .map(|s| s.as_str().to_string()),
                engine: g.engine.clone().filter(|e| !e.is_empty()),
                engine_version: g.engine_version.clone().filter(|v| !v.is_empty()),
            })),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_global_cluster_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::from_sdk(
                &format!("describe global cluster {id}"),
                &e,
            )),
        }
    }

    async fn move_global_writer(
        &self,
        id: &str,
        target_cluster_arn: &str,
        allow_data_loss: bool,
    ) -> Result<Changed> {
        if allow_data_loss {
            let out = self
                .client
                .failover_global_cluster()
                .global_cluster_identifier(id)
                .target_db_cluster_identifier(target_cluster_arn)
                .allow_data_loss(true)
                .send()
                .await
                .map_err(|e| {
                    let busy = e
                        .as_service_error()
                        .is_some_and(|s| s.is_invalid_global_cluster_state_fault());
                    Error::from_sdk_busy(
                        &format!("fail over global cluster {id}"),
                        &e,
                        busy,
                        "InvalidGlobalClusterStateFault",
                    )
                })?;
            Ok(changed(out.request_id()))
        } else {
            let out = self
                .client
                .switchover_global_cluster()
                .global_cluster_identifier(id)
                .target_db_cluster_identifier(target_cluster_arn)
                .send()
                .await
                .map_err(|e| {
                    let busy = e
                        .as_service_error()
                        .is_some_and(|s| s.is_invalid_global_cluster_state_fault());
                    Error::from_sdk_busy(
                        &format!("switch over global cluster {id}"),
                        &e,
                        busy,
                        "InvalidGlobalClusterStateFault",
                    )
                })?;
            Ok(changed(out.request_id()))
        }
    }

    /// A cross-region replica is created by calling RDS in the replica's region with the
    /// source's ARN. `PreSignedUrl` (the SDKs' `SourceRegion`) is not sent: "This setting
    /// applies only to AWS GovCloud (US) Regions and China AWS Regions. It's ignored in other
    /// AWS Regions" (CreateDBInstanceReadReplica, Amazon RDS API Reference,
    /// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstanceReadReplica.html>);
    /// this SDK does not generate one.
    async fn create_replica(
        &self,
        id: &str,
        source_arn: &str,
        placement: &ReplicaPlacement,
        tags: BTreeMap<String, String>,
    ) -> Result<Changed> {
        let out = self
            .client
            .create_db_instance_read_replica()
            .db_instance_identifier(id)
            .source_db_instance_identifier(source_arn)
            .set_kms_key_id(placement.kms_key_id.clone())
            .set_db_subnet_group_name(placement.subnet_group.clone())
            .set_vpc_security_group_ids(
                (!placement.security_groups.is_empty()).then(|| placement.security_groups.clone()),
            )
            .set_tags(Some(
                tags.into_iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| {
                Error::from_sdk(&format!("create read replica {id} of {source_arn}"), &e)
            })?;
        Ok(changed(out.request_id()))
    }

    async fn delete_instance(&self, id: &str) -> Result<Changed> {
        let out = self
            .client
            .delete_db_instance()
            .db_instance_identifier(id)
            .skip_final_snapshot(true)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&format!("delete DB instance {id}"), &e))?;
        Ok(changed(out.request_id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::types::{DbCluster, DbInstance};

    #[test]
    fn an_instance_carries_its_engine_multi_az_source_and_replicas_in_every_region() {
        // GIVEN a DescribeDBInstances entry (DBInstance, RDS API reference) of a Multi-AZ SQL
        // Server instance that replicates another and has a replica here, one in another region
        // (by ARN) and an Aurora read replica cluster
        let db = DbInstance::builder()
            .db_instance_identifier("ledger")
            .db_instance_arn("arn:aws:rds:us-east-1:123456789012:db:ledger")
            .db_instance_status("available")
            .engine("sqlserver-se")
            .multi_az(true)
            .read_replica_source_db_instance_identifier("ledger-primary")
            .read_replica_db_instance_identifiers("ledger-reports")
            .read_replica_db_instance_identifiers("arn:aws:rds:eu-west-1:123456789012:db:ledger-eu")
            .read_replica_db_cluster_identifiers("ledger-aurora")
            .build();
        // WHEN it is read
        let read = instance(&db);
        // THEN all of it is there
        assert_eq!(read.engine.as_deref(), Some("sqlserver-se"));
        assert!(read.multi_az);
        assert_eq!(read.replica_source.as_deref(), Some("ledger-primary"));
        assert_eq!(
            read.replicas,
            [
                "ledger-reports",
                "arn:aws:rds:eu-west-1:123456789012:db:ledger-eu",
                "ledger-aurora"
            ]
        );
        // AND an instance without those fields is single-AZ, no replica and no source
        let bare = instance(
            &DbInstance::builder()
                .db_instance_identifier("scratch")
                .read_replica_source_db_instance_identifier("")
                .build(),
        );
        assert!(!bare.multi_az);
        assert_eq!((bare.replica_source, bare.replicas.len()), (None, 0));
    }

    #[tokio::test]
    async fn a_global_cluster_carries_its_engine_and_version_and_an_instance_its_encryption() {
        use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
        use aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersOutput;
        use aws_sdk_rds::types::GlobalCluster as Global;
        use aws_smithy_mocks::{mock, mock_client};
        // GIVEN DescribeGlobalClusters answering an Aurora MySQL 3.03 global database (its
        // `Engine` and `EngineVersion`, GlobalCluster, RDS API reference), and
        // DescribeDBInstances an instance encrypted with a key
        let globals = mock!(aws_sdk_rds::Client::describe_global_clusters).then_output(|| {
            DescribeGlobalClustersOutput::builder()
                .global_clusters(
                    Global::builder()
                        .global_cluster_identifier("orders-global")
                        .status("available")
                        .engine("aurora-mysql")
                        .engine_version("8.0.mysql_aurora.3.03.1")
                        .build(),
                )
                .build()
        });
        let key = "arn:aws:kms:us-west-2:123456789012:key/west";
        let instances = mock!(aws_sdk_rds::Client::describe_db_instances).then_output(move || {
            DescribeDbInstancesOutput::builder()
                .db_instances(
                    DbInstance::builder()
                        .db_instance_identifier("orders-replica")
                        .storage_encrypted(true)
                        .kms_key_id(key)
                        .build(),
                )
                .build()
        });
        let rds = RdsDatabases::new(mock_client!(aws_sdk_rds, [&globals, &instances]));
        // WHEN they are read through the port
        let global = rds.global_cluster("orders-global").await.unwrap().unwrap();
        let instance = rds.instance("orders-replica").await.unwrap().unwrap();
        // THEN the engine and version, and the encryption and key, are there
        assert_eq!(global.engine.as_deref(), Some("aurora-mysql"));
        assert_eq!(
            global.engine_version.as_deref(),
            Some("8.0.mysql_aurora.3.03.1")
        );
        assert!(instance.encrypted);
        assert_eq!(instance.kms_key_id.as_deref(), Some(key));
    }

    #[test]
    fn a_cluster_carries_its_engine_mode_global_database_and_replication() {
        // GIVEN a DescribeDBClusters entry (DBCluster, RDS API reference) of an Aurora Serverless
        // v1 cluster in a global database that replicates another cluster and has a replica
        let db = DbCluster::builder()
            .db_cluster_identifier("orders")
            .engine("aurora-mysql")
            .engine_mode("serverless")
            .global_cluster_identifier("orders-global")
            .replication_source_identifier("arn:aws:rds:eu-west-1:123456789012:cluster:orders-eu")
            .read_replica_identifiers("arn:aws:rds:us-west-2:123456789012:cluster:orders-w")
            .build();
        // WHEN it is read
        let read = cluster(&db);
        // THEN all of it is there
        assert_eq!(read.kind, DatabaseKind::Cluster);
        assert_eq!(read.engine.as_deref(), Some("aurora-mysql"));
        assert_eq!(read.engine_mode.as_deref(), Some("serverless"));
        assert_eq!(read.global_cluster.as_deref(), Some("orders-global"));
        assert_eq!(
            read.replica_source.as_deref(),
            Some("arn:aws:rds:eu-west-1:123456789012:cluster:orders-eu")
        );
        assert_eq!(
            read.replicas,
            ["arn:aws:rds:us-west-2:123456789012:cluster:orders-w"]
        );
    }
}
