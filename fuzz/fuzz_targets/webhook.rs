//! The rollback function's Function URL: the request shape, the Slack and PagerDuty signature
//! checks (with any timestamp, any header) and the slash-command form. Forged requests must be
//! refused with a reason, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollback::webhook;
use secrecy::SecretString;
use serde_json::Value;

/// 2026-11-20T00:00:00Z
const NOW_MS: u64 = 1_795_132_800_000;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if !webhook::is_http(&event) {
        return;
    }
    let Some(request) = webhook::HttpRequest::from_event(&event) else {
        return;
    };
    let secret = SecretString::from("fuzz-signing-secret");
    let _ = webhook::verify_slack(&secret, &request, NOW_MS);
    let _ = webhook::verify_pagerduty(&secret, &request, NOW_MS);
    let _ = webhook::form(&request.body);
});
