//! The AWS Budgets notification is plain text in an SNS message; `parse` reads amounts, the
//! threshold and the budget's name out of it. Any text must give an alert or `Unknown`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = std::str::from_utf8(data) {
        let _ = budget::message::parse(body);
    }
});
