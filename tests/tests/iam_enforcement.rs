//! The sandbox enforces IAM from template.yaml: a function's credentials (`sandbox::iam::role_env`)
//! reach only what its role's policies grant, and S3 answers a missing key as it does on AWS.

use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::error::ProvideErrorMetadata;

use crate::common::{aws, moto_server, unique};

moto_server!();

/// An S3 and an RDS client signed as `function`'s role deployed in `home`, talking to `region`.
async fn as_role(
    function: &str,
    home: &str,
    region: &str,
) -> (aws_sdk_s3::Client, aws_sdk_rds::Client) {
    let vars = breakwater_sandbox::iam::role_env(function, home, &[]);
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .expect("a function of the template has a role")
    };
    let credentials = Credentials::new(
        get("AWS_ACCESS_KEY_ID"),
        get("AWS_SECRET_ACCESS_KEY"),
        Some(get("AWS_SESSION_TOKEN")),
        None,
        "sandbox-role",
    );
    let base = aws(&moto().endpoint(), region).await;
    let s3 = aws_sdk_s3::config::Builder::from(base.config())
        .credentials_provider(credentials.clone())
        .force_path_style(true)
        .build();
    let rds = aws_sdk_rds::config::Builder::from(base.config())
        .credentials_provider(credentials)
        .build();
    (
        aws_sdk_s3::Client::from_conf(s3),
        aws_sdk_rds::Client::from_conf(rds),
    )
}

/// A state bucket named as the sandbox names them (`seed.rs`), in `region`.
async fn state_bucket(region: &str) -> String {
    let admin = aws(&moto().endpoint(), region).await;
    let bucket = format!("breakwater-state-123456789012-{region}-{}", unique("iam"));
    admin
        .s3()
        .create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(region.into())
                .build(),
        )
        .send()
        .await
        .expect("create the state bucket");
    bucket
}

