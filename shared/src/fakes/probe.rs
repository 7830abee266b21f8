//! A fake of [`Probe`]: endpoints that answer a status, refuse the connection, or stay silent
//! until the probe's timeout (on tokio's clock, so paused time passes it at once).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::probe::{answered, no_answer, Probe, ProbeResult};

/// How an endpoint behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Answers with this HTTP status.
    Status(u16),
    /// The connection fails at once with this reason.
    Refused(String),
    /// Nothing answers: the probe times out.
    Silent,
    /// Refuses this many more connections, then answers with the status (a service that comes
    /// up a little after traffic reaches it).
    UpAfter(usize, u16),
}

/// [`Probe`] in memory; an unknown URL is refused.
#[derive(Debug, Default)]
pub struct FakeProbe {
    endpoints: Mutex<BTreeMap<String, Endpoint>>,
    gets: Mutex<Vec<String>>,
}

impl FakeProbe {
    /// No endpoints.
    pub fn new() -> Self {
        Self::default()
    }

    /// `url` behaves as `endpoint` from now on.
    pub fn set(&self, url: &str, endpoint: Endpoint) {
        self.endpoints.lock().unwrap().insert(url.into(), endpoint);
    }

    /// The URLs probed, in order.
    pub fn gets(&self) -> Vec<String> {
        self.gets.lock().unwrap().clone()
    }
}

impl Probe for FakeProbe {
    async fn get(&self, url: &str, timeout: Duration) -> ProbeResult {
        self.gets.lock().unwrap().push(url.into());
        let endpoint = {
            let mut endpoints = self.endpoints.lock().unwrap();
            let endpoint = endpoints.get(url).cloned();
            if let Some(Endpoint::UpAfter(n @ 1.., status)) = endpoint {
                endpoints.insert(url.into(), Endpoint::UpAfter(n - 1, status));
            }
            endpoint
        };
        match endpoint {
            Some(Endpoint::UpAfter(0, status)) => answered(status),
            Some(Endpoint::UpAfter(..)) => Err(format!("{url}: connection refused (not up yet)")),
            Some(Endpoint::Status(status)) => answered(status),
            Some(Endpoint::Refused(reason)) => Err(reason),
            Some(Endpoint::Silent) => {
                tokio::time::sleep(timeout).await;
                Err(no_answer(timeout))
            }
            None => Err(format!("{url}: connection refused")),
        }
    }
}
