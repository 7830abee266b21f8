//! In-memory fakes of every port, behind the `test-util` feature: each behaves as its adapter
//! does against the emulators (a contract test per fake checks that), so the functions' rules
//! are tested on paused time, in milliseconds, without HTTP.
pub mod budgets;
pub mod instances;
pub mod object_store;
pub mod role_policies;
pub mod topic;
