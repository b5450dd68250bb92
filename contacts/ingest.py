"""Taking events in: validate, resolve the contact, store durably. Processing happens later (the inbox)."""

import difflib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from contacts import catalogue
from contacts.identity import IdentityError, get_or_create_contact, normalize_email, normalize_external_id, normalize_phone
from contacts.models import Contact, Event

logger = logging.getLogger(__name__)

EVENT_FIELDS = ("id", "type", "email", "phone", "external_id", "occurred_at", "properties")
# Event.source_id is a CharField(max_length=200).
MAX_SOURCE_ID_LENGTH = 200
# Senders' clocks drift, but an event further ahead than this is a mistake, not a plan.
MAX_FUTURE_SKEW = timedelta(hours=1)
# Event.value is a DecimalField(max_digits=14, decimal_places=2): 12 digits fit before the point.
MAX_AMOUNT = Decimal("1000000000000")
# A store that loses a race with a concurrent one (same event id, same new contact) is retried,
# and the retry reads the other store's rows and skips or reuses them.
STORE_ATTEMPTS = 3


class EventError(ValueError):
    """An invalid event: ``field`` names the offending field and ``message`` describes the problem.

    ``problems`` lists every (field, message) found in the event, the first one included.
    """

    def __init__(self, field_name: str, message: str, *, more: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message
        self.problems = [(field_name, message), *(more or [])]

    @classmethod
    def of(cls, problems: list[tuple[str, str]]) -> "EventError":
        (field_name, message), *more = problems
        return cls(field_name, message, more=more)


@dataclass
class ParsedEvent:
    type: str
    occurred_at: datetime
    properties: dict[str, Any]
    source_id: str | None = None
    email: str = ""
    phone: str = ""
    external_id: str = ""
    key: str = ""
    value: Decimal | None = None
    currency: str = ""


@dataclass
class StoreResult:
    created: list[Event] = field(default_factory=list)
    duplicates: int = 0


def decode_json(raw: str | bytes) -> Any:
    """Parse JSON text; raise EventError on malformed input, including NaN and Infinity.

    Python's json module accepts NaN and Infinity, but PostgreSQL's jsonb and the Decimal money
    columns do not, so they are rejected here instead of failing at insert time.
    """
    try:
        return json.loads(raw, parse_constant=reject_json_constant)
    except RecursionError:
        raise EventError("body", _("malformed JSON: nested too deeply")) from None
    except ValueError as error:
        # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors.
        raise EventError("body", _("malformed JSON: %(error)s") % {"error": error}) from None


def reject_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_event(data: Any, *, now: datetime | None = None, allowed_types: set[str] | None = None) -> ParsedEvent:
    """Validate one event payload and return it normalised.

    Raise EventError naming the bad field; its ``problems`` list every field found wrong, so a
    sender fixes them all in one go.
    """
    now = now or timezone.now()
    if not isinstance(data, dict):
        raise EventError("event", _("must be a JSON object, got %(type)s") % {"type": json_type_name(data)})

    problems: list[tuple[str, str]] = []

    def attempt(parse: Any, *args: Any) -> Any:
        try:
            return parse(*args)
        except EventError as error:
            problems.extend(error.problems)
            return None

    for name in sorted(set(data) - set(EVENT_FIELDS)):
        problems.append((name, _("unknown field; allowed: %(fields)s") % {"fields": ", ".join(EVENT_FIELDS)}))
    event_type = attempt(parse_type, data.get("type"), allowed_types)
    source_id = attempt(parse_source_id, data.get("id"))
    identities = attempt(parse_identities, data)
    occurred_at = attempt(parse_occurred_at, data.get("occurred_at"), now)

    properties = data.get("properties")
    if properties is None:
        properties = {}
    if isinstance(properties, dict):
        attempt(check_no_nul, properties, "properties")
        value = attempt(parse_value, properties)
        currency = attempt(parse_currency, properties)
    else:
        problems.append(("properties", _("must be a JSON object, got %(type)s") % {"type": json_type_name(properties)}))
    if problems:
        raise EventError.of(problems)

    email, phone, external_id = identities
    return ParsedEvent(
        type=event_type,
        occurred_at=occurred_at,
        properties=properties,
        source_id=source_id,
        email=email,
        phone=phone,
        external_id=external_id,
        key=catalogue.event_key(event_type, properties),
        value=value,
        currency=currency,
    )


def parse_type(raw: Any, allowed_types: set[str] | None) -> str:
    if raw in (None, ""):
        raise EventError("type", _("missing; send an event type such as order_placed"))
    if not isinstance(raw, str):
        raise EventError("type", _("must be a string, got %(type)s") % {"type": json_type_name(raw)})
    if raw not in catalogue.EVENT_TYPES:
        close = difflib.get_close_matches(raw, catalogue.EVENT_TYPES, n=1)
        if close:
            hint = _("did you mean %(type)s?") % {"type": close[0]}
        else:
            hint = _("use one of: %(types)s") % {"types": ", ".join(sorted(catalogue.EVENT_TYPES))}
        raise EventError("type", _("unknown event type %(value)r; %(hint)s") % {"value": raw[:64], "hint": hint})
    if allowed_types is not None and raw not in allowed_types:
        raise EventError(
            "type",
            _("%(value)r is not allowed with this API key; allowed: %(types)s")
            % {"value": raw, "types": ", ".join(sorted(allowed_types))},
        )
    return raw


def parse_source_id(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise EventError("id", _("%(value)r is not a valid id; send a non-empty string") % {"value": raw})
    source_id = str(raw).strip()
    if not source_id:
        raise EventError("id", _("is empty; send a non-empty string or leave the field out"))
    if len(source_id) > MAX_SOURCE_ID_LENGTH:
        raise EventError(
            "id",
            _("is %(length)s characters long; at most %(limit)s fit") % {"length": len(source_id), "limit": MAX_SOURCE_ID_LENGTH},
        )
    check_no_nul(source_id, "id")
    return source_id


def parse_identities(data: dict[str, Any]) -> tuple[str, str, str]:
    """Return (email, phone, external_id), normalised; at least one must be present."""
    raw = {}
    for name in ("email", "phone", "external_id"):
        value = data.get(name)
        if value in (None, ""):
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise EventError(name, _("must be a string, got %(type)s") % {"type": json_type_name(value)})
        raw[name] = str(value)
    if not raw:
        raise EventError("email", _("missing; send email, phone or external_id to say whose event this is"))

    normalizers = {"email": normalize_email, "phone": normalize_phone, "external_id": normalize_external_id}
    normalized = {}
    for name, value in raw.items():
        try:
            normalized[name] = normalizers[name](value)
        except IdentityError as error:
            raise EventError(name, str(error)) from None
    if not any(normalized.values()):
        raise EventError("email", _("missing; send email, phone or external_id to say whose event this is"))
    return normalized.get("email", ""), normalized.get("phone", ""), normalized.get("external_id", "")


def parse_occurred_at(raw: Any, now: datetime) -> datetime:
    if raw in (None, ""):
        return now
    if not isinstance(raw, str):
        raise EventError("occurred_at", not_a_date_time(raw))
    try:
        occurred_at = parse_datetime(raw.strip())
    except ValueError:
        # Well-formed but impossible, e.g. month 13.
        occurred_at = None
    if occurred_at is None:
        raise EventError("occurred_at", not_a_date_time(raw[:60]))
    if timezone.is_naive(occurred_at):
        occurred_at = occurred_at.replace(tzinfo=UTC)
    try:
        occurred_at = occurred_at.astimezone(UTC)
    except OverflowError:
        raise EventError("occurred_at", _("%(value)r is out of range") % {"value": raw}) from None
    if occurred_at > now + MAX_FUTURE_SKEW:
        raise EventError("occurred_at", _("%(value)r is in the future; send the time the event happened") % {"value": raw})
    return occurred_at


def not_a_date_time(raw: Any) -> str:
    return _("%(value)r is not an ISO 8601 date-time; send a string like 2026-03-01T09:30:00+01:00") % {"value": raw}


def not_an_amount(raw: Any) -> str:
    return _('%(value)r is not an amount; send a decimal number with a point, preferably as a string like "59.95"') % {
        "value": raw
    }


def parse_value(properties: dict[str, Any]) -> Decimal | None:
    """Return the event's money value; amounts are read from their text, never through float arithmetic."""
    for name in catalogue.VALUE_PROPERTIES:
        raw = properties.get(name)
        if raw is None or raw == "":
            continue
        field_name = f"properties.{name}"
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise EventError(field_name, not_an_amount(raw))
        try:
            # str() of a JSON number gives its shortest decimal form, so 59.95 reads as Decimal("59.95").
            amount = Decimal(str(raw))
        except InvalidOperation:
            raise EventError(field_name, not_an_amount(raw)) from None
        if not amount.is_finite():
            raise EventError(field_name, not_an_amount(raw))
        value = catalogue.event_value({name: raw})
        if value is None or abs(value) >= MAX_AMOUNT:
            raise EventError(
                field_name, _("%(value)r is too large; amounts below %(limit)s fit") % {"value": raw, "limit": MAX_AMOUNT}
            )
        return value
    return None


def parse_currency(properties: dict[str, Any]) -> str:
    raw = properties.get("currency")
    if raw is None or raw == "":
        return ""
    if not isinstance(raw, str) or len(raw.strip()) != 3 or not raw.strip().isascii() or not raw.strip().isalpha():
        raise EventError(
            "properties.currency", _("%(value)r is not a currency code; send three letters like EUR") % {"value": raw}
        )
    return raw.strip().upper()


def check_no_nul(value: Any, path: str) -> None:
    """Raise EventError for a NUL character anywhere in the value, because PostgreSQL cannot store one in text or jsonb."""
    if isinstance(value, str):
        if "\x00" in value:
            raise EventError(path, _("contains a NUL character (\\u0000), which cannot be stored"))
    elif isinstance(value, dict):
        for key, item in value.items():
            check_no_nul(key, path)
            check_no_nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_no_nul(item, f"{path}[{index}]")


def json_type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


def store_events(
    events: list[ParsedEvent], source: str, *, now: datetime | None = None, fill_identities: bool = True
) -> StoreResult:
    """Store parsed events, skipping ids already stored for this source; create unknown contacts.

    Each attempt runs in one transaction, so a batch is stored whole or not at all. Without
    ``fill_identities`` an event never adds an email, phone or external id to a known contact.
    """
    now = now or timezone.now()
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            result = store_once(events, source, now, fill_identities)
        except IntegrityError:
            if attempt == STORE_ATTEMPTS:
                raise
            logger.warning("storing %s events from %s collided with a concurrent store, attempt %s", len(events), source, attempt)
            continue
        logger.info("stored %s events from %s, %s duplicates skipped", len(result.created), source, result.duplicates)
        return result
    raise AssertionError("unreachable")


def store_once(events: list[ParsedEvent], source: str, now: datetime, fill_identities: bool) -> StoreResult:
    result = StoreResult()
    with transaction.atomic():
        ids = [event.source_id for event in events if event.source_id]
        seen = set(Event.objects.filter(source=source, source_id__in=ids).values_list("source_id", flat=True))

        contacts: dict[tuple[str, str, str], Contact] = {}
        to_create = []
        for parsed in events:
            if parsed.source_id and parsed.source_id in seen:
                result.duplicates += 1
                continue
            if parsed.source_id:
                seen.add(parsed.source_id)

            identity = (parsed.email, parsed.phone, parsed.external_id)
            if identity not in contacts:
                contacts[identity], _created = get_or_create_contact(
                    email=parsed.email, phone=parsed.phone, external_id=parsed.external_id, fill_missing=fill_identities
                )
            to_create.append(
                Event(
                    source=source,
                    source_id=parsed.source_id,
                    type=parsed.type,
                    contact=contacts[identity],
                    occurred_at=parsed.occurred_at,
                    received_at=now,
                    properties=parsed.properties,
                    key=parsed.key,
                    value=parsed.value,
                    currency=parsed.currency,
                )
            )
        result.created = Event.objects.bulk_create(to_create)
    return result
