"""Event triggers: enroll the contacts whose events match a live workflow's trigger and filter."""

import logging
from datetime import datetime

from contacts import conditions
from contacts.models import Event
from workflows.models import Enrollment, Step, Workflow

logger = logging.getLogger(__name__)


def match_triggers(events: list[Event], now: datetime) -> int:
    """Create enrollments for the events that trigger live workflows; return how many were created."""
    types = {event.type for event in events}
    workflows = Workflow.objects.filter(status=Workflow.Status.LIVE, trigger_event__in=types)
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
    if not events:
        return 0

    first_step = Step.objects.filter(workflow=workflow).order_by("position", "id").first()
    contact_ids = {event.contact_id for event in events}
    existing = Enrollment.objects.filter(workflow=workflow, contact_id__in=contact_ids)
    if workflow.entry_rule == Workflow.EntryRule.ONCE:
        blocked = {(contact_id, None) for contact_id in existing.values_list("contact_id", flat=True)}
    else:
        blocked = set(existing.filter(state=Enrollment.State.ACTIVE).values_list("contact_id", "key"))

    new = []
    for event in sorted(events, key=lambda item: (item.occurred_at, item.pk)):
        key = event.key if workflow.keyed else ""
        if (event.contact_id, None) in blocked or (event.contact_id, key) in blocked:
            continue
        blocked.add((event.contact_id, key))
        if workflow.entry_rule == Workflow.EntryRule.ONCE:
            blocked.add((event.contact_id, None))
        new.append(
            Enrollment(
                workflow=workflow,
                contact_id=event.contact_id,
                key=key,
                state=Enrollment.State.ACTIVE,
                step=first_step,
                visit=1,
                next_run_at=now,
                enrolled_at=event.occurred_at,
                context=trigger_context(event),
                trigger_event=event,
            )
        )

    # The partial unique constraint is the final guard against a second active enrollment for the
    # same contact and key, e.g. from an event processed twice after a crash.
    Enrollment.objects.bulk_create(new, ignore_conflicts=True)
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
