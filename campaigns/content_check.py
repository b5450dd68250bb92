"""The content check: what is wrong or risky in a message template, before a workflow that sends it goes live.

check_template() returns a list of Problems. An error blocks going live: an unknown merge tag, a
broken link, an SMS longer than its maximum. A warning is shown and allowed: a merge tag without a
fallback whose data is often missing, an image without alt text or on http, an SMS of several
segments. Nothing here makes a network request, because links are checked for syntax only.
"""

import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import markdown
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db.models import Count, Q
from django.template import Node, Template
from django.template.base import FilterExpression, Variable, VariableNode
from django.template.defaulttags import ForNode, IfNode, RegroupNode, WithNode
from django.utils.translation import gettext as _

from campaigns.models import MessageTemplate
from campaigns.rendering import RenderError, compile_merge, merge_context, render_text
from campaigns.short_links import example_short_url
from campaigns.sms import SMS_LINK, render_sms, split_link
from campaigns.template_validation import sample_contact
from campaigns.whatsapp import parameter_sources
from contacts.consent import STATUS_FIELDS
from contacts.models import Channel, ConsentStatus, Contact

logger = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"
FALLBACK_FILTERS = {"default", "default_if_none"}
# Contact fields merge tags can name, and the condition under which a contact has no value.
CONTACT_FIELD_MISSING = {
    "first_name": Q(first_name=""),
    "last_name": Q(last_name=""),
    "full_name": Q(first_name="", last_name=""),
    "company": Q(company=""),
    "city": Q(city=""),
    "email": Q(email__isnull=True),
    "phone": Q(phone__isnull=True),
}
DEFAULT_MISSING_PERCENT = 10
TEL_NUMBER = re.compile(r"^\+?[0-9 ()\-.]{3,20}$")
ATTRIBUTE_KEY = re.compile(r"^\w+$")
WEB_URL = URLValidator(schemes=["http", "https"])


@dataclass(frozen=True)
class Problem:
    level: str
    field: str
    message: str

    def __str__(self) -> str:
        return self.message

    @property
    def blocking(self) -> bool:
        return self.level == ERROR


@dataclass(frozen=True)
class Usage:
    """One variable a template reads: ``trigger.title`` in the field ``body``, with or without a fallback."""

    field: str
    expression: str
    path: tuple[str, ...]
    has_fallback: bool
    guarded: bool


def merge_fields(template: MessageTemplate) -> dict[str, str]:
    """Return the template's fields that the channel renders, by name."""
    if template.channel == Channel.SMS:
        return {"body": template.body}
    if template.channel == Channel.WHATSAPP:
        try:
            return {f"whatsapp_parameters.{name}": source for name, source in parameter_sources(template).items()}
        except RenderError:
            return {}
    return {
        "subject": template.subject,
        "fallback_subject": template.fallback_subject,
        "preview_text": template.preview_text,
        "body": template.body,
        "cta_text": template.cta_text,
        "cta_url": template.cta_url,
    }


def collect_usages(template: MessageTemplate) -> tuple[list[Usage], list[Problem]]:
    """Return the variables the template's rendered fields read, and an error for each field that does not compile."""
    usages: list[Usage] = []
    problems: list[Problem] = []
    for field, source in merge_fields(template).items():
        if not source:
            continue
        try:
            compiled = compile_merge(source)
        except RenderError as error:
            problems.append(Problem(ERROR, field, _("This text has a merge tag error: %(error)s") % {"error": error}))
            continue
        usages.extend(variable_usages(compiled, field))
    return usages, problems


def used_names(template: MessageTemplate) -> set[str]:
    """Return the top-level merge names the template reads, e.g. {"first_name", "trigger", "discount_code"}."""
    usages, _problems = collect_usages(template)
    return {usage.path[0] for usage in usages}


def check_template(template: MessageTemplate) -> list[Problem]:
    """Return the problems of a message template, errors before warnings."""
    usages, problems = collect_usages(template)

    problems.extend(unknown_tag_problems(template, usages))
    problems.extend(missing_data_problems(template, usages))
    if template.channel == Channel.EMAIL:
        problems.extend(email_problems(template))
    elif template.channel == Channel.SMS:
        problems.extend(sms_problems(template))
    elif template.channel == Channel.WHATSAPP:
        problems.extend(whatsapp_problems(template))

    problems.sort(key=lambda problem: problem.level != ERROR)
    logger.info("content check of template %s: %s problems", template.pk, len(problems))
    return problems


