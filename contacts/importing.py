"""Importing contacts from a file: the CSV format for django-import-export and the set-based import.

Rules an import follows:

- Rows are matched to contacts on email (stored in lower case, so the match ignores case), then
  on customer id, then on phone. A phone number matches only a contact without an email address
  or with the row's address, because a household or office shares one number. A row that
  resolves to a contact an earlier row of the same file already created or updated is a
  duplicate and is skipped.
- Identities are filled where the contact has none and never replaced, because events and
  webhooks find contacts by them. A value that belongs to another contact is left out.
- A non-empty cell replaces the field; an empty cell or a missing column changes nothing.
  Tags are added, never removed. Attributes are merged key by key.
- Consent: "yes" subscribes and "no" unsubscribes, only where the file has the column and the
  cell contains that word. An import does not subscribe a contact again when their latest
  consent record for the channel came from somewhere else than an import (an unsubscribe
  link, the admin) or when there is no record. Every change writes a ConsentRecord with
  source "import" and the file and row as proof. Existing contacts whose consent an import
  withdraws are sent in one consent_withdrawn signal per channel.
- Order facts ("Total Orders", "Total Spent") are set on new contacts. On existing contacts
  only a Shopify customer export raises them, to the file's value when that is higher. Order
  events keep these facts current, and Shopify's lifetime totals include the orders those
  events counted, so taking the higher value never counts an order twice.
"""

import gc
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import tablib
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export.formats import base_formats

from contacts import vip
from contacts.consent import STATUS_FIELDS, consent_withdrawn
from contacts.csv_formats import read_csv
from contacts.import_columns import (
    IDENTITY_TARGETS,
    SUBSCRIBED,
    UNSUBSCRIBED,
    ColumnMap,
    ContactRow,
    RowProblem,
    clean_row,
    map_columns,
)
from contacts.import_writes import CONSENT_SOURCE, ImportWriter, InstanceTemplate, contact_template
from contacts.models import ConsentRecord, Contact, Tag

logger = logging.getLogger(__name__)

# Rows planned and written together: one query finds the chunk's existing contacts, and each
# kind of write is one bulk statement. 1,000 rows keep the identity lookup under 3,000 query
# parameters, below SQLite's default limit of 32,766 (SQLite 3.32 and later).
CHUNK_SIZE = 1000
# Rows shown in the admin's preview besides every row with a problem.
PREVIEW_ROWS = 200


class SpreadsheetCSV(base_formats.CSV):
    """CSV as spreadsheets and shops write it, with the encoding and delimiter detected.

    The admin hands a binary format the uploaded bytes unchanged, so ``is_binary`` returns True
    and ``create_dataset`` detects UTF-8 (with or without byte order mark), UTF-16 or
    Windows-1252, and a comma, semicolon or tab delimiter. The dataset carries the detected
    layout as ``dataset.csv_layout``. This format only imports; export with the standard CSV
    or XLSX formats.
    """

    def __init__(self, encoding: str | None = None) -> None:
        # The admin passes its from_encoding here; it is ignored because the bytes decide.
        super().__init__(encoding=None)

    def is_binary(self) -> bool:
        return True

    def get_read_mode(self) -> str:
        return "rb"

    def can_export(self) -> bool:
        return False

    def create_dataset(self, in_stream: bytes | str, **kwargs: Any) -> tablib.Dataset:
        headers, rows, layout = read_csv(in_stream)
        # read_csv pads every row to the header's width, so the per-row width check of extend() is skipped.
        dataset = tablib.Dataset(*rows, headers=headers)
        dataset.csv_layout = layout
        return dataset


@dataclass(slots=True)
class RowOutcome:
    """The outcome of one row, for the admin's preview."""

    row: int
    action: str
    label: str
    # A new contact gets its id when the chunk is written, after the outcome is recorded.
    contact: Contact | None = None

    @property
    def contact_id(self) -> int | None:
        return self.contact.pk if self.contact is not None else None


