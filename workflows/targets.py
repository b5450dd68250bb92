"""Metric targets of a workflow: the stored format, its validation, the admin editor and the
comparison with the workflow's real figures.

``Workflow.metric_targets`` contains a list of targets, each a percentage range for one metric::

    {"metric": "open_rate", "step": "welcome", "min": 50, "max": None}

``step`` is a step key, or empty for the whole workflow. ``min`` and ``max`` are percentages from
0 to 100. Either one may be None for an open range, but not both. The figures come from
``workflows.performance``: the goal rate from the enrollments, the other rates from the summed
``StepMetric`` counters of the step. A whole-workflow rate sums the steps the metric applies to,
so the open rate of a workflow with emails and SMS counts only the emails' sends.
"""

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput
from django.utils import formats
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_jsonform.forms.fields import JSONFormField
from django_jsonform.utils import join_coords

from contacts.catalogue import EVENT_TYPES
from mktauto.json_editor import RenderTimeSchemaWidget
from workflows import performance
from workflows.models import Step, Workflow

logger = logging.getLogger(__name__)

KEYS = ("metric", "step", "min", "max")
SEND_KINDS = (Step.Kind.SEND_EMAIL, Step.Kind.SEND_SMS, Step.Kind.SEND_WHATSAPP)

BELOW = "below"
WITHIN = "within"
ABOVE = "above"


@dataclass(frozen=True)
class Metric:
    """A rate that a target can name: ``part`` per ``whole``, as a percentage."""

    key: str
    title: Promise
    explanation: Promise
    part: str
    whole: str
    # Step kinds a target of this metric may name. None allows every kind.
    step_kinds: tuple[str, ...] | None = None
    per_step: bool = True
    whole_workflow: bool = True
    higher_is_better: bool = True


METRICS: dict[str, Metric] = {
    metric.key: metric
    for metric in (
        Metric(
            "goal_rate",
            gettext_lazy("Goal rate"),
            gettext_lazy("enrollments that reached the goal, per enrollment"),
            part="converted",
            whole="enrolled",
            per_step=False,
        ),
        Metric(
            "open_rate",
            gettext_lazy("Open rate"),
            gettext_lazy("opened emails per sent email"),
            part="opened",
            whole="sent",
            # Opens are tracked for emails only.
            step_kinds=(Step.Kind.SEND_EMAIL,),
        ),
        Metric(
            "click_rate",
            gettext_lazy("Click rate"),
            gettext_lazy("clicked messages per sent message"),
            part="clicked",
            whole="sent",
            step_kinds=SEND_KINDS,
        ),
        Metric(
            "unsubscribe_rate",
            gettext_lazy("Unsubscribe rate"),
            gettext_lazy("unsubscribes per sent message"),
            part="unsubscribed",
            whole="sent",
            step_kinds=SEND_KINDS,
            higher_is_better=False,
        ),
        Metric(
            "bounce_rate",
            gettext_lazy("Bounce rate"),
            gettext_lazy("bounced messages per sent message"),
            part="bounced",
            whole="sent",
            step_kinds=SEND_KINDS,
            higher_is_better=False,
        ),
        Metric(
            "conversion_rate",
            gettext_lazy("Conversion rate"),
            gettext_lazy("conversions credited to the step, per contact who entered it"),
            part="converted",
            whole="entered",
            whole_workflow=False,
        ),
    )
}


def target(metric: str, step: str = "", *, min: float | None = None, max: float | None = None) -> dict[str, Any]:
    """Return a target in the stored format, for code that writes targets such as the template library."""
    return {"metric": metric, "step": step, "min": min, "max": max}


# Stored format and validation.


@dataclass(frozen=True)
class TargetProblem:
    """One reason a list of targets is invalid."""

    # Position of the target in the list, from 0, or None when the list itself is invalid.
    index: int | None
    # The target's key the problem is about, or "" for the target as a whole.
    key: str
    message: str


class TargetError(ValueError):
    """Invalid metric targets. ``problems`` lists every reason, each naming the bad value and the fix."""

    def __init__(self, problems: list[TargetProblem]) -> None:
        super().__init__(" ".join(problem.message for problem in problems))
        self.problems = problems


