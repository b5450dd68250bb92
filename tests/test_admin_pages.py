"""The admin as staff use it: every page loads with data in Dutch and English, and the builder's
forms, actions and custom pages save, validate and report as documented."""

import json
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.messages import constants as message_levels
from django.test import Client
from django.urls import reverse
from django_q.models import Task
from django_q.tasks import async_task

from campaigns.models import Delivery, MessageTemplate, StepMetric
from contacts.models import ApiKey, ConsentRecord, ConsentStatus, Contact, Event, Segment, Shop, Tag
from workflows.library import install_template
from workflows.models import Enrollment, Step, StepLog, Workflow
from workflows.schedule import ensure_tick_schedule

DATA = Path(__file__).parent / "data" / "admin"
LANGUAGES = ["nl", "en"]
REGISTERED = sorted(model._meta.label for model in admin.site._registry)


def model_by_label(label: str):
    return next(model for model in admin.site._registry if model._meta.label == label)


def admin_url(obj, view: str = "change") -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])


class FormReader(HTMLParser):
    """Read the values a browser would submit from one form of a page.

    A django-jsonform editor keeps its data in the textarea's data attribute until its script
    runs; the reader submits that data, as the script would.
    """

    def __init__(self, form_id: str = "", action: str = "") -> None:
        super().__init__()
        self.form_id = form_id
        self.action = action
        self.inside = False
        self.values: dict[str, list[str]] = {}
        self.select: str | None = None
        self.multiple = False
        self.select_options: list[tuple[str, bool]] = []
        self.textarea: str | None = None
        self.textarea_text = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.inside = attributes.get("id") == self.form_id if self.form_id else attributes.get("action") == self.action
            return
        if not self.inside:
            return
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("submit", "button", "file"):
            if attributes.get("type") in ("checkbox", "radio") and "checked" not in attributes:
                return
            self.values.setdefault(name, []).append(
                attributes.get("value") or ("on" if attributes.get("type") == "checkbox" else "")
            )
        elif tag == "select" and name:
            self.select, self.select_options, self.multiple = name, [], "multiple" in attributes
        elif tag == "option" and self.select:
            self.select_options.append((attributes.get("value", ""), "selected" in attributes))
        elif tag == "textarea" and name:
            config = attributes.get("data-django-jsonform")
            self.textarea = name
            self.textarea_text = json.loads(config)["data"] if config else ""

    def handle_data(self, data: str) -> None:
        if self.textarea and not self.textarea_text.startswith("{"):
            self.textarea_text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self.select:
            chosen = [value for value, selected in self.select_options if selected]
            if not chosen and not self.multiple and self.select_options:
                chosen = [self.select_options[0][0]]
            self.values.setdefault(self.select, []).extend(chosen if self.multiple else chosen[:1])
            self.select = None
        elif tag == "textarea" and self.textarea:
            self.values.setdefault(self.textarea, []).append(self.textarea_text.removeprefix("\n"))
            self.textarea = None


def form_values(html: str, form_id: str = "", action: str = "") -> dict[str, list[str]]:
    reader = FormReader(form_id, action)
    reader.feed(html)
    return {name: values for name, values in reader.values.items() if "__prefix__" not in name}


def messages_of(response) -> list[tuple[int, str]]:
    return [(message.level, str(message)) for message in response.context["messages"]]


@pytest.fixture
def staff_client(client: Client, staff_user) -> Client:
    client.force_login(staff_user)
    return client


