//! The budget function in the sandbox: its scene in moto, its game-day demo, its bench figure.

pub mod bench;
pub mod demo;
pub mod scene;
