"""Metric targets: validation, evaluation against real step metrics and enrollments, the template
library's targets, and the workflow page's editor and Targets table."""

import json
import re
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from campaigns.models import Delivery, StepMetric
from campaigns.tracking import record_open
from contacts.models import ConsentStatus, Contact
from tests.test_admin_pages import form_values
from workflows.engine.tick import tick
from workflows.library import TEMPLATES, install_template
from workflows.models import Enrollment, Step, Workflow
from workflows.targets import (
    ABOVE,
    BELOW,
    METRICS,
    WITHIN,
    TargetError,
    evaluate,
    find_problems,
    range_text,
    target,
    validate,
)

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
LANGUAGES = ["nl", "en"]


def steps_of(*pairs: tuple[str, str]) -> list[Step]:
    return [Step(key=key, kind=kind, name=f"{kind} {key}") for key, kind in pairs]


STEPS = steps_of(
    ("welcome", Step.Kind.SEND_EMAIL),
    ("wait-2", Step.Kind.WAIT),
    ("sms-reminder", Step.Kind.SEND_SMS),
)


def admin_url(workflow: Workflow) -> str:
    return reverse("admin:workflows_workflow_change", args=[workflow.pk])


@pytest.fixture
def staff_client(client: Client, staff_user) -> Client:
    client.force_login(staff_user)
    return client


# Validation.


def test_valid_targets_pass():
    targets = [
        target("goal_rate", min=5, max=10),
        target("open_rate", "welcome", min=50),
        target("open_rate", min=30, max=45),
        target("click_rate", "sms-reminder", min=10, max=20),
        target("unsubscribe_rate", "sms-reminder", max=2),
        target("bounce_rate", max=0.5),
        target("conversion_rate", "welcome", min=1),
    ]

    assert find_problems(targets, STEPS) == []
    validate(targets, STEPS)


@pytest.mark.usefixtures("english")
@pytest.mark.parametrize(
    ("targets", "index", "key", "message"),
    [
        (
            [target("open_rat", "welcome", min=50)],
            0,
            "metric",
            "Target 1: “open_rat” is not a metric. Use one of: goal_rate, open_rate, click_rate, unsubscribe_rate, "
            "bounce_rate, conversion_rate.",
        ),
        (
            [target("goal_rate", min=5), target("open_rate", "welcom", min=50)],
            1,
            "step",
            "Target 2: this workflow has no step “welcom”. Use one of: welcome, wait-2, sms-reminder, or leave the step "
            "empty for the whole workflow.",
        ),
        (
            [target("click_rate", min=15, max=5)],
            0,
            "min",
            "Target 1: the minimum 15 is above the maximum 5. Swap them.",
        ),
        (
            [target("click_rate", "welcome")],
            0,
            "",
            "Target 1 for the click rate of step “welcome” has neither a minimum nor a maximum. Set one or both.",
        ),
        (
            [target("goal_rate", "welcome", min=5)],
            0,
            "step",
            "Target 1: the goal rate counts for the whole workflow, so it cannot name step “welcome”. Leave the step empty.",
        ),
        (
            [target("conversion_rate", min=5)],
            0,
            "step",
            "Target 1: the conversion rate counts per step. Choose a step, or use the goal rate for the whole workflow.",
        ),
        (
            [target("open_rate", "wait-2", min=50)],
            0,
            "step",
            "Target 1: step “wait-2” is a “Wait” step, which has no open rate. Choose one of these steps: welcome, or "
            "leave the step empty for the whole workflow.",
        ),
        (
            [target("open_rate", "sms-reminder", min=50)],
            0,
            "step",
            "Target 1: step “sms-reminder” is a “Send SMS” step, which has no open rate. Choose one of these steps: "
            "welcome, or leave the step empty for the whole workflow.",
        ),
        (
            [target("click_rate", min=150)],
            0,
            "min",
            "Target 1: the minimum 150 is not a percentage from 0 to 100. Enter a number in that range, or leave it empty.",
        ),
        (
            [target("click_rate", max="ten")],
            0,
            "max",
            "Target 1: the maximum “ten” is not a percentage from 0 to 100. Enter a number in that range, or leave it empty.",
        ),
        (
            [target("click_rate", min=True)],
            0,
            "min",
            "Target 1: the minimum true is not a percentage from 0 to 100. Enter a number in that range, or leave it empty.",
        ),
        (
            [{"metric": "click_rate", "step": "", "minimum": 5}],
            0,
            "",
            "Target 1 has unknown keys: minimum. Use only metric, step, min and max.",
        ),
        (
            ["open_rate"],
            0,
            "",
            "Target 1 is “open_rate”, not an object. Give it a metric, a step, a min and a max.",
        ),
        (
            [target("open_rate", "welcome", min=50), target("open_rate", "welcome", max=90)],
            1,
            "",
            "Target 2 repeats target 1: both are for the open rate of step “welcome”. Remove one of them.",
        ),
    ],
)
def test_invalid_target_names_value_and_fix(targets, index, key, message):
    with pytest.raises(TargetError) as raised:
        validate(targets, STEPS)

    problems = raised.value.problems
    assert [problem.message for problem in problems] == [message]
    assert problems[0].index == index
    assert problems[0].key == key


