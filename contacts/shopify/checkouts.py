"""Checkout and cart topics: checkout_started, checkout_updated, cart_cleared and cart activity.

A checkout's key is its token (from API 2026-04 a checkout has no top-level id), so reminders,
exits and goals about one checkout match on it.
"""

import logging
from decimal import Decimal
from typing import Any

from django.db.models import Q

from contacts.models import Channel, ConsentStatus, Event
from contacts.shopify.customers import apply_customer_consent, apply_profile, change_consent
from contacts.shopify.identities import customer_identity, identity_of, resolve_contact
from contacts.shopify.payload import (
    discount_codes,
    line_items,
    money_text,
    read_currency,
    read_id,
    read_list,
    read_money,
    read_object,
    read_text,
)
from contacts.shopify.webhook import Outcome, Webhook, store_event

logger = logging.getLogger(__name__)

CHECKOUT_EVENT_TYPES = ("checkout_started", "checkout_updated")


def handle_checkout(webhook: Webhook) -> Outcome:
    """checkouts/create and checkouts/update, identified by the customer or the email typed at checkout."""
    checkout = webhook.payload
    event_type = "checkout_started" if webhook.topic == "checkouts/create" else "checkout_updated"

    customer = read_object(checkout, "customer")
    identity = customer_identity(
        webhook.webhook_id,
        customer,
        email=checkout.get("email"),
        phone=checkout.get("phone") or checkout.get("sms_marketing_phone"),
    )
    token = read_text(checkout.get("token"), 200)
    if not identity:
        # A buyer who has not typed an email address yet cannot be reminded; Shopify sends an
        # update once they do.
        return Outcome(detail=f"checkout {token} has no customer, email or phone yet; skipped")

    contact = resolve_contact(identity)
    if customer:
        apply_profile(contact, customer, locale=checkout.get("customer_locale"))
        apply_customer_consent(contact, customer, webhook)
    apply_checkout_consent(contact, checkout, webhook)

    total = read_money(checkout.get("total_price"), "total_price")
    properties = checkout_properties(checkout, token, webhook)
    time_field = "created_at" if event_type == "checkout_started" else "updated_at"
    return store_event(webhook, event_type, properties, identity, occurred_at=webhook.time(time_field), value=total)


def apply_checkout_consent(contact: Any, checkout: dict[str, Any], webhook: Webhook) -> None:
    """Subscribe the buyer to email or SMS only when the checkout reports they accepted. An unticked box withdraws nothing."""
    if checkout.get("buyer_accepts_marketing") is True and contact.email:
        proof = f"{webhook.proof}, buyer_accepts_marketing"
        change_consent(contact, Channel.EMAIL, ConsentStatus.SUBSCRIBED, webhook, at=None, proof=proof)
    if checkout.get("buyer_accepts_sms_marketing") is True and contact.phone:
        proof = f"{webhook.proof}, buyer_accepts_sms_marketing"
        change_consent(contact, Channel.SMS, ConsentStatus.SUBSCRIBED, webhook, at=None, proof=proof)


def checkout_properties(checkout: dict[str, Any], token: str, webhook: Webhook) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "token": token,
        "cart_token": read_text(checkout.get("cart_token"), 200),
        "abandoned_checkout_url": read_text(checkout.get("abandoned_checkout_url"), 1000),
        "total_price": money_text(read_money(checkout.get("total_price"), "total_price")),
        "subtotal_price": money_text(read_money(checkout.get("subtotal_price"), "subtotal_price")),
        "total_discounts": money_text(read_money(checkout.get("total_discounts"), "total_discounts")),
        "currency": read_currency(checkout.get("currency"))
        or read_currency(checkout.get("presentment_currency"))
        or webhook.currency,
        "line_items": line_items(read_list(checkout, "line_items")),
        "discount_codes": discount_codes(read_list(checkout, "discount_codes")),
        "buyer_accepts_marketing": checkout.get("buyer_accepts_marketing") is True,
        "completed": bool(checkout.get("completed_at")),
    }
    checkout_id = read_id(checkout.get("id"), "id")
    if checkout_id:
        properties["checkout_id"] = checkout_id
    return properties


def handle_checkout_deleted(webhook: Webhook) -> Outcome:
    """checkouts/delete: cart_cleared for the checkout, which ends its reminders.

    The payload names the checkout by id and cart token only, so the contact and the token (the
    key) come from the checkout's stored events. NOTE: that lookup reads event properties without
    an index; it scans Shopify's checkout events.
    """
    payload = webhook.payload
    checkout_id = read_id(payload.get("id"), "id")
    cart_token = read_text(payload.get("cart_token"), 200)
    match = Q()
    if checkout_id:
        match |= Q(properties__checkout_id=checkout_id)
    if cart_token:
        match |= Q(properties__cart_token=cart_token)
    started = None
    if match:
        started = (
            Event.objects.filter(match, source=Event.Source.SHOPIFY, type__in=CHECKOUT_EVENT_TYPES)
            .select_related("contact")
            .order_by("-occurred_at", "-id")
            .first()
        )
    if started is None:
        return Outcome(detail=f"deleted checkout {checkout_id or cart_token} is not stored; skipped")

    properties = {
        "token": started.properties.get("token", ""),
        "cart_token": cart_token or started.properties.get("cart_token", ""),
        "checkout_id": checkout_id,
        "reason": "checkout deleted",
    }
    return store_event(webhook, "cart_cleared", properties, identity_of(started.contact), occurred_at=webhook.occurred_at)


def handle_cart(webhook: Webhook) -> Outcome:
    """carts/create and carts/update: product_added_to_cart, or cart_cleared for an emptied cart.

    Shopify's cart payload names no buyer, so a cart is stored only when it carries a customer
    object; the rest are acknowledged and logged. The key is the cart token.
    NOTE: any change to a non-empty cart, a removal too, is stored as product_added_to_cart.
    """
    cart = webhook.payload
    token = read_text(cart.get("token") or cart.get("id"), 200)
    customer = read_object(cart, "customer")
    identity = customer_identity(webhook.webhook_id, customer) if customer else None
    if not identity:
        return Outcome(detail=f"cart {token} names no customer; skipped")

    resolve_contact(identity)
    items = line_items(read_list(cart, "line_items"))
    event_type = "product_added_to_cart" if items else "cart_cleared"
    total = sum((line_total(item) for item in items), Decimal("0.00"))
    properties = {
        "cart_token": token,
        "line_items": items,
        "total_price": money_text(total),
        "currency": cart_currency(cart) or webhook.currency,
    }
    return store_event(
        webhook, event_type, properties, identity, occurred_at=webhook.time("updated_at", "created_at"), value=total
    )


def line_total(item: dict[str, Any]) -> Decimal:
    if item.get("line_price"):
        return Decimal(item["line_price"])
    return Decimal(item["price"] or "0") * item["quantity"]


def cart_currency(cart: dict[str, Any]) -> str:
    for item in read_list(cart, "line_items"):
        if isinstance(item, dict):
            money = read_object(read_object(item, "line_price_set"), "shop_money")
            currency = read_currency(money.get("currency_code"))
            if currency:
                return currency
    return ""
