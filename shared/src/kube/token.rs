//! The EKS bearer token, made the way `aws eks get-token` and aws-iam-authenticator make it: a
//! presigned STS `GetCallerIdentity` URL whose signature covers the `x-k8s-aws-id: <cluster>`
//! header, as `k8s-aws-v1.` + unpadded base64url. EKS accepts it for 15 minutes after its
//! `X-Amz-Date`; [`TokenCache`] reuses one for 10.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;

use crate::error::{Error, Result};

/// How long a token is reused (EKS accepts it for 15 minutes).
pub const TOKEN_REUSE: Duration = Duration::from_secs(600);

/// Makes the token for `cluster` with `credentials`, signed in `region` at `at`.
pub fn eks_token(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    at: SystemTime,
) -> Result<String> {
    let host = format!("sts.{region}.amazonaws.com");
    let url = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let identity = Identity::from(credentials.clone());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| Error::Aws(format!("EKS token signing parameters: {e}")))?
        .into();
    let headers = [("host", host.as_str()), ("x-k8s-aws-id", cluster)];
    let request = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|e| Error::Aws(format!("EKS token request: {e}")))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| Error::Aws(format!("EKS token signature: {e}")))?
        .into_parts();
    // The order `aws eks get-token` prints: the request's own parameters, then the signature's.
    let mut query = String::from("Action=GetCallerIdentity&Version=2011-06-15");
    let mut signed: Vec<(&str, String)> = instructions
        .params()
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    let rank = |k: &str| {
        [
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Security-Token",
            "X-Amz-Signature",
        ]
        .iter()
        .position(|p| *p == k)
        .unwrap_or(usize::MAX)
    };
    signed.sort_by_key(|(k, _)| rank(k));
    for (k, v) in signed {
        query.push('&');
        query.push_str(k);
        query.push('=');
        query.push_str(&encode(&v));
    }
    let presigned = format!("https://{host}/?{query}");
    Ok(format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned)
    ))
}

/// RFC 3986 query encoding (what botocore uses: everything but unreserved characters).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Tokens reused for [`TOKEN_REUSE`] in a warm container, one per cluster.
#[derive(Debug, Default)]
pub struct TokenCache {
    cached: Mutex<Vec<(String, String, u64)>>,
}

impl TokenCache {
    /// The cached token for `cluster` if it is fresh at `now_ms`, else a new one from `make`.
    pub fn get_or_make(
        &self,
        cluster: &str,
        now_ms: u64,
        make: impl FnOnce() -> Result<String>,
    ) -> Result<String> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let reuse = TOKEN_REUSE.as_millis() as u64;
        cached.retain(|(_, _, made)| now_ms.saturating_sub(*made) < reuse);
        if let Some((_, token, _)) = cached.iter().find(|(c, _, _)| c == cluster) {
            return Ok(token.clone());
        }
        let token = make()?;
        cached.push((cluster.to_string(), token.clone(), now_ms));
        Ok(token)
    }
}

/// `at` as ms since the epoch.
pub fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with botocore (`shared/tests/golden/eks_token.py`) for the same inputs.
    const GOLDEN: &str = "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtZWFzdC0xLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BS0lERVhBTVBMRSUyRjIwMjYxMTIzJTJGdXMtZWFzdC0xJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNjExMjNUMDYwMDAwWiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TZWN1cml0eS1Ub2tlbj1zZXNzaW9uLXRva2VuLWV4YW1wbGUmWC1BbXotU2lnbmF0dXJlPTY3NGEzZGZmOTc0MGIwMTQzN2M3MTZlMmM1NmIwZjQxNDM3ZDNhOWQ2ZTllYWQxMmUzNmFhNmRhMWJhY2Y2ZGU";

    fn credentials() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token-example".into()),
            None,
            "golden",
        )
    }

    #[test]
    fn tokens_are_reused_for_ten_minutes_per_cluster() {
        let cache = TokenCache::default();
        let made = std::cell::Cell::new(0);
        let make = |n: &str| {
            made.set(made.get() + 1);
            Ok(format!("{n}-{}", made.get()))
        };
        assert_eq!(cache.get_or_make("a", 0, || make("a")).unwrap(), "a-1");
        assert_eq!(
            cache.get_or_make("a", 599_999, || make("a")).unwrap(),
            "a-1"
        );
        assert_eq!(cache.get_or_make("b", 1, || make("b")).unwrap(), "b-2");
        assert_eq!(
            cache.get_or_make("a", 600_000, || make("a")).unwrap(),
            "a-3"
        );
    }

    #[test]
    fn the_token_is_byte_for_byte_what_aws_eks_get_token_makes() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_413_600); // 2026-11-23T06:00:00Z
        let token = eks_token(&credentials(), "us-east-1", "prod-east", at).unwrap();
        assert_eq!(token, GOLDEN);
        assert!(!token.contains('='), "unpadded");
        // The signature covers the cluster: another cluster, another token.
        assert_ne!(
            eks_token(&credentials(), "us-east-1", "prod-west", at).unwrap(),
            GOLDEN
        );
    }
}
