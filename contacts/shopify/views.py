"""POST /webhooks/shopify: verify the HMAC over the raw body, then hand the webhook to its topic.

A request without the required headers, from a shop with no secret here, or with a signature that
does not match gets 401. Nothing about it is stored, and its body is not logged either. Error
bodies are short stable phrases, because the only reader is Shopify's delivery log.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from contacts.shopify.payload import PayloadError, decode_body, read_time
from contacts.shopify.signature import find_shop, verify_signature
from contacts.shopify.topics import process_webhook
from contacts.shopify.webhook import Webhook

logger = logging.getLogger(__name__)

# Shopify's official library rejects a delivery without any of these. The delivery id is
# X-Shopify-Webhook-Id; "events" deliveries send shopify-* names and only an event id.
REQUIRED_HEADERS = ("Hmac-Sha256", "Topic", "Shop-Domain", "API-Version")


def shopify_header(request: HttpRequest, name: str) -> str:
    """Return X-Shopify-<name> or Shopify-<name>; header names match in any letter case."""
    value = request.headers.get(f"X-Shopify-{name}") or request.headers.get(f"Shopify-{name}") or ""
    return value.strip()


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
def shopify_webhook(request: HttpRequest) -> JsonResponse:
    headers = {name: shopify_header(request, name) for name in REQUIRED_HEADERS}
    webhook_id = shopify_header(request, "Webhook-Id") or shopify_header(request, "Event-Id")
    missing = [f"X-Shopify-{name}" for name, value in headers.items() if not value]
    if not webhook_id:
        missing.append("X-Shopify-Webhook-Id")
    if missing:
        logger.warning("Shopify webhook rejected: headers %s missing", ", ".join(missing))
        return error(401, f"missing headers: {', '.join(missing)}")

    domain = headers["Shop-Domain"].lower()
    shop, secret = find_shop(domain)
    if not secret:
        logger.warning(
            "Shopify webhook %s rejected: no Shop row or MKTAUTO_SHOPIFY_WEBHOOK_SECRET for %s", webhook_id, domain[:255]
        )
        return error(401, "unknown shop")

    try:
        body = request.body
    except RequestDataTooBig:
        logger.warning("Shopify webhook %s from %s rejected: body larger than DATA_UPLOAD_MAX_MEMORY_SIZE", webhook_id, domain)
        return error(413, "body too large")

    # The signature covers the raw bytes, so it is checked before anything parses them.
    if not verify_signature(secret, body, headers["Hmac-Sha256"]):
        logger.warning("Shopify webhook %s from %s rejected: signature does not match", webhook_id, domain)
        return error(401, "invalid signature")

    now = timezone.now()
    try:
        payload = decode_body(body)
    except PayloadError as problem:
        logger.warning("Shopify webhook %s (%s from %s) rejected: %s", webhook_id, headers["Topic"], domain, problem)
        return error(400, str(problem))

    webhook = Webhook(
        topic=headers["Topic"][:100],
        shop_domain=domain,
        webhook_id=webhook_id[:200],
        payload=payload,
        received_at=now,
        triggered_at=read_time(shopify_header(request, "Triggered-At"), now),
        shop=shop,
    )
    try:
        outcome = process_webhook(webhook)
    except PayloadError as problem:
        logger.warning("Shopify webhook %s (%s from %s) rejected: %s", webhook_id, webhook.topic, domain, problem)
        return error(400, str(problem))
    return JsonResponse({"topic": webhook.topic, "stored": outcome.stored, "duplicates": outcome.duplicates})
