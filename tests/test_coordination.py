"""Workflows as one voice: the sending policy, per-workflow caps and conflicts, deferrals, send channels and resume."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib import messages
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from campaigns.models import Delivery, MessageTemplate
from contacts.models import Channel, ConsentStatus, Contact, Tag
from workflows.engine.tick import tick
from workflows.lifecycle import pause
from workflows.models import Enrollment, FrequencyCap, QuietPeriod, SendingPolicy, StepLog, SuppressionRule, Workflow
from workflows.resume import resume

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
PURCHASED_THIS_CART = {"event": "order_placed", "since": "enrollment", "same_key": True}


@pytest.fixture
def policy() -> SendingPolicy:
    return SendingPolicy.load()


@pytest.fixture
def eva(db) -> Contact:
    """Subscribed to email, lives in New York, where 09:00 UTC is 04:00 in the night."""
    return Contact.objects.create(
        email="eva@example.com", first_name="Eva", email_consent=ConsentStatus.SUBSCRIBED, time_zone="America/New_York"
    )


@pytest.fixture
def dirk(db) -> Contact:
    """Subscribed to email, SMS and WhatsApp, in Amsterdam."""
    return Contact.objects.create(
        email="dirk@example.com",
        phone="+31612345678",
        first_name="Dirk",
        email_consent=ConsentStatus.SUBSCRIBED,
        sms_consent=ConsentStatus.SUBSCRIBED,
        whatsapp_consent=ConsentStatus.SUBSCRIBED,
        time_zone="Europe/Amsterdam",
    )


def email(name: str, **extra) -> dict:
    return {"kind": "send_email", "name": name, **extra}


def sms(name: str, **extra) -> dict:
    template = MessageTemplate.objects.create(
        name=f"SMS {name} {MessageTemplate.objects.count()}", channel=Channel.SMS, body="Hoi"
    )
    return {"kind": "send_sms", "name": name, "template": template, **extra}


def whatsapp(name: str) -> dict:
    template = MessageTemplate.objects.create(
        name=f"WhatsApp {name}", channel=Channel.WHATSAPP, whatsapp_template_name="promo", whatsapp_language="nl"
    )
    return {"kind": "send_whatsapp", "name": name, "template": template}


def enrollment_of(contact: Contact, workflow: Workflow) -> Enrollment:
    return Enrollment.objects.filter(contact=contact, workflow=workflow).latest("id")


def outcomes(enrollment: Enrollment) -> list[tuple[str, str]]:
    return list(enrollment.logs.order_by("at", "id").values_list("outcome", "reason"))


def sent_messages(contact: Contact) -> list[str]:
    """Name each of the contact's messages that was not cancelled as "workflow step", oldest first."""
    deliveries = (
        Delivery.objects.filter(contact=contact)
        .exclude(status=Delivery.Status.CANCELLED)
        .select_related("enrollment__workflow", "step")
        .order_by("created_at", "id")
    )
    return [f"{delivery.enrollment.workflow.name} {delivery.step.name}" for delivery in deliveries]


def run_clock(start: datetime, end: datetime, events: dict[datetime, list]) -> None:
    """Tick every hour from ``start`` to ``end``, storing each hour's events just before its tick."""
    moment = start
    while moment <= end:
        for store in events.get(moment, []):
            store()
        tick(moment)
        moment += HOUR


# The whole story: one contact in four workflows over nine days.


