//! What an operator asks for: `plan`, `precheck`, `status`, a drill, a switchover, a failover,
//! failback (each checked before anything is read or changed), and the precheck of a plan
//! written to the state bucket.

use super::*;

impl<
        R: Replicas,
        N: NodeGroups,
        D: Dns,
        M: MetricReader,
        C: RoutingControls,
        W: MetricSwitches,
        K: Capacity,
        P: Probe,
        A: Alarms,
    > FailoverFunction<R, N, D, M, C, W, K, P, A>
{
    /// The plan was written (S3's `Object Created` event through EventBridge): precheck it at
    /// once, so that a plan that cannot fail over is known now, not at the outage. Another
    /// bucket or key is bad input and changes nothing. A plan that does not load is "not ready",
    /// with the reason, and published as such.
    pub(crate) async fn plan_changed(&self, detail: &Value) -> Result<Value> {
        let bucket = detail["bucket"]["name"].as_str().unwrap_or_default();
        let key = detail["object"]["key"].as_str().unwrap_or_default();
        let ours = self.toolkit.store.bucket();
        if bucket != ours || key != self.settings.plan_key {
            return Err(invalid(format!(
                "Object Created s3://{bucket}/{key}: not this function's plan (s3://{ours}/{})",
                self.settings.plan_key
            )));
        }
        tracing::info!(bucket, key, "the plan changed; prechecking it");
        match self.stored_plan().await {
            Ok(plan) => self.precheck(&plan).await,
            Err(e @ (Error::CorruptRecord { .. } | Error::Config(_))) => {
                Ok(self.not_ready("unreadable", "plan", &e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// A drill must not hurt production. Promoting an RDS read replica cannot be undone (it
    /// "breaks the replication link", "Working with DB instance read replicas", Amazon RDS User
    /// Guide), so an RDS drill runs only on a copy tagged `breakwater:drill=true` (the clean-up
    /// deletes it); anything else is refused before anything is read or changed beyond the
    /// replica itself. An Aurora drill is a planned switchover (`SwitchoverGlobalCluster`: no
    /// data loss), moved back by the clean-up.
    async fn check_drill_targets(&self, plan: &LoadedPlan) -> Result<()> {
        let Database::Rds { replica, .. } = &plan.database else {
            return Ok(());
        };
        match self.ports.secondary_db.instance(replica).await? {
            Some(db) if db.tags.get("breakwater:drill").map(String::as_str) == Some("true") => {
                Ok(())
            }
            Some(_) => Err(invalid(format!(
                "drill refused: {replica} is not tagged breakwater:drill=true, and promoting a \
                 production replica cannot be undone. Drill on a tagged copy (an inline \
                 \"plan\" naming it), or move production with {{\"command\": \"switchover\"}}; \
                 nothing was changed"
            ))),
            None => Err(invalid(format!(
                "drill refused: the replica {replica} does not exist; nothing was changed"
            ))),
        }
    }

    pub(crate) async fn command(&self, command: &str, body: &Value, owner: &str) -> Result<Value> {
        // Everything about the request is checked before anything is read or changed.
        let inline = match body.get("plan") {
            None | Some(Value::Null) => None,
            Some(p) if matches!(command, "plan" | "precheck" | "drill") => {
                let loaded = plan::load(p.to_string().as_bytes()).map_err(|e| invalid(e.to_string()))?;
                self.check_regions(&loaded).map_err(|e| invalid(e.to_string()))?;
                Some(loaded)
            }
            Some(_) => return Err(invalid(format!("{command} runs the stored plan only; an inline plan is for plan, precheck and drill"))),
        };
        let accept = match body.get("accept_data_loss_seconds") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                invalid("accept_data_loss_seconds: expected a whole number of seconds")
            })?),
        };
        let asked_dry_run = match body.get("dry_run") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("dry_run: expected true or false")),
        };
        let plan = match inline {
            Some(p) => p,
            None => self.stored_plan().await?,
        };
        if command == "status" {
            let state = self.plan_state(&plan.plan.name).await?;
            let last = match state.active.as_ref().or(state.last.as_ref()) {
                Some(id) => self
                    .toolkit
                    .store
                    .get::<Execution>(&Execution::key(id))
                    .await?
                    .map(|v| summary(&v.value)),
                None => None,
            };
            return Ok(
                json!({"plan": plan.plan.name, "plan_hash": plan.hash, "state": state, "execution": last}),
            );
        }
        if command == "plan" {
            return self.plan_mode(&plan).await;
        }
        if command == "precheck" {
            return self.precheck(&plan).await;
        }
        let mode =
            Mode::parse(command).ok_or_else(|| invalid(format!("unknown mode {command}")))?;
        match body.get("confirm").and_then(Value::as_str) {
            Some(c) if c == plan.plan.name => {}
            Some(c) => return Err(invalid(format!("confirm {c:?} does not name this plan ({:?}); nothing was changed", plan.plan.name))),
            None => return Err(invalid(format!("{command} by hand needs \"confirm\": \"{}\" (the plan's name); nothing was changed", plan.plan.name))),
        }
        self.check_region(&plan, mode)?;
        if mode == Mode::Drill {
            self.check_drill_targets(&plan).await?;
        }
        // The deployment's dry run (or a pause): the plan is returned, no execution starts, and
        // the answer succeeds whatever is running (a held request is not retried by Lambda).
        if self.toolkit.dry_run() {
            let planned = self.plan_mode(&plan).await?;
            return Ok(
                json!({"outcome": "dry-run", "dry_run": "deployment", "plan": planned,
                "would_start": format!("a {command} of plan {}", plan.plan.name)}),
            );
        }
        let state = self.plan_state(&plan.plan.name).await?;
        if let Some(active) = &state.active {
            let running = self
                .toolkit
                .store
                .get::<Execution>(&Execution::key(active))
                .await?;
            if let Some(running) = running.filter(|r| r.value.mode != mode) {
                return Err(Error::Conflict(format!(
                    "execution {} ({}) is running; {command} was not started",
                    running.value.id,
                    running.value.mode.as_str()
                )));
            }
        }
        // This request's `"dry_run": true` (the `breakwater` command's preflight): everything
        // above was checked, a conflicting execution included; nothing starts.
        if asked_dry_run {
            let planned = self.plan_mode(&plan).await?;
            return Ok(
                json!({"outcome": "dry-run", "dry_run": "request", "plan": planned,
                "would_start": format!("a {command} of plan {}", plan.plan.name)}),
            );
        }
        let by = body
            .get("by")
            .and_then(Value::as_str)
            .unwrap_or("an operator");
        let now = self.now();
        let mut exec = Execution::new(
            &plan,
            mode,
            format!("manual {command} by {by}"),
            now,
            now,
            owner,
        );
        exec.accept_data_loss_seconds = accept;
        self.start(&plan, exec, owner, true).await
    }
}
