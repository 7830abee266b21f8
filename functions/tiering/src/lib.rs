//! `tiering`: S3 lifecycle tiering that never clobbers. This crate holds the decision core —
//! the policy from bucket tags with its size bands, the validator, and the merge — as pure
//! functions; the function around it (triggers, the write path, the savings report) builds on it.

pub mod merge;
pub mod policy;
pub mod validate;