def test_scenario_sends_only_allowed_messages(anna, make_workflow, send_event, policy, t0):
    QuietPeriod.objects.create(policy=policy, event_type="order_placed", days=7)
    make_workflow(
        [
            email("email 1"),
            {"kind": "wait", "wait_days": 1},
            email("email 2"),
            {"kind": "wait", "wait_days": 1},
            email("email 3"),
        ],
        name="Welcome series",
        on_conflict=Workflow.OnConflict.SKIP,
        blocked_send=Workflow.BlockedSend.SKIP,
    )
    make_workflow(
        [{"kind": "wait", "wait_hours": 1}, email("email 1")],
        name="Browse abandonment",
        trigger_event="product_viewed",
        entry_rule=Workflow.EntryRule.EVERY_TIME,
        cap_messages=1,
        cap_window_hours=24,
        blocked_send=Workflow.BlockedSend.SKIP,
    )
    make_workflow(
        [{"kind": "wait", "wait_hours": 1}, email("email 1"), {"kind": "wait", "wait_hours": 23}, email("email 2")],
        name="Cart recovery",
        trigger_event="checkout_started",
        keyed=True,
        entry_rule=Workflow.EntryRule.EVERY_TIME,
        exit_condition=PURCHASED_THIS_CART,
        priority=20,
    )
    make_workflow(
        [email("confirmation", transactional=True), {"kind": "wait", "wait_days": 7}, email("review request")],
        name="Post-purchase",
        trigger_event="order_placed",
    )
    events = {
        t0: [lambda: send_event("signed_up", anna.email, t0)],
        t0 + 3 * HOUR: [lambda: send_event("product_viewed", anna.email, t0 + 3 * HOUR, product_id="7")],
        t0 + 6 * HOUR: [lambda: send_event("product_viewed", anna.email, t0 + 6 * HOUR, product_id="8")],
        t0 + 13 * HOUR: [lambda: send_event("checkout_started", anna.email, t0 + 13 * HOUR, checkout_token="cart-1")],
        t0 + 30 * HOUR: [
            lambda: send_event("order_placed", anna.email, t0 + 30 * HOUR, checkout_token="cart-1", total_price="59.95")
        ],
    }

    run_clock(t0, t0 + 9 * DAY, events)

    assert sent_messages(anna) == [
        "Welcome series email 1",
        "Browse abandonment email 1",
        "Cart recovery email 1",
        "Post-purchase confirmation",
        "Post-purchase review request",
    ]
    assert len(mail.outbox) == 5
    skipped = list(StepLog.objects.filter(outcome=StepLog.Outcome.SKIPPED).order_by("at").values_list("reason", flat=True))
    assert skipped == [
        "workflow cap 1 per 1 day reached by Browse abandonment email 1",
        "priority conflict: active in Cart recovery (priority 20, this workflow 0); also email frequency cap 3 per 7 days",
        "quiet period of 7 days after order_placed on 2026-11-03 16:00 CET; also email frequency cap 3 per 7 days",
    ]
    deferred = list(StepLog.objects.filter(outcome=StepLog.Outcome.DEFERRED).values_list("at", "reason"))
    assert deferred == [(t0 + 14 * HOUR, "quiet hours 21:00-08:00 in Europe/Amsterdam; next try 2026-11-03 08:00 CET")]


# Each rule on its own.


def test_default_policy_has_caps_and_quiet_hours(policy):
    caps = list(FrequencyCap.objects.order_by("channel").values_list("channel", "max_messages", "window_hours"))

    assert caps == [("email", 3, 168), ("sms", 1, 168), ("whatsapp", 2, 168)]
    assert (f"{policy.quiet_hours_start:%H:%M}", f"{policy.quiet_hours_end:%H:%M}") == ("21:00", "08:00")
    assert list(policy.spacings.values_list("channel", "after_channel")) == [("sms", "email")]


def test_policy_created_on_first_use(db):
    SendingPolicy.objects.all().delete()

    policy = SendingPolicy.load()

    assert policy.caps.count() == 3
    assert SendingPolicy.load().pk == policy.pk


def test_frequency_cap_counts_across_workflows(anna, make_workflow, send_event, t0):
    workflows = [
        make_workflow([email("email 1")], name=name, blocked_send=Workflow.BlockedSend.SKIP)
        for name in ("A news", "B news", "C news", "D news")
    ]
    send_event("signed_up", anna.email, t0)

    tick(t0)

    assert sent_messages(anna) == ["A news email 1", "B news email 1", "C news email 1"]
    assert outcomes(enrollment_of(anna, workflows[3]))[0] == (
        "skipped",
        "email frequency cap 3 per 7 days reached by A news email 1, B news email 1 and C news email 1",
    )


def test_frequency_cap_counts_broadcasts(anna, make_workflow, send_event, t0):
    for day in range(4):
        template = MessageTemplate.objects.create(name=f"Newsletter {day + 1}", subject="Nieuws", body="Hallo")
        Delivery.objects.create(
            contact=anna,
            template=template,
            channel=Channel.EMAIL,
            status=Delivery.Status.SENT,
            created_at=t0 - (4 - day) * DAY,
            sent_at=t0 - (4 - day) * DAY,
        )
    welcome = make_workflow([email("email 1")], name="Welcome", blocked_send=Workflow.BlockedSend.SKIP)
    send_event("signed_up", anna.email, t0)

    tick(t0)

    assert outcomes(enrollment_of(anna, welcome))[0] == (
        "skipped",
        "email frequency cap 3 per 7 days reached by Newsletter 1, Newsletter 2, Newsletter 3 and 1 more",
    )


def test_frequency_cap_ignores_transactional_messages(anna, make_workflow, send_event, t0):
    for name in ("Receipt", "Shipping", "Invoice"):
        make_workflow([email("email 1", transactional=True)], name=name)
    newsletter = make_workflow([email("email 1")], name="Newsletter", trigger_event="product_viewed")
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("product_viewed", anna.email, t0 + HOUR)

    tick(t0 + HOUR)

    assert outcomes(enrollment_of(anna, newsletter))[0] == ("queued", "Newsletter message 1")


