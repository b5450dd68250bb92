"""Wait steps: a duration, until a local weekday and time, until an event (with a timeout), or days from data.

Days are calendar days in the contact's time zone. A one-day wait from 09:00 on the Saturday
before a daylight-saving change therefore ends at 09:00 local time on Sunday. Hours and minutes
are exact durations.
"""

import logging
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import OuterRef

from contacts import conditions
from contacts.models import Contact, Event
from workflows.engine.batch import Batch, Run
from workflows.engine.localtime import at_local, zone
from workflows.models import Enrollment, Step, StepLog, Workflow

logger = logging.getLogger(__name__)

CHUNK = 5000
# A search for the next matching weekday never needs more than a week and a day.
MAX_DAYS_AHEAD = 8


def run_wait(batch: Batch, step: Step, runs: list[Run]) -> None:
    HANDLERS[step.wait_mode](batch, step, runs)


def contact_zones(runs: list[Run]) -> dict[int, str]:
    contact_ids = sorted({run.contact_id for run in runs})
    zones: dict[int, str] = {}
    for start in range(0, len(contact_ids), CHUNK):
        zones.update(Contact.objects.filter(pk__in=contact_ids[start : start + CHUNK]).values_list("pk", "time_zone"))
    return zones


def after(start: datetime, days: int, exact: timedelta, zone_name: str | None) -> datetime:
    """Return ``start`` plus calendar ``days`` at the same local wall time, plus an exact duration."""
    if days:
        local = start.astimezone(zone(zone_name)).replace(tzinfo=None) + timedelta(days=days)
        start = at_local(local.date(), local.time(), zone_name)
    return start + exact


def exact_part(step: Step) -> timedelta:
    return timedelta(hours=step.wait_hours, minutes=step.wait_minutes)


def wait_duration(batch: Batch, step: Step, runs: list[Run]) -> None:
    if not step.wait_days:
        # No calendar days: the same instant for everyone, without reading time zones.
        until = batch.now + exact_part(step)
        reason = f"until {until.isoformat()}"
        for run in runs:
            batch.log(run, step, StepLog.Outcome.WAITED, reason)
            batch.advance(run, step, until)
        return

    zones = contact_zones(runs)
    per_zone: dict[str | None, datetime] = {}
    for run in runs:
        zone_name = zones.get(run.contact_id) or None
        if zone_name not in per_zone:
            per_zone[zone_name] = after(batch.now, step.wait_days, exact_part(step), zone_name)
        until = per_zone[zone_name]
        batch.log(run, step, StepLog.Outcome.WAITED, f"until {until.isoformat()}")
        batch.advance(run, step, until)


def next_local_time(now: datetime, step: Step, zone_name: str | None) -> datetime:
    local_day = now.astimezone(zone(zone_name)).date()
    for offset in range(MAX_DAYS_AHEAD):
        day = local_day + timedelta(days=offset)
        if step.wait_weekday is not None and day.weekday() != step.wait_weekday:
            continue
        candidate = at_local(day, step.wait_time, zone_name)
        if candidate >= now:
            return candidate
    raise ValueError(f"step {step.pk}: no {step.wait_time} on weekday {step.wait_weekday} within {MAX_DAYS_AHEAD} days")


def wait_until_time(batch: Batch, step: Step, runs: list[Run]) -> None:
    zones = contact_zones(runs)
    per_zone: dict[str | None, datetime] = {}
    for run in runs:
        zone_name = zones.get(run.contact_id) or None
        if zone_name not in per_zone:
            per_zone[zone_name] = next_local_time(batch.now, step, zone_name)
        until = per_zone[zone_name]
        batch.log(run, step, StepLog.Outcome.WAITED, f"until {until.isoformat()}")
        batch.advance(run, step, until)


def event_happened(step: Step, now: datetime):
    """Return a Q over enrollments: the step's event happened since each one's waiting_since."""
    tree = {"event": step.wait_event, "since": "enrollment", "same_key": step.wait_same_key}
    return conditions.compile(tree, since=OuterRef("waiting_since"), key=OuterRef("key"), now=now, contact_path="contact__")


def wait_for_event(batch: Batch, step: Step, runs: list[Run]) -> None:
    starting = [run for run in runs if run.waiting_since is None]
    resumed = [run for run in runs if run.waiting_since is not None]

    zones = contact_zones(starting) if step.wait_days and starting else {}
    for run in starting:
        timeout = after(batch.now, step.wait_days, exact_part(step), zones.get(run.contact_id) or None)
        batch.log(run, step, StepLog.Outcome.WAITED, f"for {step.wait_event} until {timeout.isoformat()}")
        batch.hold(run, timeout, batch.now)

    if not resumed:
        return
    happened: set[int] = set()
    ids = [run.id for run in resumed]
    compiled = event_happened(step, batch.now)
    for start in range(0, len(ids), CHUNK):
        happened.update(
            Enrollment.objects.filter(pk__in=ids[start : start + CHUNK]).filter(compiled).values_list("pk", flat=True)
        )
    for run in resumed:
        if run.id in happened:
            batch.log(run, step, StepLog.Outcome.BRANCHED, f"{step.wait_event} happened -> {step.if_true}")
            batch.go_to(run, step, step.if_true)
        else:
            batch.log(run, step, StepLog.Outcome.BRANCHED, f"no {step.wait_event} before the timeout -> {step.if_false}")
            batch.go_to(run, step, step.if_false)


