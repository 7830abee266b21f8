"""The IAM policies of each Breakwater function, taken from template.yaml itself.

The template is expanded with the SAM translator (as `sam deploy` does: each
`AWS::Serverless::Function` becomes an `AWS::Lambda::Function` plus an `AWS::IAM::Role` holding its
`Policies`), then the intrinsic functions of the roles are resolved with the sandbox's values:
the function's home region, the sandbox account, and the names the sandbox gives its resources
(the state bucket `breakwater-state-<account>-<region>…`, the topic `breakwater-notifications…`).
Names that tests choose per test (clusters, databases, zones) resolve to `*`: the statement keeps
its service, region, account and resource type; the name itself is not checked here.

Used in three places:
- the moto server (`moto_iam.py`) evaluates every call of a function binary against these
  policies, so a call the template does not grant is `AccessDenied`, as on AWS;
- `python3 sandbox/iam_template.py --expanded` prints the SAM-expanded template as JSON, for
  checkov and the contract test;
- `--resolved REGION Param=Value…` prints what one region's stack creates, for the template's
  tests (`tests/tests/iam_enforcement.rs`).
"""
from __future__ import annotations

import copy
import functools
import json
import os
import sys
from typing import Any

ACCOUNT = "123456789012"
PARTITION = "aws"

_HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(os.path.dirname(_HERE), "template.yaml")

# Parameter values of the sandbox's deployment: every optional feature on, so that every
# function's role exists; per-test names are wildcards.
SANDBOX_PARAMETERS = {
    "SpotClusterName": "*",
    "SpotOnDemandGroups": "*",
    "RollbackClusterName": "*",
    "RollbackWorkloadName": "*",
    "RollbackLoadBalancer": "*",
    "RollbackHealthCheckId": "*",
    "RollbackSlackSecretId": "secretsmanager:breakwater/slack",
    "RollbackPagerDutySecretId": "ssm:/breakwater/pagerduty",
    "BudgetGuardrailRoles": "*",
    "BudgetClusters": "*",
    "FailoverPlanName": "sandbox",
    "FailoverReplicaId": "*",
    "FailoverPrimaryDbId": "*",
    "FailoverPrimaryKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/*",
    "FailoverGlobalClusterId": "",
    "FailoverClusterName": "*",
    "FailoverHostedZoneId": "*",
    "FailoverPrimaryFqdn": "*",
    "FailoverSecondaryFqdn": "*",
    "FailoverRoutingControls": "none",
    "FailoverMetricSwitches": "create",
    "FailoverControlPanelArn": "arn:aws:route53-recovery-control::123456789012:controlpanel/*",
    "FailoverRecordName": "*",
    "FailoverPrimaryLoadBalancer": "*",
}

_NO_VALUE = object()

# API operations whose IAM action has another name (Service Authorization Reference, each
# service's "Actions defined by …" table). S3's are moto's own ACTION_MAP for the sandbox, and
# `iam_contract.py` lists them for the contract.
IAM_ACTIONS = {
    ("budgets", "DescribeBudget"): "ViewBudget",
    ("budgets", "DescribeBudgets"): "ViewBudget",
    ("lambda", "Invoke"): "InvokeFunction",
}


