//! Detection: signals about the primary, each a small state (firing since when), kept per plan in
//! the state store and combined into a quorum — N of M firing, continuously, for T seconds.
//!
//! Observations carry the time they describe (the alarm's state timestamp, the RDS event's time,
//! the probe's), so a duplicate changes nothing and an older observation that arrives after a newer
//! one is ignored: reordered deliveries are normal.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, SignalPlan};

/// One reading of one signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The signal's name in the plan.
    pub signal: String,
    /// The primary looks down.
    pub firing: bool,
    /// When this became true (ms).
    pub at_ms: u64,
    /// What was seen.
    pub detail: String,
}

/// A signal's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalState {
    /// Firing now.
    pub firing: bool,
    /// Since when (ms).
    pub since_ms: u64,
    /// The newest observation applied (ms).
    pub observed_ms: u64,
    /// A firing that lapses by itself (RDS events), at this time (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// The last thing seen.
    pub detail: String,
}

/// Every signal of one plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    /// By signal name.
    pub signals: BTreeMap<String, SignalState>,
}

impl Board {
    /// Applies an observation; whether it changed anything.
    pub fn apply(&mut self, plan: &Plan, observation: &Observation) -> bool {
        let Some(signal) = plan
            .detection
            .signals
            .iter()
            .find(|s| s.name == observation.signal)
        else {
            return false;
        };
        let expires_ms = (signal.kind == "rds-event" && observation.firing)
            .then(|| observation.at_ms + signal.hold_seconds.unwrap_or(600) * 1000);
        match self.signals.get_mut(&observation.signal) {
            Some(state) if observation.at_ms < state.observed_ms => false,
            Some(state) if state.firing == observation.firing => {
                let changed = state.observed_ms != observation.at_ms
                    || state.expires_ms < expires_ms
                    || state.detail != observation.detail;
                state.observed_ms = observation.at_ms;
                state.expires_ms = state.expires_ms.max(expires_ms);
                state.detail = observation.detail.clone();
                changed
            }
            _ => {
                self.signals.insert(
                    observation.signal.clone(),
                    SignalState {
                        firing: observation.firing,
                        since_ms: observation.at_ms,
                        observed_ms: observation.at_ms,
                        expires_ms,
                        detail: observation.detail.clone(),
                    },
                );
                true
            }
        }
    }

    /// The quorum as of `now_ms`.
    pub fn quorum(&self, plan: &Plan, now_ms: u64) -> Quorum {
        let detection = &plan.detection;
        let mut firing: Vec<(u64, String)> = detection
            .signals
            .iter()
            .filter_map(|s| {
                let state = self.signals.get(&s.name)?;
                let live = state.firing && state.expires_ms.is_none_or(|e| e > now_ms);
                live.then(|| (state.since_ms, s.name.clone()))
            })
            .collect();
        firing.sort();
        // The quorum has held since the N-th signal joined.
        let since_ms = firing
            .get(detection.quorum.saturating_sub(1))
            .map(|(since, _)| *since);
        let held_ms = since_ms.map(|s| now_ms.saturating_sub(s)).unwrap_or(0);
        Quorum {
            needed: detection.quorum,
            of: detection.signals.len(),
            firing: firing.into_iter().map(|(_, n)| n).collect(),
            since_ms,
            met: since_ms.is_some() && held_ms >= detection.window_seconds * 1000,
            held_ms,
            window_ms: detection.window_seconds * 1000,
        }
    }
}

/// The quorum's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quorum {
    /// N.
    pub needed: usize,
    /// M.
    pub of: usize,
    /// The signals firing, oldest first.
    pub firing: Vec<String>,
    /// Since when N have been firing (ms).
    pub since_ms: Option<u64>,
    /// For how long (ms).
    pub held_ms: u64,
    /// T (ms).
    pub window_ms: u64,
    /// N firing for at least T.
    pub met: bool,
}

impl std::fmt::Display for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} signals firing (quorum {}): [{}]",
            self.firing.len(),
            self.of,
            self.needed,
            self.firing.join(", ")
        )?;
        if self.since_ms.is_some() {
            write!(
                f,
                ", held {} s of {} s",
                self.held_ms / 1000,
                self.window_ms / 1000
            )?;
        }
        Ok(())
    }
}

