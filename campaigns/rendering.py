"""Rendering message templates for one contact: merge tags, blocks, markdown, the email layout, inlined CSS.

Merge tags run before markdown, so a loop may write a markdown list. In the HTML version every
``{{ value }}`` is HTML-escaped and its markdown characters turned into character references,
so contact or trigger data never adds markup or links of its own. Blocks (campaigns/blocks.py)
render products from the trigger data into the same single-column layout and into the text part.
"""

import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import css_inline
import markdown
from django.conf import settings
from django.template import Context, Engine, Library, Template, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import VariableDoesNotExist, VariableNode
from django.template.loader import render_to_string
from django.utils import translation

from campaigns.blocks import BLOCK_OPTIONS, RenderState, compile_block
from campaigns.escaping import markdown_escape
from campaigns.models import MessageTemplate
from contacts.models import Contact

logger = logging.getLogger(__name__)

# Tags staff may use in messages. Load, include and extends are left out because they reach other
# code or files. Autoescape and firstof are left out because their output bypasses the escaping
# below, and verbatim because its content would show the escaping filter added below. Url,
# csrf_token, debug, lorem and querystring are nothing a message needs.
MERGE_TAGS = ("comment", "for", "if", "ifchanged", "now", "regroup", "spaceless", "templatetag", "with")
# safe and safeseq would let data through unescaped; json_script writes a <script> element.
BLOCKED_FILTERS = {"safe", "safeseq", "json_script"}

BLANK_LINES = re.compile(r"\n{3,}")
VARIABLE_TAG = re.compile(r"{{(.*?)}}")
# Every link target is checked; only links in <a> elements are tracked.
HREF_ATTRIBUTE = re.compile(r"""(\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
SAFE_SCHEMES = {"http", "https", "mailto", "tel"}
# The WHATWG URL parser drops tabs and newlines anywhere in a URL, so "java\tscript:" is javascript:.
URL_IGNORED_CHARACTERS = re.compile(r"[\t\n\r]")
# ...and strips C0 control characters and spaces from both ends.
URL_STRIPPED_CHARACTERS = "".join(chr(code) for code in range(0x21))

# A remote stylesheet in staff HTML would mean a network request at send time; none is made.
CSS_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)


def build_merge_library() -> Library:
    library = Library()
    library.tags = {name: defaulttags.register.tags[name] for name in MERGE_TAGS}
    for name in BLOCK_OPTIONS:
        library.tag(name, compile_block)
    library.filters = {
        name: function for name, function in defaultfilters.register.filters.items() if name not in BLOCKED_FILTERS
    }
    library.filter("markdown_escape", markdown_escape, is_safe=True)
    return library


# A separate engine with a reduced set of Django's tags and filters: template code written by staff
# cannot load other libraries or templates, and the context below contains plain data, so no model
# method, manager or setting is reachable from a merge tag. Engine() always adds Django's default
# libraries, so they are replaced after construction.
MERGE_ENGINE = Engine(libraries={}, loaders=[], debug=False)
MERGE_ENGINE.template_builtins = [build_merge_library()]


class RenderError(ValueError):
    """A template that cannot be rendered (merge-tag syntax, an unsafe link); the message names the cause."""


@dataclass
class RenderedEmail:
    subject: str
    text: str
    html: str
    headers: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    # Merge expressions that rendered empty for this contact, e.g. "first_name" without a |default.
    missing: list[str] = field(default_factory=list)


def merge_context(contact: Contact, trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the read-only data merge tags can use: contact fields, attributes, trigger data, shop, discount code."""
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
        # The sending workflow's code; callers that know the workflow pass it in their extra context.
        "discount_code": "",
    }


def compile_merge(source: str) -> Template:
    """Compile merge-tag source with the reduced engine; RenderError names the fault."""
    try:
        return MERGE_ENGINE.from_string(source)
    except TemplateSyntaxError as error:
        raise RenderError(f"merge tag error in {source[:60]!r}: {error}") from None


def render_text(
    source: str,
    context: dict[str, Any],
    *,
    autoescape: bool,
    missing: list[str] | None = None,
    state: RenderState | None = None,
) -> str:
    """Render merge tags; with ``autoescape`` every value is also made safe for markdown, for the HTML version.

    Each ``{{ value }}`` that renders empty is appended to ``missing`` when a list is given. Blocks
    render as text unless ``state`` has HTML slots for them.
    """
    if autoescape:
        source = VARIABLE_TAG.sub(lambda match: "{{" + match.group(1).rstrip() + "|markdown_escape }}", source)
    template = compile_merge(source)
    if missing is not None:
        watch_empty_values(template, missing)
    render_context = Context(context, autoescape=autoescape)
    render_context.mktauto_render = state
    try:
        return template.render(render_context)
    except VariableDoesNotExist as error:
        # A missing variable as a filter argument, e.g. {{ first_name|default:nickname }}, raises.
        raise RenderError(f"merge tag error in {source[:60]!r}: {error}") from None


