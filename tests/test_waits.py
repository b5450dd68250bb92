"""Wait steps in the contact's own time: calendar days across DST, weekday and time, events, data."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.core import mail

from contacts.models import ConsentStatus, Contact
from workflows.engine.tick import tick
from workflows.models import Enrollment, Step

pytestmark = pytest.mark.django_db


def enrollment_of(contact: Contact) -> Enrollment:
    return Enrollment.objects.get(contact=contact)


def test_one_day_wait_keeps_local_time_across_dst(anna, make_workflow, send_event):
    make_workflow([{"kind": "wait", "wait_days": 1}, {"kind": "send_email"}])
    # Saturday 24 October 2026, 09:00 in Amsterdam (CEST, UTC+2); summer time ends that night.
    saturday_nine = datetime(2026, 10, 24, 7, 0, tzinfo=UTC)
    send_event("signed_up", anna.email, saturday_nine)

    tick(saturday_nine)

    # Sunday 09:00 in Amsterdam is CET (UTC+1): 08:00 UTC, 25 hours later.
    assert enrollment_of(anna).next_run_at == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


def test_hours_stay_exact_across_dst(anna, make_workflow, send_event):
    make_workflow([{"kind": "wait", "wait_hours": 24}, {"kind": "send_email"}])
    saturday_nine = datetime(2026, 10, 24, 7, 0, tzinfo=UTC)
    send_event("signed_up", anna.email, saturday_nine)

    tick(saturday_nine)

    assert enrollment_of(anna).next_run_at == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)


def test_day_wait_in_contact_time_zone(make_workflow, send_event):
    contact = Contact.objects.create(email="ny@example.com", time_zone="America/New_York", email_consent=ConsentStatus.SUBSCRIBED)
    make_workflow([{"kind": "wait", "wait_days": 2}, {"kind": "send_email"}])
    # 31 October 2026 09:00 in New York (EDT, UTC-4); the US leaves summer time on 1 November.
    start = datetime(2026, 10, 31, 13, 0, tzinfo=UTC)
    send_event("signed_up", contact.email, start)

    tick(start)

    # 2 November 09:00 EST (UTC-5).
    assert enrollment_of(contact).next_run_at == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def test_until_weekday_and_time(anna, make_workflow, send_event, t0):
    make_workflow(
        [{"kind": "wait", "wait_mode": Step.WaitMode.UNTIL_TIME, "wait_weekday": 3, "wait_time": time(10, 0)}, {"kind": "send_email"}]
    )
    send_event("signed_up", anna.email, t0)

    tick(t0)

    # From Monday 2 November 10:00 local, the next Thursday 10:00 in Amsterdam is 5 November 09:00 UTC.
    assert enrollment_of(anna).next_run_at == datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
    tick(datetime(2026, 11, 5, 9, 0, tzinfo=UTC))
    assert len(mail.outbox) == 1


def test_until_time_today_when_still_ahead(anna, make_workflow, send_event, t0):
    make_workflow([{"kind": "wait", "wait_mode": Step.WaitMode.UNTIL_TIME, "wait_time": time(18, 0)}, {"kind": "send_email"}])
    send_event("signed_up", anna.email, t0)

    tick(t0)

    assert enrollment_of(anna).next_run_at == datetime(2026, 11, 2, 17, 0, tzinfo=UTC)


def wait_for_shipping_workflow(make_workflow):
    return make_workflow(
        [
            {
                "kind": "wait",
                "key": "wait-shipped",
                "wait_mode": Step.WaitMode.UNTIL_EVENT,
                "wait_event": "order_fulfilled",
                "wait_days": 5,
                "if_true": "next",
                "if_false": "no-shipment",
            },
            {"kind": "wait", "wait_days": 3},
            {"kind": "add_tag", "tag": "guide-sent"},
            {"kind": "exit"},
            {"kind": "add_tag", "key": "no-shipment", "tag": "not-shipped"},
        ],
        trigger_event="order_placed",
    )


def test_wait_for_event_takes_yes_branch(anna, make_workflow, send_event, t0):
    wait_for_shipping_workflow(make_workflow)
    send_event("order_placed", anna.email, t0, total_price="40.00")
    tick(t0)
    assert enrollment_of(anna).next_run_at == t0 + timedelta(days=5)

    send_event("order_fulfilled", anna.email, t0 + timedelta(days=1))
    tick(t0 + timedelta(days=1))

    enrollment = enrollment_of(anna)
    assert enrollment.waiting_since is None
    assert enrollment.next_run_at == t0 + timedelta(days=4)
    tick(t0 + timedelta(days=4))
    assert set(anna.tags.values_list("name", flat=True)) == {"guide-sent"}


def test_wait_for_event_times_out(anna, make_workflow, send_event, t0):
    wait_for_shipping_workflow(make_workflow)
    send_event("order_fulfilled", anna.email, t0 - timedelta(days=30))
    send_event("order_placed", anna.email, t0, total_price="40.00")
    tick(t0)

    tick(t0 + timedelta(days=4))
    assert enrollment_of(anna).waiting_since is not None

    tick(t0 + timedelta(days=5))

    assert set(anna.tags.values_list("name", flat=True)) == {"not-shipped"}
    reasons = list(enrollment_of(anna).logs.values_list("reason", flat=True))
    assert "no order_fulfilled before the timeout -> no-shipment" in reasons


def test_wait_days_from_cycle_data(anna, make_workflow, send_event, t0):
    make_workflow(
        [
            {"kind": "wait", "wait_mode": Step.WaitMode.FROM_DATA, "wait_data_path": "trigger.line_items.cycle_days", "wait_days": 7},
            {"kind": "send_email"},
        ],
        trigger_event="order_placed",
    )
    items = [{"title": "Supplement 30 days", "cycle_days": 30}, {"title": "Coffee 1 lb", "cycle_days": "19"}]
    send_event("order_placed", anna.email, t0, total_price="40.00", line_items=items)

    tick(t0)

    # The shortest cycle (19 days) minus 7 days: reminded on day 12.
    assert enrollment_of(anna).next_run_at == t0 + timedelta(days=12)


def test_wait_from_data_missing_continues(anna, make_workflow, send_event, t0):
    make_workflow(
        [{"kind": "wait", "wait_mode": Step.WaitMode.FROM_DATA, "wait_data_path": "attributes.cycle_days", "wait_days": 7}, {"kind": "send_email"}]
    )
    send_event("signed_up", anna.email, t0)

    tick(t0)

    assert len(mail.outbox) == 1
    assert enrollment_of(anna).logs.filter(reason="no days at attributes.cycle_days, continued at once").exists()


def test_wait_settings_validated(db):
    step = Step(key="w", kind=Step.Kind.WAIT, wait_mode=Step.WaitMode.UNTIL_EVENT)

    assert "wait_event" in step.wait_errors()
    step.wait_event = "order_fulfilled"
    assert "wait_days" in step.wait_errors()
    step.wait_days = 5
    assert step.wait_errors() == {}


def test_wait_until_date_from_attribute(anna, make_workflow, send_event, t0):
    anna.attributes = {"event_date": "2026-11-20"}
    anna.save()
    make_workflow(
        [
            {"kind": "wait", "wait_mode": Step.WaitMode.UNTIL_DATE, "wait_data_path": "attributes.event_date", "wait_time": time(8, 30)},
            {"kind": "send_email"},
        ]
    )
    send_event("signed_up", anna.email, t0)

    tick(t0)

    # 20 November 08:30 in Amsterdam (CET, UTC+1).
    assert enrollment_of(anna).next_run_at == datetime(2026, 11, 20, 7, 30, tzinfo=UTC)


def test_wait_until_past_date_continues(anna, make_workflow, send_event, t0):
    make_workflow(
        [{"kind": "wait", "wait_mode": Step.WaitMode.UNTIL_DATE, "wait_data_path": "trigger.delivery_date"}, {"kind": "send_email"}],
        trigger_event="order_placed",
    )
    send_event("order_placed", anna.email, t0, total_price="10.00", delivery_date="2026-10-01")

    tick(t0)

    assert len(mail.outbox) == 1