@pytest.fixture
def shop(db, anna, bram, chris, t0) -> dict:
    """An installed cart workflow with a condition step, contacts with a history, and engine rows."""
    cart = install_template("abandoned_cart", language="en")
    steps = list(cart.steps.order_by("position"))
    first_step, email_step = steps[0], steps[1]
    condition_step = Step.objects.create(
        workflow=cart,
        position=len(steps),
        key="vip-check",
        kind=Step.Kind.CONDITION,
        name="VIP?",
        condition={"tag": "vip"},
        if_true="next",
        if_false="exit",
    )

    vip = Tag.objects.create(name="vip")
    anna.tags.add(vip)
    anna.phone = "+31612345678"
    anna.save()
    segment = Segment.objects.create(name="Big spenders", condition={"field": "total_spent", "op": "gte", "value": 100})

    checkout = Event.objects.create(
        source=Event.Source.API,
        source_id="checkout-1",
        type="checkout_started",
        contact=anna,
        occurred_at=t0,
        key="tok-1",
        value=Decimal("80.00"),
        currency="EUR",
        properties={"checkout_token": "tok-1"},
    )
    active = Enrollment.objects.create(
        workflow=cart,
        contact=anna,
        key="tok-1",
        state=Enrollment.State.ACTIVE,
        step=first_step,
        enrolled_at=t0 + timedelta(minutes=1),
        next_run_at=t0 + timedelta(hours=1),
        trigger_event=checkout,
    )
    exited = Enrollment.objects.create(
        workflow=cart,
        contact=bram,
        key="tok-2",
        state=Enrollment.State.EXITED,
        step=first_step,
        enrolled_at=t0 + timedelta(minutes=2),
        finished_at=t0 + timedelta(minutes=3),
        exit_reason="exit condition",
    )
    step_log = StepLog.objects.create(
        enrollment=active, step=first_step, outcome=StepLog.Outcome.WAITED, at=t0 + timedelta(minutes=1)
    )
    delivery = Delivery.objects.create(
        contact=anna,
        template=email_step.template,
        channel="email",
        enrollment=active,
        step=email_step,
        status=Delivery.Status.FAILED,
        to_address=anna.email,
        subject="Anna, you left something in your cart",
        error="SMTP 550 mailbox unavailable",
        created_at=t0 + timedelta(hours=2),
    )
    metric = StepMetric.objects.create(
        step=email_step, day=t0.date(), entered=10, sent=10, opened=5, clicked=2, converted=1, revenue=Decimal("80.00")
    )
    consent = ConsentRecord.objects.create(
        contact=anna, channel="email", status=ConsentStatus.SUBSCRIBED, source="import", occurred_at=t0
    )
    api_key, _raw_key = ApiKey.generate("Storefront pixel", scope=ApiKey.Scope.PIXEL)
    connected_shop = Shop.objects.create(domain="demo-shop.myshopify.com", name="Demo Shop", webhook_secret="test-secret")

    # Rows for the other apps' admin pages, so their change pages load with data too.
    group = Group.objects.create(name="Marketing")
    ensure_tick_schedule()
    Task.objects.create(
        id=uuid.uuid4().hex, name="tick-ok", func="workflows.tasks.run_tick", started=t0, stopped=t0, success=True
    )
    Task.objects.create(
        id=uuid.uuid4().hex,
        name="tick-failed",
        func="workflows.tasks.run_tick",
        started=t0,
        stopped=t0,
        success=False,
        result="boom",
    )
    async_task("workflows.tasks.run_tick")

    return {
        "cart": cart,
        "first_step": first_step,
        "email_step": email_step,
        "condition_step": condition_step,
        "tag": vip,
        "segment": segment,
        "event": checkout,
        "active": active,
        "exited": exited,
        "step_log": step_log,
        "delivery": delivery,
        "metric": metric,
        "consent": consent,
        "api_key": api_key,
        "shop": connected_shop,
        "group": group,
    }


# Every registered model: its list and the change page of one of its rows.


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("label", REGISTERED)
def test_changelist_loads_with_data(staff_client, shop, label, language):
    model = model_by_label(label)
    opts = model._meta

    response = staff_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"), HTTP_ACCEPT_LANGUAGE=language)

    assert response.status_code == 200
    assert f'<html lang="{language}"' in response.text
    assert model._default_manager.exists()


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("label", REGISTERED)
def test_change_page_loads_with_data(staff_client, shop, label, language):
    model = model_by_label(label)
    obj = model._default_manager.order_by("pk").first()

    response = staff_client.get(admin_url(obj), HTTP_ACCEPT_LANGUAGE=language)

    assert response.status_code == 200
    assert f'<html lang="{language}"' in response.text


def test_dutch_page_uses_dutch_catalogue(staff_client, shop):
    response = staff_client.get(admin_url(shop["cart"]), HTTP_ACCEPT_LANGUAGE="nl")

    assert "Opslaan" in response.text
    assert "Stroomdiagram" in response.text
    assert "Resultaten per stap" in response.text
    assert "Flowchart" not in response.text


