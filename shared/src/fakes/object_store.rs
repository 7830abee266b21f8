//! An in-memory object store: the fake of [`ObjectStore`], with S3's conditional-write answers
//! (412 for a failed precondition) and knobs for the faults the state store must survive.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::objects::{BoxFuture, ObjectStore, Precondition, PutOutcome, StoredObject};

/// A call made to the fake, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectCall {
    /// A read of the key.
    Get(String),
    /// A write of the key (`None`, `Absent`, or `Matches <etag>`).
    Put {
        /// The key.
        key: String,
        /// The precondition, as text.
        precondition: String,
    },
    /// A delete of the key.
    Delete(String),
}

/// A fault the next matching call meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectFault {
    /// The next call of any kind fails as throttled (`Retryable`).
    Throttled,
    /// The next read is refused as by a role without `s3:ListBucket` (`Forbidden`).
    ReadForbidden,
    /// The next write keeps racing another (409 after the adapter's retries): nothing written.
    WriteConflicted,
    /// The next write is refused 412 although its condition holds: nothing written.
    WriteRefused,
    /// The next write is carried out but its answer is lost, and the retry is refused 412 (as
    /// when the SDK retries a request S3 had already carried out).
    WriteAppliedThenRefused,
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<String, (Vec<u8>, String, String)>,
    calls: Vec<ObjectCall>,
    faults: VecDeque<ObjectFault>,
    versions: u64,
}

/// The objects of one in-memory bucket.
#[derive(Debug, Default)]
pub struct MemoryObjects {
    bucket: String,
    inner: Mutex<Inner>,
}

impl MemoryObjects {
    /// An empty bucket named `bucket`.
    pub fn new(bucket: impl Into<String>) -> Self {
        MemoryObjects {
            bucket: bucket.into(),
            inner: Mutex::default(),
        }
    }

    /// Queues a fault for the next call it applies to.
    pub fn inject(&self, fault: ObjectFault) {
        self.lock().faults.push_back(fault);
    }

    /// Every call made so far.
    pub fn calls(&self) -> Vec<ObjectCall> {
        self.lock().calls.clone()
    }

    /// How many writes (puts and deletes) were made.
    pub fn writes(&self) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| !matches!(c, ObjectCall::Get(_)))
            .count()
    }

    /// The keys held, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().objects.keys().cloned().collect()
    }

    /// The body and content type of `key`, read without recording a call.
    pub fn peek(&self, key: &str) -> Option<(Vec<u8>, String)> {
        self.lock()
            .objects
            .get(key)
            .map(|(body, _, content_type)| (body.clone(), content_type.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_fault(
        inner: &mut Inner,
        applies: impl Fn(&ObjectFault) -> bool,
    ) -> Option<ObjectFault> {
        let at = inner.faults.iter().position(applies)?;
        inner.faults.remove(at)
    }

    fn get_now(&self, key: &str) -> Result<Option<StoredObject>> {
        let mut inner = self.lock();
        inner.calls.push(ObjectCall::Get(key.to_string()));
        match Self::take_fault(&mut inner, |f| {
            matches!(f, ObjectFault::Throttled | ObjectFault::ReadForbidden)
        }) {
            Some(ObjectFault::Throttled) => {
                return Err(Error::Retryable(format!(
                    "get s3://{}/{key}: SlowDown (fake)",
                    self.bucket
                )))
            }
            Some(_) => {
                return Err(Error::Forbidden(format!(
                    "access denied reading s3://{}/{key} (does the role have s3:ListBucket on the prefix?)",
                    self.bucket
                )))
            }
            None => {}
        }
        Ok(inner.objects.get(key).map(|(body, etag, _)| StoredObject {
            body: body.clone(),
            etag: etag.clone(),
        }))
    }

    fn put_now(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        precondition: Precondition<'_>,
    ) -> Result<PutOutcome> {
        let mut inner = self.lock();
        inner.calls.push(ObjectCall::Put {
            key: key.to_string(),
            precondition: match precondition {
                Precondition::Absent => "Absent".to_string(),
                Precondition::Matches(etag) => format!("Matches {etag}"),
                Precondition::None => "None".to_string(),
            },
        });
        let fault = Self::take_fault(&mut inner, |f| !matches!(f, ObjectFault::ReadForbidden));
        match fault {
            Some(ObjectFault::Throttled) => {
                return Err(Error::Retryable(format!(
                    "put s3://{}/{key}: SlowDown (fake)",
                    self.bucket
                )))
            }
            Some(ObjectFault::WriteConflicted) => return Ok(PutOutcome::Conflicted),
            Some(ObjectFault::WriteRefused) => return Ok(PutOutcome::PreconditionFailed),
            _ => {}
        }
        let holds = match (precondition, inner.objects.get(key)) {
            (Precondition::None, _) | (Precondition::Absent, None) => true,
            (Precondition::Absent, Some(_)) => false,
            // S3 answers `If-Match` on a missing key with 404 `NoSuchKey`, not 412.
            (Precondition::Matches(_), None) => {
                return Err(Error::NotFound(format!(
                    "put s3://{}/{key}: NoSuchKey (The specified key does not exist.)",
                    self.bucket
                )))
            }
            (Precondition::Matches(etag), Some((_, current, _))) => etag == current,
        };
        if !holds {
            return Ok(PutOutcome::PreconditionFailed);
        }
        inner.versions += 1;
        let etag = format!("\"fake-{}\"", inner.versions);
        inner.objects.insert(
            key.to_string(),
            (body, etag.clone(), content_type.to_string()),
        );
        if fault == Some(ObjectFault::WriteAppliedThenRefused) {
            return Ok(PutOutcome::PreconditionFailed);
        }
        Ok(PutOutcome::Written(etag))
    }

    fn delete_now(&self, key: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.calls.push(ObjectCall::Delete(key.to_string()));
        if Self::take_fault(&mut inner, |f| matches!(f, ObjectFault::Throttled)).is_some() {
            return Err(Error::Retryable(format!(
                "delete s3://{}/{key}: SlowDown (fake)",
                self.bucket
            )));
        }
        inner.objects.remove(key);
        Ok(())
    }
}

impl ObjectStore for MemoryObjects {
    fn location(&self) -> &str {
        &self.bucket
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<StoredObject>>> {
        Box::pin(async move { self.get_now(key) })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        content_type: &'a str,
        precondition: Precondition<'a>,
    ) -> BoxFuture<'a, Result<PutOutcome>> {
        Box::pin(async move { self.put_now(key, body, content_type, precondition) })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.delete_now(key) })
    }
}
