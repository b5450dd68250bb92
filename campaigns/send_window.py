"""Holds at send time: rules that make a due message wait instead of going out now.

The sending policy, quiet hours among it, lives in the workflows app, which campaigns may not
import. Workflows registers its check here when Django starts, and dispatch calls every
registered check once per message.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from campaigns.models import Delivery

logger = logging.getLogger(__name__)

# A check returns when the delivery may go, or None when it may go now.
Hold = Callable[[Delivery, datetime], datetime | None]
# A factory reads its rules once and returns the check for one dispatch batch.
HoldFactory = Callable[[], Hold]

factories: list[HoldFactory] = []


def register(factory: HoldFactory) -> None:
    """Add a check factory; registering the same one twice keeps one."""
    if factory not in factories:
        factories.append(factory)


def batch_hold() -> Hold:
    """Return one check for a dispatch batch: the latest time until which any registered check delays a delivery."""
    checks = [factory() for factory in factories]

    def hold(delivery: Delivery, now: datetime) -> datetime | None:
        until = [moment for moment in (check(delivery, now) for check in checks) if moment is not None]
        return max(until) if until else None

    return hold
