"""mktauto.bulk_insert: value preparation, chunks and conflict clauses, on whichever backend DATABASE_URL names."""

import sqlite3
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.models import Delivery, MessageTemplate
from contacts.models import Channel, ConsentStatus, Contact, Tag
from mktauto.bulk_insert import BulkInsert, insert_rows
from workflows.models import StepLog

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
# PostgreSQL's protocol counts a statement's parameters in 16 bits.
POSTGRES_MAX_PARAMETERS = 65_535


def contact_defaults(now: datetime) -> dict:
    """Return a value for every Contact field but the id, as a new contact would have them."""
    defaults = {field.attname: field.get_default() for field in Contact._meta.concrete_fields if not field.primary_key}
    defaults.update(created_at=now, updated_at=now)
    return defaults


def executemany_sizes(queries: CaptureQueriesContext) -> list[int]:
    """Return the row count of each executemany, which Django logs as "N times: SQL"."""
    return [int(query["sql"].split(" times: ", 1)[0]) for query in queries.captured_queries if " times: " in query["sql"]]


@pytest.mark.django_db
def test_row_values_need_preparing(t0):
    """Datetimes in another time zone, JSON, Decimal and None reach the database as the ORM would write them."""
    insert = BulkInsert(Contact, defaults=contact_defaults(t0))
    first_order = datetime(2026, 7, 1, 14, 30, tzinfo=AMSTERDAM)
    attributes = {"birthday": "1990-05-17", "vip": True, "visits": 3, "nested": {"list": [1, "twee", None]}}

    insert.write(
        [
            insert.row_with(
                {
                    "email": "anna@example.com",
                    "attributes": attributes,
                    "total_spent": Decimal("1234.50"),
                    "first_order_at": first_order,
                    "last_order_at": None,
                    "order_count": 2,
                }
            )
        ]
    )

    contact = Contact.objects.get(email="anna@example.com")
    assert contact.attributes == attributes
    assert contact.total_spent == Decimal("1234.50")
    assert contact.first_order_at == first_order
    assert contact.first_order_at.utcoffset() == timedelta(0)
    assert contact.last_order_at is None
    assert contact.order_count == 2
    assert contact.created_at == t0
    assert contact.email_consent == ConsentStatus.UNKNOWN
    assert contact.phone is None


@pytest.mark.django_db
def test_cache_tells_true_from_one(t0):
    """True == 1 in Python, but a JSON field stores them as true and 1."""
    insert = BulkInsert(Contact, defaults=contact_defaults(t0))

    insert.write(
        [
            insert.row_with({"email": "true@example.com", "attributes": True}),
            insert.row_with({"email": "one@example.com", "attributes": 1}),
        ]
    )

    assert Contact.objects.get(email="true@example.com").attributes is True
    stored_one = Contact.objects.get(email="one@example.com").attributes
    assert stored_one == 1
    assert type(stored_one) is int


@pytest.mark.django_db
def test_prepare_caches_equal_values(t0):
    insert = BulkInsert(Contact)
    position = insert.positions["first_order_at"]

    first = insert.prepare(position, t0)
    again = insert.prepare(position, t0.astimezone(AMSTERDAM))

    assert again is first
    assert insert.prepare(insert.positions["first_name"], "Anna") == "Anna"
    attributes = insert.positions["attributes"]
    assert insert.prepare(attributes, {"a": 1}) is not insert.prepare(attributes, {"a": 1})


@pytest.mark.django_db
def test_values_of_instance(anna):
    insert = BulkInsert(Contact, include_pk=True)

    row = insert.values(anna)

    assert len(row) == len(Contact._meta.concrete_fields)
    assert row[insert.positions["id"]] == anna.pk
    assert row[insert.positions["email"]] == "anna@example.com"
    assert row[insert.positions["email_consent"]] == ConsentStatus.SUBSCRIBED


@pytest.mark.django_db
def test_insert_rows_booleans_and_constants(anna, bram, t0):
    template = MessageTemplate.objects.create(name="Welkom", subject="Welkom", body="Hallo")
    next_attempt = datetime(2026, 11, 2, 10, 0, tzinfo=AMSTERDAM)

    insert_rows(
        Delivery,
        ("contact_id", "transactional", "subject"),
        [(anna.pk, True, "Voor Anna"), (bram.pk, False, "Voor Bram")],
        {"template_id": template.pk, "channel": Channel.EMAIL, "next_attempt_at": next_attempt, "created_at": t0},
    )

    deliveries = {delivery.contact_id: delivery for delivery in Delivery.objects.all()}
    assert deliveries[anna.pk].transactional is True
    assert deliveries[bram.pk].transactional is False
    assert deliveries[anna.pk].subject == "Voor Anna"
    assert deliveries[bram.pk].next_attempt_at == next_attempt
    assert deliveries[bram.pk].created_at == t0
    assert deliveries[bram.pk].template_id == template.pk
    # Fields named nowhere get their model default.
    assert deliveries[bram.pk].status == Delivery.Status.QUEUED
    assert deliveries[bram.pk].attempts == 0
    assert deliveries[bram.pk].enrollment_id is None


