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
from contacts.models import Channel
from workflows.models import REPLENISHMENT_LEAD_DAYS, Step, Workflow
from workflows.replenishment import CYCLE_PATH, DEFAULT_CYCLES, DISCONTINUED_EVENT
from workflows.targets import target

logger = logging.getLogger(__name__)

PURCHASED_SINCE_ENROLLMENT = {"event": "order_placed", "since": "enrollment"}
PURCHASED_THIS_CART = {"event": "order_placed", "since": "enrollment", "same_key": True}
CART_CLEARED = {"event": "cart_cleared", "since": "enrollment", "same_key": True}
UNSUBSCRIBED = {"field": "email_consent", "op": "eq", "value": "unsubscribed"}
ADDED_TO_CART = {"event": "product_added_to_cart", "since": "enrollment"}
CHECKOUT_SINCE_ENROLLMENT = {"event": "checkout_started", "since": "enrollment"}
CLICKED_SINCE_ENROLLMENT = {"event": "link_clicked", "since": "enrollment"}
REFUNDED_SINCE_ENROLLMENT = {"event": "refund_created", "since": "enrollment"}
DEMO_REQUESTED_SINCE_ENROLLMENT = {"event": "demo_requested", "since": "enrollment"}
CART_URL = "{{ trigger.abandoned_checkout_url|default:shop_url }}"
ORDER_URL = "{{ trigger.order_status_url|default:shop_url }}"
PRODUCT_URL = "{{ trigger.product_url|default:shop_url }}"
CONTENT_URL = "{{ trigger.content_url|default:shop_url }}"
# A placeholder the marketer replaces with the sales team's address after installing.
SALES_ADDRESS = "sales@example.com"

# Typical days until a product runs out, for the replenishment workflow: the rows the
# replenishment table starts with, which staff edit in the admin. Order lines without cycle_days
# take theirs from the table, and the reminder goes out REMINDER_LEAD_DAYS before the shortest
# cycle in the order ends.
REMINDER_LEAD_DAYS = REPLENISHMENT_LEAD_DAYS
REPLENISHMENT_CYCLES: dict[str, int] = {cycle.key: cycle.cycle_days for cycle in DEFAULT_CYCLES}


@dataclass
class MessageSpec:
    subject: Any
    preview_text: Any
    body: Any
    cta_text: Any = ""
    cta_url: str = "{{ shop_url }}"
    channel: str = Channel.EMAIL
    transactional: bool = False


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
    wait_mode: str = Step.WaitMode.DURATION
    wait_event: str = ""
    wait_data_path: str = ""
    notify_email: str = ""


@dataclass
class TemplateSpec:
    slug: str
    name: Any
    objective: Any
    trigger_event: str
    steps: list[StepSpec]
    trigger_type: str = Workflow.TriggerType.EVENT
    trigger_days: int = 0
    # For a date trigger: the contact date it fires on each year, see Workflow.trigger_date_field.
    trigger_date_field: str = ""
    trigger_filter: dict = field(default_factory=dict)
    keyed: bool = False
    entry_rule: str = Workflow.EntryRule.ONCE
    reentry_days: int = 0
    exit_condition: dict = field(default_factory=dict)
    exit_tag: str = ""
    exit_on_goal: bool = True
    restart_on_change: str = ""
    cap_messages: int | None = None
    cap_window_hours: int = 24
    goal_event: str = "order_placed"
    goal_same_key: bool = False
    goal_window_days: int = 14
    goal_target_percent: Decimal | None = None
    priority: int = 0
    metrics: Any = ""
    # The metrics prose as data: workflows.targets' format, installed as the workflow's metric targets.
    targets: list = field(default_factory=list)
    # The code the content's {{ discount_code }} shows until the marketer enters the shop's own.
    discount_code: str = ""
    # Series whose timing is the point (cart reminders, a trial's days) send despite the policy's caps.
    ignore_frequency_caps: bool = False


def email(
    key: str,
    name: Any,
    subject: Any,
    preview_text: Any,
    body: Any,
    cta_text: Any = _("Visit the shop"),
    cta_url: str = "{{ shop_url }}",
    *,
    transactional: bool = False,
) -> StepSpec:
    message = MessageSpec(subject, preview_text, body, cta_text, cta_url, transactional=transactional)
    return StepSpec(key=key, kind=Step.Kind.SEND_EMAIL, name=name, message=message)


def sms(key: str, name: Any, body: Any) -> StepSpec:
    message = MessageSpec(subject="", preview_text="", body=body, cta_text="", cta_url="", channel=Channel.SMS)
    return StepSpec(key=key, kind=Step.Kind.SEND_SMS, name=name, message=message)


def wait(key: str, **duration: int) -> StepSpec:
    return StepSpec(key=key, kind=Step.Kind.WAIT, wait=duration)


def wait_for_event(key: str, event: str, *, timeout_days: int, if_true: str = "next", if_false: str = "next") -> StepSpec:
    """Wait until ``event`` happens (take ``if_true``) or ``timeout_days`` pass (take ``if_false``)."""
    return StepSpec(
        key=key,
        kind=Step.Kind.WAIT,
        wait={"days": timeout_days},
        wait_mode=Step.WaitMode.UNTIL_EVENT,
        wait_event=event,
        if_true=if_true,
        if_false=if_false,
    )


def condition(key: str, name: Any, tree: dict, *, if_true: str, if_false: str) -> StepSpec:
    return StepSpec(key=key, kind=Step.Kind.CONDITION, name=name, condition=tree, if_true=if_true, if_false=if_false)


def add_tag(key: str, name: Any, tag: str) -> StepSpec:
    return StepSpec(key=key, kind=Step.Kind.ADD_TAG, name=name, tag=tag)


