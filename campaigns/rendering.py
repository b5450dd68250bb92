"""Rendering message templates for one contact: merge tags, markdown, the email layout, inlined CSS."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import css_inline
import markdown
from django.conf import settings
from django.template import Context, Engine, TemplateSyntaxError
from django.template.loader import render_to_string
from django.utils import translation

from campaigns.models import MessageTemplate
from contacts.models import Contact

# A separate engine with Django's built-in tags and filters only: template code written by staff
# cannot {% load %} other libraries, and the context below holds plain data, so no model method,
# manager or setting is reachable from a merge tag.
MERGE_ENGINE = Engine(libraries={}, builtins=["django.template.defaulttags", "django.template.defaultfilters"], debug=False)

# Links in the HTML we produce ourselves from markdown and our own layout; matching the href
# attribute is enough there, a full HTML parser would add nothing.
HREF_PATTERN = re.compile(r'href="(https?://[^"]+)"')


class RenderError(ValueError):
    """A template with a merge-tag syntax error; the message names the tag."""


@dataclass
class RenderedEmail:
    subject: str
    text: str
    html: str
    headers: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)


def merge_context(contact: Contact, trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the read-only data merge tags can use: contact fields, attributes, trigger data, shop."""
    return {
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "full_name": contact.full_name,
        "email": contact.email or "",
        "phone": contact.phone or "",
        "company": contact.company,
        "city": contact.city,
        "lead_score": contact.lead_score,
        "order_count": contact.order_count,
        "total_spent": str(contact.total_spent),
        "attributes": dict(contact.attributes or {}),
        "trigger": dict(trigger or {}),
        "shop_name": settings.MKTAUTO_BRAND_NAME,
        "shop_url": settings.MKTAUTO_SHOP_URL,
    }


def render_text(source: str, context: dict[str, Any], *, autoescape: bool) -> str:
    try:
        template = MERGE_ENGINE.from_string(source)
    except TemplateSyntaxError as error:
        raise RenderError(f"merge tag error in {source[:60]!r}: {error}") from None
    return template.render(Context(context, autoescape=autoescape))


def render_email(
    template: MessageTemplate,
    contact: Contact,
    *,
    trigger: dict[str, Any] | None = None,
    unsubscribe_url: str = "",
    open_pixel_url: str = "",
    track_link: Callable[[str], str] | None = None,
) -> RenderedEmail:
    """Render subject, plain text and HTML for one contact; ``track_link`` rewrites each link."""
    context = merge_context(contact, trigger)
    language = contact.language or settings.LANGUAGE_CODE

    subject = " ".join(render_text(template.subject, context, autoescape=False).split())
    text_body = render_text(template.body, context, autoescape=False).strip()
    html_source = render_text(template.body, context, autoescape=True)
    body_html = markdown.markdown(html_source, extensions=["extra", "sane_lists"])
    cta_url = render_text(template.cta_url, context, autoescape=False).strip()

    with translation.override(language):
        html = render_to_string(
            "email/layout.html",
            {
                "subject": subject,
                "preview_text": render_text(template.preview_text, context, autoescape=True),
                "body_html": body_html,
                "cta_text": render_text(template.cta_text, context, autoescape=False),
                "cta_url": cta_url,
                "shop_name": settings.MKTAUTO_BRAND_NAME,
                "unsubscribe_url": unsubscribe_url,
                "open_pixel_url": open_pixel_url,
                "language": language,
            },
        )
        footer = translation.gettext("Unsubscribe: %(url)s") % {"url": unsubscribe_url} if unsubscribe_url else ""

    if template.cta_text and cta_url:
        text_body += f"\n\n{template.cta_text}: {cta_url}"
    if footer:
        text_body += f"\n\n--\n{footer}"

    links = [url for url in HREF_PATTERN.findall(html) if url != unsubscribe_url]
    if track_link is not None:
        html = HREF_PATTERN.sub(
            lambda match: f'href="{track_link(match.group(1)) if match.group(1) != unsubscribe_url else match.group(1)}"', html
        )
    html = css_inline.inline(html)
    return RenderedEmail(subject=subject, text=text_body, html=html, links=links)