@pytest.mark.usefixtures("english")
def test_targets_not_a_list_rejected():
    problems = find_problems({"metric": "open_rate"}, STEPS)

    assert len(problems) == 1
    assert problems[0].index is None
    assert problems[0].message == (
        'Metric targets must be a list of targets, not {"metric": "open_rate"}. Start from an empty list: [].'
    )


@pytest.mark.usefixtures("english")
def test_missing_keys_mean_empty():
    targets = [{"metric": "click_rate", "max": 5}, {"metric": "click_rate", "step": "", "min": 1}]

    [problem] = find_problems(targets, STEPS)

    assert problem.index == 1
    assert problem.message.startswith("Target 2 repeats target 1: both are for the click rate of the whole workflow.")


def test_every_problem_reported():
    targets = [target("open_rat", min=5), target("click_rate", min=20, max=10), target("click_rate", "nope", min=1)]

    problems = find_problems(targets, STEPS)

    assert [(problem.index, problem.key) for problem in problems] == [(0, "metric"), (1, "min"), (2, "step")]


@pytest.mark.usefixtures("english")
@pytest.mark.parametrize(
    ("low", "high", "text"),
    [(5, 15, "5–15%"), (50, None, "50% or more"), (None, 2, "2% or less"), (0.5, 2.25, "0.5–2.25%"), (None, None, "-")],
)
def test_range_text_in_english(low, high, text):
    assert range_text(low, high) == text


def test_range_text_in_dutch():
    with translation.override("nl"):
        assert range_text(0.5, None) == "0,5% of meer"
        assert range_text(None, 2) == "2% of minder"
        assert range_text(5, 15) == "5–15%"


# Evaluation against StepMetric and Enrollment rows.


@pytest.fixture
def measured(make_workflow, anna, bram, t0) -> Workflow:
    """A workflow with counted sends, opens, clicks, bounces and conversions on two steps."""
    workflow = make_workflow(
        [
            {"kind": Step.Kind.SEND_EMAIL, "key": "welcome", "name": "Email 1: welcome"},
            {"kind": Step.Kind.WAIT, "key": "wait-2", "wait_days": 2},
            {"kind": Step.Kind.SEND_SMS, "key": "sms-reminder", "name": "SMS 1: reminder"},
        ],
        goal_event="order_placed",
        goal_window_days=14,
        live=False,
    )
    welcome, _wait, sms = workflow.steps.order_by("position")
    StepMetric.objects.create(step=welcome, day=t0.date(), entered=20, sent=20, opened=8, clicked=2, bounced=1, converted=1)
    StepMetric.objects.create(step=welcome, day=t0.date() + timedelta(days=1), entered=0, sent=0, opened=4)
    StepMetric.objects.create(step=sms, day=t0.date(), entered=10, sent=10, clicked=3, unsubscribed=1)
    for contact, converted in ((anna, True), (bram, False)):
        Enrollment.objects.create(
            workflow=workflow,
            contact=contact,
            enrolled_at=t0,
            state=Enrollment.State.COMPLETED,
            converted_at=t0 + HOUR if converted else None,
        )
    return workflow


def results_by_label(workflow: Workflow) -> dict:
    return {result.label: result for result in evaluate(workflow)}


