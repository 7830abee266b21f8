//! A fake of [`Dns`]: Route 53 records in memory. An `UPSERT` batch is visible
//! to reads at once (as `ListResourceRecordSets` shows it) and its change stays `PENDING` for a
//! set number of `GetChange` calls before `INSYNC`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::calls::Calls;
use crate::aws::route53::fqdn;
use crate::error::{Error, Result};
use crate::ports::{Changed, Dns, DnsRecord};

#[derive(Debug, Default)]
struct State {
    zones: BTreeMap<String, BTreeMap<(String, String), DnsRecord>>,
    changes: BTreeMap<String, usize>,
    pending_polls: usize,
    requests: u64,
}

/// [`Dns`] in memory.
#[derive(Debug, Default)]
pub struct FakeDns {
    state: Mutex<State>,
    /// The calls made, by operation (`record`, `upsert`, `change_status`), and failures to
    /// answer with.
    pub calls: Calls,
}

/// The reads of [`FakeDns`].
pub const READS: &[&str] = &["record", "change_status"];

impl FakeDns {
    /// No zones; changes are `INSYNC` at the first `GetChange`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every change made from now on reads `PENDING` for `polls` calls of `change_status`.
    pub fn changes_pending_for(self, polls: usize) -> Self {
        self.state.lock().unwrap().pending_polls = polls;
        self
    }

    /// A hosted zone with `records`.
    pub fn with_zone(self, zone: &str, records: &[DnsRecord]) -> Self {
        let mut state = self.state.lock().unwrap();
        let stored = state.zones.entry(zone.into()).or_default();
        for r in records {
            let r = DnsRecord {
                name: fqdn(&r.name),
                ..r.clone()
            };
            stored.insert((r.name.clone(), r.kind.clone()), r);
        }
        drop(state);
        self
    }

    /// The record as stored now, without counting a call.
    pub fn peek_record(&self, zone: &str, name: &str, kind: &str) -> Option<DnsRecord> {
        let state = self.state.lock().unwrap();
        state
            .zones
            .get(zone)?
            .get(&(fqdn(name), kind.to_string()))
            .cloned()
    }

    fn request(state: &mut State) -> Option<String> {
        state.requests += 1;
        Some(format!("fake-route53-{}", state.requests))
    }
}

impl Dns for FakeDns {
    async fn record(&self, zone: &str, name: &str, kind: &str) -> Result<Option<DnsRecord>> {
        self.calls
            .record("record", &format!("{zone} {name} {kind}"))?;
        let state = self.state.lock().unwrap();
        let records = state.zones.get(zone).ok_or_else(|| {
            Error::NotFound(format!(
                "read record {name} {kind} of zone {zone}: NoSuchHostedZone"
            ))
        })?;
        Ok(records.get(&(fqdn(name), kind.to_string())).cloned())
    }

    async fn upsert(&self, zone: &str, records: &[DnsRecord], _comment: &str) -> Result<Changed> {
        let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
        self.calls
            .record("upsert", &format!("{zone} {}", names.join(",")))?;
        let state = &mut *self.state.lock().unwrap();
        let stored = state.zones.get_mut(zone).ok_or_else(|| {
            Error::NotFound(format!("upsert records of zone {zone}: NoSuchHostedZone"))
        })?;
        for r in records {
            let r = DnsRecord {
                name: fqdn(&r.name),
                ..r.clone()
            };
            stored.insert((r.name.clone(), r.kind.clone()), r);
        }
        let request_id = Self::request(state);
        let change = format!("/change/C{}", state.changes.len() + 1);
        state.changes.insert(change.clone(), state.pending_polls);
        Ok(Changed {
            request_id,
            started: Some(change),
        })
    }

    async fn change_status(&self, change_id: &str) -> Result<String> {
        self.calls.record("change_status", change_id)?;
        let mut state = self.state.lock().unwrap();
        let left = state
            .changes
            .get_mut(change_id)
            .ok_or_else(|| Error::NotFound(format!("get change {change_id}: NoSuchChange")))?;
        Ok(if *left == 0 {
            "INSYNC".into()
        } else {
            *left -= 1;
            "PENDING".into()
        })
    }
}
