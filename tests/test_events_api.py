"""POST /api/events: authentication, scopes, validation, deduplication, money, and create_api_key."""

import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import CommandError, call_command

from contacts.models import ApiKey, ConsentStatus, Contact, Event
from workflows.engine.tick import tick

URL = "/api/events"


@pytest.fixture(autouse=True)
def frozen_clock(t0):
    with time_machine.travel(t0, tick=False):
        yield


@pytest.fixture
def full_key(db) -> str:
    _api_key, raw_key = ApiKey.generate("Shop backend")
    return raw_key


@pytest.fixture
def pixel_key(db) -> str:
    _api_key, raw_key = ApiKey.generate("Storefront pixel", scope=ApiKey.Scope.PIXEL)
    return raw_key


def post(client, key: str | None, payload, *, content_type: str = "application/json", raw: bytes | str | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    body = raw if raw is not None else json.dumps(payload)
    return client.post(URL, data=body, content_type=content_type, **headers)


def order(event_id: str = "evt-1", **overrides) -> dict:
    event = {
        "id": event_id,
        "type": "order_placed",
        "email": "dirk@example.com",
        "occurred_at": "2026-11-02T09:30:00+01:00",
        "properties": {"order_id": "1001", "total_price": "59.95", "currency": "EUR"},
    }
    event.update(overrides)
    return event


def only_error(response) -> dict:
    errors = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


# Storing.


def test_post_single_event_stored(client, full_key, t0):
    response = post(client, full_key, order())

    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert body["duplicates"] == 0
    event = Event.objects.get()
    assert body["ids"] == [event.pk]
    assert event.type == "order_placed"
    assert event.source == Event.Source.API
    assert event.source_id == "evt-1"
    assert event.occurred_at == t0 - timedelta(minutes=30)
    assert event.received_at == t0
    assert event.properties["order_id"] == "1001"
    assert event.currency == "EUR"


def test_post_stores_event_pending(client, full_key):
    post(client, full_key, order())

    assert Event.objects.get().processed_at is None


def test_post_list_of_events_stored(client, full_key):
    events = [order("evt-1"), order("evt-2", type="order_fulfilled"), order("evt-3", email="eva@example.com")]

    response = post(client, full_key, events)

    assert response.status_code == 202
    assert response.json()["accepted"] == 3
    assert sorted(Event.objects.values_list("source_id", flat=True)) == ["evt-1", "evt-2", "evt-3"]


def test_post_unknown_contact_created(client, full_key):
    post(client, full_key, order(email="Dirk@Example.com"))

    contact = Contact.objects.get(email="dirk@example.com")
    assert Event.objects.get().contact == contact
    assert contact.email_consent == ConsentStatus.UNKNOWN


def test_post_known_contact_reused(client, full_key, anna):
    post(client, full_key, order(email="ANNA@example.com"))

    assert Contact.objects.count() == 1
    assert Event.objects.get().contact == anna


def test_post_external_id_before_email(client, full_key, anna, bram):
    Contact.objects.filter(pk=bram.pk).update(external_id="shop-42")

    post(client, full_key, order(email="anna@example.com", external_id="shop-42"))

    assert Event.objects.get().contact_id == bram.pk


def test_post_phone_only_identity(client, full_key):
    event = order()
    del event["email"]
    event["phone"] = "06 12345678"

    response = post(client, full_key, event)

    assert response.status_code == 202
    assert Event.objects.get().contact.phone == "+31612345678"


def test_post_event_without_id_stored(client, full_key):
    event = order()
    del event["id"]

    response = post(client, full_key, [event, event])

    assert response.json()["accepted"] == 2
    assert Event.objects.filter(source_id__isnull=True).count() == 2


def test_post_missing_occurred_at_uses_now(client, full_key, t0):
    event = order()
    del event["occurred_at"]

    post(client, full_key, event)

    assert Event.objects.get().occurred_at == t0


def test_post_naive_occurred_at_read_as_utc(client, full_key, t0):
    post(client, full_key, order(occurred_at="2026-11-02T08:00:00"))

    assert Event.objects.get().occurred_at == t0 - timedelta(hours=1)


# Duplicates.


def test_post_repeated_ids_counted_duplicates(client, full_key):
    events = [order("evt-1"), order("evt-2")]
    post(client, full_key, events)

    response = post(client, full_key, events)

    assert response.status_code == 202
    assert response.json()["accepted"] == 0
    assert response.json()["duplicates"] == 2
    assert Event.objects.count() == 2


def test_post_duplicate_within_request_ignored(client, full_key):
    response = post(client, full_key, [order("evt-1"), order("evt-1"), order("evt-2")])

    assert response.json()["accepted"] == 2
    assert response.json()["duplicates"] == 1
    assert Event.objects.count() == 2


def test_post_numeric_id_matches_string_id(client, full_key):
    post(client, full_key, order(event_id=1001))

    response = post(client, full_key, order(event_id="1001"))

    assert response.json()["duplicates"] == 1


# Validation: one bad event gets a 400 that names its index, field and problem.

INVALID_EVENTS = [
    pytest.param({"type": 42}, "type", "must be a string", id="type-not-string"),
    pytest.param({"type": "Order Placed"}, "type", "unknown event type", id="type-unknown"),
    pytest.param({"type": "order_plced"}, "type", "did you mean order_placed?", id="type-typo"),
    pytest.param({"type": None}, "type", "missing", id="type-missing"),
    pytest.param({"email": None}, "email", "send email, phone or external_id", id="no-identity"),
    pytest.param({"email": "   "}, "email", "send email, phone or external_id", id="blank-identity"),
    pytest.param({"email": "dirk@@example"}, "email", "invalid email address 'dirk@@example'", id="invalid-email"),
    pytest.param({"email": ["dirk@example.com"]}, "email", "must be a string, got array", id="email-array"),
    pytest.param({"phone": "12"}, "phone", "invalid phone number '12'", id="invalid-phone"),
    pytest.param({"phone": "call me"}, "phone", "invalid phone number", id="phone-text"),
    pytest.param({"external_id": "x" * 101}, "external_id", "at most 100 fit", id="external-id-long"),
    pytest.param({"occurred_at": "yesterday"}, "occurred_at", "not an ISO 8601 date-time", id="occurred-at-text"),
    pytest.param({"occurred_at": "2026-13-01T00:00:00Z"}, "occurred_at", "not an ISO 8601 date-time", id="occurred-at-month-13"),
    pytest.param({"occurred_at": 1793606400}, "occurred_at", "not an ISO 8601 date-time", id="occurred-at-number"),
    pytest.param({"occurred_at": "2026-11-02T12:00:00Z"}, "occurred_at", "in the future", id="occurred-at-future"),
    pytest.param({"properties": []}, "properties", "must be a JSON object, got array", id="properties-array"),
    pytest.param({"properties": "total=5"}, "properties", "must be a JSON object, got string", id="properties-string"),
    pytest.param({"userId": "42"}, "userId", "unknown field", id="unknown-field"),
    pytest.param({"id": ""}, "id", "is empty", id="id-empty"),
    pytest.param({"id": {"n": 1}}, "id", "not a valid id", id="id-object"),
    pytest.param({"properties": {"total_price": "59,95"}}, "properties.total_price", "not an amount", id="amount-comma"),
    pytest.param({"properties": {"total_price": True}}, "properties.total_price", "not an amount", id="amount-boolean"),
    pytest.param({"properties": {"value": "1e20"}}, "properties.value", "too large", id="amount-too-large"),
    pytest.param({"properties": {"value": "Infinity"}}, "properties.value", "not an amount", id="amount-infinity"),
    pytest.param({"properties": {"currency": "euro"}}, "properties.currency", "not a currency code", id="currency-word"),
    pytest.param({"properties": {"note": "a\u0000b"}}, "properties.note", "NUL character", id="nul-in-property"),
]


@pytest.mark.usefixtures("english")
@pytest.mark.parametrize(("change", "field", "message"), INVALID_EVENTS)
def test_post_invalid_event_names_problem(client, full_key, change, field, message):
    response = post(client, full_key, [order("evt-1"), order("evt-2", **change)])

    assert response.status_code == 400
    error = only_error(response)
    assert error["index"] == 1
    assert error["field"] == field
    assert message in error["message"]


def test_post_list_with_bad_event_stores_nothing(client, full_key):
    events = [order("evt-1"), order("evt-2", email="new@example.com"), order("evt-3", type="nonsense")]

    response = post(client, full_key, events)

    assert response.status_code == 400
    assert Event.objects.count() == 0
    assert Contact.objects.count() == 0


def test_post_reports_every_bad_event(client, full_key):
    response = post(client, full_key, [order("evt-1", type="x"), order("evt-2"), order("evt-3", email="nope")])

    errors = response.json()["errors"]
    assert [(error["index"], error["field"]) for error in errors] == [(0, "type"), (2, "email")]


@pytest.mark.usefixtures("english")
def test_post_event_not_object_rejected(client, full_key):
    response = post(client, full_key, [order(), "order_placed"])

    error = only_error(response)
    assert error["index"] == 1
    assert error["field"] == "event"
    assert error["message"] == "must be a JSON object, got string"


@pytest.mark.usefixtures("english")
def test_post_malformed_json_rejected(client, full_key):
    response = post(client, full_key, None, raw='[{"type": "order_placed",}]')

    assert response.status_code == 400
    error = only_error(response)
    assert error["index"] is None
    assert error["field"] == "body"
    assert error["message"].startswith("malformed JSON")


def test_post_nan_rejected_as_malformed(client, full_key):
    raw = '{"type": "order_placed", "email": "dirk@example.com", "properties": {"total_price": NaN}}'

    response = post(client, full_key, None, raw=raw)

    assert response.status_code == 400
    assert "NaN is not a JSON number" in only_error(response)["message"]


def test_post_invalid_utf8_rejected(client, full_key):
    response = post(client, full_key, None, raw=b'{"type": "order_placed", "email": "\xff@example.com"}')

    assert response.status_code == 400
    assert only_error(response)["field"] == "body"


@pytest.mark.usefixtures("english")
def test_post_empty_body_rejected(client, full_key):
    response = post(client, full_key, None, raw="")

    assert response.status_code == 400
    assert only_error(response)["message"].startswith("empty")


def test_post_empty_list_rejected(client, full_key):
    response = post(client, full_key, [])

    assert response.status_code == 400
    assert only_error(response)["field"] == "events"


@pytest.mark.usefixtures("english")
def test_post_wrong_content_type_rejected(client, full_key):
    response = post(client, full_key, None, raw="type=order_placed&email=dirk@example.com", content_type="text/plain")

    assert response.status_code == 415
    error = only_error(response)
    assert error["field"] == "Content-Type"
    assert "'text/plain' is not supported" in error["message"]


def test_post_form_encoded_rejected(client, full_key):
    response = client.post(URL, {"type": "order_placed", "email": "dirk@example.com"}, HTTP_AUTHORIZATION=f"Bearer {full_key}")

    assert response.status_code == 415
    assert Event.objects.count() == 0


def test_post_json_with_charset_accepted(client, full_key):
    response = post(client, full_key, order(), content_type="application/json; charset=utf-8")

    assert response.status_code == 202


@pytest.mark.usefixtures("english")
def test_post_too_many_events_rejected(client, full_key):
    events = [order(f"evt-{number}") for number in range(1001)]

    response = post(client, full_key, events)

    assert response.status_code == 400
    error = only_error(response)
    assert error["field"] == "events"
    assert "too many events: 1001" in error["message"]


def test_post_thousand_events_accepted(client, full_key):
    events = [order(f"evt-{number}", email=f"buyer{number % 50}@example.com") for number in range(1000)]

    response = post(client, full_key, events)

    assert response.json()["accepted"] == 1000
    assert Contact.objects.count() == 50


def test_post_oversized_body_rejected(client, full_key, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 500

    response = post(client, full_key, [order(f"evt-{number}") for number in range(10)])

    assert response.status_code == 413
    assert only_error(response)["field"] == "body"


# Money.


def test_post_string_amount_stored_decimal(client, full_key):
    post(client, full_key, order(properties={"total_price": "59.95"}))

    value = Event.objects.get().value
    assert isinstance(value, Decimal)
    assert value == Decimal("59.95")


def test_post_number_amount_stored_exactly(client, full_key):
    post(client, full_key, order(properties={"total_price": 59.95}))

    assert Event.objects.get().value == Decimal("59.95")


def test_post_amount_rounded_to_cents(client, full_key):
    post(client, full_key, order(properties={"value": "19.999"}))

    assert Event.objects.get().value == Decimal("20.00")


def test_order_totals_add_without_float_error(client, full_key, t0):
    events = [
        order("evt-1", properties={"total_price": "0.10"}),
        order("evt-2", properties={"total_price": "0.20"}),
        order("evt-3", properties={"total_price": 0.1}),
    ]
    post(client, full_key, events)

    tick(now=t0)

    contact = Contact.objects.get(email="dirk@example.com")
    assert contact.total_spent == Decimal("0.40")
    assert contact.order_count == 3


# Authentication.


def test_post_without_key_unauthorized(client, db):
    response = post(client, None, order())

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert only_error(response)["field"] == "Authorization"


def test_post_invalid_event_problem_in_dutch_by_default(client, full_key):
    response = post(client, full_key, order(occurred_at="2099-01-01T00:00:00Z"))

    assert response.status_code == 400
    assert only_error(response) == {
        "index": 0,
        "field": "occurred_at",
        "message": "'2099-01-01T00:00:00Z' ligt in de toekomst; stuur het tijdstip waarop de gebeurtenis plaatsvond",
    }


def test_post_invalid_event_problem_in_english_on_request(client, full_key):
    body = json.dumps(order(occurred_at="2099-01-01T00:00:00Z"))

    response = client.post(
        URL, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {full_key}", HTTP_ACCEPT_LANGUAGE="en"
    )

    assert only_error(response)["message"] == "'2099-01-01T00:00:00Z' is in the future; send the time the event happened"


@pytest.mark.usefixtures("english")
def test_post_reports_every_problem_of_an_event(client, full_key):
    event = order(type="order-placed", email="not-an-email", occurred_at="yesterday")

    response = post(client, full_key, [order("ok-1"), event])

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(error["index"], error["field"]) for error in errors] == [(1, "type"), (1, "email"), (1, "occurred_at")]
    assert errors[0]["message"] == "unknown event type 'order-placed'; did you mean order_placed?"
    assert Event.objects.count() == 0


def test_post_wrong_key_unauthorized(client, full_key):
    response = post(client, "mk_not-a-real-key", order())

    assert response.status_code == 401
    assert only_error(response)["message"] == "Ongeldige API-sleutel."
    assert Event.objects.count() == 0


def test_post_revoked_key_unauthorized(client, full_key):
    ApiKey.objects.update(revoked=True)

    response = post(client, full_key, order())

    assert response.status_code == 401
    assert "ingetrokken" in only_error(response)["message"]
    assert Event.objects.count() == 0


def test_post_basic_auth_unauthorized(client, full_key):
    response = client.post(URL, data=json.dumps(order()), content_type="application/json", HTTP_AUTHORIZATION="Basic abc")

    assert response.status_code == 401


def test_post_key_with_extra_words_unauthorized(client, full_key):
    response = client.post(
        URL, data=json.dumps(order()), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {full_key} extra"
    )

    assert response.status_code == 401


def test_post_lowercase_scheme_accepted(client, full_key):
    response = client.post(
        URL, data=json.dumps(order()), content_type="application/json", HTTP_AUTHORIZATION=f"bearer {full_key}"
    )

    assert response.status_code == 202


def test_post_records_key_last_used(client, full_key, t0):
    post(client, full_key, order())

    assert ApiKey.objects.get().last_used_at == t0


def test_get_events_not_allowed(client, full_key):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {full_key}")

    assert response.status_code == 405
    assert only_error(response)["field"] == "request"


# Pixel scope: browsing events only, and never consent or contact details.


def test_pixel_key_browsing_event_accepted(client, pixel_key):
    event = order(type="product_viewed", properties={"product_id": "p-1"})

    response = post(client, pixel_key, event)

    assert response.status_code == 202
    assert Event.objects.get().type == "product_viewed"


@pytest.mark.usefixtures("english")
@pytest.mark.parametrize("event_type", ["signed_up", "order_placed", "subscribed", "unsubscribed", "email_opened"])
def test_pixel_key_other_event_rejected(client, pixel_key, event_type):
    response = post(client, pixel_key, order(type=event_type))

    assert response.status_code == 400
    error = only_error(response)
    assert error["field"] == "type"
    assert "not allowed with this API key" in error["message"]
    assert Event.objects.count() == 0


def test_pixel_key_mixed_list_stores_nothing(client, pixel_key):
    events = [order("evt-1", type="page_viewed", properties={}), order("evt-2", type="order_placed")]

    response = post(client, pixel_key, events)

    assert only_error(response)["index"] == 1
    assert Event.objects.count() == 0


def test_pixel_signup_subscribes_nobody(client, pixel_key, bram, t0):
    event = order(type="signed_up", email="bram@example.com", properties={"accepts_marketing": True, "first_name": "B"})

    post(client, pixel_key, event)
    tick(now=t0)

    bram.refresh_from_db()
    assert bram.email_consent == ConsentStatus.UNKNOWN
    assert bram.consent_records.count() == 0


def test_pixel_browsing_properties_change_nothing(client, pixel_key, t0):
    contact = Contact.objects.create(email="eva@example.com")
    properties = {"accepts_marketing": True, "email_consent": "yes", "first_name": "Mallory", "language": "en"}

    response = post(client, pixel_key, order(type="checkout_started", email="eva@example.com", properties=properties))
    tick(now=t0)

    assert response.status_code == 202
    contact.refresh_from_db()
    assert contact.email_consent == ConsentStatus.UNKNOWN
    assert contact.first_name == ""
    assert contact.language == ""


def test_pixel_key_adds_no_identity(client, pixel_key):
    contact = Contact.objects.create(external_id="shop-42")

    post(client, pixel_key, order(type="page_viewed", external_id="shop-42", email="mallory@example.com", properties={}))

    contact.refresh_from_db()
    assert contact.email is None
    assert Event.objects.get().contact == contact


def test_full_key_fills_missing_identity(client, full_key):
    contact = Contact.objects.create(external_id="shop-42")

    post(client, full_key, order(external_id="shop-42", email="dirk@example.com"))

    contact.refresh_from_db()
    assert contact.email == "dirk@example.com"


# create_api_key.


def test_create_api_key_prints_key_once(db):
    stdout, stderr = io.StringIO(), io.StringIO()

    call_command("create_api_key", "Shop backend", stdout=stdout, stderr=stderr)

    raw_key = stdout.getvalue().strip()
    api_key = ApiKey.objects.get()
    assert raw_key.startswith("mk_")
    assert api_key.key_hash == ApiKey.hash_key(raw_key)
    assert api_key.prefix == raw_key[:10]
    assert api_key.scope == ApiKey.Scope.FULL
    assert api_key.name == "Shop backend"
    assert raw_key not in stderr.getvalue()
    assert "niet nog eens getoond" in stderr.getvalue()


def test_create_api_key_pixel_scope(db):
    call_command("create_api_key", "Pixel", "--scope", "pixel", stdout=io.StringIO(), stderr=io.StringIO())

    assert ApiKey.objects.get().scope == ApiKey.Scope.PIXEL


def test_create_api_key_unknown_scope_rejected(db):
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("create_api_key", "Pixel", "--scope", "admin", stdout=io.StringIO(), stderr=io.StringIO())

    assert ApiKey.objects.count() == 0


def test_create_api_key_blank_name_rejected(db):
    with pytest.raises(CommandError, match="heeft een naam nodig"):
        call_command("create_api_key", "  ", stdout=io.StringIO(), stderr=io.StringIO())


def test_created_key_authenticates(client, db):
    stdout = io.StringIO()
    call_command("create_api_key", "Shop backend", stdout=stdout, stderr=io.StringIO())

    response = post(client, stdout.getvalue().strip(), order())

    assert response.status_code == 202
