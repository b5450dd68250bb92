"""Contact facts kept up to date from events: order count and value, VIP tier, names, consent from sign-ups."""

import logging
import re
from collections import defaultdict
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest

from contacts import catalogue, vip
from contacts.consent import confirmation_requested, set_consent
from contacts.models import Channel, ConsentStatus, Contact, Event

logger = logging.getLogger(__name__)

PROFILE_PROPERTIES = ("first_name", "last_name", "language", "time_zone", "company")
# A cancellation takes the order and its value off; a refund takes its refunded amount off.
REVERSAL_EVENT_TYPES = {"order_cancelled", "refund_created"}
PROFILE_EVENT_TYPES = {"signed_up", "subscribed", "unsubscribed"}
TRUE_VALUES = {"true", "yes", "1", "subscribed"}
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
# Events our own tracking records for a recipient (opens, clicks, the unsubscribe link) never set
# profile or consent from their properties: the tracking code already changed what it had to.
UNTRUSTED_SOURCES = {Event.Source.TRACKING}


def apply_events(events: list[Event]) -> None:
    """Update contact facts from a batch of events, one grouped update per contact with orders."""
    # Events of one contact share one instance, so a later event in the batch compares with the
    # profile and consent an earlier one set, not with the state loaded before the batch.
    contacts: dict[int, Contact] = {}
    for event in events:
        event.contact = contacts.setdefault(event.contact_id, event.contact)

    orders: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        if event.type in catalogue.ORDER_EVENT_TYPES:
            orders[event.contact_id].append(event)
    for contact_id, contact_orders in orders.items():
        apply_orders(contact_id, contact_orders)

    reversals: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        if event.type in REVERSAL_EVENT_TYPES:
            reversals[event.contact_id].append(event)
    for contact_id, contact_reversals in reversals.items():
        apply_reversals(contact_id, contact_reversals)

    # One set-based pass over every contact whose order facts changed, after all of the batch's
    # orders and reversals: an order refunded in the same batch lifts no one.
    changed = [event for contact_events in (*orders.values(), *reversals.values()) for event in contact_events]
    if changed:
        vip.update_from_events(changed)

    for event in events:
        if event.type in PROFILE_EVENT_TYPES and event.source not in UNTRUSTED_SOURCES:
            apply_profile(event)


def apply_reversals(contact_id: int, events: list[Event]) -> None:
    """Take cancelled orders and refunds off the contact's order facts, never below zero."""
    cancelled = sum(1 for event in events if event.type == "order_cancelled")
    amount = sum((event.value or Decimal("0") for event in events), Decimal("0"))
    Contact.objects.filter(pk=contact_id).update(
        order_count=Greatest(F("order_count") - cancelled, Value(0)),
        total_spent=Greatest(F("total_spent") - amount, Value(Decimal("0"))),
    )


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
    """Fill empty profile fields from the event and apply the consent it carries."""
    contact = event.contact
    properties = event.properties

    changed = []
    for name in PROFILE_PROPERTIES:
        value = profile_value(name, properties.get(name))
        if value and not getattr(contact, name):
            setattr(contact, name, value)
            changed.append(name)
    if changed:
        contact.save(update_fields=[*changed, "updated_at"])

    proof = f"event {event.source}:{event.source_id or event.pk}"
    channel = properties.get("channel") or Channel.EMAIL
    if channel not in Channel.values:
        logger.warning("event %s: unknown channel %r, consent left unchanged", event.pk, channel)
        return
    if event.type == "unsubscribed":
        set_consent(contact, channel, ConsentStatus.UNSUBSCRIBED, source=event.source, proof=proof, at=event.occurred_at)
        return

    wants_marketing = (
        event.type == "subscribed"
        or is_true(properties.get("accepts_marketing"))
        or is_true(properties.get(f"{channel}_consent"))
    )
    address = contact.email if channel == Channel.EMAIL else contact.phone
    if not (wants_marketing and address):
        return
    if channel == Channel.EMAIL and settings.MKTAUTO_DOUBLE_OPT_IN and contact.email_consent != ConsentStatus.SUBSCRIBED:
        # Double opt-in: consent waits as pending for the click on the emailed link; the campaigns
        # app records the pending state and queues that email.
        confirmation_requested.send(sender=Contact, contact=contact, source=event.source, proof=proof, at=event.occurred_at)
        return
    set_consent(contact, channel, ConsentStatus.SUBSCRIBED, source=event.source, proof=proof, at=event.occurred_at)


def profile_value(name: str, raw: Any) -> str:
    """Return the property as a value the contact column takes, or "" when it does not fit."""
    if raw is None or isinstance(raw, (dict, list, bool)):
        return ""
    value = " ".join(str(raw).split())
    if name == "language":
        value = value.lower().replace("_", "-")
        return value if LANGUAGE_PATTERN.match(value) and len(value) <= 10 else ""
    if name == "time_zone":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            return ""
        return value
    return value[: Contact._meta.get_field(name).max_length]


def is_true(raw: Any) -> bool:
    if raw is True:
        return True
    if raw is None or isinstance(raw, (bool, dict, list)):
        return False
    return str(raw).strip().lower() in TRUE_VALUES