WELCOME_SERIES = TemplateSpec(
    slug="welcome_series",
    discount_code="WELCOME15",
    ignore_frequency_caps=True,
    name=_("Welcome series"),
    # xgettext:no-python-format
    objective=_("Turn new subscribers into first-time buyers: 8% make a first purchase within 14 days."),
    # xgettext:no-python-format
    metrics=_("First purchase within 14 days: 5-10%. Open rate of email 1: 50% or more. Click rate: 5-10%."),
    targets=[
        target("goal_rate", min=5, max=10),
        target("open_rate", "welcome", min=50),
        target("click_rate", min=5, max=10),
    ],
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
            _(
                # xgettext:no-python-format
                "Hi {{ first_name|default:'there' }},\n\nThank you for signing up. As a welcome, here is **15% off** your "
                "first order with code **{{ discount_code }}**.\n\nThe code is valid for 8 days."
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
                "use ourselves: made well, shipped fast, fairly priced.\n\nYour code **{{ discount_code }}** is still waiting for you."
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
            _("Last chance to use {{ discount_code }}."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nA reminder: your welcome code **{{ discount_code }}** expires tomorrow. "
                "After that, it is gone."
            ),
            # xgettext:no-python-format
            _("Use my 15% off"),
        ),
        StepSpec(key="newsletter", kind=Step.Kind.ADD_TAG, name=_("Into the newsletter segment"), tag="newsletter"),
    ],
)

# The cart emails the email-only and the email + SMS cart workflows share.
CART_REMINDER = email(
    "reminder",
    _("Email 1: you left something behind"),
    _("{{ first_name|default:'Hi' }}, you left something in your cart"),
    _("Your items are saved for you."),
    _("Hi {{ first_name|default:'there' }},\n\nYou were almost done. Your cart is saved, so you can pick up where you left off."),
    _("Complete my order"),
    CART_URL,
)

CART_SOCIAL_PROOF = email(
    "social-proof",
    _("Email 2: others love it too"),
    _("Still thinking it over?"),
    _("See why customers chose the same items."),
    _(
        "Hi {{ first_name|default:'there' }},\n\nThe items in your cart are among our best rated. Free returns "
        "within 30 days, so you can order without risk."
    ),
    _("Back to my cart"),
    CART_URL,
)

CART_INCENTIVE = email(
    "incentive",
    # xgettext:no-python-format
    _("Email 3: 10% off your cart"),
    # xgettext:no-python-format
    _("10% off to complete your order"),
    _("Use code {{ discount_code }} today."),
    _(
        # xgettext:no-python-format
        "Hi {{ first_name|default:'there' }},\n\nWe would love to see you complete your order. Use code "
        "**{{ discount_code }}** for 10% off your cart."
    ),
    # xgettext:no-python-format
    _("Use my 10% off"),
    CART_URL,
)

CART_LAST_CALL = email(
    "last-call",
    _("Email 4: last call"),
    _("Your cart expires soon"),
    _("Last chance: your items and your discount."),
    _(
        "Hi {{ first_name|default:'there' }},\n\nThis is our last reminder. We cannot hold your items much longer, "
        "and code **{{ discount_code }}** expires tonight."
    ),
    _("Complete my order"),
    CART_URL,
)


ABANDONED_CART = TemplateSpec(
    slug="abandoned_cart",
    discount_code="COMEBACK10",
    ignore_frequency_caps=True,
    name=_("Abandoned cart recovery"),
    # xgettext:no-python-format
    objective=_("Recover 10% of abandoned checkouts within 72 hours."),
    # xgettext:no-python-format
    metrics=_("Recovery rate: 5-15%. Open rate of email 1: 40-50%. Revenue per recipient: track it."),
    targets=[target("goal_rate", min=5, max=15), target("open_rate", "reminder", min=40, max=50)],
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
        # The checkout counts as abandoned when no order for it follows within an hour. The exit
        # condition is checked before every step, so such an order ends the enrollment.
        wait("abandoned-after-1h", hours=1),
        CART_REMINDER,
        wait("wait-day-1", hours=23),
        CART_SOCIAL_PROOF,
        wait("wait-day-2", hours=24),
        CART_INCENTIVE,
        wait("wait-day-3", hours=24),
        CART_LAST_CALL,
    ],
)

ABANDONED_CART_SMS = TemplateSpec(
    slug="abandoned_cart_sms",
    discount_code="COMEBACK10",
    ignore_frequency_caps=True,
    name=_("Abandoned cart recovery with SMS"),
    objective=_(
        # xgettext:no-python-format
        "Recover 12% of abandoned checkouts of contacts with SMS consent within 72 hours, with two SMS between the emails."
    ),
    metrics=_(
        # xgettext:no-python-format
        "Recovery rate: 8-18%. Click rate of the SMS: 10-20%. SMS opt-out rate: below 2%. Revenue per recipient: track it."
    ),
    targets=[
        target("goal_rate", min=8, max=18),
        target("click_rate", "sms-reminder", min=10, max=20),
        target("click_rate", "sms-discount", min=10, max=20),
        target("unsubscribe_rate", "sms-reminder", max=2),
        target("unsubscribe_rate", "sms-discount", max=2),
    ],
    trigger_event="checkout_started",
    trigger_filter={"field": "sms_consent", "op": "eq", "value": "subscribed"},
    keyed=True,
    entry_rule=Workflow.EntryRule.EVERY_TIME,
    exit_condition={"any": [PURCHASED_THIS_CART, CART_CLEARED, UNSUBSCRIBED]},
    goal_event="order_placed",
    goal_same_key=True,
    goal_window_days=7,
    goal_target_percent=Decimal("12"),
    # Above the email-only cart workflow, so a contact in both gets the SMS version's messages first.
    priority=25,
    steps=[
        wait("abandoned-after-1h", hours=1),
        CART_REMINDER,
        wait("wait-hour-4", hours=3),
        sms(
            "sms-reminder",
            _("SMS 1: your cart is waiting"),
            _(
                "{{ shop_name }}: your cart is still waiting for you. Complete your order here: "
                "{{ trigger.abandoned_checkout_url|default:shop_url }}"
            ),
        ),
        wait("wait-day-1", hours=20),
        CART_SOCIAL_PROOF,
        wait("wait-day-2", hours=24),
        CART_INCENTIVE,
        wait("wait-discount-sms", hours=3),
        sms(
            "sms-discount",
            _("SMS 2: discount alert"),
            _(
                # xgettext:no-python-format
                "{{ shop_name }}: 10% off your cart with code {{ discount_code }}, today only. "
                "{{ trigger.abandoned_checkout_url|default:shop_url }}"
            ),
        ),
        wait("wait-day-3", hours=21),
        CART_LAST_CALL,
    ],
)

