"""The workflow template library: complete workflows a marketer installs and then adapts.

Content is written in English and translated through gettext, so a template installs in the
language chosen at install time. Installed workflows start as drafts.
"""

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from campaigns.models import MessageTemplate
from workflows.models import Step, Workflow

logger = logging.getLogger(__name__)

PURCHASED_SINCE_ENROLLMENT = {"event": "order_placed", "since": "enrollment"}
PURCHASED_THIS_CART = {"event": "order_placed", "since": "enrollment", "same_key": True}
CART_CLEARED = {"event": "cart_cleared", "since": "enrollment", "same_key": True}
UNSUBSCRIBED = {"field": "email_consent", "op": "eq", "value": "unsubscribed"}


@dataclass
class MessageSpec:
    subject: Any
    preview_text: Any
    body: Any
    cta_text: Any = ""
    cta_url: str = "{{ shop_url }}"


@dataclass
class StepSpec:
    key: str
    kind: str
    name: Any = ""
    wait: dict[str, int] = field(default_factory=dict)
    message: MessageSpec | None = None
    tag: str = ""
    score_delta: int = 0
    condition: dict = field(default_factory=dict)
    if_true: str = "next"
    if_false: str = "exit"


@dataclass
class TemplateSpec:
    slug: str
    name: Any
    objective: Any
    trigger_event: str
    steps: list[StepSpec]
    trigger_filter: dict = field(default_factory=dict)
    keyed: bool = False
    entry_rule: str = Workflow.EntryRule.ONCE
    exit_condition: dict = field(default_factory=dict)
    goal_event: str = "order_placed"
    goal_same_key: bool = False
    goal_window_days: int = 14
    goal_target_percent: Decimal | None = None
    priority: int = 0
    metrics: Any = ""


def email(key: str, name, subject, preview_text, body, cta_text=_("Visit the shop"), cta_url="{{ shop_url }}") -> StepSpec:
    return StepSpec(
        key=key, kind=Step.Kind.SEND_EMAIL, name=name, message=MessageSpec(subject, preview_text, body, cta_text, cta_url)
    )


def wait(key: str, **duration: int) -> StepSpec:
    return StepSpec(key=key, kind=Step.Kind.WAIT, wait=duration)


WELCOME_SERIES = TemplateSpec(
    slug="welcome_series",
    name=_("Welcome series"),
    # xgettext:no-python-format
    objective=_("Turn new subscribers into first-time buyers: 8% make a first purchase within 14 days."),
    # xgettext:no-python-format
    metrics=_("First purchase within 14 days: 5-10%. Open rate of email 1: 50% or more. Click rate: 5-10%."),
    trigger_event="signed_up",
    trigger_filter={"field": "order_count", "op": "eq", "value": 0},
    exit_condition={"any": [PURCHASED_SINCE_ENROLLMENT, UNSUBSCRIBED]},
    goal_event="order_placed",
    goal_window_days=14,
    goal_target_percent=Decimal("8"),
    priority=10,
    steps=[
        email(
            "welcome",
            # xgettext:no-python-format
            _("Email 1: welcome with 15% code"),
            _("Welcome to {{ shop_name }}, {{ first_name|default:'there' }}!"),
            # xgettext:no-python-format
            _("Here is 15% off your first order."),
            # xgettext:no-python-format
            _(
                "Hi {{ first_name|default:'there' }},\n\nThank you for signing up. As a welcome, here is **15% off** your "
                "first order with code **WELCOME15**.\n\nThe code is valid for 8 days."
            ),
            _("Shop now"),
        ),
        wait("wait-2", days=2),
        email(
            "story",
            _("Email 2: our story"),
            _("Why we started {{ shop_name }}"),
            _("The people and the care behind every product."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nWe started {{ shop_name }} because we wanted products we would "
                "use ourselves: made well, shipped fast, fairly priced.\n\nYour code **WELCOME15** is still waiting for you."
            ),
            _("Read our story"),
        ),
        wait("wait-4", days=2),
        email(
            "social-proof",
            _("Email 3: what customers say"),
            _("Thousands of happy customers went before you"),
            _("Reviews from customers like you."),
            _(
                "Hi {{ first_name|default:'there' }},\n\n> \"Fast delivery and great quality. I order again every month.\"\n\n"
                "Customers rate us 4.8 out of 5. See what they bought most."
            ),
            _("See the bestsellers"),
        ),
        wait("wait-6", days=2),
        email(
            "education",
            _("Email 4: getting the most out of it"),
            _("How to choose what suits you"),
            _("A short guide to our range."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nNot sure where to start? Our guide explains the differences "
                "between our products in two minutes."
            ),
            _("Read the guide"),
        ),
        wait("wait-8", days=2),
        email(
            "last-chance",
            _("Email 5: discount expires tomorrow"),
            # xgettext:no-python-format
            _("Your 15% off expires tomorrow"),
            _("Last chance to use WELCOME15."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nA reminder: your welcome code **WELCOME15** expires tomorrow. "
                "After that, it is gone."
            ),
            # xgettext:no-python-format
            _("Use my 15% off"),
        ),
        StepSpec(key="newsletter", kind=Step.Kind.ADD_TAG, name=_("Into the newsletter segment"), tag="newsletter"),
    ],
)

