//! Manual triggers through the Lambda Function URL: Slack slash commands and PagerDuty v3
//! webhooks. Nothing is believed before its signature is: Slack's `v0=` HMAC-SHA256 of
//! `v0:<timestamp>:<body>` with the timestamp within 5 minutes, PagerDuty's `v1=` HMAC-SHA256 of
//! the body (any of the listed signatures) with `occurred_at` within 5 minutes. Both are compared
//! in constant time (`ring::hmac::verify`). Replays inside the window are refused by the caller
//! (a create-once record per signature / event id).

use base64::Engine;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

/// How far a signed request's time may be from ours.
pub const MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// A Function URL request (payload format 2.0), as far as the webhooks need it.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// `POST`, …
    pub method: String,
    /// `/slack`, `/pagerduty`.
    pub path: String,
    /// Lower-cased header names.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The raw body (base64-decoded when the URL encoded it).
    pub body: Vec<u8>,
}

/// Whether an invocation is a Function URL request.
pub fn is_http(event: &Value) -> bool {
    breakwater::lambda::is_function_url(event)
}

impl HttpRequest {
    /// Reads a Function URL event; `None` for a shape that is not one.
    pub fn from_event(event: &Value) -> Option<Self> {
        let headers = event["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let raw = event["body"].as_str().unwrap_or_default();
        let body = if event["isBase64Encoded"] == true {
            base64::engine::general_purpose::STANDARD.decode(raw).ok()?
        } else {
            raw.as_bytes().to_vec()
        };
        Some(HttpRequest {
            method: event["requestContext"]["http"]["method"]
                .as_str()?
                .to_string(),
            path: event["rawPath"].as_str()?.to_string(),
            headers,
            body,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A Function URL response.
pub fn response(status: u16, body: &Value) -> Value {
    json!({"statusCode": status, "headers": {"content-type": "application/json"},
        "body": body.to_string()})
}

/// Why a request was refused before anything was read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized(pub String);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Slack's signature digits: exactly 64 lowercase hex digits (Slack: "v0=" followed by the
/// hex digest, which its reference implementations produce in lowercase). Any other spelling —
/// upper case included — is refused: one signed request has one spelling, so its replay key
/// cannot be varied by re-casing the header.
fn slack_hex(text: &str) -> Option<Vec<u8>> {
    let lowercase_hex = text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    lowercase_hex.then(|| unhex(text)).flatten()
}

/// A short id for a signed request (its signature's SHA-256, hex): what replay records,
/// idempotency keys and decisions are named by, so that the signature itself is not spread into
/// S3 keys, notifications and logs.
pub fn request_id(source: &str, signature: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, signature.as_bytes());
    format!("{source}-{}", hex(&digest.as_ref()[..16]))
}

fn key(secret: &SecretString) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes())
}

/// The `v0=` signature Slack sends for `body` at `timestamp` (seconds).
pub fn slack_signature(secret: &SecretString, timestamp: &str, body: &[u8]) -> String {
    let mut base = format!("v0:{timestamp}:").into_bytes();
    base.extend_from_slice(body);
    format!("v0={}", hex(hmac::sign(&key(secret), &base).as_ref()))
}

/// The `v1=` signature PagerDuty sends for `body`.
pub fn pagerduty_signature(secret: &SecretString, body: &[u8]) -> String {
    format!("v1={}", hex(hmac::sign(&key(secret), body).as_ref()))
}

/// Checks a Slack request; returns its signature (exactly as Slack spells it: the replay key).
/// The MAC is compared in constant time (`ring::hmac::verify`) over the digits Slack sends.
pub fn verify_slack(
    secret: &SecretString,
    request: &HttpRequest,
    now_ms: u64,
) -> Result<String, Unauthorized> {
    let refuse = |why: &str| Err(Unauthorized(why.to_string()));
    let Some(timestamp) = request.header("x-slack-request-timestamp") else {
        return refuse("no X-Slack-Request-Timestamp");
    };
    let Some(signature) = request.header("x-slack-signature") else {
        return refuse("no X-Slack-Signature");
    };
    let Ok(seconds) = timestamp.parse::<u64>() else {
        return refuse("X-Slack-Request-Timestamp is not a number");
    };
    if seconds.saturating_mul(1000).abs_diff(now_ms) > MAX_SKEW_MS {
        return refuse("the request is older than 5 minutes (or from the future)");
    }
    let Some(tag) = signature.strip_prefix("v0=").and_then(slack_hex) else {
        return refuse("X-Slack-Signature is not v0= and 64 lowercase hex digits");
    };
    let mut base = format!("v0:{timestamp}:").into_bytes();
    base.extend_from_slice(&request.body);
    hmac::verify(&key(secret), &base, &tag)
        .map_err(|_| Unauthorized("the Slack signature does not match".into()))?;
    Ok(signature.to_string())
}

/// Checks a PagerDuty v3 webhook; returns the event's id (the replay key).
pub fn verify_pagerduty(
    secret: &SecretString,
    request: &HttpRequest,
    now_ms: u64,
) -> Result<(String, Value), Unauthorized> {
    let Some(header) = request.header("x-pagerduty-signature") else {
        return Err(Unauthorized("no X-PagerDuty-Signature".into()));
    };
    let k = key(secret);
    let signed = header
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("v1=").and_then(unhex))
        .any(|tag| hmac::verify(&k, &request.body, &tag).is_ok());
    if !signed {
        return Err(Unauthorized(
            "no X-PagerDuty-Signature entry matches".into(),
        ));
    }
    let payload: Value = serde_json::from_slice(&request.body)
        .map_err(|e| Unauthorized(format!("the signed body is not JSON: {e}")))?;
    let occurred = payload["event"]["occurred_at"]
        .as_str()
        .and_then(breakwater::clock::parse_rfc3339)
        .ok_or_else(|| Unauthorized("event.occurred_at is missing".into()))?;
    if occurred.abs_diff(now_ms) > MAX_SKEW_MS {
        return Err(Unauthorized(
            "the event is older than 5 minutes (or from the future)".into(),
        ));
    }
    let id = payload["event"]["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Unauthorized("event.id is missing".into()))?
        .to_string();
    Ok((id, payload))
}

/// The fields of a Slack slash command body.
pub fn form(body: &[u8]) -> std::collections::BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], body: &str) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path: "/slack".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn slack_signatures_match_slacks_documented_example() {
        // https://api.slack.com/authentication/verifying-requests-from-slack (the worked example).
        let secret = SecretString::from("8f742231b10e8888abcd99yyyzzz85a5");
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            slack_signature(&secret, "1531420618", body.as_bytes()),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
        let good = request(
            &[
                ("x-slack-request-timestamp", "1531420618"),
                (
                    "x-slack-signature",
                    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                ),
            ],
            body,
        );
        assert!(verify_slack(&secret, &good, 1_531_420_618_000).is_ok());
        assert!(
            verify_slack(&secret, &good, 1_531_420_618_000 + 301_000).is_err(),
            "stale"
        );
        let mut forged = good.clone();
        forged.body = body.replace("roadrunner", "coyote").into_bytes();
        assert!(verify_slack(&secret, &forged, 1_531_420_618_000).is_err());
        // A timestamp whose milliseconds overflow u64 is stale, not a panic (found writing the
        // fuzz target: `seconds * 1000` overflowed in debug builds).
        let far = request(
            &[
                ("x-slack-request-timestamp", "18446744073709551615"),
                ("x-slack-signature", "v0=00"),
            ],
            body,
        );
        assert!(verify_slack(&secret, &far, 1_531_420_618_000).is_err());
        let unsigned = request(&[("x-slack-request-timestamp", "1531420618")], body);
        assert!(verify_slack(&secret, &unsigned, 1_531_420_618_000).is_err());
        assert_eq!(form(body.as_bytes())["command"], "/webhook-collect");
    }

    #[test]
    fn a_re_cased_slack_signature_is_refused_so_a_captured_request_cannot_be_replayed_under_a_new_key(
    ) {
        // GIVEN Slack's documented example request, correctly signed
        let secret = SecretString::from("8f742231b10e8888abcd99yyyzzz85a5");
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&text=rollback";
        let signature = slack_signature(&secret, "1531420618", body.as_bytes());
        let signed = |sig: &str| {
            request(
                &[
                    ("x-slack-request-timestamp", "1531420618"),
                    ("x-slack-signature", sig),
                ],
                body,
            )
        };
        assert!(verify_slack(&secret, &signed(&signature), 1_531_420_618_000).is_ok());
        // WHEN the same MAC is sent with its hex digits (or the prefix) in upper case
        let upper = format!("v0={}", signature[3..].to_ascii_uppercase());
        let one_upper = {
            let at = signature[3..]
                .find(|c: char| c.is_ascii_lowercase())
                .unwrap()
                + 3;
            let mut s = signature.clone();
            s.replace_range(at..=at, &signature[at..=at].to_ascii_uppercase());
            s
        };
        let prefix = format!("V0={}", &signature[3..]);
        // THEN each spelling is refused: only Slack's own lowercase spelling is accepted
        for respelled in [upper, one_upper, prefix] {
            assert_ne!(respelled, signature);
            let refused = verify_slack(&secret, &signed(&respelled), 1_531_420_618_000);
            assert!(refused.is_err(), "{respelled} was accepted");
        }
        // AND the ids derived from the signature do not carry it
        let id = request_id("slack", &signature);
        assert!(
            id.starts_with("slack-") && !id.contains(&signature[3..]),
            "{id}"
        );
    }

    #[test]
    fn pagerduty_accepts_any_listed_signature_and_refuses_stale_events() {
        let secret = SecretString::from("pd-secret");
        let body = r#"{"event":{"id":"01ABC","event_type":"incident.annotated","occurred_at":"2026-11-23T03:00:00.000Z"}}"#;
        let sig = pagerduty_signature(&secret, body.as_bytes());
        let now = breakwater::clock::parse_rfc3339("2026-11-23T03:01:00Z").unwrap();
        let both = format!("v1=00ff,{sig}");
        let ok = request(&[("x-pagerduty-signature", both.as_str())], body);
        assert_eq!(verify_pagerduty(&secret, &ok, now).unwrap().0, "01ABC");
        assert!(verify_pagerduty(&secret, &ok, now + 10 * 60_000).is_err());
        let other = SecretString::from("other");
        assert!(verify_pagerduty(&other, &ok, now).is_err());
    }
}
