//! The optional L4 guard-rail: an inline deny policy put on the IAM roles the operator names (a
//! CI deployer, a Karpenter controller, a team's admin role), so that they cannot create new
//! capacity while actual spend is over the budget. Off unless roles are configured; recorded in
//! the ledger like every other change and deleted when the level is released or the period rolls
//! over. It denies only actions that add spend: nothing running is stopped by it, and scaling in,
//! stopping and deleting stay allowed.

use serde_json::json;

/// The tag a role must carry (besides being named in the setting) to be given the guard-rail; the
/// template's IAM policy lets the function change only roles tagged so.
pub const OPT_IN_TAG: (&str, &str) = ("breakwater:budget-guardrail", "allowed");

/// The inline policy's name on each role.
pub const POLICY_NAME: &str = "breakwater-budget-guardrail";

/// What the guard-rail denies: actions that create or start billable capacity.
pub const DENIED_ACTIONS: &[&str] = &[
    "ec2:RunInstances",
    "ec2:StartInstances",
    "ec2:RequestSpotInstances",
    "ec2:RequestSpotFleet",
    "ec2:CreateFleet",
    "autoscaling:CreateAutoScalingGroup",
    "eks:CreateCluster",
    "eks:CreateNodegroup",
    "rds:CreateDBInstance",
    "rds:CreateDBCluster",
    "rds:CreateDBInstanceReadReplica",
    "rds:RestoreDBInstanceFromDBSnapshot",
    "rds:RestoreDBClusterFromSnapshot",
    "rds:StartDBInstance",
    "rds:StartDBCluster",
    "elasticache:CreateCacheCluster",
    "elasticache:CreateReplicationGroup",
    "sagemaker:CreateEndpoint",
    "sagemaker:CreateNotebookInstance",
    "sagemaker:CreateTrainingJob",
];

/// The policy document put on each role.
pub fn document(budget: &str, period: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "BreakwaterBudgetL4",
            "Effect": "Deny",
            "Action": DENIED_ACTIONS,
            "Resource": "*",
        }],
        // IAM keeps no free text; the Id says who put it there and why.
        "Id": policy_id(budget, period),
    })
    .to_string()
}

/// `breakwater-budget-<budget>-<period>`, reduced to what a policy `Id` may hold.
fn policy_id(budget: &str, period: &str) -> String {
    format!("breakwater-budget-{budget}-{period}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Whether `name` can be an IAM role name: 1–64 of `A-Za-z0-9+=,.@_-` (the comma is the list
/// separator of the setting, so it is refused here).
pub fn check_role_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=.@_-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(format!(
            "{name:?} is not an IAM role name (1–64 of A-Za-z0-9+=.@_-)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_denies_new_capacity_only() {
        let doc: serde_json::Value =
            serde_json::from_str(&document("platform monthly", "2026-11")).unwrap();
        assert_eq!(doc["Statement"][0]["Effect"], "Deny");
        let actions: Vec<&str> = doc["Statement"][0]["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(actions.contains(&"ec2:RunInstances"));
        for never in [
            "ec2:TerminateInstances",
            "rds:StopDBInstance",
            "eks:UpdateNodegroupConfig",
        ] {
            assert!(!actions.contains(&never), "{never} must stay allowed");
        }
        assert_eq!(doc["Id"], "breakwater-budget-platform-monthly-2026-11");
        // IAM's limit for all inline policies of a role together is 10,240 characters.
        assert!(document(&"b".repeat(100), "2026-11").len() < 2_048);
    }

    #[test]
    fn role_names_are_checked() {
        assert!(check_role_name("ci-deployer").is_ok());
        assert!(check_role_name("KarpenterController@prod+x=1.2_3").is_ok());
        for bad in ["", "has space", "a/b", &"r".repeat(65)] {
            assert!(check_role_name(bad).is_err(), "{bad:?}");
        }
    }
}