@dataclass
class ImportReport:
    """Counts and problems of one import; ``problems`` contains every skipped row and left-out value."""

    file_name: str
    dry_run: bool
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    outcomes: list[RowOutcome] = field(default_factory=list)

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + self.skipped

    @property
    def skipped_problems(self) -> list[RowProblem]:
        return [problem for problem in self.problems if problem.skipped]

    @property
    def value_problems(self) -> list[RowProblem]:
        return [problem for problem in self.problems if not problem.skipped]

    def record(self, row: ContactRow, action: str, contact: Contact | None = None) -> None:
        setattr(self, action, getattr(self, action) + 1)
        self.problems.extend(row.problems)
        if row.number - 1 <= PREVIEW_ROWS or row.problems:
            label = row.email or row.phone or row.external_id
            if contact is not None:
                label = contact.email or contact.phone or contact.external_id or label
            self.outcomes.append(RowOutcome(row.number, action, label, contact))


class Claim(NamedTuple):
    """An identity value taken by an earlier row of the file, and the email of that row's contact.

    A tuple, because the garbage collector stops tracking tuples of strings and integers, and a
    large file keeps three claims per row until the import ends.
    """

    row: int
    email: str


@dataclass
class FileState:
    """The decisions of earlier chunks of the file, so that later chunks see the whole file."""

    claims: dict[str, dict[str, Claim]] = field(default_factory=lambda: {kind: {} for kind in IDENTITY_TARGETS})
    # Existing contact id -> the row that updated it.
    targeted: dict[int, int] = field(default_factory=dict)
    # Case-folded tag name -> tag id; None until the first row with tags loads it.
    tag_ids: dict[str, int] | None = None
    # Channel -> existing contacts whose consent this import withdraws.
    withdrawn: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    # Written contacts with order facts, whose VIP tier the import brings up to date.
    with_facts: list[int] = field(default_factory=list)
    template: InstanceTemplate | None = None

    def contact_template(self, now: datetime) -> InstanceTemplate:
        if self.template is None:
            self.template = contact_template(now)
        return self.template


@dataclass
class ChunkPlan:
    """The writes one chunk needs."""

    # New contacts hold the template's defaults except in the fields named with them.
    new: list[tuple[Contact, set[str]]] = field(default_factory=list)
    updated: list[Contact] = field(default_factory=list)
    update_fields: set[str] = field(default_factory=set)
    tag_links: list[tuple[Contact, list[str]]] = field(default_factory=list)
    consent_changes: list[tuple[Contact, str, str, int]] = field(default_factory=list)


IDENTITY_LABELS = {
    "email": gettext_lazy("email address"),
    "external_id": gettext_lazy("customer id"),
    "phone": gettext_lazy("phone number"),
}


def import_contacts(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    file_name: str,
    dry_run: bool = False,
    header_width: int | None = None,
    now: datetime | None = None,
) -> ImportReport:
    """Import contact rows and return the report; a dry run plans every row and writes nothing.

    Raises ImportFileError when the headers contain no identity column. The import runs in one
    transaction, so a database error leaves nothing half imported. On PostgreSQL the existing
    contacts a chunk updates stay locked until the import commits.
    """
    now = now or timezone.now()
    columns = map_columns(headers, header_width)
    report = ImportReport(file_name=file_name, dry_run=dry_run)
    state = FileState()

    with garbage_collector_paused():
        if dry_run:
            import_rows(columns, rows, state, report, writer=None, file_name=file_name, now=now)
        else:
            with transaction.atomic():
                writer = ImportWriter(file_name=file_name, now=now)
                import_rows(columns, rows, state, report, writer=writer, file_name=file_name, now=now)
                # One signal per channel with every contact, so receivers run set-based.
                for channel, contact_ids in state.withdrawn.items():
                    consent_withdrawn.send(sender=Contact, contact_ids=contact_ids, channel=channel, at=now)
                if state.with_facts:
                    vip.update_imported(state.with_facts, now)

    logger.info(
        "import of %s%s: %s created, %s updated, %s unchanged, %s skipped",
        file_name,
        " (dry run)" if dry_run else "",
        report.created,
        report.updated,
        report.unchanged,
        report.skipped,
    )
    return report


