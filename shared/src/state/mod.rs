//! The durable store: create-once records, compare-and-swap updates, and on top of them leases
//! ([`leases`]) and once-per-event effects ([`once`]), over an [`ObjectStore`] (S3 in a deployment).
//!
//! S3 is strongly consistent and refuses a conditional write that lost a race with 412 (or 409
//! `ConditionalRequestConflict` while a competing write is in flight), which gives mutual
//! exclusion without another database. Every record is JSON with a schema version.

mod kept;
mod leases;
mod once;
mod records;

use std::sync::Arc;

use crate::aws::objects::S3Objects;
use crate::clock::Clock;
use crate::objects::ObjectStore;

pub use kept::KeptLease;
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
    use crate::error::Error;

    #[test]
    fn key_segments_keep_safe_characters_and_encode_the_rest() {
        assert_eq!(key_segment("i-0abc.def_1"), "i-0abc.def_1");
        assert_eq!(key_segment("a/b c"), "a%2Fb%20c");
        assert_ne!(key_segment("a/b"), key_segment("a%2Fb"));
    }

    use crate::clock::ManualClock;
    use crate::fakes::object_store::{MemoryObjects, ObjectFault};

    fn store_over(objects: &Arc<MemoryObjects>) -> StateStore {
        StateStore::over(objects.clone(), Arc::new(ManualClock::at(1_000)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_whose_answer_was_lost_is_taken_for_our_own() {
        // GIVEN a store whose next write is carried out but answered 412 (the SDK's retry)
        let objects = Arc::new(MemoryObjects::new("state"));
        let store = store_over(&objects);
        objects.inject(ObjectFault::WriteAppliedThenRefused);
        // WHEN a record is created
        let created = store.create("r", &7u32).await.unwrap();
        // THEN the create is ours, with the ETag stored, and it reads back
        let read = store.get::<u32>("r").await.unwrap().unwrap();
        assert_eq!(created, Some(read.etag));
        assert_eq!(read.value, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_refused_while_the_key_is_absent_is_sent_again() {
        // GIVEN a store whose next write is refused 412 though nothing is there
        let objects = Arc::new(MemoryObjects::new("state"));
        let store = store_over(&objects);
        objects.inject(ObjectFault::WriteRefused);
        // WHEN a record is created, THEN it is, on the second attempt
        assert!(store.create("r", &1u32).await.unwrap().is_some());
        assert_eq!(objects.writes(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_replace_refused_while_its_version_stands_is_sent_again() {
        // GIVEN a record, and a store whose next write is refused 412 spuriously
        let objects = Arc::new(MemoryObjects::new("state"));
        let store = store_over(&objects);
        let etag = store.create("r", &1u32).await.unwrap().unwrap();
        objects.inject(ObjectFault::WriteRefused);
        // WHEN it is replaced at the version read, THEN the replace is made
        store.replace("r", &2u32, &etag).await.unwrap();
        assert_eq!(store.get::<u32>("r").await.unwrap().unwrap().value, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_over_someone_elses_record_changes_nothing() {
        // GIVEN a record somebody else created
        let objects = Arc::new(MemoryObjects::new("state"));
        let store = store_over(&objects);
        store.create("r", &1u32).await.unwrap();
        let writes = objects.writes();
        // WHEN it is created again, THEN the answer is "already there" and it stands unchanged
        assert_eq!(store.create("r", &2u32).await.unwrap(), None);
        assert_eq!(objects.writes(), writes + 1);
        assert_eq!(store.get::<u32>("r").await.unwrap().unwrap().value, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_keeps_conflicting_is_a_conflict() {
        // GIVEN a store whose next write keeps racing another (409)
        let objects = Arc::new(MemoryObjects::new("state"));
        let store = store_over(&objects);
        objects.inject(ObjectFault::WriteConflicted);
        // WHEN a record is put, THEN Conflict, naming HTTP 409, and nothing is stored
        let err = store.put("r", &1u32).await.unwrap_err();
        assert!(
            matches!(err, Error::Conflict(ref m) if m.contains("409")),
            "{err}"
        );
        assert!(objects.keys().is_empty());
    }
}
