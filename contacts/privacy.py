"""Privacy requests: export everything held about a contact, and erase a contact's personal data.

Enrollments, step logs and deliveries belong to the workflow and campaign apps, which contacts
does not import, so they are read and changed through the contact's reverse relations.
Erasure keeps the rows that counts and metrics rest on (events, enrollments, deliveries, step
metrics, order totals) and removes what identifies the person.
"""

import json
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone

from contacts.consent import set_consent
from contacts.models import Channel, ConsentStatus, Contact

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "mktauto contact export"
EXPORT_VERSION = 1
# An erased contact keeps an external id so the "has an identity" constraint holds. The prefix
# and the contact's own primary key identify no person outside this database.
ERASED_PREFIX = "erased-"
ERASURE_SOURCE = "privacy"

# Profile columns emptied on erasure. Order totals, lead score and dates stay because they are
# counts, not identities; consent is set to unsubscribed on every channel.
ERASED_PROFILE_FIELDS = (
    "first_name",
    "last_name",
    "company",
    "language",
    "time_zone",
    "address1",
    "address2",
    "city",
    "province_code",
    "country_code",
    "zip",
    "note",
    "email_suppressed_reason",
)
# Event properties (and enrollment trigger data) kept on erasure: ids, keys, money and what was
# bought, which reports, goals and deduplication read. Everything else is removed, because an
# API sender may put anything in a property: names, addresses, URLs carrying access keys, notes.
KEPT_PROPERTIES = frozenset(
    {
        "order_id",
        "order_name",
        "checkout_id",
        "checkout_token",
        "cart_token",
        "token",
        "refund_id",
        "fulfillment_id",
        "product_id",
        "variant_id",
        "sku",
        "title",
        "quantity",
        "price",
        "total_price",
        "subtotal_price",
        "total_discounts",
        "value",
        "revenue",
        "amount",
        "currency",
        "line_items",
        "discount_codes",
        "financial_status",
        "fulfillment_status",
        "shipment_status",
        "cancel_reason",
        "completed",
        "restock",
        "test",
        "channel",
        "event_type",
        "key",
    }
)
KEPT_LINE_ITEM_PROPERTIES = frozenset(
    {"product_id", "variant_id", "title", "variant_title", "sku", "quantity", "price", "line_price", "subtotal"}
)
EXPORT_NAME_PATTERN = re.compile(r"[^a-z0-9-]+")


@dataclass
class Erasure:
    """The changes made by erasing one contact: rows anonymised and export files deleted."""

    contact_id: int
    events: int = 0
    enrollments: int = 0
    deliveries: int = 0
    consent_records: int = 0
    files: list[str] = field(default_factory=list)


def export_contact(contact: Contact, *, now: datetime | None = None) -> dict[str, Any]:
    """Return everything held about the contact as JSON-ready data: profile, tags, consent, events, enrollments, deliveries."""
    now = now or timezone.now()
    data: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": now.isoformat(),
        "contact": row_data(contact),
        "tags": sorted(contact.tags.values_list("name", flat=True)),
        "consent_records": [row_data(record) for record in contact.consent_records.order_by("occurred_at", "id")],
        "events": [row_data(event) for event in contact.events.order_by("occurred_at", "id").iterator()],
    }

    enrollments = getattr(contact, "enrollments", None)
    if enrollments is not None:
        data["enrollments"] = []
        for enrollment in enrollments.select_related("workflow", "step").order_by("enrolled_at", "id"):
            row = row_data(enrollment)
            logs = getattr(enrollment, "logs", None)
            if logs is not None:
                row["logs"] = [row_data(log) for log in logs.select_related("step").order_by("at", "id")]
            data["enrollments"].append(row)

    deliveries = getattr(contact, "deliveries", None)
    if deliveries is not None:
        rows = deliveries.select_related("template", "step").order_by("created_at", "id")
        data["deliveries"] = [row_data(delivery) for delivery in rows.iterator()]

    # Rows of apps added later that point at the contact, so the export stays complete without
    # this module knowing them.
    for relation in Contact._meta.related_objects:
        name = relation.get_accessor_name()
        if relation.one_to_many and name not in data:
            data[name] = [row_data(row) for row in getattr(contact, name).order_by("pk").iterator()]
    return data


def row_data(obj: models.Model) -> dict[str, Any]:
    """Return a row's columns as JSON values; a loaded relation shows as its name, any other as its id."""
    data: dict[str, Any] = {}
    for model_field in obj._meta.concrete_fields:
        if model_field.is_relation:
            if model_field.related_model is Contact:
                continue
            related = getattr(obj, model_field.name) if model_field.is_cached(obj) else None
            data[model_field.name] = str(related) if related is not None else model_field.value_from_object(obj)
            continue
        data[model_field.name] = json_value(model_field.value_from_object(obj))
    return data


