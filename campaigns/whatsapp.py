"""WhatsApp template messages: an approved template by name and language, with parameters rendered for one contact.

A business may start a WhatsApp conversation only with a template that WhatsApp approved, so the
text itself is stored at the provider. We send the template's name, language and parameter values.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import translation

from campaigns.blocks import RenderState
from campaigns.models import MessageTemplate
from campaigns.rendering import RenderError, collapse, merge_context, render_text
from contacts.models import Contact

logger = logging.getLogger(__name__)

# WhatsApp rejects parameter values longer than this (Cloud API text parameters).
MAX_PARAMETER_LENGTH = 1024


@dataclass
class RenderedWhatsApp:
    template_name: str
    language: str
    parameters: dict[str, str]
    provider_template_id: int | None = None
    missing: list[str] = field(default_factory=list)


def parameter_sources(template: MessageTemplate) -> dict[str, str]:
    """Return the template's parameters as name -> merge source; RenderError when they are not a JSON object of texts."""
    raw = template.whatsapp_parameters or {}
    if not isinstance(raw, dict):
        raise RenderError(
            f'WhatsApp parameters of {template.name!r} must be a JSON object such as {{"1": "{{{{ first_name }}}}"}}, got {type(raw).__name__}'
        )
    sources = {}
    for name, source in raw.items():
        if not str(name).strip() or not isinstance(source, (str, int, float)) or isinstance(source, bool):
            raise RenderError(
                f"WhatsApp parameter {name!r} of {template.name!r} must have a name and a text value, got {source!r}"
            )
        sources[str(name).strip()] = str(source)
    return sources


def render_whatsapp(
    template: MessageTemplate,
    contact: Contact,
    *,
    trigger: dict[str, Any] | None = None,
    extra_context: dict[str, Any] | None = None,
) -> RenderedWhatsApp:
    """Render each parameter for the contact; RenderError when one is empty, because WhatsApp rejects empty parameters."""
    if not template.whatsapp_template_name or not template.whatsapp_language:
        raise RenderError(f"{template.name!r} has no WhatsApp template name and language; fill both in the message template")

    context = {**merge_context(contact, trigger), **(extra_context or {})}
    language = contact.language or settings.LANGUAGE_CODE
    state = RenderState(language, contact.currency or settings.MKTAUTO_DEFAULT_CURRENCY)
    parameters: dict[str, str] = {}
    missing: list[str] = []
    with translation.override(language):
        for name, source in parameter_sources(template).items():
            # WhatsApp refuses new lines, tabs and runs of spaces in a parameter, so whitespace is collapsed.
            value = collapse(render_text(source, context, autoescape=False, missing=missing, state=state))
            if not value:
                raise RenderError(
                    f"WhatsApp parameter {name!r} is empty for contact {contact.pk}; give its merge tag a fallback with |default"
                )
            parameters[name] = value[:MAX_PARAMETER_LENGTH]

    return RenderedWhatsApp(
        template_name=template.whatsapp_template_name,
        language=template.whatsapp_language,
        parameters=parameters,
        provider_template_id=template.whatsapp_provider_template_id,
        missing=missing,
    )