POST_PURCHASE = TemplateSpec(
    slug="post_purchase",
    name=_("Post-purchase: first order"),
    # xgettext:no-python-format
    objective=_("Turn first-time buyers into repeat customers: 15% place a second order within 60 days."),
    metrics=_(
        # xgettext:no-python-format
        "Second order within 60 days: 10-20%. Review rate after the request: 5-10%. Open rate of the shipping email: 60% or more."
    ),
    targets=[
        target("goal_rate", min=10, max=20),
        # Reviews are not counted here; clicks on the request's "Write a review" button stand in for them.
        target("click_rate", "review-request", min=5, max=10),
        target("open_rate", "shipping", min=60),
    ],
    trigger_event="order_placed",
    trigger_filter={"field": "order_count", "op": "eq", "value": 1},
    # A refund hands the contact to the returns workflow, which the same refund_created event starts.
    exit_condition={"any": [REFUNDED_SINCE_ENROLLMENT, UNSUBSCRIBED]},
    goal_event="order_placed",
    # A second order counts as the goal but does not end the series: the later emails adapt to it.
    exit_on_goal=False,
    goal_window_days=60,
    goal_target_percent=Decimal("15"),
    priority=30,
    steps=[
        email(
            "confirmation",
            _("Email 1: order confirmation"),
            _("Thank you for your order, {{ first_name|default:'dear customer' }}!"),
            _("We have received your order and are getting it ready."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nThank you for your first order at {{ shop_name }}. We have "
                "received it and are getting it ready. You will get an email as soon as it ships."
            ),
            _("View my order"),
            ORDER_URL,
            transactional=True,
        ),
        wait_for_event("wait-shipped", "order_fulfilled", timeout_days=14, if_false="wait-delivered"),
        email(
            "shipping",
            _("Email 2: your order has shipped"),
            _("Your order is on its way"),
            _("Track your parcel."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nGood news: your order has shipped. Follow your parcel with the "
                "link below."
            ),
            _("Track my parcel"),
            ORDER_URL,
            transactional=True,
        ),
        # Without a delivery event within 14 days the series goes on anyway: not every carrier reports delivery.
        wait_for_event("wait-delivered", "order_delivered", timeout_days=14),
        wait("wait-guide", days=3),
        email(
            "product-guide",
            _("Email 3: product guide"),
            _("Get the most out of your purchase"),
            _("Tips for using and caring for your products."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nYour order arrived a few days ago. These tips help you get the "
                "most out of it:\n\n- Read the care instructions on the label.\n- Store it in a dry place.\n- Questions? "
                "Just reply to this email."
            ),
            _("Read the guide"),
        ),
        wait("wait-review", days=4),
        email(
            "review-request",
            _("Email 4: review request"),
            _("How do you like your order?"),
            _("Your review helps other customers choose."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nYou have had your order for a week now. How do you like it? "
                "A short review helps other customers choose, and helps us improve."
            ),
            _("Write a review"),
        ),
        wait("wait-cross-sell", days=7),
        email(
            "cross-sell",
            _("Email 5: goes well with your purchase"),
            _("Goes well with your purchase"),
            _("Picked for you, based on your order."),
            _(
                "Hi {{ first_name|default:'there' }},\n\n{% if order_count > 1 %}Thank you for ordering again! Based on "
                "your orders so far, we picked these for you.{% else %}Customers who bought what you bought often add "
                "these. Have a look at what goes well with your purchase.{% endif %}"
            ),
            _("See the suggestions"),
        ),
        wait("wait-loyalty", days=7),
        email(
            "loyalty",
            _("Email 6: loyalty programme"),
            _("You are now earning points"),
            _("Every order brings you closer to a reward."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nAs a customer of {{ shop_name }} you save points with every "
                "order.{% if order_count > 1 %} Your {{ order_count }} orders have already earned you points.{% endif %} "
                "Exchange them for discounts and early access to new products."
            ),
            _("See my points"),
        ),
        add_tag("repeat-customer", _("Into the repeat-customer segment"), "repeat-customer"),
    ],
)

