//! Which RDS DB instances AWS will not stop, so that enforcement skips them with the reason
//! instead of attempting a stop RDS refuses.
//!
//! "Stopping an Amazon RDS DB instance temporarily" (Amazon RDS User Guide), Limitations: "You
//! can't stop a DB instance that has a read replica, or that is a read replica" and "You can't
//! stop an Amazon RDS for SQL Server DB instance in a Multi-AZ configuration". The `Replicas`
//! port reports each instance's replication source (`ReadReplicaSourceDBInstanceIdentifier`: an
//! identifier in the same region, an ARN across regions), which decides the read-replica cases
//! here. The `Databases` port does not report an instance's engine or Multi-AZ setting (nor its
//! replicas in other regions), so those stops are attempted and RDS's refusal is recorded as that
//! instance's failure while the others go on (see `enforce`).

use std::collections::BTreeMap;

/// Why RDS would refuse to stop the instance `id` (ARN `arn`), given the replication source of
/// each instance of the region that has one (replica identifier → source identifier or ARN).
pub fn refusal(id: &str, arn: &str, sources: &BTreeMap<String, String>) -> Option<String> {
    if let Some(source) = sources.get(id) {
        return Some(format!(
            "a read replica of {source}; RDS cannot stop a read replica"
        ));
    }
    let replicas: Vec<&str> = sources
        .iter()
        .filter(|(_, source)| *source == id || (!arn.is_empty() && *source == arn))
        .map(|(replica, _)| replica.as_str())
        .collect();
    (!replicas.is_empty()).then(|| {
        format!(
            "the source of the read replica {}; RDS cannot stop an instance that has a read replica",
            replicas.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_replicas_and_their_sources_are_refused_and_others_are_not() {
        // GIVEN a region where reports-replica replicates orders-dev, and eu-copy (in another
        // region) replicates billing-dev by ARN
        let sources: BTreeMap<String, String> = [
            ("reports-replica", "orders-dev"),
            (
                "eu-copy",
                "arn:aws:rds:us-east-1:123456789012:db:billing-dev",
            ),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let arn = |id: &str| format!("arn:aws:rds:us-east-1:123456789012:db:{id}");
        // THEN the replica, its source and the ARN-named source are refused with the reason
        let replica = refusal("reports-replica", &arn("reports-replica"), &sources).unwrap();
        assert!(replica.contains("read replica of orders-dev"), "{replica}");
        let source = refusal("orders-dev", &arn("orders-dev"), &sources).unwrap();
        assert!(
            source.contains("source of the read replica reports-replica"),
            "{source}"
        );
        assert!(refusal("billing-dev", &arn("billing-dev"), &sources).is_some());
        // AND an instance with the same name in another region is not mistaken for the source
        let elsewhere = "arn:aws:rds:eu-west-1:123456789012:db:billing-dev-2";
        assert_eq!(refusal("billing-dev-2", elsewhere, &sources), None);
        // AND a plain instance may be stopped
        assert_eq!(refusal("scratch-dev", &arn("scratch-dev"), &sources), None);
    }
}