def test_english_page_uses_english_strings(staff_client, shop):
    response = staff_client.get(admin_url(shop["cart"]), HTTP_ACCEPT_LANGUAGE="en")

    assert "Save and continue editing" in response.text
    assert "Flowchart" in response.text
    assert "Opslaan" not in response.text


# The workflow page: flowchart, metrics, goal, chart data, history.


def test_workflow_page_shows_flowchart_source(staff_client, shop):
    response = staff_client.get(admin_url(shop["cart"]), HTTP_ACCEPT_LANGUAGE="en")
    source = response.context["flowchart_source"]

    assert source.startswith("flowchart TD")
    assert "Trigger: checkout_started" in source
    assert 's8{"9. VIP?' in source
    assert 's8 -- "no" --> exit' in source
    assert 'id="mktauto-flowchart-source"' in response.text


def test_workflow_page_sums_step_metrics(staff_client, shop, t0):
    StepMetric.objects.create(
        step=shop["email_step"], day=t0.date() + timedelta(days=1), entered=10, sent=10, opened=1, clicked=0
    )

    response = staff_client.get(admin_url(shop["cart"]), HTTP_ACCEPT_LANGUAGE="en")
    email_row = next(row for row in response.context["step_rows"] if row.step == shop["email_step"])

    assert email_row.sent == 20
    assert email_row.opened == 6
    assert email_row.open_rate == Decimal("30.0")
    assert email_row.click_rate == Decimal("10.0")
    assert email_row.conversion_rate == Decimal("5.0")
    assert email_row.revenue == Decimal("80.00")


def test_workflow_page_money_in_dutch_and_enrolled_total(staff_client, shop):
    StepMetric.objects.filter(step=shop["email_step"]).update(revenue=Decimal("1234.5"))

    response = staff_client.get(admin_url(shop["cart"]))
    html = response.content.decode()
    total = html.split("<tfoot>")[1].split("</tfoot>")[0]

    assert "<td>1.234,50</td>" in html
    enrolled = shop["cart"].enrollments.count()
    assert f'title="Contacten die in deze workflow zijn ingeschreven">{enrolled}</th>' in total


def test_workflow_page_compares_goal_with_target(staff_client, shop, t0):
    shop["active"].converted_at = t0 + timedelta(hours=5)
    shop["active"].save()

    response = staff_client.get(admin_url(shop["cart"]), HTTP_ACCEPT_LANGUAGE="en")
    goal = response.context["goal"]

    assert goal.enrolled == 2
    assert goal.converted == 1
    assert goal.rate == Decimal("50.0")
    assert goal.target_percent == Decimal("10.00")
    assert goal.target_met is True
    assert "The workflow reaches its target." in response.text


def test_workflow_page_daily_series_counts_days(staff_client, shop, time_machine, t0):
    time_machine.move_to(t0 + timedelta(days=2))

    response = staff_client.get(admin_url(shop["cart"]), HTTP_ACCEPT_LANGUAGE="en")
    series = response.context["daily_series"]
    day = series["labels"].index(t0.date().isoformat())

    assert len(series["labels"]) == 30
    assert series["sent"][day] == 10
    assert series["opened"][day] == 5
    assert series["enrolled"][day] == 2
    assert 'id="mktauto-daily-series"' in response.text