@contextmanager
def garbage_collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the duration of an import.

    Every collection walks the tracked objects, and an import allocates several per row, so in
    the benchmark (bench/README.md) the collector took about a tenth of the import's CPU time.
    The import creates no reference cycles (test_import_leaves_no_cyclic_garbage checks that a
    collection afterwards finds nothing), so reference counting frees its memory as before.
    The pause is process-wide: cycles that another thread creates meanwhile are collected
    after the import.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def import_rows(
    columns: ColumnMap,
    rows: Sequence[Sequence[Any]],
    state: FileState,
    report: ImportReport,
    *,
    writer: ImportWriter | None,
    file_name: str,
    now: datetime,
) -> None:
    """Plan the rows chunk by chunk and, unless ``writer`` is None (a dry run), write each chunk."""
    for start in range(0, len(rows), CHUNK_SIZE):
        # Row numbers as a spreadsheet shows them: the header is row 1.
        cleaned = [clean_row(columns, index + 2, rows[index]) for index in range(start, min(start + CHUNK_SIZE, len(rows)))]
        chunk = [row for row in cleaned if row is not None]
        plan = plan_chunk(columns, chunk, state, report, lock=writer is not None, now=now)
        if writer is not None:
            writer.write_contacts(plan.new, plan.updated, plan.update_fields)
            state.with_facts.extend(
                contact.pk
                for contact in (*(contact for contact, _changed in plan.new), *plan.updated)
                if contact.order_count or contact.total_spent
            )
            if plan.tag_links:
                writer.write_tag_links(plan.tag_links, state.tag_ids if state.tag_ids is not None else {})
            writer.write_consent_records(plan.consent_changes)
        logger.debug("import of %s: rows %s-%s planned", file_name, start + 2, start + len(cleaned) + 1)


def find_owners(rows: list[ContactRow], *, lock: bool) -> dict[str, dict[str, Contact]]:
    """Return the existing contacts that own any identity of the rows, by identity kind and value.

    Plain SQL, because an ORM ``__in`` filter prepares each of the thousands of values in Python,
    which took longer than the query. With ``lock`` the rows are locked where the database
    supports SELECT ... FOR UPDATE (PostgreSQL; SQLite already holds the write lock).
    """
    values = {kind: {getattr(row, kind) for row in rows if getattr(row, kind)} for kind in IDENTITY_TARGETS}
    owners: dict[str, dict[str, Contact]] = {kind: {} for kind in IDENTITY_TARGETS}
    quote = connection.ops.quote_name
    conditions = []
    params: list[str] = []
    for kind, kind_values in values.items():
        if kind_values:
            column = quote(Contact._meta.get_field(kind).column)
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(kind_values))})")
            params.extend(kind_values)
    if not conditions:
        return owners

    # NOTE: emails are compared as stored. Contact.save() and normalize_email() store them in lower
    # case; a contact written in mixed case by code that bypasses both would not be found.
    sql = f"SELECT * FROM {quote(Contact._meta.db_table)} WHERE {' OR '.join(conditions)}"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    for contact in Contact.objects.raw(sql, params):
        for kind in IDENTITY_TARGETS:
            value = getattr(contact, kind)
            if value in values[kind]:
                owners[kind][value] = contact
    return owners


def find_protected_unsubscribes(contacts: list[Contact]) -> set[tuple[int, str]]:
    """Return (contact id, channel) pairs unsubscribed by something other than an import."""
    unsubscribed = {
        (contact.pk, channel)
        for contact in contacts
        for channel, status_field in STATUS_FIELDS.items()
        if getattr(contact, status_field) == UNSUBSCRIBED
    }
    if not unsubscribed:
        return set()

    latest_source: dict[tuple[int, str], str] = {}
    records = (
        ConsentRecord.objects.filter(contact_id__in={contact_id for contact_id, _channel in unsubscribed})
        .order_by("occurred_at", "id")
        .values_list("contact_id", "channel", "source")
    )
    for contact_id, channel, source in records:
        latest_source[(contact_id, channel)] = source
    # A status without any record was set by hand or by code that kept no proof: keep it.
    return {pair for pair in unsubscribed if latest_source.get(pair) != CONSENT_SOURCE}


