//! The estate `make up` keeps running for an operator: the two seeded regions in moto, the
//! failover scene (a primary database with its drill copy tagged `breakwater:drill=true`, the
//! standby cluster's API server whose nodes follow its node group, the ARC cluster, the Route 53
//! record, the plan in the secondary's state bucket, the replica lag RDS publishes every
//! minute), and the Lambda API ([`crate::lambda_api`]) with the failover function deployed in
//! the secondary region, as the template deploys it: what `breakwater drill` and `aws lambda
//! invoke` call.
//!
//! The other four functions' scenes are there too, so that `make invoke` runs each of them with
//! the events in `events/` ([`LocalEstate::function_env`]): the spot cluster (two spot nodes in a
//! Kubernetes API server of their own, the instances in moto), the rollback scene (`shop/web` at
//! revision 2 in its cluster, the alarms `web-p95-latency` and `web-error-rate` tagged with it),
//! the budget scene (`platform monthly`, its node groups and databases) and a bucket opted in to
//! tiering (`shop-logs`).
//!
//! AWS's latencies are seconds here ([`LATENCIES`]) so that a drill is followed live in about
//! ten seconds; on AWS its phases take minutes (the plan's `expected_seconds`).

use std::path::Path;
use std::time::Duration;

use aws_config::SdkConfig;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use crate::failover_scene::{
    failover_scene, put_lag, put_plan, tag_drill_copy, FailoverScene, Latencies,
};
use crate::function_env::FunctionEnv;
use crate::functions::budget::scene::{budget_scene, BudgetScene};
use crate::functions::rollback::scene::{roll_out, rollback_scene};
use crate::functions::spot::scene::{spot_nodes, spot_scene, SpotScene};
use crate::functions::tiering::scene::tag_bucket;
use crate::kube::KubeEmulator;
use crate::lambda_api::{Deployment, LambdaApi, OnFailure};
use crate::loopback::Loopback;
use crate::seed::{self, regional, Estate, PRIMARY, SECONDARY};
use crate::SandboxError;

/// The name the failover function is deployed under (the stack output `FailoverFunctionName`).
pub const FAILOVER_FUNCTION: &str = "breakwater-failover";

/// AWS's latencies in the local estate (seconds).
pub const LATENCIES: Latencies = Latencies {
    promote: 6.0,
    nodes: 4.0,
    dns: 2.0,
    boot: 3.0,
    pod_ready: 2.0,
};

/// The running estate (everything stops when it is dropped).
pub struct LocalEstate {
    /// moto's endpoint.
    pub moto: String,
    /// The seeded regions.
    pub estate: Estate,
    /// The failover scene.
    pub failover: FailoverScene,
    /// The Lambda API.
    pub lambda: LambdaApi,
    /// The failover function's name in the Lambda API.
    pub failover_function: String,
    /// The failover function's failure destination (an SQS queue in the secondary region).
    pub failover_failures: String,
    /// The spot scene (primary region) and its cluster's API server.
    pub spot: (SpotScene, KubeEmulator),
    /// The rollback scene's cluster API server (`prod`: `shop/web`).
    pub rollback: KubeEmulator,
    /// The budget scene (primary region).
    pub budget: BudgetScene,
    /// A bucket tagged `breakwater:tiering=on` (primary region).
    pub tiered: String,
    /// The primary's health endpoint the plan probes (answers 200: the primary is up).
    health: Loopback,
    /// RDS publishing the replica's lag every 30 s.
    lag: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalEstate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEstate")
            .field("moto", &self.moto)
            .field("lambda", &self.lambda)
            .finish()
    }
}

impl Drop for LocalEstate {
    fn drop(&mut self) {
        self.lag.abort();
        self.health.task.abort();
    }
}

