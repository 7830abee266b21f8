//! Records: JSON envelopes with a schema version, read with their ETag and written create-once,
//! compare-and-swap or last-writer-wins, with the rules that tell a lost race from our own retry.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{claim_token, StateStore, RACE_ATTEMPTS, SCHEMA_VERSION};
use crate::error::{Error, Result};
use crate::objects::{Precondition, PutOutcome, StoredObject};

/// How many times a 412 whose condition holds again is sent again before it is a `Conflict`.
const REFUSED_RETRIES: u32 = 3;

/// A record as read, with the ETag that a compare-and-swap must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The record's content.
    pub value: T,
    /// The S3 ETag of the version read.
    pub etag: String,
}

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

impl StateStore {
    /// Reads a record; `None` when there is none.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>> {
        let Some(StoredObject { body: bytes, etag }) = self.objects.get(key).await? else {
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
        Ok(self.objects.get(key).await?.map(|object| object.body))
    }

    /// Deletes a record; one already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.objects.delete(key).await
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
        match self
            .objects
            .put(key, body, content_type, Precondition::None)
            .await?
        {
            PutOutcome::Written(etag) => Ok(etag),
            refused => Err(Error::Conflict(format!(
                "s3://{}/{key}: write refused (HTTP {})",
                self.bucket,
                refused.status()
            ))),
        }
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
        let body = serde_json::to_vec(&envelope)
            .map_err(|e| Error::Internal(format!("encode {key}: {e}")))?;
        let mut refused = 0;
        loop {
            let outcome = self
                .objects
                .put(key, body.clone(), "application/json", precondition)
                .await?;
            if outcome == PutOutcome::PreconditionFailed {
                match self.objects.get(key).await? {
                    Some(stored) if stored.body == body => {
                        tracing::info!(record = %key, "a retried conditional write found its own first attempt: done");
                        return Ok(stored.etag);
                    }
                    // `If-None-Match: *` failed, yet the key is absent now: the object that
                    // stood in the way was deleted in between. Nothing of ours was written
                    // and nobody else's record is there, so creating it again is the answer,
                    // not "somebody else created it" (which would leave no record at all).
                    None if matches!(precondition, Precondition::Absent)
                        && refused < REFUSED_RETRIES =>
                    {
                        refused += 1;
                        tracing::info!(record = %key, vanished = refused, "a create was refused (412) but the key is absent: trying it again");
                        continue;
                    }
                    // `If-Match` failed, yet the version it named is the one there now:
                    // nobody else wrote in between (an overwrite would have changed the
                    // ETag), so the condition holds again and the write is sent again.
                    Some(stored)
                        if matches!(precondition, Precondition::Matches(e) if e == stored.etag)
                            && refused < REFUSED_RETRIES =>
                    {
                        refused += 1;
                        tracing::info!(record = %key, vanished = refused, "a replace was refused (412) but the version it expected is still there: trying it again");
                        continue;
                    }
                    _ => {}
                }
            }
            return match outcome {
                PutOutcome::Written(etag) => Ok(etag),
                refusal => Err(Error::Conflict(format!(
                    "s3://{}/{key}: {} (HTTP {})",
                    self.bucket,
                    describe(precondition),
                    refusal.status(),
                ))),
            };
        }
    }
}

/// What a refused write under `precondition` means.
fn describe(precondition: Precondition<'_>) -> String {
    match precondition {
        Precondition::Absent => "already exists".to_string(),
        Precondition::Matches(etag) => format!("changed since version {etag}"),
        Precondition::None => "write refused".to_string(),
    }
}
