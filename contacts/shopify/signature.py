"""Shopify webhook signatures: base64(HMAC-SHA256(client secret, raw body)), and the secret per shop."""

import base64
import hashlib
import hmac
import logging

from django.conf import settings

from contacts.models import Shop

logger = logging.getLogger(__name__)

# The setting that verifies webhooks of a shop without a Shop row: the app's client secret, the
# same for every shop that installed the app.
SECRET_SETTING = "MKTAUTO_SHOPIFY_WEBHOOK_SECRET"


def compute_signature(secret: str, body: bytes) -> str:
    """Return the value Shopify puts in X-Shopify-Hmac-Sha256 for this body (base64, not hex)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(secret: str, body: bytes, signature: str) -> bool:
    """Return whether the signature matches the raw body bytes, compared in constant time."""
    if not secret or not signature:
        return False
    expected = compute_signature(secret, body)
    # compare_digest on ASCII bytes: a str argument with non-ASCII characters would raise TypeError.
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("ascii", errors="replace"))


def find_shop(domain: str) -> tuple[Shop | None, str]:
    """Return the shop's row, if any, and the secret that verifies its webhooks ("" when none does)."""
    shop = Shop.objects.filter(domain=domain.strip().lower()).first()
    if shop is not None:
        return shop, shop.webhook_secret
    return None, getattr(settings, SECRET_SETTING, "") or ""
