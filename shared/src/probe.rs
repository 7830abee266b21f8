//! The probe port: one HTTP(S) GET with a timeout, as failover's probe signals read the primary's
//! endpoint from the secondary region; [`HttpProbe`] is its adapter over the SDK's HTTP client.

use std::future::Future;
use std::time::Duration;

/// What a probe saw: `Ok(status)` for a 2xx/3xx answer, else why the endpoint looks down.
pub type ProbeResult = std::result::Result<u16, String>;

/// An HTTP(S) endpoint prober.
pub trait Probe: Send + Sync {
    /// One GET of `url` with `timeout` for connecting and for reading.
    fn get(&self, url: &str, timeout: Duration) -> impl Future<Output = ProbeResult> + Send;
}

/// [`Probe`] over the smithy HTTP client the SDK uses (hyper with rustls and ring), so the
/// release binary carries one HTTP stack.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpProbe;

impl Probe for HttpProbe {
    async fn get(&self, url: &str, timeout: Duration) -> ProbeResult {
        use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
        use aws_smithy_runtime_api::client::http::HttpConnector;
        use aws_smithy_runtime_api::client::http::HttpConnectorSettings;
        use aws_smithy_types::body::SdkBody;

        let connector = aws_smithy_http_client::Connector::builder()
            .connector_settings(
                HttpConnectorSettings::builder()
                    .connect_timeout(timeout)
                    .read_timeout(timeout)
                    .build(),
            )
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build();
        let request = http::Request::builder()
            .method("GET")
            .uri(url)
            .header("user-agent", "breakwater-failover-probe")
            .body(SdkBody::empty())
            .map_err(|e| format!("bad URL {url}: {e}"))?;
        let request = aws_smithy_runtime_api::http::Request::try_from(request)
            .map_err(|e| format!("bad URL {url}: {e}"))?;
        match tokio::time::timeout(timeout, connector.call(request)).await {
            Err(_) => Err(no_answer(timeout)),
            Ok(Err(e)) => Err(crate::aws::describe_sdk_error(&e)),
            Ok(Ok(response)) => answered(response.status().as_u16()),
        }
    }
}

/// What a probe reports when nothing answered within `timeout`.
pub fn no_answer(timeout: Duration) -> String {
    format!("no answer within {} ms", timeout.as_millis())
}

/// A status read as up (2xx/3xx: a redirect is an answer) or down.
pub fn answered(status: u16) -> ProbeResult {
    if (200..400).contains(&status) {
        Ok(status)
    } else {
        Err(format!("HTTP {status}"))
    }
}
