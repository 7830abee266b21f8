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

CreateDBInstanceReadReplica across regions. CreateDBInstanceReadReplica, Amazon RDS API Reference,
KmsKeyId: "If you create an encrypted read replica in a different AWS Region, then you must specify
a KMS key identifier for the destination AWS Region. KMS keys are specific to the AWS Region that
they are created in" and "If you create an encrypted read replica in the same AWS Region as the
source DB instance or Multi-AZ DB cluster, don't specify a value for this parameter"
(https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstanceReadReplica.html).
moto 5.2 creates the cross-region replica of an encrypted source without a key (it copies the
source's), so a failback that forgets the key passes in the sandbox and fails on AWS. The patch
refuses it as RDS does: HTTP 400 `InvalidParameterCombination`, "Cannot create a cross region
unencrypted read replica from encrypted source." (RDS's wording as seen in the wild:
terraform-aws-modules/terraform-aws-rds#428, hashicorp/terraform#11538); and a key for a
same-region replica: "Your request does not require the KMS key parameter. Please remove the KMS
key parameter and try your request again." (cloudposse/terraform-aws-rds-replica#5). moto also
sets the replica's fields in request order with its region last, so a `DBSubnetGroupName` of the
replica's region is looked up in the source's region (DBSubnetGroupNotFoundFault); the patch
gives moto the replica's region first.

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


def _create_db_instance_read_replica(original):
    def create(self, db_kwargs):
        from moto.rds.exceptions import RDSClientError

        source_id = db_kwargs["source_db_instance_identifier"]
        source = self.find_db_from_id(source_id)
        cross_region = source.region != self.region_name
        if cross_region and source.storage_encrypted and not db_kwargs.get("kms_key_id"):
            raise RDSClientError(
                "InvalidParameterCombination",
                "Cannot create a cross region unencrypted read replica from encrypted source.",
            )
        if not cross_region and db_kwargs.get("kms_key_id"):
            raise RDSClientError(
                "InvalidParameterCombination",
                "Your request does not require the KMS key parameter. Please remove the KMS key "
                "parameter and try your request again.",
            )
        if cross_region:
            # The replica lives here: its region first, before the subnet group is looked up.
            db_kwargs = {"backend": self, **db_kwargs}
        return original(self, db_kwargs)

    return create


def apply():
    from moto.rds import models as rds_models

    rds_models.RDSBackend.stop_db_instance = _stop_db_instance(
        rds_models.RDSBackend.stop_db_instance
    )
    rds_models.RDSBackend.create_db_instance_read_replica = _create_db_instance_read_replica(
        rds_models.RDSBackend.create_db_instance_read_replica
    )