def test_frequency_cap_defers_until_window_frees(anna, make_workflow, send_event, policy, t0):
    policy.caps.filter(channel=Channel.EMAIL).update(max_messages=1, window_hours=24)
    make_workflow([email("email 1")], name="Welcome")
    browse = make_workflow([email("email 1")], name="Browse", trigger_event="product_viewed", max_delay_hours=48)
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("product_viewed", anna.email, t0 + 2 * HOUR)

    tick(t0 + 2 * HOUR)

    enrollment = enrollment_of(anna, browse)
    assert enrollment.next_run_at == t0 + DAY
    assert outcomes(enrollment)[0] == (
        "deferred",
        "email frequency cap 1 per 1 day reached by Welcome email 1; next try 2026-11-03 10:00 CET",
    )
    tick(t0 + DAY)
    assert sent_messages(anna) == ["Welcome email 1", "Browse email 1"]


def test_frequency_cap_counts_runs_in_same_group(anna, make_workflow, send_event, policy, t0):
    policy.caps.filter(channel=Channel.EMAIL).update(max_messages=1)
    carts = make_workflow(
        [email("email 1")],
        name="Carts",
        trigger_event="checkout_started",
        keyed=True,
        entry_rule=Workflow.EntryRule.EVERY_TIME,
        blocked_send=Workflow.BlockedSend.SKIP,
    )
    send_event("checkout_started", anna.email, t0, checkout_token="cart-1")
    send_event("checkout_started", anna.email, t0, checkout_token="cart-2")

    tick(t0)

    states = sorted(carts.enrollments.values_list("key", "logs__outcome"))
    assert states == [("cart-1", "completed"), ("cart-1", "queued"), ("cart-2", "completed"), ("cart-2", "skipped")]


def test_workflow_cap_limits_own_messages(anna, make_workflow, send_event, t0):
    browse = make_workflow(
        [email("email 1")],
        name="Browse",
        trigger_event="product_viewed",
        entry_rule=Workflow.EntryRule.EVERY_TIME,
        cap_messages=1,
        cap_window_hours=24,
        blocked_send=Workflow.BlockedSend.SKIP,
    )
    for hours in (0, 3, 25):
        send_event("product_viewed", anna.email, t0 + hours * HOUR)
        tick(t0 + hours * HOUR)

    assert sent_messages(anna) == ["Browse email 1", "Browse email 1"]
    second = browse.enrollments.order_by("id")[1]
    assert outcomes(second)[0] == ("skipped", "workflow cap 1 per 1 day reached by Browse email 1")


def test_quiet_hours_in_contact_time_zone(anna, eva, make_workflow, send_event, t0):
    workflow = make_workflow([email("email 1")], name="Welcome")
    send_event("signed_up", anna.email, t0)
    send_event("signed_up", eva.email, t0)

    tick(t0)

    assert sent_messages(anna) == ["Welcome email 1"]
    assert sent_messages(eva) == []
    enrollment = enrollment_of(eva, workflow)
    assert enrollment.next_run_at == t0 + 4 * HOUR
    assert outcomes(enrollment)[0] == ("deferred", "quiet hours 21:00-08:00 in America/New_York; next try 2026-11-02 08:00 EST")
    tick(t0 + 4 * HOUR)
    assert sent_messages(eva) == ["Welcome email 1"]


def test_quiet_hours_cleared_send_any_time(eva, make_workflow, send_event, policy, t0):
    policy.quiet_hours_start = policy.quiet_hours_end = None
    policy.save()
    make_workflow([email("email 1")], name="Welcome")
    send_event("signed_up", eva.email, t0)

    tick(t0)

    assert sent_messages(eva) == ["Welcome email 1"]


def test_channel_spacing_defers_sms_to_next_day(dirk, make_workflow, send_event, t0):
    make_workflow([email("email 1")], name="Welcome")
    offer = make_workflow([sms("sms 1")], name="Offer", trigger_event="product_viewed")
    send_event("signed_up", dirk.email, t0)
    tick(t0, dispatch=False)
    send_event("product_viewed", dirk.email, t0 + 2 * HOUR)

    tick(t0 + 2 * HOUR, dispatch=False)

    enrollment = enrollment_of(dirk, offer)
    # Local midnight would be inside quiet hours, so the SMS waits for 08:00 in Amsterdam.
    assert enrollment.next_run_at == datetime(2026, 11, 3, 7, 0, tzinfo=UTC)
    assert outcomes(enrollment)[0] == (
        "deferred",
        "channel spacing: no SMS on a day that already had email (Welcome email 1); next try 2026-11-03 08:00 CET",
    )


