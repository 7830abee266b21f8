//! The spot function in the sandbox: its scene (moto and the Kubernetes emulator), the interruption demo, its bench figures.

pub mod bench;
pub mod demo;
pub mod scene;
