"""Step kinds that act beyond a message: attributes, staff notices, hand-offs, goal hand-offs."""

from datetime import timedelta

import pytest
from django.core import mail

from workflows.engine.tick import tick
from workflows.models import Enrollment, Workflow

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def test_update_attribute_keeps_others(anna, make_workflow, send_event, t0):
    anna.attributes = {"plan": "pro"}
    anna.save()
    make_workflow([{"kind": "update_attribute", "attribute_name": "vip_tier", "attribute_value": "gold"}])
    send_event("signed_up", anna.email, t0)

    tick(t0)

    anna.refresh_from_db()
    assert anna.attributes == {"plan": "pro", "vip_tier": "gold"}


def test_notify_staff_after_commit(anna, make_workflow, send_event, t0, django_capture_on_commit_callbacks):
    make_workflow([{"kind": "notify_staff", "notify_email": "sales@example.com"}], name="Lead nurturing")
    send_event("signed_up", anna.email, t0)

    with django_capture_on_commit_callbacks(execute=True):
        tick(t0, dispatch=False)

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["sales@example.com"]
    assert mail.outbox[0].subject == "Lead nurturing: 1 contacts reached step step-1"
    assert "anna@example.com (Anna), score 0, orders 0" in mail.outbox[0].body


def test_move_to_workflow_hands_off(anna, make_workflow, send_event, t0):
    sales = make_workflow([{"kind": "wait", "wait_days": 1}], name="Sales sequence", trigger_event="demo_requested")
    make_workflow([{"kind": "move_to_workflow", "target_workflow": sales}], name="Nurture")
    send_event("signed_up", anna.email, t0)

    tick(t0)

    nurture = Enrollment.objects.get(workflow__name="Nurture")
    handed = Enrollment.objects.get(workflow=sales)
    assert nurture.state == Enrollment.State.EXITED
    assert nurture.exit_reason == "moved to Sales sequence"
    assert handed.state == Enrollment.State.ACTIVE
    assert handed.next_run_at == t0
    tick(t0)
    handed.refresh_from_db()
    assert handed.next_run_at == t0 + timedelta(days=1)


def test_move_to_paused_workflow_skips(anna, make_workflow, send_event, t0):
    paused = make_workflow([{"kind": "wait", "wait_days": 1}], name="Paused target", live=False)
    make_workflow([{"kind": "move_to_workflow", "target_workflow": paused}, {"kind": "add_tag", "tag": "stayed"}], name="Source")
    send_event("signed_up", anna.email, t0)

    tick(t0)

    assert not Enrollment.objects.filter(workflow=paused).exists()
    assert anna.tags.filter(name="stayed").exists()


def test_goal_hands_off_to_next_workflow(anna, make_workflow, send_event, t0):
    post_purchase = make_workflow([{"kind": "wait", "wait_days": 3}], name="Post-purchase", trigger_event="order_delivered")
    welcome = make_workflow(
        [{"kind": "send_email"}, {"kind": "wait", "wait_days": 2}, {"kind": "send_email"}],
        name="Welcome",
        goal_event="order_placed",
        goal_handoff=post_purchase,
    )
    send_event("signed_up", anna.email, t0)
    tick(t0)
    send_event("order_placed", anna.email, t0 + timedelta(hours=5), total_price="30.00")

    tick(t0 + timedelta(hours=5))

    assert Enrollment.objects.get(workflow=welcome).exit_reason == "goal reached"
    assert Enrollment.objects.get(workflow=post_purchase).state == Enrollment.State.ACTIVE


def test_handoff_steps_validated(db):
    from workflows.models import Step

    workflow = Workflow.objects.create(name="W", trigger_event="signed_up")
    step = Step(workflow=workflow, key="m", kind=Step.Kind.MOVE_TO_WORKFLOW, target_workflow=workflow)

    with pytest.raises(Exception, match="cannot hand contacts to itself"):
        step.full_clean()
