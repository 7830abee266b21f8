"""What the Breakwater sandbox adds to moto where moto falls short of the AWS API.

Each patch names the gap it fills. They are applied in the moto server process only (never in
the functions), so the functions' calls are exactly the ones they make against AWS.
"""
from moto.eks import models as eks
from moto.s3 import responses as s3_responses


def _find_tagged(backend, resource_arn):
    """EKS TagResource / UntagResource / ListTagsForResource take cluster and node-group ARNs;
    moto 5.2 knows only clusters."""
    for cluster in backend.clusters.values():
        if cluster.arn == resource_arn:
            return cluster
        for nodegroup in cluster.nodegroups.values():
            if nodegroup.arn == resource_arn:
                return nodegroup
    return None


def _not_found(operation):
    return eks.ResourceNotFoundException(
        clusterName=None,
        nodegroupName=None,
        fargateProfileName=None,
        addonName=None,
        message=f"An error occurred (NotFoundException) when calling the {operation} operation: Resource was not found",
    )


def _tag_resource(self, resource_arn, tags):
    resource = _find_tagged(self, resource_arn)
    if resource is None:
        raise _not_found("TagResource")
    if resource.tags is None:
        resource.tags = {}
    resource.tags.update(tags)


def _untag_resource(self, resource_arn, tag_keys):
    resource = _find_tagged(self, resource_arn)
    if resource is None:
        raise _not_found("UntagResource")
    for key in tag_keys if isinstance(tag_keys, list) else [tag_keys]:
        (resource.tags or {}).pop(key, None)


def _list_tags_for_resource(self, resource_arn):
    resource = _find_tagged(self, resource_arn)
    if resource is None:
        raise _not_found("ListTagsForResource")
    return resource.tags or {}


# S3 lifecycle: moto 5.2 drops ObjectSizeGreaterThan/LessThan and always answers
# TransitionDefaultMinimumObjectSize=all_storage_classes_128K. S3 returns the configuration as
# written, and the size default as written (a response header). The patch keeps moto's own parsing
# (it still refuses what it refuses) and answers GET with what was PUT.
_LIFECYCLE_HEADER = "x-amz-transition-default-minimum-object-size"
_original_bucket_put = s3_responses.S3Response._bucket_response_put
_original_get_lifecycle = s3_responses.S3Response.get_bucket_lifecycle
_original_delete_lifecycle = s3_responses.S3Response.delete_bucket_lifecycle


def _bucket_put(self, request, bucket_name, querystring):
    result = _original_bucket_put(self, request, bucket_name, querystring)
    if querystring and "lifecycle" in querystring:
        bucket = self.backend.get_bucket(bucket_name)
        body = self.body.decode() if isinstance(self.body, bytes) else self.body
        bucket.breakwater_lifecycle = (body, request.headers.get(_LIFECYCLE_HEADER) or "all_storage_classes_128K")
    return result


def _get_lifecycle(self):
    bucket = self.backend.get_bucket(self.bucket_name)
    stored = getattr(bucket, "breakwater_lifecycle", None)
    if stored is None or not self.backend.get_bucket_lifecycle(self.bucket_name):
        return _original_get_lifecycle(self)
    body, size_default = stored
    return 200, {_LIFECYCLE_HEADER: size_default, "Content-Type": "application/xml"}, body


def _delete_lifecycle(self):
    bucket = self.backend.get_bucket(self.bucket_name)
    bucket.breakwater_lifecycle = None
    return _original_delete_lifecycle(self)


# S3 GetBucketVersioning: moto 5.2 answers with the root GetBucketVersioningResponse instead of
# VersioningConfiguration, which SDKs refuse to parse.
def _get_versioning(self):
    status = self.backend.get_bucket_versioning(self.bucket_name)
    inner = f"<Status>{status}</Status>" if status else ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</VersioningConfiguration>'
    )
    return 200, {"Content-Type": "application/xml"}, body


# S3 ExpectedBucketOwner: moto 5.2 ignores the header. S3 answers 403 AccessDenied when the bucket
# belongs to another account. A sandbox bucket belongs to the account in its tag
# `sandbox:owner-account` (how the sandbox stands in for another account's bucket), else moto's.
_OWNER_TAG = "sandbox:owner-account"
_original_bucket_response = s3_responses.S3Response._bucket_response


