//! The IAM adapter: inline policies of roles (the budget's optional L4 guard-rail).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::ports::{InlinePolicy, RolePolicies};

/// [`RolePolicies`] over the IAM API.
#[derive(Debug, Clone)]
pub struct IamRolePolicies {
    client: aws_sdk_iam::Client,
}

impl IamRolePolicies {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_iam::Client) -> Self {
        IamRolePolicies { client }
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986: spaces as `%20`, a `+` is a plus); this
/// decodes them, leaving a `%` that starts no escape as it is.
fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl RolePolicies for IamRolePolicies {
    async fn role_tags(&self, role: &str) -> Result<Option<BTreeMap<String, String>>> {
        match self.client.get_role().role_name(role).send().await {
            Ok(found) => Ok(Some(
                found
                    .role
                    .map(|r| r.tags.unwrap_or_default())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| (t.key, t.value))
                    .collect(),
            )),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::from_sdk(&format!("get role {role}"), &e)),
        }
    }

    async fn get(&self, role: &str, name: &str) -> Result<InlinePolicy> {
        match self
            .client
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
        {
            Ok(found) => Ok(InlinePolicy::Present {
                document: url_decode(&found.policy_document),
            }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                // NoSuchEntity says "role or policy": ask for the role to tell them apart.
                Ok(match self.role_tags(role).await? {
                    Some(_) => InlinePolicy::Absent,
                    None => InlinePolicy::NoRole,
                })
            }
            Err(e) => Err(Error::from_sdk(
                &format!("get inline policy {name} of role {role}"),
                &e,
            )),
        }
    }

    async fn put(&self, role: &str, name: &str, document: &str) -> Result<()> {
        self.client
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| {
                Error::from_sdk(&format!("put inline policy {name} on role {role}"), &e)
            })?;
        Ok(())
    }

    async fn delete(&self, role: &str, name: &str) -> Result<()> {
        match self
            .client
            .delete_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::from_sdk(
                &format!("delete inline policy {name} of role {role}"),
                &e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_decode;

    #[test]
    fn decodes_iam_policy_documents() {
        assert_eq!(
            url_decode("%7B%22Version%22%3A%222012-10-17%22%7D"),
            r#"{"Version":"2012-10-17"}"#
        );
        assert_eq!(url_decode("{\"a\":1}"), "{\"a\":1}");
        assert_eq!(url_decode("50%"), "50%");
        assert_eq!(url_decode("%zz"), "%zz");
    }
}
