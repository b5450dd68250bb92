"""Consent changes: set_consent, suppression, and consent and profile facts taken from events."""

from datetime import timedelta

import pytest

from campaigns.models import Delivery, MessageTemplate
from contacts.consent import consent_withdrawn, set_consent, suppress_email
from contacts.ingest import parse_event, store_events
from contacts.models import Channel, ConsentRecord, ConsentStatus, Contact, Event
from workflows.engine.tick import tick


@pytest.fixture
def withdrawals():
    received = []

    def receiver(sender, contact_ids, channel, at, **kwargs):
        received.append((contact_ids, channel, at))

    consent_withdrawn.connect(receiver, dispatch_uid="tests.test_consent.withdrawals")
    yield received
    consent_withdrawn.disconnect(dispatch_uid="tests.test_consent.withdrawals")


@pytest.fixture
def newsletter(db) -> MessageTemplate:
    return MessageTemplate.objects.create(name="Nieuwsbrief", subject="Nieuw", body="Hoi")


def store(now, *events: dict) -> None:
    store_events([parse_event(event, now=now) for event in events], Event.Source.API, now=now)


# set_consent.


def test_set_consent_records_change(bram, t0):
    changed = set_consent(bram, Channel.EMAIL, ConsentStatus.SUBSCRIBED, source="admin", proof="form by marieke", at=t0)

    assert changed is True
    bram.refresh_from_db()
    assert bram.email_consent == ConsentStatus.SUBSCRIBED
    record = ConsentRecord.objects.get()
    assert (record.channel, record.status, record.source, record.proof, record.occurred_at) == (
        "email",
        "subscribed",
        "admin",
        "form by marieke",
        t0,
    )


def test_set_consent_same_status_unchanged(anna):
    changed = set_consent(anna, Channel.EMAIL, ConsentStatus.SUBSCRIBED, source="admin")

    assert changed is False
    assert ConsentRecord.objects.count() == 0


def test_set_consent_stale_copy_unchanged(anna, withdrawals):
    stale = Contact.objects.get(pk=anna.pk)
    set_consent(anna, Channel.EMAIL, ConsentStatus.UNSUBSCRIBED, source="unsubscribe link")

    changed = set_consent(stale, Channel.EMAIL, ConsentStatus.UNSUBSCRIBED, source="api")

    assert changed is False
    assert ConsentRecord.objects.count() == 1
    assert len(withdrawals) == 1
    assert stale.email_consent == ConsentStatus.UNSUBSCRIBED


def test_set_consent_sms_channel(anna):
    set_consent(anna, Channel.SMS, ConsentStatus.SUBSCRIBED, source="import")

    anna.refresh_from_db()
    assert anna.sms_consent == ConsentStatus.SUBSCRIBED
    assert anna.email_consent == ConsentStatus.SUBSCRIBED


def test_set_consent_unknown_channel_raises(anna):
    with pytest.raises(ValueError, match="'fax'"):
        set_consent(anna, "fax", ConsentStatus.UNSUBSCRIBED, source="api")


def test_set_consent_unknown_status_raises(anna):
    with pytest.raises(ValueError, match="'maybe'"):
        set_consent(anna, Channel.EMAIL, "maybe", source="api")


def test_unsubscribe_signals_withdrawal(anna, withdrawals, t0):
    set_consent(anna, Channel.EMAIL, ConsentStatus.UNSUBSCRIBED, source="api", at=t0)

    assert withdrawals == [([anna.pk], "email", t0)]


def test_subscribe_sends_no_withdrawal(bram, withdrawals):
    set_consent(bram, Channel.EMAIL, ConsentStatus.SUBSCRIBED, source="api")

    assert withdrawals == []


def test_unsubscribe_cancels_queued_promotional(anna, newsletter, t0):
    queued = Delivery.objects.create(contact=anna, template=newsletter, channel="email", next_attempt_at=t0)

    set_consent(anna, Channel.EMAIL, ConsentStatus.UNSUBSCRIBED, source="api")

    queued.refresh_from_db()
    assert queued.status == Delivery.Status.CANCELLED


def test_sms_unsubscribe_keeps_email_delivery(anna, newsletter, t0):
    queued = Delivery.objects.create(contact=anna, template=newsletter, channel="email", next_attempt_at=t0)

    set_consent(anna, Channel.SMS, ConsentStatus.UNSUBSCRIBED, source="api")

    queued.refresh_from_db()
    assert queued.status == Delivery.Status.QUEUED


# suppress_email.


def test_suppress_email_sets_reason(anna, t0):
    suppressed = suppress_email(anna, "hard bounce: 550 5.1.1 user unknown", at=t0)

    assert suppressed is True
    anna.refresh_from_db()
    assert anna.email_suppressed_at == t0
    assert anna.email_suppressed_reason == "hard bounce: 550 5.1.1 user unknown"


def test_suppress_email_twice_keeps_first(anna, t0, withdrawals):
    suppress_email(anna, "hard bounce", at=t0)

    suppressed = suppress_email(Contact.objects.get(pk=anna.pk), "complaint", at=t0 + timedelta(hours=1))

    assert suppressed is False
    anna.refresh_from_db()
    assert anna.email_suppressed_reason == "hard bounce"
    assert len(withdrawals) == 1


