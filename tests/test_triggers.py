"""Triggers the tick fires itself (dates, inactivity, schedules, condition changes) and entry rules."""

from datetime import UTC, datetime, time, timedelta

import pytest

from contacts.models import Contact
from workflows.engine.tick import tick
from workflows.models import Enrollment, Workflow

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

WAIT_A_DAY = [{"kind": "wait", "wait_days": 1}]


def keys(workflow: Workflow) -> list[tuple[str, str]]:
    return list(workflow.enrollments.order_by("enrolled_at", "id").values_list("contact__email", "key"))


def test_birthday_fires_at_local_time_once(make_workflow):
    workflow = make_workflow(
        WAIT_A_DAY,
        trigger_type=Workflow.TriggerType.DATE,
        trigger_event="",
        trigger_date_field="birthday",
        trigger_time=time(9, 0),
        entry_rule=Workflow.EntryRule.EVERY_TIME,
    )
    Contact.objects.create(email="jarig@example.com", attributes={"birthday": "1990-11-03"})

    tick(datetime(2026, 11, 3, 7, 30, tzinfo=UTC))
    assert keys(workflow) == []

    tick(datetime(2026, 11, 3, 8, 1, tzinfo=UTC))
    tick(datetime(2026, 11, 3, 15, 0, tzinfo=UTC))
    assert keys(workflow) == [("jarig@example.com", "birthday:2026")]

    tick(datetime(2027, 11, 3, 8, 1, tzinfo=UTC))
    assert keys(workflow)[-1] == ("jarig@example.com", "birthday:2027")


def test_birthday_in_other_time_zone(make_workflow):
    workflow = make_workflow(
        WAIT_A_DAY,
        trigger_type=Workflow.TriggerType.DATE,
        trigger_event="",
        trigger_date_field="birthday",
        trigger_time=time(9, 0),
    )
    Contact.objects.create(email="ny@example.com", time_zone="America/New_York", attributes={"birthday": "1985-11-03"})

    tick(datetime(2026, 11, 3, 8, 30, tzinfo=UTC))
    assert keys(workflow) == []

    # 09:00 in New York on 3 November 2026 (EST, UTC-5) is 14:00 UTC.
    tick(datetime(2026, 11, 3, 14, 0, tzinfo=UTC))
    assert keys(workflow) == [("ny@example.com", "birthday:2026")]


def test_leap_day_birthday_on_february_28(make_workflow):
    workflow = make_workflow(
        WAIT_A_DAY,
        trigger_type=Workflow.TriggerType.DATE,
        trigger_event="",
        trigger_date_field="birthday",
        trigger_time=time(9, 0),
        entry_rule=Workflow.EntryRule.EVERY_TIME,
    )
    Contact.objects.create(email="leap@example.com", attributes={"birthday": "2000-02-29"})

    tick(datetime(2027, 2, 28, 9, 0, tzinfo=UTC))
    tick(datetime(2027, 3, 1, 9, 0, tzinfo=UTC))
    tick(datetime(2028, 2, 28, 9, 0, tzinfo=UTC))
    tick(datetime(2028, 2, 29, 9, 0, tzinfo=UTC))

    assert keys(workflow) == [("leap@example.com", "birthday:2027"), ("leap@example.com", "birthday:2028")]
    assert workflow.enrollments.get(key="birthday:2028").enrolled_at == datetime(2028, 2, 29, 9, 0, tzinfo=UTC)


def test_date_offset_days_before(make_workflow):
    workflow = make_workflow(
        WAIT_A_DAY,
        trigger_type=Workflow.TriggerType.DATE,
        trigger_event="",
        trigger_date_field="renewal",
        trigger_offset_days=-7,
        trigger_time=time(10, 0),
    )
    Contact.objects.create(email="renew@example.com", attributes={"renewal": "2025-12-15"})

    tick(datetime(2026, 12, 8, 9, 30, tzinfo=UTC))

    assert keys(workflow) == [("renew@example.com", "renewal:2026")]


def test_signup_anniversary_from_created_at(make_workflow):
    workflow = make_workflow(
        WAIT_A_DAY,
        trigger_type=Workflow.TriggerType.DATE,
        trigger_event="",
        trigger_date_field="created_at",
        trigger_time=time(9, 0),
    )
    Contact.objects.create(email="old@example.com", created_at=datetime(2024, 6, 1, 12, 0, tzinfo=UTC))

    tick(datetime(2026, 6, 1, 8, 0, tzinfo=UTC))

    assert keys(workflow) == [("old@example.com", "created_at:2026")]


