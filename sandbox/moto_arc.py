"""The Route 53 ARC cluster data plane ("Routing control (Recovery Cluster) API") in the sandbox's
moto server, which has none.

The failover function moves traffic with `UpdateRoutingControlStates` against one of an ARC
cluster's five regional endpoints. This module answers those calls in moto's server process, from
a small in-memory store of clusters, control panels, routing controls and safety rules, and refuses
what ARC refuses. Every other request goes to moto unchanged.

Protocol (botocore's `route53-recovery-cluster/2019-12-02/service-2.json`, authoritative for the
shapes): awsJson 1.0, `POST /` with `X-Amz-Target: ToggleCustomerAPI.<Operation>`, SigV4 signing
name `route53-recovery-cluster`. Operations: GetRoutingControlState, ListRoutingControls,
UpdateRoutingControlState, UpdateRoutingControlStates. Errors are `{"__type", "message", ...}` with
the statuses of the service's Smithy model (as the AWS SDKs carry them, e.g. aws-sdk-js-v3
`client-route53-recovery-cluster/src/schemas/schemas_0.ts`): AccessDeniedException 403,
ConflictException 409, EndpointTemporarilyUnavailableException 503, InternalServerException 500,
ResourceNotFoundException 404, ServiceLimitExceededException 402, ThrottlingException 429,
ValidationException 400 (reasons `unknownOperation`, `cannotParse`, `fieldValidationFailed`).

Safety rules (https://docs.aws.amazon.com/r53recovery/latest/dg/routing-control.safety-rules.html,
and the CloudFormation `AWS::Route53RecoveryControl::SafetyRule` reference):
- an assertion rule: "An assertion rule enforces that, when a routing control state is changed,
  the criteria set by the rule configuration is met. Otherwise, the change to the routing control
  state is not accepted." It is evaluated when an update names one of its AssertedControls, on the
  states the update would produce;
- a gating rule: "A gating rule verifies that a gating routing control or set of gating routing
  controls, evaluates as true, based on a rule configuration that you specify, which allows a set
  of routing control state changes to complete." It is evaluated when an update names one of its
  TargetControls, on the GatingControls' states the update would produce;
- RuleConfig: "This configuration specifies how many controls must be enabled after a transaction
  completes" — ATLEAST (at least Threshold On), AND (all On), OR (at least one On); "Inverted:
  Logical negation of the rule. If the rule would usually evaluate true, it's evaluated as false,
  and vice versa."
- a refused update changes nothing (a batch is all or nothing) and is answered ConflictException
  (409), the one error of the Update operations for a refused change that is not about the input
  ("There was a conflict with this request"); its message names the rule's ARN, as ARC's does:
  "When a safety rule blocks a routing control state update, the error message includes the ARN
  of the rule that blocked the update" (routing-control.override-safety-rule.html). The API
  reference does not name the exception; ConflictException is the sandbox's reading.
- `SafetyRulesToOverride` skips the named rules ("you can override one or more safety rules to
  change a routing control state", same page). ARNs there that name no rule are ignored.

IAM (Service Authorization Reference, "Actions, resources, and condition keys for Amazon Route 53
Recovery Cluster"): GetRoutingControlState, UpdateRoutingControlState and
UpdateRoutingControlStates need `route53-recovery-cluster:<Operation>` on each routing control
(`arn:${Partition}:route53-recovery-control::${Account}:controlpanel/${ControlPanelId}/routingcontrol/${RoutingControlId}`);
ListRoutingControls has no resource type (`*`). A call signed by a sandbox function role
(`moto_iam.role_of`) is evaluated against that role's statements; a refusal is 403
AccessDeniedException and a line on stderr. The condition key
`route53-recovery-cluster:AllowSafetyRulesOverrides` is not evaluated (as moto_iam evaluates no
conditions). The sandbox's admin key (`testing`) is not evaluated.

Endpoints. A cluster has five regional endpoints ("A cluster provides a set of five redundant
Regional endpoints", API reference), URLs such as `https://host-aaaaaa.us-east-1.example.com/v1`
(list-clusters example, Recovery Control Configuration API Reference). The sandbox's endpoints
(`sandbox/src/arc.rs`) are loopback listeners forwarding here; the `Host` header still names the
listener, so a cluster registers its listeners' `host:port` with their regions, and then:
- a request through a cluster's endpoint sees that cluster's routing controls only (another
  cluster's ARN is ResourceNotFoundException there), so tests sharing one moto do not interfere;
- its signature must be scoped to the endpoint's region, as on AWS (403
  InvalidSignatureException "Credential should be scoped to a valid region.").
A request straight to moto (no registered Host) sees every cluster, with no region check.

The judge's admin path (unsigned or signed with the admin key; a function role is refused), JSON
in and out, `POST /_breakwater/arc/<verb>`:
- `cluster` {"Name", "Endpoints": {"127.0.0.1:PORT": "us-east-1", ...}} → {"ClusterArn"}
- `control-panel` {"ClusterArn"?, "Name"} → {"ControlPanelArn"}
- `routing-control` {"ControlPanelArn", "Name", "State"?: "On"|"Off" (default Off)}
  → {"RoutingControlArn"}
- `assertion-rule` {"ControlPanelArn", "Name", "AssertedControls": [...],
  "RuleConfig": {"Type", "Threshold", "Inverted"}} → {"SafetyRuleArn"}
- `gating-rule` {"ControlPanelArn", "Name", "GatingControls": [...], "TargetControls": [...],
  "RuleConfig": {...}} → {"SafetyRuleArn"}
- `state` {"RoutingControlArn"} → {"RoutingControlArn", "RoutingControlName",
  "RoutingControlState", "ControlPanelArn"} (read-back; 404 when unknown)
- `set-state` {"RoutingControlArn", "State"} → {} (the judge sets a state, no rules applied)
- `fault` {"Region", "Error": "ThrottlingException" | "EndpointTemporarilyUnavailableException" |
  "InternalServerException", "Count"?: n} → {} (the next n calls, all when absent, through that
  region's endpoint are answered so; `{"Region", "Clear": true}` removes them)
- `reset` {} → {} (drops every control panel, routing control, rule and fault; registered
  endpoints stay). moto's own `POST /moto-api/reset` does the same, then resets moto.
- `dump` {} → the whole store.
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import sys
import threading
from typing import Any

import iam_template
import moto_iam

TARGET_PREFIX = "ToggleCustomerAPI."
SIGNING_NAME = "route53-recovery-cluster"
ADMIN_PREFIX = "/_breakwater/arc/"
PARTITION = "aws"
OPERATIONS = (
    "GetRoutingControlState",
    "ListRoutingControls",
    "UpdateRoutingControlState",
    "UpdateRoutingControlStates",
)
STATES = ("On", "Off")
RULE_TYPES = ("ATLEAST", "AND", "OR")
# ListRoutingControls: "The default value is 500" (MaxResults, service-2.json).
DEFAULT_MAX_RESULTS = 500
# Arn: min 1, max 255, pattern ^[A-Za-z0-9:.\/_-]*$ (service-2.json).
ARN_PATTERN = re.compile(r"^[A-Za-z0-9:./_-]*$")
STATUS_TEXT = {
    200: "200 OK",
    400: "400 Bad Request",
    402: "402 Payment Required",
    403: "403 Forbidden",
    404: "404 Not Found",
    409: "409 Conflict",
    429: "429 Too Many Requests",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}
ERROR_STATUS = {
    "AccessDeniedException": 403,
    "ConflictException": 409,
    "EndpointTemporarilyUnavailableException": 503,
    "InternalServerException": 500,
    "ResourceNotFoundException": 404,
    "ServiceLimitExceededException": 402,
    "ThrottlingException": 429,
    "ValidationException": 400,
    "InvalidSignatureException": 403,
}
INJECTABLE = ("ThrottlingException", "EndpointTemporarilyUnavailableException", "InternalServerException")


class ArcError(Exception):
    def __init__(self, code: str, message: str, **fields: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields


def _validation(message: str, reason: str = "fieldValidationFailed", field: str | None = None) -> ArcError:
    extra: dict[str, Any] = {"reason": reason}
    if field is not None:
        extra["fields"] = [{"name": field, "message": message}]
    return ArcError("ValidationException", message, **extra)


class Store:
    """Clusters, control panels, routing controls, safety rules and injected faults."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.endpoints: dict[str, tuple[str, str]] = {}  # host:port -> (cluster ARN, region)
        self.clusters: dict[str, dict[str, Any]] = {}
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.panels: dict[str, dict[str, Any]] = {}
            self.controls: dict[str, dict[str, Any]] = {}  # insertion order = list order
            self.rules: dict[str, dict[str, Any]] = {}
            self.faults: dict[str, list[Any]] = {}  # region -> [error, remaining or None]

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {
                "Clusters": self.clusters,
                "Endpoints": {h: {"ClusterArn": c, "Region": r} for h, (c, r) in self.endpoints.items()},
                "ControlPanels": self.panels,
                "RoutingControls": self.controls,
                "SafetyRules": self.rules,
                "Faults": self.faults,
            }


