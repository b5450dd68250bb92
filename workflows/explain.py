"""A contact's journey through the workflows as plain sentences, oldest first.

It shows why a contact did not get email 3: every enrollment, every step the engine took with its
time, and every message queued, sent, skipped, deferred or cancelled, with the reason the engine
stored. The frames are translated, and the stored English reasons through ``workflows.reasons``.
The ``explain`` command prints it, and an admin page can show ``journey(contact)`` line by line.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext as _

from campaigns.models import Delivery
from contacts.models import Contact
from workflows.engine.localtime import zone
from workflows.models import Enrollment, Step, StepLog
from workflows.reasons import display

logger = logging.getLogger(__name__)

# Lines at the same moment keep the order in which things happen: the enrollment, then its step
# logs, then what dispatch did with the messages.
ENROLLMENT_ORDER, LOG_ORDER, DELIVERY_ORDER = 0, 1, 2
SEND_KINDS = {Step.Kind.SEND_EMAIL, Step.Kind.SEND_SMS, Step.Kind.SEND_WHATSAPP}


@dataclass(frozen=True)
class JourneyLine:
    """One sentence of the journey, without its time."""

    at: datetime
    text: str
    order: tuple[int, int]


def step_label(step: Step | None) -> str:
    if step is None:
        return _("a deleted step")
    return step.name or step.key


def enrollment_text(enrollment: Enrollment) -> str:
    values = {"workflow": enrollment.workflow.name, "key": enrollment.key}
    if enrollment.key:
        return _("%(workflow)s: entered for %(key)s") % values
    return _("%(workflow)s: entered") % values


def log_text(log: StepLog) -> str:
    """Describe one step log entry, with its reason in the active language and the contact's local time."""
    reason = display(log.reason, log.enrollment.contact.time_zone or None)
    values = {"workflow": log.enrollment.workflow.name, "step": step_label(log.step), "reason": reason}
    outcome = log.outcome
    if outcome == StepLog.Outcome.QUEUED and log.step is not None and log.step.kind in SEND_KINDS:
        return _("%(workflow)s: %(step)s queued (%(reason)s)") % values
    if outcome == StepLog.Outcome.SKIPPED:
        return _("%(workflow)s: %(step)s skipped: %(reason)s") % values
    if outcome == StepLog.Outcome.DEFERRED:
        return _("%(workflow)s: %(step)s deferred: %(reason)s") % values
    if outcome == StepLog.Outcome.WAITED:
        return _("%(workflow)s: %(step)s waiting: %(reason)s") % values
    if outcome == StepLog.Outcome.EXITED:
        return _("%(workflow)s: exited at %(step)s: %(reason)s") % values
    if outcome == StepLog.Outcome.COMPLETED:
        return _("%(workflow)s: completed") % values
    if outcome == StepLog.Outcome.CONVERTED:
        return _("%(workflow)s: goal reached: %(reason)s") % values
    if outcome == StepLog.Outcome.FAILED:
        return _("%(workflow)s: %(step)s failed and is tried again later: %(reason)s") % values
    if outcome == StepLog.Outcome.ENTERED:
        return _("%(workflow)s: %(step)s entered") % values
    # Branches, tags, scores, attribute changes and staff notices: the reason describes what was done.
    return _("%(workflow)s: %(step)s: %(reason)s") % values


def delivery_lines(delivery: Delivery) -> list[JourneyLine]:
    """Describe what dispatch did with one message. A broadcast has no step log, so it also gets a queued line."""
    if delivery.enrollment_id is not None:
        source = _("%(workflow)s: %(step)s") % {
            "workflow": delivery.enrollment.workflow.name,
            "step": step_label(delivery.step),
        }
    else:
        source = _("broadcast %(message)s") % {"message": delivery.template.name}
    error = display(delivery.error, delivery.contact.time_zone or None)
    values = {"source": source, "channel": delivery.get_channel_display(), "error": error}
    order = (DELIVERY_ORDER, delivery.pk)

    lines = []
    if delivery.enrollment_id is None:
        lines.append(JourneyLine(delivery.created_at, _("%(source)s queued (%(channel)s)") % values, order))
    if delivery.status == Delivery.Status.SENT and delivery.sent_at is not None:
        lines.append(JourneyLine(delivery.sent_at, _("%(source)s sent (%(channel)s)") % values, order))
    elif delivery.status == Delivery.Status.CANCELLED:
        # Cancelling stores no time of its own, so the last planned attempt is the closest known moment.
        at = max(delivery.created_at, delivery.next_attempt_at or delivery.created_at)
        lines.append(JourneyLine(at, _("%(source)s not sent: %(error)s") % values, order))
    elif delivery.status == Delivery.Status.FAILED:
        at = max(delivery.created_at, delivery.next_attempt_at or delivery.created_at)
        lines.append(JourneyLine(at, _("%(source)s failed: %(error)s") % values, order))
    return lines


def journey(contact: Contact) -> list[JourneyLine]:
    """Return the contact's enrollments, step logs and messages as sentences, oldest first (three queries)."""
    lines = [
        JourneyLine(enrollment.enrolled_at, enrollment_text(enrollment), (ENROLLMENT_ORDER, enrollment.pk))
        for enrollment in Enrollment.objects.filter(contact=contact).select_related("workflow")
    ]
    logs = StepLog.objects.filter(enrollment__contact=contact).select_related(
        "step", "enrollment__workflow", "enrollment__contact"
    )
    lines += [JourneyLine(log.at, log_text(log), (LOG_ORDER, log.pk)) for log in logs]
    deliveries = Delivery.objects.filter(contact=contact).select_related("template", "step", "enrollment__workflow", "contact")
    for delivery in deliveries:
        lines += delivery_lines(delivery)

    lines.sort(key=lambda line: (line.at, line.order))
    return lines


def format_line(line: JourneyLine, zone_name: str | None) -> str:
    return f"{line.at.astimezone(zone(zone_name)):%Y-%m-%d %H:%M} {line.text}"


def journey_text(contact: Contact) -> str:
    """Return the journey as text: a heading naming the time zone, then one line per sentence."""
    zone_name = contact.time_zone or None
    lines = journey(contact)
    if not lines:
        return _("%(contact)s has not been in any workflow and got no messages.") % {"contact": contact}
    heading = _("Journey of %(contact)s (times in %(zone)s):") % {"contact": contact, "zone": zone(zone_name).key}
    logger.debug("journey of contact %s: %s lines", contact.pk, len(lines))
    return "\n".join([heading, *(format_line(line, zone_name) for line in lines)])
