//! The period's report: the ladder as it stood, spend against its thresholds over the period,
//! the levels climbed and released — written to `reports/budget/<budget>-<period>` at every
//! evaluation, so that `breakwater report --function budget <budget>-<period>` is the period's
//! story so far.

use breakwater::clock::{parse_rfc3339, rfc3339};
use breakwater::report::picture::{BudgetLadder, LevelStep, Reading, Threshold};
use breakwater::report::{Phase, Picture, Report};

use crate::ladder::{describe, Thresholds};
use crate::ledger::EnforcementState;

/// The report's execution id: the budget and its period.
pub fn report_id(budget: &str, period: &str) -> String {
    format!("{budget}-{period}")
}

/// The first millisecond of a period, and the first after it, from its key as
/// [`crate::period_key`] writes it (`2026-11-22`, `2026-11`, `2026-Q4`, `2026`; UTC, as AWS
/// Budgets counts periods); `None` for anything else.
pub fn period_bounds(period: &str) -> Option<(u64, u64)> {
    let at = |y: i64, m: u32, d: u32| parse_rfc3339(&format!("{y:04}-{m:02}-{d:02}T00:00:00Z"));
    let next_month = |y: i64, m: u32| if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let number = |s: &str| s.parse::<u32>().ok();
    let parts: Vec<&str> = period.split('-').collect();
    let year: i64 = parts.first()?.parse().ok()?;
    match parts[1..] {
        [] => Some((at(year, 1, 1)?, at(year + 1, 1, 1)?)),
        [q] if q.starts_with('Q') => {
            let first = (number(&q[1..]).filter(|q| (1..=4).contains(q))? - 1) * 3 + 1;
            let (ny, nm) = if first == 10 {
                (year + 1, 1)
            } else {
                (year, first + 3)
            };
            Some((at(year, first, 1)?, at(ny, nm, 1)?))
        }
        [m] => {
            let m = number(m).filter(|m| (1..=12).contains(m))?;
            let (ny, nm) = next_month(year, m);
            Some((at(year, m, 1)?, at(ny, nm, 1)?))
        }
        [m, d] => {
            let start = at(year, number(m)?, number(d)?)?;
            Some((start, start + 86_400_000))
        }
        _ => None,
    }
}

/// The period's report from its enforcement state.
pub fn period_report(state: &EnforcementState, thresholds: &Thresholds) -> Report {
    // A key the function wrote always parses; were it not to, the readings' span stands in.
    let (start_ms, end_ms) = period_bounds(&state.period).unwrap_or_else(|| {
        let at = |r: Option<&Reading>| r.map_or(0, |r| r.at_ms);
        (at(state.readings.first()), at(state.readings.last()) + 1)
    });
    let limit = state.limit.as_deref().unwrap_or("unknown");
    // This period's changes: those recorded with it (a rollover's releases too, made after it
    // ended), or for records older than that field, those made within it.
    let steps: Vec<_> = state
        .changes
        .iter()
        .filter(|c| match &c.period {
            Some(p) => *p == state.period,
            None => (start_ms..end_ms).contains(&c.at_ms),
        })
        .collect();
    let mut report = Report::new(
        "budget",
        &report_id(&state.budget, &state.period),
        &format!(
            "Budget {}: the enforcement ladder in {}",
            state.budget, state.period
        ),
        &format!("L{}", state.level),
    );
    // A phase per level held, from each change to the next (the last one to the last reading).
    let last_at = state
        .readings
        .last()
        .map(|r| r.at_ms)
        .into_iter()
        .chain(steps.last().map(|c| c.at_ms))
        .max();
    for (i, c) in steps.iter().enumerate() {
        if c.to == 0 {
            continue;
        }
        let until = steps
            .get(i + 1)
            .map(|n| n.at_ms)
            .or(last_at)
            .unwrap_or(c.at_ms);
        report.phases.push(Phase {
            name: format!("L{} held", c.to),
            started_at_ms: c.at_ms,
            finished_at_ms: until.max(c.at_ms),
            detail: format!("{}; {}", describe(c.to), c.reason),
        });
    }
    if let Some(r) = state.readings.last() {
        report.facts.insert("limit".into(), limit.to_string());
        report
            .facts
            .insert("actual_percent".into(), format!("{:.1}", r.actual_pct));
        report.facts.insert(
            "forecast_percent".into(),
            r.forecast_pct
                .map(|f| format!("{f:.1}"))
                .unwrap_or_else(|| "n/a".into()),
        );
        report
            .facts
            .insert("last_evaluated".into(), rfc3339(r.at_ms));
    }
    report.facts.insert("level".into(), state.level.to_string());
    report.facts.insert(
        "changes_in_the_ledger".into(),
        state.ledger.len().to_string(),
    );
    for c in &steps {
        report.notes.push(format!(
            "{}: L{} → L{}: {}",
            rfc3339(c.at_ms),
            c.from,
            c.to,
            c.reason
        ));
    }
    let t = thresholds;
    report.picture = Some(Picture::Ladder(BudgetLadder {
        period: state.period.clone(),
        start_ms,
        end_ms,
        limit: limit.to_string(),
        thresholds: vec![
            threshold("L1 notify", t.l1_forecast, true),
            threshold("L2 node groups to floor", t.l2_forecast, true),
            threshold("L3 stop non-prod databases", t.l3_actual, false),
            threshold("L4 loud notice", t.l4_actual, false),
        ],
        readings: state.readings.clone(),
        steps: steps
            .iter()
            .map(|c| LevelStep {
                at_ms: c.at_ms,
                from: c.from,
                to: c.to,
            })
            .collect(),
    }));
    report
}

fn threshold(label: &str, percent: f64, forecast: bool) -> Threshold {
    Threshold {
        label: label.into(),
        percent,
        forecast,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_bounded_in_utc_as_budgets_counts_them() {
        let day = |s: &str| parse_rfc3339(&format!("{s}T00:00:00Z")).unwrap();
        let t = day("2026-11-22") + 75_916_000;
        let bounds = |unit: &str| period_bounds(&crate::period_key(unit, t)).unwrap();
        assert_eq!(bounds("MONTHLY"), (day("2026-11-01"), day("2026-12-01")));
        assert_eq!(bounds("DAILY"), (day("2026-11-22"), day("2026-11-23")));
        assert_eq!(bounds("QUARTERLY"), (day("2026-10-01"), day("2027-01-01")));
        assert_eq!(bounds("ANNUALLY"), (day("2026-01-01"), day("2027-01-01")));
        assert_eq!(
            period_bounds("2026-12"),
            Some((day("2026-12-01"), day("2027-01-01")))
        );
        assert_eq!(
            period_bounds("2027-Q1"),
            Some((day("2027-01-01"), day("2027-04-01")))
        );
        for bad in ["", "2026-13", "2026-Q5", "nov", "2026-11-22-1"] {
            assert_eq!(period_bounds(bad), None, "{bad}");
        }
    }
}
