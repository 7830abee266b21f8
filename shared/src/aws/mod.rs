//! One place that builds AWS SDK clients from one `SdkConfig`, lazily, with a client per region
//! on demand. It honours `AWS_ENDPOINT_URL` (and the service-specific variants) through aws-config.

pub mod arc;
pub mod autoscaling;
pub mod buckets;
pub mod budgets;
pub mod cloudwatch;
pub mod ec2;
pub mod eks;
pub mod elbv2;
pub mod errors;
pub mod eventbridge;
pub mod iam;
pub mod lambda_invoke;
pub mod objects;
pub mod rds;
pub mod route53;
pub mod secrets;
pub mod sns;

pub use errors::{describe_sdk_error, http_status};

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The HTTPS client every SDK client shares: rustls with ring (smaller and faster to build than
/// the default aws-lc stack).
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Builds the HTTPS client on the first AWS call instead of at init: building it reads and
/// parses the system's CA bundle (milliseconds), which an invocation that never calls AWS (a
/// malformed event, a dry-run decision) should not pay for.
#[derive(Debug, Default)]
struct LazyHttpsClient(OnceLock<SharedHttpClient>);

impl HttpClient for LazyHttpsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0
            .get_or_init(https_client)
            .http_connector(settings, components)
    }
}

fn lazy_https_client() -> SharedHttpClient {
    SharedHttpClient::new(LazyHttpsClient::default())
}

/// Lazily-built SDK clients over one configuration.
///
/// Building a client is cheap but not free; nothing is built at init that an invocation may not
/// need. S3 uses path-style addressing whenever an endpoint override is set (a local emulator or
/// a private endpoint), because virtual-hosted names do not resolve there.
#[derive(Debug)]
pub struct Aws {
    config: SdkConfig,
    s3: OnceLock<aws_sdk_s3::Client>,
    sns: OnceLock<aws_sdk_sns::Client>,
    events: OnceLock<aws_sdk_eventbridge::Client>,
    eks: OnceLock<aws_sdk_eks::Client>,
    rds: OnceLock<aws_sdk_rds::Client>,
    budgets: OnceLock<aws_sdk_budgets::Client>,
    iam: OnceLock<aws_sdk_iam::Client>,
    route53: OnceLock<aws_sdk_route53::Client>,
    regional: Mutex<HashMap<String, SdkConfig>>,
}

impl Aws {
    /// Loads the configuration the way Lambda provides it: credentials, `AWS_REGION` and
    /// `AWS_ENDPOINT_URL` from the environment.
    pub async fn from_env(region: &str) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .http_client(lazy_https_client())
            .load()
            .await;
        Self::from_config(config)
    }

    /// The configuration an operator's command uses, as the AWS CLI builds it: the named profile
    /// (else `AWS_PROFILE`, else `default`), the region given (else `AWS_REGION`, else the
    /// profile's), and `AWS_ENDPOINT_URL` when it is set (the sandbox).
    pub async fn for_operator(region: Option<&str>, profile: Option<&str>) -> Self {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).http_client(lazy_https_client());
        if let Some(profile) = profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = region {
            loader = loader.region(Region::new(region.to_string()));
        }
        Self::from_config(loader.load().await)
    }

    /// A configuration pointed at one endpoint with fixed dummy credentials: the sandbox.
    pub async fn for_endpoint(endpoint: &str, region: &str) -> Self {
        let credentials = aws_credential_types::Credentials::from_keys("testing", "testing", None);
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(credentials)
            .http_client(lazy_https_client())
            .load()
            .await;
        Self::from_config(config)
    }

    /// Wraps an existing configuration.
    pub fn from_config(config: SdkConfig) -> Self {
        Aws {
            config,
            s3: OnceLock::new(),
            sns: OnceLock::new(),
            events: OnceLock::new(),
            eks: OnceLock::new(),
            rds: OnceLock::new(),
            budgets: OnceLock::new(),
            iam: OnceLock::new(),
            route53: OnceLock::new(),
            regional: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration of the home region.
    pub fn config(&self) -> &SdkConfig {
        &self.config
    }

    /// The home region's name.
    pub fn region(&self) -> &str {
        self.config
            .region()
            .map(|r| r.as_ref())
            .unwrap_or("us-east-1")
    }

    /// The same configuration in another region (for cross-region work), cached per region.
    pub fn config_in(&self, region: &str) -> SdkConfig {
        if region == self.region() {
            return self.config.clone();
        }
        let mut regional = self
            .regional
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        regional
            .entry(region.to_string())
            .or_insert_with(|| {
                self.config
                    .to_builder()
                    .region(Region::new(region.to_string()))
                    .build()
            })
            .clone()
    }

    /// The S3 client of the home region.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.s3.get_or_init(|| s3_client(&self.config)).clone()
    }

    /// An S3 client in `region`.
    pub fn s3_in(&self, region: &str) -> aws_sdk_s3::Client {
        if region == self.region() {
            return self.s3();
        }
        s3_client(&self.config_in(region))
    }

    /// The EventBridge client of the home region.
    pub fn events(&self) -> aws_sdk_eventbridge::Client {
        self.events
            .get_or_init(|| aws_sdk_eventbridge::Client::new(&self.config))
            .clone()
    }

    /// The SNS client of the home region.
    pub fn sns(&self) -> aws_sdk_sns::Client {
        self.sns
            .get_or_init(|| aws_sdk_sns::Client::new(&self.config))
            .clone()
    }

    /// An SNS client in `region`.
    pub fn sns_in(&self, region: &str) -> aws_sdk_sns::Client {
        if region == self.region() {
            return self.sns();
        }
        aws_sdk_sns::Client::new(&self.config_in(region))
    }
}

