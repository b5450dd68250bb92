"""The catalogue of event types and how each one's key and money value are read.

Shopify topics and CSV columns map onto these names, so every other module speaks one vocabulary.
"""

from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext_lazy as _

EVENT_TYPES = {
    "signed_up": _("Signed up"),
    "order_placed": _("Order placed"),
    "order_fulfilled": _("Order fulfilled"),
    "order_delivered": _("Order delivered"),
    "order_cancelled": _("Order cancelled"),
    "refund_created": _("Refund created"),
    "checkout_started": _("Checkout started"),
    "checkout_updated": _("Checkout updated"),
    "cart_cleared": _("Cart cleared"),
    "product_viewed": _("Product viewed"),
    "product_added_to_cart": _("Product added to cart"),
    "link_clicked": _("Link clicked"),
    "email_opened": _("Email opened"),
    "unsubscribed": _("Unsubscribed"),
    "subscribed": _("Subscribed"),
    "content_downloaded": _("Content downloaded"),
    "webinar_registered": _("Webinar registered"),
    "page_viewed": _("Page viewed"),
    "demo_requested": _("Demo requested"),
    # Sent by the shop or its subscription app, e.g. when a customer starts subscribe-and-save.
    "subscription_started": _("Subscription started"),
    "subscription_cancelled": _("Subscription cancelled"),
}

# Events mktauto records itself. Workflows, conditions and the timeline know them like the
# others, but senders cannot send them: the events API accepts EVENT_TYPES only.
SYSTEM_EVENT_TYPES = {
    # A contact rose to a higher VIP tier (contacts.vip); recorded once per contact and tier.
    "vip_tier_reached": _("VIP tier reached"),
    # Staff marked a replenishment cycle's product discontinued (workflows.replenishment). It is
    # recorded once per product, contact and key of an active enrollment whose order contains it.
    "product_discontinued": _("Product discontinued"),
}
ALL_EVENT_TYPES = {**EVENT_TYPES, **SYSTEM_EVENT_TYPES}

# Browsing events that a storefront pixel may send with a pixel-scoped key.
PIXEL_EVENT_TYPES = {"product_viewed", "product_added_to_cart", "page_viewed", "checkout_started"}

ORDER_EVENT_TYPES = {"order_placed"}

# Property names that carry the checkout or order an event is about, in order of preference.
# A checkout's key is its token, falling back to the cart token. An order's key is the token of
# the checkout it completed, so "purchase exits the cart workflow" matches on the same key; an
# order without one has no key, and an event without a key matches every key.
CHECKOUT_KEY_PROPERTIES = ("checkout_token", "token", "cart_token")
ORDER_KEY_PROPERTIES = ("checkout_token", "cart_token")
OTHER_KEY_PROPERTIES = ("checkout_token", "token", "cart_token", "order_id")

# Money columns are DecimalField(max_digits=14, decimal_places=2).
MAX_AMOUNT = Decimal("1e12")

VALUE_PROPERTIES = ("total_price", "value", "revenue", "amount")

EVENT_TYPE_CHOICES = sorted(ALL_EVENT_TYPES.items())


def event_key(event_type: str, properties: dict[str, Any]) -> str:
    """Return the checkout or order key of an event, or "" when it has none."""
    if event_type in ORDER_EVENT_TYPES:
        names = ORDER_KEY_PROPERTIES
    elif event_type.startswith(("checkout_", "cart_", "product_added")):
        names = CHECKOUT_KEY_PROPERTIES
    else:
        names = OTHER_KEY_PROPERTIES
    for name in names:
        value = properties.get(name)
        if value not in (None, ""):
            return str(value)[:200]
    return ""


def event_value(properties: dict[str, Any]) -> Decimal | None:
    """Return the event's money value as a Decimal; shops send amounts as strings, never parse floats."""
    for name in VALUE_PROPERTIES:
        raw = properties.get(name)
        if raw in (None, ""):
            continue
        try:
            value = Decimal(str(raw))
        except (InvalidOperation, ValueError):
            return None
        # NaN, infinity and amounts beyond the 14-digit money columns are not amounts.
        if not value.is_finite() or abs(value) >= MAX_AMOUNT:
            return None
        return value.quantize(Decimal("0.01"))
    return None
