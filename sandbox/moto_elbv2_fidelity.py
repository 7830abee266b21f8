"""ELBv2 target deregistration as ELB does it; moto 5.2 removes a deregistered target at once.

Application Load Balancers User Guide, "Deregistration delay": "Elastic Load Balancing stops
sending requests to targets that are deregistering. By default, Elastic Load Balancing waits 300
seconds before completing the deregistration process ... The initial state of a deregistering
target is draining. After the deregistration delay elapses, the deregistration process completes
and the state of the target is unused." moto 5.2 drops the target from DescribeTargetHealth the
moment DeregisterTargets returns, so a caller that never waits for `draining` to end passes in
the sandbox and cuts requests in flight on AWS. The patch keeps a deregistered target listed as
`draining` (reason `Target.DeregistrationInProgress`) until the group's
`deregistration_delay.timeout_seconds` has elapsed, on the wall clock; then it is no longer
listed, and asked for by id it is `unused` / `Target.NotRegistered` (moto's own answer). This is
the case of a target with connections still open: ELB completes at once for a target without any
("If a deregistering target has no in-flight requests and no active connections, Elastic Load
Balancing immediately completes the deregistration process"), which a caller that reads the state
back also handles.

DeregisterTargets, ELBv2 API Reference: "If the specified target does not exist, the action
returns successfully", and Targets: "If you specified a port override when you registered a
target, you must specify both the target ID and the port when you deregister it." moto 5.2 raises
`InvalidTarget` for a target it does not hold and ignores the port. The patch answers success for
an unknown target, and deregisters nothing when the port given (or the group's port, when none is
given) is not the one the target was registered with — so a caller that forgets the port leaves
the target registered, as on AWS.

Everything else (registration, health checks, listeners) is left to moto.
"""

import time

# target group ARN → target id → (registered target, when its deregistration completes)
_DRAINING: dict[str, dict[str, tuple[dict, float]]] = {}


def _delay_s(group) -> float:
    try:
        return float(group.attributes.get("deregistration_delay.timeout_seconds", 300))
    except (TypeError, ValueError):
        return 300.0


def _draining_of(group) -> dict[str, tuple[dict, float]]:
    draining = _DRAINING.setdefault(group.arn, {})
    now = time.time()
    for target_id, (_, until) in list(draining.items()):
        if until <= now:
            del draining[target_id]
    return draining


def _deregister(self, targets):
    draining = _draining_of(self)
    for target in targets:
        registered = self.targets.get(target["Id"])
        if registered is None:
            continue  # "If the specified target does not exist, the action returns successfully."
        port = target.get("Port", self.port)
        if str(port) != str(registered.get("Port", self.port)):
            continue  # not this registration: the port override must be given
        self.targets.pop(target["Id"])
        self.deregistered_targets[target["Id"]] = registered
        draining[target["Id"]] = (registered, time.time() + _delay_s(self))


def _register(original):
    def register(self, targets):
        original(self, targets)
        draining = _draining_of(self)
        for target in targets:
            draining.pop(target["Id"], None)

    return register


def _health_for(original):
    def health_for(self, target, ec2_backend):
        from moto.elbv2.models import FakeHealthStatus

        draining = _draining_of(self)
        if target["Id"] not in self.targets and target["Id"] in draining:
            registered, _ = draining[target["Id"]]
            return FakeHealthStatus(
                registered["Id"],
                registered.get("Port", self.port),
                self.health_check_port,
                "draining",
                "Target.DeregistrationInProgress",
                "Target deregistration is in progress",
            )
        return original(self, target, ec2_backend)

    return health_for


def _describe_target_health(original):
    def describe_target_health(self, target_group_arn, targets):
        group = self.target_groups.get(target_group_arn)
        if group is not None and not targets:
            # Unasked, ELB lists the registered targets and those still draining.
            listed = list(group.targets.values())
            listed += [t for t, _ in _draining_of(group).values() if t["Id"] not in group.targets]
            return [group.health_for(t, self.ec2_backend) for t in listed]
        return original(self, target_group_arn, targets)

    return describe_target_health


def apply():
    from moto.elbv2 import models

    models.FakeTargetGroup.deregister = _deregister
    models.FakeTargetGroup.register = _register(models.FakeTargetGroup.register)
    models.FakeTargetGroup.health_for = _health_for(models.FakeTargetGroup.health_for)
    models.ELBv2Backend.describe_target_health = _describe_target_health(
        models.ELBv2Backend.describe_target_health
    )
