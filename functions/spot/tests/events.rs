//! The event files in `events/spot/` (what `make invoke` sends) parse as their names say.

use std::path::PathBuf;

use spot::events::{parse, parse_health, parse_lifecycle, SpotEvent, HEALTH, LIFECYCLE};

#[test]
fn every_event_file_parses_or_is_refused_as_its_name_says() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/spot");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(detail_type) = event["detail-type"].as_str() else {
            assert!(name.starts_with("command-"), "{name}");
            continue;
        };
        if detail_type == "Scheduled Event" {
            continue;
        }
        if detail_type == LIFECYCLE {
            assert_eq!(name, "asg-termination-lifecycle.json");
            let event = parse_lifecycle(&event["detail"]).unwrap().unwrap();
            assert!(matches!(event, SpotEvent::Lifecycle { .. }), "{event:?}");
            checked += 1;
            continue;
        }
        if detail_type == HEALTH {
            assert_eq!(name, "health-scheduled-change.json");
            let events = parse_health(&event["detail"]).unwrap().unwrap();
            assert!(
                matches!(
                    &events[..],
                    [SpotEvent::Scheduled {
                        start_ms: Some(_),
                        ..
                    }]
                ),
                "{events:?}"
            );
            checked += 1;
            continue;
        }
        let parsed = parse(detail_type, &event["detail"]);
        match name.as_str() {
            "interruption-warning.json" => assert!(matches!(parsed, Ok(SpotEvent::Warning { .. }))),
            "rebalance-recommendation.json" => {
                assert!(matches!(parsed, Ok(SpotEvent::Rebalance { .. })))
            }
            "state-change-terminated.json" => assert!(parsed.unwrap().ends()),
            "malformed-warning.json" => assert!(parsed.is_err()),
            other => panic!("{other} has no expectation"),
        }
        checked += 1;
    }
    assert_eq!(checked, 6);
}
