//! The failover Lambda: wiring only. RDS, EKS and CloudWatch clients (the metric switches' in
//! the secondary region) are built for the plan's regions, ARC clients for the cluster's
//! endpoints and the standby cluster's Kubernetes client on first use (nothing is called at
//! init).

use std::sync::Arc;

use breakwater::aws::arc::ArcRoutingControls;
use breakwater::aws::cloudwatch::{CloudWatchAlarms, CloudWatchMetrics, CloudWatchSwitches};
use breakwater::aws::eks::EksNodeGroups;
use breakwater::aws::rds::RdsDatabases;
use breakwater::aws::route53::Route53Dns;
use breakwater::aws::Aws;
use breakwater::config::Env;
use breakwater::kube::capacity::KubeCapacity;
use breakwater::kube::KubeClients;
use breakwater::lambda::{init_failed, serve};
use breakwater::probe::HttpProbe;
use failover::engine::Ports;
use failover::{FailoverFunction, FailoverSettings};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    breakwater::logging::init();
    let env = Env::from_process();
    let toolkit = breakwater::Toolkit::from_env(&env)
        .await
        .map_err(init_failed)?;
    let settings = FailoverSettings::from_env(&env).map_err(|e| init_failed(e.into()))?;
    // The regions of the estate: this copy runs in one of them; the plan names both.
    let (primary, secondary) = settings.regions.clone();
    let aws = &toolkit.aws;
    // The standby cluster's API server (its endpoint from DescribeCluster, its token signed for
    // the secondary region, where the cluster is).
    let kube = KubeClients::new(env.optional("BREAKWATER_KUBE_ENDPOINT")).map_err(init_failed)?;
    let capacity = KubeCapacity::new(
        Arc::new(kube),
        Arc::new(Aws::from_config(aws.config_in(&secondary))),
        toolkit.store.clock().clone(),
    );
    let ports = Ports {
        secondary_db: RdsDatabases::new(aws.rds_in(&secondary)),
        primary_db: RdsDatabases::new(aws.rds_in(&primary)),
        nodes: EksNodeGroups::new(aws.eks_in(&secondary)),
        dns: Route53Dns::new(aws.route53()),
        switches: ArcRoutingControls::new(aws.config()),
        // The metric switches' alarms live in the secondary region, whichever copy runs.
        metric_switches: CloudWatchSwitches::new(aws.cloudwatch_in(&secondary)),
        metrics: CloudWatchMetrics::new(aws.cloudwatch_in(&secondary)),
        primary_metrics: CloudWatchMetrics::new(aws.cloudwatch_in(&primary)),
        capacity,
        probe: HttpProbe,
    };
    // Alarm signals are alarms about the primary, in the primary region.
    let alarms = CloudWatchAlarms::new(aws.cloudwatch_in(&primary));
    let function = FailoverFunction {
        toolkit,
        ports,
        alarms,
        settings,
    };
    serve("failover", &function.toolkit, |event, request_id| {
        let function = &function;
        async move { function.handle(event, &request_id).await }
    })
    .await
}
