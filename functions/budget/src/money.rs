//! Money as an exact decimal (millionths of a dollar), never a float: `$0.5`, `$100`, `$1,234.50`.

use std::fmt;

/// An amount of US dollars, exact to a millionth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

const SCALE: i64 = 1_000_000;

impl Money {
    /// Whole dollars.
    pub const fn dollars(d: i64) -> Self {
        Money(d * SCALE)
    }

    /// Cents.
    pub const fn cents(c: i64) -> Self {
        Money(c * (SCALE / 100))
    }

    /// Parses `$1,234.50`, `$0.5`, `$100`, `1234.5` (the `$` is optional, thousands separators must
    /// group by three, at most six decimals).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let t = t.strip_prefix('$').unwrap_or(t).trim();
        let (whole, frac) = match t.split_once('.') {
            Some((w, f)) => (w, f),
            None => (t, ""),
        };
        if whole.is_empty() || (t.contains('.') && frac.is_empty()) || frac.len() > 6 {
            return None;
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let groups: Vec<&str> = whole.split(',').collect();
        let grouped_right = groups.len() == 1
            || (!groups[0].is_empty()
                && groups[0].len() <= 3
                && groups[1..].iter().all(|g| g.len() == 3));
        if !grouped_right || !groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        let whole: i64 = groups.concat().parse().ok()?;
        let frac_value: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<6}").parse().ok()?
        };
        whole.checked_mul(SCALE)?.checked_add(frac_value).map(Money)
    }

    /// Parses an amount as the Budgets API returns it (`Spend.Amount`, pattern
    /// `([0-9]*\.)?[0-9]+`, no sign, no separators, any number of decimals), rounded half-up to a
    /// millionth. `DescribeBudget` returns the full binary expansion of a double, e.g.
    /// `"604.4560000000000172803993336856365203857421875"` (AWS CLI reference,
    /// `aws budgets describe-budget`, example output; AWS Budgets API reference, data type `Spend`).
    pub fn from_api(text: &str) -> Option<Self> {
        let (whole, frac) = match text.split_once('.') {
            Some((_, "")) => return None,
            Some((whole, frac)) => (whole, frac),
            None if text.is_empty() => return None,
            None => (text, ""),
        };
        if !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        // Leading zeros may be many (or the whole part absent, `.5`); the value must still fit.
        let whole: i64 = match whole.trim_start_matches('0') {
            "" => 0,
            digits => digits.parse().ok()?,
        };
        let kept: String = frac.chars().take(6).collect();
        let mut micros: i64 = format!("{kept:0<6}").parse().ok()?;
        if frac.as_bytes().get(6).is_some_and(|d| *d >= b'5') {
            micros += 1;
        }
        whole.checked_mul(SCALE)?.checked_add(micros).map(Money)
    }

    /// `self / of` as a percentage with two decimals (`None` when `of` is zero).
    pub fn percent_of(self, of: Money) -> Option<f64> {
        (of.0 != 0).then(|| (self.0 as f64 / of.0 as f64 * 10_000.0).round() / 100.0)
    }

    /// The amount in millionths of a dollar.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// `percent` % of this amount, exactly (percent in hundredths: 8500 = 85 %).
    pub fn scaled_basis_points(self, basis_points: i64) -> Money {
        Money(self.0 * basis_points / 10_000)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cents = (self.0 + SCALE / 200) / (SCALE / 100);
        let (whole, frac) = (cents / 100, cents % 100);
        let digits = whole.to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        write!(f, "${grouped}.{frac:02}")
    }
}

impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let whole = self.0 / SCALE;
        let frac = self.0 % SCALE;
        let text = if frac == 0 {
            whole.to_string()
        } else {
            format!("{whole}.{}", format!("{frac:06}").trim_end_matches('0'))
        };
        s.serialize_str(&text)
    }
}

impl<'de> serde::Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Money::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an amount")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_amounts_budgets_prints() {
        assert_eq!(Money::parse("$100"), Some(Money::dollars(100)));
        assert_eq!(Money::parse("$0.5"), Some(Money::cents(50)));
        assert_eq!(Money::parse("$1,234.50"), Some(Money::cents(123_450)));
        assert_eq!(Money::parse("$2,460.00"), Some(Money::dollars(2460)));
        assert_eq!(Money::parse("$36.69"), Some(Money::cents(3669)));
        assert_eq!(
            Money::parse(" $1,000,000 "),
            Some(Money::dollars(1_000_000))
        );
        assert_eq!(Money::parse("0.000001"), Some(Money(1)));
    }

    #[test]
    fn refuses_what_is_not_an_amount() {
        for bad in [
            "",
            "$",
            "$1,23",
            "$12,34.5",
            "$1.",
            "$.5",
            "$1.2.3",
            "$abc",
            "$1,2345",
            "$-5",
            "$1.0000001",
            "€5",
        ] {
            assert_eq!(Money::parse(bad), None, "{bad}");
        }
    }

    /// The amounts of the AWS CLI reference's `describe-budget` example output, as AWS writes
    /// them: 45 decimals of a double's binary expansion.
    #[test]
    fn reads_the_amounts_describe_budget_returns_exactly_to_the_millionth() {
        // GIVEN the Spend amounts of the documented DescribeBudget output
        let actual = "604.4560000000000172803993336856365203857421875";
        let forecast = "2641.54800000000022919266484677791595458984375";
        // WHEN they are read as API amounts
        // THEN they are the dollars AWS meant, to the millionth
        assert_eq!(Money::from_api(actual), Some(Money(604_456_000)));
        assert_eq!(Money::from_api(forecast), Some(Money(2_641_548_000)));
        assert_eq!(Money::from_api("100"), Some(Money::dollars(100)));
        // a double just below a round value rounds back up to it, never down a millionth
        assert_eq!(
            Money::from_api("0.299999999999999988897769753748434595763683319091796875"),
            Some(Money::cents(30))
        );
        assert_eq!(
            Money::from_api("2120.40000000000009094947017729282379150390625"),
            Some(Money::cents(212_040))
        );
        assert_eq!(Money::from_api("0.0000005"), Some(Money(1)));
        assert_eq!(Money::from_api("0.0000004999"), Some(Money(0)));
        assert_eq!(Money::from_api(".5"), Some(Money::cents(50)));
        assert_eq!(Money::from_api("0002460"), Some(Money::dollars(2460)));
    }

    #[test]
    fn refuses_what_the_api_pattern_does_not_allow() {
        for bad in [
            "",
            ".",
            "1.",
            "$5",
            "1,000",
            "-5",
            "1.2.3",
            "1e3",
            " 5",
            "99999999999999999999",
        ] {
            assert_eq!(Money::from_api(bad), None, "{bad}");
        }
    }

    #[test]
    fn displays_and_serialises_exactly() {
        assert_eq!(Money::cents(123_450).to_string(), "$1,234.50");
        assert_eq!(Money::cents(50).to_string(), "$0.50");
        assert_eq!(
            serde_json::to_string(&Money::cents(123_450)).unwrap(),
            "\"1234.5\""
        );
        assert_eq!(
            serde_json::from_str::<Money>("\"2460\"").unwrap(),
            Money::dollars(2460)
        );
        assert_eq!(
            Money::cents(3669).percent_of(Money::dollars(30)),
            Some(122.3)
        );
        assert_eq!(
            Money::dollars(2460).scaled_basis_points(8500),
            Money::dollars(2091)
        );
    }
}
