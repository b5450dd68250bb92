"""One received Shopify webhook, what handling it did, and storing the events it maps to."""

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from contacts import catalogue
from contacts.ingest import ParsedEvent, store_events
from contacts.models import Event, Shop
from contacts.shopify.identities import Identity
from contacts.shopify.payload import read_time

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Webhook:
    topic: str
    shop_domain: str
    # X-Shopify-Webhook-Id: unique per delivery and repeated on Shopify's retries, so it is the
    # deduplication key. A saved body ingested from a file uses a hash of its topic and bytes instead.
    webhook_id: str
    payload: dict[str, Any]
    received_at: datetime
    triggered_at: datetime | None = None
    shop: Shop | None = None

    @property
    def occurred_at(self) -> datetime:
        return self.triggered_at or self.received_at

    @property
    def proof(self) -> str:
        """The consent proof naming this delivery; a retried webhook finds its own record by it."""
        return f"Shopify webhook {self.webhook_id} ({self.topic})"

    @property
    def currency(self) -> str:
        """The currency for amounts that arrive without one."""
        if self.shop is not None and self.shop.currency:
            return self.shop.currency
        return settings.MKTAUTO_DEFAULT_CURRENCY

    def time(self, *names: str) -> datetime:
        """Return the first readable payload time among ``names``, else when Shopify triggered the webhook."""
        for name in names:
            value = read_time(self.payload.get(name), self.received_at)
            if value is not None:
                return value
        return self.occurred_at


@dataclass
class Outcome:
    """The result of handling one webhook: events stored and skipped, and one line for the log."""

    stored: int = 0
    duplicates: int = 0
    detail: str = ""


def store_event(
    webhook: Webhook,
    event_type: str,
    properties: dict[str, Any],
    identity: Identity,
    *,
    occurred_at: datetime,
    value: Decimal | None = None,
    source_id: str = "",
) -> Outcome:
    """Store one event for the inbox; a source id already stored for Shopify is skipped as a duplicate.

    The source id defaults to the webhook id. Order events pass one made of the event type and the
    order id, because Shopify reports one fact on several topics (orders/create and orders/paid).
    """
    currency = properties.get("currency") or (webhook.currency if value is not None else "")
    parsed = ParsedEvent(
        type=event_type,
        occurred_at=occurred_at,
        properties=properties,
        source_id=source_id or webhook.webhook_id,
        email=identity.email,
        phone=identity.phone,
        external_id=identity.external_id,
        key=catalogue.event_key(event_type, properties),
        value=value,
        currency=currency,
    )
    result = store_events([parsed], Event.Source.SHOPIFY, now=webhook.received_at)

    if result.duplicates:
        return Outcome(duplicates=result.duplicates, detail=f"{event_type} {parsed.source_id} already stored; skipped")
    event = result.created[0]
    return Outcome(stored=1, detail=f"{event_type} stored for contact {event.contact_id}")
