//! What an evaluation tells people and CloudWatch: the notification (what changed, what was left
//! as found, what AWS refused, the saving, how to undo, what the next level would do), the outcome's
//! name, and the metrics.

use breakwater::metrics::{Metrics, Unit};
use breakwater::notify::Notification;

use crate::enforce::Outcome;
use crate::{guardrail, ladder};

/// The notification of one evaluation that moved (or held) the level `from` → `to`.
#[allow(clippy::too_many_arguments)]
pub fn notification(
    budget: &str,
    from: u8,
    to: u8,
    why: &str,
    outcome: &Outcome,
    figures: Option<String>,
    dry_run: bool,
    guardrail_roles: &[String],
) -> Notification {
    let dry = if dry_run {
        " (dry run: nothing was changed)"
    } else {
        ""
    };
    let subject = if from == to {
        format!("budget {budget}: level {to} holds{dry}")
    } else {
        format!("budget {budget}: level {from} -> {to}{dry}")
    };
    let mut text = format!("Budget {budget:?}: enforcement level {from} → {to}.\nWhy: {why}.\n");
    if let Some(f) = figures {
        text.push_str(&format!("Spend: {f}.\n"));
    }
    let section = |title: &str, lines: &[String]| {
        if lines.is_empty() {
            String::new()
        } else {
            format!(
                "\n{title}:\n{}\n",
                lines
                    .iter()
                    .map(|l| format!("- {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        }
    };
    text.push_str(&section("What changed", &outcome.changed));
    text.push_str(&section(
        "Changed by someone after enforcement (left as found)",
        &outcome.left_alone,
    ));
    text.push_str(&section(
        "Refused by AWS (left as it was; the rest went on)",
        &outcome.failed,
    ));
    if outcome.saving_per_day_usd > 0.0 {
        text.push_str(&format!(
            "\nEstimated saving: ${:.2} per day (on-demand prices, us-east-1).",
            outcome.saving_per_day_usd
        ));
        if !outcome.unestimated.is_empty() {
            text.push_str(&format!(
                " Not estimated: {}.",
                outcome.unestimated.join(", ")
            ));
        }
        text.push('\n');
    }
    text.push_str(&format!(
            "\nTo undo now: invoke the budget function with {{\"command\": \"restore\", \"budget\": \"{budget}\", \"confirm\": \"{budget}\"}}. Everything is restored at the end of the period anyway.\n"
        ));
    if to < 4 {
        let mut next = ladder::describe(to + 1).to_string();
        if to + 1 == 4 && !guardrail_roles.is_empty() {
            next.push_str(&format!(
                ", and deny new capacity to the roles {} (inline policy {})",
                guardrail_roles.join(", "),
                guardrail::POLICY_NAME
            ));
        }
        text.push_str(&format!("Next level ({}) would: {next}.\n", to + 1));
    }
    Notification::new(subject, text)
        .attribute("function", "budget")
        .attribute("budget", budget)
        .attribute("level", to.to_string())
        .attribute("outcome", outcome_name(dry_run, from, to, outcome))
}

pub fn outcome_name(dry_run: bool, from: u8, to: u8, outcome: &Outcome) -> &'static str {
    if dry_run {
        "dry-run"
    } else if to > from {
        "escalated"
    } else if to < from {
        "restored"
    } else if !outcome.changed.is_empty() || !outcome.left_alone.is_empty() {
        "acted"
    } else {
        "noop"
    }
}

pub fn emit(outcome: &str, level: u8, o: &Outcome, now_ms: u64) {
    let mut m = Metrics::new("budget", outcome);
    m.add("EnforcementLevel", f64::from(level), Unit::None)
        .add("ResourcesChanged", o.changed.len() as f64, Unit::Count)
        .add(
            "HumanChangesLeftAlone",
            o.left_alone.len() as f64,
            Unit::Count,
        )
        .add("ChangesRefused", o.failed.len() as f64, Unit::Count);
    m.emit(now_ms);
}
