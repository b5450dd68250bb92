"""Step metric counters: one row per step and UTC day, only ever incremented with F() expressions."""

from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import Decimal

from django.db.models import F

from campaigns.models import StepMetric

COUNTERS = (
    "entered",
    "sent",
    "skipped",
    "failed",
    "delivered",
    "opened",
    "clicked",
    "opened_proxy",
    "clicked_scanner",
    "unsubscribed",
    "bounced",
    "complained",
    "converted",
    "exited",
)


class MetricBatch:
    """Collects increments for many steps and writes them with one update per (step, day)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[int, date], Counter] = defaultdict(Counter)
        self.revenue: dict[tuple[int, date], Decimal] = defaultdict(Decimal)

    def add(self, step_id: int | None, at: datetime, counter: str, amount: int = 1) -> None:
        if step_id is None or amount == 0:
            return
        if counter not in COUNTERS:
            raise ValueError(f"unknown step metric {counter!r}")
        self.counts[(step_id, at.date())][counter] += amount

    def add_revenue(self, step_id: int | None, at: datetime, amount: Decimal) -> None:
        if step_id is None or not amount:
            return
        self.revenue[(step_id, at.date())] += amount

    def write(self) -> None:
        keys = set(self.counts) | set(self.revenue)
        if not keys:
            return
        StepMetric.objects.bulk_create([StepMetric(step_id=step_id, day=day) for step_id, day in keys], ignore_conflicts=True)
        for step_id, day in keys:
            updates = {name: F(name) + amount for name, amount in self.counts.get((step_id, day), {}).items()}
            revenue = self.revenue.get((step_id, day))
            if revenue:
                updates["revenue"] = F("revenue") + revenue
            StepMetric.objects.filter(step_id=step_id, day=day).update(**updates)
        self.counts.clear()
        self.revenue.clear()


def increment(step_id: int | None, at: datetime, counter: str, amount: int = 1) -> None:
    batch = MetricBatch()
    batch.add(step_id, at, counter, amount)
    batch.write()
