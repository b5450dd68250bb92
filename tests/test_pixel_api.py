"""The storefront pixel: a public key, throttled, answered across origins, limited to browsing events."""

import json

import pytest

from contacts.models import ApiKey

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

URL = "/api/events"


def post_event(client, raw_key: str, number: int, **headers):
    body = {"id": f"pixel-{number}", "type": "product_viewed", "external_id": "shopify-client-1", "properties": {"sku": "A1"}}
    return client.post(URL, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_key}", **headers)


def test_pixel_key_is_throttled(client, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"pixel": "3/min"}}
    _key, raw_key = ApiKey.generate("Storefront", scope=ApiKey.Scope.PIXEL)

    statuses = [post_event(client, raw_key, number).status_code for number in range(4)]

    assert statuses == [202, 202, 202, 429]
    body = post_event(client, raw_key, 5).json()
    assert body["errors"][0]["field"] == "request"


def test_full_key_is_not_throttled(client, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"pixel": "1/min"}}
    _key, raw_key = ApiKey.generate("Server", scope=ApiKey.Scope.FULL)

    statuses = [post_event(client, raw_key, number).status_code for number in range(3)]

    assert statuses == [202, 202, 202]


def test_cors_preflight_allowed_for_events(client):
    response = client.options(
        URL,
        HTTP_ORIGIN="https://demo-shop.myshopify.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in response["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response


def test_cors_not_offered_elsewhere(client):
    response = client.options("/admin/login/", HTTP_ORIGIN="https://evil.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")

    assert "Access-Control-Allow-Origin" not in response
