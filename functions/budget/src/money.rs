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
