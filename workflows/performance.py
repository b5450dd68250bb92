"""How a workflow performs: step metric totals, rates, the goal against its target, daily series.

Read by the workflow page in the admin. Step metrics are daily counters, so every step number
here is a sum of ``campaigns.StepMetric`` rows. The goal compares converted enrollments with all
enrollments of the workflow.
"""

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

from campaigns.models import StepMetric
from workflows.models import Enrollment, Step, Workflow

logger = logging.getLogger(__name__)

COUNTERS = ("entered", "sent", "opened", "clicked", "unsubscribed", "bounced", "converted", "exited")
DAILY_COUNTERS = ("sent", "opened", "clicked", "converted")


def percent(part: int, whole: int) -> Decimal | None:
    """Return part/whole as a percentage with one decimal, or None when whole is 0."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass
class StepRow:
    step: Step
    entered: int = 0
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    converted: int = 0
    revenue: Decimal = Decimal("0")
    exited: int = 0

    @property
    def open_rate(self) -> Decimal | None:
        return percent(self.opened, self.sent)

    @property
    def click_rate(self) -> Decimal | None:
        return percent(self.clicked, self.sent)

    @property
    def conversion_rate(self) -> Decimal | None:
        """Conversions credited to this step per contact who entered it."""
        return percent(self.converted, self.entered)


@dataclass
class GoalSummary:
    goal_event: str
    target_percent: Decimal | None
    enrolled: int
    converted: int
    revenue: Decimal

    @property
    def rate(self) -> Decimal | None:
        return percent(self.converted, self.enrolled)

    @property
    def target_met(self) -> bool | None:
        """Return whether the rate reaches the target, or None when either is unknown."""
        if self.target_percent is None or self.rate is None:
            return None
        return self.rate >= self.target_percent


def step_rows(workflow: Workflow, steps: list[Step]) -> list[StepRow]:
    """Return one row of summed metrics per step, in step order."""
    sums = {f"total_{name}": Sum(name) for name in (*COUNTERS, "revenue")}
    totals = {
        row["step_id"]: row for row in StepMetric.objects.filter(step__workflow=workflow).values("step_id").annotate(**sums)
    }

    rows = []
    for step in steps:
        total = totals.get(step.pk, {})
        row = StepRow(step=step, revenue=total.get("total_revenue") or Decimal("0"))
        for name in COUNTERS:
            setattr(row, name, total.get(f"total_{name}") or 0)
        rows.append(row)
    return rows


def total_row(rows: list[StepRow]) -> dict[str, object]:
    """Return the sums over all steps; rates use sends of every email step as the base."""
    totals: dict[str, object] = {name: sum(getattr(row, name) for row in rows) for name in COUNTERS}
    totals["revenue"] = sum((row.revenue for row in rows), Decimal("0"))
    totals["open_rate"] = percent(totals["opened"], totals["sent"])
    totals["click_rate"] = percent(totals["clicked"], totals["sent"])
    return totals


def goal_summary(workflow: Workflow) -> GoalSummary:
    counts = Enrollment.objects.filter(workflow=workflow).aggregate(
        enrolled=Count("pk"), converted=Count("pk", filter=Q(converted_at__isnull=False)), revenue=Sum("revenue")
    )
    return GoalSummary(
        goal_event=workflow.goal_event,
        target_percent=workflow.goal_target_percent,
        enrolled=counts["enrolled"] or 0,
        converted=counts["converted"] or 0,
        revenue=counts["revenue"] or Decimal("0"),
    )


def daily_series(workflow: Workflow, *, today: date, days: int = 30) -> dict[str, list]:
    """Return per-day enrollments and message counters for the ``days`` days up to ``today``."""
    first = today - timedelta(days=days - 1)
    labels = [(first + timedelta(days=offset)).isoformat() for offset in range(days)]
    index = {label: position for position, label in enumerate(labels)}
    series: dict[str, list] = {name: [0] * days for name in ("enrolled", *DAILY_COUNTERS)}

    metric_rows = (
        StepMetric.objects.filter(step__workflow=workflow, day__gte=first, day__lte=today)
        .values("day")
        .annotate(**{name: Sum(name) for name in DAILY_COUNTERS})
    )
    for row in metric_rows:
        position = index[row["day"].isoformat()]
        for name in DAILY_COUNTERS:
            series[name][position] = row[name] or 0

    enrolled_rows = (
        Enrollment.objects.filter(workflow=workflow, enrolled_at__date__gte=first, enrolled_at__date__lte=today)
        .annotate(day=TruncDate("enrolled_at"))
        .values("day")
        .annotate(count=Count("pk"))
    )
    for row in enrolled_rows:
        position = index.get(row["day"].isoformat())
        if position is not None:
            series["enrolled"][position] = row["count"]

    return {"labels": labels, **series}
