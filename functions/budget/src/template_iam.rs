//! The budget role's IAM conditions in `template.yaml` must say the eligibility rule of
//! [`crate::targets`]: these tests read the template and fail when the two drift apart.
//!
//! The template uses CloudFormation's short tags (`!Sub`, `!If`), which a plain YAML reader
//! refuses, and the workspace has no YAML crate; the statements of a SAM `Policies` block have one
//! regular shape, so they are read line by line, and anything unexpected fails the test.

use std::collections::BTreeSet;

use crate::targets::{TagRule, DATABASE_RULE, NODE_GROUP_RULE, PRODUCTION};

/// One IAM statement of the budget function's policy.
#[derive(Debug, Default, Clone, PartialEq)]
struct Statement {
    sid: String,
    effect: String,
    actions: Vec<String>,
    /// (operator, condition key, values)
    conditions: Vec<(String, String, Vec<String>)>,
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').trim_matches('\'').to_string()
}

fn list(value: &str) -> Vec<String> {
    let v = value.trim();
    match v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(inner) => inner.split(',').map(unquote).collect(),
        None => vec![unquote(v)],
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The statements of the `Policies` of the resource `BudgetFunction`.
fn budget_statements(template: &str) -> Vec<Statement> {
    let lines: Vec<&str> = template.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "  BudgetFunction:")
        .expect("template.yaml has no BudgetFunction resource");
    let end = lines[start + 1..]
        .iter()
        .position(|l| indent(l) == 2 && !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map_or(lines.len(), |i| start + 1 + i);
    let block = &lines[start..end];
    let mut statements: Vec<Statement> = Vec::new();
    let mut i = 0;
    while i < block.len() {
        let line = block[i].trim_start();
        let Some(sid) = line.strip_prefix("- Sid:") else {
            i += 1;
            continue;
        };
        // Everything deeper than the "- " of this statement belongs to it.
        let base = indent(block[i]);
        let mut s = Statement {
            sid: unquote(sid),
            ..Statement::default()
        };
        i += 1;
        while i < block.len() && (indent(block[i]) > base || block[i].trim().is_empty()) {
            let l = block[i].trim();
            if l.starts_with('#') {
                i += 1;
                continue;
            }
            if let Some(e) = l.strip_prefix("Effect:") {
                s.effect = unquote(e);
            } else if let Some(a) = l.strip_prefix("Action:") {
                if a.trim().is_empty() {
                    let depth = indent(block[i]);
                    while i + 1 < block.len() && indent(block[i + 1]) > depth {
                        i += 1;
                        s.actions
                            .push(unquote(block[i].trim().trim_start_matches("- ")));
                    }
                } else {
                    s.actions = list(a);
                }
            } else if l == "Condition:" {
                let depth = indent(block[i]);
                let mut operator = String::new();
                while i + 1 < block.len() && indent(block[i + 1]) > depth {
                    i += 1;
                    let c = block[i].trim();
                    if c.starts_with('#') {
                        continue;
                    }
                    if let Some(op) = c.strip_suffix(':') {
                        operator = op.to_string();
                    } else {
                        let (key, values) = c
                            .split_once(": ")
                            .unwrap_or_else(|| panic!("{}: condition line {c:?}", s.sid));
                        s.conditions
                            .push((operator.clone(), unquote(key), list(values)));
                    }
                }
            }
            i += 1;
        }
        statements.push(s);
    }
    statements
}

/// What is wrong with the statements granting `action`, if anything: each must allow it only
/// under `StringEquals` of one of `condition_keys` (any case, as IAM reads key names) with
/// exactly the rule's values.
fn disagreement(
    statements: &[Statement],
    action: &str,
    condition_keys: &[String],
    rule: &TagRule,
) -> Option<String> {
    let granting: Vec<&Statement> = statements
        .iter()
        .filter(|s| s.effect == "Allow" && s.actions.iter().any(|a| a == action))
        .collect();
    if granting.is_empty() {
        return Some(format!("no statement allows {action}"));
    }
    let wanted: BTreeSet<&str> = rule.values.iter().copied().collect();
    for s in granting {
        let [(operator, key, values)] = s.conditions.as_slice() else {
            return Some(format!(
                "{} allows {action} under {:?}",
                s.sid, s.conditions
            ));
        };
        if operator != "StringEquals" {
            return Some(format!("{} uses {operator}, not StringEquals", s.sid));
        }
        if !condition_keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Some(format!(
                "{} conditions {action} on {key}, not {}",
                s.sid, rule.key
            ));
        }
        let found: BTreeSet<&str> = values.iter().map(String::as_str).collect();
        if found != wanted {
            return Some(format!(
                "{} allows {action} for {key} in {found:?}; the code's rule is {wanted:?}",
                s.sid
            ));
        }
    }
    None
}

