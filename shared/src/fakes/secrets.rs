//! An in-memory [`Secrets`]: Secrets Manager secrets and SSM parameters by name, refused as the
//! adapter refuses them (absent, empty, a parameter that is not a `SecureString`), every read
//! recorded, and a knob to fail the next read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;

use crate::error::{Error, Result};
use crate::secrets::{SecretRef, Secrets};

#[derive(Debug, Default)]
struct State {
    secrets: HashMap<String, String>,
    parameters: HashMap<String, (String, bool)>,
    reads: Vec<SecretRef>,
    fail_next: Option<Error>,
}

/// Secrets kept in memory; clones share them.
#[derive(Debug, Clone, Default)]
pub struct FakeSecrets {
    state: Arc<Mutex<State>>,
}

impl FakeSecrets {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a Secrets Manager secret whose `SecretString` is `value`.
    pub fn put_secret(&self, name: &str, value: &str) {
        self.state().secrets.insert(name.into(), value.into());
    }

    /// Keeps an SSM parameter, a `SecureString` when `secure`, else a plain `String`.
    pub fn put_parameter(&self, name: &str, value: &str, secure: bool) {
        self.state()
            .parameters
            .insert(name.into(), (value.into(), secure));
    }

    /// The next read fails with `error` (and reads nothing).
    pub fn fail_next(&self, error: Error) {
        self.state().fail_next = Some(error);
    }

    /// Every reference read, in order (failed reads included).
    pub fn reads(&self) -> Vec<SecretRef> {
        self.state().reads.clone()
    }
}

impl Secrets for FakeSecrets {
    async fn read(&self, reference: &SecretRef) -> Result<SecretString> {
        let mut state = self.state();
        state.reads.push(reference.clone());
        if let Some(error) = state.fail_next.take() {
            return Err(error);
        }
        match reference {
            SecretRef::SecretsManager(id) => match state.secrets.get(id) {
                // As the adapter classifies it: `ResourceNotFoundException` is a not-found, SSM's
                // `ParameterNotFound` an AWS error.
                None => Err(Error::NotFound(format!(
                    "GetSecretValue {id}: ResourceNotFoundException (secret not found)"
                ))),
                Some(v) if v.is_empty() => Err(Error::Aws(format!(
                    "secret {id} has no SecretString (a binary secret cannot sign webhooks)"
                ))),
                Some(v) => Ok(SecretString::from(v.clone())),
            },
            SecretRef::Parameter(name) => match state.parameters.get(name) {
                None => Err(Error::Aws(format!(
                    "GetParameter {name}: ParameterNotFound (no such parameter)"
                ))),
                Some((_, false)) => Err(Error::Aws(format!(
                    "SSM parameter {name} is not a SecureString: a signing secret is not kept in plain text"
                ))),
                Some((v, true)) if v.is_empty() => {
                    Err(Error::Aws(format!("SSM parameter {name} is empty")))
                }
                Some((v, true)) => Ok(SecretString::from(v.clone())),
            },
        }
    }
}
