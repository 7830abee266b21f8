"""CloudWatch metric-alarm evaluation, which moto 5.2 does not do: there, `PutMetricData` stores
the datum and no alarm ever changes state by itself (only `SetAlarmState` moves one), and a new
alarm starts `OK`. Breakwater's second-choice traffic switch (CloudWatch-metric health checks)
is an alarm moved by `PutMetricData`, so the sandbox evaluates alarms as CloudWatch does.

What is implemented, per the Amazon CloudWatch User Guide ("Using Amazon CloudWatch alarms":
"Evaluating an alarm", "Configuring how CloudWatch alarms treat missing data",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html) and the
API reference (PutMetricAlarm, PutMetricData, MetricDatum):

- A new alarm starts in `INSUFFICIENT_DATA` ("When this operation creates an alarm, the alarm
  state is immediately set to INSUFFICIENT_DATA. The alarm is then evaluated"); an updated alarm
  keeps its state ("When you update an existing alarm, its state is left unchanged").
- On `PutMetricData`, every metric alarm on a metric the request wrote (namespace, name and the
  exact set of dimensions; `Unit`, when the alarm names one, must match the datum's) is evaluated
  over its `EvaluationPeriods` periods of `Period` seconds, aligned to the period, ending with the
  period that holds the newest datum written for it. Each period's datapoint is the alarm's
  `Statistic` (SampleCount, Average, Sum, Minimum, Maximum) over the data in it; a period without
  data is missing and treated per `TreatMissingData`: `breaching`, `notBreaching`, `ignore` (all
  missing: "The current alarm state is maintained"), `missing` (default; all missing:
  INSUFFICIENT_DATA). `DatapointsToAlarm` (default `EvaluationPeriods`) breaching datapoints of
  those present make ALARM, otherwise OK. A datapoint breaches per `ComparisonOperator` against
  `Threshold`.
- A state change sets `StateValue`, `StateReason` (CloudWatch's wording: "Threshold Crossed: 1
  out of the last 1 datapoints [0.0 (01/12/26 10:25:00)] was less than the threshold (1.0)
  (minimum 1 datapoint for OK -> ALARM transition).") with `StateReasonData`, and
  `StateUpdatedTimestamp`; an evaluation that keeps the state changes none of them.

Where the sandbox differs, on purpose: CloudWatch evaluates an alarm on its own schedule, after
a period has passed (on AWS the switch costs about one to two minutes: the rest of the minute,
then the evaluation); the sandbox evaluates at once, on the write, over the period the datum
falls in. Alarms on metric math, anomaly detection, Metrics Insights or an `ExtendedStatistic`
are not evaluated (their state moves only by `SetAlarmState`, as in moto). Alarm actions are not
run on a change.

Refused as CloudWatch refuses them (API reference enums and ranges): a `Statistic`,
`ComparisonOperator` or `TreatMissingData` outside its valid values, a `Period` that is not 10,
20, 30 or a multiple of 60, `EvaluationPeriods` or `DatapointsToAlarm` below 1, and a datum's
`StorageResolution` other than 1 or 60.
"""
from __future__ import annotations

import datetime as _dt
import json

STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
OPERATORS = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
# Valid, but evaluated against an anomaly-detection band: not evaluated here.
BAND_OPERATORS = (
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
)
MISSING = ("breaching", "notBreaching", "ignore", "missing")


def _validation(message: str):
    from moto.cloudwatch.exceptions import ValidationError

    return ValidationError(message)


def _epoch(ts) -> float:
    if isinstance(ts, (int, float)):
        return float(ts)
    if isinstance(ts, str):
        ts = _dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=_dt.timezone.utc)
    return ts.timestamp()


def _dims(items) -> frozenset:
    out = set()
    for d in items or []:
        if isinstance(d, dict):
            out.add((d.get("Name"), d.get("Value")))
        else:
            out.add((d.name, d.value))
    return frozenset(out)


def _stats(datum) -> tuple[float, float, float, float]:
    """(sample count, sum, minimum, maximum) of one stored datum."""
    if hasattr(datum, "value"):
        v = float(datum.value)
        return 1.0, v, v, v
    return float(datum.sample_count), float(datum.sum), float(datum.min), float(datum.max)


