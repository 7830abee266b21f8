//! The durable store on S3: create-once records (`If-None-Match: *`), compare-and-swap updates
//! (`If-Match: <etag>`), and on top of them leases and idempotency records.
//!
//! S3 is strongly consistent and refuses a conditional write that lost a race with 412 (or 409
//! `ConditionalRequestConflict` while a competing write is in flight), which gives mutual
//! exclusion without another database. Every record is JSON with a schema version.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::aws::http_status;
use crate::clock::Clock;
use crate::error::{Error, Result};

/// The schema version written into every record.
pub const SCHEMA_VERSION: u32 = 1;

/// How many times a lost race is re-read and re-decided before giving up with `Conflict`.
const RACE_ATTEMPTS: usize = 5;

/// A record as read, with the ETag that a compare-and-swap must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The record's content.
    pub value: T,
    /// The S3 ETag of the version read.
    pub etag: String,
}

/// How many times a conditional write answered 409 is sent again before it is a `Conflict`.
const WRITE_CONFLICT_RETRIES: u32 = 3;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    schema_version: u32,
    written_at_ms: u64,
    /// This write's own token: the SDK's retry of it sends the same bytes, another writer's never
    /// does, so finding these bytes after a 412 proves the write was this one (records written
    /// before it had none).
    #[serde(default)]
    write: String,
    data: T,
}

/// The S3 state store of one bucket.
#[derive(Debug, Clone)]
pub struct StateStore {
    s3: aws_sdk_s3::Client,
    bucket: String,
    clock: Arc<dyn Clock>,
}

impl StateStore {
    /// A store over `bucket`, reading time from `clock`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        StateStore {
            s3,
            bucket: bucket.into(),
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

