//! Each function's part of the sandbox, in the same layout: `scene` (what it acts on, seeded in
//! moto and the Kubernetes emulator), `demo` (its game-day scene through the release binary) and
//! `bench` (its own figure for `make bench`).

pub mod budget;
pub mod failover;
pub mod rollback;
pub mod spot;
pub mod tiering;