def days_at(path: str, context: dict[str, Any], attributes: dict[str, Any]) -> Decimal | None:
    """Read a number of days at ``path``; over a list (line items) the shortest value counts."""
    source, _dot, rest = path.partition(".")
    values: list[Any] = [context if source == "trigger" else attributes]
    for part in rest.split("."):
        found = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            found.extend(item.get(part) for item in items if isinstance(item, dict) and item.get(part) is not None)
        values = found
    numbers = []
    for value in values:
        try:
            numbers.append(Decimal(str(value)))
        except (InvalidOperation, ValueError):
            continue
    return min(numbers) if numbers else None


def enrollment_data(runs: list[Run]) -> dict[int, tuple[dict, dict, str]]:
    """Return each run's trigger data, contact attributes and time zone, in one query per chunk."""
    ids = [run.id for run in runs]
    rows: dict[int, tuple[dict, dict, str]] = {}
    for start in range(0, len(ids), CHUNK):
        for pk, context, attributes, zone_name in Enrollment.objects.filter(pk__in=ids[start : start + CHUNK]).values_list(
            "pk", "context", "contact__attributes", "contact__time_zone"
        ):
            rows[pk] = (context or {}, attributes or {}, zone_name)
    return rows


def wait_from_data(batch: Batch, step: Step, runs: list[Run]) -> None:
    rows = enrollment_data(runs)

    for run in runs:
        context, attributes, zone_name = rows.get(run.id, ({}, {}, ""))
        days = days_at(step.wait_data_path, context, attributes)
        if days is None:
            batch.log(run, step, StepLog.Outcome.WAITED, f"no days at {step.wait_data_path}, continued at once")
            batch.advance(run, step, batch.now)
            continue
        # A 30-day supply with "minus 7 days" is reminded on day 23; a result below zero means now.
        remaining = max(int(days) - step.wait_days, 0)
        until = after(batch.now, remaining, exact_part(step), zone_name or None)
        batch.log(run, step, StepLog.Outcome.WAITED, f"{days} days from data minus {step.wait_days}: until {until.isoformat()}")
        batch.advance(run, step, until)


def value_at(path: str, context: dict[str, Any], attributes: dict[str, Any]) -> Any:
    source, _dot, rest = path.partition(".")
    value: Any = context if source == "trigger" else attributes
    for part in rest.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def wait_until_date(batch: Batch, step: Step, runs: list[Run]) -> None:
    rows = enrollment_data(runs)
    moment = step.wait_time or time(9, 0)
    for run in runs:
        context, attributes, zone_name = rows.get(run.id, ({}, {}, ""))
        day = parse_day(value_at(step.wait_data_path, context, attributes))
        if day is None:
            batch.log(run, step, StepLog.Outcome.WAITED, f"no date at {step.wait_data_path}, continued at once")
            batch.advance(run, step, batch.now)
            continue
        # A date already past continues at once rather than waiting for next year.
        until = max(at_local(day, moment, zone_name or None), batch.now)
        batch.log(run, step, StepLog.Outcome.WAITED, f"until {until.isoformat()}")
        batch.advance(run, step, until)


def parse_day(value: Any) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


HANDLERS = {
    Step.WaitMode.UNTIL_DATE: wait_until_date,
    Step.WaitMode.DURATION: wait_duration,
    Step.WaitMode.UNTIL_TIME: wait_until_time,
    Step.WaitMode.UNTIL_EVENT: wait_for_event,
    Step.WaitMode.FROM_DATA: wait_from_data,
}


def wake_waiting(events: list[Event], now: datetime) -> int:
    """Make enrollments waiting for one of these events due now, when the event came after their wait began."""
    by_type: dict[str, set[int]] = defaultdict(set)
    for event in events:
        by_type[event.type].add(event.contact_id)
    steps = Step.objects.filter(
        kind=Step.Kind.WAIT,
        wait_mode=Step.WaitMode.UNTIL_EVENT,
        wait_event__in=list(by_type),
        workflow__status__in=(Workflow.Status.LIVE, Workflow.Status.PAUSED),
    )
    woken = 0
    for step in steps:
        woken += (
            Enrollment.objects.filter(
                step=step,
                state=Enrollment.State.ACTIVE,
                waiting_since__isnull=False,
                next_run_at__gt=now,
                contact_id__in=by_type[step.wait_event],
            )
            .filter(event_happened(step, now))
            .update(next_run_at=now)
        )
    if woken:
        logger.info("%s enrollments woken by the events they waited for", woken)
    return woken
