//! Typed settings read from environment variables once at init, with errors that name the variable.

use std::collections::HashMap;
use std::time::Duration;

/// A setting that is missing or malformed, naming the environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads settings from a lookup function, so tests need not touch the process environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// A snapshot of the process environment.
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars().collect(),
        }
    }

    /// A comma-separated list, trimmed, empty entries dropped (unset: empty).
    pub fn list(&self, name: &'static str) -> Vec<String> {
        self.optional(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An environment made of the given pairs (for tests and the sandbox).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, with surrounding whitespace removed; empty counts as unset.
    pub fn optional(&self, name: &'static str) -> Option<String> {
        self.vars
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, or an error naming it.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError {
            variable: name,
            reason: "is required but not set".into(),
        })
    }

    /// A boolean (`true`/`false`/`1`/`0`/`yes`/`no`), `default` when unset.
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.optional(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(true),
            Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(false),
            Some(v) => Err(ConfigError {
                variable: name,
                reason: format!("expected true or false, got {v:?}"),
            }),
        }
    }

    /// A 12-digit AWS account id (required).
    pub fn account_id(&self, name: &'static str) -> Result<String, ConfigError> {
        let account = self.required(name)?;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError {
                variable: name,
                reason: format!("{account:?} is not a 12-digit account id"),
            });
        }
        Ok(account)
    }

    /// A whole number within `range`, `default` when unset.
    pub fn whole_number(
        &self,
        name: &'static str,
        default: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<usize, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(default);
        };
        raw.parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or(ConfigError {
                variable: name,
                reason: format!(
                    "{raw:?} is not a whole number in {}..={}",
                    range.start(),
                    range.end()
                ),
            })
    }

    /// A whole number of seconds within `range`, `default` when unset.
    pub fn seconds(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(Duration::from_secs(default));
        };
        let value: u64 = raw.parse().map_err(|_| ConfigError {
            variable: name,
            reason: format!("expected whole seconds, got {raw:?}"),
        })?;
        if !range.contains(&value) {
            return Err(ConfigError {
                variable: name,
                reason: format!("{value} s is outside {}..={} s", range.start(), range.end()),
            });
        }
        Ok(Duration::from_secs(value))
    }
}

/// The settings every Breakwater function shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `AWS_REGION`: the region this copy of the function runs in (set by Lambda).
    pub region: String,
    /// `BREAKWATER_STATE_BUCKET`: the S3 bucket of leases, idempotency records, ledgers and reports.
    pub state_bucket: String,
    /// `BREAKWATER_TOPIC_ARN`: the SNS topic for notifications; unset means notifications are logged only.
    pub topic_arn: Option<String>,
    /// `BREAKWATER_DRY_RUN`: plan and report but change nothing (default `false`).
    pub dry_run: bool,
    /// `BREAKWATER_LEASE_SECONDS`: how long a lease lasts without renewal (default 60, 5..=900).
    pub lease_ttl: Duration,
    /// `BREAKWATER_IDEMPOTENCY_SECONDS`: how long an in-progress idempotency record blocks a
    /// duplicate before it counts as abandoned (default 900 — the longest a Lambda can run).
    pub idempotency_ttl: Duration,
    /// `AWS_LAMBDA_FUNCTION_NAME`: the function's name, used in logs, metrics and lease owners.
    pub function_name: String,
}

