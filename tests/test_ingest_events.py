"""Events coming in through ingest_events, and the inbox that processes stored events later."""

import io
import json
import sys
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection

from contacts import ingest as ingest_module
from contacts.ingest import parse_event, store_events
from contacts.models import ApiKey, ConsentStatus, Contact, Event
from workflows.engine import inbox
from workflows.engine.tick import tick
from workflows.library import install_template
from workflows.lifecycle import activate
from workflows.models import Enrollment

DATA = Path(__file__).parent / "data" / "events"
SHOP_EVENTS = DATA / "shop_events.jsonl"
MIXED_LINES = DATA / "mixed_lines.jsonl"

pytestmark = pytest.mark.usefixtures("english")


@pytest.fixture(autouse=True)
def frozen_clock(t0):
    with time_machine.travel(t0, tick=False):
        yield


@pytest.fixture
def welcome_series(db):
    workflow = install_template("welcome_series", language="en")
    assert activate(workflow) == []
    return workflow


def ingest(*args: str, stdin=None) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    options = {"stdout": stdout, "stderr": stderr}
    if stdin is not None:
        options["stdin"] = stdin
    call_command("ingest_events", *args, **options)
    return stdout.getvalue(), stderr.getvalue()


def ingest_failing(*args: str) -> tuple[str, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("ingest_events", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue(), str(raised.value)


# The command.


def test_ingest_file_stores_every_line(db):
    stdout, stderr = ingest(str(SHOP_EVENTS))

    assert stdout.strip() == "3 events stored, 0 duplicates skipped, 0 invalid lines."
    assert stderr == ""
    assert sorted(Event.objects.values_list("source_id", flat=True)) == ["shop-1", "shop-2", "shop-3"]


def test_ingest_file_keeps_event_fields(db):
    ingest(str(SHOP_EVENTS))

    order = Event.objects.get(source_id="shop-3")
    assert order.source == Event.Source.API
    assert order.contact.external_id == "cust-88"
    assert order.contact.email == "eva@example.com"
    assert order.value == Decimal("59.95")
    assert order.key == "chk-1"
    assert order.processed_at is None


def test_ingest_twice_stores_nothing_new(db):
    ingest(str(SHOP_EVENTS))

    stdout, _stderr = ingest(str(SHOP_EVENTS))

    assert stdout.strip() == "0 events stored, 3 duplicates skipped, 0 invalid lines."
    assert Event.objects.count() == 3


def test_ingest_bad_lines_reported_by_number(db):
    stdout, stderr, error = ingest_failing(str(MIXED_LINES))

    lines = stderr.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("Line 2: malformed JSON: ")
    assert lines[1] == "Line 3: type: unknown event type 'order_plced'; did you mean order_placed?"
    assert lines[2].startswith("Line 4: email: invalid email address 'fenna(at)example.com'")
    assert lines[3].startswith("Line 6: occurred_at: 'gisteren' is not an ISO 8601 date-time")
    assert lines[4] == "Line 7: event: must be a JSON object, got array"
    assert stdout.strip() == "2 events stored, 0 duplicates skipped, 5 invalid lines."
    assert error.startswith("5 lines were not stored.")


def test_ingest_bad_lines_keep_good_ones(db):
    ingest_failing(str(MIXED_LINES))

    assert sorted(Event.objects.values_list("source_id", flat=True)) == ["mix-1", "mix-5"]
    assert Event.objects.get(source_id="mix-5").contact.phone == "+31612345678"


def test_ingest_fixed_file_stores_rest(db, tmp_path):
    ingest_failing(str(MIXED_LINES))
    fixed = tmp_path / "fixed.jsonl"
    lines = MIXED_LINES.read_text().splitlines()
    lines[1] = json.dumps({"id": "mix-2", "type": "order_placed", "email": "fenna@example.com", "properties": {}})
    fixed.write_text("\n".join(lines[:2]) + "\n")

    stdout, _stderr = ingest(str(fixed))

    assert stdout.strip() == "1 event stored, 1 duplicate skipped, 0 invalid lines."


def test_ingest_reads_standard_input(db, monkeypatch):
    data = SHOP_EVENTS.read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))

    stdout, _stderr = ingest("-")

    assert stdout.strip() == "3 events stored, 0 duplicates skipped, 0 invalid lines."


