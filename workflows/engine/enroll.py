"""Enrolling contacts: event triggers here, and the entry rules every trigger kind shares."""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Max

from contacts import conditions
from contacts.models import Event
from workflows.models import Enrollment, Step, Workflow

logger = logging.getLogger(__name__)


@dataclass
class Candidate:
    """A contact a trigger wants to enroll, with the key and data the enrollment will carry."""

    contact_id: int
    key: str
    enrolled_at: datetime
    context: dict = field(default_factory=dict)
    trigger_event_id: int | None = None


def match_triggers(events: list[Event], now: datetime) -> int:
    """Create enrollments for the events that trigger live workflows; return how many were created."""
    types = {event.type for event in events}
    workflows = Workflow.objects.filter(
        status=Workflow.Status.LIVE, trigger_type=Workflow.TriggerType.EVENT, trigger_event__in=types
    )
    created = 0
    for workflow in workflows:
        created += enroll_from_events(workflow, [event for event in events if event.type == workflow.trigger_event], now)
    return created


def enroll_from_events(workflow: Workflow, events: list[Event], now: datetime) -> int:
    if workflow.trigger_filter:
        compiled = conditions.compile_event_filter(workflow.trigger_filter, now=now)
        matched_ids = set(
            Event.objects.filter(pk__in=[event.pk for event in events]).filter(compiled).values_list("pk", flat=True)
        )
        events = [event for event in events if event.pk in matched_ids]

    candidates = [
        Candidate(
            contact_id=event.contact_id,
            key=event.key if workflow.keyed else "",
            enrolled_at=event.occurred_at,
            context=trigger_context(event),
            trigger_event_id=event.pk,
        )
        for event in sorted(events, key=lambda item: (item.occurred_at, item.pk))
    ]
    return enroll(workflow, candidates, now)


def enroll(workflow: Workflow, candidates: list[Candidate], now: datetime) -> int:
    """Enroll the candidates the workflow's entry rule admits; return how many enrollments were created.

    Whatever the rule, a contact has at most one active enrollment per key.
    """
    if not candidates:
        return 0

    contact_ids = {candidate.contact_id for candidate in candidates}
    existing = Enrollment.objects.filter(workflow=workflow, contact_id__in=contact_ids)
    blocked_keys = set(existing.filter(state=Enrollment.State.ACTIVE).values_list("contact_id", "key"))
    blocked_contacts: set[int] = set()
    if workflow.entry_rule == Workflow.EntryRule.ONCE:
        blocked_contacts = set(existing.values_list("contact_id", flat=True))
    elif workflow.entry_rule == Workflow.EntryRule.ONCE_PER_DAYS:
        window_start = now - timedelta(days=workflow.reentry_days)
        latest = dict(existing.values("contact_id").annotate(latest=Max("enrolled_at")).values_list("contact_id", "latest"))
        blocked_contacts = {contact_id for contact_id, enrolled_at in latest.items() if enrolled_at >= window_start}

    first_step = Step.objects.filter(workflow=workflow).order_by("position", "id").first()
    new = []
    for candidate in candidates:
        if candidate.contact_id in blocked_contacts or (candidate.contact_id, candidate.key) in blocked_keys:
            continue
        blocked_keys.add((candidate.contact_id, candidate.key))
        if workflow.entry_rule != Workflow.EntryRule.EVERY_TIME:
            blocked_contacts.add(candidate.contact_id)
        new.append(
            Enrollment(
                workflow=workflow,
                contact_id=candidate.contact_id,
                key=candidate.key,
                state=Enrollment.State.ACTIVE,
                step=first_step,
                visit=1,
                next_run_at=now,
                enrolled_at=candidate.enrolled_at,
                context=candidate.context,
                trigger_event_id=candidate.trigger_event_id,
            )
        )

    # The partial unique constraint is the final guard against a second active enrollment for the
    # same contact and key, e.g. from an event processed twice after a crash.
    Enrollment.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
    if new:
        logger.info("workflow %s: %s contacts enrolled", workflow.pk, len(new))
    return len(new)


def trigger_context(event: Event) -> dict:
    """Return the trigger data merge tags and conditions can use: the event's properties and key."""
    return {
        **event.properties,
        "event_type": event.type,
        "key": event.key,
        "value": str(event.value) if event.value is not None else "",
    }
