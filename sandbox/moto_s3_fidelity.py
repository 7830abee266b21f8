"""S3 behaviours that moto 5.2 lacks and that the functions must meet on AWS: the sandbox refuses
what S3 refuses, and answers where S3 answers.

1. Lifecycle configurations S3 refuses with 400 MalformedXML, which moto stores:
   - an `And` with fewer than two predicates. S3 API reference, LifecycleRuleAndOperator: "This is
     used in a Lifecycle Rule Filter to apply a logical AND to two or more predicates"; real S3
     answers MalformedXML to `<And><ObjectSizeGreaterThan>` alone
     (hashicorp/terraform-provider-aws #23882, #38551);
   - a `Filter` with more than one of Prefix, Tag, ObjectSizeGreaterThan, ObjectSizeLessThan, And.
     S3 API reference, LifecycleRuleFilter: "A Filter can have exactly one of Prefix, Tag,
     ObjectSizeGreaterThan, ObjectSizeLessThan, or And specified" (moto counts only Prefix, Tag
     and And; terraform-provider-aws #42373 shows S3's MalformedXML for two size predicates);
   - a rule without `Status` (S3 API reference, LifecycleRule: Status "Required: Yes"; moto
     fails with a KeyError instead);
   - an `Expiration` with `ExpiredObjectDeleteMarker` in a rule filtered by object size
     (aws/aws-cli #8239: MalformedXML).
2. A request for a bucket sent to another region's endpoint. S3 answers 301 with the error code
   PermanentRedirect ("The bucket you are attempting to access must be addressed using the
   specified endpoint. Please send all future requests to this endpoint." — S3 user guide,
   "Billing for Amazon S3 error responses", 301 Moved Permanently) and the bucket's region in the
   `x-amz-bucket-region` header (the header SDKs read to find the region, e.g. the Ruby SDK's
   Aws::S3::Errors::PermanentRedirect). moto serves every bucket from every region. The sandbox
   takes the request's region from its signature (as moto does) and answers as S3 does. Exempt,
   as on S3: ListBuckets (no bucket), CreateBucket (the region is the request's own), and
   GetBucketLocation (the call that tells a bucket's region). A HEAD answers 301 without a body.
3. ListBuckets' `BucketRegion`. S3 API reference, ListBuckets / Bucket: "BucketRegion indicates
   the Amazon Web Services region where the bucket is located. If the request contains at least
   one valid parameter, it is included in the response." moto never includes it.
4. Conditional writes that are atomic. S3 user guide, "How to prevent object overwrites with
   conditional writes": "If multiple conditional writes occur for the same object name, the first
   write operation to finish succeeds", the others are refused (412 PreconditionFailed, or 409
   ConditionalRequestConflict while one is in flight). moto 5.2's put_object reads the key, checks
   If-None-Match / If-Match, and writes, with no lock: two racing creates can both succeed
   (seen in CI: two winners of one lease). The sandbox takes one key-changing request per key at
   a time, so the check and the write are one step, as on S3.
   https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
"""
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlparse

from moto.s3 import responses as s3_responses

_NS = re.compile(r"^\{[^}]*\}")
_PREDICATES = ("Prefix", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan", "And")
_MALFORMED = "The XML you provided was not well-formed or did not validate against our published schema"
_REDIRECT = (
    "The bucket you are attempting to access must be addressed using the specified endpoint. "
    "Please send all future requests to this endpoint."
)


def _error(status, code, message, extra="", headers=None):
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}"
        f"<RequestId>{request_id}</RequestId><HostId>sandbox</HostId></Error>"
    )
    return status, {"Content-Type": "application/xml", **(headers or {})}, body


def _name(element):
    return _NS.sub("", element.tag)


def _children(element):
    return [c for c in element if isinstance(c.tag, str)]


