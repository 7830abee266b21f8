//! The durable store: create-once records, compare-and-swap updates, and on top of them leases
//! ([`leases`]) and once-per-event effects ([`once`]), over an [`ObjectStore`] (S3 in a deployment).
//!
//! S3 is strongly consistent and refuses a conditional write that lost a race with 412 (or 409
//! `ConditionalRequestConflict` while a competing write is in flight), which gives mutual
//! exclusion without another database. Every record is JSON with a schema version.

mod leases;
mod once;
mod records;

use std::sync::Arc;

use crate::aws::objects::S3Objects;
use crate::clock::Clock;
use crate::objects::ObjectStore;

pub use leases::{Acquisition, Lease};
pub use once::Idempotent;
pub use records::Versioned;

/// The schema version written into every record.
pub const SCHEMA_VERSION: u32 = 1;

/// How many times a lost race is re-read and re-decided before giving up with `Conflict`.
const RACE_ATTEMPTS: usize = 5;

/// The state store of one bucket.
#[derive(Debug, Clone)]
pub struct StateStore {
    objects: Arc<dyn ObjectStore>,
    bucket: String,
    clock: Arc<dyn Clock>,
}

impl StateStore {
    /// A store over the S3 bucket `bucket`, reading time from `clock`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self::over(Arc::new(S3Objects::new(s3, bucket)), clock)
    }

    /// A store over any object store (an in-memory fake in tests), reading time from `clock`.
    pub fn over(objects: Arc<dyn ObjectStore>, clock: Arc<dyn Clock>) -> Self {
        StateStore {
            bucket: objects.location().to_string(),
            objects,
            clock,
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The store's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

/// A key segment built from an outside id (event ids, resource names): anything but
/// `[A-Za-z0-9._-]` is percent-encoded, so distinct ids never share a key.
pub fn key_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A token no other claim carries: the process, the time and a counter.
fn claim_token(now_ms: u64) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{:x}-{now_ms:x}-{nanos:x}-{n:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_segments_keep_safe_characters_and_encode_the_rest() {
        assert_eq!(key_segment("i-0abc.def_1"), "i-0abc.def_1");
        assert_eq!(key_segment("a/b c"), "a%2Fb%20c");
        assert_ne!(key_segment("a/b"), key_segment("a%2Fb"));
    }
}
