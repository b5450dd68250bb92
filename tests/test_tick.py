"""The tick: every step kind, branching, exits, goals, constraints and unsubscribe, on an injected clock."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.db.models import Sum

from campaigns.models import Delivery, StepMetric
from contacts.models import ConsentStatus, Contact, Tag
from workflows.engine.tick import tick
from workflows.lifecycle import activate, pause
from workflows.models import Enrollment, StepLog, Workflow

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def enrollment_of(contact: Contact, workflow: Workflow) -> Enrollment:
    return Enrollment.objects.get(contact=contact, workflow=workflow)


def outcomes(enrollment: Enrollment) -> list[tuple[str, str]]:
    return list(enrollment.logs.order_by("at", "id").values_list("outcome", "reason"))


def test_event_trigger_enrolls_and_sends(anna, make_workflow, send_event, t0):
    workflow = make_workflow([{"kind": "send_email"}])
    send_event("signed_up", anna.email, t0)

    result = tick(t0)

    assert result.events == 1
    assert result.advanced == 1
    enrollment = enrollment_of(anna, workflow)
    assert enrollment.state == Enrollment.State.COMPLETED
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["anna@example.com"]
    assert mail.outbox[0].subject == "Message 1 for Anna"


def test_trigger_filter_on_event_property(anna, bram, make_workflow, send_event, t0):
    bram.email_consent = ConsentStatus.SUBSCRIBED
    bram.save()
    workflow = make_workflow(
        [{"kind": "send_email"}],
        trigger_event="checkout_started",
        trigger_filter={"property": "total_price", "op": "gte", "value": 50},
    )
    send_event("checkout_started", anna.email, t0, token="a", total_price="59.95")
    send_event("checkout_started", bram.email, t0, token="b", total_price="12.50")

    tick(t0)

    assert list(workflow.enrollments.values_list("contact__email", flat=True)) == ["anna@example.com"]


def test_wait_holds_until_duration_passes(anna, make_workflow, send_event, t0):
    workflow = make_workflow([{"kind": "wait", "wait_hours": 2}, {"kind": "send_email"}])
    send_event("signed_up", anna.email, t0)

    tick(t0)
    tick(t0 + HOUR)
    assert len(mail.outbox) == 0
    enrollment = enrollment_of(anna, workflow)
    assert enrollment.next_run_at == t0 + 2 * HOUR

    tick(t0 + 2 * HOUR)
    assert len(mail.outbox) == 1


def test_send_skipped_without_consent(bram, make_workflow, send_event, t0):
    workflow = make_workflow([{"kind": "send_email"}, {"kind": "add_tag", "tag": "after-send"}])
    send_event("signed_up", bram.email, t0)

    tick(t0)

    enrollment = enrollment_of(bram, workflow)
    assert len(mail.outbox) == 0
    assert ("skipped", "no email consent") in outcomes(enrollment)
    assert enrollment.state == Enrollment.State.COMPLETED
    assert bram.tags.filter(name="after-send").exists()
    assert StepMetric.objects.get(step__key="step-1").skipped == 1


def test_transactional_send_ignores_marketing_consent(bram, make_workflow, send_event, t0):
    make_workflow([{"kind": "send_email", "transactional": True}])
    send_event("signed_up", bram.email, t0)

    tick(t0)

    assert len(mail.outbox) == 1
    assert "List-Unsubscribe" not in mail.outbox[0].extra_headers


def test_condition_branches_yes_and_no(anna, make_workflow, send_event, t0):
    steps = [
        {"kind": "condition", "condition": {"tag": "vip"}, "if_true": "vip-tag", "if_false": "next"},
        {"kind": "add_tag", "tag": "regular", "key": "regular-tag"},
        {"kind": "exit"},
        {"kind": "add_tag", "tag": "got-vip-branch", "key": "vip-tag"},
    ]
    workflow = make_workflow(steps)
    vip = Contact.objects.create(email="vip@example.com", email_consent=ConsentStatus.SUBSCRIBED)
    vip.tags.add(Tag.objects.create(name="vip"))
    send_event("signed_up", anna.email, t0)
    send_event("signed_up", vip.email, t0)

    tick(t0)

    assert set(anna.tags.values_list("name", flat=True)) == {"regular"}
    assert set(vip.tags.values_list("name", flat=True)) == {"vip", "got-vip-branch"}
    assert enrollment_of(anna, workflow).exit_reason == "exit step"
    assert enrollment_of(vip, workflow).state == Enrollment.State.COMPLETED


def test_condition_purchase_since_enrollment_exits(anna, make_workflow, send_event, t0):
    steps = [
        {"kind": "wait", "wait_hours": 1},
        {
            "kind": "condition",
            "condition": {"not": {"event": "order_placed", "since": "enrollment"}},
            "if_true": "next",
            "if_false": "exit",
        },
        {"kind": "send_email"},
    ]
    workflow = make_workflow(steps)
    send_event("order_placed", anna.email, t0 - timedelta(days=3), total_price="10.00")
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("order_placed", anna.email, t0 + timedelta(minutes=30), total_price="20.00")

    tick(t0 + HOUR)

    enrollment = enrollment_of(anna, workflow)
    assert enrollment.state == Enrollment.State.EXITED
    assert enrollment.exit_reason == "condition"
    assert len(mail.outbox) == 0


def test_remove_tag_and_change_score(anna, make_workflow, send_event, t0):
    anna.tags.add(Tag.objects.create(name="prospect"))
    make_workflow(
        [
            {"kind": "remove_tag", "tag": "prospect"},
            {"kind": "change_score", "score_delta": 15},
            {"kind": "change_score", "score_delta": -5},
        ]
    )
    send_event("signed_up", anna.email, t0)

    tick(t0)

    anna.refresh_from_db()
    assert not anna.tags.filter(name="prospect").exists()
    assert anna.lead_score == 10


def test_exit_on_purchase_same_key_only(anna, make_workflow, send_event, t0):
    workflow = make_workflow(
        [{"kind": "wait", "wait_hours": 1}, {"kind": "send_email"}],
        trigger_event="checkout_started",
        keyed=True,
        entry_rule=Workflow.EntryRule.EVERY_TIME,
        exit_condition={"event": "order_placed", "since": "enrollment", "same_key": True},
    )
    send_event("checkout_started", anna.email, t0, token="cart-a", total_price="30.00")
    send_event("checkout_started", anna.email, t0, token="cart-b", total_price="40.00")
    tick(t0)
    send_event("order_placed", anna.email, t0 + timedelta(minutes=20), checkout_token="cart-a", total_price="30.00")

    tick(t0 + timedelta(minutes=21))
    tick(t0 + HOUR)

    cart_a = workflow.enrollments.get(key="cart-a")
    cart_b = workflow.enrollments.get(key="cart-b")
    assert cart_a.state == Enrollment.State.EXITED
    assert cart_b.state == Enrollment.State.COMPLETED
    assert Delivery.objects.filter(enrollment=cart_b).count() == 1
    assert not Delivery.objects.filter(enrollment=cart_a).exists()


def test_order_without_checkout_exits_every_cart(anna, make_workflow, send_event, t0):
    workflow = make_workflow(
        [{"kind": "wait", "wait_hours": 1}, {"kind": "send_email"}],
        trigger_event="checkout_started",
        keyed=True,
        entry_rule=Workflow.EntryRule.EVERY_TIME,
        exit_condition={"event": "order_placed", "since": "enrollment", "same_key": True},
    )
    send_event("checkout_started", anna.email, t0, token="cart-a")
    send_event("checkout_started", anna.email, t0, token="cart-b")
    tick(t0)
    send_event("order_placed", anna.email, t0 + timedelta(minutes=10), total_price="15.00")

    tick(t0 + timedelta(minutes=11))

    assert set(workflow.enrollments.values_list("state", flat=True)) == {Enrollment.State.EXITED}


def test_exit_during_wait_logged_at_wait(anna, make_workflow, send_event, t0):
    workflow = make_workflow(
        [{"kind": "send_email"}, {"kind": "wait", "wait_days": 2}, {"kind": "send_email"}],
        exit_condition={"event": "order_placed", "since": "enrollment"},
    )
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("order_placed", anna.email, t0 + timedelta(days=1), total_price="20.00")

    tick(t0 + timedelta(days=1))

    wait_step = workflow.steps.get(position=1)
    enrollment = workflow.enrollments.get()
    assert enrollment.logs.filter(outcome=StepLog.Outcome.EXITED).get().step == wait_step
    assert StepMetric.objects.filter(step=wait_step).aggregate(total=Sum("exited"))["total"] == 1
    assert not StepMetric.objects.filter(step__position=2, exited__gt=0).exists()


def test_goal_exit_during_wait_logged_at_wait(anna, make_workflow, send_event, t0):
    workflow = make_workflow(
        [{"kind": "send_email"}, {"kind": "wait", "wait_days": 2}, {"kind": "send_email"}], goal_event="order_placed"
    )
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("order_placed", anna.email, t0 + timedelta(days=1), total_price="20.00")

    tick(t0 + timedelta(days=1))

    logs = dict(workflow.enrollments.get().logs.values_list("outcome", "step__position"))
    assert logs[StepLog.Outcome.CONVERTED] == 0
    assert logs[StepLog.Outcome.EXITED] == 1


def test_exit_tag_on_step_check(anna, bram, make_workflow, send_event, t0):
    workflow = make_workflow(
        [{"kind": "wait", "wait_hours": 1}, {"kind": "add_tag", "tag": "reached-end"}],
        exit_condition={"field": "lead_score", "op": "gte", "value": 10},
        exit_tag="engaged",
    )
    send_event("signed_up", anna.email, t0)
    send_event("signed_up", bram.email, t0)
    tick(t0)
    # A score change stores no event, so only the check before the next step detects it.
    Contact.objects.filter(pk=anna.pk).update(lead_score=12)

    tick(t0 + HOUR)

    assert workflow.enrollments.get(contact=anna).exit_reason == "exit condition"
    assert set(anna.tags.values_list("name", flat=True)) == {"engaged"}
    assert set(bram.tags.values_list("name", flat=True)) == {"reached-end"}


def test_exit_tag_added_on_goal_exit(anna, make_workflow, send_event, t0):
    make_workflow([{"kind": "send_email"}, {"kind": "wait", "wait_days": 2}], goal_event="order_placed", exit_tag="customer")
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("order_placed", anna.email, t0 + HOUR, total_price="20.00")

    tick(t0 + HOUR)

    assert set(anna.tags.values_list("name", flat=True)) == {"customer"}


def test_goal_counts_conversion_and_revenue(anna, make_workflow, send_event, t0):
    workflow = make_workflow(
        [{"kind": "send_email"}, {"kind": "wait", "wait_days": 2}, {"kind": "send_email"}],
        goal_event="order_placed",
        goal_window_days=14,
    )
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("order_placed", anna.email, t0 + timedelta(days=1), total_price="59.95", currency="EUR")

    tick(t0 + timedelta(days=1))

    enrollment = enrollment_of(anna, workflow)
    assert enrollment.converted_at == t0 + timedelta(days=1)
    assert enrollment.revenue == Decimal("59.95")
    assert enrollment.state == Enrollment.State.EXITED
    assert enrollment.exit_reason == "goal reached"
    first_send = StepMetric.objects.get(step__key="step-1", day=(t0 + timedelta(days=1)).date())
    assert first_send.converted == 1
    assert first_send.revenue == Decimal("59.95")
    anna.refresh_from_db()
    assert anna.order_count == 1
    assert anna.total_spent == Decimal("59.95")


def test_one_active_enrollment_per_key_constraint(anna, make_workflow, t0):
    workflow = make_workflow([{"kind": "wait", "wait_days": 1}])
    Enrollment.objects.create(workflow=workflow, contact=anna, key="k", enrolled_at=t0)

    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.create(workflow=workflow, contact=anna, key="k", enrolled_at=t0)

    Enrollment.objects.filter(workflow=workflow).update(state=Enrollment.State.COMPLETED)
    Enrollment.objects.create(workflow=workflow, contact=anna, key="k", enrolled_at=t0)
    assert workflow.enrollments.count() == 2


def test_one_send_per_visit_constraint(anna, make_workflow, t0):
    workflow = make_workflow([{"kind": "send_email"}])
    step = workflow.steps.get()
    enrollment = Enrollment.objects.create(workflow=workflow, contact=anna, enrolled_at=t0, visit=1, step=step)
    fields = {"contact": anna, "template": step.template, "channel": "email", "enrollment": enrollment, "step": step, "visit": 1}
    Delivery.objects.create(**fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(**fields)

    Delivery.objects.create(**{**fields, "visit": 2})
    assert Delivery.objects.filter(enrollment=enrollment).count() == 2


def test_repeated_trigger_does_not_enroll_twice(anna, make_workflow, send_event, t0):
    workflow = make_workflow([{"kind": "wait", "wait_days": 1}], entry_rule=Workflow.EntryRule.ONCE)
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("signed_up", anna.email, t0 + HOUR)

    tick(t0 + HOUR)

    assert workflow.enrollments.count() == 1


def test_rerun_of_visit_sends_once(anna, make_workflow, send_event, t0):
    workflow = make_workflow([{"kind": "send_email"}])
    send_event("signed_up", anna.email, t0)
    tick(t0, dispatch=False)
    enrollment = enrollment_of(anna, workflow)

    # A worker that died after sending but before its commit would make the tick run the same
    # visit again: put the enrollment back as it was and run it twice more.
    Enrollment.objects.filter(pk=enrollment.pk).update(state="active", step=workflow.steps.get(), visit=1, next_run_at=t0)
    tick(t0)
    tick(t0)

    assert Delivery.objects.filter(enrollment=enrollment).count() == 1
    assert len(mail.outbox) == 1


def test_unsubscribe_leaves_every_workflow(anna, make_workflow, send_event, t0):
    first = make_workflow([{"kind": "send_email"}, {"kind": "wait", "wait_days": 1}, {"kind": "send_email"}], name="First")
    second = make_workflow([{"kind": "wait", "wait_days": 1}, {"kind": "send_email"}], name="Second")
    receipts = make_workflow([{"kind": "wait", "wait_days": 1}, {"kind": "send_email", "transactional": True}], name="Receipts")
    send_event("signed_up", anna.email, t0)
    tick(t0, dispatch=False)
    queued = Delivery.objects.get(enrollment__workflow=first)
    assert queued.status == Delivery.Status.QUEUED

    send_event("unsubscribed", anna.email, t0 + timedelta(minutes=5))
    tick(t0 + timedelta(minutes=5))

    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.UNSUBSCRIBED
    assert enrollment_of(anna, first).state == Enrollment.State.EXITED
    assert enrollment_of(anna, second).state == Enrollment.State.EXITED
    assert enrollment_of(anna, receipts).state == Enrollment.State.ACTIVE
    queued.refresh_from_db()
    assert queued.status == Delivery.Status.CANCELLED
    assert len(mail.outbox) == 0

    tick(t0 + timedelta(days=2))
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.startswith("Message 2")


def test_paused_workflow_holds_enrollments(anna, make_workflow, send_event, t0):
    workflow = make_workflow([{"kind": "wait", "wait_hours": 1}, {"kind": "send_email"}])
    send_event("signed_up", anna.email, t0)
    tick(t0)
    pause(workflow)

    tick(t0 + 2 * HOUR)

    enrollment = enrollment_of(anna, workflow)
    assert enrollment.state == Enrollment.State.ACTIVE
    assert len(mail.outbox) == 0


def test_loop_without_wait_stops_at_round_limit(anna, make_workflow, send_event, t0):
    steps = [
        {"kind": "change_score", "score_delta": 1, "key": "loop"},
        {
            "kind": "condition",
            "condition": {"field": "lead_score", "op": "gte", "value": 0},
            "if_true": "loop",
            "if_false": "exit",
        },
    ]
    workflow = make_workflow(steps)
    send_event("signed_up", anna.email, t0)

    tick(t0)

    enrollment = enrollment_of(anna, workflow)
    assert enrollment.state == Enrollment.State.ACTIVE
    assert enrollment.logs.filter(reason__startswith="round limit").count() == 1
    anna.refresh_from_db()
    assert 0 < anna.lead_score <= 50


def test_step_metrics_count_entered_and_sent(anna, bram, make_workflow, send_event, t0):
    make_workflow([{"kind": "send_email"}])
    send_event("signed_up", anna.email, t0)
    send_event("signed_up", bram.email, t0)

    tick(t0)

    metric = StepMetric.objects.get(step__key="step-1")
    assert metric.day == t0.date()
    assert metric.entered == 2
    assert metric.sent == 1
    assert metric.skipped == 1


def test_step_log_explains_each_step(anna, make_workflow, send_event, t0):
    workflow = make_workflow([{"kind": "send_email"}, {"kind": "wait", "wait_hours": 3}])
    send_event("signed_up", anna.email, t0)

    tick(t0)

    logged = outcomes(enrollment_of(anna, workflow))
    assert logged[0] == ("queued", "Test workflow message 1")
    assert logged[1][0] == StepLog.Outcome.WAITED
    assert logged[1][1] == f"until {(t0 + 3 * HOUR).isoformat()}"


def test_broken_workflow_does_not_stall_others(anna, bram, make_workflow, send_event, t0):
    bram.email_consent = ConsentStatus.SUBSCRIBED
    bram.save()
    healthy = make_workflow([{"kind": "send_email"}], name="Healthy")
    broken = make_workflow(
        [
            {"kind": "condition", "condition": {"segment": "Engaged"}, "if_true": "next", "if_false": "exit"},
            {"kind": "send_email"},
        ],
        name="Broken",
        trigger_event="checkout_started",
    )
    # The segment the condition names does not exist, so compiling it raises at run time.
    send_event("signed_up", anna.email, t0)
    send_event("checkout_started", bram.email, t0, token="t")

    tick(t0)

    assert enrollment_of(anna, healthy).state == Enrollment.State.COMPLETED
    assert len(mail.outbox) == 1
    stuck = enrollment_of(bram, broken)
    assert stuck.state == Enrollment.State.ACTIVE
    assert stuck.next_run_at == t0 + timedelta(minutes=15)
    assert outcomes(stuck) == [("failed", "ConditionError: segment 'Engaged' does not exist")]


def test_purchase_before_any_send_is_no_conversion(anna, make_workflow, send_event, t0):
    workflow = make_workflow(
        [{"kind": "wait", "wait_hours": 1}, {"kind": "send_email"}],
        trigger_event="checkout_started",
        keyed=True,
        goal_event="order_placed",
        goal_same_key=True,
        exit_condition={"event": "order_placed", "since": "enrollment", "same_key": True},
    )
    send_event("checkout_started", anna.email, t0, token="quick")
    tick(t0)
    send_event("order_placed", anna.email, t0 + timedelta(minutes=30), checkout_token="quick", total_price="25.00")

    tick(t0 + timedelta(minutes=30))

    enrollment = enrollment_of(anna, workflow)
    assert enrollment.state == Enrollment.State.EXITED
    assert enrollment.converted_at is None
    assert not StepMetric.objects.filter(converted__gt=0).exists()


def test_cancel_and_refund_lower_order_facts(anna, send_event, t0):
    send_event("order_placed", anna.email, t0, total_price="80.00", order_id="1")
    send_event("order_placed", anna.email, t0, total_price="20.00", order_id="2")
    tick(t0)
    send_event("order_cancelled", anna.email, t0 + HOUR, total_price="20.00", order_id="2")
    send_event("refund_created", anna.email, t0 + HOUR, amount="15.50", order_id="1")

    tick(t0 + HOUR)

    anna.refresh_from_db()
    assert anna.order_count == 1
    assert anna.total_spent == Decimal("64.50")


def test_activation_blocked_by_broken_message(make_workflow, english):
    workflow = make_workflow([{"kind": "send_email", "body": "Hello {{ first_name|nosuchfilter }}"}], live=False)

    problems = activate(workflow)

    assert len(problems) == 1
    assert problems[0].startswith("Message Test workflow message 1: ")
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.DRAFT