impl LocalEstate {
    /// Seeds moto at `config`'s endpoint (names end in `suffix`) and deploys the failover
    /// binary found in `bins`; the functions' log lines go to `log`.
    pub async fn start(
        config: &SdkConfig,
        bins: &Path,
        suffix: &str,
        log: Option<std::path::PathBuf>,
    ) -> Result<Self, SandboxError> {
        let moto = config
            .endpoint_url()
            .ok_or_else(|| SandboxError::Seed("the SDK config names no endpoint".into()))?
            .to_string();
        let estate = seed::seed(config, PRIMARY, SECONDARY, suffix).await?;
        let health = Loopback::serve(|_req| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        })
        .await?;
        let probe = format!("{}/health", health.endpoint());
        let failover = failover_scene(config, &estate, suffix, LATENCIES, &probe).await?;
        tag_drill_copy(config, &estate, &failover).await?;
        put_plan(
            config,
            SECONDARY,
            &estate.secondary.state_bucket,
            &failover.plan,
        )
        .await?;
        let now = breakwater::clock::Clock::now_ms(&breakwater::clock::SystemClock);
        for back_s in [240, 180, 120, 60, 20] {
            put_lag(
                config,
                SECONDARY,
                &failover.replica,
                2.0,
                now - back_s * 1000,
            )
            .await?;
        }
        let lag = {
            let (config, replica) = (config.clone(), failover.replica.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    let now = breakwater::clock::Clock::now_ms(&breakwater::clock::SystemClock);
                    let _ = put_lag(&config, SECONDARY, &replica, 2.0, now).await;
                }
            })
        };
        let sqs = aws_sdk_sqs::Client::new(&regional(config, SECONDARY));
        let failover_failures =
            seed::create_queue(&sqs, &format!("breakwater-failover-failures{suffix}")).await?;
        let env = failover_env(&moto, &estate, &failover);
        // As the template: EventInvokeConfig MaximumRetryAttempts 2, OnFailure SQS, Timeout 900,
        // ReservedConcurrentExecutions 5.
        let failover_function = format!("{FAILOVER_FUNCTION}{suffix}");
        let deployment = Deployment {
            name: failover_function.clone(),
            region: SECONDARY.into(),
            binary: bins.join("failover"),
            env,
            max_retries: 2,
            retry_waits: vec![Duration::from_secs(1), Duration::from_secs(2)],
            on_failure: OnFailure::Destination(failover_failures.clone()),
            timeout: Duration::from_secs(900),
            concurrency: 5,
        };
        let lambda = LambdaApi::start(vec![deployment], sqs, log).await?;
        let spot = spot_scene(config, PRIMARY, suffix, 2).await?;
        let spot_kube = KubeEmulator::start(now, 1.0).await?;
        spot_nodes(&spot_kube, &spot)?;
        // web:1 ran for two hours, web:2 went out five minutes ago.
        const MINUTE: u64 = 60_000;
        let rollback = KubeEmulator::start(now - 120 * MINUTE, 1.0).await?;
        rollback_scene(
            &regional(config, PRIMARY),
            PRIMARY,
            suffix,
            "prod",
            &rollback,
        )
        .await?;
        rollback.advance(115 * MINUTE);
        roll_out(&rollback, "shop", "web", "web:2")?;
        rollback.advance(5 * MINUTE);
        let budget = budget_scene(config, PRIMARY, suffix).await?;
        // A team's bucket opted in to tiering.
        let tiered = format!("shop-logs{suffix}");
        let s3 = seed::s3(config, PRIMARY);
        s3.create_bucket()
            .bucket(&tiered)
            .send()
            .await
            .map_err(|e| SandboxError::aws(&format!("create bucket {tiered}"), &e))?;
        tag_bucket(&s3, &tiered, &[("breakwater:tiering", "on")]).await?;
        Ok(LocalEstate {
            tiered,
            spot: (spot, spot_kube),
            rollback,
            budget,
            moto,
            estate,
            failover,
            lambda,
            failover_function,
            failover_failures,
            health,
            lag,
        })
    }

    /// The environment and region `function` runs with in this estate (`make invoke`): the
    /// template's settings for the scene's resources.
    pub fn function_env(&self, function: &str) -> Option<(String, Vec<(String, String)>)> {
        let primary = || FunctionEnv::new(&self.moto, &self.estate.primary);
        let (spot, spot_kube) = &self.spot;
        let env = match function {
            "spot" => primary()
                .with("BREAKWATER_SPOT_CLUSTERS", spot.cluster.clone())
                .with("BREAKWATER_KUBE_ENDPOINT", spot_kube.endpoint())
                .with(
                    "BREAKWATER_SPOT_ON_DEMAND",
                    format!(
                        "{}/{}={}",
                        spot.cluster, spot.spot_node_group, spot.on_demand_node_group
                    ),
                ),
            "rollback" => primary()
                .with("BREAKWATER_ROLLBACK_CLUSTERS", "prod")
                .with("BREAKWATER_KUBE_ENDPOINT", self.rollback.endpoint())
                .with(
                    "BREAKWATER_ROLLBACK_SLACK_SIGNING_SECRET",
                    "sandbox-slack-signing-secret",
                ),
            "budget" => primary()
                .with("BREAKWATER_ACCOUNT_ID", self.estate.account.clone())
                .with("BREAKWATER_BUDGET_NAMES", self.budget.budget.clone())
                .with("BREAKWATER_BUDGET_CLUSTERS", self.budget.cluster.clone()),
            "tiering" => primary().with("BREAKWATER_ACCOUNT_ID", self.estate.account.clone()),
            "failover" => {
                return Some((
                    SECONDARY.to_string(),
                    failover_env(&self.moto, &self.estate, &self.failover),
                ))
            }
            _ => return None,
        };
        Some((PRIMARY.to_string(), env.into_vars()))
    }

    /// The example ids of `events/` and the estate's own: the files name an instance moto cannot
    /// create (EC2 chooses instance ids), so `make invoke` swaps it for the first spot instance.
    pub fn example_ids(&self) -> Vec<(String, String)> {
        self.spot
            .0
            .instances
            .first()
            .map(|id| vec![("i-1234567890abcdef0".to_string(), id.clone())])
            .unwrap_or_default()
    }

    /// An operator's environment in `region` (the AWS CLI's and `breakwater`'s): the endpoints,
    /// moto's credentials, the region's state bucket, and in the secondary the failover
    /// function's name and failure queue.
    pub fn operator_env(&self, region: &str) -> Vec<(String, String)> {
        let estate = if region == SECONDARY {
            &self.estate.secondary
        } else {
            &self.estate.primary
        };
        let mut env: Vec<(String, String)> = vec![
            ("AWS_ENDPOINT_URL".into(), self.moto.clone()),
            ("AWS_ENDPOINT_URL_LAMBDA".into(), self.lambda.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), region.into()),
            (
                "BREAKWATER_STATE_BUCKET".into(),
                estate.state_bucket.clone(),
            ),
        ];
        if region == SECONDARY {
            env.push((
                "BREAKWATER_FAILOVER_FUNCTION".into(),
                self.failover_function.clone(),
            ));
            env.push((
                "BREAKWATER_FAILOVER_FAILURE_QUEUE".into(),
                self.failover_failures.clone(),
            ));
        }
        env
    }
}

