//! The enforcement ladder: which level the confirmed spend calls for, monotonic within a period
//! for alerts, with hysteresis when the scheduled re-evaluation steps down.

use serde::{Deserialize, Serialize};

/// Level thresholds in percent of the budget limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// L1 (notify) when the forecast exceeds this.
    pub l1_forecast: f64,
    /// L2 (scale non-critical node groups to their floor) when the forecast exceeds this.
    pub l2_forecast: f64,
    /// L3 (stop non-production databases) when actual spend exceeds this.
    pub l3_actual: f64,
    /// L4 (loud notice) when actual spend exceeds this.
    pub l4_actual: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            l1_forecast: 90.0,
            l2_forecast: 100.0,
            l3_actual: 85.0,
            l4_actual: 100.0,
        }
    }
}

impl Thresholds {
    /// Parses `L1=90,L2=100,L3=85,L4=100` (any subset; the rest keep their defaults).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut t = Thresholds::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (level, value) = part
                .split_once('=')
                .ok_or(format!("{part:?} is not LEVEL=PERCENT"))?;
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: {value:?} is not a number"))?;
            if !(1.0..=1000.0).contains(&value) {
                return Err(format!("{part:?}: {value} is outside 1..=1000 percent"));
            }
            match level.trim().to_ascii_uppercase().as_str() {
                "L1" => t.l1_forecast = value,
                "L2" => t.l2_forecast = value,
                "L3" => t.l3_actual = value,
                "L4" => t.l4_actual = value,
                other => return Err(format!("{other:?} is not one of L1, L2, L3, L4")),
            }
        }
        Ok(t)
    }
}

/// Who asks for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion {
    /// A Budgets alert: may only escalate.
    Alert,
    /// The scheduled re-evaluation: may escalate or step down (with hysteresis).
    Schedule,
}

/// The highest level the spend calls for, with every threshold lowered by `slack` points.
pub fn level_for(actual_pct: f64, forecast_pct: Option<f64>, t: &Thresholds, slack: f64) -> u8 {
    let forecast = forecast_pct.unwrap_or(0.0);
    if actual_pct > t.l4_actual - slack {
        4
    } else if actual_pct > t.l3_actual - slack {
        3
    } else if forecast > t.l2_forecast - slack {
        2
    } else if forecast > t.l1_forecast - slack {
        1
    } else {
        0
    }
}

/// The level to be at, given the current one. Alerts never step down (Budgets never says
/// "recovered"); the schedule steps down only once spend is `hysteresis` points below a level's
/// threshold, so that a level does not flap around its threshold.
pub fn next_level(
    current: u8,
    actual_pct: f64,
    forecast_pct: Option<f64>,
    t: &Thresholds,
    hysteresis: f64,
    occasion: Occasion,
) -> u8 {
    let computed = level_for(actual_pct, forecast_pct, t, 0.0);
    if computed >= current {
        return computed;
    }
    match occasion {
        Occasion::Alert => current,
        Occasion::Schedule => {
            computed.max(level_for(actual_pct, forecast_pct, t, hysteresis).min(current))
        }
    }
}

/// What a level does, for notifications ("what the next level would do").
pub fn describe(level: u8) -> &'static str {
    match level {
        0 => "nothing",
        1 => "notify with the plan of the next levels",
        2 => "scale node groups tagged non-critical to their floor",
        3 => "stop RDS instances and Aurora clusters tagged non-production",
        _ => "notify loudly: actual spend is over the budget",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        l1_forecast: 90.0,
        l2_forecast: 100.0,
        l3_actual: 85.0,
        l4_actual: 100.0,
    };

    #[test]
    fn each_level_starts_just_past_its_threshold() {
        assert_eq!(level_for(10.0, Some(90.0), &T, 0.0), 0);
        assert_eq!(level_for(10.0, Some(90.1), &T, 0.0), 1);
        assert_eq!(level_for(10.0, Some(100.5), &T, 0.0), 2);
        assert_eq!(level_for(85.5, Some(100.5), &T, 0.0), 3);
        assert_eq!(level_for(85.5, None, &T, 0.0), 3);
        assert_eq!(level_for(101.0, Some(120.0), &T, 0.0), 4);
    }

    #[test]
    fn alerts_only_escalate() {
        assert_eq!(
            next_level(0, 10.0, Some(105.0), &T, 5.0, Occasion::Alert),
            2
        );
        assert_eq!(next_level(3, 10.0, Some(50.0), &T, 5.0, Occasion::Alert), 3);
    }

    #[test]
    fn the_schedule_steps_down_only_past_the_hysteresis() {
        // forecast fell to 97 %: within 5 points of L2's 100 %, L2 holds
        assert_eq!(
            next_level(2, 40.0, Some(97.0), &T, 5.0, Occasion::Schedule),
            2
        );
        // forecast fell to 94 %: L2 released, L1 (90 %) still holds
        assert_eq!(
            next_level(2, 40.0, Some(94.0), &T, 5.0, Occasion::Schedule),
            1
        );
        // a new period: nothing spent, back to 0
        assert_eq!(next_level(3, 0.0, None, &T, 5.0, Occasion::Schedule), 0);
        // the schedule never jumps above the current level because of the slack
        assert_eq!(
            next_level(1, 40.0, Some(96.0), &T, 5.0, Occasion::Schedule),
            1
        );
    }

    #[test]
    fn thresholds_parse_and_name_what_is_wrong() {
        assert_eq!(
            Thresholds::parse("L2=110, l3=80").unwrap(),
            Thresholds {
                l2_forecast: 110.0,
                l3_actual: 80.0,
                ..T
            }
        );
        assert!(Thresholds::parse("L5=3").unwrap_err().contains("L5"));
        assert!(Thresholds::parse("L1=abc").unwrap_err().contains("abc"));
        assert!(Thresholds::parse("L1")
            .unwrap_err()
            .contains("LEVEL=PERCENT"));
    }
}
