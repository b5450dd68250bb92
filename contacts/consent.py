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

# Sent with contact, source, proof and at when a sign-up asks for email and double opt-in is on;
# the campaigns app sends the confirmation email.
confirmation_requested = Signal()

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
    status = ConsentStatus(status)

    with transaction.atomic():
        # Compare with the stored status under a row lock (PostgreSQL; SQLite has one writer), not
        # with the caller's copy, which may be stale: two changes then never both see "changed".
        current = Contact.objects.select_for_update().filter(pk=contact.pk).values_list(field, flat=True).first()
        if current is None:
            raise Contact.DoesNotExist(f"contact {contact.pk} no longer exists")
        if current == status:
            setattr(contact, field, current)
            return False

        ConsentRecord.objects.create(contact=contact, channel=channel, status=status, source=source, proof=proof, occurred_at=at)
        setattr(contact, field, status)
        contact.save(update_fields=[field, "updated_at"])
        if status == ConsentStatus.UNSUBSCRIBED:
            consent_withdrawn.send(sender=Contact, contact_ids=[contact.pk], channel=channel, at=at)

    logger.info("contact %s %s consent set to %s by %s", contact.pk, channel, status, source)
    return True


def suppress_email(contact: Contact, reason: str, *, at: datetime | None = None) -> bool:
    """Stop all email to a contact after a hard bounce or complaint; return False when already suppressed."""
    at = at or timezone.now()
    with transaction.atomic():
        # A conditional update, so of two bounces arriving together only one suppresses and signals.
        changed = Contact.objects.filter(pk=contact.pk, email_suppressed_at__isnull=True).update(
            email_suppressed_at=at, email_suppressed_reason=reason[:200], updated_at=timezone.now()
        )
        if not changed:
            return False
        contact.email_suppressed_at = at
        contact.email_suppressed_reason = reason[:200]
        consent_withdrawn.send(sender=Contact, contact_ids=[contact.pk], channel=Channel.EMAIL, at=at)
    logger.warning("contact %s email suppressed: %s", contact.pk, reason)
    return True
