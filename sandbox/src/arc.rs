//! A Route 53 ARC cluster for tests and scenes: its five regional endpoints as loopback listeners
//! in front of moto (or of the fault proxy in front of moto), where `sandbox/moto_arc.py` answers
//! the cluster data plane (`GetRoutingControlState`, `ListRoutingControls`,
//! `UpdateRoutingControlState`, `UpdateRoutingControlStates`) and keeps the routing controls and
//! safety rules; plus the judge's seeding and read-back.
//!
//! "A cluster provides a set of five redundant Regional endpoints against which you can run API
//! calls to get or update the state of routing controls" (Routing Control (Recovery Cluster) API
//! Reference, Welcome). The CloudFormation `AWS::Route53RecoveryControl::Cluster` attribute
//! `ClusterEndpoints` lists them as `{Endpoint, Region}`, the URL ending in `/v1`
//! (`https://host-aaaaaa.us-east-1.example.com/v1`, list-clusters example, Recovery Control
//! Configuration API Reference); the sandbox's are `http://127.0.0.1:PORT/v1`.
//!
//! Each endpoint is a [`FaultProxy`] (the sandbox's one forwarding server, on the shared loopback
//! server loop), so an endpoint can be set down (its connections close unanswered, as an
//! unreachable endpoint looks to the SDK), can be given any other fault rule, and counts the
//! requests it saw. The cluster registers its endpoints' `host:port` with moto, which then scopes
//! what each endpoint sees to this cluster and refuses a signature scoped to another region than
//! the endpoint's, as AWS does.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::proxy::{Call, Fault, FaultProxy, Rule};
use crate::SandboxError;

/// The regions of an ARC cluster's five endpoints.
pub const REGIONS: [&str; 5] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "ap-northeast-1",
    "ap-southeast-2",
];

/// A routing control's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlState {
    /// Traffic flows to the cell.
    On,
    /// Traffic does not flow.
    Off,
}

impl ControlState {
    /// `On` or `Off`, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlState::On => "On",
            ControlState::Off => "Off",
        }
    }

    fn parse(s: &str) -> Result<Self, SandboxError> {
        match s {
            "On" => Ok(ControlState::On),
            "Off" => Ok(ControlState::Off),
            other => Err(SandboxError::Seed(format!("ARC: unknown state {other:?}"))),
        }
    }
}

/// How a safety rule's controls are evaluated (`RuleConfig.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleType {
    /// At least `threshold` of the controls are On.
    AtLeast(u32),
    /// All of them are On.
    And,
    /// At least one is On.
    Or,
}

/// A safety rule's `RuleConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleConfig {
    /// The type (and the threshold of `ATLEAST`).
    pub kind: RuleType,
    /// "Logical negation of the rule."
    pub inverted: bool,
}

impl RuleConfig {
    /// The rule configuration, not inverted.
    pub fn new(kind: RuleType) -> Self {
        RuleConfig {
            kind,
            inverted: false,
        }
    }

    /// The same, inverted.
    pub fn inverted(mut self) -> Self {
        self.inverted = true;
        self
    }

    fn to_json(self) -> Value {
        let (kind, threshold) = match self.kind {
            RuleType::AtLeast(n) => ("ATLEAST", n),
            RuleType::And => ("AND", 0),
            RuleType::Or => ("OR", 1),
        };
        json!({"Type": kind, "Threshold": threshold, "Inverted": self.inverted})
    }
}

/// An error an endpoint can be made to answer with ([`ArcCluster::inject`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArcFault {
    /// 429 `ThrottlingException`.
    Throttling,
    /// 503 `EndpointTemporarilyUnavailableException` ("Try another cluster endpoint").
    EndpointTemporarilyUnavailable,
    /// 500 `InternalServerException`.
    InternalServer,
}

impl ArcFault {
    fn code(self) -> &'static str {
        match self {
            ArcFault::Throttling => "ThrottlingException",
            ArcFault::EndpointTemporarilyUnavailable => "EndpointTemporarilyUnavailableException",
            ArcFault::InternalServer => "InternalServerException",
        }
    }
}

