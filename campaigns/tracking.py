"""Signed tracking tokens and what happens when a recipient opens, clicks or unsubscribes."""

import logging
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from campaigns.metrics import MetricBatch
from campaigns.models import Delivery
from contacts.consent import set_consent
from contacts.models import ConsentStatus, Event

logger = logging.getLogger(__name__)

OPEN_SALT = "mktauto.tracking.open"
CLICK_SALT = "mktauto.tracking.click"
UNSUBSCRIBE_SALT = "mktauto.unsubscribe"


def open_pixel_url(delivery: Delivery) -> str:
    token = signing.dumps(delivery.pk, salt=OPEN_SALT)
    return settings.MKTAUTO_BASE_URL + reverse("campaigns:open", args=[token])


def click_url(delivery: Delivery, url: str) -> str:
    # The token signs the destination, so the redirect can only lead to a link that was in this
    # message: a changed URL fails the signature check (no open redirect).
    token = signing.dumps([delivery.pk, url], salt=CLICK_SALT, compress=True)
    return settings.MKTAUTO_BASE_URL + reverse("campaigns:click", args=[token])


def unsubscribe_url(delivery: Delivery) -> str:
    token = signing.dumps([delivery.contact_id, delivery.pk, delivery.channel], salt=UNSUBSCRIBE_SALT)
    return settings.MKTAUTO_BASE_URL + reverse("campaigns:unsubscribe", args=[token])


def read_open_token(token: str) -> int:
    return int(signing.loads(token, salt=OPEN_SALT))


def read_click_token(token: str) -> tuple[int, str]:
    delivery_id, url = signing.loads(token, salt=CLICK_SALT)
    return int(delivery_id), str(url)


def read_unsubscribe_token(token: str) -> tuple[int, int | None, str]:
    contact_id, delivery_id, channel = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    return int(contact_id), delivery_id, str(channel)


def record_open(delivery: Delivery, *, at: datetime | None = None) -> bool:
    """Record the first open of a delivery; return False for repeats."""
    at = at or timezone.now()
    with transaction.atomic():
        # Conditional update: only the first of two concurrent opens counts.
        if not Delivery.objects.filter(pk=delivery.pk, opened_at__isnull=True).update(opened_at=at):
            return False
        metrics = MetricBatch()
        metrics.add(delivery.step_id, at, "opened")
        metrics.write()
        record_event(delivery, "email_opened", at, {})
    return True


def record_click(delivery: Delivery, url: str, *, at: datetime | None = None) -> bool:
    """Record a click; the first click counts once for the step, and a click implies an open."""
    at = at or timezone.now()
    record_open(delivery, at=at)
    with transaction.atomic():
        first = bool(Delivery.objects.filter(pk=delivery.pk, clicked_at__isnull=True).update(clicked_at=at))
        if first:
            metrics = MetricBatch()
            metrics.add(delivery.step_id, at, "clicked")
            metrics.write()
        record_event(delivery, "link_clicked", at, {"url": url}, unique=first)
    return first


def record_unsubscribe(
    delivery: Delivery | None, contact, channel: str, *, source: str, proof: str = "", at: datetime | None = None
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
    return changed


def record_event(delivery: Delivery, event_type: str, at: datetime, properties: dict, *, unique: bool = True) -> None:
    """Store an engagement event for the inbox; a unique one is keyed so a repeat is not stored twice."""
    properties = {**properties, "delivery_id": delivery.pk, "message": delivery.template_id}
    # received_at follows the given time, so a simulation on a virtual clock sees the event arrive then.
    fields = {"type": event_type, "contact_id": delivery.contact_id, "occurred_at": at, "received_at": at, "properties": properties}
    if not unique:
        Event.objects.create(source=Event.Source.TRACKING, **fields)
        return
    Event.objects.get_or_create(source=Event.Source.TRACKING, source_id=f"{event_type}:{delivery.pk}", defaults=fields)
