"""Signal receivers that keep the outbox in step with consent and sign-ups."""

import logging
from datetime import datetime
from typing import Any

from campaigns import confirmation
from campaigns.models import Delivery
from contacts.models import Contact

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


def request_confirmation_on_sign_up(sender: Any, contact: Contact, source: str, proof: str, at: datetime, **kwargs: Any) -> None:
    """Queue the double opt-in email for a sign-up whose email consent the inbox left waiting for confirmation."""
    confirmation.request_confirmation(contact, source=source, proof=proof, at=at)