def watch_empty_values(template: Template, missing: list[str]) -> None:
    """Make each variable of a freshly compiled template report an empty result to ``missing``."""
    for node in template.nodelist.get_nodes_by_type(VariableNode):
        original = node.render

        def render(context: Context, node: VariableNode = node, original: Callable[[Context], str] = original) -> str:
            output = original(context)
            if not str(output).strip():
                missing.append(node.filter_expression.token.removesuffix("|markdown_escape"))
            return output

        node.render = render


def tidy_text(text: str) -> str:
    """Strip trailing spaces from each line and fold runs of blank lines, which blocks and tags leave behind, into one."""
    lines = text.replace("\r\n", "\n").strip().split("\n")
    return BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in lines))


def collapse(text: str) -> str:
    return " ".join(text.split())


def render_subject(template: MessageTemplate, context: dict[str, Any]) -> tuple[str, list[str]]:
    """Return the subject and the merge values it missed; the fallback subject replaces one that missed any."""
    missing: list[str] = []
    subject = collapse(render_text(template.subject, context, autoescape=False, missing=missing))
    if (missing or not subject) and template.fallback_subject:
        subject = collapse(render_text(template.fallback_subject, context, autoescape=False))
    return subject, missing


def render_email(
    template: MessageTemplate,
    contact: Contact,
    *,
    trigger: dict[str, Any] | None = None,
    unsubscribe_url: str = "",
    preferences_url: str = "",
    open_pixel_url: str = "",
    track_link: Callable[[str], str] | None = None,
    extra_context: dict[str, Any] | None = None,
) -> RenderedEmail:
    """Render subject, plain text and HTML for one contact; ``track_link`` rewrites each link."""
    context = {**merge_context(contact, trigger), **(extra_context or {})}
    language = contact.language or settings.LANGUAGE_CODE
    currency = contact.currency or settings.MKTAUTO_DEFAULT_CURRENCY

    with translation.override(language):
        subject, missing = render_subject(template, context)
        text_body = render_text(template.body, context, autoescape=False, missing=missing, state=RenderState(language, currency))
        text_body = tidy_text(text_body)
        html_state = RenderState(language, currency, html_blocks=[])
        html_source = render_text(template.body, context, autoescape=True, state=html_state)
        body_html = html_state.fill(markdown.markdown(html_source, extensions=["extra", "sane_lists"]))
        # The layout escapes these three itself.
        preview_text = collapse(render_text(template.preview_text, context, autoescape=False))
        cta_text = collapse(render_text(template.cta_text, context, autoescape=False))
        cta_url = render_text(template.cta_url, context, autoescape=False).strip()

        page = render_to_string(
            "email/layout.html",
            {
                "subject": subject,
                "preview_text": preview_text,
                "body_html": body_html,
                "cta_text": cta_text,
                "cta_url": cta_url,
                "shop_name": settings.MKTAUTO_BRAND_NAME,
                "unsubscribe_url": unsubscribe_url,
                "preferences_url": preferences_url,
                "open_pixel_url": open_pixel_url,
                "language": language,
            },
        )
        footer = translation.gettext("Unsubscribe: %(url)s") % {"url": unsubscribe_url} if unsubscribe_url else ""
        if footer and preferences_url:
            footer += "\n" + translation.gettext("Choose what you receive: %(url)s") % {"url": preferences_url}

    if cta_text and cta_url:
        text_body += f"\n\n{cta_text}: {cta_url}"
    if footer:
        text_body += f"\n\n--\n{footer}"

    page, links = track_links(page, {unsubscribe_url, preferences_url}, track_link)
    check_link_targets(page)
    page = CSS_INLINER.inline(page)
    return RenderedEmail(subject=subject, text=text_body, html=page, links=links, missing=missing)


def link_target(match: re.Match) -> str:
    """Return the URL an href attribute points to, as a mail client reads it."""
    raw = match.group(2) if match.group(2) is not None else match.group(3)
    return URL_IGNORED_CHARACTERS.sub("", html.unescape(raw)).strip(URL_STRIPPED_CHARACTERS)


def track_links(page: str, untracked: set[str], track_link: Callable[[str], str] | None) -> tuple[str, list[str]]:
    """Replace each http(s) link of an <a> element by its tracking URL; return the page and the original links.

    The links in ``untracked`` (unsubscribe, preferences) stay as they are: a click on them is no engagement.
    """
    links: list[str] = []

    def replace(match: re.Match) -> str:
        url = link_target(match)
        if not url.lower().startswith(("http://", "https://")) or url in untracked:
            return match.group(0)
        links.append(url)
        target = track_link(url) if track_link is not None else url
        return f'{match.group(1)}"{html.escape(target)}"'

    return ANCHOR_HREF.sub(replace, page), links


def check_link_targets(page: str) -> None:
    """Raise RenderError for a link a recipient should never get: javascript:, data:, relative or broken."""
    for match in HREF_ATTRIBUTE.finditer(page):
        url = link_target(match)
        if url.startswith("#"):
            continue
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme.lower() not in SAFE_SCHEMES
            or (parts.scheme.lower() in ("http", "https") and not parts.netloc)
        ):
            raise RenderError(
                f"link {url[:80]!r} is not an absolute http(s), mailto: or tel: link; fix the link in the message or the data it comes from"
            )
