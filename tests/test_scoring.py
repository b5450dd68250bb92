"""Lead score rules: shipped defaults, event filters, and the score threshold they feed."""

from datetime import timedelta

import pytest

from contacts.models import ScoreRule
from workflows.engine.tick import tick

pytestmark = pytest.mark.django_db


def test_default_rules_shipped():
    rules = {rule.event_type: rule.points for rule in ScoreRule.objects.all()}

    assert rules == {"email_opened": 1, "link_clicked": 3, "content_downloaded": 10, "page_viewed": 15, "demo_requested": 25}


def test_rules_add_points_per_event(anna, send_event, t0):
    send_event("content_downloaded", anna.email, t0)
    send_event("page_viewed", anna.email, t0, url="https://shop.example.com/pricing")
    send_event("page_viewed", anna.email, t0, url="https://shop.example.com/blog")
    send_event("demo_requested", anna.email, t0)

    tick(t0)

    anna.refresh_from_db()
    assert anna.lead_score == 10 + 15 + 25


def test_inactive_rule_ignored(anna, send_event, t0):
    ScoreRule.objects.filter(event_type="content_downloaded").update(active=False)
    send_event("content_downloaded", anna.email, t0)

    tick(t0)

    anna.refresh_from_db()
    assert anna.lead_score == 0


def test_negative_rule_subtracts(anna, send_event, t0):
    # Job seekers reading the careers page are no sales leads.
    ScoreRule.objects.create(
        name="Careers page", event_type="page_viewed", event_filter={"property": "url", "op": "contains", "value": "/careers"}, points=-5
    )
    anna.lead_score = 12
    anna.save()
    send_event("page_viewed", anna.email, t0, url="https://shop.example.com/careers")
    send_event("page_viewed", anna.email, t0 + timedelta(minutes=1), url="https://shop.example.com/careers/dev")

    tick(t0 + timedelta(minutes=1))

    anna.refresh_from_db()
    assert anna.lead_score == 2


def test_rule_filter_validated():
    rule = ScoreRule(name="Bad", event_type="page_viewed", event_filter={"property": "url", "op": "like"}, points=1)

    with pytest.raises(Exception, match="unknown operator 'like'"):
        rule.full_clean()


def test_decay_lowers_idle_scores_only(anna, bram, chris, t0):
    from contacts.models import Contact, Event
    from contacts.scoring import decay_scores

    Contact.objects.filter(pk__in=[anna.pk, bram.pk]).update(lead_score=12)
    Contact.objects.filter(pk=chris.pk).update(lead_score=3)
    Event.objects.create(source="api", type="page_viewed", contact=bram, occurred_at=t0 - timedelta(days=2))

    decayed = decay_scores(t0, points=5, idle_days=30)

    scores = dict(Contact.objects.values_list("email", "lead_score"))
    assert decayed == 2
    assert scores["anna@example.com"] == 7
    assert scores["bram@example.com"] == 12
    assert scores["chris@example.com"] == 0


def test_decay_off_by_default(anna, t0, settings):
    from workflows.tasks import run_score_decay

    anna.lead_score = 12
    anna.save()

    assert settings.MKTAUTO_SCORE_DECAY_POINTS == 0
    assert run_score_decay() == "decayed=0"
    anna.refresh_from_db()
    assert anna.lead_score == 12
