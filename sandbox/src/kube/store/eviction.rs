//! The `pods/eviction` subresource with the API server's PodDisruptionBudget rules
//! (<https://kubernetes.io/docs/concepts/scheduling-eviction/api-eviction/>).

use serde_json::{json, Value};

use super::{
    find_kind, key, pod_ready, pods_kind, selector_matches, str_at, terminating, ApiError, Cluster,
    KINDS,
};

impl Cluster {
    /// The `pods/eviction` subresource, with the API server's PodDisruptionBudget rules.
    pub fn evict(
        &mut self,
        namespace: &str,
        name: &str,
        eviction: &Value,
    ) -> Result<Value, ApiError> {
        let pods = pods_kind();
        let Some(pod) = self.get(pods, namespace, name).cloned() else {
            return Err(ApiError::not_found(pods, name));
        };
        let declared = str_at(eviction, "/metadata/name");
        if !declared.is_empty() && declared != name {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object: {name} vs {declared}"
            )));
        }
        let options = eviction
            .get("deleteOptions")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let success = || json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
        let phase = str_at(&pod, "/status/phase");
        if matches!(phase, "Succeeded" | "Failed" | "Pending") || terminating(&pod) {
            self.delete(pods, namespace, name, &options)?;
            return Ok(success());
        }
        let labels = pod
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        let budgets: Vec<Value> = self
            .list(
                find_kind("policy", "v1", "poddisruptionbudgets").unwrap_or(&KINDS[4]),
                Some(namespace),
                None,
                None,
            )?
            .into_iter()
            .filter(|pdb| selector_matches(pdb.pointer("/spec/selector"), &labels))
            .collect();
        if budgets.len() > 1 {
            return Err(ApiError::new(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        let Some(pdb) = budgets.into_iter().next() else {
            self.delete(pods, namespace, name, &options)?;
            return Ok(success());
        };
        let pdb_name = str_at(&pdb, "/metadata/name").to_string();
        let generation = pdb
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let observed = pdb
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let too_many = |message: String| {
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            );
            e.details =
                Some(json!({"causes": [{"reason": "DisruptionBudget", "message": message}]}));
            e
        };
        if observed < generation {
            return Err(too_many(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )));
        }
        let allowed = pdb
            .pointer("/status/disruptionsAllowed")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let healthy = pdb
            .pointer("/status/currentHealthy")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let desired = pdb
            .pointer("/status/desiredHealthy")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        // An unready pod may go whenever the budget is met (policy/v1's IfHealthyBudget).
        if !pod_ready(&pod) && healthy >= desired {
            self.delete(pods, namespace, name, &options)?;
            return Ok(success());
        }
        if allowed < 0 {
            return Err(ApiError::new(
                403,
                "Forbidden",
                "pdb disruptions allowed is negative",
            ));
        }
        if allowed == 0 {
            return Err(too_many(format!(
                "The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently"
            )));
        }
        // Validate the deletion first, so that a failed precondition spends no disruption.
        self.deletable(pods, namespace, name, &options)?;
        let pdb_kind = find_kind("policy", "v1", "poddisruptionbudgets").unwrap_or(&KINDS[4]);
        let k = key(pdb_kind, namespace, &pdb_name);
        let rv = self.next_rv();
        if let Some(stored) = self.objects.get_mut(&k) {
            stored["status"]["disruptionsAllowed"] = json!(allowed - 1);
            stored["status"]["disruptedPods"][name] =
                json!(breakwater::clock::rfc3339(self.now_ms));
            stored["metadata"]["resourceVersion"] = json!(rv);
        }
        self.delete(pods, namespace, name, &options)?;
        Ok(success())
    }
}