def _bucket_response(self, request, full_url):
    expected = request.headers.get("x-amz-expected-bucket-owner")
    bucket_name = self.parse_bucket_name_from_url(request, full_url)
    if expected and bucket_name:
        try:
            bucket = self.backend.get_bucket(bucket_name)
        except Exception:
            bucket = None
        if bucket is not None:
            tags = {t["Key"]: t["Value"] for t in self.backend.get_bucket_tagging(bucket_name).get("Tags", [])}
            owner = tags.get(_OWNER_TAG, bucket.account_id)
            if owner != expected:
                body = (
                    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                    "<Message>Access Denied</Message><RequestId>sandbox</RequestId></Error>"
                )
                return 403, {"Content-Type": "application/xml"}, body
    return _original_bucket_response(self, request, full_url)


# S3 GetBucketRequestPayment / PutBucketRequestPayment: moto 5.2 keeps a payer on every bucket but
# serves neither call.
_original_bucket_get = s3_responses.S3Response._bucket_response_get


def _bucket_get(self, bucket_name, querystring):
    if "requestPayment" in querystring:
        payer = self.backend.get_bucket(bucket_name).payer
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<RequestPaymentConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Payer>{payer}</Payer></RequestPaymentConfiguration>'
        )
        return 200, {"Content-Type": "application/xml"}, body
    return _original_bucket_get(self, bucket_name, querystring)


def _request_payment_put(self, request, bucket_name, querystring):
    if querystring and "requestPayment" in querystring:
        body = self.body.decode() if isinstance(self.body, bytes) else self.body
        payer = "Requester" if "<Payer>Requester</Payer>" in body else "BucketOwner"
        self.backend.get_bucket(bucket_name).payer = payer
        return 200, {}, ""
    return _bucket_put(self, request, bucket_name, querystring)


# CloudWatch over Smithy RPC v2 CBOR: the Rust SDK (aws-sdk-cloudwatch ≥ 1.9x) speaks only this
# protocol (POST /service/GraniteServiceVersion20100801/operation/<Op>, CBOR bodies); moto 5.2's
# server routes CloudWatch's query and JSON protocols only. The bridge decodes the CBOR request
# with botocore's own CBOR parser and the operation's input shape, hands moto the same call in the
# JSON protocol, and encodes moto's answer back to CBOR with the output shape (errors keep their
# `__type`). Nothing about CloudWatch's behaviour is changed; only the wire format is translated.
_CBOR_PREFIX = "/service/GraniteServiceVersion20100801/operation/"
_cloudwatch_model = None


def _cloudwatch():
    global _cloudwatch_model
    if _cloudwatch_model is None:
        import botocore.session

        _cloudwatch_model = botocore.session.get_session().get_service_model("cloudwatch")
    return _cloudwatch_model


def _cbor_text(text):
    data = text.encode()
    head = 0x60
    n = len(data)
    if n < 24:
        return bytes([head | n]) + data
    if n < 256:
        return bytes([head | 24, n]) + data
    return bytes([head | 25]) + n.to_bytes(2, "big") + data


def _cbor_error(code, message):
    return b"\xa2" + _cbor_text("__type") + _cbor_text(code) + _cbor_text("message") + _cbor_text(message)


def _cbor_bridge(app, environ, start_response):
    import io
    import json

    from botocore import parsers, serialize

    operation = environ["PATH_INFO"][len(_CBOR_PREFIX):]
    model = _cloudwatch().operation_model(operation)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    params = {}
    if body and model.input_shape is not None:
        params = parsers.RpcV2CBORParser().parse(
            {"body": body, "headers": {}, "status_code": 200}, model.input_shape
        )
        params.pop("ResponseMetadata", None)
    forwarded = json.dumps(
        params, default=lambda v: v.timestamp() if hasattr(v, "timestamp") else str(v)
    ).encode()
    inner = dict(environ)
    inner.update(
        {
            "PATH_INFO": "/",
            "REQUEST_URI": "/",
            "RAW_URI": "/",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "HTTP_CONTENT_TYPE": "application/x-amz-json-1.0",
            "HTTP_X_AMZ_TARGET": f"GraniteServiceVersion20100801.{operation}",
            "CONTENT_LENGTH": str(len(forwarded)),
            "wsgi.input": io.BytesIO(forwarded),
        }
    )
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"] = status
        captured["headers"] = headers
        return lambda _data: None

    answer = b"".join(app(inner, capture))
    status = captured.get("status", "500 INTERNAL SERVER ERROR")
    headers = [
        (k, v)
        for k, v in captured.get("headers", [])
        if k.lower() not in ("content-type", "content-length")
    ]
    if status.startswith("2"):
        out = bytearray(b"\xa0")
        if model.output_shape is not None and answer:
            parsed = parsers.JSONParser().parse(
                {"body": answer, "headers": {}, "status_code": 200}, model.output_shape
            )
            parsed.pop("ResponseMetadata", None)
            out = bytearray()
            serialize.RpcV2CBORSerializer()._serialize_data_item(out, parsed, model.output_shape)
        payload = bytes(out)
    else:
        try:
            error = json.loads(answer or b"{}")
        except ValueError:
            error = {}
        code = str(error.get("__type") or error.get("code") or "InternalFailure").rsplit("#", 1)[-1]
        payload = _cbor_error(code, str(error.get("message") or error.get("Message") or ""))
    headers += [
        ("Content-Type", "application/cbor"),
        ("Content-Length", str(len(payload))),
        ("smithy-protocol", "rpc-v2-cbor"),
    ]
    start_response(status, headers)
    return [payload]


