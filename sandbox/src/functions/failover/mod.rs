//! The failover function in the sandbox: its two-region scene, the regional-outage demo, its bench figures.

pub mod bench;
pub mod demo;
pub mod scene;
