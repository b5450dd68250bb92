"""Dispatch of each Shopify topic to the module that maps it. A topic with no use here is acknowledged and logged.

Deduplication: Shopify repeats a webhook with the same X-Shopify-Webhook-Id until it gets a 2xx.
Events are stored with the webhook id as their source id (order events with "<type>:<order id>"),
and Event's unique (source, source_id) constraint skips a repeat. Topics that store no event are
idempotent instead: profile and tag updates give the same result twice, consent records name the
webhook id in their proof and a repeat finds its own record, and erasing twice erases nothing more.
A small table of received webhook ids would do the same for every topic, at the cost of a model.
"""

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from contacts.models import Shop
from contacts.shopify import checkouts, compliance, customers, orders
from contacts.shopify.payload import decode_body
from contacts.shopify.webhook import Outcome, Webhook

logger = logging.getLogger(__name__)

HANDLERS: dict[str, Callable[[Webhook], Outcome]] = {
    # orders/paid maps onto the same order_placed as orders/create, so a shop subscribed to either
    # or both counts each order once.
    "orders/create": orders.handle_order,
    "orders/paid": orders.handle_order,
    "orders/fulfilled": orders.handle_order,
    "orders/cancelled": orders.handle_order,
    "refunds/create": orders.handle_refund,
    "fulfillments/create": orders.handle_fulfillment,
    "fulfillments/update": orders.handle_fulfillment,
    "checkouts/create": checkouts.handle_checkout,
    "checkouts/update": checkouts.handle_checkout,
    "checkouts/delete": checkouts.handle_checkout_deleted,
    "carts/create": checkouts.handle_cart,
    "carts/update": checkouts.handle_cart,
    "customers/create": customers.handle_customer,
    "customers/update": customers.handle_customer,
    "customers/delete": customers.handle_customer_deleted,
    "customer.tags_added": customers.handle_tags,
    "customer.tags_removed": customers.handle_tags,
    "customers_email_marketing_consent/update": customers.handle_email_consent,
    "customers_marketing_consent/update": customers.handle_sms_consent,
    "customers/purchasing_summary": customers.handle_purchasing_summary,
    "app/uninstalled": compliance.handle_uninstalled,
    "customers/data_request": compliance.handle_data_request,
    "customers/redact": compliance.handle_customer_redact,
    "shop/redact": compliance.handle_shop_redact,
}


def process_webhook(webhook: Webhook) -> Outcome:
    """Map one verified webhook onto events and contact facts, all in one transaction.

    Raises PayloadError for a body that does not have the topic's shape; nothing is kept then.
    """
    handler = HANDLERS.get(webhook.topic)
    if handler is None:
        logger.info(
            "webhook %s: topic %s from %s has no use here; acknowledged", webhook.webhook_id, webhook.topic, webhook.shop_domain
        )
        return Outcome(detail=f"topic {webhook.topic} not used")

    with transaction.atomic():
        outcome = handler(webhook)
    logger.info("webhook %s (%s from %s): %s", webhook.webhook_id, webhook.topic, webhook.shop_domain, outcome.detail)
    return outcome


def process_saved_body(body: bytes, topic: str, *, now: datetime | None = None) -> Outcome:
    """Map a webhook body the merchant saved to a file, which has no signature to check.

    A hash of the topic and the bytes replaces the webhook id, so the same file ingested twice
    is stored once. The amounts' fallback currency is the shop's when exactly one Shop row exists.
    Raises PayloadError for malformed JSON or a body without the topic's shape.
    """
    now = now or timezone.now()
    payload = decode_body(body)
    shops = list(Shop.objects.order_by("pk")[:2])
    shop = shops[0] if len(shops) == 1 else None
    digest = hashlib.sha256(topic.encode() + b"\n" + body).hexdigest()
    webhook = Webhook(
        topic=topic,
        shop_domain=shop.domain if shop else "",
        webhook_id=f"file:{digest}",
        payload=payload,
        received_at=now,
        shop=shop,
    )
    return process_webhook(webhook)
