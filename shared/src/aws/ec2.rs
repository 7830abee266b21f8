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
            cluster: cluster_of(
                instance
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default()))),
            ),
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
            vpc: instance.vpc_id().map(str::to_string),
            private_ips: private_ips(instance),
        }))
    }
}

/// The EKS cluster an instance belongs to, from its tags: a managed node group's
/// `eks:cluster-name`; else what Karpenter puts on the instances it launches
/// (`eks:eks-cluster-name`, and `kubernetes.io/cluster/<name>` — Karpenter docs, "EC2NodeClass",
/// tags every instance gets), so a Karpenter node is the cluster's and not foreign.
fn cluster_of<'a>(tags: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Option<String> {
    let find = |key: &str| tags.clone().find(|(k, _)| *k == key).map(|(_, v)| v);
    find("eks:cluster-name")
        .or_else(|| find("eks:eks-cluster-name"))
        .or_else(|| {
            tags.clone()
                .find_map(|(k, _)| k.strip_prefix("kubernetes.io/cluster/"))
        })
        .filter(|name| !name.is_empty())
        .map(str::to_string)
}

/// Every private IPv4 address of the instance's network interfaces, the primary first.
fn private_ips(instance: &aws_sdk_ec2::types::Instance) -> Vec<String> {
    let mut ips: Vec<String> = instance
        .private_ip_address()
        .into_iter()
        .map(str::to_string)
        .collect();
    for address in instance
        .network_interfaces()
        .iter()
        .flat_map(|n| n.private_ip_addresses())
        .filter_map(|a| a.private_ip_address())
    {
        if !ips.iter().any(|ip| ip == address) {
            ips.push(address.to_string());
        }
    }
    ips
}

#[cfg(test)]
mod cluster_tests {
    use super::cluster_of;

    #[test]
    fn a_karpenter_instance_is_its_clusters_by_the_tags_karpenter_puts_on_it() {
        // GIVEN the tags of a managed node group's instance and of Karpenter's
        let managed = [
            ("eks:cluster-name", "shop"),
            ("eks:nodegroup-name", "spot-a"),
        ];
        let karpenter = [
            ("karpenter.sh/nodepool", "default"),
            ("eks:eks-cluster-name", "shop"),
            ("kubernetes.io/cluster/shop", "owned"),
        ];
        let only_ownership = [("kubernetes.io/cluster/shop", "owned")];
        // THEN each names the cluster, and an untagged instance names none
        assert_eq!(cluster_of(managed.into_iter()).as_deref(), Some("shop"));
        assert_eq!(cluster_of(karpenter.into_iter()).as_deref(), Some("shop"));
        assert_eq!(
            cluster_of(only_ownership.into_iter()).as_deref(),
            Some("shop")
        );
        assert_eq!(cluster_of([("Name", "x")].into_iter()), None);
    }
}
