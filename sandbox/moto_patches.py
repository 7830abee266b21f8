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


def apply():
    s3_responses.S3Response._bucket_response = _bucket_response
    s3_responses.S3Response._bucket_response_get = _bucket_get
    s3_responses.S3Response._bucket_response_put = _request_payment_put
    s3_responses.S3Response.get_bucket_lifecycle = _get_lifecycle
    s3_responses.S3Response.delete_bucket_lifecycle = _delete_lifecycle
    s3_responses.S3Response.get_bucket_versioning = _get_versioning
    eks.EKSBackend.tag_resource = _tag_resource
    eks.EKSBackend.untag_resource = _untag_resource
    eks.EKSBackend.list_tags_for_resource = _list_tags_for_resource
