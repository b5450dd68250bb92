"""Open pixel and click redirect: first open and click recorded once, no open redirect."""

import re
from datetime import timedelta
from html import unescape

import pytest
import time_machine
from django.core import mail, signing

from campaigns import tracking
from campaigns.dispatch import dispatch_due
from campaigns.models import Delivery, MessageTemplate, StepMetric
from contacts.models import Event
from workflows.models import Enrollment, Step, Workflow

SHOP_LINK = "https://shop.example.com/jassen?kleur=blauw&maat=m"


@pytest.fixture
def opened_at(t0):
    """The moment the recipient reads the message, an hour after it was sent."""
    moment = t0 + timedelta(hours=1)
    with time_machine.travel(moment, tick=False):
        yield moment


@pytest.fixture
def newsletter(db) -> MessageTemplate:
    return MessageTemplate.objects.create(name="Nieuwsbrief", subject="Nieuw binnen", body=f"[Bekijk de jassen]({SHOP_LINK})")


@pytest.fixture
def step(newsletter) -> Step:
    workflow = Workflow.objects.create(name="Welkom", status=Workflow.Status.LIVE, trigger_event="signed_up")
    return Step.objects.create(workflow=workflow, position=0, key="mail-1", kind=Step.Kind.SEND_EMAIL, template=newsletter)


@pytest.fixture
def delivery(anna, newsletter, step, t0) -> Delivery:
    enrollment = Enrollment.objects.create(workflow=step.workflow, contact=anna, step=step, visit=1, enrolled_at=t0)
    return Delivery.objects.create(
        contact=anna,
        template=newsletter,
        channel="email",
        enrollment=enrollment,
        step=step,
        visit=1,
        status=Delivery.Status.SENT,
        sent_at=t0,
        created_at=t0,
    )


def path_of(url: str) -> str:
    return url.removeprefix("http://127.0.0.1:8000")


def open_path(delivery: Delivery) -> str:
    return path_of(tracking.open_pixel_url(delivery))


def click_path(delivery: Delivery, url: str = SHOP_LINK) -> str:
    return path_of(tracking.click_url(delivery, url))


def metric(step: Step) -> StepMetric:
    return StepMetric.objects.get(step=step)


# Opens.


def test_open_pixel_returns_gif(client, delivery, opened_at):
    response = client.get(open_path(delivery))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response["Cache-Control"] == "no-store"
    assert response.content.startswith(b"GIF89a")


def test_open_pixel_records_first_open(client, delivery, step, opened_at):
    client.get(open_path(delivery))

    delivery.refresh_from_db()
    assert delivery.opened_at == opened_at
    assert metric(step).opened == 1


def test_open_pixel_stores_event(client, delivery, opened_at):
    client.get(open_path(delivery))

    event = Event.objects.get(type="email_opened")
    assert event.source == Event.Source.TRACKING
    assert event.source_id == f"email_opened:{delivery.pk}"
    assert event.contact_id == delivery.contact_id
    assert event.occurred_at == opened_at
    assert event.properties == {"delivery_id": delivery.pk, "message": delivery.template_id}
    assert event.processed_at is None


def test_repeated_open_counted_once(client, delivery, step, opened_at):
    client.get(open_path(delivery))

    with time_machine.travel(opened_at + timedelta(hours=2), tick=False):
        client.get(open_path(delivery))

    delivery.refresh_from_db()
    assert delivery.opened_at == opened_at
    assert metric(step).opened == 1
    assert Event.objects.filter(type="email_opened").count() == 1


def test_open_pixel_bad_token_not_found(client, delivery):
    assert client.get("/t/o/not-a-token.gif").status_code == 404


def test_open_pixel_click_token_not_found(client, delivery):
    click_token = click_path(delivery).split("/")[3]

    assert client.get(f"/t/o/{click_token}.gif").status_code == 404


def test_open_pixel_deleted_delivery_still_gif(client, delivery):
    path = open_path(delivery)
    Delivery.objects.filter(pk=delivery.pk).delete()

    response = client.get(path)

    assert response.status_code == 200
    assert Event.objects.count() == 0


# Clicks.


def test_click_redirects_to_link(client, delivery, opened_at):
    response = client.get(click_path(delivery))

    assert response.status_code == 302
    assert response["Location"] == SHOP_LINK
    assert response["Referrer-Policy"] == "no-referrer"