def test_ignore_frequency_caps_sends_past_the_cap(anna, make_workflow, send_event, t0):
    for name in ("A news", "B news", "C news"):
        make_workflow([email("email 1")], name=name)
    cart = make_workflow([email("email 1")], name="Cart", ignore_frequency_caps=True, blocked_send=Workflow.BlockedSend.SKIP)
    send_event("signed_up", anna.email, t0)

    tick(t0)

    assert sent_messages(anna) == ["A news email 1", "B news email 1", "C news email 1", "Cart email 1"]
    assert outcomes(enrollment_of(anna, cart))[0] == ("queued", "Cart message 1")


def test_ignore_frequency_caps_still_counts_for_others(anna, make_workflow, send_event, t0):
    cart = make_workflow([email("email 1"), email("email 2"), email("email 3")], name="Cart", ignore_frequency_caps=True)
    news = make_workflow([email("email 1")], name="News", trigger_event="product_viewed", blocked_send=Workflow.BlockedSend.SKIP)
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("product_viewed", anna.email, t0 + HOUR)

    tick(t0 + HOUR)

    assert [state for state, _reason in outcomes(enrollment_of(anna, cart))].count("queued") == 3
    assert outcomes(enrollment_of(anna, news))[0] == (
        "skipped",
        "email frequency cap 3 per 7 days reached by Cart email 1, Cart email 2 and Cart email 3",
    )


def test_ignore_frequency_caps_skips_channel_spacing(dirk, make_workflow, send_event, t0):
    make_workflow([email("email 1")], name="Welcome")
    cart = make_workflow(
        [{"kind": "wait", "wait_hours": 2}, sms("sms 1")],
        name="Cart SMS",
        trigger_event="product_viewed",
        ignore_frequency_caps=True,
    )
    send_event("signed_up", dirk.email, t0)
    tick(t0, dispatch=False)
    send_event("product_viewed", dirk.email, t0 + HOUR)
    tick(t0 + HOUR, dispatch=False)

    # 13:00 in Amsterdam, on a day that already had an email.
    tick(t0 + 3 * HOUR, dispatch=False)

    assert [outcome for outcome, _reason in outcomes(enrollment_of(dirk, cart))] == ["waited", "queued", "completed"]
    assert sent_messages(dirk) == ["Welcome email 1", "Cart SMS sms 1"]


def test_ignore_frequency_caps_keeps_quiet_hours(eva, make_workflow, send_event, t0):
    cart = make_workflow([email("email 1")], name="Cart", ignore_frequency_caps=True)
    send_event("signed_up", eva.email, t0)

    tick(t0)

    enrollment = enrollment_of(eva, cart)
    assert outcomes(enrollment)[0][0] == "deferred"
    assert outcomes(enrollment)[0][1].startswith("quiet hours")
    assert enrollment.next_run_at == datetime(2026, 11, 2, 13, 0, tzinfo=UTC)


def test_channel_spacing_allows_email_after_sms(dirk, make_workflow, send_event, t0):
    make_workflow([sms("sms 1")], name="Offer")
    make_workflow([email("email 1")], name="Welcome", trigger_event="product_viewed")
    send_event("signed_up", dirk.email, t0)
    tick(t0, dispatch=False)
    send_event("product_viewed", dirk.email, t0 + HOUR)

    tick(t0 + HOUR, dispatch=False)

    assert sent_messages(dirk) == ["Offer sms 1", "Welcome email 1"]


def test_suppression_rule_skips_matching_contacts(anna, dirk, make_workflow, send_event, policy, t0):
    SuppressionRule.objects.create(policy=policy, name="Open ticket", condition={"tag": "open-ticket"})
    anna.tags.add(Tag.objects.create(name="open-ticket"))
    workflow = make_workflow([email("email 1")], name="Welcome", blocked_send=Workflow.BlockedSend.SKIP)
    send_event("signed_up", anna.email, t0)
    send_event("signed_up", dirk.email, t0)

    tick(t0)

    assert outcomes(enrollment_of(anna, workflow))[0] == ("skipped", 'suppression rule "Open ticket"')
    assert sent_messages(dirk) == ["Welcome email 1"]


def test_suppression_rule_inactive_is_ignored(anna, make_workflow, send_event, policy, t0):
    SuppressionRule.objects.create(policy=policy, name="Open ticket", condition={"tag": "open-ticket"}, active=False)
    anna.tags.add(Tag.objects.create(name="open-ticket"))
    make_workflow([email("email 1")], name="Welcome")
    send_event("signed_up", anna.email, t0)

    tick(t0)

    assert sent_messages(anna) == ["Welcome email 1"]