@pytest.mark.usefixtures("english")
def test_evaluation_compares_real_figures(measured):
    measured.metric_targets = [
        target("open_rate", "welcome", min=50),
        target("click_rate", min=5, max=10),
        target("unsubscribe_rate", "sms-reminder", max=2),
        target("bounce_rate", "welcome", max=10),
        target("goal_rate", min=5, max=15),
        target("conversion_rate", "welcome", min=1, max=5),
    ]

    results = evaluate(measured)

    assert [result.label for result in results] == [
        "Open rate of Email 1: welcome",
        "Click rate of the whole workflow",
        "Unsubscribe rate of SMS 1: reminder",
        "Bounce rate of Email 1: welcome",
        "Goal rate: “Order placed” within 14 days",
        "Conversion rate of Email 1: welcome",
    ]
    # 12 opens of 20 emails; 5 clicks of 30 messages; 1 unsubscribe of 10 SMS; 1 bounce of 20 emails;
    # 1 of 2 enrollments converted; 1 conversion credited per 20 entries.
    assert [result.actual for result in results] == [
        Decimal("60.0"),
        Decimal("16.7"),
        Decimal("10.0"),
        Decimal("5.0"),
        Decimal("50.0"),
        Decimal("5.0"),
    ]
    assert [result.status for result in results] == [WITHIN, ABOVE, ABOVE, WITHIN, ABOVE, WITHIN]
    assert [result.good for result in results] == [True, True, False, True, True, True]
    assert [result.range_text for result in results] == ["50% or more", "5–10%", "2% or less", "10% or less", "5–15%", "1–5%"]
    assert [result.step_key for result in results] == ["welcome", "", "sms-reminder", "welcome", "", "welcome"]


def test_whole_workflow_open_rate_counts_only_emails(measured):
    measured.metric_targets = [target("open_rate", min=70)]

    [result] = evaluate(measured)

    # The SMS step's 10 sends have no opens and do not count: 12 opens of 20 emails.
    assert result.actual == Decimal("60.0")
    assert result.status == BELOW
    assert result.good is False


def test_below_range_good_for_lower_is_better(measured):
    measured.metric_targets = [target("bounce_rate", "welcome", min=6, max=10)]

    [result] = evaluate(measured)

    assert METRICS["bounce_rate"].higher_is_better is False
    assert result.status == BELOW
    assert result.good is True


@pytest.mark.usefixtures("english")
def test_target_without_data_has_no_status(make_workflow):
    workflow = make_workflow(
        [{"kind": Step.Kind.SEND_EMAIL, "key": "welcome"}],
        goal_event="order_placed",
        live=False,
        metric_targets=[target("open_rate", "welcome", min=50), target("goal_rate", min=5)],
    )

    results = evaluate(workflow)

    assert [result.actual for result in results] == [None, None]
    assert [result.status for result in results] == [None, None]
    assert [result.good for result in results] == [None, None]
    assert [result.status_text for result in results] == ["no data yet", "no data yet"]


@pytest.mark.usefixtures("english")
def test_target_of_deleted_step_reports_problem(measured):
    measured.metric_targets = [target("click_rate", "sms-reminder", min=10)]
    measured.steps.get(key="sms-reminder").delete()

    [result] = evaluate(measured)

    assert result.actual is None
    assert result.status is None
    assert result.problem.startswith("Target 1: this workflow has no step “sms-reminder”.")
    assert result.status_text == result.problem


@pytest.mark.usefixtures("english")
def test_evaluation_through_engine(make_workflow, send_event, anna, t0):
    dirk = Contact.objects.create(email="dirk@example.com", first_name="Dirk", email_consent=ConsentStatus.SUBSCRIBED)
    workflow = make_workflow(
        [{"kind": Step.Kind.SEND_EMAIL, "key": "welcome"}, {"kind": Step.Kind.WAIT, "key": "wait-2", "wait_days": 2}],
        goal_event="order_placed",
        metric_targets=[target("open_rate", "welcome", min=60), target("goal_rate", min=5, max=10)],
    )
    send_event("signed_up", anna.email, t0)
    send_event("signed_up", dirk.email, t0)
    tick(t0)
    record_open(Delivery.objects.get(contact=anna, step__key="welcome"), at=t0 + HOUR)
    send_event("order_placed", anna.email, t0 + 2 * HOUR, order_id="1001", total_price="40.00")
    tick(t0 + 2 * HOUR)

    opens, goal = evaluate(workflow)

    assert opens.actual == Decimal("50.0")
    assert opens.status == BELOW
    assert opens.good is False
    assert goal.actual == Decimal("50.0")
    assert goal.status == ABOVE
    assert goal.good is True


# The template library.


@pytest.mark.parametrize("slug", sorted(TEMPLATES))
def test_template_targets_name_its_steps(slug):
    spec = TEMPLATES[slug]
    steps = [Step(key=step.key, kind=step.kind) for step in spec.steps]

    assert spec.targets, f"{slug} has no targets"
    assert find_problems(spec.targets, steps) == []
    assert [item["metric"] for item in spec.targets].count("goal_rate") == 1


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("slug", sorted(TEMPLATES))
def test_install_puts_targets_on_workflow(slug, language):
    workflow = install_template(slug, language=language)
    workflow.refresh_from_db()

    assert workflow.metric_targets == TEMPLATES[slug].targets
    validate(workflow.metric_targets, workflow.steps.all())
    assert all(result.problem == "" for result in evaluate(workflow))