# Merge tags.


def expression_variables(expression: FilterExpression) -> list[tuple[tuple[str, ...], bool]]:
    """Return the variables an expression reads, each with whether it has a fallback filter."""
    found = []
    has_fallback = any(function.__name__ in FALLBACK_FILTERS for function, _arguments in expression.filters)
    if isinstance(expression.var, Variable) and expression.var.lookups:
        found.append((tuple(expression.var.lookups), has_fallback))
    for _function, arguments in expression.filters:
        for is_variable, argument in arguments:
            if is_variable and isinstance(argument, Variable) and argument.lookups:
                found.append((tuple(argument.lookups), False))
    return found


def condition_expressions(condition: Any) -> list[FilterExpression]:
    """Return the expressions of an {% if %} condition tree."""
    if condition is None:
        return []
    if isinstance(getattr(condition, "value", None), FilterExpression):
        return [condition.value]
    return condition_expressions(getattr(condition, "first", None)) + condition_expressions(getattr(condition, "second", None))


def variable_usages(template: Template, field: str) -> list[Usage]:
    usages: list[Usage] = []

    def record(expression: FilterExpression, locals_: set[str], guards: set[str]) -> None:
        for path, has_fallback in expression_variables(expression):
            if path[0] in locals_:
                continue
            dotted = ".".join(path)
            usages.append(Usage(field, dotted, path, has_fallback, guarded=dotted in guards))

    def walk(nodes: list[Node], locals_: set[str], guards: set[str]) -> None:
        for node in nodes:
            if isinstance(node, VariableNode):
                record(node.filter_expression, locals_, guards)
            elif isinstance(node, IfNode):
                for condition, nodelist in node.conditions_nodelists:
                    expressions = condition_expressions(condition)
                    for expression in expressions:
                        # A test reads its value on purpose; an empty one just takes the other branch.
                        for path, _has_fallback in expression_variables(expression):
                            if path[0] not in locals_:
                                usages.append(Usage(field, ".".join(path), path, True, guarded=True))
                    tested = {".".join(path) for expression in expressions for path, _ in expression_variables(expression)}
                    walk(nodelist, locals_, guards | tested)
            elif isinstance(node, ForNode):
                record(node.sequence, locals_, guards | {".".join(path) for path, _ in expression_variables(node.sequence)})
                walk(node.nodelist_loop, locals_ | set(node.loopvars) | {"forloop"}, guards)
                walk(node.nodelist_empty, locals_, guards)
            elif isinstance(node, WithNode):
                for expression in node.extra_context.values():
                    record(expression, locals_, guards)
                walk(node.nodelist, locals_ | set(node.extra_context), guards)
            elif isinstance(node, RegroupNode):
                record(node.target, locals_, guards)
                locals_ = locals_ | {node.var_name}
            else:
                for attribute in node.child_nodelists:
                    walk(getattr(node, attribute, None) or [], locals_, guards)

    walk(template.nodelist, set(), set())
    return usages


def known_names(template: MessageTemplate) -> set[str]:
    names = set(merge_context(sample_contact()))
    if template.purpose == MessageTemplate.Purpose.CONFIRMATION:
        names.add("confirmation_url")
    return names


def unknown_tag_problems(template: MessageTemplate, usages: list[Usage]) -> list[Problem]:
    known = known_names(template)
    problems = []
    seen: set[tuple[str, str]] = set()
    for usage in usages:
        if usage.path[0] in known or (usage.field, usage.path[0]) in seen:
            continue
        seen.add((usage.field, usage.path[0]))
        problems.append(
            Problem(
                ERROR,
                usage.field,
                _(
                    "The merge tag {{ %(tag)s }} is unknown and would print nothing. Known tags: %(known)s, trigger.*, attributes.*."
                )
                % {"tag": usage.expression, "known": ", ".join(sorted(known - {"trigger", "attributes"}))},
            )
        )
    return problems