def load_tag_links(rows: list[ContactRow], owners: dict[str, dict[str, Contact]]) -> dict[int, set[int]]:
    if not any(row.tags for row in rows):
        return {}
    contact_ids = {contact.pk for by_value in owners.values() for contact in by_value.values()}
    links: dict[int, set[int]] = defaultdict(set)
    through = Contact.tags.through.objects.filter(contact_id__in=contact_ids).values_list("contact_id", "tag_id")
    for contact_id, tag_id in through:
        links[contact_id].add(tag_id)
    return links


def plan_chunk(
    columns: ColumnMap,
    rows: list[ContactRow],
    state: FileState,
    report: ImportReport,
    *,
    lock: bool,
    now: datetime,
) -> ChunkPlan:
    """Decide for each row of a chunk whether it creates, updates, changes nothing or is skipped."""
    plan = ChunkPlan()
    template = state.contact_template(now)
    candidates = [row for row in rows if not row.skipped]
    owners = find_owners(candidates, lock=lock)
    owner_contacts = list({contact.pk: contact for by_value in owners.values() for contact in by_value.values()}.values())
    protected = find_protected_unsubscribes(owner_contacts)
    tag_links = load_tag_links(candidates, owners)
    if state.tag_ids is None and any(row.tags for row in candidates):
        state.tag_ids = {}
        for tag_id, name in Tag.objects.values_list("id", "name"):
            state.tag_ids.setdefault(name.casefold(), tag_id)

    for row in rows:
        if row.skipped:
            report.record(row, ImportReport.SKIPPED)
            continue

        target, duplicate = resolve_target(row, owners, state)
        if duplicate is not None:
            kind, earlier_row = duplicate
            row.problems.append(
                RowProblem(
                    row.number,
                    columns.header(kind),
                    getattr(row, kind),
                    _("Same %(identity)s as row %(row)s, so this row was skipped. Merge the two rows into one.")
                    % {"identity": IDENTITY_LABELS[kind], "row": earlier_row},
                    True,
                )
            )
            report.record(row, ImportReport.SKIPPED)
            continue

        is_new = target is None
        contact = template.build(attributes={}) if is_new else target
        changed = apply_row(columns, row, contact, owners, state, protected, plan, is_new=is_new)
        new_tags = plan_tags(row, contact, tag_links, state, plan, is_new=is_new)

        if is_new:
            plan.new.append((contact, changed))
            action = ImportReport.CREATED
        elif changed or new_tags:
            plan.updated.append(contact)
            plan.update_fields |= changed
            action = ImportReport.UPDATED
        else:
            action = ImportReport.UNCHANGED

        for kind in IDENTITY_TARGETS:
            value = getattr(contact, kind)
            if value:
                state.claims[kind].setdefault(value, Claim(row.number, contact.email or ""))
        if not is_new:
            state.targeted[contact.pk] = row.number
        report.record(row, action, contact)
    return plan


def emails_compatible(first: str, second: str) -> bool:
    return not first or not second or first == second


def resolve_target(
    row: ContactRow, owners: dict[str, dict[str, Contact]], state: FileState
) -> tuple[Contact | None, tuple[str, int] | None]:
    """Return the existing contact the row updates, or the (identity kind, row) it duplicates.

    Claims of earlier rows are checked before the database, so a dry run, which writes nothing,
    decides every row as the real import does.
    """
    for kind in IDENTITY_TARGETS:
        value = getattr(row, kind)
        if not value:
            continue

        claim = state.claims[kind].get(value)
        if claim is not None:
            if kind == "phone" and not emails_compatible(row.email, claim.email):
                continue
            return None, (kind, claim.row)

        owner = owners[kind].get(value)
        if owner is None:
            continue
        if kind == "phone" and not emails_compatible(row.email, owner.email or ""):
            continue
        if owner.pk in state.targeted:
            return None, (kind, state.targeted[owner.pk])
        return owner, None
    return None, None


