"""Reading Shopify webhook bodies: exact numbers, money as Decimal, ids as strings, times in UTC.

Shopify ids exceed 2**53 and its amounts are decimal strings, so numbers are never read through
float: JSON fractions become Decimal and ids are kept as their decimal text.
"""

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_datetime

logger = logging.getLogger(__name__)

# Event.value is a DecimalField(max_digits=14, decimal_places=2): 12 digits fit before the point.
MAX_AMOUNT = Decimal("1000000000000")
CENT = Decimal("0.01")
# A Shopify GraphQL id, e.g. gid://shopify/Customer/706405506930370084.
GID_PATTERN = re.compile(r"^gid://shopify/[A-Za-z]+/(\d+)(\?.*)?$")
# Shop clocks drift a little; a time further ahead than this is replaced by the time of receipt.
MAX_FUTURE_SKEW = timedelta(hours=1)


class PayloadError(ValueError):
    """A webhook body that cannot be read; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse the body as a JSON object, reading fractions as Decimal; raise PayloadError when malformed."""
    try:
        data = json.loads(body, parse_float=Decimal, parse_constant=reject_constant)
    except RecursionError:
        raise PayloadError("body", "malformed JSON: nested too deeply") from None
    except ValueError as error:
        # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors.
        raise PayloadError("body", f"malformed JSON: {error}") from None
    if not isinstance(data, dict):
        raise PayloadError("body", f"must be a JSON object, got {type(data).__name__}")
    return data


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_object(data: dict[str, Any], name: str) -> dict[str, Any]:
    """Return the nested object ``name``, or {} when it is missing or null."""
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(name, f"must be a JSON object, got {type(value).__name__}")
    return value


def read_list(data: dict[str, Any], name: str) -> list[Any]:
    """Return the list ``name``, or [] when it is missing or null."""
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(name, f"must be a JSON array, got {type(value).__name__}")
    return value


def read_id(raw: Any, field_name: str) -> str:
    """Return a Shopify id as its decimal text: from an integer, a digit string or a gid:// URI."""
    if raw is None or raw == "":
        return ""
    if isinstance(raw, bool):
        raise PayloadError(field_name, f"{raw!r} is not an id")
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, str):
        value = raw.strip()
        match = GID_PATTERN.match(value)
        if match:
            return match.group(1)
        if value and len(value) <= 100 and value.isprintable():
            return value
    raise PayloadError(field_name, f"{str(raw)[:60]!r} is not an id; Shopify sends ids as integers or gid:// strings")


def read_money(raw: Any, field_name: str) -> Decimal | None:
    """Return an amount rounded to cents, or None when it is missing; raise PayloadError when it is not one."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, Decimal)):
        raise PayloadError(field_name, f"{raw!r} is not an amount")
    try:
        amount = Decimal(str(raw).strip())
    except InvalidOperation:
        raise PayloadError(field_name, f"{str(raw)[:60]!r} is not an amount") from None
    if not amount.is_finite() or abs(amount) >= MAX_AMOUNT:
        raise PayloadError(field_name, f"{str(raw)[:60]!r} is not an amount below {MAX_AMOUNT}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def money_text(amount: Decimal | None) -> str:
    """Return an amount as the string event properties hold, "" for none."""
    return "" if amount is None else str(amount)


def read_text(raw: Any, max_length: int | None = None) -> str:
    """Return a string value without NUL characters (PostgreSQL cannot store them), or "" for anything else."""
    if raw is None or isinstance(raw, (bool, dict, list)):
        return ""
    value = str(raw).replace("\x00", "").strip()
    return value[:max_length] if max_length else value


def read_currency(raw: Any) -> str:
    value = read_text(raw).upper()
    return value if len(value) == 3 and value.isascii() and value.isalpha() else ""


def read_quantity(raw: Any) -> int:
    if isinstance(raw, bool):
        return 0
    if isinstance(raw, int):
        return raw
    try:
        return int(Decimal(str(raw)))
    except (InvalidOperation, ValueError, OverflowError):
        return 0


def read_time(raw: Any, now: datetime) -> datetime | None:
    """Return an ISO 8601 time in UTC, or None when it is missing, unreadable or too far in the future."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        parsed = parse_datetime(raw.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        logger.warning("unreadable time %r in a Shopify webhook; the time of receipt is used", raw[:40])
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    if parsed > now + MAX_FUTURE_SKEW:
        logger.warning("time %s in a Shopify webhook is in the future; the time of receipt is used", parsed.isoformat())
        return None
    return parsed


def line_items(items: list[Any], field_name: str = "line_items") -> list[dict[str, Any]]:
    """Return the product facts of each line item: ids as strings, prices as decimal strings."""
    result = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise PayloadError(f"{field_name}[{index}]", f"must be a JSON object, got {type(item).__name__}")
        line = {
            "product_id": read_id(item.get("product_id"), f"{field_name}[{index}].product_id"),
            "variant_id": read_id(item.get("variant_id"), f"{field_name}[{index}].variant_id"),
            "title": read_text(item.get("title"), 255),
            "variant_title": read_text(item.get("variant_title"), 255),
            "sku": read_text(item.get("sku"), 100),
            "quantity": read_quantity(item.get("quantity")),
            "price": money_text(read_money(item.get("price"), f"{field_name}[{index}].price")),
        }
        if item.get("line_price") not in (None, ""):
            line["line_price"] = money_text(read_money(item.get("line_price"), f"{field_name}[{index}].line_price"))
        result.append(line)
    return result


def discount_codes(codes: list[Any]) -> list[str]:
    """Return the discount codes used, e.g. ["WELKOM10"]; Shopify sends objects with a code and an amount."""
    result = []
    for entry in codes:
        code = read_text(entry.get("code") if isinstance(entry, dict) else entry, 255)
        if code:
            result.append(code)
    return result