/// The signals an alarm state change feeds.
pub fn from_alarm(plan: &Plan, alarm: &breakwater::events::AlarmFields) -> Vec<Observation> {
    plan.detection
        .signals
        .iter()
        .filter(|s| s.kind == "alarm" && s.alarm.as_deref() == Some(alarm.name.as_str()))
        .map(|s| Observation {
            signal: s.name.clone(),
            firing: alarm.state == "ALARM",
            at_ms: alarm.since_ms,
            detail: format!("alarm {} is {}: {}", alarm.name, alarm.state, alarm.reason),
        })
        .collect()
}

/// The signals an RDS event about the primary feeds (failure and availability categories).
pub fn from_rds_event(plan: &Plan, detail: &serde_json::Value, at_ms: u64) -> Vec<Observation> {
    let source = detail["SourceIdentifier"].as_str().unwrap_or_default();
    let categories: Vec<&str> = detail["EventCategories"]
        .as_array()
        .map(|c| c.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if !categories
        .iter()
        .any(|c| matches!(*c, "failure" | "availability"))
    {
        return Vec::new();
    }
    plan.detection
        .signals
        .iter()
        .filter(|s| s.kind == "rds-event" && s.source.as_deref() == Some(source))
        .map(|s| Observation {
            signal: s.name.clone(),
            firing: true,
            at_ms,
            detail: format!(
                "{} {}: {}",
                detail["EventID"].as_str().unwrap_or("RDS event"),
                source,
                detail["Message"].as_str().unwrap_or_default()
            ),
        })
        .collect()
}

/// The heartbeat signals a scheduled event from the primary region feeds: the primary region's
/// EventBridge delivered it at `at_ms`, so the region is alive then. The heartbeat is the one
/// signal that needs nothing of the primary to fire: its absence is the signal.
pub fn from_heartbeat(plan: &Plan, at_ms: u64) -> Vec<Observation> {
    plan.detection
        .signals
        .iter()
        .filter(|s| s.kind == "heartbeat")
        .map(|s| Observation {
            signal: s.name.clone(),
            firing: false,
            at_ms,
            detail: format!(
                "heartbeat from {} at {}",
                plan.primary_region,
                breakwater::clock::rfc3339(at_ms)
            ),
        })
        .collect()
}

impl Board {
    /// The heartbeats gone quiet by `now_ms`: a heartbeat signal last seen alive more than
    /// `stale_seconds` (180) ago fires, dated when it went stale. One never seen is unknown and
    /// does not fire (a stack just deployed has not heard one yet).
    pub fn stale_heartbeats(&self, plan: &Plan, now_ms: u64) -> Vec<Observation> {
        plan.detection
            .signals
            .iter()
            .filter(|s| s.kind == "heartbeat")
            .filter_map(|s| {
                let state = self.signals.get(&s.name).filter(|st| !st.firing)?;
                let stale_at = state.observed_ms + s.stale_seconds.unwrap_or(180) * 1000;
                (now_ms >= stale_at).then(|| Observation {
                    signal: s.name.clone(),
                    firing: true,
                    at_ms: stale_at,
                    detail: format!(
                        "no heartbeat from {} since {}",
                        plan.primary_region,
                        breakwater::clock::rfc3339(state.observed_ms)
                    ),
                })
            })
            .collect()
    }
}

/// A replica-lag signal's reading, from the lag read in the secondary region (seconds, with the
/// time of the sample): fires above `threshold_seconds`, or at -1 ("replication not running").
/// No sample is no observation (unknown, not a verdict).
pub fn from_replica_lag(signal: &SignalPlan, sample: Option<(f64, u64)>) -> Option<Observation> {
    let (lag, at_ms) = sample?;
    let threshold = signal.threshold_seconds.unwrap_or(u64::MAX) as f64;
    let firing = lag < 0.0 || lag > threshold;
    Some(Observation {
        signal: signal.name.clone(),
        firing,
        at_ms,
        detail: if lag < 0.0 {
            "replica lag -1: replication is not running".into()
        } else {
            format!("replica lag {lag} s (fires above {threshold} s)")
        },
    })
}

/// The signals of `kind` in the plan.
pub fn of_kind<'p>(plan: &'p Plan, kind: &str) -> Vec<&'p SignalPlan> {
    plan.detection
        .signals
        .iter()
        .filter(|s| s.kind == kind)
        .collect()
}

