"""ESP tracking webhooks through django-anymail: delivered, opened, clicked, bounced, complained, unsubscribed.

anymail's webhook views turn each provider event into an AnymailTrackingEvent and send the
anymail.signals.tracking signal, which handle_tracking_event() receives. Brevo posts to
/anymail/brevo/tracking/, protected by basic auth with ANYMAIL["WEBHOOK_SECRET"].

An event finds its delivery by the delivery id we put in the message's metadata, else by the
provider's message id stored at send time, else by our own Message-ID. Every update is a first-only conditional update, so a webhook the
provider sends twice counts once. A hard bounce or complaint suppresses the address even when no
delivery matches, because that address rejects mail from any sender.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from anymail.signals import AnymailTrackingEvent, EventType
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from campaigns import tracking
from campaigns.metrics import MetricBatch
from campaigns.models import Delivery
from campaigns.traffic import proxy_open_reason, scanner_click_reason
from contacts.consent import suppress_email
from contacts.models import Channel, Contact

logger = logging.getLogger(__name__)

# Brevo event names that anymail maps to a broader type, and that we tell apart.
BREVO_SOFT_BOUNCE = "soft_bounce"
BREVO_PROXY_OPENS = {"proxy_open", "unique_proxy_open"}
# Event times before this are misread timestamps, not events.
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
# anymail 15.2 maps only Brevo's "unsubscribe", but Brevo's documentation names the event "unsubscribed".
BREVO_UNSUBSCRIBED = "unsubscribed"


def handle_tracking_event(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    """Receiver of anymail.signals.tracking: apply one provider event to its delivery and contact."""
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    esp_type = str(esp_event.get("event") or "")
    at = event_time(event, esp_event)
    delivery = find_delivery(event)

    if event.event_type in (EventType.BOUNCED, EventType.COMPLAINED) and esp_type != BREVO_SOFT_BOUNCE:
        reason = event.mta_response or esp_type or event.event_type
        with transaction.atomic():
            if delivery is not None:
                record_outcome(delivery, event.event_type, at)
            suppress_recipient(delivery, event.recipient, f"{esp_name} {esp_type or event.event_type}: {reason}".strip(), at)
        return

    if delivery is None:
        logger.info(
            "%s %s event for message %r matches no delivery; ignored", esp_name, esp_type or event.event_type, event.message_id
        )
        return

    if event.event_type == EventType.DELIVERED:
        record_outcome(delivery, EventType.DELIVERED, at)
    elif event.event_type == EventType.OPENED:
        agent = str(esp_event.get("user_agent") or event.user_agent or "")
        reason = "provider reports a proxy open" if esp_type in BREVO_PROXY_OPENS else proxy_open_reason(agent)
        tracking.record_open(delivery, at=at, proxy_reason=reason)
    elif event.event_type == EventType.CLICKED:
        agent = str(esp_event.get("user_agent") or event.user_agent or "")
        reason = scanner_click_reason(agent, clicked_at=at, delivered_at=delivery.delivered_at or delivery.sent_at)
        tracking.record_click(delivery, event.click_url or "", at=at, scanner_reason=reason)
    elif event.event_type == EventType.UNSUBSCRIBED or esp_type == BREVO_UNSUBSCRIBED:
        tracking.record_unsubscribe(
            delivery,
            delivery.contact,
            Channel.EMAIL,
            source="esp webhook",
            proof=f"{esp_name} {esp_type or event.event_type} event for message {event.message_id} at {at.isoformat()}",
            at=at,
        )
    elif event.event_type in (EventType.REJECTED, EventType.FAILED):
        text = f"{esp_name} {esp_type or event.event_type}: {event.mta_response or 'no reason given'}"
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED, error=text[:2000])
        logger.warning("delivery %s: %s", delivery.pk, text)
    elif esp_type == BREVO_SOFT_BOUNCE or event.event_type == EventType.DEFERRED:
        logger.info("delivery %s delayed by %s: %s", delivery.pk, esp_name, event.mta_response)
    else:
        logger.info("delivery %s: %s event %s needs no action", delivery.pk, esp_name, esp_type or event.event_type)


def event_time(event: AnymailTrackingEvent, esp_event: dict[str, Any]) -> datetime:
    """Return when the event happened, or now when the provider's time is implausible.

    anymail reads Brevo's ``ts_epoch`` as milliseconds, but some Brevo payloads carry seconds there,
    which would date the event in January 1970; ``ts_event`` (Unix seconds) is used instead then.
    """
    now = timezone.now()
    candidates = [event.timestamp]
    ts_event = esp_event.get("ts_event")
    if isinstance(ts_event, (int, float)) and not isinstance(ts_event, bool):
        candidates.append(datetime.fromtimestamp(ts_event, tz=UTC))
    for candidate in candidates:
        if candidate is not None and EARLIEST_EVENT <= candidate <= now + timedelta(hours=1):
            return candidate
    return now


def message_id_forms(message_id: str) -> list[str]:
    """Return the id with and without angle brackets: providers write Message-IDs both ways."""
    bare = message_id.strip().removeprefix("<").removesuffix(">")
    return [bare, f"<{bare}>"]


def find_delivery(event: AnymailTrackingEvent) -> Delivery | None:
    deliveries = Delivery.objects.select_related("contact")
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    delivery_id = str(metadata.get("delivery_id") or "")
    if delivery_id.isdigit():
        delivery = deliveries.filter(pk=int(delivery_id)).first()
        # The metadata travels with the message, so it must also name the right recipient.
        if delivery is not None and (not event.recipient or delivery.to_address.lower() == event.recipient.lower()):
            return delivery
    if not event.message_id:
        return None
    forms = message_id_forms(str(event.message_id))
    matches = deliveries.filter(Q(provider_message_id__in=forms) | Q(message_id__in=forms), channel=Channel.EMAIL)
    if event.recipient:
        matches = matches.filter(to_address__iexact=event.recipient)
    return matches.order_by("-pk").first()


def record_outcome(delivery: Delivery, event_type: str, at: datetime) -> None:
    """Set the delivery's delivered, bounced or complained time once and count it for the step."""
    field, counter = {
        EventType.DELIVERED: ("delivered_at", "delivered"),
        EventType.BOUNCED: ("bounced_at", "bounced"),
        EventType.COMPLAINED: ("complained_at", "complained"),
    }[event_type]
    with transaction.atomic():
        if not Delivery.objects.filter(pk=delivery.pk, **{f"{field}__isnull": True}).update(**{field: at}):
            return
        metrics = MetricBatch()
        metrics.add(delivery.step_id, at, counter)
        metrics.write()
    logger.info("delivery %s %s", delivery.pk, counter)


def suppress_recipient(delivery: Delivery | None, recipient: str | None, reason: str, at: datetime) -> None:
    contact = delivery.contact if delivery is not None else None
    if contact is None and recipient:
        contact = Contact.objects.filter(email__iexact=recipient.strip()).first()
    if contact is None:
        logger.info("bounce or complaint for %r matches no contact; nothing to suppress", recipient)
        return
    suppress_email(contact, reason, at=at)
