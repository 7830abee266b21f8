//! What every Breakwater function shares: settings, errors, AWS clients, the S3 state store,
//! notifications, metrics, logs, event routing and reports.

pub mod aws;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod ports;
pub mod report;
pub mod state;

use std::sync::Arc;

pub use error::{Error, Result};

/// What a function builds once at init and shares across invocations: validated settings, the
/// SDK configuration, the state store and the notifier. Building it makes no network call.
#[derive(Debug, Clone)]
pub struct Toolkit {
    /// The validated settings.
    pub settings: config::Settings,
    /// The AWS clients.
    pub aws: Arc<aws::Aws>,
    /// The state store in the home region.
    pub store: state::StateStore,
    /// The notifier (logs only when no topic is configured).
    pub notifier: notify::Notifier,
}

impl Toolkit {
    /// Reads and validates the settings, then builds the clients.
    pub async fn from_env(env: &config::Env) -> Result<Self> {
        let settings = config::Settings::from_env(env)?;
        let aws = Arc::new(aws::Aws::from_env(&settings.region).await);
        Ok(Self::with_aws(settings, aws, Arc::new(clock::SystemClock)))
    }

    /// Builds the toolkit over given clients and clock (tests and the sandbox).
    pub fn with_aws(
        settings: config::Settings,
        aws: Arc<aws::Aws>,
        clock: Arc<dyn clock::Clock>,
    ) -> Self {
        let store = state::StateStore::new(aws.s3(), settings.state_bucket.clone(), clock);
        let notifier = match &settings.topic_arn {
            Some(topic) => notify::Notifier::new(aws.sns(), topic.clone()),
            None => notify::Notifier::log_only(),
        };
        Toolkit {
            settings,
            aws,
            store,
            notifier,
        }
    }
}