# The workflow page.


@pytest.fixture
def cart(db, anna, bram, t0) -> Workflow:
    """The installed English cart workflow with 10 reminder emails sent, 6 opened, and 1 of 2 enrollments converted."""
    workflow = install_template("abandoned_cart", language="en")
    reminder = workflow.steps.get(key="reminder")
    StepMetric.objects.create(step=reminder, day=t0.date(), entered=10, sent=10, opened=6, clicked=1)
    for contact, converted in ((anna, True), (bram, False)):
        Enrollment.objects.create(
            workflow=workflow,
            contact=contact,
            enrolled_at=t0,
            state=Enrollment.State.COMPLETED,
            converted_at=t0 + HOUR if converted else None,
        )
    return workflow


def editor_config(html: str) -> dict:
    """Return the django-jsonform configuration of the metric targets editor on a page."""
    match = re.search(r'<textarea[^>]*name="metric_targets"[^>]*data-django-jsonform="([^"]*)"', html)
    assert match is not None, "the page has no metric targets editor"
    return json.loads(unescape(match.group(1)))


def targets_table(html: str) -> str:
    section = re.search(r'<section [^>]*id="mktauto-targets">.*?</section>', html, re.S)
    assert section is not None, "the page has no Targets section"
    return section.group(0)


def row_cells(table: str, label: str) -> list[str]:
    row = re.search(r"<tr[^>]*>\s*<td>" + re.escape(label) + r".*?</tr>", table, re.S)
    assert row is not None, f"no row for {label!r} in {table}"
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)]


def test_workflow_page_shows_targets_table(staff_client, cart):
    response = staff_client.get(admin_url(cart), HTTP_ACCEPT_LANGUAGE="en")
    table = targets_table(response.text)

    assert response.status_code == 200
    assert [result.actual for result in response.context["target_results"]] == [Decimal("50.0"), Decimal("60.0")]
    assert row_cells(table, "Goal rate: “Order placed” within 7 days") == [
        "Goal rate: “Order placed” within 7 days",
        "5–15%",
        "50.0%",
        "above the range",
    ]
    assert row_cells(table, "Open rate of Email 1: you left something behind") == [
        "Open rate of Email 1: you left something behind reminder",
        "40–50%",
        "60.0%",
        "above the range",
    ]
    assert 'class="mktauto-good">60.0%' in table


def test_workflow_page_targets_in_dutch(staff_client, cart):
    StepMetric.objects.filter(step__key="reminder").update(opened=3)

    response = staff_client.get(admin_url(cart), HTTP_ACCEPT_LANGUAGE="nl")
    table = targets_table(response.text)

    assert "<h2>Streefwaarden</h2>" in table
    assert row_cells(table, "Openratio van Email 1: you left something behind") == [
        "Openratio van Email 1: you left something behind reminder",
        "40–50%",
        "30,0%",
        "onder het bereik",
    ]
    assert 'class="mktauto-bad">30,0%' in table


def test_workflow_page_without_targets(staff_client, cart):
    cart.metric_targets = []
    cart.save()

    response = staff_client.get(admin_url(cart), HTTP_ACCEPT_LANGUAGE="en")

    assert "No targets set. Add them under Goal in the form below." in targets_table(response.text)


def test_targets_saved_through_form(staff_client, cart):
    url = admin_url(cart)
    data = form_values(staff_client.get(url).text, "workflow_form")
    # The editor shows the whole workflow as "*", because its selects show "" as "Select...".
    assert json.loads(data["metric_targets"][0]) == [
        target("goal_rate", "*", min=5, max=15),
        target("open_rate", "reminder", min=40, max=50),
    ]
    edited = [target("click_rate", "incentive", min=5, max=None), {"metric": "bounce_rate", "step": "*", "max": 1.5}]
    data["metric_targets"] = [json.dumps(edited)]

    response = staff_client.post(url, data)
    cart.refresh_from_db()

    assert response.status_code == 302
    assert cart.metric_targets == [target("click_rate", "incentive", min=5), target("bounce_rate", max=1.5)]