@pytest.mark.django_db
def test_insert_rows_rejects_bad_calls(anna, t0):
    with pytest.raises(ValueError, match=r"Delivery has no fields \['contact'\]"):
        insert_rows(Delivery, ("contact",), [(anna.pk,)], {})
    with pytest.raises(ValueError, match=r"Delivery.sent_at needs preparing"):
        insert_rows(Delivery, ("contact_id", "sent_at"), [(anna.pk, t0)], {})
    with pytest.raises(ValueError, match=r"Contact has auto_now fields \['updated_at'\]"):
        insert_rows(Contact, ("email",), [("dirk@example.com",)], {})
    assert not Delivery.objects.exists()


@pytest.mark.django_db
def test_insert_rows_without_rows_runs_no_query():
    with CaptureQueriesContext(connection) as queries:
        insert_rows(StepLog, ("enrollment_id",), [], {})

    assert queries.captured_queries == []


@pytest.mark.django_db
def test_chunks_of_chunk_size(t0):
    insert = BulkInsert(Contact, defaults=contact_defaults(t0), chunk_size=3)
    rows = (insert.row_with({"email": f"klant{number}@example.com"}) for number in range(7))

    with CaptureQueriesContext(connection) as queries:
        insert.write(rows)

    assert executemany_sizes(queries) == [3, 3, 1]
    assert Contact.objects.count() == 7


@pytest.mark.django_db
def test_chunk_over_parameter_limit(t0):
    """One executemany binds more parameters than one statement may hold, because each row is bound on its own."""
    insert = BulkInsert(Contact, defaults=contact_defaults(t0), chunk_size=10_000)
    count = 12_000
    limit = POSTGRES_MAX_PARAMETERS
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    assert insert.chunk_size * len(insert.fields) > limit

    with CaptureQueriesContext(connection) as queries:
        insert.write(insert.row_with({"email": f"klant{number}@example.com"}) for number in range(count))

    assert executemany_sizes(queries) == [10_000, 2_000]
    assert Contact.objects.count() == count
    assert Contact.objects.filter(email="klant11999@example.com").exists()


@pytest.mark.django_db
def test_ignore_conflicts_skips_duplicates(anna, bram):
    tag = Tag.objects.create(name="vip")
    anna.tags.add(tag)
    links = BulkInsert(Contact.tags.through, field_names=("contact", "tag"), ignore_conflicts=True)

    links.write([[anna.pk, tag.pk], [bram.pk, tag.pk], [bram.pk, tag.pk]])

    assert sorted(Contact.tags.through.objects.values_list("contact_id", flat=True)) == sorted([anna.pk, bram.pk])
    if connection.vendor == "sqlite":
        assert links.sql.startswith("INSERT OR IGNORE INTO")
    else:
        assert links.sql.endswith("ON CONFLICT DO NOTHING")


@pytest.mark.django_db
def test_upsert_updates_named_fields(anna, t0):
    later = t0 + timedelta(hours=1)
    upsert = BulkInsert(Contact, include_pk=True, update_fields=["first_name", "updated_at"])
    anna.first_name = "Anne"
    anna.last_name = "de Vries"
    anna.updated_at = later
    new = Contact(email="dirk@example.com", first_name="Dirk", created_at=t0, updated_at=t0)
    new.pk = anna.pk + 1000

    upsert.write([upsert.values(anna), upsert.values(new)])

    anna.refresh_from_db()
    assert anna.first_name == "Anne"
    assert anna.updated_at == later
    # Not among update_fields, so the row keeps its stored value.
    assert anna.last_name == ""
    assert Contact.objects.get(pk=new.pk).first_name == "Dirk"


@pytest.mark.django_db
def test_write_without_rows_runs_no_query():
    insert = BulkInsert(StepLog)

    with CaptureQueriesContext(connection) as queries:
        insert.write([])

    assert queries.captured_queries == []