def test_ingest_reads_given_text_stream(db):
    stdout, _stderr = ingest("-", stdin=io.StringIO(SHOP_EVENTS.read_text()))

    assert stdout.strip() == "3 events stored, 0 duplicates skipped, 0 invalid lines."


def test_ingest_missing_file_rejected(db, tmp_path):
    with pytest.raises(CommandError, match="File not found: .*missing.jsonl"):
        ingest(str(tmp_path / "missing.jsonl"))


def test_ingest_byte_order_mark_accepted(db, tmp_path):
    path = tmp_path / "excel.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + SHOP_EVENTS.read_bytes())

    stdout, _stderr = ingest(str(path))

    assert stdout.strip() == "3 events stored, 0 duplicates skipped, 0 invalid lines."


def test_ingest_reports_every_problem_of_a_line(db, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "Order Placed", "email": "not-an-email", "occurred_at": "yesterday"}\n')

    _stdout, stderr, error = ingest_failing(str(path))

    lines = stderr.strip().splitlines()
    assert [line.split(": ")[1] for line in lines] == ["type", "email", "occurred_at"]
    assert all(line.startswith("Line 1: ") for line in lines)
    assert error.startswith("1 line was not stored.")


def test_ingest_invalid_utf8_line_reported(db, tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = b'{"id": "u-1", "type": "page_viewed", "email": "dirk@example.com"}\n'
    bad = b'{"id": "u-2", "type": "signed_up", "email": "dirk@example.com", "properties": {"city": "M\xfcnster"}}\n'
    path.write_bytes(good + bad)

    _stdout, stderr, error = ingest_failing(str(path))

    assert stderr.startswith("Line 2: malformed JSON: 'utf-8' codec can't decode byte 0xfc")
    assert error.startswith("1 line was not stored. Fix it and run the command again")
    assert Event.objects.get().source_id == "u-1"


def test_ingest_stores_in_chunks(db, tmp_path, monkeypatch):
    monkeypatch.setattr("contacts.management.commands.ingest_events.CHUNK", 2)
    path = tmp_path / "many.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"c-{n}", "type": "page_viewed", "email": "dirk@example.com"}) + "\n" for n in range(5))
    )

    stdout, _stderr = ingest(str(path))

    assert stdout.strip() == "5 events stored, 0 duplicates skipped, 0 invalid lines."
    assert Event.objects.count() == 5


def test_ingest_repeated_id_within_file(db, tmp_path):
    path = tmp_path / "repeat.jsonl"
    line = json.dumps({"id": "r-1", "type": "page_viewed", "email": "dirk@example.com"})
    path.write_text(f"{line}\n{line}\n")

    stdout, _stderr = ingest(str(path))

    assert stdout.strip() == "1 event stored, 1 duplicate skipped, 0 invalid lines."


def test_ingest_ids_unique_per_source(db):
    ingest(str(SHOP_EVENTS))

    stdout, _stderr = ingest(str(SHOP_EVENTS), "--source", "import")

    assert stdout.strip() == "3 events stored, 0 duplicates skipped, 0 invalid lines."
    assert Event.objects.filter(source=Event.Source.IMPORT).count() == 3


# The inbox: stored first, processed later, nothing lost in between.


def test_stored_events_wait_for_tick(db, welcome_series):
    ingest(str(SHOP_EVENTS))

    assert Event.objects.filter(processed_at__isnull=True).count() == 3
    assert Enrollment.objects.count() == 0
    assert Contact.objects.get(email="dirk@example.com").email_consent == ConsentStatus.UNKNOWN


