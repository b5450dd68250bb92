"""Replenishment cycles: how long a consumable lasts, applied to orders so reminders go out before it runs out.

The table is staff data (``ReplenishmentCycle``). When order events enroll contacts, the engine
reads it once per batch. Every order line without ``cycle_days`` gets the days of the row its
product matches, so a wait from data on ``trigger.line_items.cycle_days`` works with plain
Shopify orders. Lines of a discontinued product get no cycle. A workflow that starts with such a
wait enrolls only orders with at least one cycle: an order of only other products has nothing to
run out of, and its wait would otherwise continue at once with a reminder.

Marking a row discontinued records one ``product_discontinued`` event per contact and key with an
active enrollment whose order contains the product. The event has the enrollment's key, so the
exit condition ``{"event": "product_discontinued", "since": "enrollment", "same_key": true}``
ends those enrollments at the next tick. An order without a checkout has no key, and an event
without a key matches every key of its contact.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.translation import gettext_noop

from contacts.models import Event
from workflows.engine.waits import days_at
from workflows.models import Enrollment, ReplenishmentCycle, Step, Workflow

logger = logging.getLogger(__name__)

CYCLE_PATH = "trigger.line_items.cycle_days"
# Set on an order line whose cycle_days came from the table: the row it came from.
CYCLE_ID = "replenishment_cycle_id"
DISCONTINUED_EVENT = "product_discontinued"
CHUNK = 2000


@dataclass(frozen=True)
class DefaultCycle:
    """A row the table starts with; ``key`` names it in code and tests."""

    key: str
    name: str
    title_contains: str
    cycle_days: int


# Migration 0012_default_replenishment_cycles installs a copy of these rows. The names are marked
# for translation here and translated where the admin shows them.
DEFAULT_CYCLES = (
    DefaultCycle("supplement-30-days", gettext_noop("30-day supplement"), "supplement", 30),
    DefaultCycle("coffee-1-lb", gettext_noop("Coffee 1 lb"), "coffee, koffie", 19),
    DefaultCycle("skincare-60-ml", gettext_noop("Skincare 60 ml"), "skincare, huidverzorging", 47),
    DefaultCycle("pet-food-15-lb", gettext_noop("Pet food 15 lb"), "pet food, dierenvoer", 35),
    DefaultCycle("razor-blades-8-pack", gettext_noop("Razor blades 8-pack"), "razor blade, scheermesje", 60),
)


def line_text(line: dict[str, Any]) -> str:
    """Return the order line's title, variant title and name in lower case, for the title words to search."""
    parts = (line.get("title"), line.get("variant_title"), line.get("name"))
    return " - ".join(str(part) for part in parts if part not in (None, "")).lower()


def has_cycle(line: dict[str, Any]) -> bool:
    return line.get("cycle_days") not in (None, "")


class CycleTable:
    """The replenishment cycles, indexed to match order lines; ``load`` reads them in one query."""

    def __init__(self, cycles: Iterable[ReplenishmentCycle]):
        self.by_sku: dict[str, ReplenishmentCycle] = {}
        self.by_product: dict[str, ReplenishmentCycle] = {}
        words: list[tuple[str, ReplenishmentCycle]] = []
        for cycle in sorted(cycles, key=lambda item: item.pk or 0):
            if cycle.sku:
                self.by_sku.setdefault(cycle.sku.strip().lower(), cycle)
            if cycle.product_id:
                self.by_product.setdefault(cycle.product_id.strip(), cycle)
            words.extend((word, cycle) for word in cycle.title_words())
        # The longest word is the most specific: "pet food senior" before "pet food".
        self.by_word = sorted(words, key=lambda pair: -len(pair[0]))

    @classmethod
    def load(cls) -> "CycleTable":
        return cls(ReplenishmentCycle.objects.all())

    def match(self, line: dict[str, Any]) -> ReplenishmentCycle | None:
        """Return the row of the line's product: by SKU, else by product id, else by the longest title word."""
        sku = str(line.get("sku") or "").strip().lower()
        if sku and sku in self.by_sku:
            return self.by_sku[sku]
        product_id = str(line.get("product_id") or "").strip()
        if product_id and product_id in self.by_product:
            return self.by_product[product_id]
        text = line_text(line)
        if text:
            for word, cycle in self.by_word:
                if word in text:
                    return cycle
        return None

    def apply(self, context: dict[str, Any]) -> dict[str, Any]:
        """Return ``context`` with cycle_days on each order line that lacks it and matches a product still sold."""
        lines = context.get("line_items")
        if not isinstance(lines, list):
            return context
        filled = []
        for line in lines:
            cycle = self.match(line) if isinstance(line, dict) and not has_cycle(line) else None
            if cycle is None or cycle.discontinued:
                filled.append(line)
                continue
            filled.append({**line, "cycle_days": cycle.cycle_days, CYCLE_ID: cycle.pk})
        return {**context, "line_items": filled}

    def products_in(self, context: dict[str, Any]) -> set[int]:
        """Return the ids of the rows whose products the context's order lines contain."""
        lines = context.get("line_items")
        if not isinstance(lines, list):
            return set()
        found: set[int] = set()
        for line in lines:
            if not isinstance(line, dict):
                continue
            if line.get(CYCLE_ID) is not None:
                found.add(line[CYCLE_ID])
            cycle = self.match(line)
            if cycle is not None:
                found.add(cycle.pk)
        return found


