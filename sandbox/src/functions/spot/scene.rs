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

/// An ELBv2 target group (HTTP :80) in `vpc` whose targets are `kind` (`instance` or `ip`), with
/// `targets` (id, port override) registered and its `deregistration_delay.timeout_seconds`; its
/// ARN.
pub async fn target_group(
    config: &SdkConfig,
    name: &str,
    vpc: &str,
    kind: &str,
    targets: &[(&str, i32)],
    delay_s: u32,
) -> Result<String, SandboxError> {
    use aws_sdk_elasticloadbalancingv2::types::{
        ProtocolEnum, TargetDescription, TargetGroupAttribute, TargetTypeEnum,
    };
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(config);
    let group = elb
        .create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id(vpc)
        .target_type(TargetTypeEnum::from(kind))
        .send()
        .await
        .map_err(SandboxError::estate)?;
    let arn = group
        .target_groups()
        .first()
        .and_then(|g| g.target_group_arn())
        .ok_or_else(|| SandboxError::Seed(format!("target group {name} has no ARN")))?
        .to_string();
    elb.modify_target_group_attributes()
        .target_group_arn(&arn)
        .attributes(
            TargetGroupAttribute::builder()
                .key("deregistration_delay.timeout_seconds")
                .value(delay_s.to_string())
                .build(),
        )
        .send()
        .await
        .map_err(SandboxError::estate)?;
    let mut register = elb.register_targets().target_group_arn(&arn);
    for (id, port) in targets {
        register = register.targets(TargetDescription::builder().id(*id).port(*port).build());
    }
    register.send().await.map_err(SandboxError::estate)?;
    Ok(arn)
}

/// The group's targets as ELB lists them (registered and draining), `id:port state`, sorted:
/// the judge's read-back.
pub async fn targets_listed(config: &SdkConfig, arn: &str) -> Result<Vec<String>, SandboxError> {
    let health = aws_sdk_elasticloadbalancingv2::Client::new(config)
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(SandboxError::estate)?;
    let mut out: Vec<String> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|d| {
            let t = d.target()?;
            let state = d.target_health().and_then(|h| h.state())?;
            Some(format!("{}:{} {}", t.id()?, t.port()?, state.as_str()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The instance's VPC and primary private address, as EC2 describes them.
pub async fn instance_network(
    config: &SdkConfig,
    instance: &str,
) -> Result<(String, String), SandboxError> {
    let described = aws_sdk_ec2::Client::new(config)
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .map_err(SandboxError::estate)?;
    let ec2 = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .ok_or_else(|| SandboxError::Seed(format!("{instance} is not in EC2")))?;
    match (ec2.vpc_id(), ec2.private_ip_address()) {
        (Some(vpc), Some(ip)) => Ok((vpc.to_string(), ip.to_string())),
        _ => Err(SandboxError::Seed(format!(
            "{instance} has no VPC or private address"
        ))),
    }
}
