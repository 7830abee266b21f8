//! What every Breakwater function shares: settings, errors, AWS clients, the S3 state store,
//! notifications, metrics, logs, event routing and reports.

pub mod aws;
pub mod clock;
pub mod config;
pub mod control;
pub mod error;
pub mod events;
#[cfg(any(test, feature = "test-util"))]
pub mod fakes;
pub mod handoff;
pub mod invocation;
pub mod kube;
pub mod lambda;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod objects;
pub mod ports;
pub mod probe;
pub mod report;
pub mod secrets;
pub mod state;

use std::sync::Arc;

pub use error::{Error, Result};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_clock_is_refused_outside_the_sandbox() {
        let deployed = config::Env::from_pairs([("BREAKWATER_SANDBOX_NOW_MS", "1796083200000")]);
        let err = sandbox_clock(&deployed).unwrap_err();
        assert!(
            err.to_string().contains("BREAKWATER_SANDBOX_NOW_MS"),
            "{err}"
        );
        let remote = config::Env::from_pairs([
            ("BREAKWATER_SANDBOX_NOW_MS", "1796083200000"),
            ("AWS_ENDPOINT_URL", "https://s3.example.com"),
        ]);
        assert!(sandbox_clock(&remote).is_err());
        let sandbox = config::Env::from_pairs([
            ("BREAKWATER_SANDBOX_NOW_MS", "1796083200000"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]);
        let now = sandbox_clock(&sandbox).unwrap().now_ms();
        assert!(
            (1_796_083_200_000..1_796_083_260_000).contains(&now),
            "{now}"
        );
        assert!(sandbox_clock(&config::Env::default()).is_ok());
    }
}

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

/// `BREAKWATER_SANDBOX_NOW_MS` moves the clock of a binary running in the sandbox (the demo lives
/// through a month rollover). It is refused unless every AWS call goes to a loopback endpoint, so
/// that it can never change what a deployed function believes the date is.
fn sandbox_clock(env: &config::Env) -> Result<Arc<dyn clock::Clock>> {
    const VARIABLE: &str = "BREAKWATER_SANDBOX_NOW_MS";
    let Some(raw) = env.optional(VARIABLE) else {
        return Ok(Arc::new(clock::SystemClock));
    };
    let endpoint = env.optional("AWS_ENDPOINT_URL").unwrap_or_default();
    if !(endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:")) {
        return Err(config::ConfigError {
            variable: VARIABLE,
            reason: "is only honoured against a loopback AWS_ENDPOINT_URL (the sandbox)".into(),
        }
        .into());
    }
    let now: u64 = raw.parse().map_err(|_| config::ConfigError {
        variable: VARIABLE,
        reason: format!("{raw:?} is not milliseconds since the epoch"),
    })?;
    Ok(Arc::new(clock::OffsetClock::starting_at(now)))
}

impl Toolkit {
    /// Whether this invocation changes nothing: `BREAKWATER_DRY_RUN`, or a pause read at its
    /// start ([`control::unless_paused`]).
    pub fn dry_run(&self) -> bool {
        control::dry_run(&self.settings)
    }

    /// Reads and validates the settings, then builds the clients.
    pub async fn from_env(env: &config::Env) -> Result<Self> {
        let settings = config::Settings::from_env(env)?;
        let clock = sandbox_clock(env)?;
        let aws = Arc::new(aws::Aws::from_env(&settings.region).await);
        let toolkit = Self::with_aws(settings, aws, clock);
        // BREAKWATER_EVENT_BUS (the template: `default`): every notification is an event too.
        Ok(match env.optional("BREAKWATER_EVENT_BUS") {
            Some(bus) => toolkit.with_event_bus(&bus),
            None => toolkit,
        })
    }

    /// Puts every notification on the EventBridge bus `bus` (its name or ARN) too.
    pub fn with_event_bus(mut self, bus: &str) -> Self {
        let bus = aws::eventbridge::EventBridgeBus::new(self.aws.events(), bus);
        self.notifier = self.notifier.with_bus(Arc::new(bus));
        self
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
