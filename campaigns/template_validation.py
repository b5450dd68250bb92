"""Channel rules for a message template, checked by MessageTemplate.clean() when staff save it."""

import logging
from collections.abc import Callable

from django.conf import settings
from django.utils.translation import gettext as _

from campaigns.models import MessageTemplate
from campaigns.rendering import RenderError, compile_merge
from campaigns.short_links import example_short_url
from campaigns.sms import render_sms
from campaigns.whatsapp import parameter_sources
from contacts.models import Channel, Contact

logger = logging.getLogger(__name__)


def sample_contact() -> Contact:
    """Return an unsaved contact with typical values, to measure a message before anyone receives it."""
    return Contact(
        first_name="Alexandra",
        last_name="Vermeulen",
        email="alexandra.vermeulen@example.com",
        phone="+31612345678",
        city="Amsterdam",
        language=settings.LANGUAGE_CODE,
    )


def channel_errors(template: MessageTemplate) -> dict[str, list[str]]:
    """Return the template's errors by field name; an empty dict when it can be saved.

    Merge-tag syntax of the email fields is left to the admin form, which reports it field by field.
    """
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if template.purpose == MessageTemplate.Purpose.CONFIRMATION:
        if template.channel != Channel.EMAIL:
            add("channel", _("A double opt-in confirmation is an email; choose the email channel."))
        if "confirmation_url" not in template.body + template.cta_url:
            add("cta_url", _("Put {{ confirmation_url }} in the button link or the body, or the contact cannot confirm."))

    if template.channel == Channel.EMAIL:
        if not template.subject.strip() and not template.fallback_subject.strip():
            add("subject", _("An email needs a subject."))
        if not template.body.strip():
            add("body", _("An email needs a body."))
        if bool(template.cta_text.strip()) != bool(template.cta_url.strip()):
            add("cta_url", _("Fill in both the button text and the button link, or neither."))

    elif template.channel == Channel.SMS:
        if not template.body.strip():
            add("body", _("An SMS needs a text; write it in the body."))
        else:
            sms_length_error(template, add)

    elif template.channel == Channel.WHATSAPP:
        if not template.whatsapp_template_name:
            add("whatsapp_template_name", _("A WhatsApp message needs the name of an approved WhatsApp template."))
        if not template.whatsapp_language:
            add("whatsapp_language", _("A WhatsApp message needs the language of its approved template, e.g. nl."))
        whatsapp_parameter_errors(template, add)
    return errors


def sms_length_error(template: MessageTemplate, add: Callable[[str, str], None]) -> None:
    """Measure the SMS for a sample contact, with links as long as our short links, against the template's maximum."""
    try:
        render_sms(template, sample_contact(), shorten_link=lambda url: example_short_url())
    except RenderError as error:
        # Merge-tag syntax is reported by the admin form; only the length is this check's business.
        if "segments" in str(error):
            add(
                "body",
                _("For a typical contact this SMS is too long: %(error)s.") % {"error": error},
            )


def whatsapp_parameter_errors(template: MessageTemplate, add: Callable[[str, str], None]) -> None:
    try:
        sources = parameter_sources(template)
    except RenderError as error:
        add("whatsapp_parameters", str(error))
        return
    for name, source in sources.items():
        try:
            compile_merge(source)
        except RenderError as error:
            add(
                "whatsapp_parameters",
                _("Parameter %(name)s has a merge tag error: %(error)s") % {"name": name, "error": error},
            )
