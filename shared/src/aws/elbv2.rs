//! The ELBv2 adapter: where an instance (or one of its addresses) is a target, and its
//! deregistration.
//!
//! DescribeTargetGroups, DescribeTargetGroupAttributes and DescribeTargetHealth take no
//! resource-level permissions (Service Authorization Reference, Elastic Load Balancing V2: their
//! resource types are empty); DeregisterTargets is granted on `targetgroup/*/*` of the region.

use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::ports::{Registration, TargetGroups};

/// How many target groups are read at once (DescribeTargetHealth is one call per group).
const CONCURRENT_GROUPS: usize = 8;

/// ELB's deregistration delay when a target group does not say otherwise (Application Load
/// Balancers User Guide, "Deregistration delay": "The default value is 300 seconds").
const DEFAULT_DELAY_S: u64 = 300;

/// A target as DescribeTargetHealth lists it.
#[derive(Debug)]
struct Listed {
    id: String,
    port: Option<i32>,
    state: String,
}

/// [`TargetGroups`] over the ELBv2 API of one region.
#[derive(Debug, Clone)]
pub struct ElbTargetGroups {
    client: aws_sdk_elasticloadbalancingv2::Client,
}

impl ElbTargetGroups {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_elasticloadbalancingv2::Client) -> Self {
        ElbTargetGroups { client }
    }

    /// `vpc`'s target groups whose targets are instances or IP addresses: (ARN, name).
    async fn groups_in(&self, vpc: &str) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_target_groups()
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| Error::from_sdk("describe target groups", &e))?;
            for group in page.target_groups() {
                let kind = group
                    .target_type()
                    .map(|t| t.as_str())
                    .unwrap_or("instance");
                if group.vpc_id() == Some(vpc) && matches!(kind, "instance" | "ip") {
                    if let Some(arn) = group.target_group_arn() {
                        let name = group.target_group_name().unwrap_or(arn);
                        out.push((arn.to_string(), name.to_string()));
                    }
                }
            }
            match page.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// The group's targets, registered and draining; none for a group deleted meanwhile
    /// (`TargetGroupNotFound`: the load balancer controller deletes groups as services go).
    async fn targets_of(&self, arn: &str) -> Result<Vec<Listed>> {
        let health = match self
            .client
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
        {
            Ok(h) => h,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_target_group_not_found_exception()) =>
            {
                return Ok(Vec::new())
            }
            Err(e) => {
                return Err(Error::from_sdk(
                    &format!("describe target health of {arn}"),
                    &e,
                ))
            }
        };
        Ok(health
            .target_health_descriptions()
            .iter()
            .filter_map(|d| {
                let target = d.target()?;
                let state = d
                    .target_health()
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
                Some(Listed {
                    id: target.id()?.to_string(),
                    port: target.port(),
                    state,
                })
            })
            .collect())
    }

    /// The group's `deregistration_delay.timeout_seconds`.
    async fn delay_of(&self, arn: &str) -> Result<u64> {
        let attributes = self
            .client
            .describe_target_group_attributes()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&format!("describe attributes of {arn}"), &e))?;
        Ok(attributes
            .attributes()
            .iter()
            .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
            .and_then(|a| a.value())
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_DELAY_S))
    }
}

impl TargetGroups for ElbTargetGroups {
    async fn registrations(&self, vpc: &str, ids: &[String]) -> Result<Vec<Registration>> {
        let groups = self.groups_in(vpc).await?;
        let count = groups.len();
        // One group that cannot be read does not keep the node in the others: it is skipped
        // with a warning, unless none could be read.
        let found: Vec<Result<Vec<Registration>>> = stream::iter(groups)
            .map(|(arn, name)| async move {
                let mine: Vec<_> = self
                    .targets_of(&arn)
                    .await?
                    .into_iter()
                    .filter(|t| ids.contains(&t.id))
                    .collect();
                if mine.is_empty() {
                    return Ok(Vec::new());
                }
                let delay_s = self.delay_of(&arn).await?;
                Ok(mine
                    .into_iter()
                    .map(|t| Registration {
                        target_group_arn: arn.clone(),
                        target_group: name.clone(),
                        target_id: t.id,
                        port: t.port,
                        delay_s,
                    })
                    .collect())
            })
            .buffer_unordered(CONCURRENT_GROUPS)
            .collect()
            .await;
        let mut all = Vec::new();
        let mut errors = Vec::new();
        for r in found {
            match r {
                Ok(mut regs) => all.append(&mut regs),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            if errors.len() == count {
                return Err(errors.remove(0));
            }
            for e in &errors {
                tracing::warn!(error = %e, "a target group could not be read; the others are drained");
            }
        }
        all.sort_by(|a, b| (&a.target_group, &a.target_id).cmp(&(&b.target_group, &b.target_id)));
        Ok(all)
    }

    async fn deregister(&self, registrations: &[Registration]) -> Result<()> {
        let mut failed = Vec::new();
        for arn in groups_of(registrations) {
            let targets: Vec<_> = registrations
                .iter()
                .filter(|r| r.target_group_arn == arn)
                .map(|r| {
                    aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                        .id(&r.target_id)
                        .set_port(r.port)
                        .build()
                })
                .collect::<Vec<_>>();
            if let Err(e) = self
                .client
                .deregister_targets()
                .target_group_arn(&arn)
                .set_targets(Some(targets))
                .send()
                .await
            {
                failed.push(
                    Error::from_sdk(&format!("deregister targets from {arn}"), &e).to_string(),
                );
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::Aws(failed.join("; ")))
        }
    }

    async fn listed(&self, registrations: &[Registration]) -> Result<Vec<(Registration, String)>> {
        let states: Vec<(String, Vec<Listed>)> = stream::iter(groups_of(registrations))
            .map(|arn| async move {
                let targets = self.targets_of(&arn).await?;
                Ok::<_, Error>((arn, targets))
            })
            .buffer_unordered(CONCURRENT_GROUPS)
            .try_collect()
            .await?;
        Ok(registrations
            .iter()
            .filter_map(|r| {
                let (_, targets) = states.iter().find(|(arn, _)| *arn == r.target_group_arn)?;
                targets
                    .iter()
                    .find(|t| t.id == r.target_id && (r.port.is_none() || t.port == r.port))
                    .map(|t| (r.clone(), t.state.clone()))
            })
            .collect())
    }
}

/// The target groups of `registrations`, each once.
fn groups_of(registrations: &[Registration]) -> Vec<String> {
    let mut groups: Vec<String> = registrations
        .iter()
        .map(|r| r.target_group_arn.clone())
        .collect();
    groups.sort();
    groups.dedup();
    groups
}