/// The probe signals of the plan.
pub fn probes(plan: &Plan) -> Vec<&SignalPlan> {
    plan.detection
        .signals
        .iter()
        .filter(|s| s.kind == "probe")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{load, tests::example};

    fn plan() -> Plan {
        load(example().to_string().as_bytes()).unwrap().plan
    }

    fn obs(signal: &str, firing: bool, at_s: u64) -> Observation {
        Observation {
            signal: signal.into(),
            firing,
            at_ms: at_s * 1000,
            detail: String::new(),
        }
    }

    #[test]
    fn a_quorum_must_hold_for_the_window() {
        let plan = plan();
        let mut board = Board::default();
        assert!(board.apply(&plan, &obs("5xx", true, 100)));
        assert!(!board.quorum(&plan, 1_000_000).met, "one signal of two");
        board.apply(&plan, &obs("probe", true, 130));
        let q = board.quorum(&plan, 200_000);
        assert!(!q.met && q.since_ms == Some(130_000), "{q}");
        assert!(board.quorum(&plan, 250_000).met);
        // The alarm clears inside the window: the quorum is lost.
        board.apply(&plan, &obs("5xx", false, 160));
        assert!(!board.quorum(&plan, 400_000).met);
        // A late copy of the older ALARM changes nothing.
        assert!(!board.apply(&plan, &obs("5xx", true, 100)));
        assert!(!board.quorum(&plan, 400_000).met);
        // Firing again restarts its clock.
        board.apply(&plan, &obs("5xx", true, 300));
        assert!(!board.quorum(&plan, 400_000).met);
        assert!(board.quorum(&plan, 420_000).met);
    }

    fn detecting_from_the_healthy_side() -> Plan {
        let mut p = example();
        p["detection"] = serde_json::json!({"quorum": 2, "window_seconds": 60,
            "cooldown_seconds": 3600, "signals": [
                {"name": "probe", "kind": "probe", "url": "https://east.example.com/health"},
                {"name": "heartbeat", "kind": "heartbeat", "stale_seconds": 180},
                {"name": "lag", "kind": "replica-lag", "threshold_seconds": 300}]});
        load(p.to_string().as_bytes()).unwrap().plan
    }

    #[test]
    fn a_heartbeat_that_stops_fires_when_it_goes_stale_and_a_new_one_clears_it() {
        // GIVEN heartbeats from the primary every minute
        let plan = detecting_from_the_healthy_side();
        let mut board = Board::default();
        assert!(
            board.stale_heartbeats(&plan, 1_000_000).is_empty(),
            "never heard: unknown"
        );
        for at in [100, 160, 220] {
            for o in from_heartbeat(&plan, at * 1000) {
                board.apply(&plan, &o);
            }
        }
        // WHEN they stop: nothing until 180 s after the last one
        assert!(board.stale_heartbeats(&plan, 399_000).is_empty());
        let stale = board.stale_heartbeats(&plan, 400_000);
        // THEN it fires, dated when it went stale, and once only
        assert_eq!(stale.len(), 1);
        assert_eq!((stale[0].firing, stale[0].at_ms), (true, 400_000));
        assert!(board.apply(&plan, &stale[0]));
        assert!(board.stale_heartbeats(&plan, 500_000).is_empty());
        // AND a late copy of an old heartbeat changes nothing; a new one clears it
        assert!(!board.apply(&plan, &from_heartbeat(&plan, 220_000)[0]));
        assert!(board.apply(&plan, &from_heartbeat(&plan, 460_000)[0]));
        assert!(!board.signals["heartbeat"].firing);
    }

    #[test]
    fn replica_lag_fires_above_its_threshold_or_at_minus_one_and_no_data_is_no_verdict() {
        let plan = detecting_from_the_healthy_side();
        let signal = of_kind(&plan, "replica-lag")[0];
        assert_eq!(from_replica_lag(signal, None), None);
        assert!(!from_replica_lag(signal, Some((12.0, 5))).unwrap().firing);
        assert!(from_replica_lag(signal, Some((301.0, 5))).unwrap().firing);
        let stopped = from_replica_lag(signal, Some((-1.0, 5))).unwrap();
        assert!(stopped.firing && stopped.detail.contains("not running"));
    }

    #[test]
    fn a_duplicate_changes_nothing_and_unknown_signals_are_ignored() {
        let plan = plan();
        let mut board = Board::default();
        assert!(board.apply(&plan, &obs("5xx", true, 100)));
        assert!(!board.apply(&plan, &obs("5xx", true, 100)));
        assert!(!board.apply(&plan, &obs("nobody", true, 100)));
        assert_eq!(board.signals.len(), 1);
    }
}
