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


def apply():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    DomainDispatcherApplication.__call__ = _dispatch_with_cbor(DomainDispatcherApplication.__call__)
    s3_responses.S3Response._bucket_response = _bucket_response
    s3_responses.S3Response._bucket_response_get = _bucket_get
    s3_responses.S3Response._bucket_response_put = _request_payment_put
    s3_responses.S3Response.get_bucket_lifecycle = _get_lifecycle
    s3_responses.S3Response.delete_bucket_lifecycle = _delete_lifecycle
    s3_responses.S3Response.get_bucket_versioning = _get_versioning
    eks.EKSBackend.tag_resource = _tag_resource
    eks.EKSBackend.untag_resource = _untag_resource
    eks.EKSBackend.list_tags_for_resource = _list_tags_for_resource