def json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    return value


def save_export(contact: Contact, label: str, *, now: datetime | None = None) -> Path:
    """Write the contact's export under MKTAUTO_VAR_DIR/exports, readable by this user only, and return its path.

    Files are named contact-<id>-<label>.json, so erasing the contact can find and remove them.
    """
    directory = Path(settings.VAR_DIR) / "exports"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    safe_label = EXPORT_NAME_PATTERN.sub("-", label.lower()).strip("-") or "export"
    path = directory / f"contact-{contact.pk}-{safe_label}.json"
    write_private_json(path, export_contact(contact, now=now))
    logger.info("export of contact %s written to %s", contact.pk, path)
    return path


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON with mode 0600 through a temporary file, so a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as output:
        json.dump(data, output, ensure_ascii=False, indent=2)
        output.write("\n")
    os.replace(temporary, path)


def erase_contact(contact: Contact, *, now: datetime | None = None) -> Erasure:
    """Remove the contact's personal data and keep its anonymised rows, so counts and metrics stay right.

    Consent on every channel is withdrawn first, which exits promotional workflows and cancels
    queued promotional messages. NOTE: an active enrollment in a workflow that sends only
    transactional messages runs on; its sends are skipped because the contact has no address.
    """
    now = now or timezone.now()
    erasure = Erasure(contact_id=contact.pk)

    with transaction.atomic():
        for channel in Channel.values:
            set_consent(contact, channel, ConsentStatus.UNSUBSCRIBED, source=ERASURE_SOURCE, proof="personal data erased", at=now)

        contact.refresh_from_db()
        contact.email = None
        contact.phone = None
        contact.external_id = f"{ERASED_PREFIX}{contact.pk}"
        for name in ERASED_PROFILE_FIELDS:
            setattr(contact, name, "")
        contact.attributes = {}
        # update_fields leaves the order totals to the inbox, which may be adding to them right now.
        contact.save(update_fields=["email", "phone", "external_id", *ERASED_PROFILE_FIELDS, "attributes", "updated_at"])
        contact.tags.clear()

        erasure.consent_records = contact.consent_records.exclude(proof="").update(proof="")
        erasure.events = strip_rows(contact.events.all(), "properties")
        enrollments = getattr(contact, "enrollments", None)
        if enrollments is not None:
            erasure.enrollments = strip_rows(enrollments.all(), "context")
        deliveries = getattr(contact, "deliveries", None)
        if deliveries is not None:
            erasure.deliveries = deliveries.exclude(to_address="", subject="", error="").update(
                to_address="", subject="", error=""
            )

        # The admin's change history names the contact by its email address.
        LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Contact), object_id=str(contact.pk)).update(
            object_repr=str(contact)
        )
        transaction.on_commit(lambda: erasure.files.extend(remove_exports(contact.pk)))

    logger.info(
        "contact %s erased: %s events, %s enrollments, %s deliveries anonymised",
        contact.pk,
        erasure.events,
        erasure.enrollments,
        erasure.deliveries,
    )
    return erasure


def strip_rows(queryset: models.QuerySet, json_field: str) -> int:
    """Remove personal properties from a JSON column of each row; return how many rows changed."""
    changed = []
    for row in queryset.only("pk", json_field).iterator():
        value = getattr(row, json_field)
        stripped = strip_properties(value)
        if stripped != value:
            setattr(row, json_field, stripped)
            changed.append(row)
    # Erasure is rare and per contact, so bulk_update's speed is not a concern here.
    queryset.model.objects.bulk_update(changed, [json_field], batch_size=500)
    return len(changed)


def strip_properties(properties: Any) -> dict[str, Any]:
    """Return the properties that are kept on erasure (KEPT_PROPERTIES), line items reduced to product facts."""
    if not isinstance(properties, dict):
        return {}
    result: dict[str, Any] = {}
    for name, value in properties.items():
        if name not in KEPT_PROPERTIES:
            continue
        if name == "line_items" and isinstance(value, list):
            result[name] = [
                {key: item[key] for key in KEPT_LINE_ITEM_PROPERTIES if key in item} for item in value if isinstance(item, dict)
            ]
        elif name == "discount_codes" and isinstance(value, list):
            result[name] = [code for code in value if isinstance(code, str)]
        elif not isinstance(value, (dict, list)):
            result[name] = value
    return result


def remove_exports(contact_id: int) -> list[str]:
    """Delete the contact's export files under MKTAUTO_VAR_DIR/exports; return their paths."""
    directory = Path(settings.VAR_DIR) / "exports"
    removed = []
    for path in directory.glob(f"contact-{contact_id}-*.json"):
        path.unlink(missing_ok=True)
        removed.append(str(path))
        logger.info("export %s of erased contact %s deleted", path, contact_id)
    return removed