def lifecycle_refusal(body):
    """Why S3 would answer MalformedXML to this PutBucketLifecycleConfiguration body, or None."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        return f"not XML: {e}"
    for rule in (r for r in _children(root) if _name(r) == "Rule"):
        parts = {}
        for child in _children(rule):
            parts.setdefault(_name(child), []).append(child)
        if "Status" not in parts:
            return "a Rule without Status"
        filters = parts.get("Filter", [])
        size_filtered = False
        for f in filters:
            predicates = [c for c in _children(f) if _name(c) in _PREDICATES]
            if len(predicates) > 1:
                return "a Filter with more than one predicate outside And"
            for p in predicates:
                if _name(p) in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
                    size_filtered = True
                if _name(p) == "And":
                    inner = [c for c in _children(p) if _name(c) in _PREDICATES[:4]]
                    if len(inner) < 2:
                        return "an And with fewer than two predicates"
                    if any(_name(c).startswith("ObjectSize") for c in inner):
                        size_filtered = True
        for expiration in parts.get("Expiration", []):
            marker = [c for c in _children(expiration) if _name(c) == "ExpiredObjectDeleteMarker"]
            if marker and size_filtered:
                return "ExpiredObjectDeleteMarker in a rule filtered by object size"
    return None


def _signed_region(request):
    """The region of the request's SigV4 credential scope (header or presigned query), or None."""
    auth = request.headers.get("Authorization", "")
    found = re.search(r"Credential=[^/]+/[^/]+/([^/]+)/", auth)
    if found:
        return found.group(1)
    query = parse_qs(urlparse(request.url).query)
    credential = (query.get("X-Amz-Credential") or [""])[0]
    parts = credential.split("/")
    return parts[2] if len(parts) >= 5 else None


def _redirect(self, request, full_url, exempt):
    """The 301 S3 sends when a bucket is addressed through another region's endpoint, or None."""
    bucket_name = self.parse_bucket_name_from_url(request, full_url)
    if not bucket_name or exempt:
        return None
    region = _signed_region(request)
    if region is None:
        return None
    try:
        bucket = self.backend.get_bucket(bucket_name)
    except Exception:
        return None
    if bucket.region_name == region:
        return None
    headers = {"x-amz-bucket-region": bucket.region_name}
    if request.method == "HEAD":
        return 301, headers, ""
    endpoint = f"{bucket_name}.s3.{bucket.region_name}.amazonaws.com"
    return _error(
        301,
        "PermanentRedirect",
        _REDIRECT,
        f"<Endpoint>{endpoint}</Endpoint><Bucket>{bucket_name}</Bucket>",
        headers,
    )


def _bucket_response(original):
    def respond(self, request, full_url):
        query = self._get_querystring(request, full_url)
        creating = request.method == "PUT" and not query
        redirect = _redirect(self, request, full_url, creating or "location" in query)
        if redirect is not None:
            return redirect
        return original(self, request, full_url)

    return respond


# One key-changing request at a time per key (item 4): moto's check of a condition and its write
# are then one step. Other keys, and reads, are not held up (S3 takes writes to different keys
# at once).
_GUARD = threading.Lock()
_KEY_LOCKS = {}


def _key_lock(full_url):
    url = urlparse(full_url)
    with _GUARD:
        return _KEY_LOCKS.setdefault(url.netloc + url.path, threading.Lock())


def _key_response(original):
    def respond(self, request, full_url):
        redirect = _redirect(self, request, full_url, False)
        if redirect is not None:
            return redirect
        if request.method in ("GET", "HEAD"):
            return original(self, request, full_url)
        with _key_lock(full_url):
            return original(self, request, full_url)

    return respond


def _bucket_put(original):
    def put(self, request, bucket_name, querystring):
        if querystring and "lifecycle" in querystring:
            body = self.body.decode() if isinstance(self.body, bytes) else (self.body or "")
            if lifecycle_refusal(body) is not None:
                return _error(400, "MalformedXML", _MALFORMED)
        return original(self, request, bucket_name, querystring)

    return put


def _all_buckets(original):
    def all_buckets(self):
        params = ("prefix", "bucket-region", "max-buckets", "continuation-token")
        if not any(self._get_param(p) for p in params):
            return original(self)
        self.data["Action"] = "ListAllMyBuckets"
        self._authenticate_and_authorize_s3_action()
        found = self.backend.list_buckets(
            prefix=self._get_param("prefix"),
            bucket_region=self._get_param("bucket-region"),
            max_buckets=self._get_param("max-buckets"),
        )
        buckets = [
            {
                "Name": b.name,
                "CreationDate": b.creation_date_ISO8601,
                "BucketRegion": b.region_name,
            }
            for b in found
        ]
        self.data["Action"] = "ListBuckets"
        return self.serialized(
            s3_responses.ActionResult(
                {
                    "Owner": {"ID": "bcaf1ffd86f41161ca5fb16fd081034f", "DisplayName": "webfile"},
                    "Buckets": buckets,
                }
            )
        )

    return all_buckets


def apply():
    """Installs the patches over whatever is installed now (moto_patches' own come first)."""
    response = s3_responses.S3Response
    response._bucket_response = _bucket_response(response._bucket_response)
    response._key_response = _key_response(response._key_response)
    response._bucket_response_put = _bucket_put(response._bucket_response_put)
    response.all_buckets = _all_buckets(response.all_buckets)