STORE = Store()


def _hex(n: int) -> str:
    return secrets.token_hex(n // 2)


# ---------------------------------------------------------------------------------------------
# The judge's admin path


def _require(body: dict[str, Any], name: str, kind: type = str) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or (kind is str and not value):
        raise ArcError("ValidationException", f"admin: {name} ({kind.__name__}) is required")
    return value


def _rule_config(body: dict[str, Any]) -> dict[str, Any]:
    config = _require(body, "RuleConfig", dict)
    kind = config.get("Type")
    if kind not in RULE_TYPES:
        raise ArcError("ValidationException", f"admin: RuleConfig.Type must be one of {RULE_TYPES}")
    threshold = config.get("Threshold", 1)
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise ArcError("ValidationException", "admin: RuleConfig.Threshold must be an integer")
    return {"Type": kind, "Threshold": threshold, "Inverted": bool(config.get("Inverted", False))}


def _known_controls(body: dict[str, Any], name: str, panel: str) -> list[str]:
    arns = _require(body, name, list)
    for arn in arns:
        control = STORE.controls.get(arn)
        if control is None:
            raise ArcError("ResourceNotFoundException", f"admin: {name}: no routing control {arn}")
        if control["ControlPanelArn"] != panel:
            raise ArcError("ValidationException", f"admin: {name}: {arn} is not in control panel {panel}")
    return list(arns)


def admin(verb: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    account = iam_template.ACCOUNT
    with STORE.lock:
        if verb == "cluster":
            name = _require(body, "Name")
            arn = f"arn:{PARTITION}:route53-recovery-control::{account}:cluster/{_hex(8)}-{_hex(4)}-{_hex(4)}-{_hex(4)}-{_hex(12)}"
            endpoints = body.get("Endpoints") or {}
            if not isinstance(endpoints, dict):
                raise ArcError("ValidationException", "admin: Endpoints must map host:port to a region")
            STORE.clusters[arn] = {"Name": name, "Endpoints": dict(endpoints)}
            for host, region in endpoints.items():
                STORE.endpoints[host] = (arn, region)
            return 200, {"ClusterArn": arn}
        if verb == "control-panel":
            name = _require(body, "Name")
            cluster = body.get("ClusterArn")
            if cluster is not None and cluster not in STORE.clusters:
                raise ArcError("ResourceNotFoundException", f"admin: no cluster {cluster}")
            arn = f"arn:{PARTITION}:route53-recovery-control::{account}:controlpanel/{_hex(32)}"
            STORE.panels[arn] = {"Name": name, "ClusterArn": cluster, "Owner": account}
            return 200, {"ControlPanelArn": arn}
        if verb == "routing-control":
            panel = _require(body, "ControlPanelArn")
            if panel not in STORE.panels:
                raise ArcError("ResourceNotFoundException", f"admin: no control panel {panel}")
            name = _require(body, "Name")
            state = body.get("State", "Off")
            if state not in STATES:
                raise ArcError("ValidationException", f"admin: State must be On or Off, not {state!r}")
            arn = f"{panel}/routingcontrol/{_hex(16)}"
            STORE.controls[arn] = {
                "RoutingControlName": name,
                "ControlPanelArn": panel,
                "RoutingControlState": state,
                "Owner": STORE.panels[panel]["Owner"],
            }
            return 200, {"RoutingControlArn": arn}
        if verb in ("assertion-rule", "gating-rule"):
            panel = _require(body, "ControlPanelArn")
            if panel not in STORE.panels:
                raise ArcError("ResourceNotFoundException", f"admin: no control panel {panel}")
            rule: dict[str, Any] = {
                "Name": _require(body, "Name"),
                "ControlPanelArn": panel,
                "RuleConfig": _rule_config(body),
            }
            if verb == "assertion-rule":
                rule["Kind"] = "ASSERTION"
                rule["AssertedControls"] = _known_controls(body, "AssertedControls", panel)
            else:
                rule["Kind"] = "GATING"
                rule["GatingControls"] = _known_controls(body, "GatingControls", panel)
                rule["TargetControls"] = _known_controls(body, "TargetControls", panel)
            arn = f"{panel}/safetyrule/{_hex(16)}"
            STORE.rules[arn] = rule
            return 200, {"SafetyRuleArn": arn}
        if verb == "state":
            arn = _require(body, "RoutingControlArn")
            control = STORE.controls.get(arn)
            if control is None:
                raise ArcError("ResourceNotFoundException", f"admin: no routing control {arn}")
            return 200, {
                "RoutingControlArn": arn,
                "RoutingControlName": control["RoutingControlName"],
                "RoutingControlState": control["RoutingControlState"],
                "ControlPanelArn": control["ControlPanelArn"],
            }
        if verb == "set-state":
            arn = _require(body, "RoutingControlArn")
            state = body.get("State")
            if arn not in STORE.controls:
                raise ArcError("ResourceNotFoundException", f"admin: no routing control {arn}")
            if state not in STATES:
                raise ArcError("ValidationException", f"admin: State must be On or Off, not {state!r}")
            STORE.controls[arn]["RoutingControlState"] = state
            return 200, {}
        if verb == "fault":
            region = _require(body, "Region")
            if body.get("Clear"):
                STORE.faults.pop(region, None)
                return 200, {}
            error = body.get("Error")
            if error not in INJECTABLE:
                raise ArcError("ValidationException", f"admin: Error must be one of {INJECTABLE}")
            count = body.get("Count")
            if count is not None and (not isinstance(count, int) or count < 1):
                raise ArcError("ValidationException", "admin: Count must be a positive integer")
            STORE.faults[region] = [error, count]
            return 200, {}
        if verb == "reset":
            STORE.reset()
            return 200, {}
        if verb == "dump":
            return 200, STORE.dump()
    raise ArcError("ResourceNotFoundException", f"admin: no verb {verb!r}")


# ---------------------------------------------------------------------------------------------
# The data plane


def _string(params: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise _validation(f"{name} is required", field=name)
        return None
    if not isinstance(value, str):
        raise _validation(f"{name} must be a string", field=name)
    return value


def _arn(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _validation(f"{name} must be a string", field=name)
    if not 1 <= len(value) <= 255 or not ARN_PATTERN.match(value):
        raise _validation(
            f"Value at '{name}' failed to satisfy constraint: Member must have length between 1 and 255 "
            "and match pattern ^[A-Za-z0-9:.\\/_-]*$",
            field=name,
        )
    return value


def _state(value: Any, name: str) -> str:
    if value not in STATES:
        raise _validation(
            f"Value {value!r} at '{name}' failed to satisfy constraint: Member must satisfy enum value set: [On, Off]",
            field=name,
        )
    return value


def _overrides(params: dict[str, Any]) -> set[str]:
    value = params.get("SafetyRulesToOverride")
    if value is None:
        return set()
    if not isinstance(value, list):
        raise _validation("SafetyRulesToOverride must be a list of ARNs", field="SafetyRulesToOverride")
    return {_arn(v, "SafetyRulesToOverride") for v in value}


def _visible(control: dict[str, Any], cluster: str | None) -> bool:
    if cluster is None:
        return True
    panel = STORE.panels.get(control["ControlPanelArn"], {})
    return panel.get("ClusterArn") == cluster


def _control(arn: str, cluster: str | None) -> dict[str, Any]:
    control = STORE.controls.get(arn)
    if control is None or not _visible(control, cluster):
        raise ArcError(
            "ResourceNotFoundException",
            f"Routing control {arn} was not found",
            resourceId=arn,
            resourceType="RoutingControl",
        )
    return control


def _holds(config: dict[str, Any], controls: list[str], states: dict[str, str]) -> bool:
    on = sum(1 for arn in controls if states.get(arn) == "On")
    if config["Type"] == "ATLEAST":
        result = on >= config["Threshold"]
    elif config["Type"] == "AND":
        result = on == len(controls)
    else:
        result = on >= 1
    return not result if config["Inverted"] else result


def _check_rules(changes: dict[str, str], overrides: set[str]) -> None:
    after = {arn: c["RoutingControlState"] for arn, c in STORE.controls.items()}
    after.update(changes)
    for arn, rule in STORE.rules.items():
        if arn in overrides:
            continue
        if rule["Kind"] == "ASSERTION":
            applies = any(c in changes for c in rule["AssertedControls"])
            holds = _holds(rule["RuleConfig"], rule["AssertedControls"], after)
        else:
            applies = any(c in changes for c in rule["TargetControls"])
            holds = _holds(rule["RuleConfig"], rule["GatingControls"], after)
        if applies and not holds:
            raise ArcError(
                "ConflictException",
                f"The routing control state update was blocked by safety rule {arn} ({rule['Name']}, "
                f"{rule['Kind'].lower()} rule): the states after the update would not satisfy its rule "
                "configuration. Override it with SafetyRulesToOverride to update anyway.",
                resourceId=arn,
                resourceType="SafetyRule",
            )


def _authorize(role: Any, operation: str, resources: list[str]) -> None:
    if role is None:
        return
    action = f"{SIGNING_NAME}:{operation}"
    for resource in resources:
        if not role.permits(action, resource):
            print(
                f"sandbox IAM: AccessDenied: {role.binary} ({role.region}) {action} on {resource}",
                file=sys.stderr,
                flush=True,
            )
            raise ArcError(
                "AccessDeniedException",
                f"User: {role.arn} is not authorized to perform: {action} on resource: {resource}",
            )


def operate(operation: str, params: dict[str, Any], role: Any, cluster: str | None) -> dict[str, Any]:
    if operation == "GetRoutingControlState":
        arn = _arn(_string(params, "RoutingControlArn"), "RoutingControlArn")
        _authorize(role, operation, [arn])
        with STORE.lock:
            control = _control(arn, cluster)
            return {
                "RoutingControlArn": arn,
                "RoutingControlState": control["RoutingControlState"],
                "RoutingControlName": control["RoutingControlName"],
            }
    if operation == "ListRoutingControls":
        panel = _string(params, "ControlPanelArn", required=False)
        if panel is not None:
            _arn(panel, "ControlPanelArn")
        token = _string(params, "NextToken", required=False)
        limit = params.get("MaxResults", DEFAULT_MAX_RESULTS)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _validation(
                "Value at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1",
                field="MaxResults",
            )
        start = 0
        if token is not None:
            try:
                start = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("arc:"))
            except (ValueError, UnicodeDecodeError):
                raise _validation("The NextToken is not valid", field="NextToken") from None
        # No resource type: "ListRoutingControls … Resource types: (none)" → `*`.
        _authorize(role, operation, ["*"])
        with STORE.lock:
            if panel is not None and (
                panel not in STORE.panels or (cluster is not None and STORE.panels[panel]["ClusterArn"] != cluster)
            ):
                raise ArcError(
                    "ResourceNotFoundException",
                    f"Control panel {panel} was not found",
                    resourceId=panel,
                    resourceType="ControlPanel",
                )
            rows = [
                {
                    "ControlPanelArn": c["ControlPanelArn"],
                    "ControlPanelName": STORE.panels[c["ControlPanelArn"]]["Name"],
                    "RoutingControlArn": arn,
                    "RoutingControlName": c["RoutingControlName"],
                    "RoutingControlState": c["RoutingControlState"],
                    "Owner": c["Owner"],
                }
                for arn, c in STORE.controls.items()
                if _visible(c, cluster) and (panel is None or c["ControlPanelArn"] == panel)
            ]
        page = rows[start : start + limit]
        out: dict[str, Any] = {"RoutingControls": page}
        if start + limit < len(rows):
            out["NextToken"] = base64.urlsafe_b64encode(f"arc:{start + limit}".encode()).decode()
        return out
    if operation in ("UpdateRoutingControlState", "UpdateRoutingControlStates"):
        if operation == "UpdateRoutingControlState":
            arn = _arn(_string(params, "RoutingControlArn"), "RoutingControlArn")
            entries = [(arn, _state(params.get("RoutingControlState"), "RoutingControlState"))]
        else:
            raw = params.get("UpdateRoutingControlStateEntries")
            if raw is None:
                raise _validation("UpdateRoutingControlStateEntries is required", field="UpdateRoutingControlStateEntries")
            if not isinstance(raw, list) or not raw:
                raise _validation(
                    "UpdateRoutingControlStateEntries must be a non-empty list",
                    field="UpdateRoutingControlStateEntries",
                )
            entries = []
            for i, entry in enumerate(raw):
                where = f"UpdateRoutingControlStateEntries.{i + 1}"
                if not isinstance(entry, dict):
                    raise _validation(f"{where} must be a structure", field=where)
                if "RoutingControlArn" not in entry:
                    raise _validation(f"{where}.RoutingControlArn is required", field=f"{where}.RoutingControlArn")
                entries.append(
                    (
                        _arn(entry["RoutingControlArn"], f"{where}.RoutingControlArn"),
                        _state(entry.get("RoutingControlState"), f"{where}.RoutingControlState"),
                    )
                )
        changes: dict[str, str] = {}
        for arn, state in entries:
            if changes.get(arn, state) != state:
                raise _validation(f"Routing control {arn} is given two different states", field="RoutingControlArn")
            changes[arn] = state
        overrides = _overrides(params)
        _authorize(role, operation, list(changes))
        with STORE.lock:
            for arn in changes:
                _control(arn, cluster)
            _check_rules(changes, overrides)
            for arn, state in changes.items():
                STORE.controls[arn]["RoutingControlState"] = state
        return {}
    raise _validation(f"Unknown operation {TARGET_PREFIX}{operation}", reason="unknownOperation")


# ---------------------------------------------------------------------------------------------
# WSGI


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out["-".join(p.capitalize() for p in key[5:].split("_"))] = value
    if environ.get("CONTENT_TYPE"):
        out["Content-Type"] = environ["CONTENT_TYPE"]
    return out


def _body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _respond(start_response: Any, status: int, payload: dict[str, Any], extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = json.dumps(payload).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("Content-Length", str(len(data))),
        ("x-amzn-RequestId", f"arc-sandbox-{_hex(16)}"),
    ] + (extra or [])
    start_response(STATUS_TEXT.get(status, f"{status} Error"), headers)
    return [data]


def _error(start_response: Any, error: ArcError) -> list[bytes]:
    payload: dict[str, Any] = {"__type": error.code, "message": error.message}
    payload.update(error.fields)
    extra = [("x-amzn-ErrorType", error.code)]
    if error.code == "ThrottlingException":
        extra.append(("Retry-After", "1"))
    return _respond(start_response, ERROR_STATUS.get(error.code, 400), payload, extra)


def _scope(headers: dict[str, str]) -> tuple[str, str] | None:
    match = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request", headers.get("Authorization", ""))
    return (match.group(1), match.group(2)) if match else None


def handle_data_plane(environ: dict[str, Any], start_response: Any, operation: str) -> list[bytes]:
    headers = _headers(environ)
    body = _body(environ)
    try:
        scope = _scope(headers)
        if scope is None:
            raise ArcError("AccessDeniedException", "Missing Authentication Token")
        region, service = scope
        if service != SIGNING_NAME:
            raise ArcError(
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{SIGNING_NAME}'.",
            )
        with STORE.lock:
            cluster, endpoint_region = STORE.endpoints.get(headers.get("Host", ""), (None, None))
            if endpoint_region is not None and region != endpoint_region:
                raise ArcError("InvalidSignatureException", "Credential should be scoped to a valid region.")
            fault = STORE.faults.get(endpoint_region or region)
            if fault is not None:
                if fault[1] is not None:
                    fault[1] -= 1
                    if fault[1] <= 0:
                        STORE.faults.pop(endpoint_region or region, None)
                messages = {
                    "ThrottlingException": "Rate exceeded",
                    "EndpointTemporarilyUnavailableException": "The cluster endpoint isn't available. Try another cluster endpoint.",
                    "InternalServerException": "There was an unexpected error during processing of the request.",
                }
                raise ArcError(fault[0], messages[fault[0]])
        if operation not in OPERATIONS:
            raise _validation(f"Unknown operation {TARGET_PREFIX}{operation}", reason="unknownOperation")
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise _validation("The request body could not be parsed as JSON", reason="cannotParse") from None
        if not isinstance(params, dict):
            raise _validation("The request body must be a JSON object", reason="cannotParse")
        role = moto_iam.role_of(headers)
        return _respond(start_response, 200, operate(operation, params, role, cluster))
    except ArcError as error:
        return _error(start_response, error)


def handle_admin(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    headers = _headers(environ)
    try:
        if moto_iam.role_of(headers) is not None:
            raise ArcError("AccessDeniedException", "the ARC admin path is the sandbox's, not a function's")
        if environ.get("REQUEST_METHOD") != "POST":
            raise ArcError("ValidationException", "admin: use POST with a JSON body")
        raw = _body(environ)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ArcError("ValidationException", "admin: the body is not JSON") from None
        if not isinstance(body, dict):
            raise ArcError("ValidationException", "admin: the body must be a JSON object")
        verb = environ.get("PATH_INFO", "")[len(ADMIN_PREFIX) :].strip("/")
        status, payload = admin(verb, body)
        return _respond(start_response, status, payload)
    except ArcError as error:
        return _error(start_response, error)


def _dispatch(original: Any) -> Any:
    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(TARGET_PREFIX):
            return handle_data_plane(environ, start_response, target[len(TARGET_PREFIX) :])
        path = environ.get("PATH_INFO", "")
        if path.startswith(ADMIN_PREFIX):
            return handle_admin(environ, start_response)
        if path.rstrip("/") == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
            STORE.reset()
        return original(self, environ, start_response)

    return call


def apply() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    DomainDispatcherApplication.__call__ = _dispatch(DomainDispatcherApplication.__call__)

