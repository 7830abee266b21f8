//! The SNS adapter of the topic port: `Publish` with a subject and `String` message attributes
//! (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html).

use std::collections::BTreeMap;

use aws_sdk_sns::types::MessageAttributeValue;

use crate::error::{Error, Result};
use crate::notify::Topic;
use crate::objects::BoxFuture;

/// One SNS topic.
#[derive(Debug, Clone)]
pub struct SnsTopic {
    sns: aws_sdk_sns::Client,
    arn: String,
}

impl SnsTopic {
    /// The topic `arn`.
    pub fn new(sns: aws_sdk_sns::Client, arn: impl Into<String>) -> Self {
        SnsTopic {
            sns,
            arn: arn.into(),
        }
    }

    async fn send(
        &self,
        subject: &str,
        message: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<Option<String>> {
        let mut request = self
            .sns
            .publish()
            .topic_arn(&self.arn)
            .subject(subject)
            .message(message);
        for (name, value) in attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| Error::Internal(format!("attribute {name}: {e}")))?;
            request = request.message_attributes(name, attribute);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::from_sdk(&format!("publish to {}", self.arn), &e))?;
        Ok(response.message_id().map(str::to_string))
    }
}

impl Topic for SnsTopic {
    fn name(&self) -> &str {
        &self.arn
    }

    fn publish<'a>(
        &'a self,
        subject: &'a str,
        message: &'a str,
        attributes: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(self.send(subject, message, attributes))
    }
}
