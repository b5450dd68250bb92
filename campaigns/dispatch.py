"""Dispatch: render queued deliveries and hand them to the email backend in batches."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.utils import timezone

from campaigns import tracking
from campaigns.metrics import MetricBatch
from campaigns.models import Delivery
from campaigns.rendering import RenderError, render_email
from contacts.models import Channel, ConsentStatus

logger = logging.getLogger(__name__)

# A delivery left in "sending" this long ago belongs to a worker that died mid-batch; it is queued
# again. Sends are therefore at least once, like every task here.
STALE_SENDING = timedelta(minutes=15)


def retry_delay(attempts: int) -> timedelta:
    """Back off 2, 4, 8, ... minutes, at most 6 hours."""
    return min(timedelta(minutes=2**attempts), timedelta(hours=6))


def claim_batch(now: datetime, limit: int) -> list[Delivery]:
    """Move up to ``limit`` due deliveries from queued to sending and return them."""
    with transaction.atomic():
        Delivery.objects.filter(status=Delivery.Status.SENDING, next_attempt_at__lt=now - STALE_SENDING).update(
            status=Delivery.Status.QUEUED
        )
        due = Delivery.objects.filter(status=Delivery.Status.QUEUED, next_attempt_at__lte=now).order_by("next_attempt_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("pk", flat=True)[:limit])
        Delivery.objects.filter(pk__in=ids, status=Delivery.Status.QUEUED).update(
            status=Delivery.Status.SENDING, next_attempt_at=now
        )
    return list(
        Delivery.objects.filter(pk__in=ids, status=Delivery.Status.SENDING).select_related(
            "contact", "template", "enrollment__workflow"
        )
    )


def blocked_reason(delivery: Delivery) -> str:
    """Re-check at send time what may have changed since the delivery was queued."""
    contact = delivery.contact
    if delivery.channel != Channel.EMAIL:
        return "channel not supported"
    if not contact.email:
        return "no email address"
    if contact.email_suppressed_at is not None:
        return "email suppressed"
    if not delivery.transactional and contact.email_consent != ConsentStatus.SUBSCRIBED:
        return "no email consent"
    enrollment = delivery.enrollment
    if enrollment is not None:
        # A completed enrollment has just sent its last step; an exited or failed one must not send.
        if enrollment.state in ("exited", "failed") and not delivery.transactional:
            return f"enrollment {enrollment.state}"
        if enrollment.workflow.status != "live":
            return f"workflow {enrollment.workflow.status}"
    return ""


def build_message(delivery: Delivery, conn) -> EmailMultiAlternatives:
    template = delivery.template
    unsubscribe = "" if delivery.transactional else tracking.unsubscribe_url(delivery)
    rendered = render_email(
        template,
        delivery.contact,
        trigger=delivery.enrollment.context if delivery.enrollment_id else None,
        unsubscribe_url=unsubscribe,
        open_pixel_url=tracking.open_pixel_url(delivery),
        track_link=lambda url: tracking.click_url(delivery, url),
    )
    domain = settings.MKTAUTO_BASE_URL.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "localhost"
    headers = {"Message-ID": f"<delivery.{delivery.pk}@{domain}>"}
    if unsubscribe:
        # RFC 8058 one-click unsubscribe: mail clients POST "List-Unsubscribe=One-Click" to the URL.
        headers["List-Unsubscribe"] = f"<{unsubscribe}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=template.from_email or settings.DEFAULT_FROM_EMAIL,
        to=[delivery.contact.email],
        headers=headers,
        connection=conn,
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


def dispatch_due(now: datetime | None = None, *, limit: int | None = None) -> int:
    """Send one batch of due deliveries; return how many were handled (sent, failed or cancelled)."""
    now = now or timezone.now()
    batch = claim_batch(now, limit or settings.MKTAUTO_DISPATCH_BATCH_SIZE)
    if not batch:
        return 0

    metrics = MetricBatch()
    conn = get_connection()
    conn.open()
    try:
        for delivery in batch:
            send_one(delivery, conn, now, metrics)
    finally:
        conn.close()
        metrics.write()
    logger.info("dispatched %s deliveries", len(batch))
    return len(batch)


def send_one(delivery: Delivery, conn, now: datetime, metrics: MetricBatch) -> None:
    reason = blocked_reason(delivery)
    if reason:
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.CANCELLED, error=reason)
        metrics.add(delivery.step_id, now, "skipped")
        logger.warning("delivery %s to contact %s cancelled at send time: %s", delivery.pk, delivery.contact_id, reason)
        return

    try:
        message = build_message(delivery, conn)
    except RenderError as error:
        # A template error will not fix itself by retrying: fail now, with the reason on the row.
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.FAILED, error=str(error), attempts=delivery.attempts + 1
        )
        metrics.add(delivery.step_id, now, "failed")
        logger.warning("delivery %s failed to render: %s", delivery.pk, error)
        return

    try:
        conn.send_messages([message])
    except Exception as error:  # Any backend (SMTP, ESP API) may raise its own errors.
        attempts = delivery.attempts + 1
        if attempts >= settings.MKTAUTO_SEND_MAX_ATTEMPTS:
            Delivery.objects.filter(pk=delivery.pk).update(
                status=Delivery.Status.FAILED, attempts=attempts, error=str(error)[:2000]
            )
            metrics.add(delivery.step_id, now, "failed")
            logger.exception("delivery %s failed permanently after %s attempts", delivery.pk, attempts)
        else:
            Delivery.objects.filter(pk=delivery.pk).update(
                status=Delivery.Status.QUEUED,
                attempts=attempts,
                error=str(error)[:2000],
                next_attempt_at=now + retry_delay(attempts),
            )
            logger.warning("delivery %s attempt %s failed, will retry: %s", delivery.pk, attempts, error)
        return

    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENT,
        sent_at=now,
        attempts=delivery.attempts + 1,
        to_address=delivery.contact.email,
        subject=message.subject[:300],
        message_id=message.extra_headers["Message-ID"],
        error="",
    )
    metrics.add(delivery.step_id, now, "sent")


def dispatch_all(now: datetime | None = None, *, max_batches: int = 100) -> int:
    """Dispatch batches until none is due or ``max_batches`` ran, so a scheduled run always ends."""
    total = 0
    for _ in range(max_batches):
        handled = dispatch_due(now)
        total += handled
        if not handled:
            break
    return total
