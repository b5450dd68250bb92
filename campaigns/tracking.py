"""Signed tracking tokens and what happens when a recipient opens, clicks or unsubscribes."""

import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from campaigns.metrics import MetricBatch
from campaigns.models import Delivery
from contacts.consent import set_consent
from contacts.models import Channel, ConsentStatus, Contact, Event

logger = logging.getLogger(__name__)

OPEN_SALT = "mktauto.tracking.open"
CLICK_SALT = "mktauto.tracking.click"
UNSUBSCRIBE_SALT = "mktauto.unsubscribe"


class InvalidToken(signing.BadSignature):
    """A tracking or unsubscribe token that was not made here, was changed, or is malformed."""


def open_pixel_url(delivery: Delivery) -> str:
    token = signing.dumps(delivery.pk, salt=OPEN_SALT)
    return settings.MKTAUTO_BASE_URL + reverse("campaigns:open", args=[token])


def click_url(delivery: Delivery, url: str) -> str:
    # The token signs the destination, so the redirect can only lead to a link that was in this
    # message: a changed URL fails the signature check (no open redirect).
    token = signing.dumps([delivery.pk, url], salt=CLICK_SALT, compress=True)
    return settings.MKTAUTO_BASE_URL + reverse("campaigns:click", args=[token])


def unsubscribe_token(delivery: Delivery) -> str:
    return signing.dumps([delivery.contact_id, delivery.pk, delivery.channel], salt=UNSUBSCRIBE_SALT)


def unsubscribe_url(delivery: Delivery) -> str:
    return settings.MKTAUTO_BASE_URL + reverse("campaigns:unsubscribe", args=[unsubscribe_token(delivery)])


def preferences_url(delivery: Delivery) -> str:
    """Return the preference page's URL, which takes the same signed token as the unsubscribe link."""
    return settings.MKTAUTO_BASE_URL + reverse("campaigns:preferences", args=[unsubscribe_token(delivery)])


def read_open_token(token: str) -> int:
    try:
        delivery_id = signing.loads(token, salt=OPEN_SALT)
    except signing.BadSignature:
        raise InvalidToken(f"bad open token {token[:40]!r}") from None
    if not isinstance(delivery_id, int):
        raise InvalidToken(f"open token {token[:40]!r} contains no delivery id")
    return delivery_id


def read_click_token(token: str) -> tuple[int, str]:
    """Return the delivery id and destination of a click token; only absolute http(s) destinations pass."""
    try:
        payload = signing.loads(token, salt=CLICK_SALT)
    except signing.BadSignature:
        raise InvalidToken(f"bad click token {token[:40]!r}") from None
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], int) and isinstance(payload[1], str)):
        raise InvalidToken(f"click token {token[:40]!r} contains no delivery id and URL")
    delivery_id, url = payload
    if not is_redirect_target(url):
        raise InvalidToken(f"click token {token[:40]!r} leads to {url[:80]!r}, which is not an http(s) URL")
    return delivery_id, url


