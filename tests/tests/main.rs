//! The integration tests, one module per subject, through moto, the fault proxy, the Kubernetes
//! emulator and the real function binaries. They are one test binary, not one per file: every
//! binary links the AWS SDKs (~75 MB in a debug build), and twelve of them cost CI ~1 GB of disk
//! and twelve links. Each module still has its own moto server (`common::moto_server!`).
//!
//! One module: `cargo test -p integration --test all failover::`.

mod common;

mod arc_emulator;
mod bad_input;
mod budget_binary;
mod budget_month;
mod contract_capacity;
mod contract_failover;
mod contract_fakes;
mod contract_rollback;
mod contract_shared;
mod contract_spot;
mod failover;
mod fault_proxy;
mod iam_enforcement;
mod kube_emulator;
mod lambda_binary;
mod notifications;
mod operators;
mod rollback;
mod spot_drain;
mod state_store;
mod tiering_buckets;
