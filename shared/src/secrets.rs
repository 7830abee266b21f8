//! The secrets port: a secret read by reference — a Secrets Manager secret or an SSM
//! `SecureString` parameter, named (not held) by an environment variable — and a cache that
//! reads it on first use and again after a few minutes, so that a rotated secret is picked up
//! without a cold start.
//!
//! A secret in a plain environment variable is readable by anyone with
//! `lambda:GetFunctionConfiguration` (the AWS `ReadOnlyAccess` policy has it); a reference is not
//! a secret. The adapter is [`crate::aws::secrets::AwsSecrets`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;

use crate::config::ConfigError;
use crate::error::Result;

/// How long a secret read is trusted before it is read again (rotation).
pub const SECRET_TTL: Duration = Duration::from_secs(300);

/// Where a signing secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// A Secrets Manager secret (name or ARN); its `SecretString` is the signing secret.
    SecretsManager(String),
    /// An SSM parameter of type `SecureString` (name or ARN), read with decryption.
    Parameter(String),
}

impl SecretRef {
    /// Reads a reference: `secretsmanager:<name or ARN>`, `ssm:<name or ARN>`, or a
    /// `arn:…:secretsmanager:…:secret:…` / `arn:…:ssm:…:parameter/…` ARN. Anything else is
    /// refused — a value that is not a reference is most likely the secret itself.
    pub fn parse(variable: &'static str, value: &str) -> std::result::Result<Self, ConfigError> {
        let value = value.trim();
        let refuse = || ConfigError {
            variable,
            reason: "must name a Secrets Manager secret (secretsmanager:<name> or its ARN) or an \
                     SSM SecureString parameter (ssm:<name> or its ARN); the secret itself does \
                     not belong in the environment"
                .into(),
        };
        let service = value
            .strip_prefix("arn:")
            .and_then(|rest| rest.split(':').nth(1));
        let reference = match (service, value.split_once(':')) {
            (Some("secretsmanager"), _) => SecretRef::SecretsManager(value.to_string()),
            (Some("ssm"), _) if value.contains(":parameter/") => {
                SecretRef::Parameter(value.to_string())
            }
            (None, Some(("secretsmanager", name))) if !name.is_empty() => {
                SecretRef::SecretsManager(name.to_string())
            }
            (None, Some(("ssm", name))) if !name.is_empty() => {
                SecretRef::Parameter(name.to_string())
            }
            _ => return Err(refuse()),
        };
        Ok(reference)
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::SecretsManager(id) => write!(f, "Secrets Manager secret {id}"),
            SecretRef::Parameter(name) => write!(f, "SSM parameter {name}"),
        }
    }
}

/// What reads a secret by its reference.
pub trait Secrets: Send + Sync {
    /// The secret's text. Refused (an error) when it is empty, binary, or an SSM parameter that
    /// is not a `SecureString`: a signing secret is not kept in plain text.
    fn read(&self, reference: &SecretRef) -> impl Future<Output = Result<SecretString>> + Send;
}

/// The secrets read so far, shared by every clone (the function is cloned into tasks).
#[derive(Clone, Default)]
pub struct SecretCache {
    read: Arc<Mutex<HashMap<SecretRef, (SecretString, Instant)>>>,
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.read.lock().map(|m| m.len()).unwrap_or_default();
        write!(f, "SecretCache({held} held)")
    }
}

impl SecretCache {
    /// The secret `reference` names: from the cache while it is fresh, else from `read` (a
    /// [`Secrets::read`] of it).
    pub async fn get<F>(
        &self,
        reference: &SecretRef,
        read: impl FnOnce() -> F,
    ) -> Result<SecretString>
    where
        F: Future<Output = Result<SecretString>>,
    {
        if let Some(secret) = self.fresh(reference) {
            return Ok(secret);
        }
        let secret = read().await?;
        if let Ok(mut read) = self.read.lock() {
            read.insert(reference.clone(), (secret.clone(), Instant::now()));
        }
        Ok(secret)
    }

    fn fresh(&self, reference: &SecretRef) -> Option<SecretString> {
        let read = self.read.lock().ok()?;
        read.get(reference)
            .filter(|(_, at)| at.elapsed() < SECRET_TTL)
            .map(|(secret, _)| secret.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_read_and_a_bare_value_is_refused_as_a_likely_secret() {
        let v = "BREAKWATER_ROLLBACK_SLACK_SECRET_ID";
        assert_eq!(
            SecretRef::parse(v, "secretsmanager:breakwater/slack").unwrap(),
            SecretRef::SecretsManager("breakwater/slack".into())
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:breakwater/slack-AbCdEf";
        assert_eq!(
            SecretRef::parse(v, arn).unwrap(),
            SecretRef::SecretsManager(arn.into())
        );
        assert_eq!(
            SecretRef::parse(v, "ssm:/breakwater/slack").unwrap(),
            SecretRef::Parameter("/breakwater/slack".into())
        );
        let arn = "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/breakwater/slack";
        assert_eq!(
            SecretRef::parse(v, arn).unwrap(),
            SecretRef::Parameter(arn.into())
        );
        for bad in [
            "8f742231b10e8888abcd99yyyzzz85a5",
            "ssm:",
            "arn:aws:s3:::bucket",
        ] {
            assert_eq!(SecretRef::parse(v, bad).unwrap_err().variable, v, "{bad}");
        }
        let err = SecretRef::parse(v, "8f742231b10e8888abcd99yyyzzz85a5").unwrap_err();
        assert!(
            !err.reason.contains("8f742231"),
            "the refusal never echoes the value"
        );
    }
}