def test_tick_processes_pending_events(db, welcome_series, t0):
    ingest(str(SHOP_EVENTS))

    result = tick(now=t0)

    assert result.events == 3
    assert set(Event.objects.values_list("processed_at", flat=True)) == {t0}
    dirk = Contact.objects.get(email="dirk@example.com")
    assert dirk.email_consent == ConsentStatus.SUBSCRIBED
    assert dirk.first_name == "Dirk"
    assert Enrollment.objects.get().contact == dirk


def test_tick_updates_order_facts(db, t0):
    ingest(str(SHOP_EVENTS))

    tick(now=t0)

    eva = Contact.objects.get(email="eva@example.com")
    assert eva.order_count == 1
    assert eva.total_spent == Decimal("59.95")
    assert eva.last_order_at == t0 - timedelta(hours=22)


def test_later_tick_processes_later_events(db, welcome_series, t0):
    tick(now=t0)
    ingest(str(SHOP_EVENTS))

    assert Event.objects.filter(processed_at__isnull=True).count() == 3

    tick(now=t0 + timedelta(minutes=1))

    assert Event.objects.filter(processed_at__isnull=True).count() == 0
    assert Enrollment.objects.count() == 1


def test_failed_processing_keeps_events_pending(db, welcome_series, t0, monkeypatch):
    ingest(str(SHOP_EVENTS))

    def crash(events, now):
        raise RuntimeError("worker killed mid-batch")

    monkeypatch.setattr(inbox.enroll, "match_triggers", crash)
    with pytest.raises(RuntimeError):
        tick(now=t0)

    assert Event.objects.filter(processed_at__isnull=True).count() == 3
    assert Contact.objects.get(email="eva@example.com").order_count == 0
    assert Contact.objects.get(email="dirk@example.com").email_consent == ConsentStatus.UNKNOWN
    assert Enrollment.objects.count() == 0


def test_tick_after_failure_processes_events(db, welcome_series, t0, monkeypatch):
    ingest(str(SHOP_EVENTS))
    original = inbox.enroll.match_triggers

    def crash(events, now):
        raise RuntimeError("worker killed mid-batch")

    monkeypatch.setattr(inbox.enroll, "match_triggers", crash)
    with pytest.raises(RuntimeError):
        tick(now=t0)
    monkeypatch.setattr(inbox.enroll, "match_triggers", original)

    tick(now=t0 + timedelta(minutes=1))

    assert Event.objects.filter(processed_at__isnull=True).count() == 0
    assert Contact.objects.get(email="eva@example.com").order_count == 1
    assert Enrollment.objects.get().contact.email == "dirk@example.com"


def test_api_events_wait_for_tick(client, welcome_series, t0):
    _api_key, raw_key = ApiKey.generate("Shop backend")
    event = {"id": "api-1", "type": "signed_up", "email": "gijs@example.com", "properties": {"accepts_marketing": "yes"}}

    client.post("/api/events", data=json.dumps(event), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert Event.objects.get().processed_at is None
    assert Enrollment.objects.count() == 0

    tick(now=t0)

    assert Event.objects.get().processed_at == t0
    assert Enrollment.objects.get().contact.email == "gijs@example.com"


@pytest.mark.django_db(transaction=True)
def test_concurrent_stores_keep_one_copy(t0, monkeypatch):
    """Two stores of the same ids that both pass the duplicate check before either inserts."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite takes its write lock at BEGIN, so two stores never interleave there")

    barrier = threading.Barrier(2, timeout=10)
    waited = threading.local()
    original = ingest_module.get_or_create_contact

    def get_or_create_after_both_checked(**identities):
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return original(**identities)

    monkeypatch.setattr(ingest_module, "get_or_create_contact", get_or_create_after_both_checked)
    parsed = [parse_event({"id": "race-1", "type": "page_viewed", "email": "race@example.com"}, now=t0)]
    results = []

    def store():
        try:
            results.append(store_events(parsed, Event.Source.API, now=t0))
        finally:
            connection.close()

    threads = [threading.Thread(target=store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Event.objects.count() == 1
    assert Contact.objects.count() == 1
    assert sorted(len(result.created) for result in results) == [0, 1]
    assert sorted(result.duplicates for result in results) == [0, 1]