def normalize(targets: Any) -> Any:
    """Return ``targets`` with every key of each target present: the editor leaves out empty ones.

    Anything that is not a list of objects comes back unchanged, for ``validate`` to report.
    """
    if not isinstance(targets, list):
        return targets
    normalized = []
    for item in targets:
        if not isinstance(item, dict):
            normalized.append(item)
            continue
        item = {**target(""), **item}
        if isinstance(item["step"], str):
            item["step"] = item["step"].strip()
        elif item["step"] is None:
            item["step"] = ""
        for bound in ("min", "max"):
            if item[bound] == "":
                item[bound] = None
        normalized.append(item)
    return normalized


def validate(targets: Any, steps: Iterable[Step]) -> None:
    """Raise TargetError when ``targets`` is not a valid list of targets for a workflow with ``steps``."""
    problems = find_problems(targets, steps)
    if problems:
        raise TargetError(problems)


def find_problems(targets: Any, steps: Iterable[Step]) -> list[TargetProblem]:
    """Return every problem of ``targets`` for a workflow with ``steps``. An empty list means valid."""
    if not isinstance(targets, list):
        return [
            TargetProblem(
                None,
                "",
                _("Metric targets must be a list of targets, not %(value)s. Start from an empty list: [].")
                % {"value": describe(targets)},
            )
        ]

    steps_by_key = {step.key: step for step in steps}
    problems: list[TargetProblem] = []
    first_seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(targets):
        found = target_problems(index, item, steps_by_key)
        problems += found
        if found:
            continue

        # Two targets for the same metric and step would show two verdicts for one figure.
        identity = (item["metric"], item.get("step") or "")
        if identity in first_seen:
            problems.append(
                TargetProblem(
                    index,
                    "",
                    _("Target %(number)s repeats target %(first)s: both are for the %(subject)s. Remove one of them.")
                    % {"number": index + 1, "first": first_seen[identity] + 1, "subject": subject(item)},
                )
            )
        else:
            first_seen[identity] = index
    return problems


def target_problems(index: int, item: Any, steps_by_key: dict[str, Step]) -> list[TargetProblem]:
    """Return the problems of one target, without comparing it with the other targets."""
    number = index + 1
    if not isinstance(item, dict):
        message = _("Target %(number)s is %(value)s, not an object. Give it a metric, a step, a min and a max.")
        return [TargetProblem(index, "", message % {"number": number, "value": describe(item)})]

    unknown = sorted(set(item) - set(KEYS))
    if unknown:
        message = _("Target %(number)s has unknown keys: %(keys)s. Use only metric, step, min and max.")
        return [TargetProblem(index, "", message % {"number": number, "keys": ", ".join(unknown)})]

    metric = METRICS.get(item.get("metric")) if isinstance(item.get("metric"), str) else None
    if metric is None:
        message = _("Target %(number)s: %(value)s is not a metric. Use one of: %(metrics)s.")
        values = {"number": number, "value": describe(item.get("metric")), "metrics": ", ".join(METRICS)}
        return [TargetProblem(index, "metric", message % values)]

    problems = step_problems(index, item.get("step"), metric, steps_by_key)
    problems += bound_problems(index, item, metric)
    return problems


def step_problems(index: int, step_key: Any, metric: Metric, steps_by_key: dict[str, Step]) -> list[TargetProblem]:
    number = index + 1
    if step_key in ("", None):
        if metric.whole_workflow:
            return []
        message = _(
            "Target %(number)s: the %(metric)s counts per step. Choose a step, or use the goal rate for the whole workflow."
        )
        return [TargetProblem(index, "step", message % {"number": number, "metric": lower_title(metric)})]

    if not metric.per_step:
        message = _(
            "Target %(number)s: the %(metric)s counts for the whole workflow, so it cannot name step %(step)s. "
            "Leave the step empty."
        )
        values = {"number": number, "metric": lower_title(metric), "step": describe(step_key)}
        return [TargetProblem(index, "step", message % values)]

    step = steps_by_key.get(step_key) if isinstance(step_key, str) else None
    if step is None:
        message = _(
            "Target %(number)s: this workflow has no step %(step)s. Use one of: %(keys)s, or leave the step empty for "
            "the whole workflow."
        )
        values = {"number": number, "step": describe(step_key), "keys": ", ".join(steps_by_key) or "-"}
        return [TargetProblem(index, "step", message % values)]

    if metric.step_kinds is not None and step.kind not in metric.step_kinds:
        eligible = [key for key, candidate in steps_by_key.items() if candidate.kind in metric.step_kinds]
        message = _(
            "Target %(number)s: step “%(step)s” is a “%(kind)s” step, which has no %(metric)s. Choose one of these "
            "steps: %(keys)s, or leave the step empty for the whole workflow."
        )
        values = {
            "number": number,
            "step": step_key,
            "kind": step.get_kind_display(),
            "metric": lower_title(metric),
            "keys": ", ".join(eligible) or "-",
        }
        return [TargetProblem(index, "step", message % values)]
    return []


