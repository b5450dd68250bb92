"""Taking events in: validate, resolve the contact, store durably. Processing happens later (the inbox)."""

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from contacts import catalogue
from contacts.identity import IdentityError, get_or_create_contact, normalize_email, normalize_phone
from contacts.models import Event

logger = logging.getLogger(__name__)

EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Clocks of senders drift; an event further ahead than this is a mistake, not a plan.
MAX_FUTURE_SKEW = timedelta(hours=1)


class EventError(ValueError):
    """An invalid event; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


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


def parse_event(data: Any, *, now: datetime | None = None, allowed_types: set[str] | None = None) -> ParsedEvent:
    """Validate one event payload and return it normalised; raise EventError naming the bad field."""
    now = now or timezone.now()
    if not isinstance(data, dict):
        raise EventError("event", f"must be a JSON object, got {type(data).__name__}")

    unknown = set(data) - {"id", "type", "email", "phone", "external_id", "occurred_at", "properties"}
    if unknown:
        raise EventError(
            sorted(unknown)[0], "unknown field; allowed: id, type, email, phone, external_id, occurred_at, properties"
        )

    event_type = data.get("type")
    if not isinstance(event_type, str) or not EVENT_TYPE_PATTERN.match(event_type):
        raise EventError("type", f"{event_type!r} is not a valid event type; use lower-case snake_case like order_placed")
    if allowed_types is not None and event_type not in allowed_types:
        raise EventError("type", f"{event_type!r} is not allowed with this key; allowed: {', '.join(sorted(allowed_types))}")

    source_id = data.get("id")
    if source_id is not None:
        if not isinstance(source_id, (str, int)) or isinstance(source_id, bool) or str(source_id) == "":
            raise EventError("id", f"{source_id!r} is not a valid id; send a non-empty string")
        source_id = str(source_id)
        if len(source_id) > 200:
            raise EventError("id", "is longer than 200 characters")

    identities = {}
    for name in ("email", "phone", "external_id"):
        raw = data.get(name)
        if raw in (None, ""):
            continue
        if not isinstance(raw, (str, int)) or isinstance(raw, bool):
            raise EventError(name, f"{raw!r} must be a string")
        identities[name] = str(raw).strip()
    if not identities:
        raise EventError("email", "missing; send email, phone or external_id to say whose event this is")
    try:
        email = normalize_email(identities.get("email", ""))
    except IdentityError as error:
        raise EventError("email", str(error)) from None
    try:
        phone = normalize_phone(identities.get("phone", ""))
    except IdentityError as error:
        raise EventError("phone", str(error)) from None
    external_id = identities.get("external_id", "")[:100]

    occurred_raw = data.get("occurred_at")
    if occurred_raw in (None, ""):
        occurred_at = now
    else:
        occurred_at = parse_datetime(occurred_raw) if isinstance(occurred_raw, str) else None
        if occurred_at is None:
            raise EventError("occurred_at", f"{occurred_raw!r} is not an ISO 8601 date-time like 2026-03-01T09:30:00+01:00")
        if timezone.is_naive(occurred_at):
            occurred_at = timezone.make_aware(occurred_at, timezone.utc)
        if occurred_at > now + MAX_FUTURE_SKEW:
            raise EventError("occurred_at", f"{occurred_raw!r} is in the future")

    properties = data.get("properties") or {}
    if not isinstance(properties, dict):
        raise EventError("properties", "must be a JSON object")

    value = catalogue.event_value(properties)
    currency = str(properties.get("currency") or "")[:3].upper()
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


def store_events(events: list[ParsedEvent], source: str, *, now: datetime | None = None) -> StoreResult:
    """Store parsed events, skipping ids already stored for this source; create unknown contacts.

    Runs in one transaction, so a batch is stored whole or not at all.
    """
    now = now or timezone.now()
    result = StoreResult()

    with transaction.atomic():
        ids = [event.source_id for event in events if event.source_id]
        seen = set(Event.objects.filter(source=source, source_id__in=ids).values_list("source_id", flat=True))

        to_create = []
        for parsed in events:
            if parsed.source_id and parsed.source_id in seen:
                result.duplicates += 1
                continue
            if parsed.source_id:
                seen.add(parsed.source_id)
            contact, _created = get_or_create_contact(email=parsed.email, phone=parsed.phone, external_id=parsed.external_id)
            to_create.append(
                Event(
                    source=source,
                    source_id=parsed.source_id,
                    type=parsed.type,
                    contact=contact,
                    occurred_at=parsed.occurred_at,
                    received_at=now,
                    properties=parsed.properties,
                    key=parsed.key,
                    value=parsed.value,
                    currency=parsed.currency,
                )
            )
        result.created = Event.objects.bulk_create(to_create)

    logger.info("stored %s events from %s, %s duplicates skipped", len(result.created), source, result.duplicates)
    return result
