"""Privacy requests: exporting everything held about a contact and erasing its personal data."""

import io
import json
import stat
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command

from campaigns.models import Delivery, StepMetric
from contacts.models import ConsentRecord, ConsentStatus, Contact, Tag
from contacts.privacy import erase_contact, export_contact, save_export
from workflows.engine.tick import tick
from workflows.models import Enrollment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture
def customer(anna, make_workflow, send_event, t0) -> Contact:
    """Anna after a checkout, an order and one workflow email: every kind of row a contact can have."""
    anna.last_name = "de Vries"
    anna.phone = "+31612345678"
    anna.external_id = "706405506930370084"
    anna.city = "Utrecht"
    anna.zip = "3511 AB"
    anna.attributes = {"birthday": "1990-05-17"}
    anna.save()
    anna.tags.add(Tag.objects.create(name="VIP"))
    ConsentRecord.objects.create(
        contact=anna, channel="email", status="subscribed", source="import", proof="newsletter.csv row 7", occurred_at=t0
    )
    make_workflow([{"kind": "send_email", "subject": "Hallo {{ first_name }}"}], trigger_event="checkout_started")
    send_event(
        "checkout_started",
        anna.email,
        t0,
        token="123123123",
        total_price="59.95",
        currency="EUR",
        abandoned_checkout_url="https://shop.example.com/recover?key=secret",
        customer_name="Anna de Vries",
        line_items=[{"product_id": "788032119674292922", "title": "Sjaal", "quantity": 1, "price": "59.95", "note": "voor mama"}],
    )
    send_event("order_placed", anna.email, t0 + timedelta(minutes=30), checkout_token="123123123", total_price="59.95")
    tick(now=t0 + timedelta(hours=1))
    anna.refresh_from_db()
    return anna


@pytest.fixture
def exports_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path / "exports"


# Export.


def test_export_contains_profile(customer):
    data = export_contact(customer)

    assert data["format"] == "mktauto contact export"
    assert data["contact"]["email"] == "anna@example.com"
    assert data["contact"]["last_name"] == "de Vries"
    assert data["contact"]["attributes"] == {"birthday": "1990-05-17"}
    assert data["contact"]["total_spent"] == "59.95"
    assert data["tags"] == ["VIP"]


def test_export_contains_consent_records(customer):
    records = export_contact(customer)["consent_records"]

    assert [(record["channel"], record["status"], record["proof"]) for record in records] == [
        ("email", "subscribed", "newsletter.csv row 7")
    ]


def test_export_contains_events(customer):
    events = export_contact(customer)["events"]

    assert [event["type"] for event in events] == ["checkout_started", "order_placed"]
    assert events[0]["properties"]["abandoned_checkout_url"] == "https://shop.example.com/recover?key=secret"
    assert events[0]["value"] == "59.95"


def test_export_contains_enrollments_and_deliveries(customer):
    data = export_contact(customer)

    assert [enrollment["workflow"] for enrollment in data["enrollments"]] == ["Test workflow"]
    assert data["enrollments"][0]["context"]["token"] == "123123123"
    assert len(data["enrollments"][0]["logs"]) >= 1
    assert [delivery["to_address"] for delivery in data["deliveries"]] == ["anna@example.com"]
    assert data["deliveries"][0]["subject"] == "Hallo Anna"


def test_export_is_json_serialisable(customer):
    text = json.dumps(export_contact(customer))

    assert json.loads(text)["contact"]["phone"] == "+31612345678"


def test_save_export_private_file(customer, exports_dir):
    path = save_export(customer, "Request 9999")

    assert path == exports_dir / f"contact-{customer.pk}-request-9999.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["contact"]["email"] == "anna@example.com"


# Erasure.


def test_erase_removes_identity(customer):
    erase_contact(customer)

    customer.refresh_from_db()
    assert customer.email is None
    assert customer.phone is None
    assert customer.external_id == f"erased-{customer.pk}"
    assert str(customer) == f"erased-{customer.pk}"


def test_erase_removes_profile(customer):
    erase_contact(customer)

    customer.refresh_from_db()
    assert customer.first_name == ""
    assert customer.last_name == ""
    assert customer.city == ""
    assert customer.zip == ""
    assert customer.attributes == {}
    assert customer.tags.count() == 0


def test_erase_keeps_order_facts(customer):
    erase_contact(customer)

    customer.refresh_from_db()
    assert customer.order_count == 1
    assert customer.total_spent == Decimal("59.95")


def test_erase_withdraws_consent(customer):
    erase_contact(customer)

    customer.refresh_from_db()
    assert customer.email_consent == ConsentStatus.UNSUBSCRIBED
    assert customer.sms_consent == ConsentStatus.UNSUBSCRIBED
    assert customer.whatsapp_consent == ConsentStatus.UNSUBSCRIBED


def test_erase_blanks_consent_proof(customer):
    erase_contact(customer)

    proofs = set(customer.consent_records.values_list("proof", flat=True))
    assert proofs == {""}
    assert customer.consent_records.filter(source="import", status="subscribed").count() == 1


