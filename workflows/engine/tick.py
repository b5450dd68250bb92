"""One tick of the engine: process the inbox, fire scheduled triggers, advance due enrollments, dispatch."""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from campaigns.dispatch import dispatch_all
from workflows.engine.advance import advance_due
from workflows.engine.inbox import process_pending
from workflows.engine.scheduled import fire_scheduled_triggers

logger = logging.getLogger(__name__)


@dataclass
class TickResult:
    events: int
    triggered: int
    advanced: int
    dispatched: int


def tick(now: datetime | None = None, *, dispatch: bool = True) -> TickResult:
    now = now or timezone.now()
    events = process_pending(now)
    triggered = fire_scheduled_triggers(now)
    advanced = advance_due(now)
    dispatched = dispatch_all(now) if dispatch else 0
    result = TickResult(events=events, triggered=triggered, advanced=advanced, dispatched=dispatched)
    logger.info(
        "tick at %s: %s events, %s enrolled by scheduled triggers, %s enrollments advanced, %s deliveries dispatched",
        now.isoformat(),
        result.events,
        result.triggered,
        result.advanced,
        result.dispatched,
    )
    return result