def apply_row(
    columns: ColumnMap,
    row: ContactRow,
    contact: Contact,
    owners: dict[str, dict[str, Contact]],
    state: FileState,
    protected: set[tuple[int, str]],
    plan: ChunkPlan,
    *,
    is_new: bool,
) -> set[str]:
    """Set the row's values on the contact instance and return the names of the fields changed."""
    changed = apply_identities(columns, row, contact, owners, state)

    if is_new:
        for name, value in row.fields.items():
            setattr(contact, name, value)
        changed.update(row.fields)
    else:
        for name, value in row.fields.items():
            if getattr(contact, name) != value:
                setattr(contact, name, value)
                changed.add(name)

    if row.attributes:
        merged = {**contact.attributes, **row.attributes}
        if merged != contact.attributes:
            contact.attributes = merged
            changed.add("attributes")

    raise_facts = is_new or columns.is_shopify_export
    if row.order_count is not None and raise_facts and row.order_count > contact.order_count:
        contact.order_count = row.order_count
        changed.add("order_count")
    if row.total_spent is not None and raise_facts and (is_new or row.total_spent > contact.total_spent):
        contact.total_spent = row.total_spent
        changed.add("total_spent")

    for channel, status in row.consent.items():
        status_field = STATUS_FIELDS[channel]
        if getattr(contact, status_field) == status:
            continue
        if status == SUBSCRIBED and (contact.pk, channel) in protected:
            row.problems.append(
                RowProblem(
                    row.number,
                    columns.header(f"{channel}_consent"),
                    status,
                    _(
                        "The contact unsubscribed from %(channel)s, and an import does not subscribe them again. "
                        "They can subscribe again themselves."
                    )
                    % {"channel": channel},
                    False,
                )
            )
            continue
        setattr(contact, status_field, status)
        changed.add(status_field)
        plan.consent_changes.append((contact, channel, status, row.number))
        if status == UNSUBSCRIBED and not is_new:
            state.withdrawn[channel].append(contact.pk)
    return changed


def apply_identities(
    columns: ColumnMap,
    row: ContactRow,
    contact: Contact,
    owners: dict[str, dict[str, Contact]],
    state: FileState,
) -> set[str]:
    """Fill the contact's missing identities from the row and return the names of those set."""
    changed: set[str] = set()
    for kind in IDENTITY_TARGETS:
        value = getattr(row, kind)
        current = getattr(contact, kind)
        if not value or current == value:
            continue

        if current:
            reason = _("The contact already has %(identity)s %(current)s, so it was kept and this value was not imported.") % {
                "identity": IDENTITY_LABELS[kind],
                "current": current,
            }
            row.problems.append(RowProblem(row.number, columns.header(kind), value, reason, False))
            continue

        claim = state.claims[kind].get(value)
        owner = owners[kind].get(value)
        if claim is not None or (owner is not None and owner.pk != contact.pk):
            where = _("row %(row)s") % {"row": claim.row} if claim else _("contact %(id)s") % {"id": owner.pk}
            reason = _("This %(identity)s already belongs to another contact (%(where)s), so it was not added to this one.") % {
                "identity": IDENTITY_LABELS[kind],
                "where": where,
            }
            row.problems.append(RowProblem(row.number, columns.header(kind), value, reason, False))
            continue

        setattr(contact, kind, value)
        changed.add(kind)
    return changed


def plan_tags(
    row: ContactRow,
    contact: Contact,
    tag_links: dict[int, set[int]],
    state: FileState,
    plan: ChunkPlan,
    *,
    is_new: bool,
) -> bool:
    """Plan the row's tags for the contact and return whether any link is new."""
    if not row.tags:
        return False
    tag_ids = state.tag_ids or {}
    linked = set() if is_new else tag_links.get(contact.pk, set())
    missing = [name for name in row.tags if tag_ids.get(name.casefold()) not in linked]
    if missing:
        plan.tag_links.append((contact, missing))
    return bool(missing)
