"""Enrolling contacts: event triggers here, and the entry rules every trigger kind shares.

Order events carry the replenishment cycle of each product in their trigger data: order lines
without cycle_days get them from the replenishment table, read once per batch (see
workflows.replenishment).
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Max

from contacts import conditions
from contacts.catalogue import ORDER_EVENT_TYPES
from contacts.models import Event
from workflows.models import Enrollment, Step, Workflow
from workflows.replenishment import CycleTable, order_has_cycle, starts_with_cycle_wait

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
    workflows = list(
        Workflow.objects.filter(status=Workflow.Status.LIVE, trigger_type=Workflow.TriggerType.EVENT, trigger_event__in=types)
    )
    cycles = CycleTable.load() if any(workflow.trigger_event in ORDER_EVENT_TYPES for workflow in workflows) else None
    created = 0
    for workflow in workflows:
        triggering = [event for event in events if event.type == workflow.trigger_event]
        created += enroll_from_events(workflow, triggering, now, cycles=cycles)
    return created


def enroll_from_events(workflow: Workflow, events: list[Event], now: datetime, *, cycles: CycleTable | None = None) -> int:
    """Enroll the contacts of the events that pass the workflow's trigger filter.

    ``cycles`` fills in the cycle_days of order lines. A workflow whose first step waits for them
    enrolls only orders that have a cycle.
    """
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
            context=trigger_context(event, cycles),
            trigger_event_id=event.pk,
        )
        for event in sorted(events, key=lambda item: (item.occurred_at, item.pk))
    ]
    if cycles is not None and candidates and starts_with_cycle_wait(workflow):
        with_cycle = [candidate for candidate in candidates if order_has_cycle(candidate.context)]
        if len(with_cycle) < len(candidates):
            logger.info(
                "workflow %s: %s orders without a product with a replenishment cycle not enrolled",
                workflow.pk,
                len(candidates) - len(with_cycle),
            )
        candidates = with_cycle
        end_reordered(workflow, candidates, cycles, now)

    restarted = restart_changed(workflow, candidates, now) if workflow.restart_on_change else set()
    return enroll(workflow, candidates, now, restarted=restarted)


def end_reordered(workflow: Workflow, candidates: list[Candidate], cycles: CycleTable, now: datetime) -> int:
    """Exit the active enrollments whose order shares a product with a newer order of the same contact.

    A reorder of the product starts its own countdown, and an order of something else leaves the
    running one alone. Return how many enrollments were exited.
    """
    # exits imports this module for goal hand-offs, so the exit helper is imported here.
    from workflows.engine.exits import exit_enrollments

    newest: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        newest.setdefault(candidate.contact_id, []).append(candidate)
    active = Enrollment.objects.filter(workflow=workflow, state=Enrollment.State.ACTIVE, contact_id__in=list(newest))
    reordered = []
    for enrollment in active:
        products = cycles.products_in(enrollment.context or {})
        for candidate in newest[enrollment.contact_id]:
            if candidate.enrolled_at > enrollment.enrolled_at and products & cycles.products_in(candidate.context):
                reordered.append(enrollment)
                break
    if reordered:
        exit_enrollments(reordered, "reordered", now)
        logger.info("workflow %s: %s enrollments ended by a reorder of their product", workflow.pk, len(reordered))
    return len(reordered)


def restart_changed(workflow: Workflow, candidates: list[Candidate], now: datetime) -> set[tuple[int, str]]:
    """Exit the active enrollments whose trigger property differs from a newer candidate's; return their (contact, key).

    Of several candidates for one contact and key, the latest decides, and it is moved to the end
    of ``candidates`` so that it is the one enrolled.
    """
    # exits imports this module for goal hand-offs, so the exit helper is imported here.
    from workflows.engine.exits import exit_enrollments

    name = workflow.restart_on_change
    latest: dict[tuple[int, str], Candidate] = {}
    for candidate in candidates:
        if str(candidate.context.get(name) or ""):
            latest[(candidate.contact_id, candidate.key)] = candidate

    active = Enrollment.objects.filter(
        workflow=workflow, state=Enrollment.State.ACTIVE, contact_id__in={contact_id for contact_id, _key in latest}
    )
    reasons: dict[str, list[Enrollment]] = {}
    restarted: set[tuple[int, str]] = set()
    for enrollment in active:
        candidate = latest.get((enrollment.contact_id, enrollment.key))
        if candidate is None or candidate.enrolled_at <= enrollment.enrolled_at:
            continue
        new_value = str(candidate.context.get(name))
        if str(enrollment.context.get(name) or "") == new_value:
            continue
        reasons.setdefault(f"restarted: {name} changed to {new_value}"[:200], []).append(enrollment)
        restarted.add((enrollment.contact_id, enrollment.key))

    for reason, enrollments in reasons.items():
        exit_enrollments(enrollments, reason, now)
    for pair in restarted:
        candidates.remove(latest[pair])
        candidates.append(latest[pair])
    if restarted:
        logger.info("workflow %s: %s enrollments restarted on a new %s", workflow.pk, len(restarted), name)
    return restarted


def enroll(
    workflow: Workflow, candidates: list[Candidate], now: datetime, *, restarted: set[tuple[int, str]] | None = None
) -> int:
    """Enroll the candidates the workflow's entry rule admits; return how many enrollments were created.

    Whatever the rule, a contact has at most one active enrollment per key. A (contact, key) pair
    in ``restarted`` has just left its enrollment for a restart, and its last candidate enrolls
    whatever the entry rule says.
    """
    if not candidates:
        return 0

    restarted = restarted or set()
    last_of_restart = {
        (candidate.contact_id, candidate.key): candidate
        for candidate in candidates
        if (candidate.contact_id, candidate.key) in restarted
    }
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
        pair = (candidate.contact_id, candidate.key)
        if pair in last_of_restart:
            # Only the newest trigger of a restart enrolls, past the entry rule.
            if last_of_restart[pair] is not candidate:
                continue
        elif candidate.contact_id in blocked_contacts or pair in blocked_keys:
            continue
        blocked_keys.add(pair)
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


def trigger_context(event: Event, cycles: CycleTable | None = None) -> dict:
    """Return the trigger data merge tags and conditions can use: the event's properties and key.

    With ``cycles``, an order's lines without cycle_days get them from the replenishment table.
    """
    context = {
        **event.properties,
        "event_type": event.type,
        "key": event.key,
        "value": str(event.value) if event.value is not None else "",
    }
    if cycles is not None and event.type in ORDER_EVENT_TYPES:
        context = cycles.apply(context)
    return context
