"""IAM enforcement in the sandbox's moto server, from the template's own policies.

Every Breakwater function binary that the sandbox runs (`sandbox::iam::role_env`) signs its calls
with the sandbox's role key and a session token naming the function, its home region and the
regions of its deployment. This module evaluates each such call against the inline policies of
that function's role in template.yaml (`iam_template.py`), as AWS evaluates a Lambda execution
role: a call the template does not grant is answered `AccessDenied` (403).

The sandbox's own key (`testing`: seeding the estate and reading it back — the judge) is the
account's administrator and is not evaluated, as moto does by default.

What moto evaluates and what it does not:
- actions and resources: moto checks `Action` and `Resource` with wildcards. moto itself names
  the resource of S3 and SQS calls; this module names it for RDS, EKS, SNS, Route 53, Budgets,
  IAM, SSM, Secrets Manager and Lambda calls (`_resource`), so a grant scoped to another region,
  cluster or topic is refused. A call whose resource the sandbox cannot name is checked on its
  action alone.
- conditions: not evaluated here. An `Allow` with a condition counts as its statement without the
  condition, a `Deny` with a condition is left out (moto would otherwise apply it to everything).
  Nothing else evaluates them at run time: the contract (`iam_contract.py`) checks actions, and
  budget's tag conditions are compared with the code's own rule by `budget::template_iam`.
- a read of a missing S3 key by a role without `s3:ListBucket` on the bucket answers 403
  AccessDenied, not 404 NoSuchKey, as S3 does ("If you don't have the s3:ListBucket permission,
  Amazon S3 returns an HTTP status code 403 Access Denied error", GetObject, Amazon S3 API
  Reference).
"""
from __future__ import annotations

import json
import re
import sys
from typing import Any
from urllib.parse import unquote, urlparse

import iam_template

# The access key of every function role in the sandbox; the session token says which role.
ROLE_KEY = "ASIABREAKWATERSANDBOX"
ROLE_SECRET = "breakwater-sandbox-role-secret"
TOKEN_PREFIX = "breakwater-sandbox:"


# Signing name (the credential scope of SigV4) → IAM service prefix, where they differ.
SIGNING_NAMES = {"monitoring": "cloudwatch"}


# The state bucket of a test or scene is `breakwater-state-<account>-<region><suffix>` (seed.rs);
# the template's grants name it without the suffix (iam_template.py).
_STATE_BUCKET = re.compile(r"^(arn:aws:s3:::breakwater-state-\d{12}-[a-z]{2}(?:-[a-z]+)+-\d)[^/]*")


def canonical(resource: str) -> str:
    """`resource` as the template's grants name it: a state bucket's ARN without the suffix the
    sandbox gave it, so that a grant on `<bucket>/spot/*` allows `spot/…` and nothing else."""
    return _STATE_BUCKET.sub(r"\1", resource)


class SandboxRole:
    """A Lambda execution role of the template, as moto's access control sees an access key."""

    def __init__(self, token: str):
        claims = json.loads(bytes.fromhex(token[len(TOKEN_PREFIX) :]))
        self.binary = claims["function"]
        self.region = claims["region"]
        self.parameters = {k: v for k, v in claims.get("parameters", {}).items()}
        self.token = token

    @property
    def arn(self) -> str:
        return (
            f"arn:aws:sts::{iam_template.ACCOUNT}:assumed-role/"
            f"breakwater-{self.binary}-{self.region}/{self.binary}"
        )

    def create_credentials(self) -> Any:
        from botocore.credentials import Credentials

        return Credentials(ROLE_KEY, ROLE_SECRET, self.token)

    def collect_policies(self) -> list[str]:
        return iam_template.policies(self.binary, self.region, self.parameters)

    def permits(self, action: str, resource: str) -> bool:
        from moto.iam.access_control import IAMPolicy, PermissionResult

        permitted = False
        for document in self.collect_policies():
            result = IAMPolicy(document).is_action_permitted(action, canonical(resource))
            if result == PermissionResult.DENIED:
                return False
            permitted = permitted or result == PermissionResult.PERMITTED
        return permitted


def _header(headers: Any, name: str) -> str | None:
    for key in (name, name.lower(), name.title()):
        value = headers.get(key)
        if value:
            return value
    return None