impl Aws {
    /// The EKS client of the home region.
    pub fn eks(&self) -> aws_sdk_eks::Client {
        self.eks
            .get_or_init(|| aws_sdk_eks::Client::new(&self.config))
            .clone()
    }

    /// The EC2 client of the home region.
    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.config)
    }

    /// The Amazon EC2 Auto Scaling client of the home region.
    pub fn autoscaling(&self) -> aws_sdk_autoscaling::Client {
        aws_sdk_autoscaling::Client::new(&self.config)
    }

    /// The Elastic Load Balancing (v2) client of the home region.
    pub fn elbv2(&self) -> aws_sdk_elasticloadbalancingv2::Client {
        aws_sdk_elasticloadbalancingv2::Client::new(&self.config)
    }

    /// The RDS client of the home region.
    pub fn rds(&self) -> aws_sdk_rds::Client {
        self.rds
            .get_or_init(|| aws_sdk_rds::Client::new(&self.config))
            .clone()
    }

    /// The CloudWatch client of the home region.
    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.config)
    }

    /// The Budgets client (a global service, signed in us-east-1 whatever the home region).
    pub fn budgets(&self) -> aws_sdk_budgets::Client {
        self.budgets
            .get_or_init(|| aws_sdk_budgets::Client::new(&self.global_config()))
            .clone()
    }

    /// The IAM client (a global service, signed in us-east-1 whatever the home region).
    pub fn iam(&self) -> aws_sdk_iam::Client {
        self.iam
            .get_or_init(|| aws_sdk_iam::Client::new(&self.global_config()))
            .clone()
    }

    /// The Route 53 client (its control plane is in us-east-1 whatever the home region).
    pub fn route53(&self) -> aws_sdk_route53::Client {
        self.route53
            .get_or_init(|| aws_sdk_route53::Client::new(&self.global_config()))
            .clone()
    }

    /// An RDS client in `region`.
    pub fn rds_in(&self, region: &str) -> aws_sdk_rds::Client {
        if region == self.region() {
            return self.rds();
        }
        aws_sdk_rds::Client::new(&self.config_in(region))
    }

    /// An EKS client in `region`.
    pub fn eks_in(&self, region: &str) -> aws_sdk_eks::Client {
        if region == self.region() {
            return self.eks();
        }
        aws_sdk_eks::Client::new(&self.config_in(region))
    }

    /// A CloudWatch client in `region`.
    pub fn cloudwatch_in(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.config_in(region))
    }

    fn global_config(&self) -> SdkConfig {
        self.config
            .to_builder()
            .region(Region::new("us-east-1"))
            .build()
    }
}

fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clients_in_other_regions_keep_the_endpoint_override() {
        let aws = Aws::for_endpoint("http://127.0.0.1:9", "us-east-1").await;
        let west = aws.config_in("us-west-2");
        assert_eq!(west.region().unwrap().as_ref(), "us-west-2");
        assert_eq!(west.endpoint_url(), Some("http://127.0.0.1:9"));
        assert_eq!(aws.region(), "us-east-1");
        assert_eq!(
            aws.s3_in("us-west-2").config().region().unwrap().as_ref(),
            "us-west-2"
        );
    }
}
