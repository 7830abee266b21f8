//! The local stand-in for AWS that lets anyone run and test Breakwater without an account: moto on
//! loopback, a Lambda Runtime API emulator that runs the real function binaries, a fault proxy,
//! and the seeded two-region estate.

pub mod bench;
pub mod failover_demo;
pub mod failover_scene;
pub mod gameday;
pub mod iam;
pub mod kube;
pub mod moto;
pub mod proxy;
pub mod rollback_bench;
pub mod rollback_demo;
pub mod rollback_scene;
pub mod runtime;
pub mod scenes;
pub mod seed;
pub mod spot_bench;
pub mod spot_demo;

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
