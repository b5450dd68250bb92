"""The explain command: a contact's journey in sentences, with the reason for every message not sent."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from campaigns.models import Delivery, MessageTemplate
from contacts.models import Channel, ConsentStatus, Contact
from workflows.engine.tick import tick
from workflows.explain import journey
from workflows.models import QuietPeriod, SendingPolicy, StepLog, Workflow
from workflows.reasons import display

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def eva(db) -> Contact:
    """Subscribed to email, lives in New York, where 09:00 UTC is 04:00 in the night."""
    return Contact.objects.create(
        email="eva@example.com", first_name="Eva", email_consent=ConsentStatus.SUBSCRIBED, time_zone="America/New_York"
    )


def explain(email: str) -> list[str]:
    out = StringIO()
    with translation.override("en"):
        call_command("explain", email, stdout=out)
    return out.getvalue().splitlines()


def email(name: str, **extra) -> dict:
    return {"kind": "send_email", "name": name, **extra}


def test_explain_reports_cap_skip(anna, make_workflow, send_event, t0):
    for name in ("A news", "B news", "C news", "D news"):
        make_workflow([email("email 1")], name=name, blocked_send=Workflow.BlockedSend.SKIP)
    send_event("signed_up", anna.email, t0)
    tick(t0)

    lines = explain("anna@example.com")

    assert lines[0] == "Journey of anna@example.com (times in Europe/Amsterdam):"
    assert (
        "2026-11-02 10:00 D news: email 1 skipped: email frequency cap 3 per 7 days reached by A news email 1, "
        "B news email 1 and C news email 1"
    ) in lines


def test_explain_lines_in_order(anna, make_workflow, send_event, t0):
    make_workflow([email("email 1")], name="Welcome")
    send_event("signed_up", anna.email, t0)
    tick(t0)

    lines = explain("anna@example.com")

    assert lines[1:] == [
        "2026-11-02 10:00 Welcome: entered",
        "2026-11-02 10:00 Welcome: email 1 queued (Welcome message 1)",
        "2026-11-02 10:00 Welcome: completed",
        "2026-11-02 10:00 Welcome: email 1 sent (Email)",
    ]


def test_explain_deferral_in_contact_zone(eva, make_workflow, send_event, t0):
    make_workflow([email("email 1")], name="Welcome")
    send_event("signed_up", eva.email, t0)
    tick(t0)
    tick(t0 + 4 * HOUR)

    lines = explain("eva@example.com")

    assert lines[0] == "Journey of eva@example.com (times in America/New_York):"
    assert (
        "2026-11-02 04:00 Welcome: email 1 deferred: quiet hours 21:00-08:00 in America/New_York; next try 11/02/2026 8 a.m. EST"
    ) in lines
    assert "2026-11-02 08:00 Welcome: email 1 sent (Email)" in lines


def test_explain_reports_every_skip_reason(anna, make_workflow, send_event, t0):
    policy = SendingPolicy.load()
    policy.caps.filter(channel=Channel.EMAIL).update(max_messages=1)
    QuietPeriod.objects.create(policy=policy, event_type="order_placed", days=7)
    sms_template = MessageTemplate.objects.create(name="Welcome text", channel=Channel.SMS, body="Hoi")
    make_workflow(
        [email("email 1"), {"kind": "send_sms", "name": "sms 1", "template": sms_template}],
        name="Welcome",
    )
    make_workflow([{"kind": "wait", "wait_days": 2}], name="Cart recovery", trigger_event="checkout_started", priority=20)
    make_workflow([email("email 1")], name="Win-back", trigger_event="product_viewed", on_conflict=Workflow.OnConflict.EXIT)
    make_workflow(
        [email("email 1")], name="Browse", trigger_event="page_viewed", priority=30, blocked_send=Workflow.BlockedSend.SKIP
    )
    make_workflow(
        [email("email 1")], name="Reminder", trigger_event="link_clicked", priority=50, blocked_send=Workflow.BlockedSend.SKIP
    )
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("checkout_started", anna.email, t0 + HOUR, checkout_token="cart-1")
    tick(t0 + HOUR)
    send_event("page_viewed", anna.email, t0 + 2 * HOUR)
    send_event("product_viewed", anna.email, t0 + 2 * HOUR)
    tick(t0 + 2 * HOUR)
    send_event("order_placed", anna.email, t0 + 3 * HOUR, order_id="1001")
    tick(t0 + 3 * HOUR)
    send_event("link_clicked", anna.email, t0 + 4 * HOUR)
    tick(t0 + 4 * HOUR)

    lines = explain("anna@example.com")

    not_sent = [line for line in lines if " skipped: " in line or " deferred: " in line or " exited at " in line]
    assert not_sent == [
        "2026-11-02 10:00 Welcome: sms 1 skipped: no phone number",
        "2026-11-02 12:00 Browse: email 1 skipped: email frequency cap 1 per 7 days reached by Welcome email 1",
        "2026-11-02 12:00 Win-back: exited at email 1: priority conflict: active in Cart recovery (priority 20, "
        "this workflow 0); also email frequency cap 1 per 7 days",
        "2026-11-02 14:00 Reminder: email 1 skipped: quiet period of 7 days after order_placed on 11/02/2026 1 p.m. CET; "
        "also email frequency cap 1 per 7 days",
    ]


def test_explain_shows_every_stored_reason(anna, make_workflow, send_event, t0):
    make_workflow([{"kind": "wait", "wait_days": 2}], name="Cart recovery", trigger_event="checkout_started", priority=20)
    make_workflow([email("email 1"), email("email 2"), email("email 3"), email("email 4")], name="Welcome")
    send_event("checkout_started", anna.email, t0 - 2 * HOUR, checkout_token="cart-1")
    tick(t0 - 2 * HOUR)
    send_event("signed_up", anna.email, t0)
    for hours in range(0, 30):
        tick(t0 + hours * HOUR)

    lines = explain("anna@example.com")

    reasons = list(StepLog.objects.filter(outcome__in=["skipped", "deferred", "exited"]).values_list("reason", flat=True))
    assert len(reasons) > 1
    # English reasons read as stored, with their times in the reader's date format.
    with translation.override("en"):
        displayed = [display(reason, anna.time_zone or None) for reason in reasons]
    assert any(text != reason for text, reason in zip(displayed, reasons, strict=True))
    assert [text for text in displayed if not any(line.endswith(text) for line in lines)] == []


def test_explain_reports_conflict_exit(anna, make_workflow, send_event, t0):
    make_workflow([{"kind": "wait", "wait_days": 2}], name="Cart recovery", trigger_event="checkout_started", priority=20)
    make_workflow([email("email 1")], name="Welcome", on_conflict=Workflow.OnConflict.EXIT)
    send_event("checkout_started", anna.email, t0, checkout_token="cart-1")
    send_event("signed_up", anna.email, t0)
    tick(t0)

    lines = explain("anna@example.com")

    assert (
        "2026-11-02 10:00 Welcome: exited at email 1: priority conflict: active in Cart recovery (priority 20, this workflow 0)"
    ) in lines


def test_explain_reports_consent_skip(bram, make_workflow, send_event, t0):
    make_workflow([email("email 1")], name="Welcome")
    send_event("signed_up", bram.email, t0)
    tick(t0)

    lines = explain("bram@example.com")

    assert "2026-11-02 10:00 Welcome: email 1 skipped: no email consent" in lines


def test_explain_reports_cancelled_message(anna, make_workflow, send_event, t0):
    make_workflow([email("email 1")], name="Welcome")
    send_event("signed_up", anna.email, t0)
    tick(t0, dispatch=False)
    send_event("unsubscribed", anna.email, t0 + HOUR)
    tick(t0 + HOUR)

    lines = explain("anna@example.com")

    assert "2026-11-02 10:00 Welcome: email 1 not sent: unsubscribed from email" in lines


def test_explain_reports_broadcast(anna, t0):
    template = MessageTemplate.objects.create(name="November newsletter", subject="Nieuws", body="Hallo")
    Delivery.objects.create(
        contact=anna,
        template=template,
        channel=Channel.EMAIL,
        status=Delivery.Status.SENT,
        created_at=t0,
        sent_at=t0 + HOUR,
    )

    lines = explain("anna@example.com")

    assert lines[1:] == [
        "2026-11-02 10:00 broadcast November newsletter queued (Email)",
        "2026-11-02 11:00 broadcast November newsletter sent (Email)",
    ]


def test_explain_without_history(anna):
    assert explain("anna@example.com") == ["anna@example.com has not been in any workflow and got no messages."]


def test_explain_email_case_insensitive(anna):
    assert explain(" Anna@Example.com ") == ["anna@example.com has not been in any workflow and got no messages."]


def test_explain_unknown_email_rejected(db):
    with translation.override("en"), pytest.raises(CommandError, match="No contact has the email address 'nobody@example.com'"):
        call_command("explain", "nobody@example.com")


def test_journey_returns_lines_oldest_first(anna, make_workflow, send_event, t0):
    make_workflow([email("email 1"), {"kind": "wait", "wait_days": 1}, email("email 2")], name="Welcome")
    send_event("signed_up", anna.email, t0)
    tick(t0)
    tick(t0 + DAY)

    times = [line.at for line in journey(anna)]

    assert times == sorted(times)
    assert times[-1] == t0 + DAY