/// Every disagreement between the template's budget policy and the code's rules.
fn disagreements(template: &str) -> Vec<String> {
    let statements = budget_statements(template);
    let keys = |prefixes: &[&str], rule: &TagRule| -> Vec<String> {
        prefixes
            .iter()
            .map(|p| format!("{p}{}", rule.key))
            .collect()
    };
    let node_keys = keys(&["aws:ResourceTag/"], &NODE_GROUP_RULE);
    let instance_keys = keys(&["aws:ResourceTag/", "rds:db-tag/"], &DATABASE_RULE);
    let cluster_keys = keys(&["aws:ResourceTag/", "rds:cluster-tag/"], &DATABASE_RULE);
    let checks: [(&str, &Vec<String>, &TagRule); 5] = [
        ("eks:UpdateNodegroupConfig", &node_keys, &NODE_GROUP_RULE),
        ("rds:StopDBInstance", &instance_keys, &DATABASE_RULE),
        ("rds:StartDBInstance", &instance_keys, &DATABASE_RULE),
        ("rds:StopDBCluster", &cluster_keys, &DATABASE_RULE),
        ("rds:StartDBCluster", &cluster_keys, &DATABASE_RULE),
    ];
    let mut out: Vec<String> = checks
        .iter()
        .filter_map(|(action, condition_keys, rule)| {
            disagreement(&statements, action, condition_keys, rule)
        })
        .collect();
    // The deny-list: production, in any case, is refused whatever else the tags say.
    let production: BTreeSet<String> = PRODUCTION.iter().map(|p| p.to_string()).collect();
    let deny_holds = statements.iter().any(|s| {
        s.effect == "Deny"
            && [
                "rds:StopDBInstance",
                "rds:StopDBCluster",
                "eks:UpdateNodegroupConfig",
            ]
            .iter()
            .all(|a| s.actions.iter().any(|x| x == a))
            && s.conditions.iter().any(|(op, key, values)| {
                op == "StringEqualsIgnoreCase"
                    && key.eq_ignore_ascii_case(&format!("aws:ResourceTag/{}", DATABASE_RULE.key))
                    && values.iter().cloned().collect::<BTreeSet<_>>() == production
            })
    });
    if !deny_holds {
        out.push(format!(
            "no Deny of stop/scale on aws:ResourceTag/{} in {PRODUCTION:?} (StringEqualsIgnoreCase)",
            DATABASE_RULE.key
        ));
    }
    out
}

fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
        .expect("template.yaml")
}

#[test]
fn the_budget_roles_iam_conditions_say_the_same_eligibility_rule_as_the_code() {
    // GIVEN the template the stack is deployed from
    let template = template();
    // WHEN its budget policy is compared with the code's rules
    let statements = budget_statements(&template);
    assert!(
        statements.len() >= 8,
        "the budget policy was not read: {statements:#?}"
    );
    // THEN they agree, action by action
    assert_eq!(disagreements(&template), Vec::<String>::new());
}

#[test]
fn a_template_that_drifts_from_the_code_is_caught() {
    // GIVEN the template with each kind of drift: a value in another case, a value dropped, a
    // condition loosened to ignore case, another tag key, the production deny dropped
    let template = template();
    let drifts = [
        (
            "aws:ResourceTag/breakwater:criticality: non-critical",
            "aws:ResourceTag/breakwater:criticality: Non-Critical",
        ),
        (
            "rds:db-tag/environment: [dev, development,",
            "rds:db-tag/environment: [development,",
        ),
        ("rds:cluster-tag/environment:", "rds:cluster-tag/env:"),
        (
            "aws:ResourceTag/environment: [prod, production, live, prd]",
            "aws:ResourceTag/environment: [prod]",
        ),
    ];
    for (from, to) in drifts {
        assert!(
            template.contains(from),
            "the template no longer says {from:?}"
        );
        // WHEN the drifted template is compared with the code
        let found = disagreements(&template.replacen(from, to, 1));
        // THEN the drift is reported
        assert!(!found.is_empty(), "{to:?} was not caught");
    }
    let loosened = template.replacen(
        "                StringEquals:\n                  aws:ResourceTag/breakwater:criticality",
        "                StringEqualsIgnoreCase:\n                  aws:ResourceTag/breakwater:criticality",
        1,
    );
    assert_ne!(loosened, template, "the node-group condition moved");
    assert!(!disagreements(&loosened).is_empty());
}
