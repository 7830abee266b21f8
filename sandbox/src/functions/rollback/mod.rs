//! The rollback function in the sandbox: its scene (alarms in moto, a Deployment in the Kubernetes emulator), the bad-deploy demo, its bench figure.

pub mod bench;
pub mod demo;
pub mod scene;
