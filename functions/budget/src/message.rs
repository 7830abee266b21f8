//! The AWS Budgets notification, which arrives on SNS as plain English text. The parser reads the
//! key lines (`Budget Name:`, `Alert Type:`, …), never the prose, except to tell a daily budget
//! from a monthly one. Anything without the header and the key lines is `Unknown`: it is alerted
//! on and never acted on.

use serde::Serialize;

use crate::money::Money;

/// `ACTUAL` or `FORECASTED` spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertType {
    /// Spend so far.
    Actual,
    /// Spend forecast for the period.
    Forecasted,
}

/// The budget's period, as the prose tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// "per day. Yesterday, …"
    Daily,
    /// "for the current month"
    Monthly,
    /// "for the current quarter"
    Quarterly,
    /// "for the current year"
    Annually,
    /// The prose did not say (the API says it anyway).
    Unspecified,
}

/// A parsed Budgets alert. It is a hint: every alert is confirmed with `DescribeBudget`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetAlert {
    /// The account in the header, when printed.
    pub account: Option<String>,
    /// `Budget Name:` (spaces kept).
    pub budget_name: String,
    /// `Budget Type:` (`Cost`, `Usage`, …).
    pub budget_type: String,
    /// `Budgeted Amount:`.
    pub budgeted: Money,
    /// `Alert Type:`.
    pub alert_type: AlertType,
    /// `Alert Threshold:` in money (even for percentage thresholds).
    pub threshold: Money,
    /// The threshold as a percentage of the budgeted amount.
    pub threshold_percent: Option<f64>,
    /// `ACTUAL Amount:` or `FORECASTED Amount:`.
    pub amount: Money,
    /// The period.
    pub period: Period,
}

/// What a message on the budget topic is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// A Budgets alert.
    Alert(BudgetAlert),
    /// Anything else; `reason` says what was missing.
    Unknown {
        /// Why it was not recognised.
        reason: String,
    },
}

fn unknown(reason: impl Into<String>) -> Message {
    Message::Unknown {
        reason: reason.into(),
    }
}

/// Parses the message body.
pub fn parse(body: &str) -> Message {
    let trimmed = body.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return unknown(
            "a JSON message (a CloudWatch alarm or another service), not a Budgets notification",
        );
    }
    let lines: Vec<&str> = body.lines().map(str::trim).collect();
    if !lines
        .iter()
        .any(|l| l.starts_with("AWS Budget Notification"))
    {
        return unknown("no \"AWS Budget Notification\" header");
    }
    let field = |name: &str| -> Option<&str> {
        lines.iter().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
    };
    let require = |name: &'static str| field(name).filter(|v| !v.is_empty()).ok_or(name);
    let parsed = (|| -> Result<BudgetAlert, String> {
        let missing = |name: &str| format!("no \"{name}:\" line");
        let budget_name = require("Budget Name").map_err(missing)?.to_string();
        let budget_type = require("Budget Type").map_err(missing)?.to_string();
        let budgeted_text = require("Budgeted Amount").map_err(missing)?;
        let budgeted = Money::parse(budgeted_text).ok_or(format!(
            "Budgeted Amount {budgeted_text:?} is not an amount"
        ))?;
        let alert_type = match require("Alert Type").map_err(missing)? {
            "ACTUAL" => AlertType::Actual,
            "FORECASTED" => AlertType::Forecasted,
            other => {
                return Err(format!(
                    "Alert Type {other:?} is neither ACTUAL nor FORECASTED"
                ))
            }
        };
        let threshold_text = require("Alert Threshold").map_err(missing)?;
        let threshold = Money::parse(threshold_text.trim_start_matches(['>', '<', '=', ' ']))
            .ok_or(format!(
                "Alert Threshold {threshold_text:?} is not an amount"
            ))?;
        let amount_line = match alert_type {
            AlertType::Actual => "ACTUAL Amount",
            AlertType::Forecasted => "FORECASTED Amount",
        };
        let amount_text = require(amount_line).map_err(missing)?;
        let amount = Money::parse(amount_text)
            .ok_or(format!("{amount_line} {amount_text:?} is not an amount"))?;
        Ok(BudgetAlert {
            account: account(&lines),
            budget_name,
            budget_type,
            budgeted,
            alert_type,
            threshold,
            threshold_percent: threshold.percent_of(budgeted),
            amount,
            period: period(body),
        })
    })();
    match parsed {
        Ok(alert) => Message::Alert(alert),
        Err(reason) => unknown(reason),
    }
}

fn account(lines: &[&str]) -> Option<String> {
    lines.iter().find_map(|l| {
        let id = l.strip_prefix("AWS Account")?.trim();
        (id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
    })
}

fn period(body: &str) -> Period {
    let prose = body.to_ascii_lowercase();
    if prose.contains("per day") || prose.contains("yesterday") {
        Period::Daily
    } else if prose.contains("current month") {
        Period::Monthly
    } else if prose.contains("current quarter") {
        Period::Quarterly
    } else if prose.contains("current year") {
        Period::Annually
    } else {
        Period::Unspecified
    }
}