def test_workflow_history_names_staff_user(staff_client, shop):
    url = admin_url(shop["cart"])
    data = form_values(staff_client.get(url).text, "workflow_form")
    data["name"] = ["Cart recovery (staff copy)"]

    response = staff_client.post(url, data)
    record = Workflow.history.filter(id=shop["cart"].pk).first()
    page = staff_client.get(url, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 302
    assert record.history_user.username == "marieke"
    assert "marieke" in page.text


# Builder forms: steps, kinds, order, conditions.


def test_step_reorder_saves_new_positions(staff_client, shop):
    url = admin_url(shop["cart"])
    data = form_values(staff_client.get(url).text, "workflow_form")
    data["steps-0-position"], data["steps-1-position"] = data["steps-1-position"], data["steps-0-position"]

    response = staff_client.post(url, data)
    keys = list(shop["cart"].steps.order_by("position").values_list("key", flat=True))

    assert response.status_code == 302
    assert keys[:2] == ["reminder", "abandoned-after-1h"]


def test_step_added_through_inline(staff_client, shop):
    url = admin_url(shop["cart"])
    data = form_values(staff_client.get(url).text, "workflow_form")
    total = int(data["steps-TOTAL_FORMS"][0])
    data["steps-TOTAL_FORMS"] = [str(total + 1)]
    new = {
        "key": "tag-buyer",
        "kind": "add_tag",
        "name": "Mark as cart abandoner",
        "tag": "cart-abandoner",
        "position": str(total + 1),
        "wait_mode": "duration",
        "wait_days": "0",
        "wait_hours": "0",
        "wait_minutes": "0",
        "score_delta": "0",
        "condition": json.dumps({"all": []}),
        "if_true": "next",
        "if_false": "exit",
        "workflow": str(shop["cart"].pk),
    }
    data.update({f"steps-{total}-{name}": [value] for name, value in new.items()})

    response = staff_client.post(url, data)
    step = shop["cart"].steps.get(key="tag-buyer")

    assert response.status_code == 302
    assert step.kind == Step.Kind.ADD_TAG
    assert step.tag == "cart-abandoner"
    assert step.position == total + 1


def test_wait_step_without_duration_rejected(staff_client, shop):
    url = admin_url(shop["cart"])
    data = form_values(staff_client.get(url).text, "workflow_form")
    data["steps-0-wait_hours"] = ["0"]

    response = staff_client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "A wait needs a duration: set days, hours or minutes." in response.text
    assert shop["first_step"].__class__.objects.get(pk=shop["first_step"].pk).wait_hours == 1


def test_step_kind_change_clears_unused_fields(staff_client, shop):
    url = admin_url(shop["cart"])
    data = form_values(staff_client.get(url).text, "workflow_form")
    data["steps-0-kind"] = ["add_tag"]
    data["steps-0-tag"] = ["waited"]

    response = staff_client.post(url, data)
    step = Step.objects.get(pk=shop["first_step"].pk)

    assert response.status_code == 302
    assert step.kind == Step.Kind.ADD_TAG
    assert step.wait_hours == 0
    assert step.tag == "waited"


def test_branch_to_unknown_step_rejected(staff_client, shop):
    url = admin_url(shop["cart"])
    data = form_values(staff_client.get(url).text, "workflow_form")
    data["steps-8-if_false"] = ["no-such-step"]

    response = staff_client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "“no-such-step” is not a step key in this workflow." in response.text
    assert Step.objects.get(pk=shop["condition_step"].pk).if_false == "exit"


def test_condition_editor_stores_condition_language(staff_client, shop):
    url = admin_url(shop["cart"])
    data = form_values(staff_client.get(url).text, "workflow_form")
    editor_tree = {
        "any": [
            {"event": "order_placed", "since": "enrollment", "within_days": None, "same_key": True, "where": []},
            {"field": "lead_score", "op": "gte", "value": "50"},
            {"field": "language", "op": "in", "value": "nl, en"},
        ]
    }
    data["exit_condition"] = [json.dumps(editor_tree)]

    response = staff_client.post(url, data)
    workflow = Workflow.objects.get(pk=shop["cart"].pk)

    assert response.status_code == 302
    assert workflow.exit_condition == {
        "any": [
            {"event": "order_placed", "since": "enrollment", "same_key": True},
            {"field": "lead_score", "op": "gte", "value": 50},
            {"field": "language", "op": "in", "value": ["nl", "en"]},
        ]
    }


def test_condition_editor_shows_tree_as_form(staff_client, shop):
    response = staff_client.get(admin_url(shop["cart"]), HTTP_ACCEPT_LANGUAGE="en")
    data = form_values(response.text, "workflow_form")

    assert json.loads(data["steps-8-condition"][0]) == {"tag": "vip"}
    assert json.loads(data["trigger_filter"][0]) == {"all": []}
    assert json.loads(data["exit_condition"][0])["any"][0] == {
        "event": "order_placed",
        "since": "enrollment",
        "within_days": None,
        "same_key": True,
        "where": [],
    }


def test_condition_editor_keeps_event_type_outside_catalogue(staff_client, shop):
    Workflow.objects.filter(pk=shop["cart"].pk).update(exit_condition={"event": "loyalty_card_scanned", "since": "enrollment"})

    response = staff_client.get(admin_url(shop["cart"]), HTTP_ACCEPT_LANGUAGE="en")

    # Each form renders a copy of the widget; the copy's schema must list the event the tree names.
    assert '"title": "loyalty_card_scanned", "value": "loyalty_card_scanned"' in response.text.replace("&quot;", '"')


def test_invalid_condition_error_beside_field(staff_client, shop):
    url = admin_url(shop["cart"])
    data = form_values(staff_client.get(url).text, "workflow_form")
    data["trigger_filter"] = [json.dumps({"field": "shoe_size", "op": "eq", "value": "42"})]

    response = staff_client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")
    row = re.search(r'<div class="form-row errors field-trigger_filter">.*?</ul>', response.text, re.S)

    assert response.status_code == 200
    assert row is not None
    assert "unknown contact field &#x27;shoe_size&#x27;" in row.group(0)
    assert Workflow.objects.get(pk=shop["cart"].pk).trigger_filter == {}


def test_condition_without_editor_keeps_tree(staff_client, shop):
    url = admin_url(shop["cart"])
    data = form_values(staff_client.get(url).text, "workflow_form")
    data["exit_condition"] = [""]

    response = staff_client.post(url, data)

    assert response.status_code == 302
    assert Workflow.objects.get(pk=shop["cart"].pk).exit_condition == shop["cart"].exit_condition


# Actions: activate, pause, remove from workflow.


def test_activate_action_sets_live(staff_client, shop):
    changelist = reverse("admin:workflows_workflow_changelist")

    response = staff_client.post(
        changelist, {"action": "activate", "_selected_action": [shop["cart"].pk]}, follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )

    assert Workflow.objects.get(pk=shop["cart"].pk).status == Workflow.Status.LIVE
    assert messages_of(response) == [(message_levels.SUCCESS, "“Abandoned cart recovery” is live now.")]


def test_activate_action_reports_problems(staff_client, shop):
    empty = Workflow.objects.create(name="Empty", trigger_event="signed_up")
    changelist = reverse("admin:workflows_workflow_changelist")

    response = staff_client.post(
        changelist, {"action": "activate", "_selected_action": [empty.pk]}, follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )
    [(level, text)] = messages_of(response)

    assert Workflow.objects.get(pk=empty.pk).status == Workflow.Status.DRAFT
    assert level == message_levels.ERROR
    assert "The workflow has no steps." in text


def test_pause_action_pauses_live_workflow(staff_client, shop):
    Workflow.objects.filter(pk=shop["cart"].pk).update(status=Workflow.Status.LIVE)
    changelist = reverse("admin:workflows_workflow_changelist")

    response = staff_client.post(changelist, {"action": "pause", "_selected_action": [shop["cart"].pk]}, follow=True)
    [(level, _text)] = messages_of(response)

    assert Workflow.objects.get(pk=shop["cart"].pk).status == Workflow.Status.PAUSED
    assert level == message_levels.SUCCESS


def test_pause_action_warns_for_draft(staff_client, shop):
    changelist = reverse("admin:workflows_workflow_changelist")

    response = staff_client.post(changelist, {"action": "pause", "_selected_action": [shop["cart"].pk]}, follow=True)
    [(level, _text)] = messages_of(response)

    assert Workflow.objects.get(pk=shop["cart"].pk).status == Workflow.Status.DRAFT
    assert level == message_levels.WARNING


def test_activate_button_on_workflow_page(staff_client, shop):
    response = staff_client.post(reverse("admin:workflows_workflow_activate", args=[shop["cart"].pk]), follow=True)

    assert response.redirect_chain[-1][0] == admin_url(shop["cart"])
    assert Workflow.objects.get(pk=shop["cart"].pk).status == Workflow.Status.LIVE


def test_activate_button_rejects_get(staff_client, shop):
    response = staff_client.get(reverse("admin:workflows_workflow_activate", args=[shop["cart"].pk]))

    assert response.status_code == 405
    assert Workflow.objects.get(pk=shop["cart"].pk).status == Workflow.Status.DRAFT


def test_remove_action_exits_active_enrollment(staff_client, shop):
    changelist = reverse("admin:workflows_enrollment_changelist")
    selected = [shop["active"].pk, shop["exited"].pk]

    response = staff_client.post(
        changelist, {"action": "remove_from_workflow", "_selected_action": selected}, follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )
    active = Enrollment.objects.get(pk=shop["active"].pk)
    exited = Enrollment.objects.get(pk=shop["exited"].pk)

    assert active.state == Enrollment.State.EXITED
    assert active.exit_reason == "removed by staff"
    assert exited.exit_reason == "exit condition"
    assert StepLog.objects.filter(enrollment=active, outcome=StepLog.Outcome.EXITED, reason="removed by staff").count() == 1
    assert StepLog.objects.filter(enrollment=exited, outcome=StepLog.Outcome.EXITED).count() == 0
    assert messages_of(response) == [
        (message_levels.SUCCESS, "1 contact was removed from the workflow."),
        (message_levels.WARNING, "1 enrollment was not active any more and was left as it was."),
    ]


def test_enrollment_page_is_read_only(staff_client, shop):
    response = staff_client.get(admin_url(shop["active"]), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert 'name="_save"' not in response.text


def test_enrollment_list_filters_by_state(staff_client, shop):
    response = staff_client.get(reverse("admin:workflows_enrollment_changelist"), {"state__exact": "exited"})

    assert list(response.context["cl"].queryset) == [shop["exited"]]


# The template library.


def test_library_lists_templates(staff_client, db):
    response = staff_client.get(reverse("admin:workflows_workflow_library"), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "Welcome series" in response.text
    assert "Recover 10% of abandoned checkouts within 72 hours." in response.text
    assert reverse("admin:workflows_workflow_library") in staff_client.get(reverse("admin:workflows_workflow_changelist")).text


def test_library_install_redirects_to_draft(staff_client, db):
    response = staff_client.post(reverse("admin:workflows_workflow_library"), {"template": "welcome_series", "language": "en"})
    workflow = Workflow.objects.get(template_slug="welcome_series")

    assert response.status_code == 302
    assert response["Location"] == admin_url(workflow)
    assert workflow.status == Workflow.Status.DRAFT
    assert workflow.name == "Welcome series"
    assert workflow.steps.count() == 10


def test_library_install_in_dutch(staff_client, db):
    staff_client.post(reverse("admin:workflows_workflow_library"), {"template": "abandoned_cart", "language": "nl"})
    workflow = Workflow.objects.get(template_slug="abandoned_cart")

    assert workflow.name == "Verlaten winkelwagens terugwinnen"


def test_library_rejects_unknown_template(staff_client, db):
    response = staff_client.post(reverse("admin:workflows_workflow_library"), {"template": "no-such", "language": "en"})

    assert response.status_code == 400
    assert Workflow.objects.count() == 0


# Contacts: search, filters, consent, timeline, import and export, API keys.


def test_contact_search_by_phone(staff_client, shop, anna):
    response = staff_client.get(reverse("admin:contacts_contact_changelist"), {"q": "+31612345678"})

    assert list(response.context["cl"].queryset) == [anna]


def test_contact_filter_has_orders(staff_client, shop, anna, bram):
    Contact.objects.filter(pk=bram.pk).update(order_count=2)

    response = staff_client.get(reverse("admin:contacts_contact_changelist"), {"has_orders": "yes"})

    assert list(response.context["cl"].queryset) == [bram]


def test_contact_filter_by_tag(staff_client, shop, anna):
    response = staff_client.get(reverse("admin:contacts_contact_changelist"), {"tags__id__exact": shop["tag"].pk})

    assert list(response.context["cl"].queryset) == [anna]


def test_contact_timeline_newest_first(staff_client, shop, anna):
    response = staff_client.get(admin_url(anna), HTTP_ACCEPT_LANGUAGE="en")
    kinds = [entry.kind for entry in response.context["timeline"]]
    times = [entry.at for entry in response.context["timeline"]]

    assert kinds[0] == "delivery"
    assert kinds[-1] == "event"
    assert set(kinds) == {"delivery", "step", "enrollment", "event"}
    assert times == sorted(times, reverse=True)
    assert "SMTP 550 mailbox unavailable" in response.text


def test_contact_timeline_money_in_dutch(staff_client, bram, send_event, t0):
    send_event("order_placed", bram.email, t0, total_price="1234.50", currency="EUR")

    response = staff_client.get(admin_url(bram))
    [entry] = [entry for entry in response.context["timeline"] if entry.kind == "event"]

    assert "1.234,50 EUR" in entry.detail


def test_contact_timeline_shows_exit_reason(staff_client, shop, bram):
    response = staff_client.get(admin_url(bram), HTTP_ACCEPT_LANGUAGE="en")
    [entry] = response.context["timeline"]

    assert entry.kind == "enrollment"
    assert entry.detail == "Exited · exit reason: exit condition"


def test_contact_consent_change_is_recorded(staff_client, shop, anna):
    url = admin_url(anna)
    data = form_values(staff_client.get(url).text, "contact_form")
    data["email_consent"] = [ConsentStatus.UNSUBSCRIBED]

    response = staff_client.post(url, data)
    record = ConsentRecord.objects.filter(contact=anna).order_by("-id").first()

    assert response.status_code == 302
    assert Contact.objects.get(pk=anna.pk).email_consent == ConsentStatus.UNSUBSCRIBED
    assert record.source == "admin"
    assert record.status == ConsentStatus.UNSUBSCRIBED
    assert Enrollment.objects.get(pk=shop["active"].pk).state == Enrollment.State.EXITED


def test_contact_tags_edited(staff_client, shop, bram):
    url = admin_url(bram)
    data = form_values(staff_client.get(url).text, "contact_form")
    data["tags"] = [str(shop["tag"].pk)]

    response = staff_client.post(url, data)

    assert response.status_code == 302
    assert list(bram.tags.values_list("name", flat=True)) == ["vip"]


def test_contact_import_creates_contacts(staff_client, db):
    import_url = reverse("admin:contacts_contact_import")
    with open(DATA / "contacts.csv", "rb") as upload:
        preview = staff_client.post(
            import_url, {"resource": "0", "format": "0", "import_file": upload}, HTTP_ACCEPT_LANGUAGE="en"
        )
    process_url = reverse("admin:contacts_contact_process_import")
    confirm = form_values(preview.text, action=process_url)

    response = staff_client.post(process_url, confirm)

    assert preview.status_code == 200
    assert confirm["original_file_name"] == ["contacts.csv"]
    assert response.status_code == 302
    assert sorted(Contact.objects.values_list("email", flat=True)) == ["lotte@example.com", "sem@example.com"]
    assert Contact.objects.get(email="lotte@example.com").email_consent == ConsentStatus.SUBSCRIBED


def test_contact_export_page_loads(staff_client, shop):
    response = staff_client.get(reverse("admin:contacts_contact_export"), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "csv" in response.text.lower()


def test_api_key_shown_once_on_create(staff_client, db):
    response = staff_client.post(
        reverse("admin:contacts_apikey_add"), {"name": "Checkout pixel", "scope": "pixel"}, follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )
    [(level, text)] = [(level, text) for level, text in messages_of(response) if "Copy it now" in text]
    raw_key = re.search(r"mk_[A-Za-z0-9_-]+", text).group(0)
    api_key = ApiKey.objects.get(name="Checkout pixel")
    page = staff_client.get(admin_url(api_key))

    assert level == message_levels.WARNING
    assert api_key.key_hash == ApiKey.hash_key(raw_key)
    assert api_key.prefix == raw_key[:10]
    assert api_key.scope == ApiKey.Scope.PIXEL
    assert raw_key not in page.text


def test_api_key_list_shows_prefix(staff_client, shop):
    response = staff_client.get(reverse("admin:contacts_apikey_changelist"), HTTP_ACCEPT_LANGUAGE="en")

    assert shop["api_key"].prefix in response.text
    assert "Last used" in response.text


def test_segment_condition_saved_from_editor(staff_client, shop):
    url = admin_url(shop["segment"])
    data = form_values(staff_client.get(url).text, "segment_form")
    data["condition"] = [json.dumps({"all": [{"tag": "vip"}, {"field": "order_count", "op": "gt", "value": "0"}]})]

    response = staff_client.post(url, data)

    assert response.status_code == 302
    assert Segment.objects.get(pk=shop["segment"].pk).condition == {
        "all": [{"tag": "vip"}, {"field": "order_count", "op": "gt", "value": 0}]
    }


def test_segment_rejects_event_property(staff_client, shop):
    url = admin_url(shop["segment"])
    data = form_values(staff_client.get(url).text, "segment_form")
    data["condition"] = [json.dumps({"property": "total_price", "op": "gte", "value": "50"})]

    response = staff_client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "event properties can only be tested in a trigger filter" in response.text


# Campaigns: message preview, merge-tag check, deliveries.


def test_message_preview_for_chosen_contact(staff_client, shop, anna):
    template = shop["email_step"].template

    response = staff_client.get(admin_url(template), {"preview_contact": anna.pk}, HTTP_ACCEPT_LANGUAGE="en")

    assert response.context["preview"].subject == "Anna, you left something in your cart"
    assert "Hi Anna," in response.context["preview"].text
    assert f"preview/?preview_contact={anna.pk}" in response.text


def test_message_preview_html_frameable(staff_client, shop, anna):
    template = shop["email_step"].template

    response = staff_client.get(
        reverse("admin:campaigns_messagetemplate_preview", args=[template.pk]), {"preview_contact": anna.pk}
    )

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert "Hi Anna," in response.text


def test_message_preview_html_shows_workflow_discount_code(staff_client, db, anna):
    workflow = install_template("abandoned_cart", language="en", discount_code="WINKEL25")
    template = workflow.steps.get(key="incentive").template

    response = staff_client.get(
        reverse("admin:campaigns_messagetemplate_preview", args=[template.pk]), {"preview_contact": anna.pk}
    )

    assert "<strong>WINKEL25</strong>" in response.text


def test_message_preview_sample_contact(staff_client, shop):
    template = shop["email_step"].template

    response = staff_client.get(admin_url(template), HTTP_ACCEPT_LANGUAGE="en")

    assert response.context["preview"].subject == "Sam, you left something in your cart"


def test_message_sender_help_shows_address(staff_client, shop):
    response = staff_client.get(admin_url(shop["email_step"].template), HTTP_ACCEPT_LANGUAGE="en")

    assert "E.g. Shop &lt;shop@example.com&gt;." in response.text


def test_message_merge_tag_error_rejected(staff_client, db):
    data = {"name": "Broken", "channel": "email", "subject": "Hello", "body": "Hi {% if %}", "cta_text": "", "cta_url": ""}

    response = staff_client.post(reverse("admin:campaigns_messagetemplate_add"), data, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "This text has a merge tag error" in response.text
    assert MessageTemplate.objects.filter(name="Broken").count() == 0


def test_delivery_filter_shows_error(staff_client, shop):
    response = staff_client.get(
        reverse("admin:campaigns_delivery_changelist"), {"status__exact": "failed"}, HTTP_ACCEPT_LANGUAGE="en"
    )

    assert list(response.context["cl"].queryset) == [shop["delivery"]]
    assert "SMTP 550 mailbox unavailable" in response.text


def test_message_send_test_goes_to_staff(staff_client, shop, staff_user):
    from django.core import mail

    template = shop["email_step"].template
    url = reverse("admin:campaigns_messagetemplate_send_test", args=[template.pk])

    response = staff_client.post(url, {"to": "marieke@example.com"}, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["marieke@example.com"]
    assert mail.outbox[0].subject.startswith("[TEST]")
    page = staff_client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").text
    assert "A test of this message was sent to marieke@example.com." in page
    assert "Send test" in page


def test_message_send_test_rejects_bad_address(staff_client, shop):
    from django.core import mail

    template = shop["email_step"].template
    url = reverse("admin:campaigns_messagetemplate_send_test", args=[template.pk])

    response = staff_client.post(url, {"to": "not-an-address"}, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert len(mail.outbox) == 0
    assert "The test was not sent:" in response.text