def bound_problems(index: int, item: dict, metric: Metric) -> list[TargetProblem]:
    number = index + 1
    problems = []
    for key, name in (("min", _("minimum")), ("max", _("maximum"))):
        value = item.get(key)
        if value is None or is_percentage(value):
            continue
        message = _(
            "Target %(number)s: the %(bound)s %(value)s is not a percentage from 0 to 100. Enter a number in that range, "
            "or leave it empty."
        )
        problems.append(TargetProblem(index, key, message % {"number": number, "bound": name, "value": describe(value)}))
    if problems:
        return problems

    low, high = item.get("min"), item.get("max")
    if low is None and high is None:
        message = _("Target %(number)s for the %(subject)s has neither a minimum nor a maximum. Set one or both.")
        return [TargetProblem(index, "", message % {"number": number, "subject": subject(item)})]
    if low is not None and high is not None and low > high:
        message = _("Target %(number)s: the minimum %(min)s is above the maximum %(max)s. Swap them.")
        values = {"number": number, "min": format_percent(low), "max": format_percent(high)}
        return [TargetProblem(index, "min", message % values)]
    return []


def is_percentage(value: Any) -> bool:
    # bool is an int subclass, but true is no percentage.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return False
    return math.isfinite(value) and 0 <= value <= 100


def describe(value: Any) -> str:
    """Return a value as it reads in JSON, for error messages: “welcome”, 150, true, a list."""
    if isinstance(value, str):
        return f"“{value}”"
    if isinstance(value, Decimal):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:
        return repr(value)


def lower_title(metric: Metric) -> str:
    return str(metric.title).lower()


def subject(item: dict) -> str:
    """Return what a valid-metric target is about, e.g. "open rate of step “welcome”", for messages."""
    metric = METRICS[item["metric"]]
    if item.get("step"):
        return _("%(metric)s of step “%(step)s”") % {"metric": lower_title(metric), "step": item["step"]}
    return _("%(metric)s of the whole workflow") % {"metric": lower_title(metric)}


# Display and evaluation.


def format_percent(value: float | Decimal) -> str:
    """Return a percentage bound as the active language writes it: 50, 0.5 or 0,5."""
    number = Decimal(str(value))
    number = number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize()
    return formats.number_format(number)


def range_text(low: float | Decimal | None, high: float | Decimal | None) -> str:
    """Return a target range as staff read it: "5–15%", "50% or more" or "2% or less"."""
    if low is not None and high is not None:
        return _("%(min)s–%(max)s%%") % {"min": format_percent(low), "max": format_percent(high)}
    if low is not None:
        return _("%(min)s%% or more") % {"min": format_percent(low)}
    if high is not None:
        return _("%(max)s%% or less") % {"max": format_percent(high)}
    return "-"


def step_title(step: Step) -> str:
    return step.name or step.get_kind_display()


@dataclass
class TargetResult:
    """One target next to the workflow's real figure."""

    target: dict
    label: str
    step_key: str
    range_text: str
    # The real rate in percent, None while nothing has been counted.
    actual: Decimal | None = None
    # BELOW, WITHIN or ABOVE the range; None without an actual figure.
    status: str | None = None
    # Whether the status is good news: above an open rate's range is, above a bounce rate's is not.
    good: bool | None = None
    # Why the stored target cannot be evaluated, e.g. the step it names was deleted.
    problem: str = ""

    @property
    def status_text(self) -> str:
        if self.problem:
            return self.problem
        texts = {BELOW: _("below the range"), WITHIN: _("within the range"), ABOVE: _("above the range")}
        return texts.get(self.status, _("no data yet"))