def test_suppression_rule_defers_and_rechecks(anna, make_workflow, send_event, policy, t0):
    SuppressionRule.objects.create(policy=policy, name="Open ticket", condition={"tag": "open-ticket"})
    ticket = Tag.objects.create(name="open-ticket")
    anna.tags.add(ticket)
    workflow = make_workflow([email("email 1")], name="Welcome")
    send_event("signed_up", anna.email, t0)
    tick(t0)
    anna.tags.remove(ticket)

    tick(t0 + HOUR)

    assert outcomes(enrollment_of(anna, workflow))[:2] == [
        ("deferred", 'suppression rule "Open ticket"; next try 2026-11-02 11:00 CET'),
        ("queued", "Welcome message 1"),
    ]


def test_quiet_period_after_purchase(anna, make_workflow, send_event, policy, t0):
    QuietPeriod.objects.create(policy=policy, event_type="order_placed", days=7)
    make_workflow([email("thanks")], name="Post-purchase", trigger_event="order_placed")
    win_back = make_workflow(
        [email("email 1")],
        name="Win-back",
        trigger_event="product_viewed",
        entry_rule=Workflow.EntryRule.EVERY_TIME,
        blocked_send=Workflow.BlockedSend.SKIP,
    )
    send_event("order_placed", anna.email, t0, order_id="1001", total_price="20.00")
    tick(t0)
    send_event("product_viewed", anna.email, t0 + DAY)
    tick(t0 + DAY)
    send_event("product_viewed", anna.email, t0 + 8 * DAY)

    tick(t0 + 8 * DAY)

    assert sent_messages(anna) == ["Post-purchase thanks", "Win-back email 1"]
    first = win_back.enrollments.order_by("id").first()
    assert outcomes(first)[0] == ("skipped", "quiet period of 7 days after order_placed on 2026-11-02 10:00 CET")


@pytest.mark.parametrize(
    ("on_conflict", "outcome", "state"),
    [
        (Workflow.OnConflict.SKIP, "skipped", Enrollment.State.COMPLETED),
        (Workflow.OnConflict.DEFER, "deferred", Enrollment.State.ACTIVE),
        (Workflow.OnConflict.EXIT, "exited", Enrollment.State.EXITED),
    ],
)
def test_priority_conflict_behaviour(anna, make_workflow, send_event, t0, on_conflict, outcome, state):
    make_workflow([{"kind": "wait", "wait_days": 2}], name="Cart recovery", trigger_event="checkout_started", priority=20)
    welcome = make_workflow([email("email 1")], name="Welcome", on_conflict=on_conflict)
    send_event("checkout_started", anna.email, t0, checkout_token="cart-1")
    tick(t0)
    send_event("signed_up", anna.email, t0 + HOUR)

    tick(t0 + HOUR)

    enrollment = enrollment_of(anna, welcome)
    assert sent_messages(anna) == []
    assert outcomes(enrollment)[0][0] == outcome
    assert outcomes(enrollment)[0][1].startswith("priority conflict: active in Cart recovery (priority 20, this workflow 0)")
    assert enrollment.state == state


def test_priority_conflict_defer_rechecks_hourly(anna, make_workflow, send_event, t0):
    make_workflow([{"kind": "wait", "wait_days": 2}], name="Cart recovery", trigger_event="checkout_started", priority=20)
    welcome = make_workflow([email("email 1")], name="Welcome")
    send_event("checkout_started", anna.email, t0, checkout_token="cart-1")
    send_event("signed_up", anna.email, t0)

    tick(t0)

    enrollment = enrollment_of(anna, welcome)
    assert enrollment.next_run_at == t0 + HOUR
    assert outcomes(enrollment)[0][1].endswith("; next try 2026-11-02 11:00 CET")


def test_lower_priority_workflow_does_not_block(anna, make_workflow, send_event, t0):
    make_workflow([{"kind": "wait", "wait_days": 2}], name="Newsletter", trigger_event="checkout_started", priority=-5)
    make_workflow([email("email 1")], name="Welcome")
    send_event("checkout_started", anna.email, t0, checkout_token="cart-1")
    send_event("signed_up", anna.email, t0)

    tick(t0)

    assert sent_messages(anna) == ["Welcome email 1"]


def test_paused_higher_priority_does_not_block(anna, make_workflow, send_event, t0):
    cart = make_workflow([{"kind": "wait", "wait_days": 2}], name="Cart recovery", trigger_event="checkout_started", priority=20)
    make_workflow([email("email 1")], name="Welcome", trigger_event="product_viewed")
    send_event("checkout_started", anna.email, t0, checkout_token="cart-1")
    tick(t0)
    pause(cart)
    send_event("product_viewed", anna.email, t0 + HOUR)

    tick(t0 + HOUR)

    assert sent_messages(anna) == ["Welcome email 1"]