def starts_with_cycle_wait(workflow: Workflow) -> bool:
    """Return whether the workflow's first step waits for the days in its order lines' cycle_days."""
    first = (
        Step.objects.filter(workflow=workflow)
        .order_by("position", "id")
        .values_list("kind", "wait_mode", "wait_data_path")
        .first()
    )
    return first == (Step.Kind.WAIT, Step.WaitMode.FROM_DATA, CYCLE_PATH)


def order_has_cycle(context: dict[str, Any]) -> bool:
    return days_at(CYCLE_PATH, context, {}) is not None


def record_discontinued(cycles: Iterable[ReplenishmentCycle], now: datetime) -> int:
    """Record a product_discontinued event for each contact and key with an active enrollment containing one of
    these products; return how many.

    The events count as received at ``now``, so the next tick processes them.
    """
    cycles = {cycle.pk: cycle for cycle in cycles}
    if not cycles:
        return 0
    table = CycleTable.load()

    # The order lines are JSON in each enrollment's trigger data, and the table's matching rules run
    # in Python, so the active enrollments with order lines are read in chunks.
    enrollments = (
        Enrollment.objects.filter(state=Enrollment.State.ACTIVE, context__has_key="line_items")
        .order_by("pk")
        .values_list("pk", "contact_id", "key", "context")
    )
    events: dict[tuple[int, int, str], Event] = {}
    for enrollment_id, contact_id, key, context in enrollments.iterator(chunk_size=CHUNK):
        for cycle_id in table.products_in(context or {}) & set(cycles):
            if (cycle_id, contact_id, key) in events:
                continue
            cycle = cycles[cycle_id]
            events[(cycle_id, contact_id, key)] = Event(
                source=Event.Source.SYSTEM,
                # One event per product and enrollment, however often staff mark the product.
                source_id=f"{DISCONTINUED_EVENT}:{cycle_id}:{enrollment_id}",
                type=DISCONTINUED_EVENT,
                contact_id=contact_id,
                key=key,
                occurred_at=now,
                received_at=now,
                properties={"product": cycle.name, CYCLE_ID: cycle_id, "sku": cycle.sku, "product_id": cycle.product_id},
            )
    Event.objects.bulk_create(list(events.values()), batch_size=1000, ignore_conflicts=True)

    for cycle_id, cycle in cycles.items():
        count = sum(1 for key in events if key[0] == cycle_id)
        logger.info(
            "replenishment cycle %s (%s) discontinued: %s product_discontinued events recorded", cycle_id, cycle.name, count
        )
    return len(events)


def discontinue(cycles: Iterable[ReplenishmentCycle], now: datetime) -> int:
    """Mark the products discontinued and record their product_discontinued events; return how many events."""
    cycles = list(cycles)
    ReplenishmentCycle.objects.filter(pk__in=[cycle.pk for cycle in cycles]).update(discontinued=True)
    for cycle in cycles:
        cycle.discontinued = True
    return record_discontinued(cycles, now)
