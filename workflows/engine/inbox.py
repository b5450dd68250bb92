"""The inbox: process stored events in arrival order.

Each batch updates contact facts and lead scores, counts goals, applies exit conditions and then matches triggers,
all in one transaction with marking the events processed; a crash leaves the batch pending.
"""

import logging
from datetime import datetime

from django.db import connection, transaction

from contacts import facts, scoring
from contacts.models import Event
from workflows.engine import enroll, exits, waits

logger = logging.getLogger(__name__)


def process_batch(now: datetime, limit: int = 1000) -> int:
    """Process up to ``limit`` pending events received by ``now``; return how many."""
    with transaction.atomic():
        pending = Event.objects.filter(processed_at__isnull=True, received_at__lte=now).order_by("received_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            pending = pending.select_for_update(skip_locked=True, of=("self",))
        events = list(pending.select_related("contact")[:limit])
        if not events:
            return 0
        events.sort(key=lambda event: (event.occurred_at, event.pk))

        facts.apply_events(events)
        scoring.apply_rules(events)
        exits.check_goals(events, now)
        exits.exit_on_events(events, now)
        enroll.match_triggers(events, now)
        waits.wake_waiting(events, now)
        Event.objects.filter(pk__in=[event.pk for event in events]).update(processed_at=now)

    logger.info("processed %s events", len(events))
    return len(events)


def process_pending(now: datetime, *, limit: int = 1000, max_batches: int = 50) -> int:
    total = 0
    for _ in range(max_batches):
        handled = process_batch(now, limit)
        total += handled
        if handled < limit:
            break
    return total
