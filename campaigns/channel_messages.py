"""Building the SMS or WhatsApp message of one delivery, ready for a channel backend."""

import logging

from campaigns import short_links
from campaigns.channels.base import ChannelMessage
from campaigns.models import Delivery
from campaigns.sms import UCS2, render_sms
from campaigns.whatsapp import render_whatsapp
from contacts.models import Channel

logger = logging.getLogger(__name__)


def build_channel_message(delivery: Delivery) -> ChannelMessage:
    """Render the delivery for its channel; RenderError when the template cannot make a message for this contact."""
    contact = delivery.contact
    trigger = delivery.enrollment.context if delivery.enrollment_id else None
    reference = f"delivery-{delivery.pk}"

    if delivery.channel == Channel.SMS:
        rendered = render_sms(
            delivery.template,
            contact,
            trigger=trigger,
            shorten_link=lambda url: short_links.shorten(delivery, url),
            extra_context=delivery.workflow_context(),
        )
        return ChannelMessage(
            channel=Channel.SMS,
            to=contact.phone or "",
            text=rendered.text,
            unicode=rendered.count.encoding == UCS2,
            reference=reference,
            transactional=delivery.transactional,
        )

    rendered = render_whatsapp(delivery.template, contact, trigger=trigger, extra_context=delivery.workflow_context())
    return ChannelMessage(
        channel=Channel.WHATSAPP,
        to=contact.phone or "",
        template_name=rendered.template_name,
        language=rendered.language,
        parameters=rendered.parameters,
        provider_template_id=rendered.provider_template_id,
        reference=reference,
        transactional=delivery.transactional,
    )
