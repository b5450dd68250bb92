"""Dispatch: rendering queued deliveries, headers, send-time checks, retries and claiming."""

import smtplib
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection

from campaigns import dispatch
from campaigns.models import Delivery, MessageTemplate, StepMetric
from contacts.consent import set_consent, suppress_email
from contacts.models import Channel, ConsentStatus, Contact
from workflows.models import Enrollment, SendingPolicy, Step, Workflow

HTML = "text/html"


class FailingBackend(BaseEmailBackend):
    """An SMTP server that hangs up on every message."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


class UnreachableBackend(BaseEmailBackend):
    """An SMTP server that cannot be reached at all."""

    def open(self):
        raise ConnectionRefusedError(111, "Connection refused")

    def send_messages(self, email_messages):
        raise AssertionError("send_messages called on a backend that never opened")


class RejectsEvaBackend(LocmemBackend):
    """Delivers everything except mail to eva@example.com, which the server rejects."""

    def send_messages(self, messages):
        for message in messages:
            if "eva@example.com" in message.to:
                raise smtplib.SMTPRecipientsRefused({"eva@example.com": (550, b"Mailbox unavailable")})
        return super().send_messages(messages)


class UnsubscribesEvaBackend(LocmemBackend):
    """Delivers, and while the first message goes out Eva unsubscribes on another device."""

    def send_messages(self, messages):
        eva = Contact.objects.get(email="eva@example.com")
        set_consent(eva, Channel.EMAIL, ConsentStatus.UNSUBSCRIBED, source="unsubscribe link")
        return super().send_messages(messages)


class SlowBackend(LocmemBackend):
    """Takes a little time per message, so two dispatchers running side by side overlap."""

    def send_messages(self, messages):
        time.sleep(0.01)
        return super().send_messages(messages)


@pytest.fixture
def eva(db) -> Contact:
    return Contact.objects.create(email="eva@example.com", first_name="Eva", email_consent=ConsentStatus.SUBSCRIBED)


@pytest.fixture
def newsletter(db) -> MessageTemplate:
    return MessageTemplate.objects.create(
        name="Nieuwsbrief november",
        subject='Hoi {{ first_name|default:"daar" }}, de winterjassen zijn binnen',
        preview_text="Nieuw binnen",
        body='Hoi {{ first_name|default:"daar" }},\n\nDe **winterjassen** zijn binnen.\n\n[Bekijk ze](https://shop.example.com/jassen?kleur=blauw&maat=m)',
        cta_text="Naar de winkel",
        cta_url="{{ shop_url }}",
    )


@pytest.fixture
def order_confirmation(db) -> MessageTemplate:
    return MessageTemplate.objects.create(
        name="Orderbevestiging",
        transactional=True,
        subject="Je bestelling is binnen",
        body='Hoi {{ first_name|default:"daar" }},\n\nWe hebben je bestelling ontvangen.',
    )


def queue(contact: Contact, template: MessageTemplate, now, **fields) -> Delivery:
    return Delivery.objects.create(
        contact=contact,
        template=template,
        channel=template.channel,
        transactional=template.transactional,
        status=Delivery.Status.QUEUED,
        next_attempt_at=now,
        created_at=now,
        **fields,
    )


def live_enrollment(contact: Contact, template: MessageTemplate, t0, *, status=Workflow.Status.LIVE) -> Enrollment:
    workflow = Workflow.objects.create(name=f"Welkom {contact.pk}", status=status, trigger_event="signed_up")
    step = Step.objects.create(workflow=workflow, position=0, key="mail-1", kind=Step.Kind.SEND_EMAIL, template=template)
    return Enrollment.objects.create(workflow=workflow, contact=contact, step=step, visit=1, enrolled_at=t0, next_run_at=None)


def html_of(message) -> str:
    return next(content for content, mimetype in message.alternatives if mimetype == HTML)


# Sending and rendering.


def test_dispatch_sends_queued_delivery(anna, newsletter, t0):
    delivery = queue(anna, newsletter, t0)

    handled = dispatch.dispatch_due(t0)

    assert handled == 1
    assert len(mail.outbox) == 1
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.sent_at == t0
    assert delivery.attempts == 1
    assert delivery.to_address == "anna@example.com"
    assert delivery.subject == "Hoi Anna, de winterjassen zijn binnen"
    assert delivery.message_id == f"<delivery.{delivery.pk}@127.0.0.1>"
    assert delivery.error == ""


def test_dispatch_message_envelope(anna, newsletter, t0):
    delivery = queue(anna, newsletter, t0)

    dispatch.dispatch_due(t0)

    message = mail.outbox[0]
    assert message.to == ["anna@example.com"]
    assert message.from_email == "Demo Shop <shop@example.com>"
    assert message.extra_headers["Message-ID"] == f"<delivery.{delivery.pk}@127.0.0.1>"


def test_dispatch_renders_text_and_html(anna, newsletter, t0):
    queue(anna, newsletter, t0)

    dispatch.dispatch_due(t0)

    message = mail.outbox[0]
    assert message.body.startswith("Hoi Anna,\n\nDe **winterjassen** zijn binnen.")
    assert "Naar de winkel: https://shop.example.com" in message.body
    assert "<strong>winterjassen</strong>" in html_of(message)


def test_dispatch_merge_tag_fallback(newsletter, t0):
    contact = Contact.objects.create(email="geen.naam@example.com", email_consent=ConsentStatus.SUBSCRIBED)
    queue(contact, newsletter, t0)

    dispatch.dispatch_due(t0)

    assert mail.outbox[0].subject == "Hoi daar, de winterjassen zijn binnen"
    assert "Hoi daar," in html_of(mail.outbox[0])


def test_dispatch_escapes_contact_html(newsletter, t0):
    contact = Contact.objects.create(
        email="mallory@example.com", first_name="<script>alert(1)</script>", email_consent=ConsentStatus.SUBSCRIBED
    )
    queue(contact, newsletter, t0)

    dispatch.dispatch_due(t0)

    page = html_of(mail.outbox[0])
    assert "<script>" not in page
    assert "Hoi &lt;script&gt;alert(1)&lt;/script&gt;," in page


def test_dispatch_tracks_links_and_opens(anna, newsletter, t0):
    queue(anna, newsletter, t0)

    dispatch.dispatch_due(t0)

    page = html_of(mail.outbox[0])
    assert 'href="http://127.0.0.1:8000/t/c/' in page
    assert 'src="http://127.0.0.1:8000/t/o/' in page
    assert "shop.example.com/jassen" not in page


# Unsubscribe headers.


def test_promotional_email_has_list_unsubscribe(anna, newsletter, t0, settings):
    settings.MKTAUTO_BASE_URL = "https://mail.shop.example.com"
    queue(anna, newsletter, t0)

    dispatch.dispatch_due(t0)

    headers = mail.outbox[0].extra_headers
    assert headers["List-Unsubscribe"].startswith("<https://mail.shop.example.com/u/")
    assert headers["List-Unsubscribe"].endswith("/>")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_list_unsubscribe_url_matches_footer(anna, newsletter, t0):
    queue(anna, newsletter, t0)

    dispatch.dispatch_due(t0)

    message = mail.outbox[0]
    url = message.extra_headers["List-Unsubscribe"].strip("<>")
    assert f'href="{url}"' in html_of(message)
    assert f"Uitschrijven: {url}" in message.body


def test_list_unsubscribe_adds_mailto_when_configured(anna, newsletter, t0, settings):
    settings.MKTAUTO_UNSUBSCRIBE_MAILTO = "afmelden@shop.example.com"
    queue(anna, newsletter, t0)

    dispatch.dispatch_due(t0)

    https_part, mailto_part = mail.outbox[0].extra_headers["List-Unsubscribe"].split(", ")
    assert https_part.startswith("<http://127.0.0.1:8000/u/")
    assert mailto_part.startswith("<mailto:afmelden@shop.example.com?subject=unsubscribe%20")
    assert mailto_part.endswith(">")


def test_list_unsubscribe_header_survives_serialisation(anna, newsletter, t0, settings):
    settings.MKTAUTO_UNSUBSCRIBE_MAILTO = "afmelden@shop.example.com"
    queue(anna, newsletter, t0)

    dispatch.dispatch_due(t0)

    parsed = mail.outbox[0].message()
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "mailto:afmelden@shop.example.com" in parsed["List-Unsubscribe"]


def test_transactional_email_has_no_unsubscribe(anna, order_confirmation, t0):
    queue(anna, order_confirmation, t0)

    dispatch.dispatch_due(t0)

    message = mail.outbox[0]
    assert "List-Unsubscribe" not in message.extra_headers
    assert "List-Unsubscribe-Post" not in message.extra_headers
    assert "/u/" not in html_of(message)
    assert "Unsubscribe" not in message.body


# Send-time checks.


def test_transactional_goes_without_consent(bram, order_confirmation, t0):
    delivery = queue(bram, order_confirmation, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert mail.outbox[0].to == ["bram@example.com"]


def test_promotional_without_consent_cancelled(bram, newsletter, t0):
    delivery = queue(bram, newsletter, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.error == "no email consent"
    assert mail.outbox == []


def test_unsubscribe_after_queueing_cancels(anna, newsletter, t0):
    delivery = queue(anna, newsletter, t0)

    set_consent(anna, Channel.EMAIL, ConsentStatus.UNSUBSCRIBED, source="unsubscribe link")
    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.error == "unsubscribed from email"
    assert mail.outbox == []


def test_consent_changed_without_signal_cancels(anna, newsletter, t0):
    delivery = queue(anna, newsletter, t0)

    Contact.objects.filter(pk=anna.pk).update(email_consent=ConsentStatus.UNSUBSCRIBED)
    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.error == "no email consent"


def test_unsubscribe_during_batch_cancels(anna, eva, newsletter, t0, settings):
    settings.EMAIL_BACKEND = "tests.test_dispatch.UnsubscribesEvaBackend"
    first = queue(anna, newsletter, t0)
    second = queue(eva, newsletter, t0)

    dispatch.dispatch_due(t0)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Delivery.Status.SENT
    assert second.status == Delivery.Status.CANCELLED
    assert second.error == "no email consent"
    assert [message.to for message in mail.outbox] == [["anna@example.com"]]


def test_suppressed_contact_gets_no_transactional(anna, order_confirmation, t0):
    delivery = queue(anna, order_confirmation, t0)

    suppress_email(anna, "hard bounce: 550 mailbox unavailable")
    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.error == "email suppressed"
    assert mail.outbox == []


def test_exited_enrollment_cancels_promotional(anna, newsletter, t0):
    enrollment = live_enrollment(anna, newsletter, t0)
    delivery = queue(anna, newsletter, t0, enrollment=enrollment, step=enrollment.step, visit=1)
    Enrollment.objects.filter(pk=enrollment.pk).update(state=Enrollment.State.EXITED)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.error == "enrollment exited"


def test_completed_enrollment_still_sends(anna, newsletter, t0):
    enrollment = live_enrollment(anna, newsletter, t0)
    delivery = queue(anna, newsletter, t0, enrollment=enrollment, step=enrollment.step, visit=1)
    Enrollment.objects.filter(pk=enrollment.pk).update(state=Enrollment.State.COMPLETED)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT


def test_exited_enrollment_sends_transactional(anna, order_confirmation, t0):
    enrollment = live_enrollment(anna, order_confirmation, t0)
    delivery = queue(anna, order_confirmation, t0, enrollment=enrollment, step=enrollment.step, visit=1)
    Enrollment.objects.filter(pk=enrollment.pk).update(state=Enrollment.State.EXITED)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT


def test_paused_workflow_holds_delivery(anna, newsletter, t0):
    enrollment = live_enrollment(anna, newsletter, t0, status=Workflow.Status.PAUSED)
    delivery = queue(anna, newsletter, t0, enrollment=enrollment, step=enrollment.step, visit=1)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.QUEUED
    assert delivery.next_attempt_at == t0 + dispatch.PAUSED_RECHECK
    assert delivery.attempts == 0
    assert mail.outbox == []


# The send window: quiet hours in the contact's time zone also hold a message at send time.

# 20:59 in Amsterdam, a minute before the default quiet hours (21:00-08:00) begin.
EVENING = datetime(2026, 11, 2, 19, 59, tzinfo=UTC)
NEXT_MORNING = datetime(2026, 11, 3, 7, 0, tzinfo=UTC)


def test_retry_inside_quiet_hours_waits_for_morning(anna, newsletter, settings):
    settings.EMAIL_BACKEND = "tests.test_dispatch.FailingBackend"
    delivery = queue(anna, newsletter, EVENING)
    dispatch.dispatch_due(EVENING)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    dispatch.dispatch_due(EVENING + timedelta(minutes=2))

    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at, len(mail.outbox)) == (Delivery.Status.QUEUED, NEXT_MORNING, 0)
    dispatch.dispatch_due(NEXT_MORNING)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.sent_at, len(mail.outbox)) == (Delivery.Status.SENT, NEXT_MORNING, 1)


def test_send_window_uses_contact_time_zone(newsletter, t0):
    eva = Contact.objects.create(email="eva@example.com", email_consent=ConsentStatus.SUBSCRIBED, time_zone="America/New_York")
    delivery = queue(eva, newsletter, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    # 04:00 in New York; quiet hours end at 08:00 there.
    assert delivery.next_attempt_at == datetime(2026, 11, 2, 13, 0, tzinfo=UTC)
    assert mail.outbox == []


def test_transactional_goes_inside_quiet_hours(anna, order_confirmation):
    delivery = queue(anna, order_confirmation, EVENING + timedelta(hours=2))

    dispatch.dispatch_due(EVENING + timedelta(hours=2))

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT


def test_no_quiet_hours_sends_at_night(anna, newsletter):
    SendingPolicy.objects.update_or_create(
        pk=SendingPolicy.load().pk, defaults={"quiet_hours_start": None, "quiet_hours_end": None}
    )
    delivery = queue(anna, newsletter, EVENING + timedelta(hours=2))

    dispatch.dispatch_due(EVENING + timedelta(hours=2))

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT


def test_archived_workflow_cancels_delivery(anna, newsletter, t0):
    enrollment = live_enrollment(anna, newsletter, t0, status=Workflow.Status.ARCHIVED)
    delivery = queue(anna, newsletter, t0, enrollment=enrollment, step=enrollment.step, visit=1)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.error == "workflow archived"


def test_dispatch_counts_step_metric(anna, newsletter, t0):
    enrollment = live_enrollment(anna, newsletter, t0)
    queue(anna, newsletter, t0, enrollment=enrollment, step=enrollment.step, visit=1)

    dispatch.dispatch_due(t0)

    metric = StepMetric.objects.get(step=enrollment.step, day=t0.date())
    assert metric.sent == 1


def test_dispatch_uses_trigger_data(anna, t0):
    template = MessageTemplate.objects.create(
        name="Winkelwagen",
        subject="Vergeten?",
        body="Je liet {{ trigger.title }} achter.",
        cta_text="Afrekenen",
        cta_url="{{ trigger.url }}",
    )
    enrollment = live_enrollment(anna, template, t0)
    Enrollment.objects.filter(pk=enrollment.pk).update(
        context={"title": "Linnen schort", "url": "https://shop.example.com/cart/c1"}
    )
    queue(anna, template, t0, enrollment=enrollment, step=enrollment.step, visit=1)

    dispatch.dispatch_due(t0)

    assert "Je liet Linnen schort achter." in mail.outbox[0].body
    assert "Afrekenen: https://shop.example.com/cart/c1" in mail.outbox[0].body


def test_not_yet_due_delivery_waits(anna, newsletter, t0):
    delivery = queue(anna, newsletter, t0 + timedelta(minutes=5))

    handled = dispatch.dispatch_due(t0)

    assert handled == 0
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.QUEUED


# Failures and retries.


def test_failing_backend_retried_with_backoff(anna, newsletter, t0, settings):
    settings.EMAIL_BACKEND = "tests.test_dispatch.FailingBackend"
    delivery = queue(anna, newsletter, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.QUEUED
    assert delivery.attempts == 1
    assert delivery.next_attempt_at == t0 + timedelta(minutes=2)
    assert delivery.error == "SMTPServerDisconnected: Connection unexpectedly closed"


def test_retry_delay_doubles_each_attempt(anna, newsletter, t0, settings):
    settings.EMAIL_BACKEND = "tests.test_dispatch.FailingBackend"
    delivery = queue(anna, newsletter, t0)
    now = t0
    gaps = []

    for _ in range(3):
        dispatch.dispatch_due(now)
        delivery.refresh_from_db()
        gaps.append(delivery.next_attempt_at - now)
        now = delivery.next_attempt_at

    assert gaps == [timedelta(minutes=2), timedelta(minutes=4), timedelta(minutes=8)]


def test_retry_not_sent_before_due(anna, newsletter, t0, settings):
    settings.EMAIL_BACKEND = "tests.test_dispatch.FailingBackend"
    queue(anna, newsletter, t0)
    dispatch.dispatch_due(t0)

    handled = dispatch.dispatch_due(t0 + timedelta(minutes=1))

    assert handled == 0


def test_failing_backend_fails_after_max_attempts(anna, newsletter, t0, settings):
    settings.EMAIL_BACKEND = "tests.test_dispatch.FailingBackend"
    settings.MKTAUTO_SEND_MAX_ATTEMPTS = 3
    enrollment = live_enrollment(anna, newsletter, t0)
    delivery = queue(anna, newsletter, t0, enrollment=enrollment, step=enrollment.step, visit=1)
    now = t0

    for _ in range(3):
        dispatch.dispatch_due(now)
        delivery.refresh_from_db()
        now = delivery.next_attempt_at

    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempts == 3
    assert delivery.error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert StepMetric.objects.get(step=enrollment.step).failed == 1


def test_failed_delivery_not_retried(anna, newsletter, t0, settings):
    settings.EMAIL_BACKEND = "tests.test_dispatch.FailingBackend"
    settings.MKTAUTO_SEND_MAX_ATTEMPTS = 1
    queue(anna, newsletter, t0)
    dispatch.dispatch_due(t0)

    handled = dispatch.dispatch_all(t0 + timedelta(days=1))

    assert handled == 0


def test_one_failure_does_not_stop_batch(anna, eva, newsletter, t0, settings):
    settings.EMAIL_BACKEND = "tests.test_dispatch.RejectsEvaBackend"
    dirk = Contact.objects.create(email="dirk@example.com", email_consent=ConsentStatus.SUBSCRIBED)
    first, failing, last = queue(anna, newsletter, t0), queue(eva, newsletter, t0), queue(dirk, newsletter, t0)

    handled = dispatch.dispatch_due(t0)

    assert handled == 3
    assert sorted(message.to[0] for message in mail.outbox) == ["anna@example.com", "dirk@example.com"]
    for delivery in (first, failing, last):
        delivery.refresh_from_db()
    assert first.status == Delivery.Status.SENT
    assert last.status == Delivery.Status.SENT
    assert failing.status == Delivery.Status.QUEUED
    assert failing.error.startswith("SMTPRecipientsRefused: ")


def test_render_error_fails_without_retry(anna, eva, newsletter, t0):
    broken = MessageTemplate.objects.create(name="Kapot", subject="Hoi", body="Hoi {% if first_name %}{{ first_name }}")
    bad = queue(eva, broken, t0)
    good = queue(anna, newsletter, t0)

    dispatch.dispatch_due(t0)

    bad.refresh_from_db()
    good.refresh_from_db()
    assert bad.status == Delivery.Status.FAILED
    assert bad.attempts == 1
    assert "merge tag error" in bad.error
    assert good.status == Delivery.Status.SENT


def test_unsafe_link_fails_delivery(anna, t0):
    template = MessageTemplate.objects.create(name="Link", subject="Hoi", body="[Klik](javascript:alert(1))")
    delivery = queue(anna, template, t0)

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert "'javascript:alert(1)' is not an absolute http(s)" in delivery.error
    assert mail.outbox == []


def test_unexpected_error_does_not_stop_batch(anna, eva, newsletter, t0, monkeypatch):
    original = dispatch.build_message

    def build_or_crash(delivery, conn):
        if delivery.contact.email == "eva@example.com":
            raise KeyError("layout")
        return original(delivery, conn)

    monkeypatch.setattr(dispatch, "build_message", build_or_crash)
    crashing, sending = queue(eva, newsletter, t0), queue(anna, newsletter, t0)

    dispatch.dispatch_due(t0)

    crashing.refresh_from_db()
    sending.refresh_from_db()
    assert crashing.status == Delivery.Status.QUEUED
    assert crashing.error == "KeyError: 'layout'"
    assert sending.status == Delivery.Status.SENT


def test_unreachable_backend_retries_batch(anna, eva, newsletter, t0, settings):
    settings.EMAIL_BACKEND = "tests.test_dispatch.UnreachableBackend"
    deliveries = [queue(anna, newsletter, t0), queue(eva, newsletter, t0)]

    handled = dispatch.dispatch_due(t0)

    assert handled == 2
    for delivery in deliveries:
        delivery.refresh_from_db()
        assert delivery.status == Delivery.Status.QUEUED
        assert delivery.attempts == 1
        assert delivery.error == "ConnectionRefusedError: [Errno 111] Connection refused"


# Claiming: a delivery is sent once, however many dispatchers run.


def test_second_dispatch_sends_nothing(anna, newsletter, t0):
    queue(anna, newsletter, t0)

    dispatch.dispatch_due(t0)
    handled = dispatch.dispatch_due(t0)

    assert handled == 0
    assert len(mail.outbox) == 1


def test_claim_by_two_dispatchers_wins_once(anna, newsletter, t0):
    delivery = queue(anna, newsletter, t0)
    seen_by_first = dispatch.due_ids(t0, 10)
    seen_by_second = dispatch.due_ids(t0, 10)

    claimed_by_first = dispatch.claim(seen_by_first, t0)
    claimed_by_second = dispatch.claim(seen_by_second, t0)

    assert claimed_by_first == [delivery.pk]
    assert claimed_by_second == []


def test_interleaved_dispatchers_send_once(anna, newsletter, t0, monkeypatch):
    delivery = queue(anna, newsletter, t0)
    ids_read_before_first_claim = dispatch.due_ids(t0, 10)
    first_batch = dispatch.claim_batch(t0, 10)

    monkeypatch.setattr(dispatch, "due_ids", lambda now, limit: ids_read_before_first_claim)
    handled_by_second = dispatch.dispatch_due(t0)
    monkeypatch.undo()
    metrics = dispatch.MetricBatch()
    conn = mail.get_connection()
    for claimed in first_batch:
        dispatch.send_one(claimed, conn, t0, metrics)

    assert handled_by_second == 0
    assert len(mail.outbox) == 1
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT


def test_stale_sending_queued_again(anna, newsletter, t0):
    delivery = queue(anna, newsletter, t0)
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.SENDING, next_attempt_at=t0 - timedelta(minutes=16))

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.attempts == 2


def test_recent_sending_left_alone(anna, newsletter, t0):
    delivery = queue(anna, newsletter, t0)
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.SENDING, next_attempt_at=t0 - timedelta(minutes=5))

    handled = dispatch.dispatch_due(t0)

    assert handled == 0
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENDING


def test_stale_sending_on_last_attempt_fails(anna, newsletter, t0, settings):
    settings.MKTAUTO_SEND_MAX_ATTEMPTS = 3
    delivery = queue(anna, newsletter, t0)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENDING, attempts=2, next_attempt_at=t0 - timedelta(minutes=16)
    )

    dispatch.dispatch_due(t0)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempts == 3
    assert delivery.error == "the dispatcher stopped while sending, on every attempt"
    assert mail.outbox == []


def test_batch_limit_respected(anna, eva, newsletter, t0):
    queue(anna, newsletter, t0)
    queue(eva, newsletter, t0)

    handled = dispatch.dispatch_due(t0, limit=1)

    assert handled == 1
    assert len(mail.outbox) == 1


def test_dispatch_all_drains_batches(anna, eva, newsletter, t0, settings):
    settings.MKTAUTO_DISPATCH_BATCH_SIZE = 1
    queue(anna, newsletter, t0)
    queue(eva, newsletter, t0)

    handled = dispatch.dispatch_all(t0)

    assert handled == 2
    assert len(mail.outbox) == 2


@pytest.mark.django_db(transaction=True)
def test_parallel_dispatchers_send_each_once(t0, settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite's in-memory test database is not shared safely between threads")
    settings.EMAIL_BACKEND = "tests.test_dispatch.SlowBackend"
    settings.MKTAUTO_DISPATCH_BATCH_SIZE = 3
    template = MessageTemplate.objects.create(name="Nieuwsbrief", subject="Hoi", body="Hoi {{ first_name }}")
    for number in range(30):
        contact = Contact.objects.create(email=f"klant{number}@example.com", email_consent=ConsentStatus.SUBSCRIBED)
        queue(contact, template, t0)

    handled = []

    def run_dispatcher():
        try:
            handled.append(dispatch.dispatch_all(t0))
        finally:
            connection.close()

    threads = [threading.Thread(target=run_dispatcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    recipients = [message.to[0] for message in mail.outbox]
    assert sum(handled) == 30
    assert len(recipients) == 30
    assert len(set(recipients)) == 30
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 30
