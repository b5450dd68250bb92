"""Signal receivers that keep the outbox in step with consent."""

import logging
from datetime import datetime
from typing import Any

from campaigns.models import Delivery

logger = logging.getLogger(__name__)


def cancel_on_withdrawn_consent(sender: Any, contact_ids: list[int], channel: str, at: datetime, **kwargs: Any) -> None:
    """Cancel queued promotional deliveries on the channel; transactional ones still go.

    A delivery already being sent is left to dispatch, which re-reads consent just before sending.
    """
    cancelled = Delivery.objects.filter(
        contact_id__in=contact_ids, channel=channel, transactional=False, status=Delivery.Status.QUEUED
    ).update(status=Delivery.Status.CANCELLED, error=f"unsubscribed from {channel}")
    if cancelled:
        logger.info(
            "contacts %s: %s queued %s deliveries cancelled after consent was withdrawn", contact_ids[:10], cancelled, channel
        )
