//! The S3 adapter of the object-store port: every S3 call of the state store, and what its
//! answers mean (404 absent, 403 on a read without `s3:ListBucket`, 412 a failed precondition,
//! 409 a conditional write that raced another and is sent again).

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;

use crate::aws::http_status;
use crate::error::{Error, Result};
use crate::objects::{BoxFuture, ObjectStore, Precondition, PutOutcome, StoredObject};

/// How many times a conditional write answered 409 is sent again before it is reported.
const WRITE_CONFLICT_RETRIES: u32 = 3;

/// The objects of one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Objects {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Objects {
    /// The objects of `bucket`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Objects {
            s3,
            bucket: bucket.into(),
        }
    }

    async fn get_object(&self, key: &str) -> Result<Option<StoredObject>> {
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
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| Error::Retryable(format!("read s3://{}/{key}: {e}", self.bucket)))?
            .into_bytes()
            .to_vec();
        Ok(Some(StoredObject { body, etag }))
    }

    async fn put_object(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        precondition: Precondition<'_>,
    ) -> Result<PutOutcome> {
        // S3 answers 409 `ConditionalRequestConflict` when a conditional write raced another
        // operation on the key; nothing was written and "you can retry the request" (PutObject,
        // Amazon S3 API Reference). The SDK does not, so the adapter does, a few times.
        // https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html
        let mut conflicts = 0;
        loop {
            let mut request = self
                .s3
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(content_type)
                .body(ByteStream::from(body.clone()));
            request = match precondition {
                Precondition::Absent => request.if_none_match("*"),
                Precondition::Matches(etag) => request.if_match(etag),
                Precondition::None => request,
            };
            match request.send().await {
                Ok(response) => {
                    return Ok(PutOutcome::Written(
                        response.e_tag().unwrap_or_default().to_string(),
                    ))
                }
                Err(err)
                    if http_status(&err) == Some(409) && conflicts < WRITE_CONFLICT_RETRIES =>
                {
                    conflicts += 1;
                    tracing::info!(record = %key, conflicts, "a conditional write raced another (409): trying it again");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(conflicts))).await;
                }
                Err(err) if http_status(&err) == Some(409) => return Ok(PutOutcome::Conflicted),
                Err(err) if http_status(&err) == Some(412) => {
                    return Ok(PutOutcome::PreconditionFailed)
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
}

impl ObjectStore for S3Objects {
    fn location(&self) -> &str {
        &self.bucket
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<StoredObject>>> {
        Box::pin(self.get_object(key))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        content_type: &'a str,
        precondition: Precondition<'a>,
    ) -> BoxFuture<'a, Result<PutOutcome>> {
        Box::pin(self.put_object(key, body, content_type, precondition))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.s3
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map(drop)
                .map_err(|e| Error::from_sdk(&format!("delete s3://{}/{key}", self.bucket), &e))
        })
    }
}
