//! The plan's detection section: the signals, the quorum, the window, maintenance windows; and
//! their checks.

use std::collections::BTreeSet;

use breakwater::clock::parse_rfc3339;
use serde::{Deserialize, Serialize};

use super::{field, PlanError};

/// Detection: N of M signals for T seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// N.
    pub quorum: usize,
    /// T.
    pub window_seconds: u64,
    /// No automatic failover within this long after the last execution began.
    pub cooldown_seconds: u64,
    /// The M signals.
    pub signals: Vec<SignalPlan>,
    /// Windows in which automatic triggers are suppressed.
    #[serde(default)]
    pub maintenance: Vec<Maintenance>,
}

/// One signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalPlan {
    /// Its name in records and reports.
    pub name: String,
    /// `alarm`, `probe`, `rds-event`, `heartbeat` or `replica-lag`.
    pub kind: String,
    /// alarm: the CloudWatch alarm's name.
    #[serde(default)]
    pub alarm: Option<String>,
    /// probe: the primary's health URL.
    #[serde(default)]
    pub url: Option<String>,
    /// probe: timeout in milliseconds (default 2000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// rds-event: the primary's `SourceIdentifier`.
    #[serde(default)]
    pub source: Option<String>,
    /// rds-event: how long one event counts as firing (default 600 s).
    #[serde(default)]
    pub hold_seconds: Option<u64>,
    /// heartbeat: how long without a heartbeat from the primary region fires it (default 180 s).
    #[serde(default)]
    pub stale_seconds: Option<u64>,
    /// replica-lag: the lag of the replica, read in the secondary region, above which it fires
    /// (seconds; a lag of -1, replication not running, fires too).
    #[serde(default)]
    pub threshold_seconds: Option<u64>,
    /// Corroborating only (a Route 53 health-check alarm: its metric exists only in
    /// us-east-1): it counts towards the quorum, but the quorum must be reachable without it.
    #[serde(default)]
    pub corroborating: bool,
}

/// A maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
}

impl Detection {
    pub(super) fn validate(&self) -> Result<(), PlanError> {
        let mut names = BTreeSet::new();
        for (i, signal) in self.signals.iter().enumerate() {
            let at = |f: &str| format!("detection.signals[{i}].{f}");
            if signal.name.is_empty() || !names.insert(&signal.name) {
                return Err(field(&at("name"), "must be present and unique"));
            }
            let need = |v: &Option<String>, f: &str| {
                if v.as_deref().is_some_and(|s| !s.is_empty()) {
                    Ok(())
                } else {
                    Err(field(
                        &at(f),
                        format!("is required for kind {}", signal.kind),
                    ))
                }
            };
            match signal.kind.as_str() {
                "alarm" => need(&signal.alarm, "alarm")?,
                "probe" => {
                    need(&signal.url, "url")?;
                    let url = signal.url.as_deref().unwrap_or_default();
                    if !(url.starts_with("https://") || url.starts_with("http://")) {
                        return Err(field(&at("url"), "must be an http(s) URL"));
                    }
                }
                "rds-event" => need(&signal.source, "source")?,
                "heartbeat" => {
                    if signal.stale_seconds.is_some_and(|s| s < 120) {
                        // The heartbeat is a 1-minute schedule: one late delivery must not fire.
                        return Err(field(&at("stale_seconds"), "at least 120"));
                    }
                }
                "replica-lag" => {
                    if signal.threshold_seconds.is_none_or(|t| t == 0) {
                        return Err(field(
                            &at("threshold_seconds"),
                            "is required (seconds, > 0)",
                        ));
                    }
                }
                other => {
                    return Err(field(
                        &at("kind"),
                        format!("{other:?}: alarm, probe, rds-event, heartbeat or replica-lag"),
                    ))
                }
            }
        }
        let independent = self.signals.iter().filter(|s| !s.corroborating).count();
        if self.quorum == 0 || self.quorum > independent {
            return Err(field(
                "detection.quorum",
                format!(
                    "{} must be between 1 and the {independent} signals that are not corroborating-only",
                    self.quorum
                ),
            ));
        }
        for (i, window) in self.maintenance.iter().enumerate() {
            let start = parse_rfc3339(&window.start)
                .ok_or_else(|| field(&format!("detection.maintenance[{i}].start"), "RFC 3339"))?;
            let end = parse_rfc3339(&window.end)
                .ok_or_else(|| field(&format!("detection.maintenance[{i}].end"), "RFC 3339"))?;
            if end <= start {
                return Err(field(
                    &format!("detection.maintenance[{i}].end"),
                    "must follow start",
                ));
            }
        }
        Ok(())
    }

    /// The maintenance window containing `now_ms`, if any.
    pub fn maintenance_at(&self, now_ms: u64) -> Option<&Maintenance> {
        self.maintenance.iter().find(|w| {
            matches!(
                (parse_rfc3339(&w.start), parse_rfc3339(&w.end)),
                (Some(s), Some(e)) if s <= now_ms && now_ms < e
            )
        })
    }
}
