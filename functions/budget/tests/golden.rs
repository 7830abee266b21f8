//! The golden corpus of `events/budget/messages`: every message parses, or is refused, exactly as
//! its `.expected.json` says.

use std::path::PathBuf;

#[test]
fn every_message_in_the_corpus_parses_or_is_refused_as_expected() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/budget/messages");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("txt") {
            continue;
        }
        let body = std::fs::read_to_string(&path).unwrap();
        let expected_path = path.with_extension("expected.json");
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|_| panic!("{} has no expected file", path.display())),
        )
        .unwrap();
        let actual = serde_json::to_value(budget::message::parse(&body)).unwrap();
        assert_eq!(actual, expected, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} messages in the corpus");
}

/// The SNS event files in `events/budget/` (what `make invoke` sends) hold messages that parse as
/// their names say: alerts for `sns-actual-*`, `sns-forecast-*` and `sns-daily`, refusals for the rest.
#[test]
fn the_sns_event_files_carry_what_their_names_say() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/budget");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("sns-") {
            continue;
        }
        let event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let body = event["Records"][0]["Sns"]["Message"].as_str().unwrap();
        let parsed = budget::message::parse(body);
        let alert = ["sns-actual-", "sns-forecast-", "sns-daily"]
            .iter()
            .any(|p| name.starts_with(p));
        match (&parsed, alert) {
            (budget::message::Message::Alert(a), true) => {
                if name == "sns-actual-over-100.json" {
                    assert!(a.amount > a.budgeted, "{name}: {a:?}");
                }
            }
            (budget::message::Message::Unknown { .. }, false) => {}
            _ => panic!("{name} parsed as {parsed:?}"),
        }
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} SNS event files");
}
