"""Dispatch: render queued deliveries and hand them to the email backend or a channel backend in batches.

A delivery moves queued -> sending -> sent, failed or cancelled. Claiming is a conditional update
per row, so of two dispatchers that picked the same row only one sends it. A row whose
dispatcher died stays in "sending" and is queued again after STALE_SENDING, with the lost try
counted, so sends are at least once.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from campaigns.channel_messages import build_channel_message
from campaigns.channels.base import ChannelBackend, PermanentChannelError, get_backend
from campaigns.email_message import build_message
from campaigns.metrics import MetricBatch
from campaigns.models import Delivery, MessageTemplate
from campaigns.rendering import RenderError
from campaigns.send_window import Hold, batch_hold
from contacts.consent import STATUS_FIELDS
from contacts.models import Channel, ConsentStatus

logger = logging.getLogger(__name__)

STALE_SENDING = timedelta(minutes=15)
# A delivery of a paused workflow stays queued and is looked at again after this long.
PAUSED_RECHECK = timedelta(minutes=15)
MAX_ERROR_LENGTH = 2000
# campaigns may not import workflows, so the enrollment and workflow states are named here.
ENROLLMENT_EXITED = "exited"
WORKFLOW_LIVE = "live"
WORKFLOW_PAUSED = "paused"


def retry_delay(attempts: int) -> timedelta:
    """Back off 2, 4, 8, ... minutes, at most 6 hours."""
    return min(timedelta(minutes=2**attempts), timedelta(hours=6))


def claim_batch(now: datetime, limit: int) -> list[Delivery]:
    """Move up to ``limit`` due deliveries from queued to sending and return the ones this caller won."""
    requeue_stale(now)
    with transaction.atomic():
        claimed = claim(due_ids(now, limit), now)
    return list(
        Delivery.objects.filter(pk__in=claimed)
        .select_related("contact", "template", "enrollment__workflow")
        .order_by("next_attempt_at", "id")
    )


def requeue_stale(now: datetime) -> int:
    """Queue again the deliveries a dead dispatcher left in "sending"; the lost try counts as an attempt.

    Counting it ends a message that kills every dispatcher (a crash while rendering it, say) as
    failed after MKTAUTO_SEND_MAX_ATTEMPTS instead of retrying it forever.
    """
    stale = Delivery.objects.filter(status=Delivery.Status.SENDING, next_attempt_at__lt=now - STALE_SENDING)
    failed = stale.filter(attempts__gte=settings.MKTAUTO_SEND_MAX_ATTEMPTS - 1).update(
        status=Delivery.Status.FAILED,
        attempts=F("attempts") + 1,
        error="the dispatcher stopped while sending, on every attempt",
    )
    requeued = stale.update(status=Delivery.Status.QUEUED, attempts=F("attempts") + 1, next_attempt_at=now)
    if failed or requeued:
        logger.warning("%s stale deliveries queued again, %s failed after their last attempt", requeued, failed)
    return requeued


def due_ids(now: datetime, limit: int) -> list[int]:
    due = Delivery.objects.filter(status=Delivery.Status.QUEUED, next_attempt_at__lte=now).order_by("next_attempt_at", "id")
    if connection.features.has_select_for_update_skip_locked:
        # PostgreSQL: dispatchers running side by side pick disjoint rows instead of queueing on locks.
        due = due.select_for_update(skip_locked=True)
    return list(due.values_list("pk", flat=True)[:limit])


def claim(ids: list[int], now: datetime) -> list[int]:
    """Claim each row with a conditional update; a row another dispatcher already moved on is skipped."""
    claimed = []
    for pk in ids:
        if Delivery.objects.filter(pk=pk, status=Delivery.Status.QUEUED).update(
            status=Delivery.Status.SENDING, next_attempt_at=now
        ):
            claimed.append(pk)
    return claimed


def refresh(delivery: Delivery) -> None:
    """Re-read what an unsubscribe, a bounce or a goal may have changed since the batch was claimed."""
    delivery.contact.refresh_from_db(
        fields=["email", "phone", "email_consent", "sms_consent", "whatsapp_consent", "email_suppressed_at"]
    )
    if delivery.enrollment_id is not None:
        delivery.enrollment.refresh_from_db(fields=["state"])
        delivery.enrollment.workflow.refresh_from_db(fields=["status"])


def blocked_reason(delivery: Delivery) -> str:
    """Re-check at send time what may have changed since the delivery was queued; "" when it may go."""
    contact = delivery.contact
    if delivery.channel == Channel.EMAIL:
        if not contact.email:
            return "no email address"
        if contact.email_suppressed_at is not None:
            return "email suppressed"
        if delivery.template.purpose == MessageTemplate.Purpose.CONFIRMATION:
            if contact.email_consent != ConsentStatus.PENDING:
                return "email consent is no longer waiting for confirmation"
        elif not delivery.transactional and contact.email_consent != ConsentStatus.SUBSCRIBED:
            return "no email consent"
    elif delivery.channel in (Channel.SMS, Channel.WHATSAPP):
        if not contact.phone:
            return "no phone number"
        if not delivery.transactional and getattr(contact, STATUS_FIELDS[Channel(delivery.channel)]) != ConsentStatus.SUBSCRIBED:
            return f"no {delivery.channel} consent"
    else:
        return "channel not supported"

    enrollment = delivery.enrollment
    if enrollment is not None:
        # An exit (exit condition, goal reached, unsubscribe) withdraws the promotional message; an
        # enrollment that completed because this send was its last step still sends it.
        if enrollment.state == ENROLLMENT_EXITED and not delivery.transactional:
            return f"enrollment {enrollment.state}"
        if enrollment.workflow.status not in (WORKFLOW_LIVE, WORKFLOW_PAUSED):
            return f"workflow {enrollment.workflow.status}"
    return ""


def is_held(delivery: Delivery) -> bool:
    """Return whether the delivery's workflow is paused, because pausing defers messages instead of dropping them."""
    return delivery.enrollment_id is not None and delivery.enrollment.workflow.status == WORKFLOW_PAUSED


