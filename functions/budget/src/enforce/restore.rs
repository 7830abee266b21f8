//! Stepping down: undoing a level's changes newest first, and stopping again a database that
//! RDS started by itself after seven days stopped, both without overwriting a human's change.

use breakwater::ports::{DatabaseKind, Databases, NodeGroups, RolePolicies};
use breakwater::state::Versioned;
use breakwater::Result;

use super::*;

impl<N: NodeGroups, D: Databases, R: RolePolicies> Engine<'_, N, D, R> {
    /// Undoes the changes of `level`, newest first. A node group is undone size by size (see
    /// [`hold::undo`]); a database or role as a whole. An undo AWS refuses is reported and the
    /// others go on.
    pub async fn restore_level(
        &self,
        state: &Versioned<EnforcementState>,
        level: u8,
        out: &mut Outcome,
    ) -> Result<()> {
        let mut transient = None;
        for key in state.value.ledger.iter().rev() {
            let Some(entry) = self.store.get::<LedgerEntry>(key).await? else {
                continue;
            };
            if entry.value.level != level || entry.value.restored.is_some() {
                continue;
            }
            let label = entry.value.resource.label();
            if let Some(why) = &entry.value.failure {
                out.skipped
                    .push(format!("{label}: never changed (AWS refused: {why})"));
                continue;
            }
            let found = self.observe(&entry.value.resource).await?;
            if self.dry_run {
                out.changed
                    .push(format!("would restore {label} to {}", entry.value.before));
                continue;
            }
            let now = self.store.clock().now_ms();
            // Boxed, as the levels are: the undo's future is large (see `apply_level`).
            let restored = match Box::pin(self.undo(&entry.value, &found, &label, out)).await {
                Ok(restored) => restored,
                Err(err) if err.is_retryable() => {
                    failed(err, &label, out, &mut transient);
                    continue;
                }
                Err(err) => {
                    let reason = err.to_string();
                    failed(err, &label, out, &mut transient);
                    Restoration::Failed { at_ms: now, reason }
                }
            };
            let done = LedgerEntry {
                restored: Some(restored),
                ..entry.value
            };
            self.store.replace(key, &done, &entry.etag).await?;
        }
        transient.map_or(Ok(()), Err)
    }

    /// Undoes one entry given what was found, saying what it did in `out`.
    async fn undo(
        &self,
        entry: &LedgerEntry,
        found: &Observed,
        label: &str,
        out: &mut Outcome,
    ) -> Result<Restoration> {
        let now = self.store.clock().now_ms();
        if let (Observed::Scaling(before), Observed::Scaling(after), Observed::Scaling(now_sizes)) =
            (&entry.before, &entry.after, found)
        {
            return Ok(match hold::undo(*before, *after, *now_sizes) {
                Undo::AlreadyBack => {
                    out.changed
                        .push(format!("{label} was already back to {before}"));
                    Restoration::Restored { at_ms: now }
                }
                Undo::Put { target, kept } => {
                    self.put_sizes(entry, target).await?;
                    if kept.is_empty() {
                        out.changed.push(format!("restored {label} to {target}"));
                        Restoration::Restored { at_ms: now }
                    } else {
                        out.changed.push(format!(
                            "restored {label} to {target}, keeping what changed since enforcement"
                        ));
                        out.left_alone.push(format!(
                            "{label}: changed after enforcement ({}); kept",
                            kept.join("; ")
                        ));
                        Restoration::Partly { at_ms: now, kept }
                    }
                }
                Undo::LeftAlone { kept } => {
                    out.left_alone.push(format!(
                        "{label}: changed after enforcement (enforcement left {after}, found {found}: {}); left as it is — it was {before} before",
                        kept.join("; ")
                    ));
                    Restoration::LeftAlone {
                        at_ms: now,
                        found: found.clone(),
                    }
                }
            });
        }
        Ok(
            if *found == entry.after || is_enforced_state(found, &entry.after) {
                self.put_back(entry).await?;
                out.changed
                    .push(format!("restored {label} to {}", entry.before));
                Restoration::Restored { at_ms: now }
            } else if *found == entry.before || is_running(found, &entry.before) {
                out.changed
                    .push(format!("{label} was already back to {}", entry.before));
                Restoration::Restored { at_ms: now }
            } else {
                out.left_alone.push(format!(
                    "{label}: changed after enforcement (enforcement left {}, found {found}); left as it is — it was {} before",
                    entry.after, entry.before
                ));
                Restoration::LeftAlone {
                    at_ms: now,
                    found: found.clone(),
                }
            },
        )
    }

    /// Stops again a database that AWS restarted after seven days stopped, if this period's
    /// ledger says enforcement stopped it and level 3 still holds.
    pub async fn restop(
        &self,
        state: &Versioned<EnforcementState>,
        kind: DatabaseKind,
        id: &str,
        out: &mut Outcome,
    ) -> Result<()> {
        let resource = Resource::Database {
            kind,
            id: id.to_string(),
        };
        let label = resource.label();
        let key = resource.ledger_key(&state.value.budget, &state.value.period);
        let Some(entry) = self.store.get::<LedgerEntry>(&key).await? else {
            out.skipped
                .push(format!("{label}: not stopped by enforcement this period"));
            return Ok(());
        };
        if state.value.level < 3 || entry.value.restored.is_some() {
            out.skipped
                .push(format!("{label}: level 3 no longer holds"));
            return Ok(());
        }
        match self.observe(&resource).await? {
            Observed::Status { status } if status == "available" => {
                if self.dry_run {
                    out.changed.push(format!(
                        "would stop {label} again (AWS restarted it after 7 days)"
                    ));
                    return Ok(());
                }
                self.databases.stop(kind, id).await?;
                let done = LedgerEntry {
                    restops: entry.value.restops + 1,
                    ..entry.value
                };
                self.store.replace(&key, &done, &entry.etag).await?;
                out.changed.push(format!(
                    "stopped {label} again (AWS restarted it after 7 days)"
                ));
            }
            found => out.skipped.push(format!(
                "{label}: {found}, not available yet; the next evaluation stops it"
            )),
        }
        Ok(())
    }
}