def role_of(headers: Any) -> SandboxRole | None:
    """The role a request is signed with, or None for the sandbox's administrator key."""
    authorization = _header(headers, "Authorization") or ""
    match = re.search(r"Credential=([^/]+)/", authorization)
    if not match or match.group(1) != ROLE_KEY:
        return None
    token = _header(headers, "X-Amz-Security-Token") or ""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return SandboxRole(token)


def _param(response: Any, name: str) -> str | None:
    try:
        value = response.querystring.get(name)
        if value:
            return value[0] if isinstance(value, list) else value
    except Exception:
        pass
    try:
        body = json.loads(response.body or "{}")
        if isinstance(body, dict) and isinstance(body.get(name), str):
            return body[name]
    except Exception:
        pass
    return None


def _resource(response: Any, service: str, region: str, account: str) -> str:
    """The ARN IAM evaluates a call against, where the sandbox can name it; `*` otherwise."""
    path = unquote(urlparse(response.uri).path)
    if service == "rds":
        for name, kind in (("DBInstanceIdentifier", "db"), ("DBClusterIdentifier", "cluster")):
            value = _param(response, name)
            if value:
                return value if value.startswith("arn:") else f"arn:aws:rds:{region}:{account}:{kind}:{value}"
        value = _param(response, "GlobalClusterIdentifier")
        if value:
            return f"arn:aws:rds::{account}:global-cluster:{value}"
        value = _param(response, "ResourceName")
        if value:
            return value
        return f"arn:aws:rds:{region}:{account}:db:*"
    if service == "eks":
        if path.startswith("/tags/"):
            return path[len("/tags/") :]
        match = re.match(r"^/clusters/([^/]+)(?:/node-groups(?:/([^/]+))?)?", path)
        if match:
            cluster, nodegroup = match.group(1), match.group(2)
            if nodegroup:
                arn = f"arn:aws:eks:{region}:{account}:nodegroup/{cluster}/{nodegroup}/*"
                try:
                    from moto.eks.models import eks_backends

                    arn = eks_backends[account][region].clusters[cluster].nodegroups[nodegroup].arn
                except Exception:
                    pass
                return arn
            return f"arn:aws:eks:{region}:{account}:cluster/{cluster}"
        return "*"
    if service == "sns":
        return _param(response, "TopicArn") or "*"
    if service == "route53":
        match = re.search(r"/(hostedzone|healthcheck|change)/([^/]+)", path)
        if match:
            return f"arn:aws:route53:::{match.group(1)}/{match.group(2)}"
        return "*"
    if service == "budgets":
        name = _param(response, "BudgetName")
        return f"arn:aws:budgets::{account}:budget/{name}" if name else "*"
    if service == "iam":
        name = _param(response, "RoleName")
        return f"arn:aws:iam::{account}:role/{name}" if name else "*"
    if service == "secretsmanager":
        value = _param(response, "SecretId")
        if value:
            return value if value.startswith("arn:") else f"arn:aws:secretsmanager:{region}:{account}:secret:{value}*"
        return "*"
    if service == "ssm":
        value = _param(response, "Name")
        if value:
            return value if value.startswith("arn:") else f"arn:aws:ssm:{region}:{account}:parameter/{value.lstrip('/')}"
        return "*"
    if service == "lambda":
        match = re.search(r"/functions/([^/]+)", path)
        if match:
            name = match.group(1)
            return name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{account}:function:{name}"
        return "*"
    return "*"