def test_click_records_first_click(client, delivery, step, opened_at):
    client.get(click_path(delivery))

    delivery.refresh_from_db()
    assert delivery.clicked_at == opened_at
    assert metric(step).clicked == 1


def test_click_implies_open(client, delivery, step, opened_at):
    client.get(click_path(delivery))

    delivery.refresh_from_db()
    assert delivery.opened_at == opened_at
    assert metric(step).opened == 1


def test_click_stores_event(client, delivery, opened_at):
    client.get(click_path(delivery))

    event = Event.objects.get(type="link_clicked")
    assert event.source_id == f"link_clicked:{delivery.pk}"
    assert event.properties["url"] == SHOP_LINK
    assert event.properties["delivery_id"] == delivery.pk


def test_repeated_click_counted_once(client, delivery, step, opened_at):
    client.get(click_path(delivery))

    client.get(click_path(delivery, "https://shop.example.com/sale"))

    assert metric(step).clicked == 1
    assert metric(step).opened == 1
    assert Event.objects.filter(type="link_clicked").count() == 2
    assert Event.objects.filter(type="email_opened").count() == 1


def test_click_query_string_ignored(client, delivery, opened_at):
    response = client.get(click_path(delivery) + "?url=https://evil.example/")

    assert response["Location"] == SHOP_LINK


# No open redirect.


def test_click_with_changed_url_rejected(client, delivery, opened_at):
    genuine = tracking.click_url(delivery, SHOP_LINK).rsplit("/", 2)[1]
    other = tracking.click_url(delivery, "https://evil.example/").rsplit("/", 2)[1]
    spliced = other.rsplit(":", 1)[0] + ":" + genuine.rsplit(":", 1)[1]

    response = client.get(f"/t/c/{spliced}/")

    assert response.status_code == 404
    assert Event.objects.count() == 0


def test_click_token_from_elsewhere_rejected(client, delivery, settings):
    foreign = signing.dumps([delivery.pk, "https://evil.example/"], salt="mktauto.tracking.click", key="another-installation")

    response = client.get(f"/t/c/{foreign}/")

    assert response.status_code == 404


def test_click_token_with_other_salt_rejected(client, delivery):
    unsubscribe_token = tracking.unsubscribe_token(delivery)

    assert client.get(f"/t/c/{unsubscribe_token}/").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/",
        "/admin/",
        "https://shop.example.com/\r\nSet-Cookie: x=1",
        "ftp://files.example.com/",
        "https:///no-host",
    ],
    ids=["javascript", "javascript-capitals", "data", "scheme-relative", "relative", "header-injection", "ftp", "no-host"],
)
def test_signed_unsafe_url_never_redirects(client, delivery, url):
    token = signing.dumps([delivery.pk, url], salt=tracking.CLICK_SALT, compress=True)

    response = client.get(f"/t/c/{token}/")

    assert response.status_code == 404
    assert Event.objects.count() == 0


def test_click_bad_token_not_found(client, delivery):
    assert client.get("/t/c/garbage/").status_code == 404


def test_click_post_not_allowed(client, delivery):
    assert client.post(click_path(delivery)).status_code == 405


# From a real message.


def test_links_in_sent_email_redirect(client, anna, newsletter, t0):
    queued = Delivery.objects.create(
        contact=anna, template=newsletter, channel="email", status=Delivery.Status.QUEUED, next_attempt_at=t0, created_at=t0
    )
    dispatch_due(t0)
    page = mail.outbox[0].alternatives[0][0]
    click_link = unescape(re.search(r'href="(http://127\.0\.0\.1:8000/t/c/[^"]+)"', page).group(1))
    pixel = re.search(r'src="(http://127\.0\.0\.1:8000/t/o/[^"]+)"', page).group(1)

    assert client.get(path_of(pixel)).status_code == 200
    response = client.get(path_of(click_link))

    assert response["Location"] == SHOP_LINK
    queued.refresh_from_db()
    assert queued.opened_at is not None
    assert queued.clicked_at is not None


# Machine opens and clicks: flagged on the delivery and counted apart from people.

APPLE_PROXY = "Mozilla/5.0"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"


