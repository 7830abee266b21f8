//! The object-store port under the state store: whole objects read with their ETag and written
//! whatever is there, only if absent, or only if still a given version.
//!
//! S3 gives these conditional writes (`If-None-Match: *`, `If-Match: <etag>`; "Conditional
//! requests", https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-requests.html);
//! the adapter is [`crate::aws::objects::S3Objects`], the fake `fakes::object_store::MemoryObjects`.

use std::future::Future;
use std::pin::Pin;

use crate::error::Result;

/// A boxed future, so that the port can be used as `Arc<dyn ObjectStore>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An object as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its bytes.
    pub body: Vec<u8>,
    /// The ETag of the version read: what a compare-and-swap names.
    pub etag: String,
}

/// The condition a write is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition<'a> {
    /// Only if no object has the key (`If-None-Match: *`).
    Absent,
    /// Only if the object is still the version with this ETag (`If-Match`).
    Matches(&'a str),
    /// Whatever is there (last writer wins).
    None,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was written; its new ETag.
    Written(String),
    /// The precondition did not hold (HTTP 412): nothing was written by this request.
    PreconditionFailed,
    /// The write kept racing another operation on the key (HTTP 409
    /// `ConditionalRequestConflict`, after the adapter's own retries): nothing was written.
    Conflicted,
}

impl PutOutcome {
    /// The HTTP status S3 answers for this outcome.
    pub fn status(&self) -> u16 {
        match self {
            PutOutcome::Written(_) => 200,
            PutOutcome::PreconditionFailed => 412,
            PutOutcome::Conflicted => 409,
        }
    }
}

/// A store of whole objects under keys, in one place (a bucket).
///
/// Errors: a read the caller may not make is `Forbidden` (S3 answers a missing key with 403 to a
/// role without `s3:ListBucket`), transient failures are `Retryable`, the rest `Aws`.
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Where the objects live (the bucket name), for messages.
    fn location(&self) -> &str;

    /// Reads an object; `None` when the key holds none.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<StoredObject>>>;

    /// Writes `body` with `content_type` under `precondition`.
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        content_type: &'a str,
        precondition: Precondition<'a>,
    ) -> BoxFuture<'a, Result<PutOutcome>>;

    /// Deletes an object; one already gone is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Creates an object only if the key holds none.
    fn create_if_absent<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<PutOutcome>> {
        self.put(key, body, content_type, Precondition::Absent)
    }

    /// Replaces an object only if it is still the version `etag`; a missing key is `NotFound`
    /// (S3 answers `If-Match` on a missing key with 404 `NoSuchKey`).
    fn put_if_match<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        content_type: &'a str,
        etag: &'a str,
    ) -> BoxFuture<'a, Result<PutOutcome>> {
        self.put(key, body, content_type, Precondition::Matches(etag))
    }
}
