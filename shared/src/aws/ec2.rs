//! The EC2 adapter: an instance's cluster, node group, capacity type and placement.

use crate::error::{Error, Result};
use crate::ports::{InstanceInfo, Instances};

/// [`Instances`] over the EC2 API of one region.
#[derive(Debug, Clone)]
pub struct Ec2Instances {
    client: aws_sdk_ec2::Client,
}

impl Ec2Instances {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        Ec2Instances { client }
    }
}

impl Instances for Ec2Instances {
    async fn describe(&self, id: &str) -> Result<Option<InstanceInfo>> {
        let response = match self
            .client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e)
                if e.as_service_error()
                    .and_then(|s| aws_smithy_types::error::metadata::ProvideErrorMetadata::code(s))
                    .is_some_and(|c| {
                        c == "InvalidInstanceID.NotFound" || c == "InvalidInstanceID.Malformed"
                    }) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(Error::from_sdk(&format!("describe instance {id}"), &e)),
        };
        let Some(instance) = response
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(id))
        else {
            return Ok(None);
        };
        let tag = |key: &str| {
            instance
                .tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
                .map(str::to_string)
        };
        let capacity = match instance.instance_lifecycle() {
            Some(l) if l.as_str() == "spot" => "spot",
            _ => "on-demand",
        };
        Ok(Some(InstanceInfo {
            id: id.to_string(),
            cluster: tag("eks:cluster-name"),
            node_group: tag("eks:nodegroup-name"),
            auto_scaling_group: tag("aws:autoscaling:groupName"),
            node_pool: tag("karpenter.sh/nodepool"),
            capacity: capacity.to_string(),
            az: instance
                .placement()
                .and_then(|p| p.availability_zone())
                .unwrap_or_default()
                .to_string(),
            instance_type: instance
                .instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            private_dns: instance.private_dns_name().map(str::to_string),
            state: instance
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
                .unwrap_or_default(),
        }))
    }
}