RETURNS_FOLLOW_UP = TemplateSpec(
    slug="returns_follow_up",
    name=_("Returns follow-up"),
    objective=_(
        # xgettext:no-python-format
        "Keep customers who return an order: 10% order again within 30 days. Takes over from the post-purchase "
        "series, which the same refund ends."
    ),
    # xgettext:no-python-format
    metrics=_(
        "Order within 30 days: 5-15%. Open rate of the return confirmation: 60% or more. Click rate of the help email: 5-10%."
    ),
    targets=[
        target("goal_rate", min=5, max=15),
        target("open_rate", "return-received", min=60),
        target("click_rate", "exchange-help", min=5, max=10),
    ],
    trigger_event="refund_created",
    entry_rule=Workflow.EntryRule.EVERY_TIME,
    exit_condition={"any": [PURCHASED_SINCE_ENROLLMENT, UNSUBSCRIBED]},
    goal_event="order_placed",
    goal_window_days=30,
    goal_target_percent=Decimal("10"),
    # Above post-purchase: while a return is handled, this workflow speaks for the shop.
    priority=35,
    steps=[
        email(
            "return-received",
            _("Email 1: return processed"),
            _("We have processed your return"),
            _("Your refund is on its way."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nWe have received your return and sent your refund. Depending "
                "on your bank it can take a few days before you see it in your account."
            ),
            _("View my order"),
            ORDER_URL,
            transactional=True,
        ),
        wait("wait-help", days=3),
        email(
            "exchange-help",
            _("Email 2: help finding the right one"),
            _("Can we help you find the right one?"),
            _("Another size, colour or model: we are happy to advise."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nA return happens: the size, the colour or the fit was not what "
                "you hoped for. Reply to this email and we will help you find something that suits you."
            ),
            _("Find an alternative"),
        ),
        wait("wait-feedback", days=7),
        email(
            "feedback",
            _("Email 3: what could we do better?"),
            _("What could we have done better?"),
            _("Two questions, one minute."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nWe want every order to be right the first time. Tell us what "
                "was wrong with the product you returned, so we can improve our descriptions and sizes."
            ),
            _("Share my feedback"),
        ),
    ],
)

