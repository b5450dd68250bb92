"""Triggers the tick fires by itself: contact dates, inactivity, cron schedules and condition changes.

Each fires once per occurrence, and the occurrence is the enrollment's key: the year of a
birthday, the last order of a lapse, the time of a scheduled run, or the moment a condition
started to match. A key already used in the workflow, in any state, is not used again.
"""

import logging
from datetime import date, datetime, time, timedelta

from croniter import croniter
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q

from contacts import conditions
from contacts.models import Contact, Event
from workflows.engine.enroll import Candidate, enroll
from workflows.engine.localtime import local_now, zone
from workflows.models import Enrollment, TriggerState, Workflow

logger = logging.getLogger(__name__)

DEFAULT_TRIGGER_TIME = time(9, 0)
# Contact columns a date trigger reads; any other name is a custom attribute holding YYYY-MM-DD.
CONTACT_DATE_FIELDS = ("created_at", "first_order_at", "vip_since")


def fire_scheduled_triggers(now: datetime) -> int:
    """Fire every live workflow's non-event trigger; return how many enrollments were created."""
    created = 0
    for workflow in Workflow.objects.filter(status=Workflow.Status.LIVE).exclude(trigger_type=Workflow.TriggerType.EVENT):
        try:
            with transaction.atomic():
                created += HANDLERS[workflow.trigger_type](workflow, now)
        except Exception:
            # One misconfigured workflow (a condition naming a deleted segment) must not stop the others.
            logger.exception("workflow %s: %s trigger failed", workflow.pk, workflow.trigger_type)
    return created


def audience(workflow: Workflow, now: datetime) -> Q:
    return conditions.compile(workflow.trigger_filter, now=now) if workflow.trigger_filter else Q()


def unused(workflow: Workflow, candidates: list[Candidate]) -> list[Candidate]:
    """Drop candidates whose occurrence key the workflow already used for that contact."""
    keys = {candidate.key for candidate in candidates}
    used = set(
        Enrollment.objects.filter(workflow=workflow, key__in=keys, contact_id__in={c.contact_id for c in candidates}).values_list(
            "contact_id", "key"
        )
    )
    return [candidate for candidate in candidates if (candidate.contact_id, candidate.key) not in used]


def anniversary(original: date, year: int) -> date:
    """Return the date's anniversary in ``year``; 29 February falls on 28 February in other years."""
    if original.month == 2 and original.day == 29:
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)
    return original.replace(year=year)


def parse_date(value) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def fire_date(workflow: Workflow, now: datetime) -> int:
    field = workflow.trigger_date_field
    offset = timedelta(days=workflow.trigger_offset_days)
    moment = workflow.trigger_time or DEFAULT_TRIGGER_TIME

    # Contacts' local dates lie within a day of UTC's. The query looks for original dates whose
    # anniversary minus the offset is one of those days; each contact's own zone then decides.
    month_days = {((now + timedelta(days=shift)).date() - offset).timetuple()[1:3] for shift in (-1, 0, 1)}
    if (2, 28) in month_days:
        month_days.add((2, 29))
    if field in CONTACT_DATE_FIELDS:
        match = Q()
        for month, day in month_days:
            match |= Q(**{f"{field}__month": month, f"{field}__day": day})
        rows = Contact.objects.filter(match).filter(audience(workflow, now)).values_list("pk", field, "time_zone")
    else:
        match = Q()
        for month, day in month_days:
            match |= Q(**{f"attributes__{field}__endswith": f"-{month:02d}-{day:02d}"})
        rows = (
            Contact.objects.filter(match).filter(audience(workflow, now)).values_list("pk", f"attributes__{field}", "time_zone")
        )

    candidates = []
    for contact_id, raw, zone_name in rows:
        original = parse_date(raw)
        if original is None:
            continue
        local = local_now(now, zone_name)
        occurrence = anniversary(original, (local.date() - offset).year)
        if occurrence + offset != local.date() or local.time() < moment:
            continue
        candidates.append(
            Candidate(
                contact_id=contact_id, key=f"{field}:{occurrence.year}", enrolled_at=now, context={"date": original.isoformat()}
            )
        )
    return enroll(workflow, unused(workflow, candidates), now)


