"""Unsubscribing from an email: the page, RFC 8058 one-click, and what stops afterwards."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.core.signing import dumps
from django.test import Client

from campaigns import tracking
from campaigns.dispatch import dispatch_due
from campaigns.models import Delivery, MessageTemplate, StepMetric
from contacts.ingest import parse_event, store_events
from contacts.models import ConsentRecord, ConsentStatus, Contact, Event
from workflows.engine.tick import tick
from workflows.library import install_template
from workflows.lifecycle import activate
from workflows.models import Enrollment, Step, Workflow

ONE_CLICK_BODY = "List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def newsletter(db) -> MessageTemplate:
    return MessageTemplate.objects.create(name="Nieuwsbrief", subject="Nieuw binnen", body="Hoi {{ first_name }}")


@pytest.fixture
def order_confirmation(db) -> MessageTemplate:
    return MessageTemplate.objects.create(
        name="Orderbevestiging", transactional=True, subject="Je bestelling", body="We hebben je bestelling ontvangen."
    )


@pytest.fixture
def sent_newsletter(anna, newsletter, t0) -> Delivery:
    return Delivery.objects.create(
        contact=anna, template=newsletter, channel="email", status=Delivery.Status.SENT, sent_at=t0, created_at=t0
    )


@pytest.fixture
def csrf_client() -> Client:
    """A client that enforces CSRF like a real browser session would."""
    return Client(enforce_csrf_checks=True)


def path_of(url: str) -> str:
    return url.removeprefix("http://127.0.0.1:8000")


def unsubscribe_path(delivery: Delivery) -> str:
    return path_of(tracking.unsubscribe_url(delivery))


def queue(contact: Contact, template: MessageTemplate, now) -> Delivery:
    return Delivery.objects.create(
        contact=contact,
        template=template,
        channel="email",
        transactional=template.transactional,
        status=Delivery.Status.QUEUED,
        next_attempt_at=now,
        created_at=now,
    )


def signed_up(contact: Contact, now) -> None:
    store_events([parse_event({"type": "signed_up", "email": contact.email}, now=now)], Event.Source.API, now=now)


# The page.


def test_unsubscribe_get_shows_confirmation(client, anna, sent_newsletter):
    response = client.get(unsubscribe_path(sent_newsletter), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Do you want to stop receiving marketing messages at anna@example.com?" in page
    assert '<form method="post">' in page


def test_unsubscribe_get_changes_nothing(client, anna, sent_newsletter):
    client.get(unsubscribe_path(sent_newsletter))

    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.SUBSCRIBED
    assert ConsentRecord.objects.count() == 0


def test_unsubscribe_post_unsubscribes(client, anna, sent_newsletter):
    response = client.post(unsubscribe_path(sent_newsletter), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.UNSUBSCRIBED


def test_unsubscribe_post_records_proof(client, anna, sent_newsletter):
    client.post(unsubscribe_path(sent_newsletter), HTTP_USER_AGENT="Mozilla/5.0 (Android)")

    record = ConsentRecord.objects.get()
    assert record.contact == anna
    assert record.channel == "email"
    assert record.status == ConsentStatus.UNSUBSCRIBED
    assert record.source == "unsubscribe link"
    assert record.proof == (
        f"unsubscribe page POST from 127.0.0.1, user agent 'Mozilla/5.0 (Android)', delivery {sent_newsletter.pk}"
    )


def test_page_form_posts_without_csrf_token(csrf_client, anna, sent_newsletter):
    path = unsubscribe_path(sent_newsletter)
    page = csrf_client.get(path).content.decode()

    response = csrf_client.post(path)

    assert "csrfmiddlewaretoken" not in page
    assert response.status_code == 200
    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.UNSUBSCRIBED


def test_one_click_post_without_csrf(csrf_client, anna, sent_newsletter):
    response = csrf_client.post(unsubscribe_path(sent_newsletter), data=ONE_CLICK_BODY, content_type=FORM)

    assert response.status_code == 200
    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.UNSUBSCRIBED
    assert ConsentRecord.objects.get().proof.startswith("RFC 8058 one-click POST from 127.0.0.1")


def test_one_click_multipart_post(csrf_client, anna, sent_newsletter):
    response = csrf_client.post(unsubscribe_path(sent_newsletter), {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    assert ConsentRecord.objects.get().proof.startswith("RFC 8058 one-click POST")


def test_unsubscribe_marks_delivery(client, anna, sent_newsletter, t0):
    client.post(unsubscribe_path(sent_newsletter), data=ONE_CLICK_BODY, content_type=FORM)

    sent_newsletter.refresh_from_db()
    assert sent_newsletter.unsubscribed_at is not None


def test_unsubscribe_stores_event(client, anna, sent_newsletter):
    client.post(unsubscribe_path(sent_newsletter), data=ONE_CLICK_BODY, content_type=FORM)

    event = Event.objects.get(type="unsubscribed")
    assert event.source == Event.Source.TRACKING
    assert event.contact == anna
    assert event.properties == {"channel": "email", "delivery_id": sent_newsletter.pk, "message": sent_newsletter.template_id}


def test_second_post_changes_nothing(client, anna, sent_newsletter):
    path = unsubscribe_path(sent_newsletter)
    client.post(path, data=ONE_CLICK_BODY, content_type=FORM)

    response = client.post(path, data=ONE_CLICK_BODY, content_type=FORM)

    assert response.status_code == 200
    assert ConsentRecord.objects.count() == 1
    assert Event.objects.filter(type="unsubscribed").count() == 1


def test_get_after_unsubscribing_shows_done(client, anna, sent_newsletter):
    path = unsubscribe_path(sent_newsletter)
    client.post(path)

    response = client.get(path, HTTP_ACCEPT_LANGUAGE="en")

    assert "You are unsubscribed" in response.content.decode()
    assert "<form" not in response.content.decode()


def test_unsubscribe_other_method_not_allowed(client, anna, sent_newsletter):
    response = client.put(unsubscribe_path(sent_newsletter))

    assert response.status_code == 405


# Bad tokens.


def test_tampered_token_not_found(client, anna, sent_newsletter):
    path = unsubscribe_path(sent_newsletter)
    token = path.split("/")[2]
    tampered = path.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))

    assert client.get(tampered).status_code == 404
    assert client.post(tampered, data=ONE_CLICK_BODY, content_type=FORM).status_code == 404
    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.SUBSCRIBED


def test_token_for_other_contact_not_found(client, anna, bram, sent_newsletter):
    token = tracking.unsubscribe_token(sent_newsletter)
    payload, signature = token.rsplit(":", 1)
    forged = dumps([bram.pk, sent_newsletter.pk, "email"], salt="wrong-salt")

    assert client.post(f"/u/{forged}/").status_code == 404
    assert client.post(f"/u/{payload}:{signature[::-1]}/").status_code == 404


def test_open_token_not_accepted(client, anna, sent_newsletter):
    open_token = path_of(tracking.open_pixel_url(sent_newsletter)).split("/")[3].removesuffix(".gif")

    assert client.get(f"/u/{open_token}/").status_code == 404


def test_token_of_deleted_contact_not_found(client, anna, sent_newsletter):
    path = unsubscribe_path(sent_newsletter)
    Contact.objects.filter(pk=anna.pk).delete()

    assert client.get(path).status_code == 404


# What stops afterwards.


def test_unsubscribe_cancels_queued_promotional(client, anna, newsletter, sent_newsletter, t0):
    queued = queue(anna, newsletter, t0)

    client.post(unsubscribe_path(sent_newsletter), data=ONE_CLICK_BODY, content_type=FORM)

    queued.refresh_from_db()
    assert queued.status == Delivery.Status.CANCELLED
    assert queued.error == "unsubscribed from email"


def test_transactional_still_sent_after_unsubscribe(client, anna, order_confirmation, sent_newsletter, t0):
    queued = queue(anna, order_confirmation, t0)

    client.post(unsubscribe_path(sent_newsletter), data=ONE_CLICK_BODY, content_type=FORM)
    dispatch_due(t0)

    queued.refresh_from_db()
    assert queued.status == Delivery.Status.SENT
    assert mail.outbox[0].subject == "Je bestelling"


def test_unsubscribe_counts_step_metric(client, anna, t0):
    workflow = install_template("welcome_series", language="en")
    assert activate(workflow) == []
    signed_up(anna, t0)
    tick(now=t0)
    delivery = Delivery.objects.get()

    client.post(unsubscribe_path(delivery), data=ONE_CLICK_BODY, content_type=FORM)

    assert sum(StepMetric.objects.filter(step=delivery.step).values_list("unsubscribed", flat=True)) == 1


def test_email_link_leaves_promotional_workflow(client, anna, t0):
    workflow = install_template("welcome_series", language="en")
    assert activate(workflow) == []
    signed_up(anna, t0)
    tick(now=t0)
    assert len(mail.outbox) == 1
    header = mail.outbox[0].extra_headers["List-Unsubscribe"]

    response = client.post(path_of(header.strip("<>")), data=ONE_CLICK_BODY, content_type=FORM)

    assert response.status_code == 200
    enrollment = Enrollment.objects.get(workflow=workflow, contact=anna)
    assert enrollment.state == Enrollment.State.EXITED
    assert enrollment.exit_reason == "unsubscribed from email"


def test_no_more_series_email_after_unsubscribe(client, anna, t0):
    workflow = install_template("welcome_series", language="en")
    assert activate(workflow) == []
    signed_up(anna, t0)
    tick(now=t0)
    page_link = re.search(r'href="(http://127\.0\.0\.1:8000/u/[^"]+)"', mail.outbox[0].alternatives[0][0]).group(1)

    assert "Do you want to stop receiving" in client.get(path_of(page_link), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    client.post(path_of(page_link))
    for day in range(1, 12):
        tick(now=t0 + timedelta(days=day))

    assert len(mail.outbox) == 1
    assert Delivery.objects.filter(contact=anna).count() == 1


def test_transactional_workflow_keeps_contact(client, anna, newsletter, order_confirmation, sent_newsletter, t0):
    workflow = Workflow.objects.create(name="Orderopvolging", status=Workflow.Status.LIVE, trigger_event="order_placed")
    step = Step.objects.create(
        workflow=workflow, position=0, key="bevestiging", kind=Step.Kind.SEND_EMAIL, template=order_confirmation
    )
    enrollment = Enrollment.objects.create(workflow=workflow, contact=anna, step=step, visit=1, enrolled_at=t0, next_run_at=t0)

    client.post(unsubscribe_path(sent_newsletter), data=ONE_CLICK_BODY, content_type=FORM)
    tick(now=t0)

    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED
    assert enrollment.exit_reason == ""
    assert [message.subject for message in mail.outbox] == ["Je bestelling"]


def test_mixed_workflow_exits_contact(client, anna, newsletter, order_confirmation, sent_newsletter, t0):
    workflow = Workflow.objects.create(name="Na aankoop", status=Workflow.Status.LIVE, trigger_event="order_placed")
    first = Step.objects.create(
        workflow=workflow, position=0, key="bevestiging", kind=Step.Kind.SEND_EMAIL, template=order_confirmation
    )
    Step.objects.create(workflow=workflow, position=1, key="wacht", kind=Step.Kind.WAIT, wait_days=3)
    Step.objects.create(workflow=workflow, position=2, key="aanbod", kind=Step.Kind.SEND_EMAIL, template=newsletter)
    enrollment = Enrollment.objects.create(workflow=workflow, contact=anna, step=first, visit=1, enrolled_at=t0, next_run_at=t0)

    client.post(unsubscribe_path(sent_newsletter), data=ONE_CLICK_BODY, content_type=FORM)

    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.EXITED


# Language of the pages: English when the browser requests it, Dutch otherwise.


def test_unsubscribe_page_in_english(client, anna, sent_newsletter):
    response = client.get(unsubscribe_path(sent_newsletter), HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")

    page = response.content.decode()
    assert '<html lang="en">' in page
    assert "<h1>Unsubscribe</h1>" in page


def test_unsubscribe_page_dutch_request(client, anna, sent_newsletter):
    response = client.get(unsubscribe_path(sent_newsletter), HTTP_ACCEPT_LANGUAGE="nl-NL,nl;q=0.9")

    page = response.content.decode()
    assert '<html lang="nl">' in page
    assert "<h1>Uitschrijven</h1>" in page


def test_unsubscribe_page_default_language_dutch(client, anna, sent_newsletter):
    response = client.get(unsubscribe_path(sent_newsletter))

    page = response.content.decode()
    assert '<html lang="nl">' in page
    assert "<h1>Uitschrijven</h1>" in page


def test_unsubscribed_page_in_english(client, anna, sent_newsletter):
    response = client.post(unsubscribe_path(sent_newsletter), HTTP_ACCEPT_LANGUAGE="en")

    page = response.content.decode()
    assert '<html lang="en">' in page
    assert "<h1>You are unsubscribed</h1>" in page
    assert "anna@example.com will receive no more marketing messages from us." in page


def test_unsubscribed_page_dutch_request(client, anna, sent_newsletter):
    response = client.post(unsubscribe_path(sent_newsletter), HTTP_ACCEPT_LANGUAGE="nl")

    page = response.content.decode()
    assert '<html lang="nl">' in page
    assert "<h1>Je bent uitgeschreven</h1>" in page