impl Settings {
    /// Reads and validates the shared settings; the error names the first bad variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let region = env.required("AWS_REGION")?;
        if !is_region_name(&region) {
            return Err(ConfigError {
                variable: "AWS_REGION",
                reason: format!("{region:?} is not a region name"),
            });
        }
        let state_bucket = env.required("BREAKWATER_STATE_BUCKET")?;
        if !is_bucket_name(&state_bucket) {
            return Err(ConfigError {
                variable: "BREAKWATER_STATE_BUCKET",
                reason: format!("{state_bucket:?} is not a valid S3 bucket name"),
            });
        }
        let topic_arn = env.optional("BREAKWATER_TOPIC_ARN");
        if let Some(arn) = &topic_arn {
            if !arn.starts_with("arn:") || arn.split(':').count() != 6 || !arn.contains(":sns:") {
                return Err(ConfigError {
                    variable: "BREAKWATER_TOPIC_ARN",
                    reason: format!("{arn:?} is not an SNS topic ARN"),
                });
            }
        }
        Ok(Settings {
            region,
            state_bucket,
            topic_arn,
            dry_run: env.flag("BREAKWATER_DRY_RUN", false)?,
            lease_ttl: env.seconds("BREAKWATER_LEASE_SECONDS", 60, 5..=900)?,
            idempotency_ttl: env.seconds("BREAKWATER_IDEMPOTENCY_SECONDS", 900, 60..=86_400)?,
            function_name: env
                .optional("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| "breakwater".into()),
        })
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`: lowercase words and one number.
pub fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// S3's naming rules for general-purpose buckets (3–63 characters, lowercase, digits, `.` and `-`,
/// starting and ending with a letter or digit, no `..`).
pub fn is_bucket_name(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !s.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AWS_REGION", "us-west-2"),
            (
                "BREAKWATER_STATE_BUCKET",
                "breakwater-state-123456789012-us-west-2",
            ),
        ]
    }

    #[test]
    fn reads_defaults_when_only_the_required_variables_are_set() {
        let settings = Settings::from_env(&Env::from_pairs(base())).unwrap();
        assert_eq!(settings.region, "us-west-2");
        assert!(!settings.dry_run);
        assert_eq!(settings.lease_ttl, Duration::from_secs(60));
        assert_eq!(settings.topic_arn, None);
    }

    #[test]
    fn missing_bucket_names_the_variable() {
        let err = Settings::from_env(&Env::from_pairs([("AWS_REGION", "us-west-2")])).unwrap_err();
        assert_eq!(err.variable, "BREAKWATER_STATE_BUCKET");
        assert_eq!(
            err.to_string(),
            "BREAKWATER_STATE_BUCKET: is required but not set"
        );
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let cases = [
            ("BREAKWATER_DRY_RUN", "maybe"),
            ("BREAKWATER_LEASE_SECONDS", "ten"),
            ("BREAKWATER_LEASE_SECONDS", "1"),
            ("BREAKWATER_TOPIC_ARN", "breakwater-topic"),
            ("BREAKWATER_STATE_BUCKET", "Not_A_Bucket"),
            ("AWS_REGION", "Oregon"),
        ];
        for (variable, value) in cases {
            let mut pairs = base();
            pairs.retain(|(k, _)| *k != variable);
            pairs.push((variable, value));
            let err = Settings::from_env(&Env::from_pairs(pairs)).unwrap_err();
            assert_eq!(err.variable, variable, "{variable}={value}");
        }
    }

    #[test]
    fn account_ids_and_whole_numbers_name_their_variable() {
        let env = Env::from_pairs([
            ("ACCOUNT", "12345"),
            ("GOOD", "123456789012"),
            ("N", "0"),
            ("M", "7"),
        ]);
        assert_eq!(
            env.account_id("ACCOUNT").unwrap_err().reason,
            "\"12345\" is not a 12-digit account id"
        );
        assert_eq!(env.account_id("GOOD").unwrap(), "123456789012");
        assert_eq!(
            env.whole_number("N", 10, 1..=100).unwrap_err().reason,
            "\"0\" is not a whole number in 1..=100"
        );
        assert_eq!(env.whole_number("M", 10, 1..=100).unwrap(), 7);
        assert_eq!(env.whole_number("UNSET", 10, 1..=100).unwrap(), 10);
    }

    #[test]
    fn region_and_bucket_names_follow_aws_rules() {
        assert!(is_region_name("us-east-1") && is_region_name("us-gov-west-1"));
        assert!(!is_region_name("us-east") && !is_region_name("US-EAST-1") && !is_region_name(""));
        assert!(is_bucket_name("my.bucket-1") && !is_bucket_name("ab") && !is_bucket_name("a..b"));
        assert!(!is_bucket_name("-bucket") && !is_bucket_name(&"a".repeat(64)));
    }
}
