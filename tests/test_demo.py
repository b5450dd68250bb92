"""The demo and workflow_report: 30 virtual days end with sends and conversions, reported three ways."""

import csv
import io
import json

import pytest
from django.core.management import call_command

from campaigns.models import Delivery
from contacts.models import Contact, Event
from workflows.models import Enrollment, Workflow

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def run_command(*args: str) -> str:
    output = io.StringIO()
    call_command(*args, stdout=output, stderr=io.StringIO())
    return output.getvalue()


def test_demo_ends_with_sends_and_conversions(settings):
    settings.LANGUAGE_CODE = "en"

    output = run_command("demo", "--language", "en")

    welcome = Workflow.objects.get(template_slug="welcome_series")
    cart = Workflow.objects.get(template_slug="abandoned_cart")
    assert Contact.objects.count() >= 160
    assert Delivery.objects.filter(enrollment__workflow=welcome, status=Delivery.Status.SENT).count() > 50
    assert Delivery.objects.filter(enrollment__workflow=cart, status=Delivery.Status.SENT).count() > 10
    assert Enrollment.objects.filter(workflow=welcome, converted_at__isnull=False).count() > 0
    assert Enrollment.objects.filter(workflow=cart, converted_at__isnull=False).count() > 0
    assert "Welcome series (Live)" in output
    assert "Abandoned cart recovery (Live)" in output
    assert "1. Email 1: welcome with 15% code" in output
    # Opens and clicks of the simulated recipients arrive on the virtual clock and are processed
    # within the demo, not left for the first real tick.
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    assert Contact.objects.filter(lead_score__gt=0).exists()

    table = run_command("workflow_report", "Welcome series")
    assert table.splitlines()[0] == "Welcome series (Live)"

    rows = list(csv.DictReader(io.StringIO(run_command("workflow_report", "--format", "csv"))))
    welcome_rows = [row for row in rows if row["workflow"] == "Welcome series"]
    assert [row["step"] for row in welcome_rows][:3] == ["welcome", "wait-2", "story"]
    sent_in_csv = sum(int(row["sent"]) for row in welcome_rows)
    assert sent_in_csv == Delivery.objects.filter(enrollment__workflow=welcome, status=Delivery.Status.SENT).count()

    reports = json.loads(run_command("workflow_report", "--format", "json"))
    by_name = {report["name"]: report for report in reports}
    assert by_name["Welcome series"]["converted"] == Enrollment.objects.filter(workflow=welcome, converted_at__isnull=False).count()
    assert float(by_name["Abandoned cart recovery"]["revenue"]) > 0


def test_demo_runs_twice_with_same_figures(settings):
    settings.LANGUAGE_CODE = "en"
    run_command("demo", "--days", "5", "--language", "en")
    first = json.loads(run_command("workflow_report", "--format", "json"))

    run_command("demo", "--days", "5", "--language", "en")
    second = json.loads(run_command("workflow_report", "--format", "json"))

    assert first == second


def test_report_unknown_workflow_names_choices(db):
    Workflow.objects.create(name="Existing", trigger_event="signed_up")

    with pytest.raises(Exception, match="No workflow named 'Nope'. Existing workflows: Existing"):
        call_command("workflow_report", "Nope")