/// `event` (an example of `events/`) with its example ids swapped for the estate's `pairs`
/// ([`LocalEstate::example_ids`]), and the swaps made.
pub fn with_estate_ids(event: &str, pairs: &[(String, String)]) -> (String, Vec<String>) {
    let (mut text, mut said) = (event.to_string(), Vec::new());
    for (example, ours) in pairs {
        if text.contains(example.as_str()) {
            said.push(format!(
                "the event's example {example} is the sandbox's {ours}"
            ));
            text = text.replace(example.as_str(), ours);
        }
    }
    (text, said)
}

/// The failover function's environment in the secondary region (the template's wait; a poll of
/// half a second, AWS's latencies being seconds here).
fn failover_env(moto: &str, estate: &Estate, scene: &FailoverScene) -> Vec<(String, String)> {
    FunctionEnv::new(moto, &estate.secondary)
        .with("BREAKWATER_PRIMARY_REGION", PRIMARY)
        .with("BREAKWATER_SECONDARY_REGION", SECONDARY)
        .with("BREAKWATER_FAILOVER_POLL_MS", "500")
        .with("BREAKWATER_FAILOVER_WAIT_SECONDS", "780")
        .with("BREAKWATER_KUBE_ENDPOINT", scene.kube.endpoint())
        .into_vars()
}