def missing_condition(path: tuple[str, ...]) -> Q | None:
    """Return the condition under which a contact has no value for the tag, or None when it is not a contact field."""
    if path[0] in CONTACT_FIELD_MISSING and len(path) == 1:
        return CONTACT_FIELD_MISSING[path[0]]
    if path[0] == "attributes" and len(path) >= 2 and ATTRIBUTE_KEY.match(path[1]):
        return ~Q(attributes__has_key=path[1])
    return None


def audience(template: MessageTemplate) -> Any:
    """Return the contacts a template can reach: everyone for transactional messages, else the channel's subscribers."""
    contacts = Contact.objects.all()
    if template.transactional:
        return contacts
    field = STATUS_FIELDS.get(Channel(template.channel)) if template.channel in Channel.values else None
    return contacts.filter(**{field: ConsentStatus.SUBSCRIBED}) if field else contacts


def missing_data_problems(template: MessageTemplate, usages: list[Usage]) -> list[Problem]:
    """Warn about tags without a fallback whose value is often missing, measured with one aggregate query."""
    candidates: dict[str, Usage] = {}
    trigger_usages: dict[str, Usage] = {}
    for usage in usages:
        if usage.has_fallback or usage.guarded:
            continue
        # The fallback subject replaces a subject with a missing value.
        if usage.field == "subject" and template.fallback_subject:
            continue
        if usage.path[0] == "trigger":
            trigger_usages.setdefault(usage.expression, usage)
        elif missing_condition(usage.path) is not None:
            candidates.setdefault(usage.expression, usage)

    problems = [
        Problem(
            WARNING,
            usage.field,
            _(
                "{{ %(tag)s }} has no fallback. When the trigger data has no %(tag)s, it prints nothing; "
                'add one, e.g. {{ %(tag)s|default:"..." }}.'
            )
            % {"tag": expression},
        )
        for expression, usage in trigger_usages.items()
    ]
    if not candidates:
        return problems

    expressions = sorted(candidates)
    counts = audience(template).aggregate(
        total=Count("pk"),
        **{
            f"missing_{index}": Count("pk", filter=missing_condition(candidates[name].path))
            for index, name in enumerate(expressions)
        },
    )
    total = counts["total"]
    if not total:
        return problems
    threshold = getattr(settings, "MKTAUTO_MISSING_DATA_WARNING_PERCENT", DEFAULT_MISSING_PERCENT)
    for index, expression in enumerate(expressions):
        share = round(100 * counts[f"missing_{index}"] / total)
        if share < threshold:
            continue
        problems.append(
            Problem(
                WARNING,
                candidates[expression].field,
                _(
                    "{{ %(tag)s }} has no fallback, and %(share)s%% of the contacts this message can reach have no value "
                    'for it; add one, e.g. {{ %(tag)s|default:"..." }}.'
                )
                % {"tag": expression, "share": share},
            )
        )
    return problems


# Links and images.


class LinkCollector(HTMLParser):
    """Collects the href of each <a> and the src and alt of each <img> in an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and "href" in attributes:
            self.links.append(attributes["href"] or "")
        elif tag == "img":
            self.images.append((attributes.get("src") or "", attributes.get("alt")))


def link_problem(url: str) -> str:
    """Return why a link is broken, or "" when its syntax is fine. No request is made."""
    url = url.strip()
    if url.startswith("#"):
        return ""
    if not url:
        return _("The link is empty for a contact without this data; give its merge tag a fallback.")
    scheme, separator, rest = url.partition(":")
    scheme = scheme.lower()
    if not separator or scheme.startswith("www") or "." in scheme:
        return _("%(url)s has no https:// in front, so mail clients treat it as a relative link.") % {"url": url}
    if scheme == "mailto":
        address = rest.split("?", 1)[0]
        try:
            validate_email(address)
        except ValidationError:
            return _("%(url)s does not contain a valid email address.") % {"url": url}
        return ""
    if scheme == "tel":
        return "" if TEL_NUMBER.match(rest) else _("%(url)s is not a phone number.") % {"url": url}
    if scheme not in ("http", "https"):
        return _("%(url)s uses %(scheme)s:, which is not a web, email or phone link.") % {"url": url, "scheme": scheme}
    try:
        WEB_URL(url)
    except ValidationError:
        return _("%(url)s is not a valid web address; check for spaces, a missing domain or a typing error.") % {"url": url}
    return ""


def image_problems(images: list[tuple[str, str | None]], field: str) -> list[Problem]:
    problems = []
    for src, alt in images:
        if alt is None or not alt.strip():
            problems.append(
                Problem(
                    WARNING,
                    field,
                    _("The image %(src)s has no alt text; people who do not load images or use a screen reader see nothing.")
                    % {"src": src or "?"},
                )
            )
        if not src.lower().startswith("https://"):
            level = WARNING if src.lower().startswith("http://") else ERROR
            problems.append(
                Problem(
                    level,
                    field,
                    _("The image %(src)s is not on an https:// address; many mail clients will not show it.")
                    % {"src": src or "?"},
                )
            )
    return problems


def sample_body_html(template: MessageTemplate) -> str:
    """Return the body's HTML for a sample contact without trigger data, blocks left out; "" when it does not render."""
    context = {**merge_context(sample_contact()), "confirmation_url": "https://example.com/confirm"}
    try:
        source = render_text(template.body, context, autoescape=True)
    except RenderError:
        return ""
    return markdown.markdown(source, extensions=["extra", "sane_lists"])


