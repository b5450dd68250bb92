"""Exit conditions and goals: checked when events arrive and, for exits, again before every step."""

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.db.models import Min, OuterRef, Q, Subquery

from campaigns.metrics import MetricBatch
from campaigns.models import Delivery
from contacts import conditions
from contacts.models import Event
from contacts.tagging import tag_contacts
from workflows.engine.batch import Batch, Run
from workflows.engine.enroll import Candidate, enroll
from workflows.models import Enrollment, Step, StepLog, Workflow

logger = logging.getLogger(__name__)

CHUNK = 5000
RUNNING_STATUSES = (Workflow.Status.LIVE, Workflow.Status.PAUSED)


def compiled_exit(workflow: Workflow, now: datetime) -> Q:
    return conditions.compile(
        workflow.exit_condition, since=OuterRef("enrolled_at"), key=OuterRef("key"), now=now, contact_path="contact__"
    )


def exit_matching_runs(batch: Batch, runs: list[Run]) -> None:
    """Exit the runs whose workflow's exit condition matches, before they take another step."""
    by_workflow: dict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_workflow[run.workflow_id].append(run)

    for workflow_id, workflow_runs in by_workflow.items():
        plan = batch.plans[workflow_id]
        if not plan.workflow.exit_condition:
            continue
        compiled = compiled_exit(plan.workflow, batch.now)
        matched: set[int] = set()
        ids = [run.id for run in workflow_runs]
        for start in range(0, len(ids), CHUNK):
            matched.update(
                Enrollment.objects.filter(pk__in=ids[start : start + CHUNK]).filter(compiled).values_list("pk", flat=True)
            )
        leaving = [run for run in workflow_runs if run.id in matched]
        for run in leaving:
            batch.finish(run, Enrollment.State.EXITED, "exit condition", plan.by_id.get(run.step_id))
        if leaving and plan.workflow.exit_tag:
            tag_contacts([run.contact_id for run in leaving], plan.workflow.exit_tag)


def current_steps(enrollments: list[Enrollment], now: datetime) -> dict[int, int | None]:
    """Return the step each enrollment is at, by enrollment id.

    A duration wait moves the enrollment onto the following step at once, due when the wait ends.
    Until then the contact is still at the wait: the step of its latest log.
    """
    steps = {enrollment.pk: enrollment.step_id for enrollment in enrollments}
    waiting = [enrollment.pk for enrollment in enrollments if enrollment.next_run_at and enrollment.next_run_at > now]
    # A conversion is logged at the step whose message earned it, not where the contact is.
    logs = StepLog.objects.filter(enrollment_id=OuterRef("pk")).exclude(outcome=StepLog.Outcome.CONVERTED)
    latest = logs.order_by("-at", "-id").values("step_id")[:1]
    for start in range(0, len(waiting), CHUNK):
        rows = (
            Enrollment.objects.filter(pk__in=waiting[start : start + CHUNK])
            .annotate(logged_step=Subquery(latest))
            .values_list("pk", "logged_step")
        )
        for enrollment_id, step_id in rows:
            if step_id is not None:
                steps[enrollment_id] = step_id
    return steps


def exit_enrollments(enrollments: list[Enrollment], reason: str, now: datetime, *, tag: str = "") -> int:
    """Exit the given active enrollments, logging each at the step it is at; return how many were still active.

    ``tag``, the workflow's tag on leaving, is added to their contacts.
    """
    steps = current_steps(enrollments, now)
    ids = [enrollment.pk for enrollment in enrollments]
    exited = 0
    for start in range(0, len(ids), CHUNK):
        exited += Enrollment.objects.filter(pk__in=ids[start : start + CHUNK], state=Enrollment.State.ACTIVE).update(
            state=Enrollment.State.EXITED, exit_reason=reason, finished_at=now, next_run_at=None
        )

    metrics = MetricBatch()
    StepLog.objects.bulk_create(
        [
            StepLog(
                enrollment_id=enrollment.pk,
                step_id=steps[enrollment.pk],
                visit=enrollment.visit,
                outcome=StepLog.Outcome.EXITED,
                reason=reason,
                at=now,
            )
            for enrollment in enrollments
        ],
        batch_size=CHUNK,
    )
    for enrollment in enrollments:
        metrics.add(steps[enrollment.pk], now, "exited")
    metrics.write()
    if tag:
        tag_contacts([enrollment.contact_id for enrollment in enrollments], tag)
    return exited


