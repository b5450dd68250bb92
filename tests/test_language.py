"""Dutch is served. The admin, the unsubscribe page, installed workflow content and command output
are Dutch by default and for a Dutch browser, and English for an English one. The Dutch catalogue
is complete and compiled."""

import gettext
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from campaigns import tracking
from campaigns.models import Delivery, MessageTemplate
from campaigns.rendering import render_email
from workflows.library import install_template
from workflows.models import Workflow

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "locale" / "nl" / "LC_MESSAGES"
MERGE_VARIABLE = re.compile(r"{{\s*([\w.]+)")


@pytest.fixture
def no_active_language():
    """Clear the language an earlier request activated in this thread, so LANGUAGE_CODE applies."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def cart_workflow(db) -> Workflow:
    return Workflow.objects.create(name="Winkelwagen", trigger_event="checkout_started")


@pytest.fixture
def sent_newsletter(anna, t0) -> Delivery:
    newsletter = MessageTemplate.objects.create(name="Nieuwsbrief", subject="Nieuw binnen", body="Hoi {{ first_name }}")
    return Delivery.objects.create(
        contact=anna, template=newsletter, channel="email", status=Delivery.Status.SENT, sent_at=t0, created_at=t0
    )


def unsubscribe_path(delivery: Delivery) -> str:
    return tracking.unsubscribe_url(delivery).removeprefix(django_settings.MKTAUTO_BASE_URL)


def messages_of(workflow: Workflow) -> list[MessageTemplate]:
    return [step.template for step in workflow.steps.order_by("position") if step.template is not None]


def merge_variables(text: str) -> list[str]:
    return sorted(MERGE_VARIABLE.findall(text))


# The admin.


def test_login_page_dutch_for_dutch_browser(client, db):
    response = client.get(reverse("admin:login"), HTTP_ACCEPT_LANGUAGE="nl-NL,nl;q=0.9")

    assert '<html lang="nl"' in response.text
    assert "Gebruikersnaam" in response.text
    assert 'value="Aanmelden"' in response.text


def test_login_page_english_for_english_browser(client, db):
    response = client.get(reverse("admin:login"), HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")

    assert '<html lang="en"' in response.text
    assert "Username" in response.text
    assert 'value="Log in"' in response.text


def test_workflow_changelist_in_dutch(staff_client, cart_workflow):
    response = staff_client.get(reverse("admin:workflows_workflow_changelist"), HTTP_ACCEPT_LANGUAGE="nl")

    assert response.status_code == 200
    assert '<html lang="nl"' in response.text
    assert "Campagnes" in response.text
    assert "Triggergebeurtenis" in response.text
    assert "Actieve inschrijvingen" in response.text
    assert "Nieuwe workflow uit sjabloon" in response.text
    assert "Geselecteerde workflows activeren" in response.text
    assert "Trigger event" not in response.text


def test_workflow_changelist_in_english(staff_client, cart_workflow):
    response = staff_client.get(reverse("admin:workflows_workflow_changelist"), HTTP_ACCEPT_LANGUAGE="en")

    assert '<html lang="en"' in response.text
    assert "Campaigns" in response.text
    assert "Trigger event" in response.text
    assert "Active enrollments" in response.text
    assert "New workflow from template" in response.text
    assert "Activate the selected workflows" in response.text
    assert "Triggergebeurtenis" not in response.text


def test_workflow_change_page_in_dutch(staff_client, cart_workflow):
    url = reverse("admin:workflows_workflow_change", args=[cart_workflow.pk])

    response = staff_client.get(url, HTTP_ACCEPT_LANGUAGE="nl")

    assert "Stopvoorwaarde" in response.text
    assert "Stroomdiagram" in response.text
    assert "Resultaten per stap" in response.text
    assert "Concept" in response.text


def test_contact_changelist_in_dutch(staff_client, anna):
    response = staff_client.get(reverse("admin:contacts_contact_changelist"), HTTP_ACCEPT_LANGUAGE="nl")

    assert "Toestemming e-mail" in response.text
    assert "Ingeschreven" in response.text
    assert "Op heeft bestellingen" in response.text


def test_admin_without_header_is_dutch(staff_client, cart_workflow):
    response = staff_client.get(reverse("admin:workflows_workflow_changelist"))

    assert '<html lang="nl"' in response.text
    assert "Triggergebeurtenis" in response.text


def test_admin_header_names_the_product_in_both_languages(staff_client):
    dutch = staff_client.get(reverse("admin:index"))
    english = staff_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en")

    assert "mktauto-marketingautomatisering" in dutch.text
    assert "Django-beheer" not in dutch.text
    assert "mktauto marketing automation" in english.text


def test_consent_record_reads_in_dutch(anna):
    from contacts.consent import set_consent
    from contacts.models import Channel, ConsentRecord, ConsentStatus

    set_consent(anna, Channel.SMS, ConsentStatus.UNSUBSCRIBED, source="unsubscribe link")

    with translation.override("nl"):
        assert str(ConsentRecord.objects.latest("id")) == "anna@example.com: Sms, Uitgeschreven"


def test_unsupported_browser_language_gets_dutch(staff_client, cart_workflow):
    response = staff_client.get(reverse("admin:workflows_workflow_changelist"), HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")

    assert '<html lang="nl"' in response.text
    assert "Triggergebeurtenis" in response.text


# Workflow templates installed in a language.


def test_install_template_dutch_content(db):
    workflow = install_template("welcome_series", language="nl")
    welcome = messages_of(workflow)[0]

    assert workflow.name == "Welkomstreeks"
    assert workflow.objective.startswith("Maak van nieuwe inschrijvers eerste kopers")
    assert workflow.steps.get(key="welcome").name == "E-mail 1: welkom met 15% kortingscode"
    assert welcome.subject == "{{ first_name|default:'Hallo' }}, welkom bij {{ shop_name }}!"
    assert welcome.preview_text == "Hier is 15% korting op je eerste bestelling."
    assert welcome.body.startswith("Beste {{ first_name|default:'klant' }},\n\nBedankt voor je inschrijving.")
    assert "**15% korting**" in welcome.body
    assert "**{{ discount_code }}**" in welcome.body
    assert welcome.cta_text == "Nu shoppen"


def test_install_template_english_content(db):
    workflow = install_template("welcome_series", language="en")
    welcome = messages_of(workflow)[0]

    assert workflow.name == "Welcome series"
    assert welcome.subject == "Welcome to {{ shop_name }}, {{ first_name|default:'there' }}!"
    assert welcome.body.startswith("Hi {{ first_name|default:'there' }},\n\nThank you for signing up.")
    assert welcome.cta_text == "Shop now"


@pytest.mark.parametrize("slug", ["welcome_series", "abandoned_cart"])
def test_dutch_template_keeps_merge_tags_and_codes(db, slug):
    english = messages_of(install_template(slug, language="en"))
    dutch = messages_of(install_template(slug, language="nl"))

    for english_message, dutch_message in zip(english, dutch, strict=True):
        assert merge_variables(dutch_message.body) == merge_variables(english_message.body)
        assert merge_variables(dutch_message.subject) == merge_variables(english_message.subject)
        assert re.findall(r"\*\*\w+\d+\*\*", dutch_message.body) == re.findall(r"\*\*\w+\d+\*\*", english_message.body)
        assert dutch_message.cta_url == english_message.cta_url
        assert "there" not in dutch_message.body
        assert "Hi " not in dutch_message.body


def test_dutch_template_renders_for_nameless_contact(db, bram):
    bram.first_name = ""
    welcome = messages_of(install_template("welcome_series", language="nl"))[0]

    rendered = render_email(welcome, bram, unsubscribe_url="https://mail.example.com/u/abc/")

    assert rendered.subject == f"Hallo, welkom bij {django_settings.MKTAUTO_BRAND_NAME}!"
    assert rendered.text.startswith("Beste klant,\n\nBedankt voor je inschrijving.")
    assert "Uitschrijven: https://mail.example.com/u/abc/" in rendered.text
    assert '<html lang="nl">' in rendered.html


def test_dutch_cart_subject_uses_first_name(db, anna):
    reminder = messages_of(install_template("abandoned_cart", language="nl"))[0]

    rendered = render_email(reminder, anna)

    assert rendered.subject == "Anna, er ligt nog iets in je winkelwagen"


def test_english_contact_gets_english_footer(db, anna):
    anna.language = "en"
    welcome = messages_of(install_template("welcome_series", language="en"))[0]

    rendered = render_email(welcome, anna, unsubscribe_url="https://mail.example.com/u/abc/")

    assert "Unsubscribe: https://mail.example.com/u/abc/" in rendered.text


# The unsubscribe page shown to shop customers.


def test_unsubscribe_page_in_dutch(client, sent_newsletter):
    response = client.get(unsubscribe_path(sent_newsletter), HTTP_ACCEPT_LANGUAGE="nl")

    assert "<title>Uitschrijven</title>" in response.text
    assert "<h1>Uitschrijven</h1>" in response.text
    assert "Wil je geen marketingberichten meer ontvangen op anna@example.com?" in response.text
    assert '<button type="submit">Uitschrijven</button>' in response.text


def test_unsubscribe_page_in_english(client, sent_newsletter):
    response = client.get(unsubscribe_path(sent_newsletter), HTTP_ACCEPT_LANGUAGE="en")

    assert "<h1>Unsubscribe</h1>" in response.text
    assert "Do you want to stop receiving marketing messages at anna@example.com?" in response.text


def test_unsubscribed_page_in_dutch(client, sent_newsletter):
    response = client.post(unsubscribe_path(sent_newsletter))

    assert "<h1>Je bent uitgeschreven</h1>" in response.text
    assert "anna@example.com ontvangt geen marketingberichten meer van ons." in response.text


# Command output.


def test_command_help_dutch_by_default():
    environment = {name: value for name, value in os.environ.items() if name != "MKTAUTO_LANGUAGE_CODE"}

    result = subprocess.run(
        [sys.executable, "manage.py", "tick", "--help"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert "Voer één tick van de engine uit" in result.stdout
    assert "Zet berichten in de wachtrij, maar verstuur ze niet." in result.stdout


def test_install_command_output_dutch_by_default(db, no_active_language):
    output = io.StringIO()

    call_command("install_template", "abandoned_cart", stdout=output)

    workflow = Workflow.objects.get()
    assert workflow.name == "Verlaten winkelwagens terugwinnen"
    assert output.getvalue().startswith("abandoned_cart geïnstalleerd als conceptworkflow 'Verlaten winkelwagens")
    assert "Activeer de workflow in het beheer." in output.getvalue()


def test_ingest_events_errors_dutch_by_default(db, no_active_language, tmp_path):
    from django.core.management import CommandError

    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "order_placed", "email": "anna@example.com", "occurred_at": "2099-01-01T00:00:00Z"}\n')
    stderr = io.StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("ingest_events", str(path), stdout=io.StringIO(), stderr=stderr)

    assert stderr.getvalue().strip() == (
        "Regel 1: occurred_at: '2099-01-01T00:00:00Z' ligt in de toekomst; stuur het tijdstip waarop de gebeurtenis plaatsvond"
    )
    assert str(raised.value).startswith("1 regel is niet opgeslagen.")


def test_report_output_dutch_by_default(db, no_active_language):
    install_template("abandoned_cart", language="nl")
    output = io.StringIO()

    call_command("workflow_report", stdout=output)

    lines = output.getvalue().splitlines()
    assert lines[0] == "Verlaten winkelwagens terugwinnen (Concept)"
    assert lines[1] == "  ingeschreven 0, actief 0, voltooid 0, gestopt 0"
    assert lines[3].split() == ["Stap", "Binnengekomen", "Verzonden", "Geopend", "Geklikt", "Geconverteerd", "Omzet"]


def test_report_figures_in_dutch_number_format(db, no_active_language, anna, t0):
    from decimal import Decimal

    from workflows.models import Enrollment

    workflow = install_template("abandoned_cart", language="nl")
    Workflow.objects.filter(pk=workflow.pk).update(goal_target_percent=Decimal("12.5"))
    Enrollment.objects.create(
        workflow=workflow, contact=anna, enrolled_at=t0, state="completed", converted_at=t0, revenue=Decimal("1234.5")
    )
    output = io.StringIO()

    call_command("workflow_report", stdout=output)

    assert output.getvalue().splitlines()[2] == "  geconverteerd 1 (100,0%, doel 12,5%), omzet 1.234,50"


def test_report_output_english_when_configured(db, settings):
    settings.LANGUAGE_CODE = "en"
    install_template("abandoned_cart", language="en")
    output = io.StringIO()

    call_command("workflow_report", stdout=output)

    lines = output.getvalue().splitlines()
    assert lines[0] == "Abandoned cart recovery (Draft)"
    assert lines[3].split()[:3] == ["Step", "Entered", "Sent"]


# The catalogue itself.


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="needs GNU gettext's msgfmt")
def test_dutch_catalogue_complete():
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", os.devnull, str(CATALOGUE / "django.po")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\d+ translated messages\.\n", result.stderr), result.stderr


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="needs GNU gettext's msgfmt")
def test_compiled_catalogue_matches_source(tmp_path):
    fresh = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "-o", str(fresh), str(CATALOGUE / "django.po")], check=True, timeout=60)

    # GNUTranslations has no public way to list its entries, so the two catalogues are compared.
    with open(fresh, "rb") as compiled_now, open(CATALOGUE / "django.mo", "rb") as committed:
        expected = gettext.GNUTranslations(compiled_now)._catalog
        actual = gettext.GNUTranslations(committed)._catalog

    assert actual == expected
