"""Contact facts kept up to date from events: order count and value, names, consent from sign-ups."""

import logging
from collections import defaultdict
from decimal import Decimal

from django.db.models import Case, F, Value, When

from contacts import catalogue
from contacts.consent import set_consent
from contacts.models import Channel, ConsentStatus, Contact, Event

logger = logging.getLogger(__name__)

PROFILE_PROPERTIES = ("first_name", "last_name", "language", "time_zone", "company")
TRUE_VALUES = {True, "true", "yes", "1", "subscribed"}


def apply_events(events: list[Event]) -> None:
    """Update contact facts from a batch of events, one grouped update per contact with orders."""
    orders: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        if event.type in catalogue.ORDER_EVENT_TYPES:
            orders[event.contact_id].append(event)
    for contact_id, contact_orders in orders.items():
        apply_orders(contact_id, contact_orders)

    for event in events:
        if event.type in ("signed_up", "subscribed", "unsubscribed"):
            apply_profile(event)


def apply_orders(contact_id: int, orders: list[Event]) -> None:
    total = sum((event.value or Decimal("0") for event in orders), Decimal("0"))
    first = min(event.occurred_at for event in orders)
    last = max(event.occurred_at for event in orders)
    Contact.objects.filter(pk=contact_id).update(
        order_count=F("order_count") + len(orders),
        total_spent=F("total_spent") + total,
        first_order_at=Case(
            When(first_order_at__isnull=True, then=Value(first)),
            When(first_order_at__gt=first, then=Value(first)),
            default=F("first_order_at"),
        ),
        last_order_at=Case(
            When(last_order_at__isnull=True, then=Value(last)),
            When(last_order_at__lt=last, then=Value(last)),
            default=F("last_order_at"),
        ),
    )


def apply_profile(event: Event) -> None:
    contact = event.contact
    properties = event.properties

    changed = [name for name in PROFILE_PROPERTIES if properties.get(name) and not getattr(contact, name)]
    for name in changed:
        setattr(contact, name, str(properties[name])[:100])
    if changed:
        contact.save(update_fields=[*changed, "updated_at"])

    proof = f"event {event.source}:{event.source_id or event.pk}"
    if event.type == "unsubscribed":
        channel = properties.get("channel") or Channel.EMAIL
        if channel in Channel.values:
            set_consent(contact, channel, ConsentStatus.UNSUBSCRIBED, source=event.source, proof=proof, at=event.occurred_at)
        return
    wants_email = (
        event.type == "subscribed"
        or properties.get("accepts_marketing") in TRUE_VALUES
        or properties.get("email_consent") in TRUE_VALUES
    )
    if wants_email and contact.email:
        set_consent(contact, Channel.EMAIL, ConsentStatus.SUBSCRIBED, source=event.source, proof=proof, at=event.occurred_at)