def test_suppress_email_cancels_queued_promotional(anna, newsletter, t0):
    queued = Delivery.objects.create(contact=anna, template=newsletter, channel="email", next_attempt_at=t0)

    suppress_email(anna, "complaint")

    queued.refresh_from_db()
    assert queued.status == Delivery.Status.CANCELLED


# Consent and profile from events, applied when the inbox processes them.


def test_signup_with_marketing_subscribes(db, t0):
    store(t0, {"id": "s-1", "type": "signed_up", "email": "dirk@example.com", "properties": {"accepts_marketing": True}})

    tick(now=t0)

    dirk = Contact.objects.get(email="dirk@example.com")
    assert dirk.email_consent == ConsentStatus.SUBSCRIBED
    record = dirk.consent_records.get()
    assert record.source == "api"
    assert record.proof == "event api:s-1"


@pytest.mark.parametrize("answer", ["yes", "TRUE", "1", 1, "subscribed"])
def test_signup_marketing_answer_variants(db, t0, answer):
    store(t0, {"type": "signed_up", "email": "dirk@example.com", "properties": {"accepts_marketing": answer}})

    tick(now=t0)

    assert Contact.objects.get(email="dirk@example.com").email_consent == ConsentStatus.SUBSCRIBED


@pytest.mark.parametrize("answer", [False, "no", "false", 0, None, {"value": True}])
def test_signup_without_marketing_unchanged(db, t0, answer):
    store(t0, {"type": "signed_up", "email": "dirk@example.com", "properties": {"accepts_marketing": answer}})

    tick(now=t0)

    assert Contact.objects.get(email="dirk@example.com").email_consent == ConsentStatus.UNKNOWN


def test_subscribed_event_for_sms_needs_phone(anna, t0):
    store(t0, {"type": "subscribed", "email": "anna@example.com", "properties": {"channel": "sms"}})

    tick(now=t0)

    anna.refresh_from_db()
    assert anna.sms_consent == ConsentStatus.UNKNOWN


def test_subscribed_event_for_sms_with_phone(db, t0):
    store(t0, {"type": "subscribed", "phone": "+31612345678", "properties": {"channel": "sms"}})

    tick(now=t0)

    contact = Contact.objects.get(phone="+31612345678")
    assert contact.sms_consent == ConsentStatus.SUBSCRIBED
    assert contact.email_consent == ConsentStatus.UNKNOWN


def test_unsubscribed_event_unsubscribes(anna, t0):
    store(t0, {"type": "unsubscribed", "email": "anna@example.com"})

    tick(now=t0)

    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.UNSUBSCRIBED


def test_unknown_channel_event_ignored(anna, t0):
    store(t0, {"type": "unsubscribed", "email": "anna@example.com", "properties": {"channel": "pigeon"}})

    tick(now=t0)

    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.SUBSCRIBED


def test_last_event_in_batch_wins(chris, t0):
    store(
        t0,
        {"id": "c-1", "type": "subscribed", "email": "chris@example.com", "occurred_at": "2026-11-02T08:50:00Z"},
        {"id": "c-2", "type": "unsubscribed", "email": "chris@example.com", "occurred_at": "2026-11-02T08:55:00Z"},
    )

    tick(now=t0)

    chris.refresh_from_db()
    assert chris.email_consent == ConsentStatus.UNSUBSCRIBED
    assert list(chris.consent_records.order_by("occurred_at").values_list("status", flat=True)) == ["subscribed", "unsubscribed"]


def test_tracking_event_changes_no_consent(bram, t0):
    Event.objects.create(
        source=Event.Source.TRACKING,
        type="subscribed",
        contact=bram,
        occurred_at=t0,
        received_at=t0,
        properties={"first_name": "Niet Bram"},
    )

    tick(now=t0)

    bram.refresh_from_db()
    assert bram.email_consent == ConsentStatus.UNKNOWN
    assert bram.first_name == "Bram"


def test_signup_fills_empty_profile(db, t0):
    properties = {"first_name": " Dirk ", "last_name": "de Vries", "language": "NL", "time_zone": "Europe/Amsterdam"}
    store(t0, {"type": "signed_up", "email": "dirk@example.com", "properties": properties})

    tick(now=t0)

    dirk = Contact.objects.get(email="dirk@example.com")
    assert (dirk.first_name, dirk.last_name, dirk.language, dirk.time_zone) == ("Dirk", "de Vries", "nl", "Europe/Amsterdam")


def test_signup_keeps_existing_name(anna, t0):
    store(t0, {"type": "signed_up", "email": "anna@example.com", "properties": {"first_name": "Annabel"}})

    tick(now=t0)

    anna.refresh_from_db()
    assert anna.first_name == "Anna"


def test_signup_unfit_profile_values_skipped(db, t0):
    properties = {
        "first_name": "D" * 300,
        "language": "nederlands-belgisch",
        "time_zone": "Mars/Olympus_Mons",
        "company": {"name": "Linnen BV"},
    }
    store(t0, {"type": "signed_up", "email": "dirk@example.com", "properties": properties})

    tick(now=t0)

    dirk = Contact.objects.get(email="dirk@example.com")
    assert dirk.first_name == "D" * 100
    assert dirk.language == ""
    assert dirk.time_zone == ""
    assert dirk.company == ""
    assert Event.objects.get().processed_at == t0
