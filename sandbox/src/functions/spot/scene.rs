//! The spot scene: in moto, a cluster with a spot and an on-demand node group and spot instances
//! tagged as EKS tags them; in the Kubernetes emulator, a node per instance.

use aws_config::SdkConfig;
use aws_sdk_eks::types::{CapacityTypes, NodegroupScalingConfig, VpcConfigRequest};
use serde::{Deserialize, Serialize};

use crate::seed::{regional, ACCOUNT};
use crate::SandboxError;

/// What the spot scene created in moto (the Kubernetes side is seeded with [`spot_nodes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotScene {
    /// The EKS cluster.
    pub cluster: String,
    /// The spot node group (`m5.large` in the first AZ).
    pub spot_node_group: String,
    /// The on-demand node group failover raises (min 1 / desired 1 / max 10).
    pub on_demand_node_group: String,
    /// The spot instances, tagged as EKS tags them.
    pub instances: Vec<String>,
    /// An instance of a cluster this deployment does not manage.
    pub foreign_instance: String,
    /// The availability zone.
    pub az: String,
}

/// Creates the spot scene in `region`: a cluster with a spot and an on-demand node group, and
/// `count` spot instances tagged with the cluster and node group.
pub async fn spot_scene(
    config: &SdkConfig,
    region: &str,
    suffix: &str,
    count: usize,
) -> Result<SpotScene, SandboxError> {
    use aws_sdk_ec2::types::{
        InstanceMarketOptionsRequest, InstanceType, MarketType, Placement, ResourceType,
        Tag as Ec2Tag, TagSpecification,
    };
    let config = regional(config, region);
    let eks = aws_sdk_eks::Client::new(&config);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let az = format!("{region}a");
    let mut scene = SpotScene {
        cluster: format!("shop-{region}{suffix}"),
        spot_node_group: "spot-a".into(),
        on_demand_node_group: "on-demand".into(),
        instances: Vec::new(),
        foreign_instance: String::new(),
        az: az.clone(),
    };
    eks.create_cluster()
        .name(&scene.cluster)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks-cluster"))
        .resources_vpc_config(
            VpcConfigRequest::builder()
                .subnet_ids("subnet-0a1b2c3d")
                .build(),
        )
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create cluster {}", scene.cluster), &e))?;
    for (name, capacity, size) in [
        (&scene.spot_node_group, CapacityTypes::Spot, 4),
        (&scene.on_demand_node_group, CapacityTypes::OnDemand, 1),
    ] {
        eks.create_nodegroup()
            .cluster_name(&scene.cluster)
            .nodegroup_name(name)
            .node_role(format!("arn:aws:iam::{ACCOUNT}:role/eks-node"))
            .subnets("subnet-0a1b2c3d")
            .instance_types("m5.large")
            .capacity_type(capacity)
            .scaling_config(
                NodegroupScalingConfig::builder()
                    .min_size(size)
                    .desired_size(size)
                    .max_size(10)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| SandboxError::aws(&format!("create node group {name}"), &e))?;
    }
    let image = ec2
        .describe_images()
        .send()
        .await
        .map_err(|e| SandboxError::aws("describe images", &e))?
        .images()
        .first()
        .and_then(|i| i.image_id().map(str::to_string))
        .ok_or_else(|| SandboxError::Seed("moto has no AMI".into()))?;
    let run = |cluster: String, node_group: String, n: usize| {
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(
                Ec2Tag::builder()
                    .key("eks:cluster-name")
                    .value(cluster)
                    .build(),
            )
            .tags(
                Ec2Tag::builder()
                    .key("eks:nodegroup-name")
                    .value(node_group)
                    .build(),
            )
            .build();
        ec2.run_instances()
            .image_id(&image)
            .instance_type(InstanceType::M5Large)
            .min_count(n as i32)
            .max_count(n as i32)
            .placement(Placement::builder().availability_zone(&az).build())
            .instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .build(),
            )
            .tag_specifications(tags)
            .send()
    };
    let ran = run(scene.cluster.clone(), scene.spot_node_group.clone(), count)
        .await
        .map_err(|e| SandboxError::aws("run spot instances", &e))?;
    scene.instances = ran
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    let foreign = run(format!("someone-else{suffix}"), "spot".into(), 1)
        .await
        .map_err(|e| SandboxError::aws("run a foreign instance", &e))?;
    scene.foreign_instance = foreign
        .instances()
        .first()
        .and_then(|i| i.instance_id().map(str::to_string))
        .unwrap_or_default();
    Ok(scene)
}

/// Seeds the Kubernetes emulator with one node per instance (named as EKS names them) and an
/// on-demand node to move pods to.
pub fn spot_nodes(
    emulator: &crate::kube::KubeEmulator,
    scene: &SpotScene,
) -> Result<Vec<String>, SandboxError> {
    use crate::kube::fixtures::node;
    let mut names = Vec::new();
    for (i, id) in scene.instances.iter().enumerate() {
        let name = format!("ip-10-0-{}-{}.ec2.internal", i / 250, i % 250 + 1);
        emulator
            .create(
                "nodes",
                "",
                node(&name, id, &scene.az, &scene.spot_node_group, "SPOT"),
            )
            .map_err(|e| SandboxError::Seed(e.message))?;
        names.push(name);
    }
    emulator
        .create(
            "nodes",
            "",
            node(
                "ip-10-1-0-1.ec2.internal",
                "i-0ffffffffffffffff",
                &scene.az,
                &scene.on_demand_node_group,
                "ON_DEMAND",
            ),
        )
        .map_err(|e| SandboxError::Seed(e.message))?;
    Ok(names)
}
