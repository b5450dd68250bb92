"""The workflow builder in a real browser: Debian's Chromium driven by Playwright against the live server.

Playwright's sync API runs an event loop in this thread, and Django's async-safety check rejects
ORM calls while a loop runs. The variable below turns that check off for this module.
"""

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, expect, sync_playwright

from contacts.models import Event
from workflows.models import Enrollment, Step, StepLog, Workflow

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path("/tmp")
TIMEOUT_MS = 15_000


@pytest.fixture
def browser() -> Browser:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # A connection opened while Playwright's event loop runs is not closed by the test
        # database teardown, and PostgreSQL refuses to drop a database with open connections.
        connections.close_all()


@pytest.fixture
def page(browser: Browser, live_server, staff_user) -> Page:
    """A logged-in admin page in English, as a browser asking for English gets it."""
    context = browser.new_context(
        locale="en-US", extra_http_headers={"Accept-Language": "en"}, viewport={"width": 1400, "height": 2400}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "marieke")
    page.fill("#id_password", "marieke-password")
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("marieke")
    yield page
    context.close()


def step_keys(workflow: Workflow) -> list[str]:
    return list(workflow.steps.order_by("position", "id").values_list("key", flat=True))


def test_builder_install_edit_activate(page: Page, live_server):
    page.goto(f"{live_server.url}/admin/workflows/workflow/")
    page.click("a.mktauto-library-link")
    card = page.locator("#template-abandoned_cart")
    card.locator("select[name=language]").select_option("en")
    card.locator("button.mktauto-install").click()

    expect(page.locator(".messagelist")).to_contain_text("was installed as a draft")
    expect(page.locator("#mktauto-flowchart svg")).to_be_visible()
    workflow = Workflow.objects.get(template_slug="abandoned_cart")
    assert workflow.name == "Abandoned cart recovery"
    assert workflow.status == Workflow.Status.DRAFT

    # Add a step: only the tag field shows for a tag step.
    page.click(".inline-group .add-row a")
    new_form = page.locator(".inline-related.last-related:not(.empty-form)").last
    new_form.locator("input[name$='-key']").fill("mark-abandoner")
    new_form.locator("input[name$='-name']").fill("Mark as cart abandoner")
    new_form.locator("select[name$='-kind']").select_option("add_tag")
    expect(new_form.locator(".form-row.field-tag")).to_be_visible()
    expect(new_form.locator(".form-row.field-wait_days")).to_be_hidden()
    new_form.locator("input[name$='-tag']").fill("cart-abandoner")

    # Reorder: drag the first email above the first wait.
    forms = page.locator(".inline-related.has_original")
    forms.nth(1).locator("h3").drag_to(forms.nth(0).locator("h3"))
    page.click("input[name=_continue]")

    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    keys = step_keys(workflow)
    assert keys[0] == "reminder"
    assert keys[1] == "abandoned-after-1h"
    assert keys[-1] == "mark-abandoner"
    assert Step.objects.get(workflow=workflow, key="mark-abandoner").tag == "cart-abandoner"

    page.click("button.mktauto-activate")

    expect(page.locator(".messagelist .success")).to_contain_text("is live now")
    expect(page.locator("#mktauto-flowchart svg")).to_contain_text("Mark as cart abandoner")
    assert page.locator("#mktauto-flowchart").get_attribute("data-rendered") == "true"
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.LIVE
    page.screenshot(path=str(SCREENSHOTS / "mktauto-workflow.png"), full_page=True)


def test_activate_shows_problems_as_error(page: Page, live_server):
    workflow = Workflow.objects.create(name="Half built", trigger_event="signed_up")

    page.goto(f"{live_server.url}/admin/workflows/workflow/{workflow.pk}/change/")
    page.click("button.mktauto-activate")

    expect(page.locator(".messagelist .error")).to_contain_text("The workflow has no steps.")
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.DRAFT


def test_condition_editor_edits_tree(page: Page, live_server):
    workflow = Workflow.objects.create(name="Welcome", trigger_event="signed_up")
    Step.objects.create(workflow=workflow, key="wait-1", kind=Step.Kind.WAIT, wait_days=1)

    page.goto(f"{live_server.url}/admin/workflows/workflow/{workflow.pk}/change/")
    editor = page.locator(".form-row.field-exit_condition")
    editor.locator("button:has-text('Add item')").first.click()
    editor.locator("select.rjf-oneof-selector-input").nth(1).select_option(label="Has tag")
    editor.locator("input[type=text]").last.fill("customer")
    page.click("input[name=_continue]")

    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    workflow.refresh_from_db()
    assert workflow.exit_condition == {"all": [{"tag": "customer"}]}


def test_contact_page_shows_timeline(page: Page, live_server, anna, t0):
    Event.objects.create(
        source=Event.Source.API,
        type="order_placed",
        contact=anna,
        occurred_at=t0,
        key="order-1",
        value=Decimal("42.50"),
        currency="EUR",
    )
    workflow = Workflow.objects.create(name="Thank you", trigger_event="order_placed")
    step = Step.objects.create(workflow=workflow, key="wait-1", kind=Step.Kind.WAIT, wait_days=1)
    enrollment = Enrollment.objects.create(workflow=workflow, contact=anna, step=step, enrolled_at=t0 + timedelta(minutes=1))
    StepLog.objects.create(enrollment=enrollment, step=step, outcome=StepLog.Outcome.WAITED, at=t0 + timedelta(minutes=2))

    page.goto(f"{live_server.url}/admin/contacts/contact/{anna.pk}/change/")
    entries = page.locator("#mktauto-timeline li")

    expect(entries).to_have_count(3)
    expect(entries.nth(0)).to_contain_text("Waiting: Wait")
    expect(entries.nth(1)).to_contain_text("Entered “Thank you”")
    expect(entries.nth(2)).to_contain_text("Order placed")
    page.screenshot(path=str(SCREENSHOTS / "mktauto-contact.png"), full_page=True)


def test_dutch_browser_gets_dutch_admin(browser: Browser, live_server, staff_user):
    context = browser.new_context(
        locale="nl-NL", extra_http_headers={"Accept-Language": "nl"}, viewport={"width": 1400, "height": 2400}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")

    expect(page.locator("html")).to_have_attribute("lang", "nl")
    expect(page.locator("input[type=submit]")).to_have_value("Aanmelden")

    page.fill("#id_username", "marieke")
    page.fill("#id_password", "marieke-password")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/workflows/workflow/")
    expect(page.locator("a.mktauto-library-link")).to_have_text("Nieuwe workflow uit sjabloon")
    page.click("a.mktauto-library-link")
    card = page.locator("#template-abandoned_cart")
    card.locator("select[name=language]").select_option("nl")
    card.locator("button.mktauto-install").click()

    expect(page.locator(".messagelist")).to_contain_text("“Verlaten winkelwagens terugwinnen” is als concept geïnstalleerd.")
    expect(page.locator("#mktauto-step-metrics h2")).to_have_text("Resultaten per stap")
    expect(page.locator("#mktauto-flowchart svg")).to_contain_text("E-mail 1: je hebt iets laten liggen")
    expect(page.locator("#mktauto-flowchart svg")).to_contain_text("Voltooid")
    page.screenshot(path=str(SCREENSHOTS / "mktauto-workflow-nl.png"), full_page=True)
    context.close()