def test_mutual_exclusion_blocks_win_back(anna, make_workflow, send_event, t0):
    post_purchase = make_workflow([{"kind": "wait", "wait_days": 3}], name="Post-purchase", trigger_event="order_placed")
    win_back = make_workflow(
        [email("email 1")], name="Win-back", trigger_event="product_viewed", priority=5, on_conflict=Workflow.OnConflict.SKIP
    )
    win_back.exclusions.add(post_purchase)
    send_event("order_placed", anna.email, t0, order_id="1001")
    tick(t0)
    send_event("product_viewed", anna.email, t0 + HOUR)

    tick(t0 + HOUR)

    assert outcomes(enrollment_of(anna, win_back))[0] == ("skipped", "mutual exclusion: not while active in Post-purchase")


def test_mutual_exclusion_is_one_way(anna, make_workflow, send_event, t0):
    post_purchase = make_workflow([email("email 1")], name="Post-purchase", trigger_event="order_placed")
    win_back = make_workflow([{"kind": "wait", "wait_days": 3}], name="Win-back", trigger_event="product_viewed")
    win_back.exclusions.add(post_purchase)
    send_event("product_viewed", anna.email, t0)
    tick(t0)
    send_event("order_placed", anna.email, t0 + HOUR, order_id="1001")

    tick(t0 + HOUR)

    assert sent_messages(anna) == ["Post-purchase email 1"]


def test_deferral_keeps_sequence_order(eva, make_workflow, send_event, t0):
    workflow = make_workflow([email("email 1"), {"kind": "add_tag", "tag": "after-email"}], name="Welcome")
    send_event("signed_up", eva.email, t0)
    tick(t0)

    assert eva.tags.filter(name="after-email").exists() is False
    assert enrollment_of(eva, workflow).step.name == "email 1"
    tick(t0 + 4 * HOUR)
    assert [outcome for outcome, _reason in outcomes(enrollment_of(eva, workflow))] == [
        "deferred",
        "queued",
        "tagged",
        "completed",
    ]


def test_deferral_skipped_after_max_delay(eva, make_workflow, send_event, t0):
    workflow = make_workflow([email("email 1"), {"kind": "add_tag", "tag": "after-email"}], name="Welcome", max_delay_hours=2)
    send_event("signed_up", eva.email, t0)
    tick(t0)
    assert enrollment_of(eva, workflow).next_run_at == t0 + 2 * HOUR

    tick(t0 + 2 * HOUR)

    enrollment = enrollment_of(eva, workflow)
    assert sent_messages(eva) == []
    assert outcomes(enrollment)[1] == (
        "skipped",
        "quiet hours 21:00-08:00 in America/New_York; still blocked after the maximum delay of 2 hours",
    )
    assert eva.tags.filter(name="after-email").exists() is True


def test_max_delay_zero_skips_at_once(eva, make_workflow, send_event, t0):
    workflow = make_workflow([email("email 1")], name="Welcome", max_delay_hours=0)
    send_event("signed_up", eva.email, t0)

    tick(t0)

    assert outcomes(enrollment_of(eva, workflow))[0][0] == "skipped"


def test_transactional_send_ignores_policy(eva, make_workflow, send_event, policy, t0):
    SuppressionRule.objects.create(policy=policy, name="Everyone", condition={"field": "email", "op": "is_set"})
    make_workflow([{"kind": "wait", "wait_days": 3}], name="Cart recovery", trigger_event="checkout_started", priority=20)
    make_workflow([email("confirmation", transactional=True)], name="Orders", trigger_event="order_placed")
    send_event("checkout_started", eva.email, t0, checkout_token="cart-1")
    tick(t0)
    send_event("order_placed", eva.email, t0 + HOUR, order_id="1001")

    tick(t0 + HOUR)

    # 05:00 in New York, suppressed by a rule and held by a higher-priority workflow, yet sent.
    assert sent_messages(eva) == ["Orders confirmation"]


def test_transactional_send_still_needs_address(anna, make_workflow, send_event, t0):
    anna.email_suppressed_at = t0 - DAY
    anna.save()
    workflow = make_workflow([email("confirmation", transactional=True)], name="Orders", trigger_event="order_placed")
    send_event("order_placed", anna.email, t0, order_id="1001")

    tick(t0)

    assert outcomes(enrollment_of(anna, workflow))[0] == ("skipped", "email suppressed")


# Send channels.


def test_sms_step_queues_sms_delivery(dirk, make_workflow, send_event, t0):
    make_workflow([sms("sms 1")], name="Offer")
    send_event("signed_up", dirk.email, t0)

    tick(t0, dispatch=False)

    delivery = Delivery.objects.get(contact=dirk)
    assert delivery.channel == Channel.SMS
    assert delivery.status == Delivery.Status.QUEUED


