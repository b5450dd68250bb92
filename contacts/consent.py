"""Consent changes: an append-only record plus the contact's current status, in one place."""

import logging
from datetime import datetime

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from contacts.models import Channel, ConsentRecord, ConsentStatus, Contact

logger = logging.getLogger(__name__)

# Sent inside the transaction that withdraws consent, with contact_ids, channel and at. Receivers in
# the workflow and campaign apps exit promotional enrollments and cancel queued promotional
# deliveries, so an unsubscribe takes effect everywhere before the transaction commits.
consent_withdrawn = Signal()

STATUS_FIELDS = {
    Channel.EMAIL: "email_consent",
    Channel.SMS: "sms_consent",
    Channel.WHATSAPP: "whatsapp_consent",
}


def set_consent(
    contact: Contact,
    channel: str,
    status: str,
    *,
    source: str,
    proof: str = "",
    at: datetime | None = None,
) -> bool:
    """Record a consent change and update the contact; return False when the status was already so."""
    at = at or timezone.now()
    field = STATUS_FIELDS[Channel(channel)]
    if getattr(contact, field) == status:
        return False

    with transaction.atomic():
        ConsentRecord.objects.create(contact=contact, channel=channel, status=status, source=source, proof=proof, occurred_at=at)
        setattr(contact, field, status)
        contact.save(update_fields=[field, "updated_at"])
        if status == ConsentStatus.UNSUBSCRIBED:
            consent_withdrawn.send(sender=Contact, contact_ids=[contact.pk], channel=channel, at=at)

    logger.info("contact %s %s consent set to %s by %s", contact.pk, channel, status, source)
    return True


def suppress_email(contact: Contact, reason: str, *, at: datetime | None = None) -> None:
    """Stop all email to a contact after a hard bounce or complaint."""
    at = at or timezone.now()
    if contact.email_suppressed_at is not None:
        return
    with transaction.atomic():
        contact.email_suppressed_at = at
        contact.email_suppressed_reason = reason[:200]
        contact.save(update_fields=["email_suppressed_at", "email_suppressed_reason", "updated_at"])
        consent_withdrawn.send(sender=Contact, contact_ids=[contact.pk], channel=Channel.EMAIL, at=at)
    logger.warning("contact %s email suppressed: %s", contact.pk, reason)
