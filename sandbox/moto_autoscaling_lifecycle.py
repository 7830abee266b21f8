"""Auto Scaling termination lifecycle hooks as Amazon EC2 Auto Scaling runs them; moto 5.2 stores
hooks but never waits on one, and has no CompleteLifecycleAction.

Amazon EC2 Auto Scaling User Guide, "Amazon EC2 Auto Scaling lifecycle hooks": an instance leaving
a group with an `autoscaling:EC2_INSTANCE_TERMINATING` hook "enters the Terminating:Wait state"
and stays there until the action is completed (or its heartbeat timeout passes); the
`EC2 Instance-terminate Lifecycle Action` event carries a `LifecycleActionToken`.
CompleteLifecycleAction (API Reference): the action is named by the group, the hook, and the
`LifecycleActionToken` or the `InstanceId`; `LifecycleActionResult` is `CONTINUE` or `ABANDON`
(for a terminating instance both let it terminate; ABANDON also ends its other hooks' actions);
an action that is not waiting is a
`ValidationError` ("No active Lifecycle Action found with instance ID i-…" / "… with token …").

The patch:
- TerminateInstanceInAutoScalingGroup on a group with a terminating hook leaves the instance in
  the group as `Terminating:Wait` (DescribeAutoScalingInstances shows it) and opens an action
  with a fresh token, instead of terminating it at once;
- CompleteLifecycleAction checks the hook and the action (token or instance, and that they agree),
  then detaches and terminates the instance as moto would have;
- `GET /_sandbox/autoscaling/lifecycle-actions` (not an AWS API: the sandbox's stand-in for the
  events that carry the tokens) lists the open actions for tests.

Heartbeats and the heartbeat timeout's default result are not modelled.
"""

import json
import uuid

from moto.autoscaling import models as as_models
from moto.autoscaling import responses as as_responses
from moto.autoscaling.exceptions import ValidationError

# (account, region) → (group, hook, instance) → token
_OPEN: dict[tuple[str, str], dict[tuple[str, str, str], str]] = {}

TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


def _open(backend):
    return _OPEN.setdefault((backend.account_id, backend.region_name), {})


def _terminating_hooks(backend, group):
    return [
        h
        for h in backend.lifecycle_hooks.values()
        if h.auto_scaling_group_name == group and h.lifecycle_transition == TERMINATING
    ]


def _terminate_instance(original):
    def terminate(self, instance_id, should_decrement):
        state = next(
            (
                s
                for group in self.autoscaling_groups.values()
                for s in group.instance_states
                if s.instance.id == instance_id
            ),
            None,
        )
        if state is None:
            return original(self, instance_id, should_decrement)
        group = state.instance.autoscaling_group
        hooks = _terminating_hooks(self, group.name)
        if not hooks:
            return original(self, instance_id, should_decrement)
        state.lifecycle_state = "Terminating:Wait"
        state.should_decrement = should_decrement
        for hook in hooks:
            _open(self)[(group.name, hook.name, instance_id)] = str(uuid.uuid4())
        return as_models.TerminateInstanceActivity(state.instance, group.desired_capacity)

    return terminate


def _complete_lifecycle_action(self):
    backend = self.autoscaling_backend
    group = self._get_param("AutoScalingGroupName")
    hook = self._get_param("LifecycleHookName")
    token = self._get_param("LifecycleActionToken")
    instance_id = self._get_param("InstanceId")
    result = self._get_param("LifecycleActionResult")
    if result not in ("CONTINUE", "ABANDON"):
        raise ValidationError("LifecycleActionResult must be CONTINUE or ABANDON")
    if f"{group}_{hook}" not in backend.lifecycle_hooks:
        raise ValidationError(f"No Lifecycle Hook found with name {hook} for group {group}")
    if not token and not instance_id:
        raise ValidationError("Either LifecycleActionToken or InstanceId must be specified")
    actions = _open(backend)
    # Actions of instances no longer in a group (a reset of the server) are not waiting.
    waiting = {
        s.instance.id
        for g in backend.autoscaling_groups.values()
        for s in g.instance_states
        if s.lifecycle_state == "Terminating:Wait"
    }
    for key in [k for k in actions if k[2] not in waiting]:
        del actions[key]
    found = [
        (key, t)
        for key, t in actions.items()
        if key[0] == group
        and key[1] == hook
        and (not instance_id or key[2] == instance_id)
        and (not token or t == token)
    ]
    if not found:
        what = f"token {token}" if token else f"instance ID {instance_id}"
        raise ValidationError(f"No active Lifecycle Action found with {what}")
    (key, _), = found
    del actions[key]
    if result == "ABANDON":
        # ABANDON ends the instance's other actions too: it terminates at once.
        for other in [k for k in actions if k[0] == group and k[2] == key[2]]:
            del actions[other]
    # The instance goes once no other hook of its group waits on it.
    if not any(k[0] == group and k[2] == key[2] for k in actions):
        state = next(
            s
            for g in backend.autoscaling_groups.values()
            for s in g.instance_states
            if s.instance.id == key[2]
        )
        decrement = getattr(state, "should_decrement", False)
        backend.detach_instances(group, [key[2]], decrement)
        backend.ec2_backend.terminate_instances([key[2]])
    return as_responses.EmptyResult()


SANDBOX_PATH = "/_sandbox/autoscaling/lifecycle-actions"


def _with_sandbox_listing(original):
    """`GET /_sandbox/autoscaling/lifecycle-actions`: the open actions as JSON (the sandbox's
    stand-in for the events that carry their tokens; not an AWS API)."""

    def call(self, environ, start_response):
        if environ.get("PATH_INFO") != SANDBOX_PATH:
            return original(self, environ, start_response)
        rows = [
            {"account": account, "region": region, "group": g, "hook": h, "instance": i,
             "token": t}
            for (account, region), actions in sorted(_OPEN.items())
            for (g, h, i), t in sorted(actions.items())
        ]
        body = json.dumps(rows).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return call


def apply():
    as_models.AutoScalingBackend.terminate_instance = _terminate_instance(
        as_models.AutoScalingBackend.terminate_instance
    )
    as_responses.AutoScalingResponse.complete_lifecycle_action = _complete_lifecycle_action
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    DomainDispatcherApplication.__call__ = _with_sandbox_listing(
        DomainDispatcherApplication.__call__
    )