def exit_on_events(events: list[Event], now: datetime) -> int:
    """Exit active enrollments of the events' contacts whose workflow's exit condition now matches."""
    contact_ids = sorted({event.contact_id for event in events})
    if not contact_ids:
        return 0
    total = 0
    for workflow in Workflow.objects.filter(status__in=RUNNING_STATUSES).exclude(exit_condition={}):
        matching = list(
            Enrollment.objects.filter(workflow=workflow, state=Enrollment.State.ACTIVE, contact_id__in=contact_ids).filter(
                compiled_exit(workflow, now)
            )
        )
        if matching:
            total += exit_enrollments(matching, "exit condition", now, tag=workflow.exit_tag)
            logger.info("workflow %s: %s enrollments exited on arriving events", workflow.pk, len(matching))
    return total


def check_goals(events: list[Event], now: datetime) -> int:
    """Count goal events as conversions (with their revenue) and exit where the workflow says so."""
    by_type: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_type[event.type].append(event)
    workflows = Workflow.objects.filter(goal_event__in=list(by_type), status__in=RUNNING_STATUSES)

    converted = 0
    for workflow in workflows:
        goal_events = by_type[workflow.goal_event]
        window = timedelta(days=workflow.goal_window_days)
        earliest = min(event.occurred_at for event in goal_events) - window
        candidates = Enrollment.objects.filter(
            workflow=workflow,
            contact_id__in={event.contact_id for event in goal_events},
            converted_at__isnull=True,
            enrolled_at__gte=earliest,
        ).exclude(state=Enrollment.State.FAILED)
        by_contact: dict[int, list[Enrollment]] = defaultdict(list)
        for enrollment in candidates:
            by_contact[enrollment.contact_id].append(enrollment)
        # A conversion needs a touch: a purchase before the workflow sent anything (a checkout
        # completed within the abandonment wait) was never at risk and is not a recovery.
        first_sent = dict(
            Delivery.objects.filter(enrollment__in=candidates, status=Delivery.Status.SENT)
            .values("enrollment_id")
            .annotate(first=Min("sent_at"))
            .values_list("enrollment_id", "first")
        )

        for event in sorted(goal_events, key=lambda item: item.occurred_at):
            for enrollment in by_contact.get(event.contact_id, []):
                if enrollment.converted_at is not None:
                    continue
                if not (enrollment.enrolled_at < event.occurred_at <= enrollment.enrolled_at + window):
                    continue
                if workflow.goal_same_key and event.key and enrollment.key and event.key != enrollment.key:
                    continue
                if enrollment.pk not in first_sent or first_sent[enrollment.pk] > event.occurred_at:
                    continue
                record_conversion(workflow, enrollment, event, now)
                converted += 1
    return converted


def record_conversion(workflow: Workflow, enrollment: Enrollment, event: Event, now: datetime) -> None:
    enrollment.converted_at = event.occurred_at
    enrollment.revenue = event.value or 0
    Enrollment.objects.filter(pk=enrollment.pk).update(converted_at=event.occurred_at, revenue=enrollment.revenue)

    # Last touch: the conversion counts for the step of the latest message sent before it.
    last_sent = (
        Delivery.objects.filter(enrollment=enrollment, status=Delivery.Status.SENT, sent_at__lte=event.occurred_at)
        .order_by("-sent_at", "-id")
        .first()
    )
    step_id = last_sent.step_id if last_sent else enrollment.step_id
    metrics = MetricBatch()
    metrics.add(step_id, event.occurred_at, "converted")
    metrics.add_revenue(step_id, event.occurred_at, enrollment.revenue)
    metrics.write()
    StepLog.objects.create(
        enrollment=enrollment,
        step_id=step_id,
        visit=enrollment.visit,
        outcome=StepLog.Outcome.CONVERTED,
        reason=f"{event.type} {event.value or ''}".strip(),
        at=now,
    )
    if workflow.exit_on_goal and enrollment.state == Enrollment.State.ACTIVE:
        exit_enrollments([enrollment], "goal reached", now, tag=workflow.exit_tag)
        enrollment.state = Enrollment.State.EXITED
    handoff = workflow.goal_handoff
    if handoff is not None and handoff.status == Workflow.Status.LIVE:
        key = event.key if handoff.keyed else ""
        enroll(handoff, [Candidate(contact_id=enrollment.contact_id, key=key, enrolled_at=now, context=enrollment.context)], now)


def exit_for_withdrawn_consent(contact_ids: list[int], channel: str, now: datetime) -> int:
    """Exit the contacts from every workflow that sends promotional messages on ``channel``."""
    promotional = Step.objects.filter(template__channel=channel, template__transactional=False).values("workflow_id")
    enrollments = list(
        Enrollment.objects.filter(contact_id__in=contact_ids, state=Enrollment.State.ACTIVE, workflow_id__in=promotional)
    )
    if not enrollments:
        return 0
    exited = exit_enrollments(enrollments, f"unsubscribed from {channel}", now)
    logger.info("contacts %s left %s enrollments after unsubscribing from %s", contact_ids[:10], exited, channel)
    return exited
