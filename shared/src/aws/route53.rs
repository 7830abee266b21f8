//! The Route 53 adapter: record changes. Route 53 is a global service
//! whose control plane is in us-east-1; the client is signed there whatever the home region.

use aws_sdk_route53::operation::RequestId;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};

use crate::error::{Error, Result};
use crate::ports::{Changed, Dns, DnsRecord};

/// [`Dns`] over the Route 53 API.
#[derive(Debug, Clone)]
pub struct Route53Dns {
    client: aws_sdk_route53::Client,
}

impl Route53Dns {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_route53::Client) -> Self {
        Route53Dns { client }
    }
}

/// A record name as Route 53 returns it: lower case, with the trailing dot.
pub fn fqdn(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

fn invalid(what: &str, err: impl std::fmt::Display) -> Error {
    Error::InvalidEvent(format!("{what}: {err}"))
}

impl Dns for Route53Dns {
    async fn record(&self, zone: &str, name: &str, kind: &str) -> Result<Option<DnsRecord>> {
        let name = fqdn(name);
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .start_record_name(&name)
            .start_record_type(RrType::from(kind))
            .max_items(1)
            .send()
            .await
            .map_err(|e| {
                Error::from_sdk(&format!("read record {name} {kind} of zone {zone}"), &e)
            })?;
        Ok(out
            .resource_record_sets()
            .iter()
            .find(|r| fqdn(&r.name) == name && r.r#type.as_str() == kind)
            .map(|r| DnsRecord {
                name: fqdn(&r.name),
                kind: r.r#type.as_str().to_string(),
                ttl: r.ttl.unwrap_or_default(),
                value: r
                    .resource_records()
                    .first()
                    .map(|v| v.value.clone())
                    .unwrap_or_default(),
            }))
    }

    async fn upsert(&self, zone: &str, records: &[DnsRecord], comment: &str) -> Result<Changed> {
        let mut batch = ChangeBatch::builder().comment(comment);
        for record in records {
            let value = ResourceRecord::builder()
                .value(&record.value)
                .build()
                .map_err(|e| invalid("record value", e))?;
            let set = ResourceRecordSet::builder()
                .name(fqdn(&record.name))
                .r#type(RrType::from(record.kind.as_str()))
                .ttl(record.ttl)
                .resource_records(value)
                .build()
                .map_err(|e| invalid("record set", e))?;
            batch = batch.changes(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(set)
                    .build()
                    .map_err(|e| invalid("change", e))?,
            );
        }
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch.build().map_err(|e| invalid("change batch", e))?)
            .send()
            .await
            .map_err(|e| {
                let busy = e
                    .as_service_error()
                    .is_some_and(|s| s.is_prior_request_not_complete());
                Error::from_sdk_busy(
                    &format!("upsert records of zone {zone}"),
                    &e,
                    busy,
                    "PriorRequestNotComplete",
                )
            })?;
        Ok(Changed {
            request_id: out.request_id().map(str::to_string),
            started: out.change_info.map(|c| c.id),
        })
    }

    async fn change_status(&self, change_id: &str) -> Result<String> {
        let out = self
            .client
            .get_change()
            .id(change_id)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&format!("get change {change_id}"), &e))?;
        Ok(out
            .change_info
            .map(|c| c.status.as_str().to_string())
            .unwrap_or_default())
    }
}
