"""VIP tiers: each contact is in the best tier whose spend or order threshold it meets.

The inbox moves contacts between tiers in the same transaction as it updates their order facts.
After changing a tier, staff recompute every contact with the tier admin's action or the
``recompute_vip_tiers`` command. A rise records a ``vip_tier_reached`` event, at most one per
contact and tier, which the inbox processes like any other event: it starts workflows whose
trigger is that event. A drop (a refund, a cancellation, a raised threshold) records nothing.

A CSV import moves its contacts between tiers without events: the file brings history, and a
shop moving its customer list over should not welcome every existing VIP at once. A Shopify
customer summary is live, so its rises record events like the inbox's.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from contacts.models import Contact, Event, VipTier

logger = logging.getLogger(__name__)

EVENT_TYPE = "vip_tier_reached"
# Contacts per tier update after an import, within every backend's limit on query parameters.
IMPORT_CHUNK = 5000


@dataclass
class TierChanges:
    risen: int = 0
    lowered: int = 0


def event_source_id(contact_id: int, tier_id: int) -> str:
    """Return the id that keeps a contact's vip_tier_reached event for one tier from being recorded twice."""
    return f"{EVENT_TYPE}:{contact_id}:{tier_id}"


def update_tiers(
    contacts: QuerySet[Contact],
    *,
    now: datetime,
    reached_at: dict[int, datetime] | None = None,
    record_events: bool = True,
) -> TierChanges:
    """Move the contacts into the best tier they qualify for, and record an event for each rise when ``record_events`` is true.

    A few queries per tier, whatever the number of contacts. ``reached_at`` gives, per contact,
    when its facts changed (its latest order); it dates the event and ``vip_since``. Contacts
    missing from it reached their tier at ``now``, which is also when the events count as received.
    """
    reached_at = reached_at or {}
    changes = TierChanges()
    rises: list[tuple[VipTier, tuple]] = []

    higher_tiers: list[Q] = []
    for tier in VipTier.objects.order_by("-rank"):
        qualifies = tier.qualifies()
        in_tier = contacts.filter(qualifies)
        for higher in higher_tiers:
            in_tier = in_tier.exclude(higher)
        higher_tiers.append(qualifies)

        moving = in_tier.exclude(vip_tier=tier)
        rising = moving.filter(Q(vip_tier__isnull=True) | Q(vip_tier__rank__lt=tier.rank))
        rows = list(rising.values_list("pk", "vip_tier__name", "vip_since", "total_spent", "order_count"))
        rises.extend((tier, row) for row in rows)
        moved = moving.update(vip_tier=tier)
        changes.risen += len(rows)
        changes.lowered += moved - len(rows)

    leaving = contacts.filter(vip_tier__isnull=False)
    for qualifies in higher_tiers:
        leaving = leaving.exclude(qualifies)
    changes.lowered += leaving.update(vip_tier=None)

    first_time = [
        Contact(pk=contact_id, vip_since=reached_at.get(contact_id, now))
        for _tier, (contact_id, _previous, vip_since, _spent, _count) in rises
        if vip_since is None
    ]
    Contact.objects.bulk_update(first_time, ["vip_since"], batch_size=1000)

    events = [
        Event(
            source=Event.Source.SYSTEM,
            source_id=event_source_id(contact_id, tier.pk),
            type=EVENT_TYPE,
            contact_id=contact_id,
            occurred_at=reached_at.get(contact_id, now),
            received_at=now,
            properties={
                "tier": tier.name,
                "tier_rank": tier.rank,
                "previous_tier": previous or "",
                "total_spent": str(spent),
                "order_count": count,
            },
        )
        for tier, (contact_id, previous, _vip_since, spent, count) in rises
    ]
    # A contact that drops and rises again into a tier it reached before gets no second event.
    if record_events:
        Event.objects.bulk_create(events, batch_size=1000, ignore_conflicts=True)

    if changes.risen or changes.lowered:
        logger.info("VIP tiers: %s contacts rose, %s dropped", changes.risen, changes.lowered)
    for tier, (contact_id, previous, *_facts) in rises:
        logger.debug("contact %s reached VIP tier %s (%s), was %r", contact_id, tier.pk, tier.name, previous)
    return changes


def update_from_events(events: list[Event]) -> TierChanges:
    """Update the tiers of the contacts whose order facts these order or reversal events changed.

    The inbox passes no clock, so the events' latest arrival time is used as the time the
    vip_tier_reached events are received. That time is no later than the tick processing this
    batch, so the inbox takes the new events in its next batch, at the next tick.
    """
    reached_at: dict[int, datetime] = {}
    for event in events:
        reached_at[event.contact_id] = max(event.occurred_at, reached_at.get(event.contact_id, event.occurred_at))
    now = max(event.received_at for event in events)
    return update_tiers(Contact.objects.filter(pk__in=list(reached_at)), now=now, reached_at=reached_at)


def update_imported(contact_ids: list[int], now: datetime) -> TierChanges:
    """Put contacts whose order facts an import set into their tiers, without events."""
    changes = TierChanges()
    for start in range(0, len(contact_ids), IMPORT_CHUNK):
        chunk = Contact.objects.filter(pk__in=contact_ids[start : start + IMPORT_CHUNK])
        changed = update_tiers(chunk, now=now, record_events=False)
        changes.risen += changed.risen
        changes.lowered += changed.lowered
    return changes


def recompute_all(now: datetime) -> TierChanges:
    """Recompute every contact's tier, e.g. after staff changed a threshold."""
    return update_tiers(Contact.objects.all(), now=now)
