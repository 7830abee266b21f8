//! Every event a function can be invoked with goes through `Routes::route` and then one of the
//! typed parsers: alarm state changes (EventBridge, alarm action, SNS), EC2 spot events, RDS
//! events. Any bytes must give a value or a clear error, never a panic.
#![no_main]

use breakwater::events::{self, Routes, Trigger};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const EVENTBRIDGE: &[(&str, &str)] = &[
    ("aws.cloudwatch", "CloudWatch Alarm State Change"),
    ("aws.ec2", spot::events::WARNING),
    ("aws.ec2", spot::events::REBALANCE),
    ("aws.ec2", spot::events::STATE_CHANGE),
    ("aws.rds", "RDS DB Instance Event"),
    ("aws.rds", "RDS DB Cluster Event"),
    ("aws.events", "Scheduled Event"),
];

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let routes = Routes {
        function: "fuzz",
        eventbridge: EVENTBRIDGE,
        alarm_actions: true,
        sns: true,
        commands: &["status", "drill", "rollback"],
        account: Some("123456789012".into()),
        regions: vec!["us-east-1".into(), "us-west-2".into()],
    };
    let raw = event.clone();
    let Ok(trigger) = routes.route(event) else {
        return;
    };
    let _ = trigger.event_id();
    match trigger {
        Trigger::EventBridge(e) => {
            let _ = events::alarm_from_eventbridge(
                &e.detail,
                e.resources.as_ref().and_then(|r| r.first()),
            );
            let _ = spot::events::parse(&e.detail_type, &e.detail);
        }
        Trigger::AlarmAction(_) => {
            let _ = events::alarm_from_action(&raw);
        }
        Trigger::Sns(s) => {
            for record in &s.records {
                if let Ok(message) = serde_json::from_str::<Value>(&record.sns.message) {
                    let _ = events::alarm_from_sns(&message);
                }
                let _ = budget::message::parse(&record.sns.message);
            }
        }
        Trigger::Command { .. } => {}
    }
});
