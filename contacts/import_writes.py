"""The writes of a contact import: contacts, tag links and consent records, one statement per kind.

Rows are written with ``mktauto.bulk_insert.BulkInsert`` (``executemany`` on a one-row INSERT)
instead of ``bulk_create()``, whose preparation of Contact's columns took longer than parsing and
validating the row in the benchmark (bench/README.md). A new contact starts from a row of
prepared defaults, and only the fields the import set are prepared, with the field's
``get_db_prep_save``. Text, integers and ids need no preparation, and other values are cached,
so a timestamp is prepared once per import. Updated contacts are upserts on the primary key,
which need SQLite 3.24+ or PostgreSQL.
"""

import logging
from datetime import datetime
from typing import Any

from django.db import connection, models
from django.db.models import signals
from django.db.models.base import ModelState

from contacts.models import ConsentRecord, Contact, Tag
from mktauto.bulk_insert import BulkInsert

logger = logging.getLogger(__name__)

CONSENT_SOURCE = "import"
IDENTITY_KINDS = ("email", "external_id", "phone")


class InstanceTemplate:
    """Builder of model instances from a dict of defaults, without Model.__init__.

    Model.__init__ handles defaults and keywords field by field, which for Contact cost about as
    much as validating the row's email address in the benchmark. An instance built here has the
    same ``__dict__`` and a fresh ``_state``, as a row loaded from the database would. When a
    receiver listens to the model's pre_init or post_init signal, the template calls
    Model.__init__ so that the receiver runs.
    """

    def __init__(self, model: type[models.Model], **fixed: Any) -> None:
        self.model = model
        self.fields = model._meta.concrete_fields
        self.defaults = {
            field.attname: None if field.primary_key else fixed.get(field.attname, field.get_default()) for field in self.fields
        }
        self.use_init = signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model)

    def build(self, **values: Any) -> models.Model:
        if self.use_init:
            return self.model(**{**self.defaults, **values})
        instance = self.model.__new__(self.model)
        instance.__dict__.update(self.defaults)
        instance.__dict__.update(values)
        instance._state = ModelState()
        return instance


def contact_template(now: datetime) -> InstanceTemplate:
    """Return the template new contacts of an import start from."""
    return InstanceTemplate(Contact, created_at=now, updated_at=now)


class ImportWriter:
    """Writer of an import's planned changes, chunk by chunk, in the caller's transaction."""

    def __init__(self, *, file_name: str, now: datetime) -> None:
        self.file_name = file_name
        self.now = now
        self.inserts = BulkInsert(Contact, defaults=contact_template(now).defaults)
        self.upserts: dict[frozenset[str], BulkInsert] = {}
        record_defaults = InstanceTemplate(ConsentRecord, source=CONSENT_SOURCE, occurred_at=now).defaults
        self.records = BulkInsert(ConsentRecord, defaults=record_defaults)
        self.tag_links = BulkInsert(Contact.tags.through, field_names=("contact", "tag"), ignore_conflicts=True)

    def write_contacts(self, new: list[tuple[Contact, set[str]]], updated: list[Contact], update_fields: set[str]) -> None:
        """Insert new contacts, which hold template defaults except in the fields named with them, and upsert updated ones."""
        self.inserts.write([self.inserts.row_from(contact.__dict__, changed) for contact, changed in new])
        assign_ids([contact for contact, _changed in new])

        if updated:
            # The instances were read in this transaction, and locked on PostgreSQL, so rewriting the
            # fields that a row did not change stores their current values again.
            fields = frozenset(update_fields | {"updated_at"})
            if fields not in self.upserts:
                self.upserts[fields] = BulkInsert(Contact, include_pk=True, update_fields=sorted(fields))
            for contact in updated:
                contact.updated_at = self.now
            upsert = self.upserts[fields]
            upsert.write([upsert.values(contact) for contact in updated])

    def write_consent_records(self, changes: list[tuple[Contact, str, str, int]]) -> None:
        self.records.write(
            [
                self.records.row_with(
                    {"contact_id": contact.pk, "channel": channel, "status": status, "proof": f"file {self.file_name}, row {row}"}
                )
                for contact, channel, status, row in changes
            ]
        )

    def write_tag_links(self, tag_links: list[tuple[Contact, list[str]]], tag_ids: dict[str, int]) -> None:
        """Create missing tags and link them; ``tag_ids`` maps case-folded names to ids and is updated."""
        missing: dict[str, str] = {}
        for _contact, names in tag_links:
            for name in names:
                if name.casefold() not in tag_ids:
                    missing.setdefault(name.casefold(), name)
        if missing:
            # ignore_conflicts: another import may create the same tag at the same time.
            Tag.objects.bulk_create([Tag(name=name) for name in missing.values()], ignore_conflicts=True)
            for tag_id, name in Tag.objects.filter(name__in=missing.values()).values_list("id", "name"):
                tag_ids.setdefault(name.casefold(), tag_id)

        self.tag_links.write([[contact.pk, tag_ids[name.casefold()]] for contact, names in tag_links for name in names])


def assign_ids(contacts: list[Contact]) -> None:
    """Read back the ids of inserted contacts by their first identity, which is unique.

    Plain SQL, because an ORM ``__in`` filter prepares each of the thousand values in Python.
    """
    if not contacts:
        return
    by_identity: dict[str, dict[str, Contact]] = {kind: {} for kind in IDENTITY_KINDS}
    for contact in contacts:
        for kind in IDENTITY_KINDS:
            value = getattr(contact, kind)
            if value:
                by_identity[kind][value] = contact
                break

    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for kind, contacts_by_value in by_identity.items():
            if not contacts_by_value:
                continue
            column = quote(Contact._meta.get_field(kind).column)
            placeholders = ", ".join(["%s"] * len(contacts_by_value))
            cursor.execute(
                f"SELECT {quote(Contact._meta.pk.column)}, {column} FROM {quote(Contact._meta.db_table)} "
                f"WHERE {column} IN ({placeholders})",
                list(contacts_by_value),
            )
            for pk, value in cursor.fetchall():
                contacts_by_value[value].pk = pk
    for contact in contacts:
        contact._state.adding = False
