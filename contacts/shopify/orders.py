"""Order topics: orders placed, fulfilled, delivered, cancelled and refunded.

Order events are deduplicated per order and event type, not per webhook, because Shopify reports
one fact on several topics. Both orders/create and orders/paid mean the order was placed, and both
orders/fulfilled and fulfillments/create mean it shipped, yet each order counts once for order
totals and workflows. Refunds are deduplicated per refund.
"""

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from contacts.models import Channel, ConsentStatus, Event
from contacts.shopify.customers import apply_customer_consent, apply_profile, change_consent
from contacts.shopify.identities import customer_identity, identity_of, read_identity, resolve_contact
from contacts.shopify.payload import (
    PayloadError,
    discount_codes,
    line_items,
    money_text,
    read_currency,
    read_id,
    read_list,
    read_money,
    read_object,
    read_quantity,
    read_text,
)
from contacts.shopify.webhook import Outcome, Webhook, store_event

logger = logging.getLogger(__name__)

# Event types whose source id is "<type>:<order id>", so a refund or fulfillment can find its order.
ORDER_EVENT_TYPES = ("order_placed", "order_fulfilled", "order_delivered", "order_cancelled")
# Fulfillment shipment statuses that mean the parcel is on its way; "delivered" is its own event.
SHIPPED_STATUSES = {"label_printed", "label_purchased", "confirmed", "in_transit", "out_for_delivery", "ready_for_pickup"}


def order_source_id(event_type: str, order_id: str) -> str:
    return f"{event_type}:{order_id}"


def handle_order(webhook: Webhook) -> Outcome:
    """orders/create, orders/paid, orders/fulfilled and orders/cancelled, which all carry the order object."""
    order = webhook.payload
    order_id = read_id(order.get("id"), "id")
    if not order_id:
        raise PayloadError("id", "missing; an order webhook carries the order's id")
    event_type = {"orders/fulfilled": "order_fulfilled", "orders/cancelled": "order_cancelled"}.get(webhook.topic, "order_placed")

    customer = read_object(order, "customer")
    identity = customer_identity(
        webhook.webhook_id, customer, email=order.get("email") or order.get("contact_email"), phone=order.get("phone")
    )
    if not identity:
        return Outcome(detail=f"order {order_id} has no customer, email or phone; skipped")

    contact = resolve_contact(identity)
    if customer:
        apply_profile(contact, customer, locale=order.get("customer_locale"))
        apply_customer_consent(contact, customer, webhook)
    if event_type == "order_placed" and order.get("buyer_accepts_marketing") is True and contact.email:
        change_consent(
            contact, Channel.EMAIL, ConsentStatus.SUBSCRIBED, webhook, at=None, proof=f"{webhook.proof}, buyer_accepts_marketing"
        )

    properties = order_properties(order, order_id, webhook)
    if event_type == "order_cancelled":
        properties["cancel_reason"] = read_text(order.get("cancel_reason"), 50)
    total = read_money(order.get("total_price"), "total_price")
    return store_event(
        webhook,
        event_type,
        properties,
        identity,
        occurred_at=order_time(webhook, event_type),
        value=total,
        source_id=order_source_id(event_type, order_id),
    )


def order_time(webhook: Webhook, event_type: str) -> datetime:
    if event_type == "order_cancelled":
        return webhook.time("cancelled_at", "updated_at")
    if event_type == "order_fulfilled":
        return webhook.time("closed_at", "updated_at")
    return webhook.time("processed_at", "created_at")


def order_properties(order: dict[str, Any], order_id: str, webhook: Webhook) -> dict[str, Any]:
    """Return what workflows and reports use of an order; the key is the checkout token it completed."""
    properties: dict[str, Any] = {
        "order_id": order_id,
        "order_name": read_text(order.get("name"), 100),
        "total_price": money_text(read_money(order.get("total_price"), "total_price")),
        "subtotal_price": money_text(read_money(order.get("subtotal_price"), "subtotal_price")),
        "total_discounts": money_text(read_money(order.get("total_discounts"), "total_discounts")),
        "currency": read_currency(order.get("currency")) or webhook.currency,
        "financial_status": read_text(order.get("financial_status"), 50),
        "fulfillment_status": read_text(order.get("fulfillment_status"), 50),
        "discount_codes": discount_codes(read_list(order, "discount_codes")),
        "line_items": line_items(read_list(order, "line_items")),
        "buyer_accepts_marketing": order.get("buyer_accepts_marketing") is True,
        "order_status_url": read_text(order.get("order_status_url"), 500),
        "test": order.get("test") is True,
    }
    for name in ("checkout_token", "cart_token"):
        token = read_text(order.get(name), 200)
        if token:
            properties[name] = token
    return properties


def find_order_event(order_id: str) -> Event | None:
    """Return the earliest stored event about the order, whose contact and checkout token later events share."""
    source_ids = [order_source_id(event_type, order_id) for event_type in ORDER_EVENT_TYPES]
    return (
        Event.objects.filter(source=Event.Source.SHOPIFY, source_id__in=source_ids)
        .select_related("contact")
        .order_by("occurred_at", "id")
        .first()
    )


