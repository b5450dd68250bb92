"""Product lines as messages show them, read from trigger data: cart and order line items, a viewed product.

Trigger data comes from Shopify webhooks, the events API and the demo, so every field is optional and
read leniently: a line without a usable price shows no price, never a wrong one.
"""

import logging
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from django.utils import formats, translation

logger = logging.getLogger(__name__)

TITLE_KEYS = ("title", "name", "product_title")
IMAGE_KEYS = ("image_url", "image", "image_src", "featured_image")
URL_KEYS = ("url", "product_url", "link")
DETAIL_KEYS = ("variant_title", "category")
CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
MAX_QUANTITY = 10_000


@dataclass(frozen=True)
class ProductLine:
    title: str
    key: str
    quantity: int | None = None
    unit_price: Decimal | None = None
    line_price: Decimal | None = None
    image_url: str = ""
    url: str = ""
    detail: str = ""
    category: str = ""


def read_text(raw: Any, limit: int = 255) -> str:
    if raw is None or isinstance(raw, (dict, list, bool)):
        return ""
    return " ".join(str(raw).split())[:limit]


def read_amount(raw: Any) -> Decimal | None:
    """Return a price as a Decimal; Shopify sends strings such as "24.95". Floats are read through str()."""
    if raw is None or isinstance(raw, (bool, dict, list)) or raw == "":
        return None
    try:
        amount = Decimal(str(raw).strip())
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    return amount


def read_quantity(raw: Any) -> int | None:
    if raw is None or isinstance(raw, (bool, dict, list)):
        return None
    try:
        number = float(str(raw).strip())
    except ValueError:
        return None
    if not math.isfinite(number) or number < 1 or number != int(number):
        return None
    return min(int(number), MAX_QUANTITY)


def https_url(raw: Any) -> str:
    """Return the value when it is an absolute https URL, else "": an http image is blocked or warned about by many mail clients."""
    url = read_text(raw, 2000)
    parts = urlsplit(url) if url else None
    if parts is None or parts.scheme.lower() != "https" or not parts.netloc or " " in url:
        return ""
    return url


def web_url(raw: Any) -> str:
    """Return the value when it is an absolute http(s) URL, else ""."""
    url = read_text(raw, 2000)
    parts = urlsplit(url) if url else None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc or " " in url:
        return ""
    return url


def image_of(item: dict[str, Any]) -> str:
    for key in IMAGE_KEYS:
        raw = item.get(key)
        if isinstance(raw, dict):
            raw = raw.get("src") or raw.get("url")
        url = https_url(raw)
        if url:
            return url
    return ""


def first_text(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = read_text(item.get(key))
        if value:
            return value
    return ""


def product_line(item: Any) -> ProductLine | None:
    """Return the line for one line item or product, or None when it has no title to show."""
    if not isinstance(item, dict):
        return None
    title = first_text(item, TITLE_KEYS)
    if not title:
        return None

    quantity = read_quantity(item.get("quantity"))
    unit_price = read_amount(item.get("price"))
    line_price = read_amount(item.get("line_price"))
    if line_price is None and unit_price is not None:
        line_price = unit_price * (quantity or 1)
    key = read_text(item.get("product_id")) or title.casefold()
    return ProductLine(
        title=title,
        key=key,
        quantity=quantity,
        unit_price=unit_price,
        line_price=line_price,
        image_url=image_of(item),
        url=first_url(item),
        detail=first_text(item, DETAIL_KEYS),
        category=read_text(item.get("category")),
    )


def first_url(item: dict[str, Any]) -> str:
    for key in URL_KEYS:
        url = web_url(item.get(key))
        if url:
            return url
    return ""


def line_items(trigger: dict[str, Any]) -> list[ProductLine]:
    """Return the trigger's ``line_items`` that have a title, in their order."""
    raw = trigger.get("line_items")
    if not isinstance(raw, list):
        return []
    lines = [product_line(item) for item in raw]
    return [line for line in lines if line is not None]


def viewed_product(trigger: dict[str, Any]) -> ProductLine | None:
    """Return the product of a product_viewed trigger: its properties, or a nested "product" object."""
    nested = trigger.get("product")
    if isinstance(nested, dict):
        line = product_line(nested)
        if line is not None:
            return line
    return product_line(trigger)


def format_price(amount: Decimal, currency: str, language: str) -> str:
    """Format an amount as the contact's language writes it: "€ 24,95" in Dutch, "€24.95" in English."""
    with translation.override(language):
        number = formats.number_format(amount.quantize(Decimal("0.01")), decimal_pos=2, use_l10n=True)
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    if symbol is None:
        return f"{currency.upper()} {number}"
    if language.lower().startswith("nl"):
        return f"{symbol} {number}"
    return f"{symbol}{number}"
