"""One tick of the engine: process the inbox, then advance due enrollments, then dispatch."""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from campaigns.dispatch import dispatch_all
from workflows.engine.advance import advance_due
from workflows.engine.inbox import process_pending

logger = logging.getLogger(__name__)


@dataclass
class TickResult:
    events: int
    advanced: int
    dispatched: int


def tick(now: datetime | None = None, *, dispatch: bool = True) -> TickResult:
    now = now or timezone.now()
    result = TickResult(events=process_pending(now), advanced=advance_due(now), dispatched=dispatch_all(now) if dispatch else 0)
    logger.info(
        "tick at %s: %s events, %s enrollments advanced, %s deliveries dispatched",
        now.isoformat(),
        result.events,
        result.advanced,
        result.dispatched,
    )
    return result
