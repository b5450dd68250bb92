"""Shopify webhooks: HMAC verification, deduplication and each topic's events and contact facts."""

import io
import json
import stat
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client

from contacts.models import ConsentRecord, ConsentStatus, Contact, Event, Shop
from contacts.shopify.signature import compute_signature, verify_signature
from workflows.engine.tick import tick
from workflows.library import install_template
from workflows.lifecycle import activate
from workflows.models import Enrollment

DATA = Path(__file__).parent / "data" / "shopify"
SAMPLES = sorted(path.name for path in (DATA / "webhooks").glob("*.json"))
SECRET = "test-secret-for-the-shop"
DOMAIN = "example-shop.myshopify.com"
URL = "/webhooks/shopify"
ORDER_ID = "820982911946154508"
# processed_at of the order samples, 2021-12-31T19:00:00-05:00.
ORDER_TIME = datetime(2022, 1, 1, 0, 0, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("english")


@pytest.fixture(autouse=True)
def frozen_clock(t0):
    with time_machine.travel(t0, tick=False):
        yield


@pytest.fixture
def shop(db) -> Shop:
    return Shop.objects.create(domain=DOMAIN, name="Voorbeeldwinkel", webhook_secret=SECRET, currency="EUR")


@pytest.fixture
def exports_dir(settings, tmp_path) -> Path:
    settings.VAR_DIR = tmp_path
    return tmp_path / "exports"


def topic_of(sample: str) -> str:
    """Return the topic of a sample file: orders__create.2026-01.json is orders/create."""
    return sample.removesuffix(".json").rsplit(".", 1)[0].replace("__", "/")


def sample_body(sample: str) -> bytes:
    return (DATA / "webhooks" / sample).read_bytes()


def sample_data(sample: str) -> dict:
    return json.loads(sample_body(sample))


def signed_headers(topic: str, body: bytes, *, secret: str = SECRET, webhook_id: str | None = None) -> dict[str, str]:
    return {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": compute_signature(secret, body),
        "X-Shopify-Shop-Domain": DOMAIN,
        "X-Shopify-API-Version": "2026-01",
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": "2026-11-02T08:59:00.000000000Z",
    }


def post(client, topic: str, body: bytes | dict, *, webhook_id: str | None = None, headers: dict | None = None):
    """Send a body signed with the test shop's secret, as Shopify would."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    return client.post(
        URL, data=raw, content_type="application/json", headers=headers or signed_headers(topic, raw, webhook_id=webhook_id)
    )


def post_sample(client, sample: str, **changes):
    """Send a sample, with top-level fields replaced by ``changes``."""
    data = sample_data(sample)
    data.update(changes)
    return post(client, topic_of(sample), data if changes else sample_body(sample))


def only_event(event_type: str) -> Event:
    events = list(Event.objects.filter(type=event_type))
    assert len(events) == 1, events
    return events[0]


def nothing_stored() -> bool:
    return not Event.objects.exists() and not Contact.objects.exists() and not ConsentRecord.objects.exists()


# Verification.


@pytest.mark.parametrize("sample", SAMPLES)
def test_sample_accepted_with_valid_signature(client, shop, exports_dir, sample):
    response = post(client, topic_of(sample), sample_body(sample))

    assert response.status_code == 200


@pytest.mark.parametrize("sample", SAMPLES)
def test_sample_rejected_with_bad_signature(client, shop, sample):
    body = sample_body(sample)
    headers = signed_headers(topic_of(sample), body, secret="not-the-shop-secret")

    response = client.post(URL, data=body, content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert nothing_stored()


@pytest.mark.parametrize("sample", SAMPLES)
def test_sample_rejected_without_signature(client, shop, sample):
    body = sample_body(sample)
    headers = signed_headers(topic_of(sample), body)
    del headers["X-Shopify-Hmac-Sha256"]

    response = client.post(URL, data=body, content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert nothing_stored()


@pytest.mark.parametrize("header", ["X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-API-Version", "X-Shopify-Webhook-Id"])
def test_missing_required_header_rejected(client, shop, header):
    body = sample_body("orders__create.2026-01.json")
    headers = signed_headers("orders/create", body)
    del headers[header]

    response = client.post(URL, data=body, content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert header in response.json()["error"]
    assert nothing_stored()


def test_signature_over_changed_body_rejected(client, shop):
    body = sample_body("orders__create.2026-01.json")
    headers = signed_headers("orders/create", body)

    response = client.post(URL, data=body.replace(b"404.95", b"4.95"), content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert nothing_stored()


def test_hex_signature_rejected(client, shop):
    body = sample_body("orders__create.2026-01.json")
    headers = signed_headers("orders/create", body)
    headers["X-Shopify-Hmac-Sha256"] = compute_signature(SECRET, body).encode().hex()

    response = client.post(URL, data=body, content_type="application/json", headers=headers)

    assert response.status_code == 401


def test_signed_example_verifies_with_its_secret():
    headers = json.loads((DATA / "signed_example" / "orders_create.headers.json").read_text())
    body = (DATA / "signed_example" / "orders_create.body.json").read_bytes()

    assert verify_signature(headers["_fake_client_secret"], body, headers["X-Shopify-Hmac-Sha256"])
    assert not verify_signature(SECRET, body, headers["X-Shopify-Hmac-Sha256"])


def test_signed_example_accepted_by_endpoint(client, db):
    headers = json.loads((DATA / "signed_example" / "orders_create.headers.json").read_text())
    body = (DATA / "signed_example" / "orders_create.body.json").read_bytes()
    Shop.objects.create(domain=headers["X-Shopify-Shop-Domain"], webhook_secret=headers["_fake_client_secret"])
    sent = {name: value for name, value in headers.items() if name.startswith("X-Shopify-")}

    response = client.post(URL, data=body, content_type="application/json", headers=sent)

    assert response.status_code == 200
    assert only_event("order_placed").properties["order_id"] == ORDER_ID


def test_unknown_shop_rejected(client, db):
    response = post(client, "orders/create", sample_body("orders__create.2026-01.json"))

    assert response.status_code == 401
    assert response.json() == {"error": "unknown shop"}
    assert nothing_stored()


def test_settings_secret_verifies_unknown_shop(client, db, settings):
    settings.MKTAUTO_SHOPIFY_WEBHOOK_SECRET = SECRET

    response = post(client, "orders/create", sample_body("orders__create.2026-01.json"))

    assert response.status_code == 200
    assert only_event("order_placed").currency == "USD"


def test_shop_row_secret_wins_over_settings(client, shop, settings):
    settings.MKTAUTO_SHOPIFY_WEBHOOK_SECRET = "the-settings-secret"
    body = sample_body("orders__create.2026-01.json")

    response = client.post(
        URL,
        data=body,
        content_type="application/json",
        headers=signed_headers("orders/create", body, secret="the-settings-secret"),
    )

    assert response.status_code == 401


def test_lowercase_header_names_accepted(client, shop):
    body = sample_body("orders__create.2026-01.json")
    headers = {name.lower(): value for name, value in signed_headers("orders/create", body).items()}

    response = client.post(URL, data=body, content_type="application/json", headers=headers)

    assert response.status_code == 200


def test_unprefixed_event_headers_accepted(client, shop):
    body = sample_body("orders__create.2026-01.json")
    headers = {
        "shopify-topic": "orders/create",
        "shopify-hmac-sha256": compute_signature(SECRET, body),
        "shopify-shop-domain": DOMAIN,
        "shopify-api-version": "2026-01",
        "shopify-event-id": "7b8c9d0a-1234-5678-90ab-cdef12345678",
    }

    response = client.post(URL, data=body, content_type="application/json", headers=headers)

    assert response.status_code == 200
    assert only_event("order_placed").value == Decimal("404.95")


def test_malformed_json_with_valid_signature_rejected(client, shop):
    response = post(client, "orders/create", b'{"id": 1,')

    assert response.status_code == 400
    assert "malformed JSON" in response.json()["error"]
    assert nothing_stored()


def test_json_array_body_rejected(client, shop):
    response = post(client, "orders/create", b"[1, 2]")

    assert response.status_code == 400
    assert nothing_stored()


def test_payload_wrong_shape_stores_nothing(client, shop):
    response = post_sample(client, "orders__create.2026-01.json", line_items="not a list")

    assert response.status_code == 400
    assert response.json() == {"error": "line_items: must be a JSON array, got str"}
    assert nothing_stored()


def test_endpoint_needs_no_csrf_token(shop):
    csrf_client = Client(enforce_csrf_checks=True)

    response = post(csrf_client, "orders/create", sample_body("orders__create.2026-01.json"))

    assert response.status_code == 200


def test_oversized_body_rejected(client, shop, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = post(client, "orders/create", sample_body("orders__create.2026-01.json"))

    assert response.status_code == 413
    assert nothing_stored()


def test_get_request_not_allowed(client, shop):
    response = client.get(URL)

    assert response.status_code == 405


def test_unused_topic_acknowledged(client, shop):
    response = post(client, "products/update", {"id": 632910392, "title": "IPod Nano - 8GB"})

    assert response.status_code == 200
    assert nothing_stored()


# Deduplication.


def test_repeated_webhook_id_stored_once(client, shop):
    body = sample_body("checkouts__create.2026-01.json")
    webhook_id = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"

    first = post(client, "checkouts/create", body, webhook_id=webhook_id)
    second = post(client, "checkouts/create", body, webhook_id=webhook_id)

    assert first.json()["stored"] == 1
    assert second.status_code == 200
    assert second.json()["duplicates"] == 1
    assert Event.objects.count() == 1


def test_repeated_order_webhook_stored_once(client, shop):
    body = sample_body("orders__create.2026-01.json")

    post(client, "orders/create", body, webhook_id="5e0a8d8e-0000-4000-8000-000000000001")
    post(client, "orders/create", body, webhook_id="5e0a8d8e-0000-4000-8000-000000000001")

    assert Event.objects.filter(type="order_placed").count() == 1


def test_orders_paid_after_create_counts_once(client, shop, t0):
    post_sample(client, "orders__create.2026-01.json")
    post_sample(client, "orders__paid.2026-01.json")
    tick(now=t0)

    assert Event.objects.filter(type="order_placed").count() == 1
    assert Contact.objects.get().order_count == 1


def test_repeated_consent_webhook_recorded_once(client, shop, anna):
    data = {"customer_id": 42, "email_address": "anna@example.com", "email_marketing_consent": {"state": "unsubscribed"}}
    webhook_id = "c0c0c0c0-0000-4000-8000-000000000001"

    post(client, "customers_email_marketing_consent/update", data, webhook_id=webhook_id)
    post(client, "customers_email_marketing_consent/update", data, webhook_id=webhook_id)

    assert anna.consent_records.count() == 1


# Orders.


def test_order_create_stores_order_placed(client, shop):
    post_sample(client, "orders__create.2026-01.json")

    event = only_event("order_placed")
    assert event.source == Event.Source.SHOPIFY
    assert event.source_id == f"order_placed:{ORDER_ID}"
    assert event.key == ""
    assert event.value == Decimal("404.95")
    assert event.currency == "USD"
    assert event.occurred_at == ORDER_TIME
    assert event.contact.email == "john@example.com"
    assert event.contact.external_id == "115310627314723954"


def test_order_create_properties(client, shop):
    post_sample(client, "orders__create.2026-01.json")

    properties = only_event("order_placed").properties
    assert properties["order_id"] == ORDER_ID
    assert properties["order_name"] == "#9999"
    assert properties["total_price"] == "404.95"
    assert properties["total_discounts"] == "20.00"
    assert properties["discount_codes"] == []
    assert properties["financial_status"] == "voided"
    assert len(properties["line_items"]) == 5
    assert properties["line_items"][0] == {
        "product_id": "788032119674292922",
        "variant_id": "",
        "title": "Aviator sunglasses",
        "variant_title": "",
        "sku": "SKU2006-001",
        "quantity": 1,
        "price": "89.99",
    }
    assert "billing_address" not in properties


def test_order_with_checkout_token_keyed_by_it(client, shop):
    post_sample(
        client,
        "orders__create.2026-01.json",
        checkout_token="123123123",
        discount_codes=[{"code": "WELKOM10", "amount": "10.00", "type": "percentage"}],
    )

    event = only_event("order_placed")
    assert event.key == "123123123"
    assert event.properties["discount_codes"] == ["WELKOM10"]


def test_order_create_sets_customer_facts(client, shop, t0):
    post_sample(client, "orders__create.2026-01.json")
    tick(now=t0)

    contact = Contact.objects.get()
    assert contact.first_name == "John"
    assert contact.last_name == "Smith"
    assert contact.city == "Ottawa"
    assert contact.country_code == "CA"
    assert contact.language == "en"
    assert contact.attributes == {"shopify_customer_id": "115310627314723954"}
    assert contact.order_count == 1
    assert contact.total_spent == Decimal("404.95")
    assert contact.last_order_at == ORDER_TIME


def test_order_accepting_marketing_subscribes(client, shop):
    post_sample(client, "orders__create.2026-01.json")

    contact = Contact.objects.get()
    record = contact.consent_records.get()
    assert contact.email_consent == ConsentStatus.SUBSCRIBED
    assert record.source == "shopify"
    assert record.proof.startswith("Shopify webhook ")
    assert "orders/create" in record.proof


def test_order_accepting_marketing_keeps_unsubscribe(client, shop, chris):
    post_sample(client, "orders__create.2026-01.json", customer=None, email="chris@example.com")

    chris.refresh_from_db()
    assert chris.email_consent == ConsentStatus.UNSUBSCRIBED
    assert only_event("order_placed").contact == chris


def test_order_without_customer_or_email_skipped(client, shop):
    response = post_sample(client, "orders__create.2026-01.json", customer=None, email=None, contact_email=None)

    assert response.status_code == 200
    assert nothing_stored()


def test_order_invalid_email_left_out(client, shop):
    customer = sample_data("orders__create.2026-01.json")["customer"]
    customer["email"] = "not an address"
    post_sample(client, "orders__create.2026-01.json", customer=customer)

    contact = only_event("order_placed").contact
    assert contact.email == "jon@example.com"
    assert contact.external_id == "115310627314723954"


def test_order_cancelled_stores_event(client, shop):
    post_sample(client, "orders__cancelled.2026-01.json")

    event = only_event("order_cancelled")
    assert event.key == ORDER_ID
    assert event.value == Decimal("404.95")
    assert event.properties["cancel_reason"] == "customer"
    assert event.source_id == f"order_cancelled:{ORDER_ID}"


def test_order_fulfilled_stores_event(client, shop):
    post_sample(client, "orders__fulfilled.2026-01.json")

    event = only_event("order_fulfilled")
    assert event.key == ORDER_ID
    assert event.contact.email == "john@example.com"


def test_order_ids_stay_exact(client, shop):
    post_sample(client, "orders__create.2026-01.json", id=18446744073709551557)

    assert only_event("order_placed").properties["order_id"] == "18446744073709551557"


def test_order_total_read_as_decimal(client, shop):
    post(client, "orders/create", sample_body("orders__create.2026-01.json").replace(b'"404.95"', b"0.1"))

    assert only_event("order_placed").value == Decimal("0.10")


# Refunds.


def test_refund_stores_refunded_amount(client, shop):
    post_sample(client, "orders__create.2026-01.json")
    post_sample(client, "refunds__create.2026-01.json")

    event = only_event("refund_created")
    assert event.value == Decimal("85.00")
    assert event.currency == "USD"
    assert event.key == ORDER_ID
    assert event.contact.email == "john@example.com"
    assert event.properties["refund_id"] == "890088186047892319"
    assert event.properties["line_items"][0]["subtotal"] == "89.99"


def test_refund_for_unknown_order_skipped(client, shop):
    response = post_sample(client, "refunds__create.2026-01.json")

    assert response.status_code == 200
    assert nothing_stored()


def test_refund_failed_transaction_not_counted(client, shop):
    post_sample(client, "orders__create.2026-01.json")
    refund = sample_data("refunds__create.2026-01.json")
    refund["transactions"][1]["status"] = "failure"
    post(client, "refunds/create", refund)

    assert only_event("refund_created").value == Decimal("75.00")


# Fulfillments.


def test_pending_fulfillment_stores_nothing(client, shop):
    post_sample(client, "orders__create.2026-01.json")
    response = post_sample(client, "fulfillments__create.2026-01.json")

    assert response.status_code == 200
    assert not Event.objects.filter(type__in=["order_fulfilled", "order_delivered"]).exists()


def test_successful_fulfillment_marks_shipped(client, shop):
    post_sample(client, "orders__create.2026-01.json")
    post_sample(client, "fulfillments__create.2026-01.json", status="success", shipment_status="in_transit")

    event = only_event("order_fulfilled")
    assert event.contact.email == "john@example.com"
    assert event.key == ORDER_ID
    assert event.properties["fulfillment_status"] == "success"
    assert event.properties["shipment_status"] == "in_transit"
    assert event.properties["tracking_number"] == "1z827wk74630"
    assert event.properties["tracking_company"] == "UPS"


def test_delivered_shipment_marks_delivered(client, shop):
    post_sample(client, "orders__create.2026-01.json")
    post_sample(client, "fulfillments__update.2026-01.json", status="success", shipment_status="delivered")

    event = only_event("order_delivered")
    assert event.properties["shipment_status"] == "delivered"
    assert event.source_id == f"order_delivered:{ORDER_ID}"


def test_fulfillment_and_order_fulfilled_count_once(client, shop):
    post_sample(client, "orders__fulfilled.2026-01.json")
    post_sample(client, "fulfillments__create.2026-01.json", status="success")
    post_sample(client, "fulfillments__update.2026-01.json", status="success", shipment_status="out_for_delivery")

    assert Event.objects.filter(type="order_fulfilled").count() == 1


def test_fulfillment_of_unknown_order_uses_email(client, shop):
    post_sample(client, "fulfillments__create.2026-01.json", status="success")

    assert only_event("order_fulfilled").contact.email == "jon@example.com"


# Checkouts and carts.


def test_checkout_create_stores_checkout_started(client, shop):
    post_sample(client, "checkouts__create.2026-01.json")

    event = only_event("checkout_started")
    assert event.key == "123123123"
    assert event.value == Decimal("421.88")
    assert event.currency == "USD"
    assert event.contact.email == "john@example.com"
    assert event.contact.external_id == "603851970716743426"
    assert event.properties["checkout_id"] == "981820079255243537"
    assert event.properties["cart_token"] == "eeafa272cebfd4b22385bc4b645e762c"
    assert event.properties["abandoned_checkout_url"].startswith("https://checkout.local/548380009/checkouts/123123123/recover")
    assert len(event.properties["line_items"]) == 2
    assert event.properties["line_items"][0]["price"] == "199.00"


def test_checkout_without_id_keyed_by_token(client, shop):
    post_sample(client, "checkouts__create.2026-04.json")

    event = only_event("checkout_started")
    assert event.key == "123123123"
    assert "checkout_id" not in event.properties


def test_checkout_not_accepting_marketing_leaves_consent(client, shop):
    post_sample(client, "checkouts__create.2026-01.json")

    contact = Contact.objects.get()
    assert contact.email_consent == ConsentStatus.UNKNOWN
    assert not contact.consent_records.exists()


def test_checkout_accepting_marketing_subscribes(client, shop):
    post_sample(client, "checkouts__create.2026-01.json", buyer_accepts_marketing=True)

    assert Contact.objects.get().email_consent == ConsentStatus.SUBSCRIBED


def test_checkout_accepting_sms_subscribes_phone(client, shop):
    post_sample(client, "checkouts__create.2026-01.json", buyer_accepts_sms_marketing=True, sms_marketing_phone="+31612345678")

    contact = Contact.objects.get()
    assert contact.phone == "+31612345678"
    assert contact.sms_consent == ConsentStatus.SUBSCRIBED


def test_checkout_without_email_skipped(client, shop):
    response = post_sample(client, "checkouts__create.2026-01.json", customer=None, email=None)

    assert response.status_code == 200
    assert nothing_stored()


def test_checkout_update_stores_checkout_updated(client, shop):
    post_sample(client, "checkouts__update.2026-01.json")

    event = only_event("checkout_updated")
    assert event.key == "123123123"
    assert event.value == Decimal("421.88")


def test_checkout_delete_clears_cart(client, shop):
    post_sample(client, "checkouts__create.2026-01.json")
    post_sample(client, "checkouts__delete.2026-01.json")

    cleared = only_event("cart_cleared")
    assert cleared.key == "123123123"
    assert cleared.contact == only_event("checkout_started").contact


def test_checkout_delete_unknown_checkout_skipped(client, shop):
    response = post_sample(client, "checkouts__delete.2026-01.json")

    assert response.status_code == 200
    assert nothing_stored()


def test_cart_without_customer_skipped(client, shop):
    response = post_sample(client, "carts__create.2026-01.json")

    assert response.status_code == 200
    assert nothing_stored()


def test_cart_with_customer_stores_added_to_cart(client, shop):
    post_sample(client, "carts__update.2026-01.json", customer={"id": 603851970716743426, "email": "john@example.com"})

    event = only_event("product_added_to_cart")
    assert event.key == "exampleCartId"
    assert event.value == Decimal("59.97")
    assert event.currency == "USD"
    assert event.properties["line_items"][0]["quantity"] == 3
    assert event.contact.email == "john@example.com"


def test_emptied_cart_stores_cart_cleared(client, shop):
    post_sample(client, "carts__update.2026-01.json", customer={"id": 603851970716743426}, line_items=[])

    assert only_event("cart_cleared").key == "exampleCartId"


def test_order_for_checkout_converts_cart_reminders(client, shop, t0, time_machine):
    workflow = install_template("abandoned_cart", language="en")
    assert activate(workflow) == []
    post_sample(client, "checkouts__create.2026-01.json", created_at="2026-11-02T08:55:00Z", buyer_accepts_marketing=True)
    tick(now=t0)
    time_machine.move_to(t0 + timedelta(hours=1), tick=False)
    tick(now=t0 + timedelta(hours=1))
    time_machine.move_to(t0 + timedelta(hours=1, minutes=30), tick=False)
    post_sample(
        client,
        "orders__create.2026-01.json",
        checkout_token="123123123",
        processed_at="2026-11-02T10:20:00Z",
        customer=None,
        email="john@example.com",
    )
    tick(now=t0 + timedelta(hours=1, minutes=30))

    enrollment = Enrollment.objects.get(workflow=workflow)
    assert enrollment.key == "123123123"
    assert enrollment.deliveries.count() == 1
    assert enrollment.state != Enrollment.State.ACTIVE
    assert enrollment.converted_at == datetime(2026, 11, 2, 10, 20, tzinfo=UTC)
    assert enrollment.revenue == Decimal("404.95")


# Customers.


def test_customer_create_sets_profile(client, shop):
    post_sample(client, "customers__create.2026-01.json")

    contact = Contact.objects.get()
    assert contact.email == "bob@example.com"
    assert contact.external_id == "706405506930370084"
    assert contact.first_name == "Bob"
    assert contact.last_name == "Biller"
    assert contact.address1 == "151 Example Street"
    assert contact.zip == "K2P 2L8"
    assert contact.province_code == "ON"
    assert contact.note == "This customer loves ice cream"
    assert not Event.objects.exists()


def test_customer_create_old_shape_facts(client, shop):
    post_sample(client, "customers__create.2024-10.json")

    contact = Contact.objects.get()
    assert contact.email is None
    assert contact.external_id == "706405506930370084"
    assert contact.order_count == 1
    assert contact.total_spent == Decimal("100.00")
    assert contact.currency == "USD"
    assert contact.email_consent == ConsentStatus.UNKNOWN
    assert list(contact.tags.all()) == []


def test_customer_old_shape_tags_and_consent(client, shop):
    post_sample(
        client,
        "customers__create.2024-10.json",
        email="bob@example.com",
        tags="VIP, nieuwsbrief",
        email_marketing_consent={"state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": None},
    )

    contact = Contact.objects.get()
    assert sorted(contact.tags.values_list("name", flat=True)) == ["VIP", "nieuwsbrief"]
    assert contact.email_consent == ConsentStatus.SUBSCRIBED
    assert "opt-in level single_opt_in" in contact.consent_records.get().proof


def test_customer_embedded_consent_keeps_unsubscribe(client, shop, chris):
    post_sample(
        client,
        "customers__update.2026-01.json",
        email="chris@example.com",
        email_marketing_consent={"state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": None},
    )

    chris.refresh_from_db()
    assert chris.email_consent == ConsentStatus.UNSUBSCRIBED


def test_customer_update_changes_email(client, shop):
    post_sample(client, "customers__create.2026-01.json")
    post_sample(client, "customers__update.2026-01.json", email="bob.biller@example.com", first_name="Robert")

    contact = Contact.objects.get()
    assert contact.email == "bob.biller@example.com"
    assert contact.first_name == "Robert"


def test_customer_update_email_of_other_contact_kept(client, shop, bram):
    post_sample(client, "customers__create.2026-01.json")
    post_sample(client, "customers__update.2026-01.json", email="bram@example.com")

    assert Contact.objects.get(external_id="706405506930370084").email == "bob@example.com"


def test_customer_delete_keeps_contact(client, shop):
    post_sample(client, "customers__create.2026-01.json")
    response = post_sample(client, "customers__delete.2026-01.json")

    assert response.status_code == 200
    assert Contact.objects.get().email == "bob@example.com"


def test_tags_added_to_customer(client, shop, bram):
    bram.external_id = "1"
    bram.save()

    post_sample(client, "customer.tags_added.2026-01.json")

    assert sorted(bram.tags.values_list("name", flat=True)) == ["tag1", "tag2"]


def test_tags_removed_from_customer(client, shop, bram):
    bram.external_id = "1"
    bram.save()
    post_sample(client, "customer.tags_added.2026-01.json")

    post(client, "customer.tags_removed", {"customerId": "gid://shopify/Customer/1", "tags": ["tag1"]})

    assert list(bram.tags.values_list("name", flat=True)) == ["tag2"]


def test_tags_for_new_customer_create_contact(client, shop):
    post_sample(client, "customer.tags_added.2026-01.json")

    contact = Contact.objects.get()
    assert contact.external_id == "1"
    assert contact.tags.count() == 2


def test_email_consent_sample_not_subscribed(client, shop):
    post_sample(client, "customers_email_marketing_consent__update.2026-01.json")

    contact = Contact.objects.get()
    assert contact.email == "bob@example.com"
    assert contact.email_consent == ConsentStatus.UNKNOWN
    assert not ConsentRecord.objects.exists()


def test_email_consent_subscribed(client, shop, bram):
    webhook_id = "d1d1d1d1-0000-4000-8000-000000000001"
    data = {
        "customer_id": 706405506930370084,
        "email_address": "bram@example.com",
        "email_marketing_consent": {
            "state": "subscribed",
            "opt_in_level": "confirmed_opt_in",
            "consent_updated_at": "2026-11-02T08:30:00+00:00",
        },
    }

    post(client, "customers_email_marketing_consent/update", data, webhook_id=webhook_id)

    bram.refresh_from_db()
    record = bram.consent_records.get()
    assert bram.email_consent == ConsentStatus.SUBSCRIBED
    assert bram.external_id == "706405506930370084"
    assert record.source == "shopify"
    assert record.occurred_at == datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    assert webhook_id in record.proof


def test_email_consent_unsubscribed(client, shop, anna):
    data = {"customer_id": 42, "email_address": "anna@example.com", "email_marketing_consent": {"state": "unsubscribed"}}

    post(client, "customers_email_marketing_consent/update", data)

    anna.refresh_from_db()
    assert anna.email_consent == ConsentStatus.UNSUBSCRIBED


def test_explicit_consent_resubscribes_after_unsubscribe(client, shop, chris):
    data = {"customer_id": 42, "email_address": "chris@example.com", "email_marketing_consent": {"state": "subscribed"}}

    post(client, "customers_email_marketing_consent/update", data)

    chris.refresh_from_db()
    assert chris.email_consent == ConsentStatus.SUBSCRIBED


def test_older_explicit_consent_keeps_unsubscribe(client, shop, chris, t0):
    ConsentRecord.objects.create(contact=chris, channel="email", status="unsubscribed", source="unsubscribe link", occurred_at=t0)
    data = {
        "customer_id": 42,
        "email_address": "chris@example.com",
        "email_marketing_consent": {"state": "subscribed", "consent_updated_at": "2026-10-01T10:00:00Z"},
    }

    post(client, "customers_email_marketing_consent/update", data)

    chris.refresh_from_db()
    assert chris.email_consent == ConsentStatus.UNSUBSCRIBED


def test_sms_consent_sample_without_state(client, shop):
    response = post_sample(client, "customers_marketing_consent__update.2026-01.json")

    contact = Contact.objects.get()
    assert response.status_code == 200
    assert contact.sms_consent == ConsentStatus.UNKNOWN


def test_sms_consent_subscribed(client, shop):
    post_sample(
        client,
        "customers_marketing_consent__update.2026-01.json",
        phone="+31612345678",
        sms_marketing_consent={"state": "subscribed", "opt_in_level": "single_opt_in", "consent_collected_from": "SHOPIFY"},
    )

    contact = Contact.objects.get()
    assert contact.phone == "+31612345678"
    assert contact.sms_consent == ConsentStatus.SUBSCRIBED
    assert contact.email_consent == ConsentStatus.UNKNOWN


def test_purchasing_summary_sets_totals(client, shop, bram):
    bram.external_id = "1"
    bram.save()

    post_sample(client, "customers__purchasing_summary.2026-01.json")

    bram.refresh_from_db()
    assert bram.order_count == 1
    assert bram.total_spent == Decimal("100.00")
    assert bram.currency == "USD"


def test_purchasing_summary_leaves_pending_orders(client, shop, t0):
    post_sample(client, "orders__create.2026-01.json")
    summary = {
        "customerId": "gid://shopify/Customer/115310627314723954",
        "numberOfOrders": 3,
        "amountSpent": {"amount": "504.95", "currencyCode": "USD"},
        "lastOrderId": f"gid://shopify/Order/{ORDER_ID}",
    }
    post(client, "customers/purchasing_summary", summary)
    tick(now=t0)

    contact = Contact.objects.get()
    assert contact.order_count == 3
    assert contact.total_spent == Decimal("504.95")


def test_purchasing_summary_rise_records_vip_event(client, shop, bram):
    from contacts.models import VipTier

    VipTier.objects.all().delete()
    VipTier.objects.create(name="Silver", rank=1, min_total_spent=Decimal("500"))
    bram.external_id = "1"
    bram.save()

    post_sample(client, "customers__purchasing_summary.2026-01.json", amountSpent={"amount": "650.00", "currencyCode": "EUR"})

    bram.refresh_from_db()
    assert bram.vip_tier.name == "Silver"
    assert list(Event.objects.filter(contact=bram, type="vip_tier_reached").values_list("properties__tier", flat=True)) == [
        "Silver"
    ]


# Privacy topics and app/uninstalled.


def test_uninstall_marks_shop_inactive(client, shop, t0):
    post_sample(client, "app__uninstalled.2026-01.json")

    shop.refresh_from_db()
    assert shop.active is False
    assert shop.uninstalled_at == t0 - timedelta(minutes=1)


def test_inactive_shop_webhooks_still_verify(client, shop):
    post_sample(client, "app__uninstalled.2026-01.json")

    response = post_sample(client, "shop__redact.2026-01.json")

    assert response.status_code == 200


def test_data_request_writes_export(client, shop, exports_dir):
    post_sample(client, "checkouts__create.2026-01.json")
    contact = Contact.objects.get()

    post_sample(client, "customers__data_request.2026-01.json")

    path = exports_dir / f"contact-{contact.pk}-shopify-data-request-9999.json"
    export = json.loads(path.read_text())
    assert export["contact"]["email"] == "john@example.com"
    assert [event["type"] for event in export["events"]] == ["checkout_started"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_data_request_unknown_customer_writes_nothing(client, shop, exports_dir):
    response = post_sample(client, "customers__data_request.2026-01.json")

    assert response.status_code == 200
    assert not exports_dir.exists()


def test_customer_redact_erases_contact(client, shop, t0):
    post_sample(client, "checkouts__create.2026-01.json")
    post_sample(client, "orders__create.2026-01.json", checkout_token="123123123")
    tick(now=t0)
    contact = Contact.objects.get()

    post_sample(client, "customers__redact.2026-01.json")

    contact.refresh_from_db()
    checkout = Event.objects.get(type="checkout_started")
    assert contact.email is None
    assert contact.first_name == ""
    assert contact.city == ""
    assert contact.attributes == {}
    assert contact.external_id == f"erased-{contact.pk}"
    assert contact.order_count == 1
    assert contact.total_spent == Decimal("404.95")
    assert Event.objects.filter(contact=contact).count() == 2
    assert checkout.key == "123123123"
    assert checkout.value == Decimal("421.88")
    assert "abandoned_checkout_url" not in checkout.properties
    assert checkout.properties["token"] == "123123123"


def test_customer_redact_unknown_customer_erases_nothing(client, shop, anna):
    response = post_sample(client, "customers__redact.2026-01.json")

    anna.refresh_from_db()
    assert response.status_code == 200
    assert anna.email == "anna@example.com"


def test_shop_redact_erases_shopify_contacts(client, shop, anna):
    post_sample(client, "customers__create.2026-01.json")
    post_sample(client, "checkouts__create.2026-01.json")

    post_sample(client, "shop__redact.2026-01.json")

    anna.refresh_from_db()
    assert not Contact.objects.filter(email__in=["bob@example.com", "john@example.com"]).exists()
    assert Contact.objects.filter(external_id__startswith="erased-").count() == 2
    assert anna.email == "anna@example.com"


def test_shop_redact_with_two_shops_erases_nothing(client, shop):
    Shop.objects.create(domain="tweede-winkel.myshopify.com", webhook_secret="other-secret")
    post_sample(client, "customers__create.2026-01.json")

    response = post_sample(client, "shop__redact.2026-01.json")

    assert response.status_code == 200
    assert Contact.objects.get().email == "bob@example.com"


# Saved bodies through ingest_events --shopify-topic.


def ingest_saved(path: Path, topic: str) -> str:
    stdout = io.StringIO()
    call_command("ingest_events", str(path), "--shopify-topic", topic, stdout=stdout)
    return stdout.getvalue()


def test_saved_order_body_ingested(shop):
    output = ingest_saved(DATA / "webhooks" / "orders__create.2026-01.json", "orders/create")

    event = only_event("order_placed")
    assert output.strip() == "1 event stored, 0 duplicates skipped."
    assert event.value == Decimal("404.95")
    assert event.source == Event.Source.SHOPIFY
    assert event.contact.email == "john@example.com"


def test_saved_body_ingested_twice_stored_once(db):
    ingest_saved(DATA / "webhooks" / "checkouts__create.2026-01.json", "checkouts/create")

    output = ingest_saved(DATA / "webhooks" / "checkouts__create.2026-01.json", "checkouts/create")

    assert output.strip() == "0 events stored, 1 duplicate skipped."
    assert only_event("checkout_started").source_id.startswith("file:")


def test_saved_body_from_standard_input(db):
    stdout = io.StringIO()
    body = sample_body("checkouts__update.2026-01.json").decode()

    call_command("ingest_events", "-", "--shopify-topic", "checkouts/update", stdin=io.StringIO(body), stdout=stdout)

    assert only_event("checkout_updated").key == "123123123"


def test_saved_malformed_body_rejected(db, tmp_path):
    path = tmp_path / "order.json"
    path.write_text('{"id": 820982911946154508, "line_items": ')

    with pytest.raises(CommandError) as raised:
        ingest_saved(path, "orders/create")

    assert "is not a valid orders/create webhook body: body: malformed JSON" in str(raised.value)
    assert not Event.objects.exists()


def test_saved_body_unknown_topic_rejected(db):
    with pytest.raises(CommandError) as raised:
        ingest_saved(DATA / "webhooks" / "orders__create.2026-01.json", "orders/created")

    assert "invalid choice: 'orders/created'" in str(raised.value)
