"""The demo: the real engine on a virtual clock over 30 days of a small Dutch web shop.

It imports the shipped contacts, installs and activates the welcome series and abandoned cart
workflows, then moves the clock hour by hour: events that happened in that hour arrive, a tick
runs, and recipients of the messages sent open, click and now and then unsubscribe, decided by a
seeded random generator so every run gives the same figures. Everything is committed, so the admin
and workflow_report show the results afterwards.
"""

import json
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import transaction

from campaigns import tracking
from campaigns.models import Delivery, StepMetric
from contacts.ingest import ParsedEvent, parse_event, store_events
from contacts.models import Contact, Event
from workflows.engine.tick import tick
from workflows.library import install_template
from workflows.lifecycle import activate
from workflows.models import Enrollment, Workflow

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "demo_data"
CONTACTS_FILE = DATA_DIR / "contacts.csv"
EVENTS_FILE = DATA_DIR / "events.jsonl"
START = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
DEMO_TEMPLATES = ("welcome_series", "abandoned_cart")
SEED = 7

# Engagement rates of the simulated recipients, in line with typical e-commerce flows.
OPEN_RATE = 0.5
CLICK_RATE_OF_OPENS = 0.3
UNSUBSCRIBE_RATE = 0.01


def demo_workflows(language: str) -> list[Workflow]:
    """Return the demo's workflows, installing and activating them when missing."""
    workflows = []
    for slug in DEMO_TEMPLATES:
        workflow = Workflow.objects.filter(template_slug=slug).order_by("pk").first()
        if workflow is None:
            workflow = install_template(slug, language=language)
        if workflow.status != Workflow.Status.LIVE:
            problems = activate(workflow)
            if problems:
                raise RuntimeError(f"workflow {workflow.name!r} cannot go live: {'; '.join(problems)}")
        workflows.append(workflow)
    return workflows


def reset(workflows: list[Workflow]) -> None:
    """Remove what an earlier demo run left, so figures are those of one run."""
    with transaction.atomic():
        # Contacts the stream touched carry order facts and consent changes from that run; they
        # are removed with their events and deliveries, and the import and the stream bring them back.
        Contact.objects.filter(pk__in=Event.objects.filter(source=Event.Source.DEMO).values("contact_id")).delete()
        Enrollment.objects.filter(workflow__in=workflows).delete()
        StepMetric.objects.filter(step__workflow__in=workflows).delete()
        Event.objects.filter(source__in=[Event.Source.DEMO, Event.Source.TRACKING]).delete()


def load_events() -> list[ParsedEvent]:
    events = []
    with open(EVENTS_FILE, encoding="utf-8") as handle:
        for line in handle:
            data = json.loads(line)
            occurred_at = datetime.fromisoformat(data["occurred_at"])
            events.append(parse_event(data, now=occurred_at))
    return events


def simulate_engagement(deliveries: list[Delivery], now: datetime, rng: random.Random) -> None:
    for delivery in deliveries:
        if rng.random() >= OPEN_RATE:
            continue
        opened_at = now + timedelta(minutes=rng.randint(5, 50))
        tracking.record_open(delivery, at=opened_at)
        if rng.random() < CLICK_RATE_OF_OPENS:
            tracking.record_click(delivery, "https://shop.example.com/", at=opened_at + timedelta(minutes=1))
        if rng.random() < UNSUBSCRIBE_RATE and not delivery.transactional:
            tracking.record_unsubscribe(
                delivery, delivery.contact, delivery.channel, source="demo", at=opened_at + timedelta(minutes=2)
            )


def replay(*, days: int = 30, progress: Callable[[str], None] | None = None) -> None:
    """Replay the shipped event stream through the engine over ``days`` virtual days."""
    events = load_events()
    rng = random.Random(SEED)
    end = START + timedelta(days=days)

    now = START
    index = 0
    while now < end:
        now += timedelta(hours=1)
        arriving = []
        while index < len(events) and events[index].occurred_at <= now:
            arriving.append(events[index])
            index += 1
        if arriving:
            store_events(arriving, Event.Source.DEMO, now=now)

        tick(now)

        sent = list(Delivery.objects.filter(sent_at=now, status=Delivery.Status.SENT).select_related("contact").order_by("pk"))
        simulate_engagement(sent, now, rng)
        if progress and now.hour == 0:
            progress(now.date().isoformat())

    # One last tick takes in the engagement of the final hour.
    tick(end + timedelta(hours=1))
    logger.info("demo finished: %s events replayed over %s days", index, days)
