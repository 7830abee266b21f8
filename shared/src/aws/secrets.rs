//! The secrets adapter: Secrets Manager `GetSecretValue` and SSM `GetParameter` (with
//! decryption), behind [`crate::secrets::Secrets`]
//! (<https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html>,
//! <https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameter.html>).

use secrecy::SecretString;

/// The SDK crates, for whoever puts secrets where this adapter reads them (tests, the sandbox).
pub use {aws_sdk_secretsmanager, aws_sdk_ssm};

use crate::aws::Aws;
use crate::error::{Error, Result};
use crate::secrets::{SecretRef, Secrets};

/// [`Secrets`] over Secrets Manager and SSM Parameter Store. It keeps the configuration and
/// makes the one client a read needs (a read is rare: the cache holds a secret for minutes).
#[derive(Debug, Clone)]
pub struct AwsSecrets {
    config: aws_config::SdkConfig,
}

impl AwsSecrets {
    /// The adapter with `aws`'s configuration.
    pub fn new(aws: &Aws) -> Self {
        AwsSecrets {
            config: aws.config().clone(),
        }
    }

    fn secretsmanager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.config)
    }

    fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.config)
    }
}

impl Secrets for AwsSecrets {
    async fn read(&self, reference: &SecretRef) -> Result<SecretString> {
        match reference {
            SecretRef::SecretsManager(id) => {
                let out = self
                    .secretsmanager()
                    .get_secret_value()
                    .secret_id(id)
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk(&format!("GetSecretValue {id}"), &e))?;
                out.secret_string()
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_string()))
                    .ok_or_else(|| {
                        Error::Aws(format!(
                            "secret {id} has no SecretString (a binary secret cannot sign webhooks)"
                        ))
                    })
            }
            SecretRef::Parameter(name) => {
                let out = self
                    .ssm()
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk(&format!("GetParameter {name}"), &e))?;
                let parameter = out
                    .parameter()
                    .ok_or_else(|| Error::Aws(format!("GetParameter {name}: no parameter")))?;
                if parameter.r#type() != Some(&aws_sdk_ssm::types::ParameterType::SecureString) {
                    return Err(Error::Aws(format!(
                        "SSM parameter {name} is not a SecureString: a signing secret is not kept in plain text"
                    )));
                }
                parameter
                    .value()
                    .filter(|v| !v.is_empty())
                    .map(|v| SecretString::from(v.to_string()))
                    .ok_or_else(|| Error::Aws(format!("SSM parameter {name} is empty")))
            }
        }
    }
}