def apply() -> None:
    from moto.core import authorization
    from moto.iam import access_control
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult
    from moto.s3 import responses as s3_responses

    original_create_access_key = access_control.create_access_key

    def create_access_key(account_id, partition, access_key_id, headers):  # type: ignore[no-untyped-def]
        role = role_of(headers)
        if role is not None:
            return role
        return original_create_access_key(account_id, partition, access_key_id, headers)

    access_control.create_access_key = create_access_key

    def authorize(self, iam_request_cls, resource="*"):  # type: ignore[no-untyped-def]
        if role_of(self.headers) is None:
            return  # the sandbox's administrator key: seeding and read-back
        authorization_header = _header(self.headers, "Authorization") or ""
        scope = re.search(r"Credential=[^/]+/[^/]+/([^/]+)/([^/]+)/", authorization_header)
        region, service = (scope.group(1), scope.group(2)) if scope else (self.region, "")
        # A request is signed with the service's signing name; IAM's prefix can differ.
        service = SIGNING_NAMES.get(service, service)
        if resource == "*":
            try:
                resource = _resource(self, service, region, self.current_account)
            except Exception:
                resource = "*"
        resource = canonical(resource)
        parsed_url = urlparse(self.uri)
        path = self.raw_path
        if parsed_url.query:
            path += "?" + parsed_url.query
        action = self._get_action()
        action = iam_template.IAM_ACTIONS.get((service, action), action)
        request = iam_request_cls(
            account_id=self.current_account,
            method=self.method,
            path=path,
            data=self.data,
            body=self.raw_body,
            headers=self.headers,
            action=action,
        )
        request._action = f"{service}:{action}"  # IAM's prefix, not the signing name
        try:
            request.check_action_permitted(resource)
        except Exception:
            # moto's log says what the template did not grant, for the test that failed on it.
            role = role_of(self.headers)
            print(
                f"sandbox IAM: AccessDenied: {role.binary if role else '?'} ({role.region if role else '?'}) "
                f"{service}:{action} on {resource}",
                file=sys.stderr,
                flush=True,
            )
            raise

    authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize

    original_permitted = IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):  # type: ignore[no-untyped-def]
        # An identity policy is evaluated without request context: see the module's doc.
        if incoming_condition_values is None and "Condition" in self._statement:
            if self._statement.get("Effect") == "Deny":
                return PermissionResult.NEUTRAL
            unconditioned = {k: v for k, v in self._statement.items() if k != "Condition"}
            return original_permitted(
                IAMPolicyStatement(unconditioned), action, resource, principal, incoming_condition_values
            )
        return original_permitted(self, action, resource, principal, incoming_condition_values)

    IAMPolicyStatement.is_action_permitted = is_action_permitted

    original_matches = IAMPolicyStatement._check_element_matches

    def check_element_matches(self, statement_element, value):  # type: ignore[no-untyped-def]
        if statement_element == "Resource" and value == "*":
            return True  # a resource the sandbox cannot name: the action alone is checked
        return original_matches(self, statement_element, value)

    IAMPolicyStatement._check_element_matches = check_element_matches

    # moto names S3 calls by its ACTION_MAP, which lacks these bucket subresources and would name
    # them s3:ListBucket (its default); their IAM actions (Service Authorization Reference,
    # "Actions defined by Amazon S3").
    bucket_actions = s3_responses.ACTION_MAP["BUCKET"]
    bucket_actions["GET"].update(
        {
            "object-lock": "GetBucketObjectLockConfiguration",
            "replication": "GetReplicationConfiguration",
            "requestPayment": "GetBucketRequestPayment",
            "ownershipControls": "GetBucketOwnershipControls",
            "encryption": "GetEncryptionConfiguration",
            "intelligent-tiering": "GetIntelligentTieringConfiguration",
            "inventory": "GetInventoryConfiguration",
        }
    )
    bucket_actions["PUT"].update(
        {
            "object-lock": "PutBucketObjectLockConfiguration",
            "replication": "PutReplicationConfiguration",
            "requestPayment": "PutBucketRequestPayment",
        }
    )
    bucket_actions["DELETE"].update({"replication": "PutReplicationConfiguration"})
    # HeadBucket is authorized as s3:ListBucket (HeadBucket, Amazon S3 API Reference).
    bucket_actions["HEAD"]["DEFAULT"] = "ListBucket"

    original_key_response = s3_responses.S3Response.key_response

    def key_response(self, request, full_url, headers):  # type: ignore[no-untyped-def]
        status, response_headers, body = original_key_response(self, request, full_url, headers)
        if status == 404 and request.method in ("GET", "HEAD"):
            role = role_of(request.headers)
            missing_key = request.method == "HEAD" or b"NoSuchKey" in (
                body if isinstance(body, bytes) else str(body).encode()
            )
            bucket = self.parse_bucket_name_from_url(request, full_url)
            if role is not None and missing_key and not role.permits("s3:ListBucket", f"arn:aws:s3:::{bucket}"):
                denied = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n'
                    "<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
                    "<RequestId>breakwater-sandbox</RequestId></Error>"
                )
                return 403, {"Content-Type": "application/xml"}, "" if request.method == "HEAD" else denied
        return status, response_headers, body

    s3_responses.S3Response.key_response = key_response
