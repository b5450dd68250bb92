"""A contact's history as one list, newest first: events, enrollments, step logs and deliveries.

Enrollments, step logs and deliveries belong to the workflow and campaign apps, whose models
contacts does not import, so they are read through the contact's reverse relations and their
models are taken from those relations. The engine's English reasons are shown in the active
language, with times in the contact's time zone, through ``workflows.reasons``, which contains
no models.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Model
from django.urls import NoReverseMatch, reverse
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from contacts.catalogue import ALL_EVENT_TYPES
from contacts.models import Contact
from workflows.reasons import display

logger = logging.getLogger(__name__)

# Rows read per kind and entries shown in total; the full lists are in each model's admin list.
LIMIT = 100


@dataclass
class TimelineEntry:
    at: datetime
    kind: str
    kind_label: str
    title: str
    detail: str = ""
    url: str = ""


def admin_url(obj: Model) -> str:
    opts = obj._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""


def event_entries(contact: Contact) -> list[TimelineEntry]:
    entries = []
    for event in contact.events.order_by("-occurred_at", "-id")[:LIMIT]:
        details = []
        if event.value is not None:
            amount = number_format(event.value, 2, use_l10n=True, force_grouping=True)
            details.append(f"{amount} {event.currency}".strip())
        if event.key:
            details.append(_("key %(key)s") % {"key": event.key})
        details.append(event.get_source_display())
        entries.append(
            TimelineEntry(
                at=event.occurred_at,
                kind="event",
                kind_label=_("Event"),
                title=str(ALL_EVENT_TYPES.get(event.type, event.type)),
                detail=" · ".join(details),
                url=admin_url(event),
            )
        )
    return entries


def enrollment_entries(contact: Contact) -> list[TimelineEntry]:
    entries = []
    for enrollment in contact.enrollments.select_related("workflow").order_by("-enrolled_at", "-id")[:LIMIT]:
        details = [enrollment.get_state_display()]
        if enrollment.exit_reason:
            reason = display(enrollment.exit_reason, contact.time_zone or None)
            details.append(_("exit reason: %(reason)s") % {"reason": reason})
        if enrollment.converted_at:
            details.append(_("goal reached"))
        entries.append(
            TimelineEntry(
                at=enrollment.enrolled_at,
                kind="enrollment",
                kind_label=_("Enrollment"),
                title=_("Entered “%(workflow)s”") % {"workflow": enrollment.workflow},
                detail=" · ".join(details),
                url=admin_url(enrollment),
            )
        )
    return entries


def step_log_entries(contact: Contact) -> list[TimelineEntry]:
    step_log_model = Contact._meta.get_field("enrollments").related_model._meta.get_field("logs").related_model
    logs = (
        step_log_model.objects.filter(enrollment__contact=contact)
        .select_related("step", "enrollment__workflow")
        .order_by("-at", "-id")[:LIMIT]
    )
    entries = []
    for log in logs:
        step_name = (log.step.name or log.step.get_kind_display()) if log.step else _("deleted step")
        details = [str(log.enrollment.workflow)]
        if log.reason:
            details.append(display(log.reason, contact.time_zone or None))
        entries.append(
            TimelineEntry(
                at=log.at,
                kind="step",
                kind_label=_("Step"),
                title=f"{log.get_outcome_display()}: {step_name}",
                detail=" · ".join(details),
                url=admin_url(log),
            )
        )
    return entries


def delivery_entries(contact: Contact) -> list[TimelineEntry]:
    entries = []
    for delivery in contact.deliveries.select_related("template").order_by("-created_at", "-id")[:LIMIT]:
        details = [delivery.get_channel_display(), delivery.get_status_display()]
        if delivery.opened_at:
            details.append(_("opened"))
        if delivery.clicked_at:
            details.append(_("clicked"))
        if delivery.error:
            details.append(_("error: %(error)s") % {"error": display(delivery.error, contact.time_zone or None)})
        entries.append(
            TimelineEntry(
                at=delivery.sent_at or delivery.created_at,
                kind="delivery",
                kind_label=_("Message"),
                title=delivery.subject or str(delivery.template),
                detail=" · ".join(details),
                url=admin_url(delivery),
            )
        )
    return entries


def build(contact: Contact) -> list[TimelineEntry]:
    """Return the contact's timeline, newest first, at most ``LIMIT`` entries."""
    entries = event_entries(contact) + enrollment_entries(contact) + step_log_entries(contact) + delivery_entries(contact)
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries[:LIMIT]