def test_whatsapp_step_queues_whatsapp_delivery(dirk, make_workflow, send_event, t0):
    make_workflow([whatsapp("whatsapp 1")], name="Offer")
    send_event("signed_up", dirk.email, t0)

    tick(t0, dispatch=False)

    assert Delivery.objects.get(contact=dirk).channel == Channel.WHATSAPP


@pytest.mark.parametrize(
    ("phone", "sms_consent", "reason"),
    [
        (None, ConsentStatus.SUBSCRIBED, "no phone number"),
        ("+31687654321", ConsentStatus.UNKNOWN, "no sms consent"),
    ],
)
def test_sms_step_checks_phone_and_consent(anna, make_workflow, send_event, t0, phone, sms_consent, reason):
    anna.phone = phone
    anna.sms_consent = sms_consent
    anna.save()
    workflow = make_workflow([sms("sms 1")], name="Offer")
    send_event("signed_up", anna.email, t0)

    tick(t0, dispatch=False)

    assert outcomes(enrollment_of(anna, workflow))[0] == ("skipped", reason)


def test_sms_frequency_cap_one_per_week(dirk, make_workflow, send_event, t0):
    make_workflow([sms("sms 1")], name="Offer", blocked_send=Workflow.BlockedSend.SKIP)
    second = make_workflow(
        [sms("sms 1")], name="Reminder", trigger_event="product_viewed", blocked_send=Workflow.BlockedSend.SKIP
    )
    send_event("signed_up", dirk.email, t0)
    tick(t0, dispatch=False)
    send_event("product_viewed", dirk.email, t0 + 3 * DAY)

    tick(t0 + 3 * DAY, dispatch=False)

    assert outcomes(enrollment_of(dirk, second))[0] == ("skipped", "SMS frequency cap 1 per 7 days reached by Offer sms 1")


# Unsubscribing while three workflows are active.


def test_unsubscribe_stops_every_later_send(anna, make_workflow, send_event, t0):
    for name in ("Welcome", "Browse", "Loyalty"):
        make_workflow([email("email 1"), {"kind": "wait", "wait_days": 1}, email("email 2")], name=name)
    send_event("signed_up", anna.email, t0)
    tick(t0, dispatch=False)
    assert Delivery.objects.filter(contact=anna, status=Delivery.Status.QUEUED).count() == 3

    send_event("unsubscribed", anna.email, t0 + HOUR)
    run_clock(t0 + HOUR, t0 + 3 * DAY, {})

    assert len(mail.outbox) == 0
    assert Delivery.objects.filter(contact=anna).exclude(status=Delivery.Status.CANCELLED).count() == 0
    assert Delivery.objects.filter(contact=anna).count() == 3
    assert Enrollment.objects.filter(contact=anna, state=Enrollment.State.ACTIVE).count() == 0


# One query per rule kind, whatever the number of contacts.


def count_send_queries(count: int, make_workflow, send_event, policy, t0) -> int:
    SuppressionRule.objects.create(policy=policy, name="Open ticket", condition={"tag": "open-ticket"})
    QuietPeriod.objects.create(policy=policy, event_type="order_placed", days=7)
    make_workflow([email("email 1")], name="Post-purchase", trigger_event="order_placed", priority=30)
    make_workflow([{"kind": "wait", "wait_days": 5}], name="Cart recovery", trigger_event="checkout_started", priority=20)
    make_workflow([email("email 1")], name="Browse", trigger_event="product_viewed", cap_messages=1)
    for number in range(count):
        contact = Contact.objects.create(email=f"klant{number}@example.com", email_consent=ConsentStatus.SUBSCRIBED)
        send_event("checkout_started", contact.email, t0, checkout_token=f"cart-{number}")
        send_event("order_placed", contact.email, t0, order_id=f"order-{number}")
        send_event("product_viewed", contact.email, t0)
    tick(t0, dispatch=False)
    with CaptureQueriesContext(connection) as queries:
        tick(t0 + HOUR, dispatch=False)
    deferred = Enrollment.objects.filter(workflow__name="Browse", logs__outcome=StepLog.Outcome.DEFERRED).distinct()
    assert deferred.count() == count
    assert Delivery.objects.filter(enrollment__workflow__name="Post-purchase").count() == count
    return len(queries)


def test_policy_queries_independent_of_contacts(db, make_workflow, send_event, t0):
    policy = SendingPolicy.load()
    few = count_send_queries(2, make_workflow, send_event, policy, t0)
    for model in (Workflow, MessageTemplate, Contact, SuppressionRule, QuietPeriod):
        model.objects.all().delete()

    many = count_send_queries(30, make_workflow, send_event, policy, t0 + 10 * DAY)

    assert many == few