def handle_fulfillment(webhook: Webhook) -> Outcome:
    """fulfillments/create and fulfillments/update: shipped (order_fulfilled) or delivered (order_delivered).

    NOTE: each order gets one order_fulfilled and one order_delivered, from its first shipped and
    first delivered fulfillment. The later parcels of a split order add no events.
    """
    fulfillment = webhook.payload
    order_id = read_id(fulfillment.get("order_id"), "order_id")
    if not order_id:
        raise PayloadError("order_id", "missing; a fulfillment webhook names its order")
    status = read_text(fulfillment.get("status"), 50).lower()
    shipment_status = read_text(fulfillment.get("shipment_status"), 50).lower()

    if shipment_status == "delivered":
        event_type = "order_delivered"
    elif status == "success" or shipment_status in SHIPPED_STATUSES:
        event_type = "order_fulfilled"
    else:
        state = f"{status or 'no status'}/{shipment_status or 'no shipment status'}"
        return Outcome(detail=f"fulfillment of order {order_id} is {state}, not shipped yet; nothing stored")

    order_event = find_order_event(order_id)
    identity = (
        identity_of(order_event.contact) if order_event else read_identity(webhook.webhook_id, emails=(fulfillment.get("email"),))
    )
    if not identity:
        return Outcome(detail=f"fulfillment of order {order_id}, which is not stored, has no email; skipped")

    properties = {
        "order_id": order_id,
        "fulfillment_id": read_id(fulfillment.get("id"), "id"),
        "fulfillment_status": status,
        "shipment_status": shipment_status,
        "tracking_company": read_text(fulfillment.get("tracking_company"), 100),
        "tracking_number": read_text(fulfillment.get("tracking_number"), 100),
        "tracking_url": read_text(fulfillment.get("tracking_url"), 500),
        "line_items": line_items(read_list(fulfillment, "line_items")),
    }
    checkout_token = order_event.properties.get("checkout_token") if order_event else ""
    if checkout_token:
        properties["checkout_token"] = checkout_token
    return store_event(
        webhook,
        event_type,
        properties,
        identity,
        occurred_at=webhook.time("updated_at", "created_at"),
        source_id=order_source_id(event_type, order_id),
    )


def handle_refund(webhook: Webhook) -> Outcome:
    """refunds/create: refund_created with the amount refunded, for the contact who placed the order.

    A refund names only its order, so an order placed before the app was installed (no stored
    order event) is skipped.
    """
    refund = webhook.payload
    refund_id = read_id(refund.get("id"), "id")
    order_id = read_id(refund.get("order_id"), "order_id")
    if not refund_id or not order_id:
        raise PayloadError("id" if not refund_id else "order_id", "missing; a refund webhook carries its id and its order's id")

    order_event = find_order_event(order_id)
    if order_event is None:
        return Outcome(detail=f"refund {refund_id} is for order {order_id}, which is not stored; skipped")

    amount, currency = refunded_amount(refund)
    properties: dict[str, Any] = {
        "refund_id": refund_id,
        "order_id": order_id,
        "amount": money_text(amount),
        "currency": currency or order_event.currency or webhook.currency,
        "line_items": refunded_items(read_list(refund, "refund_line_items")),
        "restock": refund.get("restock") is True,
    }
    checkout_token = order_event.properties.get("checkout_token")
    if checkout_token:
        properties["checkout_token"] = checkout_token
    return store_event(
        webhook,
        "refund_created",
        properties,
        identity_of(order_event.contact),
        occurred_at=webhook.time("processed_at", "created_at"),
        value=amount,
        source_id=f"refund_created:{refund_id}",
    )


def refunded_amount(refund: dict[str, Any]) -> tuple[Decimal, str]:
    """Return the money paid back (successful refund transactions) and its currency.

    The refunded line items' subtotals are what was returned, not what was paid back: a refund
    can return goods without money, or pay back shipping without goods.
    """
    total = Decimal("0.00")
    currency = ""
    for index, transaction in enumerate(read_list(refund, "transactions")):
        if not isinstance(transaction, dict):
            raise PayloadError(f"transactions[{index}]", "must be a JSON object")
        if transaction.get("kind") != "refund" or transaction.get("status") != "success":
            continue
        total += read_money(transaction.get("amount"), f"transactions[{index}].amount") or Decimal("0.00")
        currency = currency or read_currency(transaction.get("currency"))
    if not currency:
        for item in read_list(refund, "refund_line_items"):
            money = read_object(read_object(item, "subtotal_set") if isinstance(item, dict) else {}, "shop_money")
            currency = read_currency(money.get("currency_code"))
            if currency:
                break
    return total, currency


def refunded_items(items: list[Any]) -> list[dict[str, Any]]:
    result = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise PayloadError(f"refund_line_items[{index}]", "must be a JSON object")
        line = read_object(item, "line_item")
        subtotal = read_object(read_object(item, "subtotal_set"), "shop_money").get("amount")
        result.append(
            {
                "product_id": read_id(line.get("product_id"), f"refund_line_items[{index}].line_item.product_id"),
                "title": read_text(line.get("title"), 255),
                "sku": read_text(line.get("sku"), 100),
                "quantity": read_quantity(item.get("quantity")),
                "subtotal": money_text(read_money(subtotal, f"refund_line_items[{index}].subtotal_set")),
            }
        )
    return result