def is_redirect_target(url: str) -> bool:
    """Return whether a click may redirect to the URL: absolute http(s), with a host, no control characters."""
    if any(ord(character) < 32 or ord(character) == 127 for character in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def read_unsubscribe_token(token: str) -> tuple[int, int | None, str]:
    try:
        payload = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        raise InvalidToken(f"bad unsubscribe token {token[:40]!r}") from None
    if not (isinstance(payload, list) and len(payload) == 3 and payload[2] in Channel.values):
        raise InvalidToken(f"unsubscribe token {token[:40]!r} contains no contact, delivery and channel")
    contact_id, delivery_id, channel = payload
    return int(contact_id), delivery_id, str(channel)


def record_open(delivery: Delivery, *, at: datetime | None = None, proxy_reason: str = "") -> bool:
    """Record the first open of a delivery; return False for repeats.

    An open with a ``proxy_reason`` (see campaigns/traffic.py) is a mail privacy proxy loading
    images: it is flagged and counted as opened_proxy, and stores no email_opened event.
    """
    at = at or timezone.now()
    if proxy_reason:
        return record_machine(delivery, "proxy_opened_at", "opened_proxy", at, proxy_reason)
    with transaction.atomic():
        # Conditional update: only the first of two concurrent opens counts.
        if not Delivery.objects.filter(pk=delivery.pk, opened_at__isnull=True).update(opened_at=at):
            return False
        metrics = MetricBatch()
        metrics.add(delivery.step_id, at, "opened")
        metrics.write()
        record_event(delivery, "email_opened", at, {})
    logger.info("delivery %s opened by contact %s", delivery.pk, delivery.contact_id)
    return True


def record_click(delivery: Delivery, url: str, *, at: datetime | None = None, scanner_reason: str = "") -> bool:
    """Record a click; the first click counts once for the step, and a click implies an open.

    A click with a ``scanner_reason`` is a link scanner's: it is flagged and counted as
    clicked_scanner, implies no open and stores no link_clicked event.
    """
    at = at or timezone.now()
    if scanner_reason:
        return record_machine(delivery, "scanner_clicked_at", "clicked_scanner", at, scanner_reason)
    record_open(delivery, at=at)
    with transaction.atomic():
        first = bool(Delivery.objects.filter(pk=delivery.pk, clicked_at__isnull=True).update(clicked_at=at))
        if first:
            metrics = MetricBatch()
            metrics.add(delivery.step_id, at, "clicked")
            metrics.write()
        record_event(delivery, "link_clicked", at, {"url": url}, unique=first)
    logger.info("delivery %s: contact %s clicked %s", delivery.pk, delivery.contact_id, url[:200])
    return first


def record_machine(delivery: Delivery, field: str, counter: str, at: datetime, reason: str) -> bool:
    """Flag the first machine open or click of a delivery and count it apart from human ones."""
    with transaction.atomic():
        first = bool(Delivery.objects.filter(pk=delivery.pk, **{f"{field}__isnull": True}).update(**{field: at}))
        if first:
            metrics = MetricBatch()
            metrics.add(delivery.step_id, at, counter)
            metrics.write()
    logger.info("delivery %s: %s not counted as a person (%s)", delivery.pk, counter, reason)
    return first


def record_unsubscribe(
    delivery: Delivery | None, contact: Contact, channel: str, *, source: str, proof: str = "", at: datetime | None = None
) -> bool:
    """Withdraw consent for a channel; receivers of consent_withdrawn stop every promotional send."""
    at = at or timezone.now()
    with transaction.atomic():
        changed = set_consent(contact, channel, ConsentStatus.UNSUBSCRIBED, source=source, proof=proof, at=at)
        if delivery is not None and Delivery.objects.filter(pk=delivery.pk, unsubscribed_at__isnull=True).update(
            unsubscribed_at=at
        ):
            metrics = MetricBatch()
            metrics.add(delivery.step_id, at, "unsubscribed")
            metrics.write()
            # For the inbox, so workflows and reports see the unsubscribe like any other event.
            record_event(delivery, "unsubscribed", at, {"channel": channel})
    logger.info(
        "contact %s unsubscribed from %s (delivery %s, changed: %s)", contact.pk, channel, getattr(delivery, "pk", None), changed
    )
    return changed


def record_event(delivery: Delivery, event_type: str, at: datetime, properties: dict[str, Any], *, unique: bool = True) -> None:
    """Store an engagement event for the inbox; a unique one is keyed so a repeat is not stored twice."""
    properties = {**properties, "delivery_id": delivery.pk, "message": delivery.template_id}
    # received_at follows the given time, so a simulation on a virtual clock sees the event arrive then.
    fields = {
        "type": event_type,
        "contact_id": delivery.contact_id,
        "occurred_at": at,
        "received_at": at,
        "properties": properties,
    }
    if not unique:
        Event.objects.create(source=Event.Source.TRACKING, **fields)
        return
    Event.objects.get_or_create(source=Event.Source.TRACKING, source_id=f"{event_type}:{delivery.pk}", defaults=fields)
