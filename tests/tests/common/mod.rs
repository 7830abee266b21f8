//! What the integration tests share: one moto server per test binary (it exits with the binary),
//! unique names per test, and clients pointed at an endpoint.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use breakwater::aws::Aws;
use breakwater::clock::Clock;
use breakwater::state::StateStore;
use breakwater_sandbox::moto::{Lifetime, Moto};

/// The moto server of this test binary.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        Moto::start(Lifetime::TiedToParent)
            .expect("moto starts (run `make setup` if .venv is missing)")
    })
}

/// A name no other test in this run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Clients pointed at `endpoint` in `region`.
pub async fn aws(endpoint: &str, region: &str) -> Aws {
    Aws::for_endpoint(endpoint, region).await
}

/// A fresh bucket in us-east-1 and a store over it.
pub async fn fresh_store(clock: Arc<dyn Clock>) -> StateStore {
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let bucket = unique("state");
    aws.s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    StateStore::new(aws.s3(), bucket, clock)
}

/// The raw JSON of an object, read straight from moto.
pub async fn read_object(bucket: &str, key: &str) -> Option<serde_json::Value> {
    let aws = aws(&moto().endpoint(), "us-east-1").await;
    let object = aws
        .s3()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    let bytes = object.body.collect().await.ok()?.into_bytes();
    serde_json::from_slice(&bytes).ok()
}

/// `kubectl`, when one is on the PATH (Debian's kubernetes-client provides one).
pub fn kubectl() -> Option<String> {
    let found = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .ok()?;
    found.status.success().then(|| "kubectl".to_string())
}
