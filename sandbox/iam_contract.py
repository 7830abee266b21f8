"""The IAM contract: every AWS operation each function's code can call, its IAM action, and
whether the function's role in template.yaml (SAM-expanded) grants it.

How "can call" is found, from the code as written:
- a function's adapters are the ones its `src/main.rs` wires (`Type::new(`), plus the state store
  (S3) and the notifier (SNS) that every function gets from the shared `Toolkit`, plus any SDK
  client its own crate builds (rollback's hand-off and secrets);
- an adapter method is reachable when the function's crate, or the shared crate outside the
  adapters (`lambda.rs`, `report.rs`, …), calls it by name (`.method(`); a method's SDK operations
  include those of the adapter's own helpers it calls (`self.helper(`);
- an SDK operation is a `.operation()` call on a client whose service the adapter holds, checked
  against the operation names of that SDK crate (its `src/operation/<name>/` folders).

The action of each operation is `service:OperationName` unless IAM names it otherwise (the table
`IAM_NAMES`, each from the Service Authorization Reference). A grant counts when a statement of the
role allows the action on some resource; the resource the call reaches is checked at run time by
the sandbox's IAM enforcement (moto_iam.py), where names are known.

Usage: iam_contract.py [--check] [--markdown]. `--check` exits 1 when a grant is missing or a grant
is unused, after printing the table.
"""
from __future__ import annotations

import glob
import os
import re
import sys
from dataclasses import dataclass, field

import iam_template

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUNCTIONS = ["budget", "tiering", "spot", "rollback", "failover"]

# Operations whose IAM action is not `service:PascalName` (Service Authorization Reference,
# "Actions defined by Amazon S3" and the other services' pages).
IAM_NAMES = {
    ("s3", "head_object"): "s3:GetObject",
    ("s3", "list_objects_v2"): "s3:ListBucket",
    ("s3", "list_buckets"): "s3:ListAllMyBuckets",
    ("s3", "get_bucket_lifecycle_configuration"): "s3:GetLifecycleConfiguration",
    ("s3", "delete_bucket_lifecycle"): "s3:PutLifecycleConfiguration",
    ("s3", "get_bucket_replication"): "s3:GetReplicationConfiguration",
    ("s3", "get_object_lock_configuration"): "s3:GetBucketObjectLockConfiguration",
    ("s3", "put_bucket_lifecycle_configuration"): "s3:PutLifecycleConfiguration",
    ("sts", "get_caller_identity"): None,  # never needs a grant
}

# A grant the code needs although no call names it: S3 answers a missing key with 403 unless
# the role may list the bucket (GetObject, Amazon S3 API Reference, "Permissions").
# Creating a tagged RDS resource is also authorized as rds:AddTagsToResource ("Grant permission to
# tag Amazon RDS resources during creation", Amazon RDS User Guide); failover tags the replica it
# creates when it re-protects.
IMPLIED = {
    "s3:GetObject": ["s3:ListBucket"],
    # Re-creating an encrypted replica with the plan's key: RDS acts with the caller's rights on
    # it, "kms:CreateGrant, kms:DescribeKey" (Amazon RDS User Guide, AWS KMS key management,
    # "Authorizing use of a customer managed key").
    "rds:CreateDBInstanceReadReplica": [
        "rds:AddTagsToResource",
        "kms:CreateGrant",
        "kms:DescribeKey",
    ],
    # The notification topic is encrypted with its own key (template.yaml, NotificationTopicKey):
    # a publisher needs kms:GenerateDataKey and kms:Decrypt on it (Amazon SNS Developer Guide,
    # "Configuring AWS KMS permissions").
    "sns:Publish": ["kms:GenerateDataKey", "kms:Decrypt"],
}


def strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def block_end(text: str, open_brace: int) -> int:
    depth = 0
    for i in range(open_brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def sdk_operations(service: str) -> set[str]:
    crate = "aws-sdk-" + service
    roots = sorted(glob.glob(os.path.expanduser(f"~/.cargo/registry/src/*/{crate}-*/src/operation")))
    if not roots:
        raise SystemExit(f"{crate} sources not found under ~/.cargo/registry: build the workspace first")
    return {os.path.basename(p) for p in glob.glob(os.path.join(roots[-1], "*")) if os.path.isdir(p)}


_OPERATIONS: dict[str, set[str]] = {}


def operations_of(service: str) -> set[str]:
    if service not in _OPERATIONS:
        _OPERATIONS[service] = sdk_operations(service)
    return _OPERATIONS[service]


@dataclass
class Method:
    name: str
    operations: set[tuple[str, str]] = field(default_factory=set)
    helpers: set[str] = field(default_factory=set)


@dataclass
class Adapter:
    name: str
    file: str
    service: str
    methods: dict[str, Method] = field(default_factory=dict)
    traits: set[str] = field(default_factory=set)

    def reachable(self, method: str, seen: set[str] | None = None) -> set[tuple[str, str]]:
        seen = seen if seen is not None else set()
        if method in seen or method not in self.methods:
            return set()
        seen.add(method)
        out = set(self.methods[method].operations)
        for helper in self.methods[method].helpers:
            out |= self.reachable(helper, seen)
        return out


SERVICES = ["s3", "sns", "sqs", "eks", "rds", "budgets", "iam", "route53", "ec2", "cloudwatch", "sts",
            "lambda", "secretsmanager", "ssm", "route53recoverycluster", "elasticloadbalancingv2"]

# SDK crate (`aws_sdk_<name>`) → IAM service prefix, where they differ (Service Authorization
# Reference: "Amazon Route 53 Recovery Cluster (service prefix: `route53-recovery-cluster`)").
IAM_PREFIXES = {"route53recoverycluster": "route53-recovery-cluster", "eventbridge": "events",
                "elasticloadbalancingv2": "elasticloadbalancing"}


def parse_adapter(path: str, type_name: str) -> Adapter | None:
    text = strip_comments(open(path, encoding="utf-8").read())
    struct = re.search(r"pub struct " + type_name + r"\b[^{;]*\{(.*?)\n\}", text, re.S)
    found = re.search(r"aws_sdk_(\w+)::Client", struct.group(1)) if struct else None
    if found:
        services = [found.group(1)]
    else:
        # No client of its own: the clients it takes from `Aws` (`aws.eks()`, `aws.rds_in(r)`).
        services = sorted(set(re.findall(r"\.(" + "|".join(SERVICES) + r")(?:_in)?\(", text)))
    if not services:
        return None
    adapter = Adapter(type_name, os.path.relpath(path, ROOT), "/".join(services))
    for impl in re.finditer(r"\nimpl(?:<[^>]*>)?\s+(?:([\w:]+)(?:<[^>]*>)?\s+for\s+)?" + type_name + r"\b[^{]*\{", text):
        if impl.group(1):
            adapter.traits.add(impl.group(1).split("::")[-1])
        start = impl.end() - 1
        body = text[start : block_end(text, start) + 1]
        for fn in re.finditer(r"fn (\w+)[^{;]*\{", body):
            fn_start = fn.end() - 1
            fn_body = body[fn_start : block_end(body, fn_start) + 1]
            method = adapter.methods.setdefault(fn.group(1), Method(fn.group(1)))
            for op in re.findall(r"\.(\w+)\(\)", fn_body):
                for service in services:
                    if op in operations_of(service):
                        method.operations.add((service, op))
                        break
            method.helpers |= set(re.findall(r"self\.(\w+)\(", fn_body))
    return adapter


def find_adapter(type_name: str, crate: str) -> Adapter | None:
    """The adapter's definition, in the shared crate or in the function's own crate."""
    paths = glob.glob(os.path.join(ROOT, "shared/src/**/*.rs"), recursive=True)
    paths += glob.glob(os.path.join(ROOT, crate, "**/*.rs"), recursive=True)
    for path in sorted(paths):
        if re.search(r"pub struct " + type_name + r"\b", open(path, encoding="utf-8").read()):
            return parse_adapter(path, type_name)
    return None


def sources(paths: list[str]) -> str:
    out = []
    for pattern in paths:
        for path in sorted(glob.glob(os.path.join(ROOT, pattern), recursive=True)):
            out.append(strip_comments(open(path, encoding="utf-8").read()))
    return "\n".join(out)


def action_of(service: str, op: str) -> str | None:
    if (service, op) in IAM_NAMES:
        return IAM_NAMES[(service, op)]
    pascal = "".join(part.capitalize() for part in op.split("_"))
    if service == "rds":
        pascal = pascal.replace("Db", "DB")
    prefix = IAM_PREFIXES.get(service, service)
    return f"{prefix}:{iam_template.IAM_ACTIONS.get((prefix, pascal), pascal)}"


@dataclass
class Row:
    function: str
    operation: str
    action: str
    via: str
    granted: bool


PORTED = {
    "StateStore": ("S3Objects", lambda called: {"get", "put"} | ({"delete"} & called) if called else set()),
    "Notifier": ("SnsTopic", lambda called: {"publish"} & called),
    # The notifier puts every notification it publishes on the event bus too (Toolkit::from_env
    # wires EventBridgeBus when BREAKWATER_EVENT_BUS is set, as the template sets it).
    "NotifierBus": ("EventBridgeBus", lambda called: {"put"} if "publish" in called else set()),
}


# Adapters that hold no SDK client but reach AWS through another adapter they hold: the
# methods of the other they call (`self.clients.client(` → `KubeClients::client`, which reads the
# cluster's endpoint with eks:DescribeCluster).
DELEGATES = {
    "KubeCapacity": ("KubeClients", {"client"}),
}


def function_calls(function: str) -> list[tuple[str, str, str]]:
    """(service, operation, via) of every SDK call `function` can make."""
    crate = f"functions/{function}/src"
    main = strip_comments(open(os.path.join(ROOT, crate, "main.rs"), encoding="utf-8").read())
    # Receivers of each wired adapter: the field main.rs wires it to (`nodes: EksNodeGroups::new(`),
    # the Toolkit's `store` and `notifier`, and local aliases (`let ports = &self.ports.secondary_db;`).
    receivers: dict[str, set[str]] = {
        "StateStore": {"store"},
        "Notifier": {"notifier"},
        "NotifierBus": {"notifier"},
    }
    for field_name, type_name in re.findall(r"\b(\w+)(?::|\s*=)\s*([A-Z]\w+)::new\(", main):
        receivers.setdefault(type_name, set()).add(field_name)
    own = sources([f"{crate}/**/*.rs"])
    shared = sources(["shared/src/*.rs"])
    for alias, target in re.findall(r"let (\w+) = &?(?:self\.)?(?:ports\.)?(\w+)\s*;", own):
        for names in receivers.values():
            if target in names:
                names.add(alias)
    calls = []
    for type_name in sorted(receivers):
        if type_name in DELEGATES:
            delegate_name, methods = DELEGATES[type_name]
            delegate = find_adapter(delegate_name, crate)
            names = "|".join(sorted(receivers[type_name]))
            if delegate is not None and re.search(r"\b(?:" + names + r")\b", own + main):
                for method in sorted(methods):
                    for service, op in sorted(delegate.reachable(method)):
                        calls.append((service, op, f"{type_name} → {delegate_name}::{method} ({delegate.file})"))
            continue
        adapter = find_adapter(PORTED.get(type_name, (type_name,))[0], crate)
        if adapter is None:
            continue
        # Generic code reaches an adapter through its port trait: `fn f<R: Replicas>(ports: &R)`.
        for trait in adapter.traits:
            for generic in re.findall(r"[<,]\s*(\w+)\s*:\s*[\w\s+]*\b" + trait + r"\b", own):
                receivers[type_name] |= set(re.findall(r"\b(\w+)\s*:\s*&" + generic + r"\b", own))
            receivers[type_name] |= set(re.findall(r"\b(\w+)\s*:\s*&impl\s+" + trait + r"\b", own))
        # The Toolkit's store and notifier are also used by the shared code every function runs.
        text = own + (shared if type_name in PORTED else "")
        names = "|".join(sorted(receivers[type_name]))
        called = set(re.findall(r"\b(?:" + names + r")\s*\.(\w+)\(", text))
        # The store and the notifier reach S3 and SNS through their ports (`ObjectStore`,
        # `Topic`): every store method reads and writes objects, only `delete` deletes them.
        if type_name in PORTED:
            called = PORTED[type_name][1](called)
        for method in sorted(adapter.methods):
            if method not in called:
                continue
            for service, op in sorted(adapter.reachable(method)):
                calls.append((service, op, f"{type_name}::{method} ({adapter.file})"))
    # SDK clients the function's own crate uses directly.
    for path in sorted(glob.glob(os.path.join(ROOT, crate, "**/*.rs"), recursive=True)):
        text = strip_comments(open(path, encoding="utf-8").read())
        for service in sorted(set(re.findall(r"aws_sdk_(\w+)::Client", text))):
            for op in sorted(set(re.findall(r"\.(\w+)\(\)", text)) & operations_of(service)):
                calls.append((service.replace("_", ""), op, os.path.relpath(path, ROOT)))
    return calls


def granted_actions(binary: str) -> dict[str, list[str]]:
    """Action → resources it is allowed on, from the role's Allow statements."""
    import json

    out: dict[str, list[str]] = {}
    # Every configuration at once: the RDS and the Aurora failover statements both.
    for document in iam_template.policies(binary, "us-east-1", {"FailoverGlobalClusterId": "*"}):
        for statement in json.loads(document)["Statement"]:
            if statement.get("Effect") != "Allow":
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement.get("Resource", "*")
            resources = resources if isinstance(resources, list) else [resources]
            for action in actions:
                out.setdefault(action, []).extend(resources)
    return out


def allows(granted: dict[str, list[str]], action: str) -> bool:
    for pattern in granted:
        if re.fullmatch(pattern.replace("*", ".*"), action):
            return True
    return False


def contract() -> tuple[list[Row], dict[str, list[str]]]:
    rows, excess = [], {}
    for function in FUNCTIONS:
        granted = granted_actions(function)
        needed: dict[str, str] = {}
        for service, op, via in function_calls(function):
            action = action_of(service, op)
            if action is None:
                continue
            needed.setdefault(action, f"{op} ← {via}")
            for implied in IMPLIED.get(action, []):
                needed.setdefault(implied, f"(implied) ← implied by {action}")
        for action, via in sorted(needed.items()):
            rows.append(Row(function, via.split(" ", 1)[0], action, via, allows(granted, action)))
        # The Lambda service's own grants (dead-letter queue, logs) are not the code's calls.
        service_side = {"sqs:SendMessage"}
        unused = [a for a in sorted(granted) if a not in needed and a not in service_side]
        if unused:
            excess[function] = unused
    return rows, excess


def main(argv: list[str]) -> int:
    rows, excess = contract()
    markdown = "--markdown" in argv
    if markdown:
        print("| function | operation | IAM action | granted | called from |")
        print("|---|---|---|---|---|")
    for row in rows:
        mark = "yes" if row.granted else "MISSING"
        if markdown:
            print(f"| {row.function} | `{row.operation}` | `{row.action}` | {mark} | {row.via.split(' ← ', 1)[-1]} |")
        else:
            print(f"{row.function:9} {row.operation:40} {row.action:40} {mark:8} {row.via.split(' ← ', 1)[-1]}")
    missing = [r for r in rows if not r.granted]
    print()
    for function, actions in excess.items():
        print(f"unused grant: {function}: {', '.join(actions)}")
    for row in missing:
        print(f"missing grant: {row.function}: {row.action} (for {row.via})")
    print(f"{len(rows)} operations, {len(missing)} missing grants, {sum(map(len, excess.values()))} unused grants")
    if "--check" in argv and (missing or excess):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
