"""The writes of a contact import: contacts, tag links and consent records, one statement per kind.

Rows are written with ``executemany`` on a plain INSERT instead of ``bulk_create()``. For the
31 columns of Contact, ``bulk_create()`` prepares and places every value in Python
(``pre_save``, ``get_db_prep_save``, SQL assembly, 32 rows per statement on SQLite), and in
the benchmark (bench/README.md) that took longer than parsing and validating the row. Here a
new contact starts from a row of prepared defaults and only the fields the import set are
prepared, with the field's ``get_db_prep_save``. Text, integers and ids need no preparation on
SQLite and PostgreSQL, and other values are cached, so a timestamp is prepared once per import.
The backend writes the conflict clauses, as for bulk_create(); upserts need SQLite 3.24+ or
PostgreSQL.
"""

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection, models
from django.db.models import signals
from django.db.models.base import ModelState
from django.db.models.constants import OnConflict

from contacts.models import ConsentRecord, Contact, Tag

logger = logging.getLogger(__name__)

CONSENT_SOURCE = "import"
IDENTITY_KINDS = ("email", "external_id", "phone")
PLAIN_FIELDS = (models.CharField, models.TextField, models.IntegerField, models.ForeignKey)
# Exact types: bool is an int subclass and goes through its field's preparation.
PLAIN_TYPES = (str, int)


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


class RowWriter:
    """Writer of rows for one table with executemany, as plain inserts, upserts or inserts that skip conflicts."""

    def __init__(
        self,
        model: type[models.Model],
        *,
        include_pk: bool = False,
        update_fields: Iterable[str] = (),
        ignore_conflicts: bool = False,
        field_names: Iterable[str] = (),
        defaults: dict[str, Any] | None = None,
    ) -> None:
        if field_names:
            self.fields = [model._meta.get_field(name) for name in field_names]
        else:
            self.fields = [field for field in model._meta.concrete_fields if include_pk or not field.primary_key]
        self.positions = {field.attname: position for position, field in enumerate(self.fields)}
        # Text, integer and foreign key columns take a str, int or None unchanged on SQLite and
        # PostgreSQL, and their values differ from row to row, so they are neither prepared nor cached.
        self.caches: list[dict[Any, Any] | None] = [None if isinstance(field, PLAIN_FIELDS) else {} for field in self.fields]
        # A row of prepared default values, which row_with() copies and changes.
        self.default_row = (
            [self.prepare(position, defaults[field.attname]) for position, field in enumerate(self.fields)] if defaults else []
        )

        # The backend writes the conflict clause, as bulk_create() would: ON CONFLICT ... DO UPDATE
        # on both backends, and INSERT OR IGNORE (SQLite) or ON CONFLICT DO NOTHING (PostgreSQL).
        update_columns = [model._meta.get_field(name).column for name in update_fields]
        on_conflict = None
        if update_columns:
            on_conflict = OnConflict.UPDATE
        elif ignore_conflicts:
            on_conflict = OnConflict.IGNORE
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in self.fields)
        placeholders = ", ".join(["%s"] * len(self.fields))
        suffix = connection.ops.on_conflict_suffix_sql(self.fields, on_conflict, update_columns, [model._meta.pk.column])
        self.sql = (
            f"{connection.ops.insert_statement(on_conflict=on_conflict)} {quote(model._meta.db_table)} "
            f"({columns}) VALUES ({placeholders}) {suffix}"
        ).rstrip()

    def prepare(self, position: int, value: Any) -> Any:
        """Return the database value for the field at ``position``."""
        cache = self.caches[position]
        if cache is None:
            if value is None or type(value) in PLAIN_TYPES:
                return value
            return self.fields[position].get_db_prep_save(value, connection)
        if isinstance(value, (dict, list)):
            # Unhashable, such as the attributes dict, so prepared every time.
            return self.fields[position].get_db_prep_save(value, connection)
        prepared = cache.get(value, cache)
        if prepared is cache:
            prepared = self.fields[position].get_db_prep_save(value, connection)
            cache[value] = prepared
        return prepared

    def values(self, instance: models.Model) -> list[Any]:
        data = instance.__dict__
        return [self.prepare(position, data[field.attname]) for position, field in enumerate(self.fields)]

    def row_with(self, values: dict[str, Any]) -> list[Any]:
        """Return the default row with ``values`` (by attname) in place of the defaults."""
        return self.row_from(values, values)

    def row_from(self, data: dict[str, Any], names: Iterable[str]) -> list[Any]:
        """Return the default row with the values of ``names`` taken from ``data`` (by attname)."""
        row = self.default_row.copy()
        positions = self.positions
        caches = self.caches
        for name in names:
            position = positions[name]
            value = data[name]
            if caches[position] is None and (value is None or type(value) in PLAIN_TYPES):
                row[position] = value
            else:
                row[position] = self.prepare(position, value)
        return row

    def write_values(self, rows: list[list[Any]]) -> None:
        """Write rows of database values, one per column of ``self.fields``."""
        if not rows:
            return
        with connection.cursor() as cursor:
            cursor.executemany(self.sql, rows)


def contact_template(now: datetime) -> InstanceTemplate:
    """Return the template new contacts of an import start from."""
    return InstanceTemplate(Contact, created_at=now, updated_at=now)


class ImportWriter:
    """Writer of an import's planned changes, chunk by chunk, in the caller's transaction."""

    def __init__(self, *, file_name: str, now: datetime) -> None:
        self.file_name = file_name
        self.now = now
        self.inserts = RowWriter(Contact, defaults=contact_template(now).defaults)
        self.upserts: dict[frozenset[str], RowWriter] = {}
        record_defaults = InstanceTemplate(ConsentRecord, source=CONSENT_SOURCE, occurred_at=now).defaults
        self.records = RowWriter(ConsentRecord, defaults=record_defaults)
        self.tag_links = RowWriter(Contact.tags.through, field_names=("contact", "tag"), ignore_conflicts=True)

    def write_contacts(self, new: list[tuple[Contact, set[str]]], updated: list[Contact], update_fields: set[str]) -> None:
        """Insert new contacts, which hold template defaults except in the fields named with them, and upsert updated ones."""
        self.inserts.write_values([self.inserts.row_from(contact.__dict__, changed) for contact, changed in new])
        assign_ids([contact for contact, _changed in new])

        if updated:
            # The instances were read in this transaction, and locked on PostgreSQL, so rewriting the
            # fields that a row did not change stores their current values again.
            fields = frozenset(update_fields | {"updated_at"})
            if fields not in self.upserts:
                self.upserts[fields] = RowWriter(Contact, include_pk=True, update_fields=sorted(fields))
            for contact in updated:
                contact.updated_at = self.now
            writer = self.upserts[fields]
            writer.write_values([writer.values(contact) for contact in updated])

    def write_consent_records(self, changes: list[tuple[Contact, str, str, int]]) -> None:
        self.records.write_values(
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

        self.tag_links.write_values([[contact.pk, tag_ids[name.casefold()]] for contact, names in tag_links for name in names])


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
