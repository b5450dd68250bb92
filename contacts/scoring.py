"""Lead scoring: rules that add points for events, applied by the inbox in one update per point total."""

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.db.models import Exists, F, OuterRef, Value
from django.db.models.functions import Greatest

from contacts import conditions
from contacts.models import Contact, Event, ScoreRule

logger = logging.getLogger(__name__)


def apply_rules(events: list[Event]) -> int:
    """Add each matching rule's points to the events' contacts; return the number of rule matches."""
    types = {event.type for event in events}
    rules = list(ScoreRule.objects.filter(active=True, event_type__in=types))
    if not rules:
        return 0

    points: dict[int, int] = defaultdict(int)
    matches = 0
    for rule in rules:
        candidates = [event.pk for event in events if event.type == rule.event_type]
        matched = Event.objects.filter(pk__in=candidates)
        if rule.event_filter:
            matched = matched.filter(conditions.compile_event_filter(rule.event_filter))
        for contact_id in matched.values_list("contact_id", flat=True):
            points[contact_id] += rule.points
            matches += 1

    by_total: dict[int, list[int]] = defaultdict(list)
    for contact_id, total in points.items():
        by_total[total].append(contact_id)
    for total, contact_ids in by_total.items():
        Contact.objects.filter(pk__in=contact_ids).update(lead_score=F("lead_score") + total)
    logger.info("lead score rules matched %s times for %s contacts", matches, len(points))
    return matches


def decay_scores(now: datetime, *, points: int, idle_days: int) -> int:
    """Take ``points`` off the lead score of contacts with no event in ``idle_days`` days, never below zero.

    Returns how many contacts lost points. Runs once a day from its own schedule, so a score fades by
    ``points`` for each idle day.
    """
    if points <= 0 or idle_days <= 0:
        return 0
    recent = Event.objects.filter(contact_id=OuterRef("pk"), occurred_at__gte=now - timedelta(days=idle_days))
    decayed = (
        Contact.objects.filter(lead_score__gt=0)
        .exclude(Exists(recent))
        .update(lead_score=Greatest(F("lead_score") - points, Value(0)))
    )
    logger.info("lead scores of %s idle contacts decayed by %s", decayed, points)
    return decayed