def goal_label(workflow: Workflow) -> str:
    if not workflow.goal_event:
        return _("Goal rate (no goal event set)")
    event = EVENT_TYPES.get(workflow.goal_event, workflow.goal_event)
    return _("Goal rate: “%(event)s” within %(days)s days") % {"event": event, "days": workflow.goal_window_days}


def target_label(item: Any, workflow: Workflow, steps_by_key: dict[str, Step]) -> str:
    """Return the label staff read for a target, e.g. "Open rate of Email 1: welcome"."""
    if not isinstance(item, dict):
        return describe(item)
    metric = METRICS.get(item.get("metric")) if isinstance(item.get("metric"), str) else None
    if metric is None:
        return describe(item.get("metric"))
    if metric.key == "goal_rate":
        return goal_label(workflow)

    step_key = item.get("step") or ""
    if not step_key:
        return _("%(metric)s of the whole workflow") % {"metric": metric.title}
    step = steps_by_key.get(step_key)
    return _("%(metric)s of %(step)s") % {"metric": metric.title, "step": step_title(step) if step else describe(step_key)}


def counts_for(metric: Metric, step_key: str, rows: list[performance.StepRow]) -> tuple[int, int]:
    """Return the metric's part and whole, summed over the step or over every step the metric applies to."""
    if step_key:
        chosen = [row for row in rows if row.step.key == step_key]
    else:
        chosen = [row for row in rows if metric.step_kinds is None or row.step.kind in metric.step_kinds]
    part = sum(getattr(row, metric.part) for row in chosen)
    whole = sum(getattr(row, metric.whole) for row in chosen)
    return part, whole


def compare(actual: Decimal, low: Any, high: Any) -> str:
    if low is not None and actual < Decimal(str(low)):
        return BELOW
    if high is not None and actual > Decimal(str(high)):
        return ABOVE
    return WITHIN


def evaluate(
    workflow: Workflow,
    *,
    rows: list[performance.StepRow] | None = None,
    goal: performance.GoalSummary | None = None,
) -> list[TargetResult]:
    """Return each of the workflow's targets with the real figure and whether it is below, within or above the range.

    ``rows`` and ``goal`` are the workflow's ``performance.step_rows`` and ``performance.goal_summary``.
    Both are computed when not given.
    """
    if rows is None:
        rows = performance.step_rows(workflow, list(workflow.steps.order_by("position", "id")))
    steps_by_key = {row.step.key: row.step for row in rows}
    targets = workflow.metric_targets or []
    if not isinstance(targets, list):
        targets = [targets]

    results = []
    for index, item in enumerate(normalize(targets)):
        result = TargetResult(
            target=item,
            label=target_label(item, workflow, steps_by_key),
            step_key=(item.get("step") or "") if isinstance(item, dict) else "",
            range_text=range_text(item.get("min"), item.get("max")) if isinstance(item, dict) else "-",
        )
        results.append(result)

        # A stored target can go stale, e.g. when its step is deleted outside the workflow form.
        problems = target_problems(index, item, steps_by_key)
        if problems:
            result.problem = problems[0].message
            logger.warning("workflow %s has an invalid metric target: %s", workflow.pk, result.problem)
            continue

        metric = METRICS[item["metric"]]
        if metric.key == "goal_rate":
            if goal is None:
                goal = performance.goal_summary(workflow)
            part, whole = goal.converted, goal.enrolled
        else:
            part, whole = counts_for(metric, result.step_key, rows)
        result.actual = performance.percent(part, whole)
        if result.actual is None:
            continue

        result.status = compare(result.actual, item["min"], item["max"])
        result.good = result.status == WITHIN or (result.status == ABOVE) == metric.higher_is_better
    return results


# The admin editor.

# The editor's value for an empty step. Its selects show the value "" as "Select...", and a step
# key is a slug, so it never is "*".
WHOLE_WORKFLOW_CHOICE = "*"