# Resuming a paused workflow.


@pytest.fixture
def paused_overdue(make_workflow, send_event, t0) -> Workflow:
    """A paused workflow whose 30 enrollments all fell due during a day-long pause."""
    workflow = make_workflow([{"kind": "wait", "wait_hours": 1}, email("email 1")], name="Welcome")
    for number in range(30):
        contact = Contact.objects.create(email=f"klant{number}@example.com", email_consent=ConsentStatus.SUBSCRIBED)
        send_event("signed_up", contact.email, t0)
    tick(t0)
    pause(workflow)
    tick(t0 + DAY)
    return workflow


def test_resume_spreads_overdue_enrollments(paused_overdue, t0):
    now = t0 + DAY

    result = resume(paused_overdue, now=now)

    times = list(paused_overdue.enrollments.order_by("id").values_list("next_run_at", flat=True))
    assert result.enrollments_spread == 30
    assert min(times) == now
    assert max(times) < now + HOUR
    assert len(set(times)) == 30
    assert times == sorted(times)


def test_resume_sends_in_slots_not_burst(paused_overdue, t0):
    now = t0 + DAY
    resume(paused_overdue, now=now)

    tick(now)

    assert len(mail.outbox) == 1
    tick(now + HOUR)
    assert len(mail.outbox) == 30


def test_resume_send_missed_leaves_due(paused_overdue, t0):
    now = t0 + DAY

    result = resume(paused_overdue, send_missed=True, now=now)
    tick(now)

    assert result.enrollments_spread == 0
    assert len(mail.outbox) == 30


def test_resume_spreads_held_deliveries(make_workflow, send_event, t0):
    workflow = make_workflow([email("email 1")], name="Welcome")
    for number in range(3):
        contact = Contact.objects.create(email=f"klant{number}@example.com", email_consent=ConsentStatus.SUBSCRIBED)
        send_event("signed_up", contact.email, t0)
    tick(t0, dispatch=False)
    pause(workflow)
    now = t0 + DAY

    result = resume(workflow, now=now)

    attempts = list(Delivery.objects.order_by("created_at", "id").values_list("next_attempt_at", flat=True))
    assert result.deliveries_spread == 3
    assert attempts == [now, now + 20 * timedelta(minutes=1), now + 40 * timedelta(minutes=1)]


def test_resume_keeps_invalid_workflow_paused(paused_overdue, t0):
    paused_overdue.steps.all().delete()

    with translation.override("en"):
        result = resume(paused_overdue, now=t0 + DAY)

    paused_overdue.refresh_from_db()
    assert result.problems == ["The workflow has no steps."]
    assert paused_overdue.status == Workflow.Status.PAUSED


def test_resume_rejects_live_workflow(make_workflow):
    workflow = make_workflow([email("email 1")], name="Welcome")

    with pytest.raises(ValueError, match="is live, not paused"):
        resume(workflow)


def test_resume_admin_action_spreads(client, staff_user, paused_overdue, t0):
    client.force_login(staff_user)

    with time_machine.travel(t0 + DAY, tick=False):
        response = client.post(
            reverse("admin:workflows_workflow_changelist"),
            {"action": "resume_without_late_sends", "_selected_action": [paused_overdue.pk]},
            follow=True,
        )

    paused_overdue.refresh_from_db()
    assert paused_overdue.status == Workflow.Status.LIVE
    assert [message.level for message in response.context["messages"]] == [messages.SUCCESS]
    assert paused_overdue.enrollments.filter(next_run_at=t0 + DAY).count() == 1


def test_resume_admin_action_skips_live(client, staff_user, make_workflow):
    workflow = make_workflow([email("email 1")], name="Welcome")
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:workflows_workflow_changelist"),
        {"action": "resume_without_late_sends", "_selected_action": [workflow.pk]},
        follow=True,
    )

    assert [message.level for message in response.context["messages"]] == [messages.WARNING]


def test_deferred_send_counts_entered_once(anna, make_workflow, send_event, t0):
    from campaigns.models import StepMetric

    make_workflow([{"kind": "send_email"}], name="Night")
    # 23:00 in Amsterdam is inside the default quiet hours (21:00-08:00), so the send is deferred.
    late = t0.replace(hour=22)
    send_event("signed_up", anna.email, late)

    tick(late)
    tick(late + timedelta(hours=1))
    tick(late + timedelta(hours=9))

    assert sum(StepMetric.objects.filter(step__workflow__name="Night").values_list("entered", flat=True)) == 1
    assert sum(StepMetric.objects.filter(step__workflow__name="Night").values_list("sent", flat=True)) == 1