@pytest.mark.parametrize(
    ("agent", "address"),
    [
        (APPLE_PROXY, "17.58.101.4"),
        (GMAIL_PROXY, "66.102.8.1"),
        (IPHONE, "17.58.101.4"),
        ("YahooMailProxy; https://help.yahoo.com", "10.0.0.1"),
    ],
    ids=["apple-mpp", "gmail-proxy", "apple-network", "yahoo-proxy"],
)
def test_proxy_open_flagged_not_counted(client, delivery, step, opened_at, agent, address):
    client.get(open_path(delivery), HTTP_USER_AGENT=agent, REMOTE_ADDR=address)

    delivery.refresh_from_db()
    assert delivery.proxy_opened_at == opened_at
    assert delivery.opened_at is None
    assert metric(step).opened_proxy == 1
    assert metric(step).opened == 0
    assert Event.objects.filter(type="email_opened").count() == 0


def test_proxy_open_counted_once(client, delivery, step, opened_at):
    client.get(open_path(delivery), HTTP_USER_AGENT=APPLE_PROXY)
    client.get(open_path(delivery), HTTP_USER_AGENT=APPLE_PROXY)

    assert metric(step).opened_proxy == 1


def test_human_open_after_proxy_open(client, delivery, step, opened_at):
    client.get(open_path(delivery), HTTP_USER_AGENT=APPLE_PROXY, REMOTE_ADDR="17.58.101.4")

    client.get(open_path(delivery), HTTP_USER_AGENT=IPHONE, REMOTE_ADDR="145.53.12.9")

    delivery.refresh_from_db()
    assert delivery.opened_at == opened_at
    assert metric(step).opened == 1
    assert metric(step).opened_proxy == 1


def test_phone_open_counted_as_person(client, delivery, step, opened_at):
    client.get(open_path(delivery), HTTP_USER_AGENT=IPHONE, REMOTE_ADDR="145.53.12.9")

    delivery.refresh_from_db()
    assert delivery.opened_at == opened_at
    assert delivery.proxy_opened_at is None


def test_head_click_is_scanner(client, delivery, step, opened_at):
    response = client.head(click_path(delivery), HTTP_USER_AGENT=IPHONE)

    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.scanner_clicked_at == opened_at
    assert delivery.clicked_at is None
    assert metric(step).clicked_scanner == 1
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))",
        "Mimecast URL Protect",
        "python-requests/2.31.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
    ],
    ids=["barracuda", "mimecast", "python-requests", "headless-chrome"],
)
def test_scanner_agent_click_flagged(client, delivery, step, opened_at, agent):
    response = client.get(click_path(delivery), HTTP_USER_AGENT=agent)

    assert response["Location"] == SHOP_LINK
    delivery.refresh_from_db()
    assert delivery.scanner_clicked_at == opened_at
    assert delivery.clicked_at is None
    assert delivery.opened_at is None
    assert metric(step).clicked == 0


def test_click_seconds_after_sending_is_scanner(client, delivery, step, t0):
    with time_machine.travel(t0 + timedelta(seconds=4), tick=False):
        client.get(click_path(delivery), HTTP_USER_AGENT=IPHONE)

    delivery.refresh_from_db()
    assert delivery.scanner_clicked_at == t0 + timedelta(seconds=4)
    assert delivery.clicked_at is None


def test_click_after_window_is_person(client, delivery, step, t0, settings):
    settings.MKTAUTO_SCANNER_CLICK_SECONDS = 10
    with time_machine.travel(t0 + timedelta(seconds=11), tick=False):
        client.get(click_path(delivery), HTTP_USER_AGENT=IPHONE)

    delivery.refresh_from_db()
    assert delivery.clicked_at == t0 + timedelta(seconds=11)
    assert metric(step).clicked == 1


def test_scanner_then_person_both_counted(client, delivery, step, t0):
    with time_machine.travel(t0 + timedelta(seconds=2), tick=False):
        client.get(click_path(delivery), HTTP_USER_AGENT=IPHONE)
    with time_machine.travel(t0 + timedelta(hours=2), tick=False):
        client.get(click_path(delivery), HTTP_USER_AGENT=IPHONE)

    assert metric(step).clicked_scanner == 1
    assert metric(step).clicked == 1
    assert metric(step).opened == 1