BROWSE_ABANDONMENT = TemplateSpec(
    slug="browse_abandonment",
    name=_("Browse abandonment"),
    # xgettext:no-python-format
    objective=_("Bring product viewers back: 3% of them order within 7 days."),
    # xgettext:no-python-format
    metrics=_("Order within 7 days: 2-5%. Open rate: 30-45%. Click rate: 3-8%. At most one browse email per day."),
    targets=[
        target("goal_rate", min=2, max=5),
        target("open_rate", min=30, max=45),
        target("click_rate", min=3, max=8),
    ],
    trigger_event="product_viewed",
    # One enrollment per day at most, and a running one blocks the next view of the same category.
    entry_rule=Workflow.EntryRule.ONCE_PER_DAYS,
    reentry_days=1,
    # A view in another category starts the series again with that product.
    restart_on_change="category",
    # A restart must not bring a second browse email on one day.
    cap_messages=1,
    cap_window_hours=24,
    exit_condition={"any": [PURCHASED_SINCE_ENROLLMENT, ADDED_TO_CART, UNSUBSCRIBED]},
    goal_event="order_placed",
    goal_window_days=7,
    goal_target_percent=Decimal("3"),
    priority=5,
    steps=[
        wait("wait-2h", hours=2),
        # A checkout started since the view belongs to the cart workflow, so this one stops.
        condition(
            "carted-or-checked-out",
            _("Added to cart or started checkout?"),
            {"any": [ADDED_TO_CART, CHECKOUT_SINCE_ENROLLMENT]},
            if_true="exit",
            if_false="next",
        ),
        email(
            "reminder",
            _("Email 1: still interested?"),
            _("Still thinking about {{ trigger.product_title|default:'it' }}?"),
            _("The product you looked at is still available."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nYou were looking at **{{ trigger.product_title|default:'one of "
                "our products' }}**. It is still available, but popular items sell out fast."
            ),
            _("View the product"),
            PRODUCT_URL,
        ),
        wait("wait-similar", hours=24),
        email(
            "similar-products",
            _("Email 2: similar products"),
            _("You might also like these"),
            _("Similar products, picked for you."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nNot quite what you were looking for? These products are similar "
                "and just as popular."
            ),
            _("See similar products"),
        ),
        wait("wait-bestsellers", hours=24),
        email(
            "category-bestsellers",
            _("Email 3: bestsellers in the category"),
            _("The bestsellers other customers chose"),
            _("Top rated in the category you browsed."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nThese are the bestsellers in the category you browsed, rated "
                "highest by our customers."
            ),
            _("See the bestsellers"),
        ),
    ],
)

WIN_BACK = TemplateSpec(
    slug="win_back",
    discount_code="WELCOMEBACK20",
    name=_("Win-back of inactive customers"),
    # xgettext:no-python-format
    objective=_("Win back customers without an order for 60 days: 5% order again within 60 days."),
    metrics=_(
        # xgettext:no-python-format
        "Reactivation rate: 3-8%. Open rate: 15-25%. Contacts tagged suppressed-inactive: track them and leave them "
        "out of promotions."
    ),
    targets=[target("goal_rate", min=3, max=8), target("open_rate", min=15, max=25)],
    trigger_type=Workflow.TriggerType.INACTIVITY,
    trigger_event="order_placed",
    trigger_days=60,
    # Once per lapse: an order ends the lapse, and 60 quiet days after it start the next one.
    entry_rule=Workflow.EntryRule.EVERY_TIME,
    # A purchase or a click on any email brings the contact back into the active segment. An
    # unsubscribe ends the enrollment too, without the tag, as it ends every promotional workflow.
    exit_condition={"any": [PURCHASED_SINCE_ENROLLMENT, CLICKED_SINCE_ENROLLMENT]},
    exit_tag="active",
    goal_event="order_placed",
    goal_window_days=60,
    goal_target_percent=Decimal("5"),
    priority=0,
    steps=[
        email(
            "miss-you",
            _("Email 1: we miss you"),
            _("We miss you, {{ first_name|default:'dear customer' }}"),
            _("A lot has changed since your last visit."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nIt has been a while since your last order at {{ shop_name }}. "
                "We have been busy: new products, better packaging and faster delivery."
            ),
            _("See what is new"),
        ),
        wait("wait-day-75", days=15),
        email(
            "new-arrivals",
            _("Email 2: new since your last order"),
            _("New since your last order"),
            _("The newest products, picked for you."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nThese products are new since your last order. Have a look at "
                "what other customers are buying now."
            ),
            _("See the new products"),
        ),
        wait("wait-day-90", days=15),
        email(
            "offer",
            # xgettext:no-python-format
            _("Email 3: 20% off to come back"),
            # xgettext:no-python-format
            _("20% off your next order"),
            _("Use code {{ discount_code }} this week."),
            _(
                # xgettext:no-python-format
                "Hi {{ first_name|default:'there' }},\n\nWe would like to see you again. Use code **{{ discount_code }}** for "
                "**20% off** your next order. The code is valid for 7 days."
            ),
            # xgettext:no-python-format
            _("Use my 20% off"),
        ),
        wait("wait-day-105", days=15),
        email(
            "stay-subscribed",
            _("Email 4: stay subscribed?"),
            _("Do you still want to hear from us?"),
            _("One click keeps you on the list."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nWe have not seen you in a while, and we do not want to fill your "
                "inbox with emails you do not read. Click the button to keep getting our news and offers. If we do not "
                "hear from you, we will email you less often."
            ),
            _("Yes, keep me subscribed"),
        ),
        # A week to respond to the last email. A contact who clicks or orders has left by then through
        # the exit condition, so a contact still enrolled counts as inactive.
        wait("wait-answer", days=7),
        add_tag("suppressed-inactive", _("Into the suppressed-inactive segment"), "suppressed-inactive"),
    ],
)

VIP_RECOGNITION = TemplateSpec(
    slug="vip_recognition",
    discount_code="VIP15",
    name=_("VIP recognition"),
    # xgettext:no-python-format
    objective=_("Thank customers when they reach a VIP tier and keep them buying: 25% order again within 30 days."),
    # xgettext:no-python-format
    metrics=_("Order within 30 days: 20-30%. Open rate: 50% or more. Use of the VIP code: 10-20%."),
    # Use of the VIP code has no counter, so it has no target.
    targets=[target("goal_rate", min=20, max=30), target("open_rate", min=50)],
    # contacts.vip records the event when a contact rises into a tier (VIP tiers in the admin). Once
    # per contact: the first tier welcomes the contact, a later rise to a higher tier does not.
    trigger_event="vip_tier_reached",
    exit_condition=UNSUBSCRIBED,
    goal_event="order_placed",
    goal_window_days=30,
    goal_target_percent=Decimal("25"),
    priority=15,
    steps=[
        add_tag("vip", _("Into the VIP segment"), "vip"),
        email(
            "congratulations",
            _("Email 1: welcome to VIP"),
            _("{{ first_name|default:'Hi' }}, you are now a VIP"),
            _("Thank you for your loyalty."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nYou are one of our most loyal customers, and that deserves a "
                "thank you. From today you are a **VIP** at {{ shop_name }}."
            ),
            _("Discover my benefits"),
        ),
        wait("wait-benefits", days=3),
        email(
            "benefits",
            _("Email 2: your VIP benefits"),
            _("Your VIP benefits at a glance"),
            _("Free shipping, early access and more."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nAs a VIP you get:\n\n- Free shipping on every order\n- Early "
                "access to new products and sales\n- A personal contact for your questions"
            ),
            _("Shop with my benefits"),
        ),
        wait("wait-offer", days=7),
        email(
            "vip-offer",
            # xgettext:no-python-format
            _("Email 3: VIP-only offer"),
            # xgettext:no-python-format
            _("Only for VIPs: 15% off everything"),
            _("Your personal code is valid for 7 days."),
            _(
                # xgettext:no-python-format
                "Hi {{ first_name|default:'there' }},\n\nAn offer only our VIPs get: **15% off** the whole shop with code "
                "**{{ discount_code }}**. The code is valid for 7 days."
            ),
            _("Use my VIP code"),
        ),
    ],
)

B2B_LEAD_NURTURING = TemplateSpec(
    slug="b2b_lead_nurturing",
    name=_("B2B lead nurturing"),
    # xgettext:no-python-format
    objective=_("Turn content downloads into sales conversations: 10% request a demo within 30 days."),
    # xgettext:no-python-format
    metrics=_("Demo requests within 30 days: 5-15%. Leads handed to sales (score 50 or more): 15-25%. Click rate: 3-6%."),
    # Leads handed to sales have no counter of their own, so they have no target.
    targets=[target("goal_rate", min=5, max=15), target("click_rate", min=3, max=6)],
    trigger_event="content_downloaded",
    exit_condition={"any": [DEMO_REQUESTED_SINCE_ENROLLMENT, UNSUBSCRIBED]},
    goal_event="demo_requested",
    goal_window_days=30,
    goal_target_percent=Decimal("10"),
    priority=10,
    steps=[
        email(
            "content",
            _("Email 1: your download"),
            _("Here is your download: {{ trigger.content_title|default:'your guide' }}"),
            _("Your copy is ready."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nThank you for your interest. Your copy of "
                "**{{ trigger.content_title|default:'our guide' }}** is ready to read."
            ),
            _("Download now"),
            CONTENT_URL,
        ),
        wait("wait-day-3", days=3),
        email(
            "related-content",
            _("Email 2: related content"),
            _("More on this topic"),
            _("Three articles that go deeper."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nIf you liked the guide, these articles go one step further: "
                "practical examples, checklists and the mistakes to avoid."
            ),
            _("Read the articles"),
        ),
        StepSpec(key="score-engaged", kind=Step.Kind.CHANGE_SCORE, name=_("Still engaged after 3 days: +5"), score_delta=5),
        wait("wait-day-7", days=4),
        email(
            "case-study",
            _("Email 3: case study"),
            _("How a company like yours did it"),
            _("A customer story with concrete results."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nHow does this work in practice? Read how one of our customers "
                "saved hours a week and what they would do differently today."
            ),
            _("Read the case study"),
        ),
        wait("wait-day-12", days=5),
        email(
            "education",
            _("Email 4: best practices"),
            _("Five best practices from our experts"),
            _("What the best teams do differently."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nOur experts have worked with hundreds of teams. These five "
                "habits make the biggest difference."
            ),
            _("Read the best practices"),
        ),
        condition(
            "sales-ready",
            _("Lead score 50 or more?"),
            {"field": "lead_score", "op": "gte", "value": 50},
            if_true="notify-sales",
            if_false="next",
        ),
        wait("wait-demo", days=7),
        email(
            "demo-invitation",
            _("Email 5: soft demo invitation"),
            _("Shall we show you how it works?"),
            _("A short demo, without obligation."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nWould you like to see how this works for your team? In a "
                "30-minute demo we show it with your own questions. No obligation."
            ),
            _("Plan a demo"),
        ),
        # A week to react to the invitation. Exiting in the same tick as a send would withdraw that
        # message, so the path ends with this second look at the score.
        wait("wait-recheck", days=7),
        condition(
            "sales-ready-after-demo",
            _("Lead score 50 or more after the demo invitation?"),
            {"field": "lead_score", "op": "gte", "value": 50},
            if_true="next",
            if_false="exit",
        ),
        StepSpec(
            key="notify-sales",
            kind=Step.Kind.NOTIFY_STAFF,
            name=_("Notify sales"),
            # The marketer replaces the placeholder with the sales team's address before activating.
            notify_email=SALES_ADDRESS,
        ),
        add_tag("tag-sales-ready", _("Into the sales-ready segment"), "sales-ready"),
    ],
)

SAAS_TRIAL_CONVERSION = TemplateSpec(
    slug="saas_trial_conversion",
    ignore_frequency_caps=True,
    name=_("SaaS trial conversion"),
    # xgettext:no-python-format
    objective=_("Turn trial users into paying customers: 15% subscribe within 21 days of starting the trial."),
    # xgettext:no-python-format
    metrics=_("Trial to paid: 10-25%. Open rate: 40-60%. Inactive trial users who book a demo after the help email: 5-10%."),
    targets=[
        target("goal_rate", min=10, max=25),
        target("open_rate", min=40, max=60),
        # Demo bookings are not counted here; clicks on the help email's "Book a free demo" button stand in for them.
        target("click_rate", "need-help", min=5, max=10),
    ],
    # The catalogue has no trial_started event: a sign-up with the property plan = trial starts the trial.
    trigger_event="signed_up",
    trigger_filter={"property": "plan", "op": "eq", "value": "trial"},
    exit_condition={"any": [PURCHASED_SINCE_ENROLLMENT, UNSUBSCRIBED]},
    goal_event="order_placed",
    goal_window_days=21,
    goal_target_percent=Decimal("15"),
    priority=10,
    steps=[
        wait("wait-day-1", days=1),
        email(
            "day-1",
            _("Email 1: get started"),
            _("Your first step in {{ shop_name }}"),
            _("Set up your account in five minutes."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nWelcome to your trial. Start with one thing: set up your account. "
                "It takes five minutes and everything else builds on it."
            ),
            _("Set up my account"),
        ),
        wait("wait-day-2", days=1),
        email(
            "day-2",
            _("Email 2: the key feature"),
            _("The feature our customers use most"),
            _("Save time from day one."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nMost customers start with one feature, because it saves the most "
                "time. Here is how to use it in three steps."
            ),
            _("Try it now"),
        ),
        wait("wait-day-4", days=2),
        email(
            "day-4",
            _("Email 3: tips and tricks"),
            _("Three tips to get more out of your trial"),
            _("Small settings, big difference."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nThese three tips help you get more out of your trial:\n\n"
                "- Invite a colleague.\n- Connect your data.\n- Set up your first automation."
            ),
            _("Open my account"),
        ),
        wait("wait-day-6", days=2),
        # Trial users who have not been back for 3 days get an offer of help the day before email 4.
        condition(
            "inactive",
            _("No page viewed in the last 3 days?"),
            {"not": {"event": "page_viewed", "within_days": 3}},
            if_true="next",
            if_false="wait-day-7",
        ),
        email(
            "need-help",
            _("Email: need help?"),
            _("Can we help you get started?"),
            _("Book a free demo with one of our experts."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nWe noticed you have not been back for a few days. Getting "
                "started can be hard, so let one of our experts show you around in a free 20-minute demo."
            ),
            _("Book a free demo"),
        ),
        wait("wait-day-7", days=1),
        email(
            "day-7",
            _("Email 4: halfway"),
            _("Halfway through your trial"),
            _("What you have set up so far, and what is next."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nYou are halfway through your trial. Teams that see the most "
                "value in the first week have set up at least one automation. Have you?"
            ),
            _("Continue where I left off"),
        ),
        wait("wait-day-10", days=3),
        email(
            "day-10",
            _("Email 5: customer story"),
            _("How other teams use {{ shop_name }}"),
            _("A customer story with concrete results."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nCurious how other teams use it? Read how one of our customers "
                "saves a day a week."
            ),
            _("Read the story"),
        ),
        wait("wait-day-12", days=2),
        email(
            "day-12",
            _("Email 6: trial ends in 2 days"),
            _("Your trial ends in 2 days"),
            _("Choose a plan and keep your work."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nYour trial ends in 2 days. Choose a plan now to keep everything "
                "you have set up."
            ),
            _("Choose my plan"),
        ),
        wait("wait-day-14", days=2),
        email(
            "day-14",
            _("Email 7: trial ends today"),
            _("Your trial ends today"),
            _("Last chance to keep your account."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nYour trial ends today. Choose a plan to keep your account and "
                "everything in it."
            ),
            _("Choose my plan"),
        ),
    ],
)

# A shop or its subscription app sends subscription_started; staff marking a product discontinued
# records product_discontinued with the key of each enrollment whose order contains it.
SUBSCRIBED_SINCE_ENROLLMENT = {"event": "subscription_started", "since": "enrollment"}
DISCONTINUED_THIS_ORDER = {"event": DISCONTINUED_EVENT, "since": "enrollment", "same_key": True}

REPLENISHMENT = TemplateSpec(
    slug="replenishment",
    discount_code="REORDER5",
    name=_("Replenishment reminder"),
    # xgettext:no-python-format
    objective=_("Remind customers to reorder before they run out: 20% reorder within 60 days of their order."),
    # xgettext:no-python-format
    metrics=_("Reorder rate: 15-30%. Click rate of the reminder: 8-15%. Subscribe-and-save sign-ups: 2-5% of recipients."),
    targets=[
        target("goal_rate", min=15, max=30),
        target("click_rate", "reminder", min=8, max=15),
        # Sign-ups are not counted here; clicks on the email's "Start my subscription" button stand in for them.
        target("click_rate", "subscribe-and-save", min=2, max=5),
    ],
    trigger_event="order_placed",
    # One enrollment per order: each order starts its own countdown. An order with the same product
    # ends the previous one when it enrolls (workflows.engine.enroll.end_reordered); an order of
    # something else leaves it running.
    keyed=True,
    entry_rule=Workflow.EntryRule.EVERY_TIME,
    exit_condition={"any": [SUBSCRIBED_SINCE_ENROLLMENT, DISCONTINUED_THIS_ORDER, UNSUBSCRIBED]},
    goal_event="order_placed",
    # Any order counts as the goal, but only a reorder of the product ends the countdown.
    exit_on_goal=False,
    goal_window_days=60,
    goal_target_percent=Decimal("20"),
    priority=10,
    steps=[
        StepSpec(
            key="wait-until-almost-empty",
            kind=Step.Kind.WAIT,
            name=_("Until 7 days before the product runs out"),
            wait={"days": REMINDER_LEAD_DAYS},
            wait_mode=Step.WaitMode.FROM_DATA,
            # Order lines without cycle_days take them from the replenishment table (workflows.replenishment).
            wait_data_path=CYCLE_PATH,
        ),
        email(
            "reminder",
            _("Email 1: running low?"),
            _("Running low, {{ first_name|default:'dear customer' }}?"),
            _("Reorder now and never run out."),
            _(
                "Hi {{ first_name|default:'there' }},\n\nBy our count your last order runs out in about a week. Reorder "
                "now, so you never run out."
            ),
            _("Reorder now"),
        ),
        wait("wait-reorder-prompt", days=5),
        email(
            "reorder-prompt",
            # xgettext:no-python-format
            _("Email 2: reorder with 5% off"),
            # xgettext:no-python-format
            _("5% off your reorder"),
            _("Use code {{ discount_code }} this week."),
            _(
                # xgettext:no-python-format
                "Hi {{ first_name|default:'there' }},\n\nYour supply is almost gone. Reorder this week with code "
                "**{{ discount_code }}** for 5% off."
            ),
            # xgettext:no-python-format
            _("Reorder with 5% off"),
        ),
        wait("wait-subscribe", days=7),
        email(
            "subscribe-and-save",
            _("Email 3: subscribe and save"),
            _("Never run out again: subscribe and save"),
            _("Automatic delivery, always a discount."),
            _(
                # xgettext:no-python-format
                "Hi {{ first_name|default:'there' }},\n\nWith a subscription your order arrives automatically, just "
                "before you run out, and you save 10% on every delivery. Pause or stop at any time."
            ),
            _("Start my subscription"),
        ),
    ],
)

# The VIP templates below read the contact's VIP tier, which contacts.vip keeps up to date.
IN_VIP_TIER = {"field": "vip_tier", "op": "is_set"}

VIP_BIRTHDAY = TemplateSpec(
    slug="vip_birthday",
    discount_code="VIPBIRTHDAY20",
    name=_("VIP birthday gift"),
    # xgettext:no-python-format
    objective=_("Celebrate VIP customers' birthdays with a gift: 30% order within 14 days of the birthday email."),
    # xgettext:no-python-format
    metrics=_("Order within 14 days: 20-35%. Open rate: 55% or more. Use of the birthday code: 15-25%."),
    # Use of the birthday code has no counter, so it has no target.
    targets=[target("goal_rate", min=20, max=35), target("open_rate", min=55)],
    # Each year on the date in the birthday attribute (YYYY-MM-DD), at 09:00 in the contact's time zone.
    trigger_type=Workflow.TriggerType.DATE,
    trigger_event="",
    trigger_date_field="birthday",
    trigger_filter=IN_VIP_TIER,
    # Every birthday: the year is the enrollment's key, so each year enrolls once.
    entry_rule=Workflow.EntryRule.EVERY_TIME,
    exit_condition=UNSUBSCRIBED,
    goal_event="order_placed",
    goal_window_days=14,
    goal_target_percent=Decimal("30"),
    priority=15,
    steps=[
        email(
            "birthday-gift",
            _("Email 1: birthday gift"),
            _("Happy birthday, {{ first_name|default:'dear customer' }}! A gift for you"),
            _("Because our VIPs deserve a present."),
            _(
                # xgettext:no-python-format
                "Hi {{ first_name|default:'there' }},\n\nHappy birthday from all of us at {{ shop_name }}! As one of our "
                "VIPs you get a present: **20% off** your next order with code **{{ discount_code }}**.\n\nThe code is "
                "valid for 14 days. Enjoy your day!"
            ),
            _("Unwrap my gift"),
        ),
    ],
)

# The day a contact becomes VIP has its own date too, so the filter keeps contacts out until the
# first anniversary: 300 days leave room for the time of day and the contact's time zone.
VIP_FOR_ALMOST_A_YEAR = {"field": "vip_since", "op": "older_than_days", "value": 300}

VIP_ANNIVERSARY = TemplateSpec(
    slug="vip_anniversary",
    discount_code="VIPTHANKS15",
    name=_("VIP anniversary"),
    # xgettext:no-python-format
    objective=_("Thank VIP customers every year on the day they became VIP: 25% order within 14 days."),
    # xgettext:no-python-format
    metrics=_("Order within 14 days: 15-30%. Open rate: 50% or more. Use of the anniversary code: 10-20%."),
    # Use of the anniversary code has no counter, so it has no target.
    targets=[target("goal_rate", min=15, max=30), target("open_rate", min=50)],
    # Each year on the date the contact first reached a VIP tier (vip_since), at 09:00 in its time zone.
    trigger_type=Workflow.TriggerType.DATE,
    trigger_event="",
    trigger_date_field="vip_since",
    trigger_filter={"all": [IN_VIP_TIER, VIP_FOR_ALMOST_A_YEAR]},
    entry_rule=Workflow.EntryRule.EVERY_TIME,
    exit_condition=UNSUBSCRIBED,
    goal_event="order_placed",
    goal_window_days=14,
    goal_target_percent=Decimal("25"),
    priority=15,
    steps=[
        email(
            "anniversary-thanks",
            _("Email 1: thank you on the VIP anniversary"),
            _("{{ first_name|default:'Hi' }}, happy VIP anniversary!"),
            _("Thank you for your loyalty, with a reward."),
            _(
                # xgettext:no-python-format
                "Hi {{ first_name|default:'there' }},\n\nOn this day you became a VIP at {{ shop_name }}. Thank you for "
                "your loyalty ever since.\n\nAs a thank you, here is a reward: **15% off** your next order with code "
                "**{{ discount_code }}**. The code is valid for 14 days."
            ),
            _("Claim my reward"),
        ),
    ],
)

TEMPLATES: dict[str, TemplateSpec] = {
    spec.slug: spec
    for spec in (
        WELCOME_SERIES,
        ABANDONED_CART,
        ABANDONED_CART_SMS,
        POST_PURCHASE,
        RETURNS_FOLLOW_UP,
        BROWSE_ABANDONMENT,
        WIN_BACK,
        VIP_RECOGNITION,
        VIP_BIRTHDAY,
        VIP_ANNIVERSARY,
        B2B_LEAD_NURTURING,
        SAAS_TRIAL_CONVERSION,
        REPLENISHMENT,
    )
}


class TemplateNotFound(KeyError):
    """No template with that slug."""


def install_template(
    slug: str,
    *,
    language: str = "nl",
    name: str | None = None,
    discount_code: str | None = None,
    from_email: str = "",
) -> Workflow:
    """Create a draft workflow and its messages from a library template, in ``language``.

    ``discount_code`` replaces the template's suggested code, which the content shows through
    {{ discount_code }}; ``from_email`` becomes the sender of every email, which otherwise is
    DEFAULT_FROM_EMAIL. The brand name and shop URL come from settings when a message renders.
    """
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
            trigger_type=spec.trigger_type,
            trigger_event=spec.trigger_event,
            trigger_days=spec.trigger_days,
            trigger_date_field=spec.trigger_date_field,
            trigger_filter=spec.trigger_filter,
            keyed=spec.keyed,
            entry_rule=spec.entry_rule,
            reentry_days=spec.reentry_days,
            exit_condition=spec.exit_condition,
            exit_tag=spec.exit_tag,
            restart_on_change=spec.restart_on_change,
            cap_messages=spec.cap_messages,
            cap_window_hours=spec.cap_window_hours,
            goal_event=spec.goal_event,
            goal_same_key=spec.goal_same_key,
            goal_window_days=spec.goal_window_days,
            goal_target_percent=spec.goal_target_percent,
            exit_on_goal=spec.exit_on_goal,
            # A template without an offer has no code, whatever the caller passes.
            discount_code=spec.discount_code if discount_code is None or not spec.discount_code else discount_code.strip(),
            ignore_frequency_caps=spec.ignore_frequency_caps,
            metric_targets=[dict(item) for item in spec.targets],
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
                    channel=step_spec.message.channel,
                    transactional=step_spec.message.transactional,
                    from_email=from_email if step_spec.message.channel == Channel.EMAIL else "",
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
                wait_mode=step_spec.wait_mode,
                wait_event=step_spec.wait_event,
                wait_data_path=step_spec.wait_data_path,
                notify_email=step_spec.notify_email,
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
