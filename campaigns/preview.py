"""Previewing a message as any contact, and sending a test of it to a staff member.

Neither creates a delivery, so nothing here reaches the metrics, the tracking or the contact's
timeline. Links are not tracked, and the unsubscribe, preference and confirmation links lead to
an example page, so a staff member who clicks them changes no one's consent.
"""

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import make_msgid
from django.core.validators import validate_email
from django.urls import reverse
from django.utils.translation import gettext

from campaigns.channels.base import ChannelMessage, get_backend
from campaigns.models import MessageTemplate
from campaigns.rendering import RenderedEmail, render_email
from campaigns.short_links import example_short_url
from campaigns.sms import UCS2, RenderedSms, render_sms
from campaigns.whatsapp import RenderedWhatsApp, render_whatsapp
from contacts.models import Channel, Contact, Event

logger = logging.getLogger(__name__)

# Events whose properties make the trigger data of the workflows that send carts, orders and products.
TRIGGER_EVENT_TYPES = ("checkout_started", "checkout_updated", "order_placed", "product_viewed", "product_added_to_cart")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass
class Preview:
    channel: str
    trigger: dict[str, Any]
    email: RenderedEmail | None = None
    sms: RenderedSms | None = None
    whatsapp: RenderedWhatsApp | None = None


def example_link_url() -> str:
    return settings.MKTAUTO_BASE_URL + reverse("campaigns:example_link")


def preview_trigger(template: MessageTemplate, contact: Contact) -> dict[str, Any]:
    """Return trigger data for the preview: the contact's latest enrollment in a workflow sending this template,
    else the properties of the contact's latest cart, order or product event, else nothing."""
    if contact.pk is None:
        return {}
    context = (
        contact.enrollments.filter(workflow__steps__template=template)
        .order_by("-enrolled_at", "-pk")
        .values_list("context", flat=True)
        .first()
    )
    if isinstance(context, dict):
        return context
    event = Event.objects.filter(contact=contact, type__in=TRIGGER_EVENT_TYPES).order_by("-occurred_at", "-pk").first()
    if event is None:
        return {}
    return {**event.properties, "event_type": event.type, "key": event.key}


def preview_workflow_context(template: MessageTemplate) -> dict[str, str]:
    """Return the merge data a workflow sending this template adds, from the first such workflow with a discount code."""
    code = (
        template.steps.exclude(workflow__discount_code="")
        .order_by("workflow_id")
        .values_list("workflow__discount_code", flat=True)
        .first()
    )
    return {"discount_code": code} if code else {}


def render_preview(template: MessageTemplate, contact: Contact, *, trigger: dict[str, Any] | None = None) -> Preview:
    """Render the template for the contact as its channel would send it; RenderError as dispatch would raise it."""
    trigger = preview_trigger(template, contact) if trigger is None else trigger
    preview = Preview(channel=template.channel, trigger=trigger)
    workflow_context = preview_workflow_context(template)
    if template.channel == Channel.SMS:
        preview.sms = render_sms(
            template, contact, trigger=trigger, shorten_link=lambda url: example_short_url(), extra_context=workflow_context
        )
    elif template.channel == Channel.WHATSAPP:
        preview.whatsapp = render_whatsapp(template, contact, trigger=trigger, extra_context=workflow_context)
    else:
        example = example_link_url()
        extra = dict(workflow_context)
        if template.purpose == MessageTemplate.Purpose.CONFIRMATION:
            extra["confirmation_url"] = example
        unsubscribe = "" if template.transactional else example
        preview.email = render_email(
            template,
            contact,
            trigger=trigger,
            unsubscribe_url=unsubscribe,
            preferences_url=unsubscribe,
            extra_context=extra,
        )
    return preview


def send_test(template: MessageTemplate, contact: Contact, to: str, *, requested_by: str = "") -> str:
    """Render the template for ``contact``, send it to ``to`` and return the message id.

    ``to`` is a staff email address, or for SMS and WhatsApp a phone number in E.164 form. The
    subject or text starts with [TEST]. ValueError names an address that does not fit the channel,
    and RenderError a template that cannot be rendered.
    """
    to = to.strip()
    preview = render_preview(template, contact)
    marker = gettext("[TEST]")

    if preview.email is not None:
        try:
            validate_email(to)
        except ValidationError:
            raise ValueError(f"{to!r} is not an email address; enter the address the test should go to") from None
        message = EmailMultiAlternatives(
            subject=f"{marker} {preview.email.subject}",
            body=preview.email.text,
            from_email=template.from_email or settings.DEFAULT_FROM_EMAIL,
            to=[to],
            headers={"Message-ID": make_msgid(domain="test.mktauto")},
            connection=get_connection(),
        )
        message.attach_alternative(preview.email.html, "text/html")
        message.send()
        logger.info("test of template %s for contact %s sent to %s by %s", template.pk, contact.pk, to, requested_by or "?")
        return message.extra_headers["Message-ID"]

    if not E164.match(to):
        raise ValueError(f"{to!r} is not a phone number in international form; enter it like +31612345678")
    if preview.sms is not None:
        # Sent with its links as written: the preview's example short links lead nowhere.
        sms = render_sms(template, contact, trigger=preview.trigger)
        text = f"{marker} {sms.text}"
        message = ChannelMessage(channel=Channel.SMS, to=to, text=text, unicode=sms.count.encoding == UCS2, transactional=True)
    else:
        assert preview.whatsapp is not None
        message = ChannelMessage(
            channel=Channel.WHATSAPP,
            to=to,
            template_name=preview.whatsapp.template_name,
            language=preview.whatsapp.language,
            parameters=preview.whatsapp.parameters,
            provider_template_id=preview.whatsapp.provider_template_id,
            transactional=True,
        )
    backend = get_backend(template.channel)
    backend.open()
    try:
        provider_id = backend.send(message)
    finally:
        backend.close()
    logger.info("test of template %s for contact %s sent to %s by %s", template.pk, contact.pk, to, requested_by or "?")
    return provider_id