def _dispatch_with_cbor(original):
    def call(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(_CBOR_PREFIX):
            return _cbor_bridge(lambda e, s: original(self, e, s), environ, start_response)
        return original(self, environ, start_response)

    return call



# Failover latencies. moto applies PromoteReadReplica, UpdateNodegroupConfig and record changes at
# once, keeps a promoted replica's ReadReplicaSourceDBInstanceIdentifier (RDS removes it) and
# answers every GetChange INSYNC with one fixed change id. The sandbox models AWS's timing per
# resource, from a tag, so tests sharing one server do not interfere:
# - a DB instance tagged `sandbox:promote-seconds=N` is `modifying` for N seconds after
#   PromoteReadReplica (a second promotion meanwhile is InvalidDBInstanceState), then `available`
#   with no source; untagged, the promotion is immediate — and the source is always removed;
# - a node group tagged `sandbox:update-seconds=N` is `UPDATING` for N seconds after
#   UpdateNodegroupConfig (another update meanwhile is ResourceInUseException), then `ACTIVE`;
# - a hosted zone tagged `sandbox:insync-seconds=N` answers GetChange `PENDING` for N seconds after
#   the change; every change gets its own id.
import itertools as _itertools
import time as _time

from moto.rds import models as rds_models
from moto.rds.exceptions import InvalidDBInstanceStateFault
from moto.route53 import responses as r53_responses
from moto.eks.exceptions import ResourceInUseException

_PENDING_PROMOTIONS = {}
_CHANGES = {}
_CHANGE_IDS = _itertools.count(1)


def _tag_seconds(tags, key):
    try:
        return float(tags.get(key, 0) or 0)
    except (TypeError, ValueError):
        return 0.0


def _db_tags(database):
    return {t["Key"]: t["Value"] for t in (database.tags or [])}


def _settle_promotions(backend):
    now = _time.time()
    for database in list(backend.databases.values()):
        done_at = getattr(database, "_sandbox_promoted_at", None)
        if done_at is not None and done_at <= now:
            database.is_replica = False
            database.source_db_instance_identifier = None
            database.status = "available"
            database._sandbox_promoted_at = None


def _promote_read_replica(original):
    def promote(self, db_kwargs):
        _settle_promotions(self)
        database = self.databases.get(db_kwargs["db_instance_identifier"])
        if database is not None and getattr(database, "_sandbox_promoted_at", None):
            raise InvalidDBInstanceStateFault(
                f"DB Instance {database.db_instance_identifier} is not in available state (modifying)."
            )
        delay = _tag_seconds(_db_tags(database), "sandbox:promote-seconds") if database else 0
        if database is not None and database.is_replica and delay > 0:
            database.status = "modifying"
            database._sandbox_promoted_at = _time.time() + delay
            return database
        result = original(self, db_kwargs)
        result.source_db_instance_identifier = None
        return result

    return promote


def _describe_db_instances(original):
    def describe(self, *args, **kwargs):
        _settle_promotions(self)
        return original(self, *args, **kwargs)

    return describe


def _settle_nodegroup(nodegroup):
    done_at = getattr(nodegroup, "_sandbox_updated_at", None)
    if done_at is not None and done_at <= _time.time():
        nodegroup.status = "ACTIVE"
        nodegroup._sandbox_updated_at = None


def _update_nodegroup_config(original):
    def update(self, cluster_name, nodegroup_name, *args, **kwargs):
        cluster = self.clusters.get(cluster_name)
        nodegroup = cluster.nodegroups.get(nodegroup_name) if cluster else None
        if nodegroup is not None:
            _settle_nodegroup(nodegroup)
            if getattr(nodegroup, "_sandbox_updated_at", None):
                raise ResourceInUseException(
                    clusterName=cluster_name,
                    nodegroupName=nodegroup_name,
                    addonName=None,
                    message=f"Nodegroup {nodegroup_name} already has an update in progress",
                )
        result = original(self, cluster_name, nodegroup_name, *args, **kwargs)
        delay = _tag_seconds(nodegroup.tags or {}, "sandbox:update-seconds") if nodegroup else 0
        if delay > 0:
            nodegroup.status = "UPDATING"
            nodegroup._sandbox_updated_at = _time.time() + delay
        return result

    return update


def _describe_nodegroup(original):
    def describe(self, cluster_name, nodegroup_name):
        nodegroup = original(self, cluster_name, nodegroup_name)
        _settle_nodegroup(nodegroup)
        return nodegroup

    return describe


def _change_resource_record_sets(original):
    def change(self):
        result = original(self)
        zone_id = self._get_param("HostedZoneId").split("/")[-1]
        delay = _tag_seconds(self.backend.list_tags_for_resource(zone_id), "sandbox:insync-seconds")
        change_id = f"/change/C{next(_CHANGE_IDS):012d}SBX"
        _CHANGES[change_id.split("/")[-1]] = _time.time() + delay
        result.result["ChangeInfo"]["Id"] = change_id
        result.result["ChangeInfo"]["Status"] = "PENDING" if delay > 0 else "INSYNC"
        return result

    return change


def _get_change(original):
    def get(self):
        result = original(self)
        change_id = self._get_param("Id").split("/")[-1]
        insync_at = _CHANGES.get(change_id)
        if insync_at is not None and insync_at > _time.time():
            result.result["ChangeInfo"]["Status"] = "PENDING"
        return result

    return get


def apply():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    DomainDispatcherApplication.__call__ = _dispatch_with_cbor(DomainDispatcherApplication.__call__)
    __import__("moto_cloudwatch_fidelity").apply()  # DescribeAlarms answers AlarmTypes as CloudWatch does
    __import__("moto_cloudwatch_alarms").apply()  # PutMetricData evaluates the alarms on its metric
    s3_responses.S3Response._bucket_response = _bucket_response
    s3_responses.S3Response._bucket_response_get = _bucket_get
    s3_responses.S3Response._bucket_response_put = _request_payment_put
    s3_responses.S3Response.get_bucket_lifecycle = _get_lifecycle
    s3_responses.S3Response.delete_bucket_lifecycle = _delete_lifecycle
    s3_responses.S3Response.get_bucket_versioning = _get_versioning
    eks.EKSBackend.tag_resource = _tag_resource
    eks.EKSBackend.untag_resource = _untag_resource
    eks.EKSBackend.list_tags_for_resource = _list_tags_for_resource
    rds_models.RDSBackend.promote_read_replica = _promote_read_replica(
        rds_models.RDSBackend.promote_read_replica
    )
    rds_models.RDSBackend.describe_db_instances = _describe_db_instances(
        rds_models.RDSBackend.describe_db_instances
    )
    eks.EKSBackend.update_nodegroup_config = _update_nodegroup_config(
        eks.EKSBackend.update_nodegroup_config
    )
    eks.EKSBackend.describe_nodegroup = _describe_nodegroup(eks.EKSBackend.describe_nodegroup)
    r53_responses.Route53.change_resource_record_sets = _change_resource_record_sets(
        r53_responses.Route53.change_resource_record_sets
    )
    r53_responses.Route53.get_change = _get_change(r53_responses.Route53.get_change)
    __import__("moto_s3_fidelity").apply()  # S3 refusals and regions: sandbox/moto_s3_fidelity.py
    __import__("moto_rds_fidelity").apply()  # StopDBInstance refuses a replica's source: sandbox/moto_rds_fidelity.py
    __import__("moto_elbv2_fidelity").apply()  # deregistered targets drain for the delay: sandbox/moto_elbv2_fidelity.py
    __import__("moto_autoscaling_lifecycle").apply()  # termination hooks wait; CompleteLifecycleAction: sandbox/moto_autoscaling_lifecycle.py
