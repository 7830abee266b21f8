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

/// `events/budget/api/describe-budget.json` is the output of the AWS CLI reference's
/// `aws budgets describe-budget` example (CalculatedSpend, BudgetType, BudgetLimit, BudgetName,
/// TimeUnit as printed there): the Spend amounts are 45-decimal expansions of doubles.
#[test]
fn the_describe_budget_output_of_the_aws_docs_reads_as_the_dollars_it_says() {
    use budget::money::Money;
    // GIVEN the documented DescribeBudget output
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/budget/api/describe-budget.json");
    let output: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let amount = |pointer: &str| output.pointer(pointer).and_then(|v| v.as_str()).unwrap();
    // WHEN its amounts go through the parser the function reads DescribeBudget with
    let limit = Money::from_api(amount("/Budget/BudgetLimit/Amount"));
    let actual = Money::from_api(amount("/Budget/CalculatedSpend/ActualSpend/Amount"));
    let forecast = Money::from_api(amount("/Budget/CalculatedSpend/ForecastedSpend/Amount"));
    // THEN they are the dollars the example means, and the spend compares with the limit
    assert_eq!(limit, Some(Money::dollars(100)));
    assert_eq!(actual.map(|m| m.to_string()).as_deref(), Some("$604.46"));
    assert_eq!(actual.map(Money::micros), Some(604_456_000));
    assert_eq!(forecast.map(Money::micros), Some(2_641_548_000));
    assert_eq!(actual.unwrap().percent_of(limit.unwrap()), Some(604.46));
}
