//! In-memory fakes of every port, behind the `test-util` feature: each behaves as its adapter
//! does against the emulators (a contract test per fake checks that), so the functions' rules
//! are tested on paused time, in milliseconds, without HTTP.
pub mod alarms;
pub mod buckets;
pub mod budgets;
pub mod bus;
pub mod calls;
pub mod capacity;
pub mod databases;
pub mod dns;
pub mod handoff;
pub mod instances;
pub mod metric_reader;
pub mod metric_switches;
pub mod node_groups;
pub mod nodes;
pub mod object_store;
pub mod pods;
pub mod probe;
pub mod replicas;
pub mod role_policies;
pub mod routing_controls;
pub mod secrets;
pub mod storage_metrics;
pub mod topic;
pub mod workloads;
