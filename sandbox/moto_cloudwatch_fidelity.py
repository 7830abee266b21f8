"""CloudWatch behaviours moto 5.2 gets wrong, made as strict as CloudWatch.

DescribeAlarms and `AlarmTypes`. CloudWatch API reference, DescribeAlarms, `AlarmTypes`: "Use this
parameter to specify whether you want the operation to return metric alarms or composite alarms.
If you omit this parameter, only metric alarms are returned, even if composite alarms exist in the
account." moto 5.2 returns both kinds whatever the request says, so a caller that forgets the
parameter never sees the composite alarm go missing in the sandbox, while on AWS it does. The
patch keeps moto's own selection (names, prefix, state, action prefix) and then drops the kind
the request did not ask for.

PutCompositeAlarm, which moto 5.2 does not route, is added so that the sandbox can hold composite
alarms at all.
"""

_KINDS = {"MetricAlarm": "MetricAlarms", "CompositeAlarm": "CompositeAlarms"}


def _describe_alarms(original):
    def describe(self):
        answer = original(self)
        asked = self._get_param("AlarmTypes") or ["MetricAlarm"]
        if isinstance(asked, str):
            asked = [asked]
        unknown = [kind for kind in asked if kind not in _KINDS]
        if unknown:
            from moto.cloudwatch.exceptions import ValidationError

            raise ValidationError(
                f"1 validation error detected: Value '{unknown}' at 'alarmTypes' failed to satisfy "
                "constraint: Member must satisfy enum value set: [CompositeAlarm, MetricAlarm]",
            )
        result = answer.result
        for kind, member in _KINDS.items():
            if kind not in asked:
                result[member] = []
        return answer

    return describe


def _put_composite_alarm(put_metric_alarm):
    """PutCompositeAlarm: moto 5.2 stores composite alarms (an alarm with a rule) but routes no
    PutCompositeAlarm action to them. `AlarmRule` is required (API reference, PutCompositeAlarm)."""

    def put(self):
        if not self._get_param("AlarmRule"):
            from moto.cloudwatch.exceptions import ValidationError

            raise ValidationError(
                "1 validation error detected: Value null at 'alarmRule' failed to satisfy "
                "constraint: Member must not be null"
            )
        return put_metric_alarm(self)

    return put


def apply():
    from moto.cloudwatch import responses

    if not hasattr(responses.CloudWatchResponse, "put_composite_alarm"):
        responses.CloudWatchResponse.put_composite_alarm = _put_composite_alarm(
            responses.CloudWatchResponse.put_metric_alarm
        )

    responses.CloudWatchResponse.describe_alarms = _describe_alarms(
        responses.CloudWatchResponse.describe_alarms
    )