def test_erase_keeps_events_anonymised(customer):
    erase_contact(customer)

    checkout = customer.events.get(type="checkout_started")
    assert customer.events.count() == 2
    assert checkout.key == "123123123"
    assert checkout.value == Decimal("59.95")
    assert checkout.properties == {
        "token": "123123123",
        "total_price": "59.95",
        "currency": "EUR",
        "line_items": [{"product_id": "788032119674292922", "title": "Sjaal", "quantity": 1, "price": "59.95"}],
    }


def test_erase_keeps_enrollments_anonymised(customer):
    erase_contact(customer)

    enrollment = Enrollment.objects.get(contact=customer)
    assert "abandoned_checkout_url" not in enrollment.context
    assert "customer_name" not in enrollment.context
    assert enrollment.context["token"] == "123123123"
    assert enrollment.logs.count() >= 1


def test_erase_blanks_deliveries(customer):
    erase_contact(customer)

    delivery = Delivery.objects.get(contact=customer)
    assert delivery.to_address == ""
    assert delivery.subject == ""
    assert delivery.status == Delivery.Status.SENT


def test_erase_keeps_step_metrics(customer):
    sent_before = sum(StepMetric.objects.values_list("sent", flat=True))

    erase_contact(customer)

    assert sent_before == 1
    assert sum(StepMetric.objects.values_list("sent", flat=True)) == 1


def test_erase_renames_admin_history(customer, staff_user):
    LogEntry.objects.create(
        user=staff_user,
        content_type=ContentType.objects.get_for_model(Contact),
        object_id=str(customer.pk),
        object_repr="anna@example.com",
        action_flag=CHANGE,
        change_message="Changed city.",
    )

    erase_contact(customer)

    assert LogEntry.objects.get().object_repr == f"erased-{customer.pk}"


def test_erase_deletes_saved_exports(customer, exports_dir, bram, django_capture_on_commit_callbacks):
    other_export = save_export(bram, "request-1")
    removed = save_export(customer, "request-2")

    with django_capture_on_commit_callbacks(execute=True):
        erasure = erase_contact(customer)

    assert erasure.files == [str(removed)]
    assert not removed.exists()
    assert other_export.exists()


def test_erase_twice_changes_nothing_more(customer):
    erase_contact(customer)
    records = ConsentRecord.objects.count()

    second = erase_contact(customer)

    assert second.events == 0
    assert second.deliveries == 0
    assert ConsentRecord.objects.count() == records


def test_erase_leaves_other_contacts(customer, bram):
    erase_contact(customer)

    bram.refresh_from_db()
    assert bram.email == "bram@example.com"
    assert bram.first_name == "Bram"


def test_erase_exits_promotional_workflows(anna, make_workflow, send_event, t0):
    workflow = make_workflow([{"kind": "wait", "wait_hours": 2}, {"kind": "send_email"}], name="Welkom")
    send_event("signed_up", anna.email, t0)
    tick(now=t0)

    erase_contact(anna, now=t0 + timedelta(hours=1))
    tick(now=t0 + timedelta(hours=3))

    enrollment = Enrollment.objects.get(contact=anna, workflow=workflow)
    assert enrollment.state == Enrollment.State.EXITED
    assert not Delivery.objects.filter(contact=anna).exists()


# Commands.


def run(command: str, *args: str) -> str:
    stdout = io.StringIO()
    call_command(command, *args, stdout=stdout)
    return stdout.getvalue()


def test_export_command_prints_json(customer):
    data = json.loads(run("export_contact", "Anna@Example.com"))

    assert data["contact"]["email"] == "anna@example.com"


def test_export_command_writes_file(customer, tmp_path):
    path = tmp_path / "anna.json"

    output = run("export_contact", "anna@example.com", "--output", str(path))

    assert output.strip() == f"Export of contact {customer.pk} written to {path}."
    assert json.loads(path.read_text())["tags"] == ["VIP"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_export_command_unknown_email(db):
    with pytest.raises(CommandError) as raised:
        run("export_contact", "nobody@example.com")

    assert str(raised.value) == "No contact has the email address nobody@example.com. Check the spelling."


def test_export_command_missing_folder(customer, tmp_path):
    with pytest.raises(CommandError) as raised:
        run("export_contact", "anna@example.com", "--output", str(tmp_path / "missing" / "anna.json"))

    assert "Folder not found" in str(raised.value)


def test_erase_command_with_yes(customer):
    output = run("erase_contact", "anna@example.com", "--yes")

    customer.refresh_from_db()
    assert customer.email is None
    assert output.strip() == f"Contact {customer.pk} erased. Rows anonymised: events 1, enrollments 1, messages 1."


def test_erase_command_confirmed(customer, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda question: "yes")

    run("erase_contact", "anna@example.com")

    customer.refresh_from_db()
    assert customer.email is None


def test_erase_command_declined(customer, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda question: "no")

    with pytest.raises(CommandError) as raised:
        run("erase_contact", "anna@example.com")

    customer.refresh_from_db()
    assert customer.email == "anna@example.com"
    assert "Nothing erased" in str(raised.value)


def test_erase_command_without_terminal(customer, monkeypatch):
    def closed_input(question: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", closed_input)

    with pytest.raises(CommandError):
        run("erase_contact", "anna@example.com")

    customer.refresh_from_db()
    assert customer.email == "anna@example.com"
