"""SMS text: GSM-7 or UCS-2 encoding, segment counting, and rendering a template's body for one contact.

Segment rules (3GPP TS 23.038 and 23.040): a text that fits the GSM 7-bit alphabet takes 7-bit
units ("septets"), 160 in a single SMS or 153 per segment of a longer one, because the 6-byte
concatenation header takes the rest. The characters of the extension table (such as € [ ] { })
take two septets, an escape and the character, and a segment never splits that pair. Any other
character makes the whole text UCS-2, with 16-bit units: 70 in a single SMS or 67 per segment.
A character outside the Basic Multilingual Plane (most emoji) takes two units, never split.

TODO: replies such as STOP are not read yet. Take them from the SMS provider's inbound webhook and
withdraw SMS consent through contacts.consent.set_consent; until then an SMS unsubscribe arrives by
import, the API or the preference page.
"""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import translation

from campaigns.blocks import RenderState
from campaigns.models import MessageTemplate
from campaigns.rendering import RenderError, merge_context, render_text, tidy_text
from contacts.models import Contact

logger = logging.getLogger(__name__)

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("\f^{}\\[~]|€")
GSM7 = "GSM-7"
UCS2 = "UCS-2"
SINGLE_LIMIT = {GSM7: 160, UCS2: 70}
SEGMENT_LIMIT = {GSM7: 153, UCS2: 67}
# A link in an SMS, up to the first space; trailing punctuation belongs to the sentence.
SMS_LINK = re.compile(r"https?://[^\s<>\"]+")
TRAILING_PUNCTUATION = ".,;:!?)]'\""


@dataclass(frozen=True)
class SegmentCount:
    encoding: str
    units: int
    segments: int
    # Characters that forced UCS-2, in order of first appearance; empty for GSM-7.
    unicode_characters: tuple[str, ...] = ()

    @property
    def single_limit(self) -> int:
        return SINGLE_LIMIT[self.encoding]


@dataclass
class RenderedSms:
    text: str
    count: SegmentCount
    links: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def unit_sizes(text: str) -> tuple[str, list[int]]:
    """Return the encoding and the size in units of each character."""
    outside = [character for character in text if character not in GSM7_BASIC and character not in GSM7_EXTENSION]
    if not outside:
        return GSM7, [2 if character in GSM7_EXTENSION else 1 for character in text]
    return UCS2, [2 if ord(character) > 0xFFFF else 1 for character in text]


def count_segments(text: str) -> SegmentCount:
    """Return the encoding, length in units and number of segments of an SMS text."""
    encoding, sizes = unit_sizes(text)
    units = sum(sizes)
    unicode_characters: tuple[str, ...] = ()
    if encoding == UCS2:
        outside = (character for character in text if character not in GSM7_BASIC and character not in GSM7_EXTENSION)
        unicode_characters = tuple(dict.fromkeys(outside))
    if units == 0:
        return SegmentCount(encoding, 0, 0, unicode_characters)
    if units <= SINGLE_LIMIT[encoding]:
        return SegmentCount(encoding, units, 1, unicode_characters)

    # Pack greedily: a two-unit character that does not fit starts the next segment.
    limit = SEGMENT_LIMIT[encoding]
    segments, used = 1, 0
    for size in sizes:
        if used + size > limit:
            segments += 1
            used = 0
        used += size
    return SegmentCount(encoding, units, segments, unicode_characters)


def split_link(match: str) -> tuple[str, str]:
    """Split a matched link from punctuation that ends the sentence after it."""
    link = match.rstrip(TRAILING_PUNCTUATION)
    return link, match[len(link) :]


def render_sms(
    template: MessageTemplate,
    contact: Contact,
    *,
    trigger: dict[str, Any] | None = None,
    shorten_link: Callable[[str], str] | None = None,
    extra_context: dict[str, Any] | None = None,
) -> RenderedSms:
    """Render the template's body as SMS text; links go through ``shorten_link`` when the template tracks them.

    RenderError when the text is empty or longer than the template's maximum number of segments.
    """
    context = {**merge_context(contact, trigger), **(extra_context or {})}
    language = contact.language or settings.LANGUAGE_CODE
    missing: list[str] = []
    with translation.override(language):
        text = render_text(
            template.body,
            context,
            autoescape=False,
            missing=missing,
            state=RenderState(language, contact.currency or settings.MKTAUTO_DEFAULT_CURRENCY),
        )
    text = tidy_text(text)
    if not text:
        raise RenderError(
            f"the SMS text of {template.name!r} is empty for contact {contact.pk}; write a body or give merge tags a |default"
        )

    links: list[str] = []

    def replace(match: re.Match) -> str:
        link, punctuation = split_link(match.group(0))
        links.append(link)
        if template.sms_track_links and shorten_link is not None:
            return shorten_link(link) + punctuation
        return match.group(0)

    text = SMS_LINK.sub(replace, text)
    count = count_segments(text)
    if count.segments > template.sms_max_segments:
        raise RenderError(
            f"the SMS is {count.segments} segments ({count.units} {count.encoding} characters) and the template allows "
            f"{template.sms_max_segments}; shorten the text or raise the template's maximum"
        )
    return RenderedSms(text=text, count=count, links=links, missing=missing)