def test_inactivity_fires_once_per_lapse(anna, make_workflow, send_event, t0):
    workflow = make_workflow(
        WAIT_A_DAY,
        trigger_type=Workflow.TriggerType.INACTIVITY,
        trigger_event="order_placed",
        trigger_days=60,
        entry_rule=Workflow.EntryRule.EVERY_TIME,
    )
    send_event("order_placed", anna.email, t0, total_price="30.00")
    tick(t0)

    tick(t0 + timedelta(days=59))
    assert keys(workflow) == []

    tick(t0 + timedelta(days=61))
    tick(t0 + timedelta(days=62))
    tick(t0 + timedelta(days=90))
    assert len(keys(workflow)) == 1

    send_event("order_placed", anna.email, t0 + timedelta(days=100), total_price="30.00")
    tick(t0 + timedelta(days=100))
    tick(t0 + timedelta(days=161))
    assert len(keys(workflow)) == 2
    assert keys(workflow)[1][1] == f"lapse:{(t0 + timedelta(days=100)).isoformat()}"


def test_inactivity_on_other_event_type(anna, bram, make_workflow, send_event, t0):
    workflow = make_workflow(
        WAIT_A_DAY, trigger_type=Workflow.TriggerType.INACTIVITY, trigger_event="page_viewed", trigger_days=14
    )
    send_event("page_viewed", anna.email, t0)
    send_event("page_viewed", bram.email, t0 + timedelta(days=10))
    tick(t0)

    tick(t0 + timedelta(days=15))

    assert [email for email, _key in keys(workflow)] == ["anna@example.com"]


