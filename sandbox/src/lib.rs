//! The local stand-in for AWS that lets anyone run and test Breakwater without an account: moto on
//! loopback, a Lambda Runtime API emulator that runs the real function binaries, a fault proxy,
//! and the seeded two-region estate.

pub mod arc;
pub mod bench;
pub mod function_env;
pub mod functions;
pub mod gameday;
pub mod iam;
pub mod kube;
pub mod lambda_api;
pub mod local;
pub mod loopback;
pub mod moto;
pub mod play;
pub mod proxy;
pub mod runtime;
pub mod scenes;
pub mod seed;

// The paths these modules had before each function got its own scene / demo / bench.
pub use functions::failover::{demo as failover_demo, scene as failover_scene};
pub use functions::rollback::{
    bench as rollback_bench, demo as rollback_demo, scene as rollback_scene,
};
pub use functions::spot::{bench as spot_bench, demo as spot_demo};

use std::path::PathBuf;

/// What can go wrong in the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A local I/O or process failure.
    #[error("sandbox i/o: {0}")]
    Io(String),
    /// moto did not start, answer or reset.
    #[error("moto: {0}")]
    Moto(String),
    /// The function process misbehaved (crashed, timed out, never asked for an event).
    #[error("function: {0}")]
    Function(String),
    /// Seeding or reading the estate failed.
    #[error("seed: {0}")]
    Seed(String),
}

impl SandboxError {
    /// A failed AWS call while reading the estate back.
    pub fn estate<E: std::error::Error + 'static>(err: E) -> Self {
        SandboxError::aws("reading the estate", &err)
    }

    /// A failed AWS call while seeding or reading the estate: what was being done, and the whole
    /// error chain.
    pub fn aws(what: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        SandboxError::Seed(format!(
            "{what}: {}",
            breakwater::aws::describe_sdk_error(err)
        ))
    }
}

/// The workspace root (where `Cargo.toml`, `.venv` and `target/` live).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The directory of the built binaries: `BREAKWATER_BIN_DIR`, else `target/<profile>` under
/// `CARGO_TARGET_DIR` or the workspace.
pub fn bin_dir(profile: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("BREAKWATER_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join(profile)
}

/// The SDK configuration for AWS at `endpoint` (moto, or the fault proxy in front of it), in the
/// primary region.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    breakwater::aws::Aws::for_endpoint(endpoint, seed::PRIMARY)
        .await
        .config()
        .clone()
}