def fire_inactivity(workflow: Workflow, now: datetime) -> int:
    boundary = now - timedelta(days=workflow.trigger_days)
    if workflow.trigger_event == "order_placed":
        lapsed = (
            Contact.objects.filter(last_order_at__lt=boundary).filter(audience(workflow, now)).values_list("pk", "last_order_at")
        )
    else:
        lapsed = (
            Event.objects.filter(type=workflow.trigger_event, contact__in=Contact.objects.filter(audience(workflow, now)))
            .values("contact_id")
            .annotate(last=Max("occurred_at"))
            .filter(last__lt=boundary)
            .values_list("contact_id", "last")
        )
    # The key is the last event before the lapse, so the lapse fires once; a new purchase and a new
    # lapse make a new key.
    candidates = [
        Candidate(
            contact_id=contact_id, key=f"lapse:{last.isoformat()}", enrolled_at=now, context={"last_event_at": last.isoformat()}
        )
        for contact_id, last in lapsed
    ]
    return enroll(workflow, unused(workflow, candidates), now)


def claim_run(workflow: Workflow, now: datetime) -> bool:
    """Record ``now`` as the workflow's last check; False when another worker checked it meanwhile."""
    # Conditional update on the value this worker read: of two clusters, only one wins the run.
    return bool(
        Workflow.objects.filter(pk=workflow.pk, last_scheduled_at=workflow.last_scheduled_at).update(last_scheduled_at=now)
    )


def fire_schedule(workflow: Workflow, now: datetime) -> int:
    previous = workflow.last_scheduled_at
    if not claim_run(workflow, now) or previous is None:
        # The first check after activation sets the baseline: runs before it are not replayed.
        return 0
    tz = zone(settings.MKTAUTO_TIME_ZONE)
    due = croniter(workflow.trigger_cron, previous.astimezone(tz)).get_next(datetime)
    if due > now:
        return 0
    # Only the latest missed run fires, so an outage never replays a burst of runs.
    latest = due
    while True:
        following = croniter(workflow.trigger_cron, latest).get_next(datetime)
        if following > now:
            break
        latest = following

    contact_ids = Contact.objects.filter(audience(workflow, now)).values_list("pk", flat=True)
    key = f"run:{latest.isoformat()}"
    candidates = [Candidate(contact_id=contact_id, key=key, enrolled_at=now) for contact_id in contact_ids]
    return enroll(workflow, unused(workflow, candidates), now)


def fire_condition_change(workflow: Workflow, now: datetime) -> int:
    previous = workflow.last_scheduled_at
    if not claim_run(workflow, now):
        return 0

    matching = set(Contact.objects.filter(audience(workflow, now)).values_list("pk", flat=True))
    stored = set(TriggerState.objects.filter(workflow=workflow).values_list("contact_id", flat=True))
    entered = matching - stored
    left = stored - matching
    TriggerState.objects.bulk_create(
        [TriggerState(workflow=workflow, contact_id=contact_id, matched_since=now) for contact_id in entered],
        batch_size=2000,
        ignore_conflicts=True,
    )
    TriggerState.objects.filter(workflow=workflow, contact_id__in=left).delete()

    if previous is None:
        # The first check after activation records who matches already; only later changes enroll.
        logger.info("workflow %s: baseline of %s matching contacts recorded", workflow.pk, len(entered))
        return 0
    changed = entered if workflow.trigger_type == Workflow.TriggerType.CONDITION_ENTERED else left
    candidates = [
        Candidate(contact_id=contact_id, key=f"changed:{now.isoformat()}", enrolled_at=now) for contact_id in sorted(changed)
    ]
    return enroll(workflow, candidates, now)


HANDLERS = {
    Workflow.TriggerType.DATE: fire_date,
    Workflow.TriggerType.INACTIVITY: fire_inactivity,
    Workflow.TriggerType.SCHEDULE: fire_schedule,
    Workflow.TriggerType.CONDITION_ENTERED: fire_condition_change,
    Workflow.TriggerType.CONDITION_LEFT: fire_condition_change,
}