ABANDONED_CART = TemplateSpec(
    slug="abandoned_cart",
    name=_("Abandoned cart recovery"),
    # xgettext:no-python-format
    objective=_("Recover 10% of abandoned checkouts within 72 hours."),
    # xgettext:no-python-format
    metrics=_("Recovery rate: 5-15%. Open rate of email 1: 40-50%. Revenue per recipient: track it."),
    trigger_event="checkout_started",
    keyed=True,
    entry_rule=Workflow.EntryRule.EVERY_TIME,
    exit_condition={"any": [PURCHASED_THIS_CART, CART_CLEARED, UNSUBSCRIBED]},
    goal_event="order_placed",
    goal_same_key=True,
    goal_window_days=7,
    goal_target_percent=Decimal("10"),
    priority=20,
    steps=[
        # The checkout counts as abandoned when no order for it follows within an hour; the exit
        # condition, checked before every step, ends the enrollment when one does.
        wait("abandoned-after-1h", hours=1),
        email(
            "reminder",
            _("Email 1: you left something behind"),
            _("{{ first_name|default:'Hi' }}, you left something in your cart"),
            _("Your items are saved for you."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nYou were almost done. Your cart is saved, so you can pick up "
                "where you left off."
            ),
            _("Complete my order"),
            "{{ trigger.abandoned_checkout_url|default:shop_url }}",
        ),
        wait("wait-day-1", hours=23),
        email(
            "social-proof",
            _("Email 2: others love it too"),
            _("Still thinking it over?"),
            _("See why customers chose the same items."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nThe items in your cart are among our best rated. Free returns "
                "within 30 days, so you can order without risk."
            ),
            _("Back to my cart"),
            "{{ trigger.abandoned_checkout_url|default:shop_url }}",
        ),
        wait("wait-day-2", hours=24),
        email(
            "incentive",
            # xgettext:no-python-format
            _("Email 3: 10% off your cart"),
            # xgettext:no-python-format
            _("10% off to complete your order"),
            _("Use code COMEBACK10 today."),
            # xgettext:no-python-format
            _(
                "Hi {{ first_name|default:'there' }},\n\nWe would love to see you complete your order. Use code "
                "**COMEBACK10** for 10% off your cart."
            ),
            # xgettext:no-python-format
            _("Use my 10% off"),
            "{{ trigger.abandoned_checkout_url|default:shop_url }}",
        ),
        wait("wait-day-3", hours=24),
        email(
            "last-call",
            _("Email 4: last call"),
            _("Your cart expires soon"),
            _("Last chance: your items and your discount."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nThis is our last reminder. We cannot hold your items much longer, "
                "and code **COMEBACK10** expires tonight."
            ),
            _("Complete my order"),
            "{{ trigger.abandoned_checkout_url|default:shop_url }}",
        ),
    ],
)

TEMPLATES: dict[str, TemplateSpec] = {spec.slug: spec for spec in (WELCOME_SERIES, ABANDONED_CART)}


class TemplateNotFound(KeyError):
    """No template with that slug."""


def install_template(slug: str, *, language: str = "nl", name: str | None = None) -> Workflow:
    """Create a draft workflow and its messages from a library template, in ``language``."""
    spec = TEMPLATES.get(slug)
    if spec is None:
        raise TemplateNotFound(f"unknown template {slug!r}; choose one of: {', '.join(sorted(TEMPLATES))}")

    with translation.override(language), transaction.atomic():
        workflow_name = name or unique_name(Workflow, str(spec.name))
        workflow = Workflow.objects.create(
            name=workflow_name,
            objective=f"{spec.objective}\n\n{spec.metrics}".strip(),
            status=Workflow.Status.DRAFT,
            priority=spec.priority,
            trigger_event=spec.trigger_event,
            trigger_filter=spec.trigger_filter,
            keyed=spec.keyed,
            entry_rule=spec.entry_rule,
            exit_condition=spec.exit_condition,
            goal_event=spec.goal_event,
            goal_same_key=spec.goal_same_key,
            goal_window_days=spec.goal_window_days,
            goal_target_percent=spec.goal_target_percent,
            template_slug=spec.slug,
        )
        for position, step_spec in enumerate(spec.steps):
            message = None
            if step_spec.message is not None:
                message = MessageTemplate.objects.create(
                    name=unique_name(MessageTemplate, f"{workflow_name}: {step_spec.name}"),
                    subject=str(step_spec.message.subject),
                    preview_text=str(step_spec.message.preview_text),
                    body=str(step_spec.message.body),
                    cta_text=str(step_spec.message.cta_text),
                    cta_url=step_spec.message.cta_url,
                )
            Step.objects.create(
                workflow=workflow,
                position=position,
                key=step_spec.key,
                kind=step_spec.kind,
                name=str(step_spec.name),
                wait_days=step_spec.wait.get("days", 0),
                wait_hours=step_spec.wait.get("hours", 0),
                wait_minutes=step_spec.wait.get("minutes", 0),
                template=message,
                tag=step_spec.tag,
                score_delta=step_spec.score_delta,
                condition=step_spec.condition,
                if_true=step_spec.if_true,
                if_false=step_spec.if_false,
            )
    logger.info("installed template %s as workflow %s (%s)", slug, workflow.pk, language)
    return workflow


def unique_name(model, base: str) -> str:
    base = base[:190]
    candidate, number = base, 2
    while model.objects.filter(name=candidate).exists():
        candidate = f"{base} ({number})"
        number += 1
    return candidate
