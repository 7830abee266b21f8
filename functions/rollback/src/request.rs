//! A rollback request, however it arrived (an alarm, Slack, PagerDuty, a command), and who asked:
//! what the decision judges and the record keeps.

use crate::workload::Workload;

/// Who asked for a rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asker {
    /// An alarm went into ALARM at `since_ms`.
    Alarm {
        /// The alarm.
        name: String,
        /// When it began.
        since_ms: u64,
    },
    /// A person or a system, by name (`slack:U123 (alice)`).
    Person(String),
    /// Breakwater's own guard after a GitOps owner's sync was resumed: the sync put back a
    /// revision that tripped an alarm (what it says). The cool-down does not hold it back: the
    /// verdict on that revision is already in.
    Guard(String),
}

impl Asker {
    /// Who asked, as the audit and the notification say it.
    pub fn describe(&self) -> String {
        match self {
            Asker::Alarm { name, .. } => format!("alarm {name}"),
            Asker::Person(who) | Asker::Guard(who) => who.clone(),
        }
    }

    /// The alarm, for an alarm's request.
    pub fn alarm(&self) -> Option<&str> {
        match self {
            Asker::Alarm { name, .. } => Some(name),
            Asker::Person(_) | Asker::Guard(_) => None,
        }
    }
}

/// A rollback request, however it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to roll back.
    pub workload: Workload,
    /// Who asked.
    pub asker: Asker,
    /// A chosen revision (manual only).
    pub to_revision: Option<i64>,
    /// The delivery's id (deduplication).
    pub event_id: String,
}
