"""The preference page behind the unsubscribe link, and double opt-in for email sign-ups."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail, signing
from django.test import Client

from campaigns import confirmation, tracking
from campaigns.dispatch import dispatch_due
from campaigns.models import Delivery, MessageTemplate, StepMetric
from campaigns.receivers import request_confirmation_on_sign_up
from contacts.consent import suppress_email
from contacts.models import ConsentRecord, ConsentStatus, Contact
from workflows.models import Enrollment, Step, Workflow

ENGLISH = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture
def eva(db) -> Contact:
    """Subscribed to email and SMS, has a phone, never asked about WhatsApp."""
    return Contact.objects.create(
        email="eva@example.com",
        phone="+31611223344",
        first_name="Eva",
        email_consent=ConsentStatus.SUBSCRIBED,
        sms_consent=ConsentStatus.SUBSCRIBED,
    )


@pytest.fixture
def newsletter(db) -> MessageTemplate:
    return MessageTemplate.objects.create(name="Nieuwsbrief", subject="Nieuw binnen", body="Hoi {{ first_name }}")


@pytest.fixture
def sent(eva, newsletter, t0) -> Delivery:
    workflow = Workflow.objects.create(name="Welkom", status=Workflow.Status.LIVE, trigger_event="signed_up")
    step = Step.objects.create(workflow=workflow, position=0, key="mail-1", kind=Step.Kind.SEND_EMAIL, template=newsletter)
    enrollment = Enrollment.objects.create(workflow=workflow, contact=eva, step=step, visit=1, enrolled_at=t0)
    return Delivery.objects.create(
        contact=eva,
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


def preferences_path(delivery: Delivery) -> str:
    return path_of(tracking.preferences_url(delivery))


def consent(contact: Contact) -> tuple[str, str, str]:
    contact.refresh_from_db()
    return contact.email_consent, contact.sms_consent, contact.whatsapp_consent


# The page.


def test_unsubscribe_page_links_to_preferences(client, sent):
    unsubscribe_path = path_of(tracking.unsubscribe_url(sent))
    page = client.get(unsubscribe_path, **ENGLISH).content.decode()

    link = f"{unsubscribe_path}preferences/"
    assert f'href="{link}"' in page
    assert "<h1>Your preferences</h1>" in client.get(link, **ENGLISH).content.decode()


def test_preference_page_shows_channels(client, sent):
    response = client.get(preferences_path(sent), **ENGLISH)

    page = response.content.decode()
    assert response.status_code == 200
    assert '<input type="checkbox" name="channel" value="email" checked>' in page
    assert '<input type="checkbox" name="channel" value="sms" checked>' in page
    assert '<input type="checkbox" name="channel" value="whatsapp">' in page


def test_preference_page_get_changes_nothing(client, eva, sent):
    client.get(preferences_path(sent))

    assert ConsentRecord.objects.count() == 0


def test_channel_without_phone_disabled(client, anna, newsletter, t0):
    delivery = Delivery.objects.create(contact=anna, template=newsletter, channel="email", status=Delivery.Status.SENT)

    page = client.get(preferences_path(delivery), **ENGLISH).content.decode()

    assert '<input type="checkbox" name="channel" value="sms" disabled>' in page
    assert "We have no phone number for you." in page


def test_save_keeps_email_drops_sms_adds_whatsapp(client, eva, sent):
    response = client.post(preferences_path(sent), {"channel": ["email", "whatsapp"], "save": ""}, **ENGLISH)

    assert response.status_code == 200
    assert "Your choices are saved." in response.content.decode()
    assert consent(eva) == (ConsentStatus.SUBSCRIBED, ConsentStatus.UNSUBSCRIBED, ConsentStatus.SUBSCRIBED)


def test_each_change_recorded_with_proof(client, eva, sent):
    client.post(preferences_path(sent), {"channel": ["email", "whatsapp"]}, HTTP_USER_AGENT="Mozilla/5.0 (Android)")

    records = {record.channel: record for record in ConsentRecord.objects.all()}
    assert sorted(records) == ["sms", "whatsapp"]
    assert records["whatsapp"].status == ConsentStatus.SUBSCRIBED
    assert records["whatsapp"].source == "preference page"
    assert records["whatsapp"].proof == (
        f"preference page POST from 127.0.0.1, user agent 'Mozilla/5.0 (Android)', delivery {sent.pk}, link email"
    )
    assert records["sms"].status == ConsentStatus.UNSUBSCRIBED


def test_untouched_unknown_channel_left_unknown(client, eva, sent):
    client.post(preferences_path(sent), {"channel": ["email", "sms"]})

    assert consent(eva) == (ConsentStatus.SUBSCRIBED, ConsentStatus.SUBSCRIBED, ConsentStatus.UNKNOWN)
    assert ConsentRecord.objects.count() == 0


def test_dropping_email_marks_delivery(client, eva, sent, t0):
    client.post(preferences_path(sent), {"channel": ["sms"]})

    sent.refresh_from_db()
    assert sent.unsubscribed_at is not None
    assert StepMetric.objects.get(step=sent.step).unsubscribed == 1
    assert consent(eva)[0] == ConsentStatus.UNSUBSCRIBED


def test_dropping_email_exits_promotional_workflow(client, eva, sent):
    client.post(preferences_path(sent), {"channel": ["sms"]})

    assert Enrollment.objects.get(contact=eva).state == Enrollment.State.EXITED


def test_leave_everything(client, eva, sent):
    response = client.post(preferences_path(sent), {"channel": ["email"], "leave": ""}, **ENGLISH)

    assert response.status_code == 200
    assert consent(eva) == (ConsentStatus.UNSUBSCRIBED, ConsentStatus.UNSUBSCRIBED, ConsentStatus.UNSUBSCRIBED)
    assert ConsentRecord.objects.filter(status=ConsentStatus.UNSUBSCRIBED).count() == 3


def test_suppressed_email_cannot_be_ticked(client, eva, sent):
    suppress_email(eva, "hard bounce")

    client.post(preferences_path(sent), {"channel": ["email", "sms"]})

    eva.refresh_from_db()
    assert eva.email_suppressed_at is not None
    assert not ConsentRecord.objects.filter(channel="email", status=ConsentStatus.SUBSCRIBED).exists()


def test_unknown_channel_value_ignored(client, eva, sent):
    response = client.post(preferences_path(sent), {"channel": ["email", "sms", "pigeon"]})

    assert response.status_code == 200
    assert ConsentRecord.objects.count() == 0


def test_preferences_post_without_csrf_token(eva, sent):
    csrf_client = Client(enforce_csrf_checks=True)

    response = csrf_client.post(preferences_path(sent), {"channel": ["email"]})

    assert response.status_code == 200
    assert consent(eva)[1] == ConsentStatus.UNSUBSCRIBED


def test_tampered_preferences_token_not_found(client, eva, sent):
    path = preferences_path(sent)
    token = path.split("/")[2]
    tampered = path.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))

    assert client.get(tampered).status_code == 404
    assert client.post(tampered, {"leave": ""}).status_code == 404
    assert consent(eva)[0] == ConsentStatus.SUBSCRIBED


def test_email_footer_links_to_preferences(eva, newsletter, t0):
    Delivery.objects.create(contact=eva, template=newsletter, channel="email", status=Delivery.Status.QUEUED, next_attempt_at=t0)

    dispatch_due(t0)

    html = mail.outbox[0].alternatives[0][0]
    assert re.search(r'href="http://127\.0\.0\.1:8000/u/[^"]+/preferences/"', html)


# Double opt-in.


@pytest.fixture
def newcomer(db) -> Contact:
    return Contact.objects.create(email="nieuw@example.com", first_name="Noor")


def confirmation_link(message) -> str:
    match = re.search(r"http://127\.0\.0\.1:8000(/confirm/[^/\s\"]+/)", message.body)
    assert match is not None, message.body
    return match.group(1)


def test_request_confirmation_sets_pending(newcomer, t0):
    delivery = confirmation.request_confirmation(newcomer, source="api", proof="event api:42", at=t0)

    assert consent(newcomer)[0] == ConsentStatus.PENDING
    record = ConsentRecord.objects.get()
    assert record.status == ConsentStatus.PENDING
    assert record.proof == "event api:42"
    assert delivery.status == Delivery.Status.QUEUED
    assert delivery.transactional is True
    assert delivery.template.purpose == MessageTemplate.Purpose.CONFIRMATION


def test_request_confirmation_queues_once(newcomer, t0):
    confirmation.request_confirmation(newcomer, at=t0)

    second = confirmation.request_confirmation(newcomer, at=t0 + timedelta(minutes=1))

    assert second is None
    assert Delivery.objects.filter(contact=newcomer).count() == 1


def test_subscribed_contact_needs_no_confirmation(anna, t0):
    assert confirmation.request_confirmation(anna, at=t0) is None
    assert Delivery.objects.count() == 0


def test_confirmation_email_sent_with_link(newcomer, t0):
    confirmation.request_confirmation(newcomer, at=t0)

    dispatch_due(t0)

    message = mail.outbox[0]
    assert message.to == ["nieuw@example.com"]
    assert "List-Unsubscribe" not in message.extra_headers
    assert confirmation_link(message).startswith("/confirm/")
    assert "/t/c/" not in message.alternatives[0][0]


def test_confirm_get_shows_button_only(client, newcomer, t0):
    confirmation.request_confirmation(newcomer, at=t0)
    dispatch_due(t0)

    response = client.get(confirmation_link(mail.outbox[0]), **ENGLISH)

    assert response.status_code == 200
    assert '<form method="post"><button type="submit">Yes, subscribe me</button></form>' in response.content.decode()
    assert consent(newcomer)[0] == ConsentStatus.PENDING


def test_confirm_post_subscribes_with_proof(client, newcomer, t0):
    confirmation.request_confirmation(newcomer, at=t0)
    dispatch_due(t0)

    response = client.post(confirmation_link(mail.outbox[0]), HTTP_USER_AGENT="Mozilla/5.0 (Mac)", **ENGLISH)

    assert "Subscription confirmed" in response.content.decode()
    assert consent(newcomer)[0] == ConsentStatus.SUBSCRIBED
    record = ConsentRecord.objects.filter(status=ConsentStatus.SUBSCRIBED).get()
    assert record.source == "double opt-in"
    assert record.proof == "confirmation page POST from 127.0.0.1, user agent 'Mozilla/5.0 (Mac)'"


def test_confirm_twice_records_once(client, newcomer, t0):
    confirmation.request_confirmation(newcomer, at=t0)
    dispatch_due(t0)
    link = confirmation_link(mail.outbox[0])

    client.post(link)
    response = client.post(link)

    assert response.status_code == 200
    assert ConsentRecord.objects.filter(status=ConsentStatus.SUBSCRIBED).count() == 1


def test_confirm_after_unsubscribe_rejected(client, newcomer, t0):
    confirmation.request_confirmation(newcomer, at=t0)
    dispatch_due(t0)
    Contact.objects.filter(pk=newcomer.pk).update(email_consent=ConsentStatus.UNSUBSCRIBED)

    response = client.post(confirmation_link(mail.outbox[0]))

    assert response.status_code == 404
    assert consent(newcomer)[0] == ConsentStatus.UNSUBSCRIBED


def test_expired_confirmation_rejected(client, newcomer, t0, settings):
    settings.MKTAUTO_CONFIRMATION_MAX_AGE_DAYS = 7
    with time_machine.travel(t0, tick=False):
        token = confirmation.confirmation_token(newcomer)
    confirmation.request_confirmation(newcomer, at=t0)

    with time_machine.travel(t0 + timedelta(days=8), tick=False):
        response = client.post(f"/confirm/{token}/")

    assert response.status_code == 404
    assert consent(newcomer)[0] == ConsentStatus.PENDING


def test_confirmation_for_old_address_rejected(client, newcomer, t0):
    confirmation.request_confirmation(newcomer, at=t0)
    token = confirmation.confirmation_token(newcomer)
    Contact.objects.filter(pk=newcomer.pk).update(email="ander@example.com")

    assert client.post(f"/confirm/{token}/").status_code == 404


def test_forged_confirmation_rejected(client, newcomer):
    forged = signing.dumps([newcomer.pk, newcomer.email], salt="mktauto.confirm", key="another-installation")

    assert client.post(f"/confirm/{forged}/").status_code == 404


def test_confirmation_cancelled_when_already_subscribed(newcomer, t0):
    delivery = confirmation.request_confirmation(newcomer, at=t0)
    Contact.objects.filter(pk=newcomer.pk).update(email_consent=ConsentStatus.SUBSCRIBED)

    dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.error == "email consent is no longer waiting for confirmation"


def test_own_confirmation_template_used(newcomer, t0):
    MessageTemplate.objects.create(
        name="Bevestig",
        purpose=MessageTemplate.Purpose.CONFIRMATION,
        transactional=True,
        subject="Bevestig je inschrijving",
        body="Klik hier: {{ confirmation_url }}",
    )
    confirmation.request_confirmation(newcomer, at=t0)

    dispatch_due(t0)

    assert mail.outbox[0].subject == "Bevestig je inschrijving"
    assert confirmation_link(mail.outbox[0]).startswith("/confirm/")


def test_preferences_email_from_sms_link_needs_confirmation(client, db, t0, settings):
    settings.MKTAUTO_DOUBLE_OPT_IN = True
    sms_contact = Contact.objects.create(email="sms@example.com", phone="+31699887766", sms_consent=ConsentStatus.SUBSCRIBED)
    template = MessageTemplate.objects.create(name="Sms", channel="sms", body="Hoi")
    delivery = Delivery.objects.create(contact=sms_contact, template=template, channel="sms", status=Delivery.Status.SENT)

    client.post(preferences_path(delivery), {"channel": ["email", "sms"]})

    assert consent(sms_contact)[0] == ConsentStatus.PENDING
    assert Delivery.objects.filter(contact=sms_contact, template__purpose=MessageTemplate.Purpose.CONFIRMATION).count() == 1


def test_sign_up_receiver_requests_confirmation(newcomer, t0):
    request_confirmation_on_sign_up(sender=Contact, contact=newcomer, source="api", proof="event api:sign-up-1", at=t0)

    assert consent(newcomer)[0] == ConsentStatus.PENDING
    assert Delivery.objects.get(contact=newcomer).template.purpose == MessageTemplate.Purpose.CONFIRMATION


def test_signup_event_asks_confirmation_with_double_opt_in(settings, send_event, t0):
    from django.core import mail

    from contacts.models import ConsentStatus, Contact
    from workflows.engine.tick import tick

    settings.MKTAUTO_DOUBLE_OPT_IN = True
    send_event("signed_up", "nieuw@example.com", t0, accepts_marketing=True)

    tick(t0)

    contact = Contact.objects.get(email="nieuw@example.com")
    assert contact.email_consent == ConsentStatus.PENDING
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["nieuw@example.com"]
