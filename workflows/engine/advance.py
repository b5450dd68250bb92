"""Advancing due enrollments: lock a batch, run it through its steps in set-based rounds, write back."""

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from workflows.engine import exits
from workflows.engine.batch import Batch, Run, load_plans
from workflows.engine.steps import run_step
from workflows.models import Enrollment, StepLog, Workflow

logger = logging.getLogger(__name__)

# Instant steps (tag, condition, send) chain within one tick. This many rounds is far beyond any
# sane workflow, so reaching it means a loop without a wait. Such enrollments stay due and move on
# in the next tick instead of spinning this one.
MAX_ROUNDS = 50
# A workflow whose step raises is tried again this much later, so it cannot stall each tick.
FAILURE_RETRY_DELAY = timedelta(minutes=15)


def advance_batch(now: datetime, limit: int) -> int:
    """Advance one batch of due enrollments; return how many were taken."""
    with transaction.atomic():
        due = Enrollment.objects.filter(
            state=Enrollment.State.ACTIVE, next_run_at__lte=now, workflow__status=Workflow.Status.LIVE
        ).order_by("next_run_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        rows = list(
            due.values_list(
                "id", "workflow_id", "contact_id", "key", "enrolled_at", "step_id", "visit", "next_run_at", "waiting_since"
            )[:limit]
        )
        if not rows:
            return 0
        plans = load_plans({row[1] for row in rows})

        try:
            with transaction.atomic():
                run_batch(rows, now, plans)
        except Exception:
            # One broken workflow (say, a condition naming a deleted segment) must not stall every
            # other workflow: retry per workflow and push the failing one's enrollments back.
            logger.exception("batch of %s enrollments failed, retrying workflow by workflow", len(rows))
            run_per_workflow(rows, now, plans)

    logger.info("advanced %s enrollments", len(rows))
    return len(rows)


def build_runs(rows: list[tuple]) -> list[Run]:
    return [
        Run(
            id=row[0],
            workflow_id=row[1],
            contact_id=row[2],
            key=row[3],
            enrolled_at=row[4],
            step_id=row[5],
            visit=row[6],
            next_run_at=row[7],
            start_step_id=row[5],
            start_visit=row[6],
            waiting_since=row[8],
        )
        for row in rows
    ]


def run_batch(rows: list[tuple], now: datetime, plans: dict) -> None:
    batch = Batch(build_runs(rows), now, plans)
    run_rounds(batch)
    batch.write()


def run_per_workflow(rows: list[tuple], now: datetime, plans: dict) -> None:
    by_workflow: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        by_workflow[row[1]].append(row)

    for workflow_id, workflow_rows in by_workflow.items():
        try:
            with transaction.atomic():
                run_batch(workflow_rows, now, plans)
        except Exception as error:
            defer_failed(workflow_rows, now, error)
            logger.exception(
                "workflow %s: %s enrollments failed and retry at %s", workflow_id, len(workflow_rows), now + FAILURE_RETRY_DELAY
            )


def defer_failed(rows: list[tuple], now: datetime, error: Exception) -> None:
    """Move failing enrollments out of the due set before anything else, with the error on their log."""
    ids = [row[0] for row in rows]
    Enrollment.objects.filter(pk__in=ids).update(next_run_at=now + FAILURE_RETRY_DELAY)
    reason = f"{type(error).__name__}: {error}"[:300]
    StepLog.objects.bulk_create(
        [
            StepLog(enrollment_id=row[0], step_id=row[5], visit=row[6], outcome=StepLog.Outcome.FAILED, reason=reason, at=now)
            for row in rows
        ]
    )


def run_rounds(batch: Batch) -> None:
    for _round in range(MAX_ROUNDS):
        due = batch.due()
        if not due:
            return

        # Exit conditions are checked before every step.
        exits.exit_matching_runs(batch, due)
        due = [run for run in due if run.state == Enrollment.State.ACTIVE]

        groups: dict[int | None, list[Run]] = defaultdict(list)
        for run in due:
            groups[run.step_id].append(run)
        for step_id, runs in groups.items():
            plan = batch.plans[runs[0].workflow_id]
            step = plan.by_id.get(step_id) if step_id is not None else None
            if step is None:
                # The step was deleted while the enrollment waited for it, or the workflow has no steps.
                for run in runs:
                    batch.finish(run, Enrollment.State.COMPLETED, "", None)
                continue
            run_step(batch, step, runs, batch.now)

    spinning = batch.due()
    if spinning:
        logger.warning(
            "%s enrollments still due after %s rounds, e.g. enrollment %s; check for a loop without a wait",
            len(spinning),
            MAX_ROUNDS,
            spinning[0].id,
        )
        for run in spinning:
            batch.log(run, None, StepLog.Outcome.WAITED, "round limit reached, continues next tick")


def advance_due(now: datetime, *, batch_size: int | None = None, max_batches: int | None = None) -> int:
    """Advance due enrollments batch by batch, at most ``max_batches`` so a scheduled run always ends."""
    batch_size = batch_size or settings.MKTAUTO_TICK_BATCH_SIZE
    max_batches = max_batches or settings.MKTAUTO_TICK_MAX_BATCHES
    total = 0
    for _ in range(max_batches):
        taken = advance_batch(now, batch_size)
        total += taken
        if taken < batch_size:
            break
    return total
