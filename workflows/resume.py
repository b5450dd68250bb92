"""Resuming a paused workflow without a burst: what fell due during the pause is spread out over time.

Pausing keeps every enrollment where it is, so after a long pause many of them are overdue, and
setting the workflow live would advance them all in the next tick. ``resume`` spreads them (and
the workflow's messages that dispatch held back while it was paused) over a window from now,
oldest due first; the sending policy then applies to each send as usual.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from campaigns.models import Delivery
from workflows import lifecycle
from workflows.models import Enrollment, Workflow

logger = logging.getLogger(__name__)

DEFAULT_SPREAD = timedelta(hours=1)
# Overdue rows are put in one-minute slots, so the spread costs one update per slot, not per row.
SLOT = timedelta(minutes=1)
CHUNK = 5000


@dataclass(frozen=True)
class ResumeResult:
    """Outcome of ``resume``: the problems that kept the workflow paused, or how many rows it moved."""

    problems: list[str]
    enrollments_spread: int = 0
    deliveries_spread: int = 0


def slot_times(count: int, now: datetime, spread: timedelta) -> list[datetime]:
    """Return ``count`` start times from ``now`` over ``spread`` in whole slots, in order."""
    slots = max(int(spread / SLOT), 1)
    return [now + SLOT * (index * slots // count) for index in range(count)]


def spread_rows(ids: list[int], times: list[datetime], write: Callable[[list[int], datetime], None]) -> None:
    """Write each row's new time with one update per distinct time, chunked."""
    by_time: dict[datetime, list[int]] = {}
    for pk, moment in zip(ids, times, strict=True):
        by_time.setdefault(moment, []).append(pk)
    for moment, pks in by_time.items():
        for start in range(0, len(pks), CHUNK):
            write(pks[start : start + CHUNK], moment)


def spread_enrollments(workflow: Workflow, now: datetime, spread: timedelta) -> int:
    overdue = list(
        Enrollment.objects.filter(workflow=workflow, state=Enrollment.State.ACTIVE, next_run_at__lte=now)
        .order_by("next_run_at", "id")
        .values_list("pk", flat=True)
    )
    if not overdue:
        return 0

    def write(pks: list[int], moment: datetime) -> None:
        Enrollment.objects.filter(pk__in=pks, state=Enrollment.State.ACTIVE).update(next_run_at=moment)

    spread_rows(overdue, slot_times(len(overdue), now, spread), write)
    return len(overdue)


def spread_deliveries(workflow: Workflow, now: datetime, spread: timedelta) -> int:
    # Dispatch keeps a paused workflow's queued messages and looks at them again every few minutes,
    # so without this they would all go out within minutes of resuming.
    held_ids = list(
        Delivery.objects.filter(enrollment__workflow=workflow, status=Delivery.Status.QUEUED)
        .order_by("created_at", "id")
        .values_list("pk", flat=True)
    )
    if not held_ids:
        return 0

    def write(pks: list[int], moment: datetime) -> None:
        Delivery.objects.filter(pk__in=pks, status=Delivery.Status.QUEUED).update(next_attempt_at=moment)

    spread_rows(held_ids, slot_times(len(held_ids), now, spread), write)
    return len(held_ids)


def resume(
    workflow: Workflow, send_missed: bool = False, *, now: datetime | None = None, spread: timedelta = DEFAULT_SPREAD
) -> ResumeResult:
    """Set a paused workflow live again and, unless ``send_missed``, spread what fell due during the pause over ``spread``.

    With ``send_missed`` the overdue enrollments stay due and advance in the next tick, as after
    activating. Raises ValueError when the workflow is not paused.
    """
    if workflow.status != Workflow.Status.PAUSED:
        raise ValueError(
            f"workflow {workflow.pk} ({workflow.name!r}) is {workflow.status}, not paused. Only a paused workflow can be "
            "resumed; activate a draft instead."
        )
    if spread <= timedelta(0):
        raise ValueError(f"spread must be positive, got {spread}. Pass e.g. timedelta(hours=1).")
    now = now or timezone.now()

    with transaction.atomic():
        # Both changes commit together, so no tick reads the workflow as live while its backlog is still due.
        problems = lifecycle.activate(workflow)
        if problems:
            return ResumeResult(problems=problems)
        enrollments = deliveries = 0
        if not send_missed:
            enrollments = spread_enrollments(workflow, now, spread)
            deliveries = spread_deliveries(workflow, now, spread)

    logger.info(
        "workflow %s resumed: %s overdue enrollments and %s held deliveries spread over %s",
        workflow.pk,
        enrollments,
        deliveries,
        spread,
    )
    return ResumeResult(problems=[], enrollments_spread=enrollments, deliveries_spread=deliveries)