#[tokio::test]
async fn a_role_with_list_bucket_reads_a_missing_record_as_404_and_other_prefixes_are_denied() {
    // GIVEN budget's role (template.yaml grants s3:ListBucket on the state bucket and objects
    // under its own prefixes)
    let region = "eu-west-1";
    let bucket = state_bucket(region).await;
    let (s3, _) = as_role("budget", region, region).await;

    // WHEN it reads a record that does not exist yet under its own prefix
    let own = s3
        .get_object()
        .bucket(&bucket)
        .key("budget/absent.json")
        .send()
        .await
        .expect_err("nothing is there");
    // THEN S3 answers 404 NoSuchKey, which the state store reads as "absent"
    assert_eq!(own.raw_response().map(|r| r.status().as_u16()), Some(404));
    assert_eq!(own.code(), Some("NoSuchKey"));

    // WHEN it reads or writes under another function's prefix
    let read = s3
        .get_object()
        .bucket(&bucket)
        .key("spot/absent.json")
        .send()
        .await
        .expect_err("not budget's");
    let write = s3
        .put_object()
        .bucket(&bucket)
        .key("spot/record.json")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{}"))
        .send()
        .await
        .expect_err("not budget's");
    // THEN both are AccessDenied (403)
    assert_eq!(read.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(write.code(), Some("AccessDenied"));
}

#[tokio::test]
async fn a_missing_key_read_by_a_role_without_list_bucket_answers_403_as_s3_does() {
    // GIVEN the bucket of another region's stack: the budget role of eu-west-2 holds GetObject on
    // nothing there and s3:ListBucket on nothing there
    let bucket = state_bucket("eu-west-1").await;
    let (s3, _) = as_role("budget", "eu-west-2", "eu-west-1").await;

    // WHEN it reads a key that does not exist
    let err = s3
        .get_object()
        .bucket(&bucket)
        .key("budget/absent.json")
        .send()
        .await
        .expect_err("denied");

    // THEN S3 answers 403 AccessDenied, not 404: without s3:ListBucket S3 does not say whether a
    // key exists (GetObject, Amazon S3 API Reference, "Permissions")
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(err.code(), Some("AccessDenied"));
}

#[tokio::test]
async fn a_call_the_template_does_not_grant_is_access_denied_in_the_wrong_region_too() {
    // GIVEN budget's role in eu-west-1: rds:DescribeDBInstances on its own region's databases
    let (_, home) = as_role("budget", "eu-west-1", "eu-west-1").await;
    let (_, abroad) = as_role("budget", "eu-west-1", "us-east-1").await;
    let (_, tiering) = as_role("tiering", "eu-west-1", "eu-west-1").await;

    // WHEN it lists databases at home, abroad, and the tiering role lists them at home
    let at_home = home.describe_db_instances().send().await;
    let in_another_region = abroad.describe_db_instances().send().await;
    let by_tiering = tiering.describe_db_instances().send().await;

    // THEN only the granted call passes
    assert!(at_home.is_ok(), "{at_home:?}");
    let denied = in_another_region.expect_err("the grant names eu-west-1 only");
    assert_eq!(
        denied.raw_response().map(|r| r.status().as_u16()),
        Some(403)
    );
    let denied = by_tiering.expect_err("tiering's role has no RDS grant");
    assert_eq!(
        denied.raw_response().map(|r| r.status().as_u16()),
        Some(403)
    );
}

#[test]
fn the_template_grants_every_operation_the_code_can_call_and_nothing_unused() {
    // GIVEN the IAM contract: every SDK operation each function's adapters can call, its IAM
    // action, and the SAM-expanded template's grants (`make iam` prints the table)
    let python = breakwater_sandbox::moto::python().expect("the project's .venv (make setup)");
    let root = breakwater_sandbox::workspace_root();

    // WHEN it is checked
    let out = std::process::Command::new(python)
        .arg(root.join("sandbox/iam_contract.py"))
        .arg("--check")
        .current_dir(root.join("sandbox"))
        .output()
        .expect("run sandbox/iam_contract.py");

    // THEN no grant is missing and none is unused
    let report = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("missing grant") || l.starts_with("unused grant"))
        .collect();
    assert!(
        out.status.success(),
        "the IAM contract fails:\n{}\n{}",
        summary.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the stack deployed in `region` creates (`iam_template.py --resolved`), with the
/// deployment's two regions and any other parameters (`Name=value`).
fn stack(region: &str, primary: &str, secondary: &str) -> serde_json::Value {
    stack_with(
        region,
        &[
            &format!("PrimaryRegion={primary}"),
            &format!("SecondaryRegion={secondary}"),
        ],
    )
}

fn stack_with(region: &str, parameters: &[&str]) -> serde_json::Value {
    let python = breakwater_sandbox::moto::python().expect("the project's .venv (make setup)");
    let root = breakwater_sandbox::workspace_root();
    let out = std::process::Command::new(python)
        .arg(root.join("sandbox/iam_template.py"))
        .args(["--resolved", region])
        .args(parameters)
        .current_dir(root.join("sandbox"))
        .output()
        .expect("run sandbox/iam_template.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn the_example_budget_is_created_by_the_primary_regions_stack_only() {
    // GIVEN the documented two-region deploy: the same template in us-east-1 and us-west-2
    // WHEN each region's stack is expanded
    let primary = stack("us-east-1", "us-east-1", "us-west-2");
    let secondary = stack("us-west-2", "us-east-1", "us-west-2");
    // THEN only the primary creates the example budget: budget names are unique per account
    // (AWS::Budgets::Budget, "BudgetName … must be unique within an account"), so a second
    // stack creating it again fails the deploy
    assert!(primary.get("ExampleBudget").is_some());
    assert!(secondary.get("ExampleBudget").is_none());
}

#[test]
fn budget_and_tiering_are_each_left_out_by_a_parameter_and_each_function_has_its_log_group() {
    let region = ["PrimaryRegion=us-east-1", "SecondaryRegion=us-west-2"];
    let budget = [
        "BudgetFunction",
        "BudgetTopic",
        "BudgetDeadLetterQueue",
        "BudgetErrorsAlarm",
        "BudgetLogGroup",
        "ExampleBudget",
    ];
    let tiering = [
        "TieringFunction",
        "TieringDeadLetterQueue",
        "TieringErrorsAlarm",
        "TieringLogGroup",
    ];
    // GIVEN the default stack: both functions, each with its log group at LogRetentionDays
    let all = stack_with("us-east-1", &region);
    for name in budget.iter().chain(&tiering) {
        assert!(all.get(*name).is_some(), "{name} missing");
    }
    for group in ["BudgetLogGroup", "TieringLogGroup"] {
        let properties = &all[group]["Properties"];
        assert_eq!(properties["RetentionInDays"], "365", "{properties}");
        assert!(properties["LogGroupName"]
            .as_str()
            .unwrap()
            .starts_with("/aws/lambda/"));
    }
    // WHEN budget is switched off, THEN none of its resources is created, tiering's are
    let without_budget = stack_with("us-east-1", &[region[0], region[1], "BudgetEnabled=false"]);
    for name in budget {
        assert!(without_budget.get(name).is_none(), "{name} still created");
    }
    assert!(without_budget.get("TieringFunction").is_some());
    // WHEN tiering is switched off, THEN none of its resources is created, budget's are
    let without_tiering = stack_with("us-east-1", &[region[0], region[1], "TieringEnabled=false"]);
    for name in tiering {
        assert!(without_tiering.get(name).is_none(), "{name} still created");
    }
    assert!(without_tiering.get("BudgetFunction").is_some());
}

#[test]
fn breakwaters_alarms_can_publish_to_the_encrypted_notification_topic() {
    // GIVEN the stack
    let resources = stack("us-east-1", "us-east-1", "us-west-2");
    // THEN the topic is not encrypted with the AWS-managed SNS key, whose policy no service
    // principal can be added to ("Enable compatibility between event sources from AWS services
    // and encrypted topics", Amazon SNS Developer Guide) …
    let topic = &resources["NotificationTopic"]["Properties"];
    let key_id = topic["KmsMasterKeyId"].as_str().unwrap_or_default();
    assert_ne!(key_id, "alias/aws/sns");
    assert!(key_id.starts_with("arn:aws:kms:us-east-1:"), "{key_id}");
    // … its own key lets CloudWatch encrypt and decrypt for this account's alarms …
    let key_policy = &resources["NotificationTopicKey"]["Properties"]["KeyPolicy"]["Statement"];
    let cloudwatch = key_policy
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Principal"]["Service"] == "cloudwatch.amazonaws.com")
        .expect("a statement for CloudWatch");
    let actions = cloudwatch["Action"].to_string();
    assert!(actions.contains("kms:GenerateDataKey*") && actions.contains("kms:Decrypt"));
    // … the topic's policy, which replaces the default one, lets CloudWatch publish …
    let topic_policy = resources["NotificationTopicPolicy"]["Properties"]["PolicyDocument"]
        ["Statement"]
        .as_array()
        .unwrap()
        .clone();
    assert!(topic_policy.iter().any(|s| s["Effect"] == "Allow"
        && s["Principal"]["Service"] == "cloudwatch.amazonaws.com"
        && s["Action"] == "sns:Publish"));
    // … and every alarm of the stack that notifies, notifies that topic
    let mut alarms = 0;
    for (name, resource) in resources.as_object().unwrap() {
        if resource["Type"] == "AWS::CloudWatch::Alarm" {
            for action in resource["Properties"]["AlarmActions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                alarms += 1;
                assert!(
                    action
                        .as_str()
                        .is_some_and(|a| a.contains(":breakwater-notifications")),
                    "{name}: {action}"
                );
            }
        }
    }
    assert!(alarms > 0, "the stack's own alarms notify");
}

#[test]
fn the_public_webhook_exists_only_with_a_signing_secret_and_has_a_concurrency_of_its_own() {
    // GIVEN a rollback deployment without a signing secret, and one with Slack's
    let without = stack_with(
        "us-east-1",
        &["RollbackSlackSecretId=", "RollbackPagerDutySecretId="],
    );
    let with = stack_with(
        "us-east-1",
        &[
            "RollbackSlackSecretId=secretsmanager:breakwater/slack",
            "RollbackPagerDutySecretId=",
        ],
    );

    // THEN without a secret nothing public is created: no URL, no webhook function
    for name in [
        "RollbackWebhookUrl",
        "RollbackWebhookFunction",
        "RollbackWebhookUrlPermission",
    ] {
        assert!(
            without.get(name).is_none(),
            "{name} exists without a secret"
        );
    }
    assert!(without.get("RollbackFunction").is_some());
    // AND with one, the URL points at the webhook function, whose reserved concurrency is its
    // own and smaller than the alarm function's, and which may invoke only the alarm function
    let url = &with["RollbackWebhookUrl"]["Properties"];
    assert_eq!(url["AuthType"], "NONE");
    let webhook = &with["RollbackWebhookFunction"]["Properties"];
    let alarm = &with["RollbackFunction"]["Properties"];
    let (w, a) = (
        webhook["ReservedConcurrentExecutions"].as_i64().unwrap(),
        alarm["ReservedConcurrentExecutions"].as_i64().unwrap(),
    );
    assert!(w >= 1 && w < a, "webhook {w}, alarm {a}");
    assert!(alarm.get("FunctionUrlConfig").is_none());
    // … and Lambda's two permissions for a public URL (InvokeFunctionUrl, and InvokeFunction only
    // through the URL: "Control access to Lambda function URLs")
    assert_eq!(
        with["RollbackWebhookUrlInvokePermission"]["Properties"]["InvokedViaFunctionUrl"],
        true
    );
    assert_eq!(
        with["RollbackWebhookUrlPermission"]["Properties"]["Action"],
        "lambda:InvokeFunctionUrl"
    );
}