def test_schedule_fires_each_run_once(anna, bram, make_workflow):
    workflow = make_workflow(
        WAIT_A_DAY,
        trigger_type=Workflow.TriggerType.SCHEDULE,
        trigger_event="",
        trigger_cron="0 9 * * 1",
        trigger_filter={"field": "email_consent", "op": "eq", "value": "subscribed"},
        entry_rule=Workflow.EntryRule.EVERY_TIME,
    )
    # Monday 2 November 2026; 09:00 in Amsterdam is 08:00 UTC.
    tick(datetime(2026, 11, 2, 7, 0, tzinfo=UTC))
    assert keys(workflow) == []

    tick(datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    tick(datetime(2026, 11, 2, 8, 1, tzinfo=UTC))
    assert keys(workflow) == [("anna@example.com", "run:2026-11-02T09:00:00+01:00")]

    # Two Mondays pass without a tick: only the latest run fires.
    Enrollment.objects.update(state=Enrollment.State.COMPLETED)
    tick(datetime(2026, 11, 17, 12, 0, tzinfo=UTC))
    assert keys(workflow)[1:] == [("anna@example.com", "run:2026-11-16T09:00:00+01:00")]


def test_score_threshold_fires_on_each_crossing(anna, make_workflow, t0):
    workflow = make_workflow(
        WAIT_A_DAY,
        trigger_type=Workflow.TriggerType.CONDITION_ENTERED,
        trigger_event="",
        trigger_filter={"field": "lead_score", "op": "gte", "value": 50},
        entry_rule=Workflow.EntryRule.EVERY_TIME,
    )
    already_hot = Contact.objects.create(email="hot@example.com", lead_score=80)

    tick(t0)
    assert keys(workflow) == []

    Contact.objects.filter(pk=anna.pk).update(lead_score=60)
    tick(t0 + timedelta(minutes=1))
    tick(t0 + timedelta(minutes=2))
    assert keys(workflow) == [("anna@example.com", f"changed:{(t0 + timedelta(minutes=1)).isoformat()}")]

    Enrollment.objects.update(state=Enrollment.State.COMPLETED)
    Contact.objects.filter(pk=anna.pk).update(lead_score=10)
    tick(t0 + timedelta(minutes=3))
    Contact.objects.filter(pk=anna.pk).update(lead_score=55)
    tick(t0 + timedelta(minutes=4))

    assert [email for email, _key in keys(workflow)] == ["anna@example.com", "anna@example.com"]
    assert not workflow.enrollments.filter(contact=already_hot).exists()


def test_segment_left_trigger(anna, make_workflow, t0):
    from contacts.models import Segment, Tag

    Segment.objects.create(name="Newsletter", condition={"tag": "newsletter"})
    tag = Tag.objects.create(name="newsletter")
    anna.tags.add(tag)
    workflow = make_workflow(
        WAIT_A_DAY, trigger_type=Workflow.TriggerType.CONDITION_LEFT, trigger_event="", trigger_filter={"segment": "Newsletter"}
    )
    tick(t0)

    anna.tags.remove(tag)
    tick(t0 + timedelta(minutes=1))

    assert [email for email, _key in keys(workflow)] == ["anna@example.com"]


def test_entry_rule_once_per_days(anna, make_workflow, send_event, t0):
    workflow = make_workflow(
        [{"kind": "wait", "wait_hours": 1}],
        trigger_event="product_viewed",
        entry_rule=Workflow.EntryRule.ONCE_PER_DAYS,
        reentry_days=7,
    )
    send_event("product_viewed", anna.email, t0)
    tick(t0)
    send_event("product_viewed", anna.email, t0 + timedelta(days=3))
    tick(t0 + timedelta(days=3))
    assert workflow.enrollments.count() == 1

    send_event("product_viewed", anna.email, t0 + timedelta(days=8))
    tick(t0 + timedelta(days=8))
    assert workflow.enrollments.count() == 2


def test_trigger_settings_validated(db):
    workflow = Workflow(name="Bad", trigger_type=Workflow.TriggerType.SCHEDULE, trigger_cron="every monday")

    with pytest.raises(Exception) as error:
        workflow.full_clean()

    assert "'every monday' is not a valid cron expression" in str(error.value)


# Restart when a trigger property changes.


def restarting_workflow(make_workflow, **fields) -> Workflow:
    return make_workflow(
        [{"kind": "wait", "wait_hours": 2}, {"kind": "send_email"}],
        trigger_event="product_viewed",
        restart_on_change="category",
        **fields,
    )


def test_restart_takes_the_newest_of_several_events(anna, make_workflow, send_event, t0):
    workflow = restarting_workflow(make_workflow, entry_rule=Workflow.EntryRule.EVERY_TIME)
    send_event("product_viewed", anna.email, t0, category="Shirts")
    tick(t0)
    send_event("product_viewed", anna.email, t0 + timedelta(minutes=10), category="Shoes")
    send_event("product_viewed", anna.email, t0 + timedelta(minutes=20), category="Bags")

    tick(t0 + timedelta(minutes=30))

    assert list(workflow.enrollments.order_by("id").values_list("state", "context__category")) == [
        (Enrollment.State.EXITED, "Shirts"),
        (Enrollment.State.ACTIVE, "Bags"),
    ]
    assert workflow.enrollments.get(context__category="Shirts").exit_reason == "restarted: category changed to Bags"


def test_restart_passes_the_once_rule(anna, make_workflow, send_event, t0):
    workflow = restarting_workflow(make_workflow, entry_rule=Workflow.EntryRule.ONCE)
    send_event("product_viewed", anna.email, t0, category="Shirts")
    tick(t0)
    send_event("product_viewed", anna.email, t0 + timedelta(minutes=10), category="Shoes")

    tick(t0 + timedelta(minutes=10))

    assert workflow.enrollments.filter(state=Enrollment.State.ACTIVE).get().context["category"] == "Shoes"


def test_event_without_the_property_does_not_restart(anna, make_workflow, send_event, t0):
    workflow = restarting_workflow(make_workflow)
    send_event("product_viewed", anna.email, t0, category="Shirts")
    tick(t0)
    send_event("product_viewed", anna.email, t0 + timedelta(minutes=10))

    tick(t0 + timedelta(minutes=10))

    assert list(workflow.enrollments.values_list("state", flat=True)) == [Enrollment.State.ACTIVE]


def test_completed_enrollment_is_not_restarted(anna, make_workflow, send_event, t0):
    workflow = restarting_workflow(make_workflow, entry_rule=Workflow.EntryRule.ONCE)
    send_event("product_viewed", anna.email, t0, category="Shirts")
    tick(t0)
    tick(t0 + timedelta(hours=2))
    send_event("product_viewed", anna.email, t0 + timedelta(hours=3), category="Shoes")

    tick(t0 + timedelta(hours=3))

    assert list(workflow.enrollments.values_list("state", flat=True)) == [Enrollment.State.COMPLETED]


def test_restart_needs_an_event_trigger(db):
    from django.core.exceptions import ValidationError

    workflow = Workflow(
        name="Dates", trigger_type=Workflow.TriggerType.DATE, trigger_date_field="birthday", restart_on_change="category"
    )

    with pytest.raises(ValidationError) as error:
        workflow.full_clean()

    assert error.value.message_dict["restart_on_change"] == [
        "Only an event trigger can restart; clear this field or choose an event trigger."
    ]
