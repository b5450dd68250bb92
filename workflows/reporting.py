"""Per-workflow, per-step results read from step metrics and enrollments, as a table, CSV or JSON."""

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal

from django.db.models import Count, Sum
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from campaigns.models import StepMetric
from workflows.models import Enrollment, Workflow

STEP_COUNTERS = ("entered", "sent", "opened", "clicked", "unsubscribed", "converted", "exited")


@dataclass
class StepReport:
    position: int
    key: str
    name: str
    kind: str
    entered: int = 0
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    converted: int = 0
    exited: int = 0
    revenue: Decimal = Decimal("0")


@dataclass
class WorkflowReport:
    name: str
    status: str
    enrolled: int
    active: int
    completed: int
    exited: int
    converted: int
    revenue: Decimal
    goal_target_percent: Decimal | None
    steps: list[StepReport] = field(default_factory=list)

    @property
    def conversion_percent(self) -> Decimal:
        if not self.enrolled:
            return Decimal("0")
        return (Decimal(self.converted) * 100 / self.enrolled).quantize(Decimal("0.1"))


def money(value: Decimal | None) -> Decimal:
    # SQLite sums decimals as floats; quantizing gives the same two decimals on every database.
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def build_report(name: str | None = None) -> list[WorkflowReport]:
    """Return the report for one workflow by name, or for every workflow that is not archived."""
    workflows = Workflow.objects.exclude(status=Workflow.Status.ARCHIVED).order_by("-priority", "name")
    if name:
        workflows = Workflow.objects.filter(name=name)
    return [workflow_report(workflow) for workflow in workflows]


def workflow_report(workflow: Workflow) -> WorkflowReport:
    states = dict(Enrollment.objects.filter(workflow=workflow).values_list("state").annotate(total=Count("id")))
    totals = Enrollment.objects.filter(workflow=workflow, converted_at__isnull=False).aggregate(
        converted=Count("id"), revenue=Sum("revenue")
    )
    sums = {
        row["step"]: row
        for row in StepMetric.objects.filter(step__workflow=workflow)
        .values("step")
        .annotate(**{counter: Sum(counter) for counter in STEP_COUNTERS}, revenue=Sum("revenue"))
    }

    report = WorkflowReport(
        name=workflow.name,
        status=workflow.get_status_display(),
        enrolled=sum(states.values()),
        active=states.get(Enrollment.State.ACTIVE, 0),
        completed=states.get(Enrollment.State.COMPLETED, 0),
        exited=states.get(Enrollment.State.EXITED, 0),
        converted=totals["converted"] or 0,
        revenue=money(totals["revenue"]),
        goal_target_percent=workflow.goal_target_percent,
    )
    for step in workflow.steps.order_by("position", "id"):
        row = sums.get(step.pk, {})
        report.steps.append(
            StepReport(
                position=step.position + 1,
                key=step.key,
                name=step.name or step.get_kind_display(),
                kind=step.kind,
                revenue=money(row.get("revenue")),
                **{counter: row.get(counter) or 0 for counter in STEP_COUNTERS},
            )
        )
    return report


def local_number(value: Decimal, decimals: int) -> str:
    """Format a figure for people in the active language, e.g. 1.234,50 in Dutch and 1,234.50 in English."""
    return number_format(value, decimals, use_l10n=True, force_grouping=True)


def as_table(reports: list[WorkflowReport]) -> str:
    """Return the reports as a text table for people, with numbers in the active language's format."""
    headers = [_("Step"), _("Entered"), _("Sent"), _("Opened"), _("Clicked"), _("Converted"), _("Revenue")]
    lines = []
    for report in reports:
        target = ""
        if report.goal_target_percent is not None:
            target = _(", target %(percent)s%%") % {"percent": local_number(report.goal_target_percent, 1)}
        lines.append(f"{report.name} ({report.status})")
        lines.append(
            _("  enrolled %(enrolled)s, active %(active)s, completed %(completed)s, exited %(exited)s")
            % {"enrolled": report.enrolled, "active": report.active, "completed": report.completed, "exited": report.exited}
        )
        lines.append(
            _("  converted %(converted)s (%(percent)s%%%(target)s), revenue %(revenue)s")
            % {
                "converted": report.converted,
                "percent": local_number(report.conversion_percent, 1),
                "target": target,
                "revenue": local_number(report.revenue, 2),
            }
        )
        rows = [
            [
                f"{step.position}. {step.name}",
                step.entered,
                step.sent,
                step.opened,
                step.clicked,
                step.converted,
                local_number(step.revenue, 2),
            ]
            for step in report.steps
        ]
        widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
        lines.append("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(headers, widths, strict=True)))
        for row in rows:
            cells = [str(row[0]).ljust(widths[0])] + [
                str(cell).rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
            ]
            lines.append("  " + "  ".join(cells))
        lines.append("")
    return "\n".join(lines)


def as_csv(reports: list[WorkflowReport]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["workflow", "position", "step", "kind", *STEP_COUNTERS, "revenue"])
    for report in reports:
        for step in report.steps:
            writer.writerow(
                [report.name, step.position, step.key, step.kind, *(getattr(step, name) for name in STEP_COUNTERS), step.revenue]
            )
    return buffer.getvalue()


def as_json(reports: list[WorkflowReport]) -> str:
    data = []
    for report in reports:
        item = asdict(report)
        item["conversion_percent"] = report.conversion_percent
        data.append(item)
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)


FORMATTERS = {"table": as_table, "csv": as_csv, "json": as_json}