    /// Reads a record; `None` when there is none.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>> {
        let Some((bytes, etag)) = self.get_raw(key).await? else {
            return Ok(None);
        };
        let envelope: Envelope<T> =
            serde_json::from_slice(&bytes).map_err(|e| Error::CorruptRecord {
                key: key.to_string(),
                reason: e.to_string(),
            })?;
        if envelope.schema_version != SCHEMA_VERSION {
            return Err(Error::CorruptRecord {
                key: key.to_string(),
                reason: format!(
                    "schema version {} (this build reads {SCHEMA_VERSION})",
                    envelope.schema_version
                ),
            });
        }
        Ok(Some(Versioned {
            value: envelope.data,
            etag,
        }))
    }

    /// Reads a raw document (a plan an operator uploaded); `None` when there is none.
    pub async fn get_document(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_raw(key).await?.map(|(bytes, _)| bytes))
    }

    /// Deletes a record; one already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::from_sdk(&format!("delete s3://{}/{key}", self.bucket), &e))
    }

    async fn get_raw(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        let response = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(r) => r,
            Err(err)
                if err.as_service_error().is_some_and(|e| e.is_no_such_key())
                    || http_status(&err) == Some(404) =>
            {
                return Ok(None)
            }
            // Without s3:ListBucket S3 answers a missing key with 403, not 404 (GetObject,
            // "Permissions"): say so rather than pass it off as absent or as a generic error.
            // https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
            Err(err) if http_status(&err) == Some(403) => {
                return Err(Error::Forbidden(format!(
                    "access denied reading s3://{}/{key} (does the role have s3:ListBucket on the prefix?)",
                    self.bucket
                )))
            }
            Err(err) => {
                return Err(Error::from_sdk(
                    &format!("get s3://{}/{key}", self.bucket),
                    &err,
                ))
            }
        };
        let etag = response.e_tag().unwrap_or_default().to_string();
        let bytes = response
            .body
            .collect()
            .await
            .map_err(|e| Error::Retryable(format!("read s3://{}/{key}: {e}", self.bucket)))?
            .into_bytes()
            .to_vec();
        Ok(Some((bytes, etag)))
    }

    /// Writes a record only if none exists. `Ok(Some(etag))` when this call created it,
    /// `Ok(None)` when one was already there.
    pub async fn create<T: Serialize>(&self, key: &str, value: &T) -> Result<Option<String>> {
        match self.write(key, value, Precondition::Absent).await {
            Ok(etag) => Ok(Some(etag)),
            Err(Error::Conflict(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Replaces a record only if it is still the version `etag`; a stale ETag is `Conflict`.
    pub async fn replace<T: Serialize>(&self, key: &str, value: &T, etag: &str) -> Result<String> {
        self.write(key, value, Precondition::Matches(etag)).await
    }

    /// Writes a record whatever is there (reports and other last-writer-wins documents).
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<String> {
        self.write(key, value, Precondition::None).await
    }

    /// Read-modify-write of one record under compare-and-swap: `change` is applied to the current
    /// value (the default when absent) and says whether it changed anything; a change is written
    /// only if nobody wrote in between (a lost race reads again), no change writes nothing.
    /// Returns the value as it stands.
    pub async fn update<T, F>(&self, key: &str, mut change: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Default,
        F: FnMut(&mut T) -> bool,
    {
        for _ in 0..RACE_ATTEMPTS {
            let current = self.get::<T>(key).await?;
            let (mut value, etag) = match current {
                Some(v) => (v.value, Some(v.etag)),
                None => (T::default(), None),
            };
            if !change(&mut value) {
                return Ok(value);
            }
            let written = match &etag {
                Some(etag) => self.replace(key, &value, etag).await.map(Some),
                None => self.create(key, &value).await,
            };
            match written {
                Ok(Some(_)) => return Ok(value),
                Ok(None) | Err(Error::Conflict(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(Error::Conflict(format!(
            "record {key}: lost {RACE_ATTEMPTS} races in a row"
        )))
    }

    /// Writes a raw document (Markdown, SVG) whatever is there.
    pub async fn put_document(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<String> {
        let what = format!("put s3://{}/{key}", self.bucket);
        let response = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| Error::from_sdk(&what, &e))?;
        Ok(response.e_tag().unwrap_or_default().to_string())
    }

    /// Writes `value` under `precondition`.
    ///
    /// A conditional write refused with 412 may be this very write: the SDK retries a request
    /// whose connection broke after S3 had carried it out, and the retry finds its own object.
    /// So a refusal reads the key back, and when it holds exactly the bytes this call sent
    /// (the envelope carries the writer's clock, and claims a token of their own) the write
    /// is reported as done, with the ETag read.
    async fn write<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        precondition: Precondition<'_>,
    ) -> Result<String> {
        let now = self.clock.now_ms();
        let envelope = Envelope {
            schema_version: SCHEMA_VERSION,
            written_at_ms: now,
            write: claim_token(now),
            data: value,
        };
        let body =
            serde_json::to_vec(&envelope).map_err(|e| Error::Aws(format!("encode {key}: {e}")))?;
        // S3 answers 409 `ConditionalRequestConflict` when a conditional write raced another
        // operation on the key; nothing was written and "you can retry the request" (PutObject,
        // Amazon S3 API Reference). The SDK does not, so the store does, a few times.
        let mut conflicts = 0;
        let mut vanished = 0;
        'attempt: loop {
            let sent = loop {
                let mut request = self
                    .s3
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .content_type("application/json")
                    .body(ByteStream::from(body.clone()));
                request = match precondition {
                    Precondition::Absent => request.if_none_match("*"),
                    Precondition::Matches(etag) => request.if_match(etag),
                    Precondition::None => request,
                };
                match request.send().await {
                    Err(err)
                        if http_status(&err) == Some(409) && conflicts < WRITE_CONFLICT_RETRIES =>
                    {
                        conflicts += 1;
                        tracing::info!(record = %key, conflicts, "a conditional write raced another (409): trying it again");
                        tokio::time::sleep(Duration::from_millis(50 * u64::from(conflicts))).await;
                    }
                    other => break other,
                }
            };
            match sent {
                Ok(response) => return Ok(response.e_tag().unwrap_or_default().to_string()),
                Err(err) if matches!(http_status(&err), Some(412 | 409)) => {
                    let status = http_status(&err).unwrap_or_default();
                    if status == 412 {
                        match self.get_raw(key).await? {
                            Some((stored, etag)) if stored == body => {
                                tracing::info!(record = %key, "a retried conditional write found its own first attempt: done");
                                return Ok(etag);
                            }
                            // `If-None-Match: *` failed, yet the key is absent now: the object that
                            // stood in the way was deleted in between. Nothing of ours was written
                            // and nobody else's record is there, so creating it again is the answer,
                            // not "somebody else created it" (which would leave no record at all).
                            None if matches!(precondition, Precondition::Absent)
                                && vanished < WRITE_CONFLICT_RETRIES =>
                            {
                                vanished += 1;
                                tracing::info!(record = %key, vanished, "a create was refused (412) but the key is absent: trying it again");
                                continue 'attempt;
                            }
                            // `If-Match` failed, yet the version it named is the one there now:
                            // nobody else wrote in between (an overwrite would have changed the
                            // ETag), so the condition holds again and the write is sent again.
                            Some((_, now))
                                if matches!(precondition, Precondition::Matches(e) if e == now)
                                    && vanished < WRITE_CONFLICT_RETRIES =>
                            {
                                vanished += 1;
                                tracing::info!(record = %key, vanished, "a replace was refused (412) but the version it expected is still there: trying it again");
                                continue 'attempt;
                            }
                            _ => {}
                        }
                    }
                    return Err(Error::Conflict(format!(
                        "s3://{}/{key}: {} (HTTP {status})",
                        self.bucket,
                        precondition.describe(),
                    )));
                }
                Err(err) => {
                    return Err(Error::from_sdk(
                        &format!("put s3://{}/{key}", self.bucket),
                        &err,
                    ))
                }
            }
        }
    }

    /// Acquires the lease `leases/<scope>/<id>` for `owner` for `ttl`.
    ///
    /// A free or expired lease is taken (the takeover is a compare-and-swap on the expired
    /// record, so of two racing takers exactly one wins); a lease the same owner already holds is
    /// extended; a live lease of another owner is reported as [`Acquisition::Held`].
    pub async fn acquire_lease(
        &self,
        scope: &str,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Acquisition> {
        let key = format!("leases/{scope}/{}", key_segment(id));
        for _ in 0..RACE_ATTEMPTS {
            let now = self.clock.now_ms();
            let fresh = LeaseRecord {
                owner: owner.to_string(),
                acquired_at_ms: now,
                expires_at_ms: now + ttl.as_millis() as u64,
                generation: 1,
            };
            if let Some(etag) = self.create(&key, &fresh).await? {
                return Ok(Acquisition::Acquired(Lease::from_record(
                    key, fresh, etag, None,
                )));
            }
            let Some(current) = self.get::<LeaseRecord>(&key).await? else {
                continue;
            };
            let live = current.value.expires_at_ms > now;
            if live && current.value.owner != owner {
                return Ok(Acquisition::Held {
                    owner: current.value.owner,
                    expires_at_ms: current.value.expires_at_ms,
                });
            }
            let previous = (current.value.owner != owner).then(|| current.value.owner.clone());
            let next = LeaseRecord {
                generation: current.value.generation + 1,
                ..fresh
            };
            match self.replace(&key, &next, &current.etag).await {
                Ok(etag) => {
                    return Ok(Acquisition::Acquired(Lease::from_record(
                        key, next, etag, previous,
                    )))
                }
                Err(Error::Conflict(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(Error::Conflict(format!(
            "lease {key}: lost {RACE_ATTEMPTS} races in a row"
        )))
    }

    /// Extends a held lease by `ttl` from now; `Conflict` when it was lost (taken over after expiry).
    pub async fn renew_lease(&self, lease: &mut Lease, ttl: Duration) -> Result<()> {
        let now = self.clock.now_ms();
        let record = LeaseRecord {
            owner: lease.owner.clone(),
            acquired_at_ms: lease.acquired_at_ms,
            expires_at_ms: now + ttl.as_millis() as u64,
            generation: lease.generation,
        };
        let etag = self
            .replace(&lease.key, &record, &lease.etag)
            .await
            .map_err(|e| match e {
                Error::Conflict(_) => {
                    Error::Conflict(format!("lease {}: lost by {}", lease.key, lease.owner))
                }
                other => other,
            })?;
        lease.etag = etag;
        lease.expires_at_ms = record.expires_at_ms;
        Ok(())
    }

    /// Releases a held lease (marks it expired with a compare-and-swap). Releasing a lease that
    /// someone else has since taken over changes nothing and is not an error.
    pub async fn release_lease(&self, lease: Lease) -> Result<()> {
        let record = LeaseRecord {
            owner: lease.owner.clone(),
            acquired_at_ms: lease.acquired_at_ms,
            expires_at_ms: 0,
            generation: lease.generation,
        };
        match self.replace(&lease.key, &record, &lease.etag).await {
            Ok(_) => Ok(()),
            Err(Error::Conflict(_)) => {
                tracing::warn!(lease = %lease.key, owner = %lease.owner, "lease was taken over before release");
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// Runs `effect` to completion once per `(function, event_id)`, as far as the store can
    /// tell: the claim is written before the effect and the result after it, so an owner that
    /// dies in between leaves a claim that lapses after `ttl`, and the effect runs again then
    /// (at least once; effects are idempotent by design).
    ///
    /// The first delivery creates an in-progress record, runs the effect and stores its result;
    /// a repeat returns the stored result without running anything. A duplicate that arrives
    /// while the first is still running gets `Conflict` (the caller's retry will find the stored
    /// result). An effect that failed, or whose owner vanished past `ttl`, may be run again.
    ///
    /// Each claim carries a token of its own, so a claim this call wrote is recognised as its
    /// own when the write's answer was lost and the SDK's retry was refused (412).
    pub async fn once<T, F, Fut>(
        &self,
        function: &str,
        event_id: &str,
        owner: &str,
        ttl: Duration,
        effect: F,
    ) -> Result<Idempotent<T>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let key = format!("idempotency/{function}/{}", key_segment(event_id));
        let token = claim_token(self.clock.now_ms());
        let mut etag = None;
        for _ in 0..RACE_ATTEMPTS {
            let now = self.clock.now_ms();
            let claim = IdempotencyRecord::InProgress {
                owner: owner.to_string(),
                expires_at_ms: now + ttl.as_millis() as u64,
                claim: token.clone(),
            };
            if let Some(created) = self.create(&key, &claim).await? {
                etag = Some(created);
                break;
            }
            let Some(current) = self.get::<IdempotencyRecord>(&key).await? else {
                continue;
            };
            match current.value {
                IdempotencyRecord::Completed { result, .. } => {
                    let stored =
                        serde_json::from_value(result).map_err(|e| Error::CorruptRecord {
                            key: key.clone(),
                            reason: e.to_string(),
                        })?;
                    return Ok(Idempotent::Repeat(stored));
                }
                IdempotencyRecord::InProgress { claim, .. } if claim == token => {
                    // This call's own claim (a write whose answer was lost): it holds it.
                    etag = Some(current.etag);
                    break;
                }
                IdempotencyRecord::InProgress {
                    owner: other,
                    expires_at_ms,
                    ..
                } if expires_at_ms > now => {
                    return Err(Error::Conflict(format!(
                        "event {event_id} is already being handled by {other}"
                    )));
                }
                IdempotencyRecord::InProgress { .. } | IdempotencyRecord::Failed { .. } => {
                    match self.replace(&key, &claim, &current.etag).await {
                        Ok(taken) => {
                            etag = Some(taken);
                            break;
                        }
                        Err(Error::Conflict(_)) => continue,
                        Err(other) => return Err(other),
                    }
                }
            }
        }
        let Some(etag) = etag else {
            return Err(Error::Conflict(format!(
                "idempotency record {key}: lost {RACE_ATTEMPTS} races in a row"
            )));
        };
        match effect().await {
            Ok(value) => {
                let result = serde_json::to_value(&value)
                    .map_err(|e| Error::Aws(format!("encode result of {key}: {e}")))?;
                let done = IdempotencyRecord::Completed {
                    result,
                    completed_at_ms: self.clock.now_ms(),
                };
                if let Err(err) = self.settle(&key, &done, &etag, &token).await {
                    // The effect happened; a failed bookkeeping write must not report it as failed.
                    tracing::error!(record = %key, error = %err, "effect done but its idempotency record was not completed");
                }
                Ok(Idempotent::Fresh(value))
            }
            Err(err) => {
                let failed = IdempotencyRecord::Failed {
                    error: err.to_string(),
                    failed_at_ms: self.clock.now_ms(),
                };
                if let Err(write_err) = self.settle(&key, &failed, &etag, &token).await {
                    tracing::warn!(record = %key, error = %write_err, "could not mark the idempotency record failed");
                }
                Err(err)
            }
        }
    }

    /// Replaces this call's claim (`token`, version `etag`) with how it ended. A refusal (a 409
    /// while another conditional write was in flight, a 412) is read again: while the record
    /// is still this claim, the write is made on the version read; a claim taken over after
    /// its lapse is left to its new owner.
    async fn settle(
        &self,
        key: &str,
        outcome: &IdempotencyRecord,
        etag: &str,
        token: &str,
    ) -> Result<()> {
        let mut etag = etag.to_string();
        for _ in 0..RACE_ATTEMPTS {
            match self.replace(key, outcome, &etag).await {
                Ok(_) => return Ok(()),
                Err(Error::Conflict(why)) => match self.get::<IdempotencyRecord>(key).await? {
                    Some(Versioned {
                        value: IdempotencyRecord::InProgress { claim, .. },
                        etag: current,
                    }) if claim == token => etag = current,
                    _ => return Err(Error::Conflict(why)),
                },
                Err(other) => return Err(other),
            }
        }
        Err(Error::Conflict(format!(
            "idempotency record {key}: lost {RACE_ATTEMPTS} races in a row"
        )))
    }
}

#[derive(Debug, Clone, Copy)]
enum Precondition<'a> {
    Absent,
    Matches(&'a str),
    None,
}

impl Precondition<'_> {
    fn describe(&self) -> String {
        match self {
            Precondition::Absent => "already exists".to_string(),
            Precondition::Matches(etag) => format!("changed since version {etag}"),
            Precondition::None => "write refused".to_string(),
        }
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseRecord {
    owner: String,
    acquired_at_ms: u64,
    expires_at_ms: u64,
    generation: u64,
}

/// A lease this caller holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's key in the store.
    pub key: String,
    /// Who holds it.
    pub owner: String,
    /// When it was acquired (ms since the epoch).
    pub acquired_at_ms: u64,
    /// When it lapses unless renewed (ms since the epoch).
    pub expires_at_ms: u64,
    /// How many times it changed hands: a fencing token for what the holder writes.
    pub generation: u64,
    /// The owner whose expired lease this acquisition took over, if any.
    pub taken_over_from: Option<String>,
    etag: String,
}

impl Lease {
    fn from_record(
        key: String,
        record: LeaseRecord,
        etag: String,
        taken_over_from: Option<String>,
    ) -> Self {
        Lease {
            key,
            owner: record.owner,
            acquired_at_ms: record.acquired_at_ms,
            expires_at_ms: record.expires_at_ms,
            generation: record.generation,
            taken_over_from,
            etag,
        }
    }
}

/// The outcome of a lease acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquisition {
    /// This caller holds the lease.
    Acquired(Lease),
    /// Another owner holds a live lease.
    Held {
        /// The holder.
        owner: String,
        /// When the holder's lease lapses (ms since the epoch).
        expires_at_ms: u64,
    },
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum IdempotencyRecord {
    InProgress {
        owner: String,
        expires_at_ms: u64,
        /// The claim's own token (records written before it had none).
        #[serde(default)]
        claim: String,
    },
    Completed {
        result: serde_json::Value,
        completed_at_ms: u64,
    },
    Failed {
        error: String,
        failed_at_ms: u64,
    },
}

/// The result of an idempotent run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotent<T> {
    /// The effect ran now.
    Fresh(T),
    /// The effect had already run; this is its stored result.
    Repeat(T),
}

impl<T> Idempotent<T> {
    /// The result, fresh or stored.
    pub fn into_inner(self) -> T {
        match self {
            Idempotent::Fresh(v) | Idempotent::Repeat(v) => v,
        }
    }

    /// Whether this delivery was a repeat.
    pub fn is_repeat(&self) -> bool {
        matches!(self, Idempotent::Repeat(_))
    }
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
