"""A cart email's preview at a phone's width in real Chromium: one column, no sideways scrolling, 44 px tap targets.

Playwright's sync API runs an event loop in this thread, and Django's async-safety check rejects
ORM calls while a loop runs. The variable below turns that check off for this module. Every
request that does not go to the live server is aborted, so the page loads nothing from elsewhere.
"""

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.db import connections
from django.test import Client
from playwright.sync_api import Browser, Page, Route, sync_playwright

from campaigns.models import MessageTemplate
from contacts.models import ConsentStatus, Contact
from workflows.models import Enrollment, Step, Workflow

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
PHONE_WIDTH = 375
TIMEOUT_MS = 15_000
# Loopback port 9 (discard): the images fail to load, as they may in a mail client, and nothing leaves the machine.
IMAGE_BASE = "https://127.0.0.1:9/images"
MIN_TAP = 44


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # A connection opened while Playwright's event loop runs is not closed by the test
        # database teardown, and PostgreSQL refuses to drop a database with open connections.
        connections.close_all()


@pytest.fixture
def phone(browser: Browser, live_server, staff_user) -> Iterator[Page]:
    """A page 375 px wide, logged in as Marieke through the session cookie of the test client."""
    client = Client()
    client.force_login(staff_user)
    session = client.cookies["sessionid"].value

    context = browser.new_context(viewport={"width": PHONE_WIDTH, "height": 800}, locale="nl-NL", is_mobile=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
    origin = live_server.url

    def only_live_server(route: Route) -> None:
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_live_server)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def cart_preview_path(db, t0) -> str:
    contact = Contact.objects.create(email="lotte@example.com", first_name="Lotte", email_consent=ConsentStatus.SUBSCRIBED)
    template = MessageTemplate.objects.create(
        name="Mandje vergeten",
        subject="{{ first_name|default:'Hoi' }}, je mandje wacht",
        preview_text="Je artikelen liggen voor je klaar.",
        body=(
            "# Je mandje wacht op je\n\nHoi {{ first_name|default:'daar' }}, je liet dit achter:\n\n"
            "{% cart_items %}\n\nAndere klanten kochten ook:\n\n{% product_recommendations %}"
        ),
        cta_text="Rond je bestelling af",
        cta_url="{{ trigger.abandoned_checkout_url|default:shop_url }}",
    )
    workflow = Workflow.objects.create(name="Mandje", trigger_event="checkout_started")
    Step.objects.create(workflow=workflow, position=0, key="mail-1", kind=Step.Kind.SEND_EMAIL, template=template)
    Enrollment.objects.create(
        workflow=workflow,
        contact=contact,
        enrolled_at=t0,
        context={
            "currency": "EUR",
            "abandoned_checkout_url": "https://shop.example.com/checkouts/c1/recover",
            "line_items": [
                {
                    "title": "Linnen schort met een heel lange productnaam die over meerdere regels loopt",
                    "variant_title": "Naturel",
                    "price": "24.95",
                    "quantity": 2,
                    "image_url": f"{IMAGE_BASE}/schort.jpg",
                    "url": "https://shop.example.com/products/schort",
                },
                {"title": "Theedoek", "price": "9.50", "quantity": 1, "url": "https://shop.example.com/products/theedoek"},
            ],
        },
    )
    return f"/campaigns/preview/{template.pk}/{contact.pk}/"


def boxes(page: Page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(
        selector,
        "elements => elements.map(element => { const box = element.getBoundingClientRect();"
        " return {text: element.textContent.trim(), left: box.left, right: box.right, top: box.top,"
        " bottom: box.bottom, width: box.width, height: box.height}; })",
    )


def test_cart_email_fits_phone_width(phone: Page, live_server, cart_preview_path):
    phone.goto(live_server.url + cart_preview_path)

    scroll_width = phone.evaluate("document.documentElement.scrollWidth")
    assert urlsplit(phone.url).path == cart_preview_path
    assert scroll_width <= PHONE_WIDTH


def test_cart_email_blocks_stacked(phone: Page, live_server, cart_preview_path):
    phone.goto(live_server.url + cart_preview_path)

    parts = boxes(phone, ".content > *")
    items = boxes(phone, ".block .item")
    assert len(parts) >= 6
    for above, below in zip(parts, parts[1:], strict=False):
        assert below["top"] >= above["bottom"] - 0.5, (above["text"][:40], below["text"][:40])
    for part in parts:
        assert part["left"] >= 0
        assert part["right"] <= PHONE_WIDTH
    assert len(items) == 2
    assert items[1]["top"] >= items[0]["bottom"] - 0.5


def test_cart_email_tap_targets(phone: Page, live_server, cart_preview_path):
    phone.goto(live_server.url + cart_preview_path)

    targets = boxes(phone, ".block a, a.cta, .footer a")
    # Two products, the button, and the footer's unsubscribe and preference links.
    assert len(targets) == 5
    assert targets[1]["text"] == "Theedoek"
    assert targets[2]["text"] == "Rond je bestelling af"
    for target in targets:
        assert target["width"] >= MIN_TAP, target
        assert target["height"] >= MIN_TAP, target
