"""Building the email of one delivery: rendered parts, Message-ID, unsubscribe headers, ESP metadata."""

import logging
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from campaigns import confirmation, tracking
from campaigns.models import Delivery, MessageTemplate
from campaigns.rendering import render_email

logger = logging.getLogger(__name__)


def list_unsubscribe_header(delivery: Delivery, url: str) -> str:
    """Return the List-Unsubscribe value (RFC 2369): the https URL, and a mailto: form when MKTAUTO_UNSUBSCRIBE_MAILTO is set."""
    value = f"<{url}>"
    mailbox = getattr(settings, "MKTAUTO_UNSUBSCRIBE_MAILTO", "")
    if mailbox:
        # The token in the subject identifies the contact and channel for the process that reads that mailbox.
        subject = quote(f"unsubscribe {tracking.unsubscribe_token(delivery)}")
        value += f", <mailto:{mailbox}?subject={subject}>"
    return value


def message_id(delivery: Delivery) -> str:
    domain = urlsplit(settings.MKTAUTO_BASE_URL).hostname or "localhost"
    # One Message-ID per delivery, the same on every retry, so a receiver can drop a repeat.
    return f"<delivery.{delivery.pk}@{domain}>"


def build_message(delivery: Delivery, conn: Any) -> EmailMultiAlternatives:
    template = delivery.template
    trigger = delivery.enrollment.context if delivery.enrollment_id else None
    if template.purpose == MessageTemplate.Purpose.CONFIRMATION:
        # The confirmation link itself is not tracked: a click on it is the consent, not engagement.
        rendered = render_email(
            template,
            delivery.contact,
            trigger=trigger,
            extra_context={**delivery.workflow_context(), "confirmation_url": confirmation.confirmation_url(delivery.contact)},
        )
        unsubscribe = ""
    else:
        unsubscribe = "" if delivery.transactional else tracking.unsubscribe_url(delivery)
        rendered = render_email(
            template,
            delivery.contact,
            trigger=trigger,
            unsubscribe_url=unsubscribe,
            preferences_url=tracking.preferences_url(delivery) if unsubscribe else "",
            open_pixel_url=tracking.open_pixel_url(delivery),
            track_link=lambda url: tracking.click_url(delivery, url),
            extra_context=delivery.workflow_context(),
        )

    headers = {"Message-ID": message_id(delivery)}
    if unsubscribe:
        # RFC 8058 one-click unsubscribe: mail clients POST "List-Unsubscribe=One-Click" to the URL.
        headers["List-Unsubscribe"] = list_unsubscribe_header(delivery, unsubscribe)
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=template.from_email or settings.DEFAULT_FROM_EMAIL,
        to=[delivery.contact.email],
        headers=headers,
        connection=conn,
    )
    message.attach_alternative(rendered.html, "text/html")
    # django-anymail sends metadata along (Brevo: the X-Mailin-custom header) and returns it in every
    # tracking webhook, so an event finds its delivery even when the ESP replaced our Message-ID.
    # Other email backends ignore the attribute.
    message.metadata = {"delivery_id": str(delivery.pk)}
    return message
