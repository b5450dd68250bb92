"""Double opt-in for email sign-ups: consent stays pending until the contact confirms through a signed link.

With MKTAUTO_DOUBLE_OPT_IN on, a sign-up calls request_confirmation(), which sets email consent to
PENDING and queues the confirmation email. That email is the message template whose purpose is
confirmation, and a default one is created on first use. Its link leads to a page whose button
POSTs, so a link scanner that fetches every URL confirms nothing. The POST sets SUBSCRIBED with the
request as proof.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from campaigns.models import Delivery, MessageTemplate
from contacts.consent import set_consent
from contacts.models import Channel, ConsentStatus, Contact

logger = logging.getLogger(__name__)

CONFIRM_SALT = "mktauto.confirm"
DEFAULT_MAX_AGE_DAYS = 7


class InvalidConfirmation(signing.BadSignature):
    """A confirmation token that was changed, expired, or names an address the contact no longer has."""


def double_opt_in() -> bool:
    return bool(getattr(settings, "MKTAUTO_DOUBLE_OPT_IN", False))


def max_age() -> timedelta:
    return timedelta(days=getattr(settings, "MKTAUTO_CONFIRMATION_MAX_AGE_DAYS", DEFAULT_MAX_AGE_DAYS))


def confirmation_token(contact: Contact) -> str:
    # The address is signed too, so a link sent to an old address cannot confirm a new one.
    return signing.dumps([contact.pk, contact.email or ""], salt=CONFIRM_SALT)


def confirmation_url(contact: Contact) -> str:
    return settings.MKTAUTO_BASE_URL + reverse("campaigns:confirm", args=[confirmation_token(contact)])


def read_confirmation_token(token: str) -> Contact:
    """Return the contact a valid, unexpired token names; InvalidConfirmation otherwise."""
    try:
        payload = signing.loads(token, salt=CONFIRM_SALT, max_age=max_age())
    except signing.SignatureExpired:
        raise InvalidConfirmation(f"confirmation token {token[:40]!r} is older than {max_age().days} days") from None
    except signing.BadSignature:
        raise InvalidConfirmation(f"bad confirmation token {token[:40]!r}") from None
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], int)):
        raise InvalidConfirmation(f"confirmation token {token[:40]!r} contains no contact and address")
    contact = Contact.objects.filter(pk=payload[0]).first()
    if contact is None or (contact.email or "") != payload[1]:
        raise InvalidConfirmation(f"confirmation token {token[:40]!r} names an address contact {payload[0]} no longer has")
    return contact


def confirmation_template() -> MessageTemplate:
    """Return the confirmation email template, creating the default one (in the site language) when there is none."""
    template = MessageTemplate.objects.filter(purpose=MessageTemplate.Purpose.CONFIRMATION).order_by("pk").first()
    if template is not None:
        return template
    template, _created = MessageTemplate.objects.get_or_create(
        name=gettext("Confirm your subscription"),
        defaults={
            "purpose": MessageTemplate.Purpose.CONFIRMATION,
            "transactional": True,
            "subject": gettext("Please confirm your subscription to {{ shop_name }}"),
            "body": gettext(
                "Hi {{ first_name|default:'there' }},\n\nPlease confirm that you want to receive our emails. "
                "If you did not sign up, ignore this email and you will hear nothing more from us."
            ),
            "cta_text": gettext("Yes, subscribe me"),
            "cta_url": "{{ confirmation_url }}",
        },
    )
    return template


def request_confirmation(
    contact: Contact, *, source: str = "sign-up", proof: str = "", at: datetime | None = None
) -> Delivery | None:
    """Set email consent to pending and queue the confirmation email; return the delivery, or None when none is needed.

    None when the contact has no address, is already subscribed, is suppressed, or already has a
    confirmation email waiting to be sent.
    """
    at = at or timezone.now()
    if not contact.email or contact.email_suppressed_at is not None:
        return None
    if contact.email_consent == ConsentStatus.SUBSCRIBED:
        return None

    template = confirmation_template()
    with transaction.atomic():
        set_consent(contact, Channel.EMAIL, ConsentStatus.PENDING, source=source, proof=proof, at=at)
        waiting = Delivery.objects.filter(contact=contact, template=template, status=Delivery.Status.QUEUED).exists()
        if waiting:
            return None
        delivery = Delivery.objects.create(
            contact=contact,
            template=template,
            channel=Channel.EMAIL,
            transactional=True,
            status=Delivery.Status.QUEUED,
            next_attempt_at=at,
            created_at=at,
        )
    logger.info("contact %s: confirmation email queued as delivery %s", contact.pk, delivery.pk)
    return delivery


def confirm(contact: Contact, *, proof: str, at: datetime | None = None) -> bool:
    """Subscribe a contact whose email consent is pending; return False when it was not pending.

    A contact who unsubscribed after signing up is not subscribed again by an old link.
    """
    with transaction.atomic():
        # Checked under the row lock that set_consent takes too, so an unsubscribe cannot slip in between.
        current = Contact.objects.select_for_update().filter(pk=contact.pk).values_list("email_consent", flat=True).first()
        if current != ConsentStatus.PENDING:
            return False
        changed = set_consent(contact, Channel.EMAIL, ConsentStatus.SUBSCRIBED, source="double opt-in", proof=proof, at=at)
    logger.info("contact %s confirmed email subscription (changed: %s)", contact.pk, changed)
    return changed