@functools.lru_cache(maxsize=1)
def expanded(template: str = TEMPLATE) -> dict[str, Any]:
    """The SAM-transformed template (CloudFormation, intrinsics still unresolved)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.yaml_helper import yaml_parse

    with open(template, encoding="utf-8") as f:
        sam = yaml_parse(f.read())
    # What `sam package` does before the transform: local code becomes an S3 artifact.
    for logical_id, resource in sam["Resources"].items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://breakwater-artifacts/{logical_id}.zip"
    parameters = {"AWS::Region": "us-east-1", "AWS::AccountId": ACCOUNT, "AWS::Partition": PARTITION}
    # The translator wants a session region for the ARNs it writes itself (partition only).
    session = boto3.session.Session(region_name="us-east-1")
    translator = Translator(None, Parser(), boto_session=session)
    return translator.translate(sam, parameter_values=parameters, get_managed_policy_map=dict)


class _Context:
    def __init__(self, template: dict[str, Any], region: str, parameters: dict[str, str]):
        self.template = template
        self.region = region
        self.values: dict[str, str] = {}
        for name, spec in template.get("Parameters", {}).items():
            if "Default" in spec:
                self.values[name] = str(spec["Default"])
        self.values.update(SANDBOX_PARAMETERS)
        self.values.update(parameters)
        self.values.setdefault("PrimaryRegion", region)
        self.values.setdefault("SecondaryRegion", region)
        self.values.update(
            {
                "AWS::Region": region,
                "AWS::AccountId": ACCOUNT,
                "AWS::Partition": PARTITION,
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": "breakwater",
            }
        )
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.values:
            return self.values[name]
        return self.attribute(name, "Ref")

    def attribute(self, logical_id: str, attribute: str) -> str:
        """What a resource's Ref or GetAtt resolves to, in the sandbox's naming."""
        resource = self.template["Resources"].get(logical_id)
        if resource is None:
            raise KeyError(f"unknown resource {logical_id}")
        kind = resource["Type"]
        region = self.region
        if kind == "AWS::S3::Bucket":
            # seed.rs: breakwater-state-<account>-<region><suffix>. No `*` for the suffix: IAM's
            # `*` matches `/` too, so `…-us-east-1*/spot/*` would grant `control/spot/…` and any
            # key with `/spot/` in it. moto_iam.py takes the test's suffix off the bucket of the
            # request instead (`canonical`), and the grant's prefix is matched exactly.
            name = f"breakwater-state-{ACCOUNT}-{region}"
            return f"arn:{PARTITION}:s3:::{name}" if attribute == "Arn" else name
        if kind == "AWS::SNS::Topic":
            name = "breakwater-notifications*" if logical_id == "NotificationTopic" else "*"
            return f"arn:{PARTITION}:sns:{region}:{ACCOUNT}:{name}"
        if kind == "AWS::SQS::Queue":
            if attribute == "Arn":
                return f"arn:{PARTITION}:sqs:{region}:{ACCOUNT}:*"
            return f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/*"
        if kind == "AWS::KMS::Key":
            return f"arn:{PARTITION}:kms:{region}:{ACCOUNT}:key/*"
        if kind == "AWS::Lambda::Function":
            return f"arn:{PARTITION}:lambda:{region}:{ACCOUNT}:function:*"
        if kind == "AWS::IAM::Role":
            return f"arn:{PARTITION}:iam::{ACCOUNT}:role/*"
        if kind == "AWS::Route53::HealthCheck":
            return "*"
        return "*"

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            out = [self.resolve(item) for item in node]
            return [item for item in out if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attribute(logical_id, attribute)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::If":
                name, then, otherwise = arg
                return self.resolve(then if self.condition(name) else otherwise)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(i) for i in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
        out = {}
        for key, value in node.items():
            resolved = self.resolve(value)
            if resolved is not _NO_VALUE:
                out[key] = resolved
        return out

    def sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        variables = {k: self.resolve(v) for k, v in variables.items()}
        out, i = [], 0
        while i < len(text):
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                break
            out.append(text[i:start])
            end = text.index("}", start)
            name = text[start + 2 : end]
            if name.startswith("!"):
                out.append("${" + name[1:] + "}")
            elif name in variables:
                out.append(str(variables[name]))
            elif "." in name and name.split(".", 1)[0] in self.template["Resources"]:
                logical_id, attribute = name.split(".", 1)
                out.append(self.attribute(logical_id, attribute))
            else:
                out.append(str(self.ref(name)))
            i = end + 1
        return "".join(out)


def function_roles(template: dict[str, Any]) -> dict[str, list[str]]:
    """Binary name (BuildProperties.Binary) → the logical ids of the roles of the functions that
    run it (rollback runs as the alarm function and as the webhook function)."""
    roles: dict[str, list[str]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        role = resource["Properties"].get("Role", {})
        if binary and isinstance(role, dict) and "Fn::GetAtt" in role:
            roles.setdefault(binary, []).append(role["Fn::GetAtt"][0])
    return roles


@functools.lru_cache(maxsize=256)
def _policies(binary: str, region: str, parameters: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    template = expanded()
    role_ids = function_roles(template).get(binary)
    if not role_ids:
        raise KeyError(f"template.yaml has no function with Binary: {binary}")
    context = _Context(template, region, dict(parameters))
    documents = []
    # A binary deployed as several functions runs in the sandbox with the union of their roles;
    # the IAM contract reads each function's code paths against that union too.
    for role_id in role_ids:
        role = template["Resources"][role_id]
        condition = role.get("Condition")
        if condition and not context.condition(condition):
            continue
        for policy in context.resolve(copy.deepcopy(role["Properties"].get("Policies", []))):
            documents.append(json.dumps(policy["PolicyDocument"]))
    if not documents:
        raise KeyError(f"no role of {binary} is created in the sandbox's deployment")
    return tuple(documents)


def policies(binary: str, region: str, parameters: dict[str, str] | None = None) -> list[str]:
    """The inline policy documents (JSON) of `binary`'s role, deployed in `region`."""
    return list(_policies(binary, region, tuple(sorted((parameters or {}).items()))))


def for_scanning() -> dict[str, Any]:
    """The expanded template with each function's checkov skips (and their explanations) also on
    the resources SAM generates from that function (its role, its Function URL), so that a scan of
    what CloudFormation receives reads the same reasons as a scan of template.yaml."""
    template = copy.deepcopy(expanded())
    resources = template["Resources"]
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    for name, function in functions.items():
        skips = function.get("Metadata", {}).get("checkov")
        if not skips:
            continue
        for logical_id, resource in resources.items():
            if logical_id != name and logical_id.startswith(name):
                resource.setdefault("Metadata", {}).setdefault("checkov", copy.deepcopy(skips))
    return template


def resolved(region: str, parameters: dict[str, str]) -> dict[str, Any]:
    """The resources the stack deployed in `region` creates, intrinsics resolved (conditions
    evaluated, `AWS::NoValue` dropped), with the sandbox's parameters overridden by `parameters`."""
    template = expanded()
    context = _Context(template, region, parameters)
    out = {}
    for logical_id, resource in template["Resources"].items():
        condition = resource.get("Condition")
        if condition and not context.condition(condition):
            continue
        out[logical_id] = context.resolve(copy.deepcopy(resource))
    return out


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[1] == "--resolved":
        parameters = dict(arg.split("=", 1) for arg in argv[3:])
        json.dump(resolved(argv[2], parameters), sys.stdout, indent=1, default=str)
        return 0
    if argv[1:] == ["--expanded"]:
        json.dump(for_scanning(), sys.stdout, indent=1, default=str)
        return 0
    if len(argv) >= 3 and argv[1] == "--policies":
        region = argv[3] if len(argv) > 3 else "us-east-1"
        for document in policies(argv[2], region):
            print(json.dumps(json.loads(document), indent=1))
        return 0
    print(
        "usage: iam_template.py --expanded | --policies BINARY [REGION] | --resolved REGION [Param=Value …]",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