class UnavailableBackend(Exception):
    """The batch's email connection or channel backend could not be opened; ``error`` is what opening raised."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class Senders:
    """The email connection and channel backends of one batch, each opened on first use and closed at the end."""

    def __init__(self, email_connection: Any = None) -> None:
        self.email = email_connection
        self.backends: dict[str, ChannelBackend] = {}
        self.errors: dict[str, Exception] = {}

    def email_connection(self) -> Any:
        if self.email is None and Channel.EMAIL not in self.errors:
            try:
                conn = get_connection()
                conn.open()
            except Exception as error:  # Any backend (SMTP, ESP API) may raise its own errors.
                # Nothing can go out by email in this batch: each email delivery counts a failed attempt.
                logger.exception("email backend could not be opened; this batch's email deliveries will be retried")
                self.errors[Channel.EMAIL] = error
            else:
                self.email = conn
        if Channel.EMAIL in self.errors:
            raise UnavailableBackend(self.errors[Channel.EMAIL])
        return self.email

    def channel_backend(self, channel: str) -> ChannelBackend:
        if channel not in self.backends and channel not in self.errors:
            try:
                backend = get_backend(channel)
                backend.open()
            except Exception as error:  # A backend's set-up may fail in its own ways.
                logger.exception("%s backend could not be opened; this batch's %s deliveries will be retried", channel, channel)
                self.errors[channel] = error
            else:
                self.backends[channel] = backend
        if channel in self.errors:
            raise UnavailableBackend(self.errors[channel])
        return self.backends[channel]

    def close(self) -> None:
        for name, closeable in [(Channel.EMAIL, self.email), *self.backends.items()]:
            if closeable is None:
                continue
            try:
                closeable.close()
            except Exception:
                logger.exception("closing the %s backend failed", name)


def dispatch_due(now: datetime | None = None, *, limit: int | None = None) -> int:
    """Send one batch of due deliveries; return how many were handled (sent, failed, deferred or cancelled)."""
    now = now or timezone.now()
    batch = claim_batch(now, limit or settings.MKTAUTO_DISPATCH_BATCH_SIZE)
    if not batch:
        return 0

    metrics = MetricBatch()
    senders = Senders()
    hold = batch_hold()
    try:
        for delivery in batch:
            try:
                send_one(delivery, senders, now, metrics, hold)
            except Exception as error:
                # One bad message must not stop the batch; it backs off like a send failure.
                logger.exception("delivery %s to contact %s failed unexpectedly", delivery.pk, delivery.contact_id)
                record_failure(delivery, error, now, metrics)
    finally:
        senders.close()
        metrics.write()
    logger.info("dispatched %s deliveries", len(batch))
    return len(batch)


def send_one(delivery: Delivery, senders: Any, now: datetime, metrics: MetricBatch, hold: Hold | None = None) -> None:
    """Send one claimed delivery. ``senders`` is the batch's Senders, or an open email connection.

    ``hold`` is the batch's send-time check (quiet hours); without one, the registered checks are read.
    """
    if not isinstance(senders, Senders):
        senders = Senders(email_connection=senders)
    refresh(delivery)
    reason = blocked_reason(delivery)
    if reason:
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
            status=Delivery.Status.CANCELLED, error=reason
        )
        metrics.add(delivery.step_id, now, "skipped")
        logger.warning("delivery %s to contact %s cancelled at send time: %s", delivery.pk, delivery.contact_id, reason)
        return
    if is_held(delivery):
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
            status=Delivery.Status.QUEUED, next_attempt_at=now + PAUSED_RECHECK
        )
        logger.info("delivery %s held: workflow %s is paused", delivery.pk, delivery.enrollment.workflow_id)
        return
    until = (hold or batch_hold())(delivery, now)
    if until is not None:
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
            status=Delivery.Status.QUEUED, next_attempt_at=until
        )
        logger.info("delivery %s to contact %s held until %s by the send window", delivery.pk, delivery.contact_id, until)
        return

    try:
        if delivery.channel == Channel.EMAIL:
            send_email(delivery, senders, now, metrics)
        else:
            send_channel(delivery, senders, now, metrics)
    except UnavailableBackend as unavailable:
        record_failure(delivery, unavailable.error, now, metrics)
    except RenderError as error:
        # A template error will not fix itself by retrying: fail now, with the reason on the row.
        record_permanent_failure(delivery, str(error), now, metrics)
        logger.warning("delivery %s failed to render: %s", delivery.pk, error)


def send_email(delivery: Delivery, senders: Senders, now: datetime, metrics: MetricBatch) -> None:
    conn = senders.email_connection()
    message = build_message(delivery, conn)
    try:
        sent = conn.send_messages([message])
    except Exception as error:  # Any backend (SMTP, ESP API) may raise its own errors.
        record_failure(delivery, error, now, metrics)
        return
    if not sent:
        record_failure(delivery, RuntimeError("the email backend accepted no message"), now, metrics)
        return

    # django-anymail sets anymail_status; its message_id is the ESP's id for one recipient, a set for several.
    status = getattr(message, "anymail_status", None)
    provider_id = getattr(status, "message_id", None)
    if isinstance(provider_id, int) and not isinstance(provider_id, bool):
        provider_id = str(provider_id)
    mark_sent(
        delivery,
        now,
        metrics,
        to_address=delivery.contact.email or "",
        subject=message.subject,
        message_id=message.extra_headers["Message-ID"],
        provider_message_id=provider_id if isinstance(provider_id, str) else "",
    )


def send_channel(delivery: Delivery, senders: Senders, now: datetime, metrics: MetricBatch) -> None:
    message = build_channel_message(delivery)
    backend = senders.channel_backend(delivery.channel)
    try:
        provider_id = backend.send(message)
    except PermanentChannelError as error:
        record_permanent_failure(delivery, f"{type(error).__name__}: {error}", now, metrics)
        logger.warning("delivery %s rejected by the %s provider: %s", delivery.pk, delivery.channel, error)
        return
    except Exception as error:  # TransientChannelError, or anything a third-party backend raises.
        record_failure(delivery, error, now, metrics)
        return
    mark_sent(
        delivery,
        now,
        metrics,
        to_address=message.to,
        subject="",
        message_id=message.reference,
        provider_message_id=provider_id or "",
    )


def mark_sent(delivery: Delivery, now: datetime, metrics: MetricBatch, **sent: str) -> None:
    sent["subject"] = sent["subject"][:300]
    updated = Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.SENT, sent_at=now, attempts=delivery.attempts + 1, error="", **sent
    )
    if not updated:
        logger.warning("delivery %s was sent but had left the sending state; its row was not updated", delivery.pk)
    metrics.add(delivery.step_id, now, "sent")


def record_permanent_failure(delivery: Delivery, text: str, now: datetime, metrics: MetricBatch) -> None:
    Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.FAILED, error=text[:MAX_ERROR_LENGTH], attempts=delivery.attempts + 1
    )
    metrics.add(delivery.step_id, now, "failed")


def record_failure(delivery: Delivery, error: Exception, now: datetime, metrics: MetricBatch) -> None:
    """Count a failed attempt: queue the delivery again with back-off, or mark it failed after the last attempt."""
    attempts = delivery.attempts + 1
    text = f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
    row = Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING)
    if attempts >= settings.MKTAUTO_SEND_MAX_ATTEMPTS:
        row.update(status=Delivery.Status.FAILED, attempts=attempts, error=text)
        metrics.add(delivery.step_id, now, "failed")
        logger.error(
            "delivery %s to contact %s failed permanently after %s attempts: %s", delivery.pk, delivery.contact_id, attempts, text
        )
        return
    row.update(status=Delivery.Status.QUEUED, attempts=attempts, error=text, next_attempt_at=now + retry_delay(attempts))
    logger.warning("delivery %s attempt %s failed, will retry: %s", delivery.pk, attempts, text)


def dispatch_all(now: datetime | None = None, *, max_batches: int = 100) -> int:
    """Dispatch batches until none is due or ``max_batches`` ran, so a scheduled run always ends."""
    total = 0
    for _ in range(max_batches):
        handled = dispatch_due(now)
        total += handled
        if not handled:
            break
    return total