/// One regional endpoint.
#[derive(Debug)]
struct Endpoint {
    region: String,
    proxy: FaultProxy,
}

/// A running ARC cluster: five endpoints, its ARN in moto, and the admin client.
#[derive(Debug)]
pub struct ArcCluster {
    admin: String,
    arn: String,
    endpoints: Vec<Endpoint>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl ArcCluster {
    /// Starts the five endpoints forwarding to `upstream` (moto, or the fault proxy in front of
    /// it) and registers the cluster with the moto server at `moto` (its admin path).
    pub async fn start(moto: &str, upstream: &str) -> Result<Self, SandboxError> {
        let mut endpoints = Vec::new();
        for (i, region) in REGIONS.iter().enumerate() {
            endpoints.push(Endpoint {
                region: region.to_string(),
                proxy: FaultProxy::start(upstream, 0x41_52_43 + i as u64).await?,
            });
        }
        let mut cluster = ArcCluster {
            admin: moto.trim_end_matches('/').to_string(),
            arn: String::new(),
            endpoints,
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        let hosts: serde_json::Map<String, Value> = cluster
            .endpoints
            .iter()
            .map(|e| {
                let host = e.proxy.endpoint().trim_start_matches("http://").to_string();
                (host, Value::String(e.region.clone()))
            })
            .collect();
        let answer = cluster
            .post(
                "cluster",
                json!({"Name": "breakwater-sandbox", "Endpoints": hosts}),
            )
            .await?;
        cluster.arn = text(&answer, "ClusterArn")?;
        Ok(cluster)
    }

    /// The cluster's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The five endpoints as `(url, region)`, in [`REGIONS`] order, the URL ending in `/v1` as
    /// ARC's do.
    pub fn endpoints(&self) -> Vec<(String, String)> {
        self.endpoints
            .iter()
            .map(|e| (format!("{}/v1", e.proxy.endpoint()), e.region.clone()))
            .collect()
    }

    /// The URL of the endpoint in `region`.
    pub fn endpoint(&self, region: &str) -> Option<String> {
        self.find(region)
            .map(|e| format!("{}/v1", e.proxy.endpoint()))
    }

    /// An SDK client for `region`'s endpoint, signed for that region with the sandbox's admin
    /// key, making one attempt per call (as the failover adapter does: the next endpoint is its
    /// retry).
    pub async fn client(
        &self,
        region: &str,
    ) -> Result<aws_sdk_route53recoverycluster::Client, SandboxError> {
        let url = self
            .endpoint(region)
            .ok_or_else(|| SandboxError::Seed(format!("ARC: no endpoint in {region}")))?;
        let base = breakwater::aws::Aws::for_endpoint(&url, region).await;
        let config = aws_sdk_route53recoverycluster::config::Builder::from(base.config())
            .retry_config(aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(1))
            .build();
        Ok(aws_sdk_route53recoverycluster::Client::from_conf(config))
    }

    fn find(&self, region: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.region == region)
    }

    /// The proxy serving `region`'s endpoint, for other fault rules than [`Self::set_down`].
    pub fn proxy(&self, region: &str) -> Option<&FaultProxy> {
        self.find(region).map(|e| &e.proxy)
    }

    /// Sets `region`'s endpoint down (every connection closes unanswered) or up again (which
    /// also removes any other rule given to its proxy).
    pub fn set_down(&self, region: &str, down: bool) {
        if let Some(endpoint) = self.find(region) {
            endpoint.proxy.clear_rules();
            if down {
                endpoint.proxy.add_rule(Rule::always(Fault::Drop));
            }
        }
    }

    /// How many requests `region`'s endpoint saw (answered or not).
    pub fn requests(&self, region: &str) -> usize {
        self.find(region).map_or(0, |e| e.proxy.calls().len())
    }

    /// The requests `region`'s endpoint saw.
    pub fn calls(&self, region: &str) -> Vec<Call> {
        self.find(region)
            .map(|e| e.proxy.calls())
            .unwrap_or_default()
    }

    /// Creates a control panel on this cluster; its ARN.
    pub async fn create_control_panel(&self, name: &str) -> Result<String, SandboxError> {
        let answer = self
            .post(
                "control-panel",
                json!({"ClusterArn": self.arn, "Name": name}),
            )
            .await?;
        text(&answer, "ControlPanelArn")
    }

    /// Creates a routing control in `panel` in `state`; its ARN.
    pub async fn create_routing_control(
        &self,
        panel: &str,
        name: &str,
        state: ControlState,
    ) -> Result<String, SandboxError> {
        let answer = self
            .post(
                "routing-control",
                json!({"ControlPanelArn": panel, "Name": name, "State": state.as_str()}),
            )
            .await?;
        text(&answer, "RoutingControlArn")
    }

    /// Creates an assertion rule over `asserted`; its ARN.
    pub async fn create_assertion_rule(
        &self,
        panel: &str,
        name: &str,
        asserted: &[&str],
        config: RuleConfig,
    ) -> Result<String, SandboxError> {
        let answer = self
            .post(
                "assertion-rule",
                json!({
                    "ControlPanelArn": panel,
                    "Name": name,
                    "AssertedControls": asserted,
                    "RuleConfig": config.to_json(),
                }),
            )
            .await?;
        text(&answer, "SafetyRuleArn")
    }

    /// Creates a gating rule: `targets` change only while `gating` satisfy `config`; its ARN.
    pub async fn create_gating_rule(
        &self,
        panel: &str,
        name: &str,
        gating: &[&str],
        targets: &[&str],
        config: RuleConfig,
    ) -> Result<String, SandboxError> {
        let answer = self
            .post(
                "gating-rule",
                json!({
                    "ControlPanelArn": panel,
                    "Name": name,
                    "GatingControls": gating,
                    "TargetControls": targets,
                    "RuleConfig": config.to_json(),
                }),
            )
            .await?;
        text(&answer, "SafetyRuleArn")
    }

    /// A routing control's state, read back by the judge (not through an endpoint).
    pub async fn state(&self, arn: &str) -> Result<ControlState, SandboxError> {
        let answer = self
            .post("state", json!({"RoutingControlArn": arn}))
            .await?;
        ControlState::parse(&text(&answer, "RoutingControlState")?)
    }

    /// Sets a routing control's state as the judge (no safety rule applies).
    pub async fn set_state(&self, arn: &str, state: ControlState) -> Result<(), SandboxError> {
        self.post(
            "set-state",
            json!({"RoutingControlArn": arn, "State": state.as_str()}),
        )
        .await
        .map(|_| ())
    }

    /// Makes `region`'s endpoint answer the next `count` calls (all, when `None`) with `fault`.
    pub async fn inject(
        &self,
        region: &str,
        fault: ArcFault,
        count: Option<u32>,
    ) -> Result<(), SandboxError> {
        self.post(
            "fault",
            json!({"Region": region, "Error": fault.code(), "Count": count}),
        )
        .await
        .map(|_| ())
    }

    /// Removes the fault injected into `region`'s endpoint.
    pub async fn clear_fault(&self, region: &str) -> Result<(), SandboxError> {
        self.post("fault", json!({"Region": region, "Clear": true}))
            .await
            .map(|_| ())
    }

    async fn post(&self, verb: &str, body: Value) -> Result<Value, SandboxError> {
        let request = hyper::Request::post(format!("{}/_breakwater/arc/{verb}", self.admin))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| SandboxError::Seed(format!("ARC {verb}: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| SandboxError::Seed(format!("ARC {verb}: {e}")))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| SandboxError::Seed(format!("ARC {verb}: {e}")))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(SandboxError::Seed(format!(
                "ARC {verb}: HTTP {status}: {value}"
            )));
        }
        Ok(value)
    }
}

fn text(answer: &Value, field: &str) -> Result<String, SandboxError> {
    answer[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| SandboxError::Seed(format!("ARC: no {field} in {answer}")))
}