def test_invalid_target_error_beside_field(staff_client, cart):
    url = admin_url(cart)
    data = form_values(staff_client.get(url).text, "workflow_form")
    data["metric_targets"] = [json.dumps([target("open_rate", "abandoned-after-1h", min=40)])]

    response = staff_client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")
    row = re.search(r'<div class="form-row errors field-metric_targets">.*?</ul>', response.text, re.S)
    error_map = editor_config(response.text)["errorMap"]

    assert response.status_code == 200
    assert row is not None
    assert "step “abandoned-after-1h” is a “Wait” step, which has no open rate." in row.group(0)
    assert list(error_map) == ["0§step"]
    assert Workflow.objects.get(pk=cart.pk).metric_targets == TEMPLATES["abandoned_cart"].targets


def test_target_may_name_step_added_in_same_form(staff_client, cart):
    url = admin_url(cart)
    data = form_values(staff_client.get(url).text, "workflow_form")
    total = int(data["steps-TOTAL_FORMS"][0])
    data["steps-TOTAL_FORMS"] = [str(total + 1)]
    new = {
        "key": "thank-you",
        "kind": "send_email",
        "name": "Email 5: thank you",
        "template": data["steps-1-template"][0],
        "position": str(total + 1),
        "wait_mode": "duration",
        "wait_days": "0",
        "wait_hours": "0",
        "wait_minutes": "0",
        "score_delta": "0",
        "condition": json.dumps({"all": []}),
        "if_true": "next",
        "if_false": "exit",
        "workflow": str(cart.pk),
    }
    data.update({f"steps-{total}-{name}": [value] for name, value in new.items()})
    data["metric_targets"] = [json.dumps([target("open_rate", "thank-you", min=30)])]

    response = staff_client.post(url, data)
    cart.refresh_from_db()

    assert response.status_code == 302
    assert cart.steps.filter(key="thank-you").exists()
    assert cart.metric_targets == [target("open_rate", "thank-you", min=30)]


def test_target_of_step_deleted_in_same_form_rejected(staff_client, cart):
    url = admin_url(cart)
    data = form_values(staff_client.get(url).text, "workflow_form")
    index = next(name.split("-")[1] for name, value in data.items() if name.endswith("-key") and value == ["reminder"])
    data[f"steps-{index}-DELETE"] = ["on"]

    response = staff_client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "Target 2: this workflow has no step “reminder”." in response.text
    assert cart.steps.filter(key="reminder").exists()


def test_editor_offers_metrics_and_steps(staff_client, cart):
    response = staff_client.get(admin_url(cart), HTTP_ACCEPT_LANGUAGE="en")
    properties = editor_config(response.text)["schema"]["items"]["properties"]

    assert [choice["value"] for choice in properties["metric"]["choices"]] == list(METRICS)
    assert properties["step"]["choices"][0] == {"title": "Whole workflow", "value": "*"}
    assert [choice["value"] for choice in properties["step"]["choices"][1:]] == list(
        cart.steps.order_by("position").values_list("key", flat=True)
    )


# The editor in a real browser.


@pytest.mark.browser
def test_editor_adds_target_in_browser(cart, live_server, staff_user):
    """Debian's Chromium driven by Playwright: the jsonform editor loads, a target is added and saved."""
    import os

    from django.db import connections
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread, and Django's async-safety check
    # rejects ORM calls while a loop runs.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(
            locale="en-US", extra_http_headers={"Accept-Language": "en"}, viewport={"width": 1400, "height": 2400}
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "marieke")
        page.fill("#id_password", "marieke-password")
        page.click("input[type=submit]")

        page.goto(f"{live_server.url}{admin_url(cart)}")
        editor = page.locator(".form-row.field-metric_targets")
        expect(editor.locator(".rjf-form-group-title")).to_have_count(2)
        whole = editor.locator("select[name='rjf§0§step']")
        assert whole.evaluate("select => select.options[select.selectedIndex].text") == "Whole workflow"

        editor.locator("button:has-text('Add item')").last.click()
        editor.locator("select[name='rjf§2§metric']").select_option("click_rate")
        editor.locator("select[name='rjf§2§step']").select_option("incentive")
        editor.locator("input[name='rjf§2§min']").fill("5")
        editor.locator("input[name='rjf§2§max']").fill("12.5")
        page.click("input[name=_continue]")

        expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
        expect(page.locator("#mktauto-targets")).to_contain_text("Click rate of Email 3: 10% off your cart")
        expect(page.locator("#mktauto-targets")).to_contain_text("5–12.5%")
        page.screenshot(path="/tmp/mktauto-targets.png", full_page=True)
        context.close()
        browser.close()
        connections.close_all()

    cart.refresh_from_db()
    assert cart.metric_targets == [*TEMPLATES["abandoned_cart"].targets, target("click_rate", "incentive", min=5, max=12.5)]