def to_editor(targets: Any) -> Any:
    """Return stored targets as the editor shows them, with WHOLE_WORKFLOW_CHOICE for an empty step."""
    if not isinstance(targets, list):
        return targets
    return [
        {**item, "step": WHOLE_WORKFLOW_CHOICE} if isinstance(item, dict) and item.get("step") in ("", None) else item
        for item in targets
    ]


def from_editor(targets: Any) -> Any:
    """Return the editor's targets in the stored format: WHOLE_WORKFLOW_CHOICE becomes an empty step."""
    if not isinstance(targets, list):
        return targets
    return [
        {**item, "step": ""} if isinstance(item, dict) and item.get("step") == WHOLE_WORKFLOW_CHOICE else item for item in targets
    ]


def editor_schema(steps: Iterable[Step], in_use: Any = None) -> dict:
    """Return the django-jsonform schema for a list of targets, in the active language.

    ``in_use`` is the data the editor shows: metrics and step keys it names stay selectable even
    when they are unknown, so the editor shows them as they are instead of changing them.
    """
    steps = list(steps)
    metric_choices = [{"title": f"{metric.title} ({metric.explanation})", "value": key} for key, metric in METRICS.items()]
    step_choices = [{"title": _("Whole workflow"), "value": WHOLE_WORKFLOW_CHOICE}]
    step_choices += [{"title": f"{step_title(step)} ({step.key})", "value": step.key} for step in steps]

    known_steps = {WHOLE_WORKFLOW_CHOICE, *(step.key for step in steps)}
    for item in in_use if isinstance(in_use, list) else []:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("metric"), str) and item["metric"] not in METRICS:
            metric_choices.append({"title": item["metric"], "value": item["metric"]})
        if isinstance(item.get("step"), str) and item["step"] and item["step"] not in known_steps:
            step_choices.append({"title": _("%(key)s (no such step)") % {"key": item["step"]}, "value": item["step"]})
            known_steps.add(item["step"])

    return {
        "type": "array",
        "items": {
            "type": "object",
            "title": _("Target"),
            "properties": {
                "metric": {"type": "string", "title": _("Metric"), "choices": metric_choices, "default": "goal_rate"},
                "step": {
                    "type": "string",
                    "title": _("Step"),
                    "choices": step_choices,
                    "default": WHOLE_WORKFLOW_CHOICE,
                    "help_text": _("A step saved in this workflow, or the whole workflow."),
                },
                "min": {
                    "type": "number",
                    # xgettext:no-python-format
                    "title": _("Minimum (%)"),
                    "minimum": 0,
                    "maximum": 100,
                    "help_text": _("Leave empty for no lower limit."),
                },
                "max": {
                    "type": "number",
                    # xgettext:no-python-format
                    "title": _("Maximum (%)"),
                    "minimum": 0,
                    "maximum": 100,
                    "help_text": _("Leave empty for no upper limit."),
                },
            },
        },
    }


class TargetsWidget(RenderTimeSchemaWidget):
    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__(attrs=attrs)
        self.steps: list[Step] = []

    def build_schema(self) -> dict:
        return editor_schema(self.steps, self.rendered_data)


class TargetsFormField(JSONFormField):
    """Metric targets edited as a form and checked with ``validate`` against the workflow's steps.

    The form sets ``steps`` with ``use_steps`` to the steps it saves, so a target may name a step
    added in the same submission.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", TargetsWidget())
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.steps: list[Step] = []

    def use_steps(self, steps: Iterable[Step]) -> None:
        self.steps = list(steps)
        self.widget.steps = self.steps

    def to_python(self, value: Any) -> Any:
        data = super().to_python(value)
        if data is None:
            return []
        return normalize(from_editor(data))

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        return super().prepare_value(to_editor(value))

    def validate(self, value: Any) -> None:
        # ``validate`` replaces the JSON schema check, because its messages name the target, the
        # bad value and the fix, where the schema check only reports the failing keyword.
        try:
            validate(value, self.steps)
        except TargetError as error:
            # The editor shows these messages at the target and the key they are about.
            error_map: dict[str, list[str]] = {}
            for problem in error.problems:
                if problem.index is not None:
                    error_map.setdefault(join_coords(problem.index, problem.key), []).append(problem.message)
            self.widget.add_error(error_map)
            raise ValidationError([problem.message for problem in error.problems], code="invalid_targets") from None