def email_problems(template: MessageTemplate) -> list[Problem]:
    problems = []
    if not template.subject.strip() and not template.fallback_subject.strip():
        problems.append(Problem(ERROR, "subject", _("The email has no subject.")))
    if bool(template.cta_text.strip()) != bool(template.cta_url.strip()):
        problems.append(Problem(ERROR, "cta_url", _("Fill in both the button text and the button link, or neither.")))

    collector = LinkCollector()
    collector.feed(sample_body_html(template))
    for url in collector.links:
        reason = link_problem(url)
        if reason:
            problems.append(Problem(ERROR, "body", reason))
    problems.extend(image_problems(collector.images, "body"))

    if template.cta_url.strip():
        context = {**merge_context(sample_contact()), "confirmation_url": "https://example.com/confirm"}
        try:
            reason = link_problem(render_text(template.cta_url, context, autoescape=False))
        except RenderError:
            reason = ""
        if reason:
            problems.append(Problem(ERROR, "cta_url", reason))

    if template.purpose == MessageTemplate.Purpose.CONFIRMATION and "confirmation_url" not in template.body + template.cta_url:
        problems.append(
            Problem(
                ERROR, "cta_url", _("Put {{ confirmation_url }} in the button link or the body, or the contact cannot confirm.")
            )
        )
    return problems


def sms_problems(template: MessageTemplate) -> list[Problem]:
    problems = []
    for match in SMS_LINK.finditer(template.body):
        link, _punctuation = split_link(match.group(0))
        if "{" in link:
            continue
        reason = link_problem(link)
        if reason:
            problems.append(Problem(ERROR, "body", reason))
    try:
        rendered = render_sms(template, sample_contact(), shorten_link=lambda url: example_short_url())
    except RenderError as error:
        if "segments" in str(error):
            problems.append(
                Problem(ERROR, "body", _("For a typical contact this SMS is too long: %(error)s.") % {"error": error})
            )
        return problems

    count = rendered.count
    if count.segments > 1:
        problems.append(
            Problem(
                WARNING,
                "body",
                _(
                    "For a typical contact this SMS is %(segments)s segments (%(units)s %(encoding)s characters), each billed as one SMS."
                )
                % {"segments": count.segments, "units": count.units, "encoding": count.encoding},
            )
        )
    if count.unicode_characters:
        problems.append(
            Problem(
                WARNING,
                "body",
                _("These characters make the SMS Unicode, with 70 characters per segment instead of 160: %(characters)s")
                % {"characters": " ".join(count.unicode_characters)},
            )
        )
    return problems


def whatsapp_problems(template: MessageTemplate) -> list[Problem]:
    problems = []
    if not template.whatsapp_template_name:
        problems.append(
            Problem(ERROR, "whatsapp_template_name", _("A WhatsApp message needs the name of an approved WhatsApp template."))
        )
    if not template.whatsapp_language:
        problems.append(
            Problem(ERROR, "whatsapp_language", _("A WhatsApp message needs the language of its approved template, e.g. nl."))
        )
    try:
        parameter_sources(template)
    except RenderError as error:
        problems.append(Problem(ERROR, "whatsapp_parameters", str(error)))
    return problems
