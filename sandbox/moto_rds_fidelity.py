"""RDS behaviours moto 5.2 gets wrong, made as strict as RDS.

StopDBInstance and read replicas. "Stopping an Amazon RDS DB instance temporarily" (Amazon RDS
User Guide, USER_StopInstance), Limitations: "You can't stop a DB instance that has a read
replica, or that is a read replica." moto 5.2 refuses the replica (with `InvalidDBClusterStateFault`
and a message of its own) but stops the SOURCE of a replica, so a caller that stops a replica's
source passes in the sandbox and fails on AWS. The patch refuses both before moto's own checks,
as RDS does: HTTP 400 `InvalidDBInstanceState` (StopDBInstance, RDS API reference, Errors: "The DB
instance isn't in a valid state"). The replica's message is the one RDS gives ("Cannot stop or
start a Read-Replica instance", as seen in the wild); the source's message is ours, as RDS's
wording for it is not documented. A source's replicas include those in other regions (moto
records them by ARN, as `ReadReplicaDBInstanceIdentifiers` does).

Everything else (SQL Server Multi-AZ, state checks, snapshots) is left to moto.
"""


def _stop_db_instance(original):
    def stop(self, db_instance_identifier, db_snapshot_identifier=None):
        from moto.rds.exceptions import RDSClientError

        database = self.databases.get(db_instance_identifier)
        if database is not None:
            if database.is_replica:
                raise RDSClientError(
                    "InvalidDBInstanceState", "Cannot stop or start a Read-Replica instance"
                )
            if database.replicas:
                raise RDSClientError(
                    "InvalidDBInstanceState",
                    f"Cannot stop DB instance {db_instance_identifier} because it has read "
                    f"replicas: {', '.join(database.replicas)}",
                )
        return original(self, db_instance_identifier, db_snapshot_identifier)

    return stop


def apply():
    from moto.rds import models as rds_models

    rds_models.RDSBackend.stop_db_instance = _stop_db_instance(
        rds_models.RDSBackend.stop_db_instance
    )