def _statistic(name: str, data: list) -> float:
    count = sum(_stats(d)[0] for d in data)
    total = sum(_stats(d)[1] for d in data)
    if name == "SampleCount":
        return count
    if name == "Sum":
        return total
    if name == "Average":
        return total / count if count else 0.0
    if name == "Minimum":
        return min(_stats(d)[2] for d in data)
    return max(_stats(d)[3] for d in data)


def _evaluable(alarm) -> bool:
    return bool(
        alarm.metric_name
        and not alarm.metric_data_queries
        and not alarm.extended_statistic
        and alarm.statistic in STATISTICS
        and alarm.comparison_operator in OPERATORS
        and getattr(alarm, "rule", None) is None
    )


def _stamp(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%d/%m/%y %H:%M:%S")


def evaluate(backend, alarm, at: float) -> None:
    """Evaluates `alarm` over its periods ending with the one holding `at` (epoch seconds)."""
    period = int(alarm.period)
    n = int(alarm.evaluation_periods)
    m = int(alarm.datapoints_to_alarm or n)
    threshold = float(alarm.threshold)
    breaches_fn, words = OPERATORS[alarm.comparison_operator]
    last_start = at - (at % period)
    first_start = last_start - (n - 1) * period
    dims = _dims(alarm.dimensions)
    data = [
        d
        for d in backend.metric_data
        if d.namespace == alarm.namespace
        and d.name == alarm.metric_name
        and _dims(d.dimensions) == dims
        and (not alarm.unit or d.unit == alarm.unit)
        and first_start <= _epoch(d.timestamp) < last_start + period
    ]
    points = []  # (period start, value or None)
    for i in range(n):
        start = first_start + i * period
        inside = [d for d in data if start <= _epoch(d.timestamp) < start + period]
        points.append((start, _statistic(alarm.statistic, inside) if inside else None))
    treat = alarm.treat_missing_data or "missing"
    judged = []  # (start, value, breaching)
    for start, value in points:
        if value is None:
            if treat == "breaching":
                judged.append((start, None, True))
            elif treat == "notBreaching":
                judged.append((start, None, False))
            continue
        judged.append((start, value, breaches_fn(value, threshold)))
    if not judged:
        if treat == "ignore":
            return
        new_state = "INSUFFICIENT_DATA"
    else:
        breaching = sum(1 for _, _, b in judged if b)
        new_state = "ALARM" if breaching >= m else "OK"
    if new_state == alarm.state_value:
        return
    recent = [(s, v) for s, v, _ in sorted(judged, reverse=True) if v is not None]
    shown = ", ".join(f"{v!r} ({_stamp(s)})" for s, v in recent)
    count = len(judged)
    breaching = sum(1 for _, _, b in judged if b)
    if new_state == "ALARM":
        reason = (
            f"Threshold Crossed: {breaching} out of the last {count} datapoints [{shown}] "
            f"{'was' if breaching == 1 else 'were'} {words} the threshold ({threshold!r}) "
            f"(minimum {m} datapoint{'s' if m != 1 else ''} for {alarm.state_value} -> ALARM transition)."
        )
    elif new_state == "OK":
        ok = count - breaching
        reason = (
            f"Threshold Crossed: {ok} out of the last {count} datapoints [{shown}] "
            f"{'was' if ok == 1 else 'were'} not {words} the threshold ({threshold!r}) "
            f"(minimum 1 datapoint for {alarm.state_value} -> OK transition)."
        )
    else:
        reason = f"Insufficient Data: {n} datapoint{'s were' if n != 1 else ' was'} unknown."
    reason_data = json.dumps(
        {
            "version": "1.0",
            "queryDate": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "startDate": _dt.datetime.fromtimestamp(first_start, _dt.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S.000+0000"
            ),
            "statistic": alarm.statistic,
            "period": period,
            "recentDatapoints": [v for _, v in reversed(recent)],
            "threshold": threshold,
            "evaluatedDatapoints": [
                {
                    "timestamp": _dt.datetime.fromtimestamp(s, _dt.timezone.utc).strftime(
                        "%Y-%m-%dT%H:%M:%S.000+0000"
                    ),
                    "value": v,
                }
                for s, v in recent
            ],
        }
    )
    alarm.update_state(reason, reason_data, new_state)


def _put_metric_data(original):
    def put(self, namespace, metric_data):
        for i, datum in enumerate(metric_data or [], start=1):
            resolution = datum.get("StorageResolution")
            if resolution is not None and int(resolution) not in (1, 60):
                raise _validation(
                    f"The value {resolution} for parameter MetricData.member.{i}.StorageResolution "
                    "is invalid. Valid values are 1 and 60."
                )
        before = len(self.metric_data)
        original(self, namespace, metric_data)
        written = self.metric_data[before:]
        newest: dict = {}
        for d in written:
            key = (d.namespace, d.name, _dims(d.dimensions))
            newest[key] = max(newest.get(key, float("-inf")), _epoch(d.timestamp))
        for alarm in list(self.alarms.values()):
            if not _evaluable(alarm):
                continue
            key = (alarm.namespace, alarm.metric_name, _dims(alarm.dimensions))
            if key in newest:
                evaluate(self, alarm, newest[key])

    return put


def _put_metric_alarm(original):
    def put(self, name, namespace, metric_name, comparison_operator, evaluation_periods, period,
            threshold, statistic, *args, **kwargs):
        metric_queries = kwargs.get("metric_data_queries")
        if kwargs.get("rule") is None and not metric_queries:
            if statistic is not None and statistic not in STATISTICS:
                raise _validation(
                    f"1 validation error detected: Value '{statistic}' at 'statistic' failed to "
                    "satisfy constraint: Member must satisfy enum value set: "
                    f"[{', '.join(STATISTICS)}]"
                )
            if period is not None and (
                int(period) < 1 or (int(period) not in (10, 20, 30) and int(period) % 60)
            ):
                raise _validation(
                    "Period must be 10, 20, 30 or a multiple of 60 (PutMetricAlarm, Period)."
                )
        if comparison_operator is not None and comparison_operator not in (
            *OPERATORS,
            *BAND_OPERATORS,
        ):
            raise _validation(
                f"1 validation error detected: Value '{comparison_operator}' at "
                "'comparisonOperator' failed to satisfy constraint: Member must satisfy enum "
                f"value set: [{', '.join([*OPERATORS, *BAND_OPERATORS])}]"
            )
        if evaluation_periods is not None and int(evaluation_periods) < 1:
            raise _validation(
                "1 validation error detected: Value at 'evaluationPeriods' failed to satisfy "
                "constraint: Member must have value greater than or equal to 1"
            )
        points = kwargs.get("datapoints_to_alarm")
        if points is not None and int(points) < 1:
            raise _validation(
                "1 validation error detected: Value at 'datapointsToAlarm' failed to satisfy "
                "constraint: Member must have value greater than or equal to 1"
            )
        treat = kwargs.get("treat_missing_data")
        if treat is not None and treat not in MISSING:
            raise _validation(
                f"Option {treat} is not supported. Supported options for parameter "
                f"TreatMissingData are {', '.join(MISSING)}."
            )
        existing = self.alarms.get(name)
        kept = (
            (existing.state_value, existing.state_reason, existing.state_reason_data,
             existing.state_updated_timestamp)
            if existing is not None
            else None
        )
        alarm = original(self, name, namespace, metric_name, comparison_operator,
                         evaluation_periods, period, threshold, statistic, *args, **kwargs)
        if kept is not None:
            (alarm.state_value, alarm.state_reason, alarm.state_reason_data,
             alarm.state_updated_timestamp) = kept
        elif kwargs.get("rule") is None:
            alarm.state_value = "INSUFFICIENT_DATA"
        return alarm

    return put


def apply():
    from moto.cloudwatch.models import CloudWatchBackend

    CloudWatchBackend.put_metric_data = _put_metric_data(CloudWatchBackend.put_metric_data)
    CloudWatchBackend.put_metric_alarm = _put_metric_alarm(CloudWatchBackend.put_metric_alarm)
