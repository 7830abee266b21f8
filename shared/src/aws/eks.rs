//! The EKS adapter: managed node groups.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_eks::types::NodegroupScalingConfig;

use crate::error::{Error, Result};
use crate::ports::{NodeGroup, NodeGroupId, NodeGroups, Scaling};

/// [`NodeGroups`] over the EKS API of one region.
#[derive(Debug, Clone)]
pub struct EksNodeGroups {
    client: aws_sdk_eks::Client,
}

impl EksNodeGroups {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_eks::Client) -> Self {
        EksNodeGroups { client }
    }
}

impl NodeGroups for EksNodeGroups {
    async fn list(&self, cluster: &str) -> Result<Vec<NodeGroup>> {
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_nodegroups()
            .cluster_name(cluster)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| Error::from_sdk(&format!("list node groups of {cluster}"), &e))?;
            names.extend(page.nodegroups.unwrap_or_default());
        }
        let mut groups = Vec::with_capacity(names.len());
        for name in names {
            let id = NodeGroupId {
                cluster: cluster.to_string(),
                name,
            };
            if let Some(group) = self.describe(&id).await? {
                groups.push(group);
            }
        }
        Ok(groups)
    }

    async fn describe(&self, id: &NodeGroupId) -> Result<Option<NodeGroup>> {
        let response = match self
            .client
            .describe_nodegroup()
            .cluster_name(&id.cluster)
            .nodegroup_name(&id.name)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(Error::from_sdk(&format!("describe node group {id}"), &e)),
        };
        let Some(group) = response.nodegroup else {
            return Ok(None);
        };
        let scaling = group.scaling_config.as_ref();
        Ok(Some(NodeGroup {
            id: id.clone(),
            arn: group.nodegroup_arn.clone().unwrap_or_default(),
            scaling: Scaling {
                min: scaling.and_then(|s| s.min_size).unwrap_or(0),
                max: scaling.and_then(|s| s.max_size).unwrap_or(0),
                desired: scaling.and_then(|s| s.desired_size).unwrap_or(0),
            },
            status: group
                .status
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            instance_types: group.instance_types.clone().unwrap_or_default(),
            capacity_type: group
                .capacity_type
                .as_ref()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            tags: group.tags.clone().unwrap_or_default().into_iter().collect(),
        }))
    }

    async fn update_scaling(
        &self,
        id: &NodeGroupId,
        scaling: Scaling,
        token: &str,
    ) -> Result<String> {
        let config = NodegroupScalingConfig::builder()
            .min_size(scaling.min)
            .max_size(scaling.max)
            .desired_size(scaling.desired)
            .build();
        let response = self
            .client
            .update_nodegroup_config()
            .cluster_name(&id.cluster)
            .nodegroup_name(&id.name)
            .scaling_config(config)
            .client_request_token(token)
            .send()
            .await
            .map_err(|e| {
                // Another update is in progress: wait for it, then try again.
                let busy = e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception());
                Error::from_sdk_busy(
                    &format!("scale node group {id} to {scaling}"),
                    &e,
                    busy,
                    "ResourceInUseException",
                )
            })?;
        Ok(response.update.and_then(|u| u.id).unwrap_or_default())
    }

    async fn tag(&self, arn: &str, tags: BTreeMap<String, String>) -> Result<()> {
        let tags: HashMap<String, String> = tags.into_iter().collect();
        self.client
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| Error::from_sdk(&format!("tag {arn}"), &e))?;
        Ok(())
    }
}
