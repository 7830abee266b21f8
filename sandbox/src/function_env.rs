//! The one builder of a function process's environment in the sandbox: the AWS endpoint (moto or
//! the fault proxy in front of it), moto's test credentials, and the region's state bucket and
//! topic, then each function's own `BREAKWATER_*` settings. The role's credentials are added
//! last, when the process starts ([`crate::iam::role_env`]).
//!
//! The SDK reads `AWS_ENDPOINT_URL` for every service
//! (<https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html>).

use crate::seed::{Estate, RegionEstate};

/// A function's environment, in the order the variables are given to the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionEnv(Vec<(String, String)>);

impl FunctionEnv {
    /// AWS at `endpoint` with the test credentials, the state bucket and topic of `region`.
    pub fn new(endpoint: &str, region: &RegionEstate) -> Self {
        FunctionEnv(vec![
            ("AWS_ENDPOINT_URL".into(), endpoint.into()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            (
                "BREAKWATER_STATE_BUCKET".into(),
                region.state_bucket.clone(),
            ),
            ("BREAKWATER_TOPIC_ARN".into(), region.topic_arn.clone()),
            // As the template: every notification is an event on the default bus too.
            ("BREAKWATER_EVENT_BUS".into(), "default".into()),
        ])
    }

    /// The environment of a function deployed in the estate's primary region.
    pub fn primary(endpoint: &str, estate: &Estate) -> Self {
        Self::new(endpoint, &estate.primary)
    }

    /// Adds `key=value` after what is there.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.0.push((key.to_string(), value.into()));
        self
    }

    /// The variables, for [`crate::runtime::FunctionProcess::start`].
    pub fn into_vars(self) -> Vec<(String, String)> {
        self.0
    }
}

impl From<FunctionEnv> for Vec<(String, String)> {
    fn from(env: FunctionEnv) -> Self {
        env.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_and_credentials_come_first_and_a_setting_after() {
        let region = RegionEstate {
            region: "us-east-1".into(),
            state_bucket: "state".into(),
            topic_arn: "arn:aws:sns:us-east-1:123456789012:t".into(),
            queue_url: "q".into(),
            events_queue_url: "e".into(),
        };
        let vars = FunctionEnv::new("http://127.0.0.1:1", &region)
            .with("BREAKWATER_SPOT_CLUSTERS", "shop")
            .into_vars();
        assert_eq!(
            vars[0],
            ("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:1".into())
        );
        assert_eq!(vars[3], ("BREAKWATER_STATE_BUCKET".into(), "state".into()));
        assert_eq!(vars[6], ("BREAKWATER_SPOT_CLUSTERS".into(), "shop".into()));
    }
}
