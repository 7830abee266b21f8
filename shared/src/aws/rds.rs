//! The RDS adapter: standalone DB instances and Aurora DB clusters.

use std::collections::BTreeMap;

use aws_sdk_rds::types::Tag;

use crate::error::{Error, Result};
use crate::ports::{Database, DatabaseKind, Databases};

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
            DatabaseKind::Instance => match self
                .client
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
            {
                Ok(r) => Ok(r.db_instances().first().map(instance)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
                {
                    Ok(None)
                }
                Err(e) => Err(Error::from_sdk(&format!("describe DB instance {id}"), &e)),
            },
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
