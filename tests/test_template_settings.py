"""Installing templates: the discount code and sender filled in, the library page, and how installed workflows read."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from campaigns.content_check import check_template
from campaigns.models import MessageTemplate
from campaigns.preview import render_preview
from contacts.models import Channel
from workflows.engine.tick import tick
from workflows.library import TEMPLATES, install_template
from workflows.lifecycle import activate
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

LIBRARY_URL = "admin:workflows_workflow_library"


@pytest.fixture
def staff_client(client: Client, staff_user) -> Client:
    client.force_login(staff_user)
    return client


def welcome_email(workflow: Workflow) -> MessageTemplate:
    return workflow.steps.get(key="welcome").template


def test_templates_with_an_offer_suggest_a_code():
    with_code = {slug for slug, spec in TEMPLATES.items() if spec.discount_code}

    assert {"welcome_series", "abandoned_cart", "abandoned_cart_sms", "win_back", "replenishment"} <= with_code
    for slug in with_code:
        workflow = install_template(slug, language="en")
        bodies = " ".join(step.template.body for step in workflow.steps.exclude(template=None))
        assert "{{ discount_code }}" in bodies, slug
        assert TEMPLATES[slug].discount_code not in bodies, slug


def test_install_fills_code_and_sender_into_sent_email(anna, send_event, t0):
    workflow = install_template(
        "welcome_series", language="nl", discount_code=" HALLO20 ", from_email="Winkel <hallo@winkel.example>"
    )
    assert activate(workflow) == []
    send_event("signed_up", anna.email, t0)

    tick(t0)

    assert workflow.discount_code == "HALLO20"
    [message] = mail.outbox
    assert message.from_email == "Winkel <hallo@winkel.example>"
    assert "**15% korting** op je eerste bestelling met de code **HALLO20**" in message.body
    assert "<strong>HALLO20</strong>" in message.alternatives[0][0]


def test_install_without_code_uses_suggested_code(anna, send_event, t0, settings):
    workflow = install_template("welcome_series", language="en")
    assert activate(workflow) == []
    send_event("signed_up", anna.email, t0)

    tick(t0)

    assert workflow.discount_code == "WELCOME15"
    assert "code **WELCOME15**" in mail.outbox[0].body
    assert mail.outbox[0].from_email == settings.DEFAULT_FROM_EMAIL


def test_changed_code_applies_to_later_messages(anna, send_event, t0):
    workflow = install_template("welcome_series", language="en")
    assert activate(workflow) == []
    send_event("signed_up", anna.email, t0)
    tick(t0)
    Workflow.objects.filter(pk=workflow.pk).update(discount_code="SPRING15")

    for day in range(1, 9):
        tick(t0 + timedelta(days=day))

    bodies = [message.body for message in mail.outbox]
    assert "WELCOME15" in bodies[0]
    assert len(bodies) == 5
    assert all("WELCOME15" not in body for body in bodies[1:])
    assert "SPRING15" in bodies[-1]


def test_code_fills_sms_text(send_event, t0, settings):
    from contacts.models import ConsentStatus, Contact

    settings.MKTAUTO_SMS_BACKEND = "campaigns.channels.console.ConsoleBackend"
    sanne = Contact.objects.create(
        email="sanne@example.com",
        phone="+31612345678",
        email_consent=ConsentStatus.SUBSCRIBED,
        sms_consent=ConsentStatus.SUBSCRIBED,
    )
    workflow = install_template("abandoned_cart_sms", language="en", discount_code="CART10")
    sms_step = workflow.steps.filter(template__channel=Channel.SMS, template__body__contains="discount_code").first()

    preview = render_preview(sms_step.template, sanne)

    assert "code CART10, today only" in preview.sms.text


@pytest.mark.usefixtures("english")
def test_empty_code_blocks_activation():
    workflow = install_template("win_back", language="en", discount_code="")

    problems = activate(workflow)

    assert workflow.status == Workflow.Status.DRAFT
    offer = workflow.steps.get(template__body__contains="discount_code").template
    assert (
        f"Message {offer.name} uses {{{{ discount_code }}}}, but the workflow has no discount code. Enter the code under "
        "Discount code, or take the merge tag out of the message."
    ) in problems


def test_discount_code_is_a_known_merge_tag():
    workflow = install_template("replenishment", language="en")

    for step in workflow.steps.exclude(template=None):
        assert [problem.message for problem in check_template(step.template) if problem.blocking] == []


def test_preview_shows_the_workflows_code(anna):
    workflow = install_template("welcome_series", language="en", discount_code="PREVIEW15")

    preview = render_preview(welcome_email(workflow), anna)

    assert "code **PREVIEW15**" in preview.email.text


@pytest.mark.usefixtures("english")
def test_library_page_shows_brand_settings_and_suggested_code(staff_client, settings):
    settings.MKTAUTO_BRAND_NAME = "Koffiehuis"
    response = staff_client.get(reverse(LIBRARY_URL), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "<dd>Koffiehuis</dd>" in response.text
    assert 'id="id_discount_code_welcome_series" maxlength="64" value="WELCOME15"' in response.text
    assert 'id="id_discount_code_post_purchase"' not in response.text
    assert 'id="id_from_email_post_purchase"' in response.text
    assert "<dd>No order_placed for 60 days</dd>" in response.text
    assert "<dd>Each year on birthday</dd>" in response.text
    assert "<dd>checkout_started</dd>" in response.text


def test_admin_install_with_code_and_sender(staff_client):
    response = staff_client.post(
        reverse(LIBRARY_URL),
        {"template": "abandoned_cart", "language": "nl", "discount_code": "TERUG10", "from_email": "Shop <shop@winkel.example>"},
    )
    workflow = Workflow.objects.get(template_slug="abandoned_cart")

    assert response.status_code == 302
    assert workflow.discount_code == "TERUG10"
    emails = MessageTemplate.objects.filter(steps__workflow=workflow, channel=Channel.EMAIL)
    assert emails.exists()
    assert set(emails.values_list("from_email", flat=True)) == {"Shop <shop@winkel.example>"}


def test_admin_install_ignores_code_for_template_without_offer(staff_client):
    staff_client.post(reverse(LIBRARY_URL), {"template": "post_purchase", "language": "en", "discount_code": "NOPE"})

    assert Workflow.objects.get(template_slug="post_purchase").discount_code == ""


@pytest.mark.usefixtures("english")
def test_admin_install_rejects_bad_sender(staff_client):
    response = staff_client.post(
        reverse(LIBRARY_URL),
        {"template": "welcome_series", "language": "en", "discount_code": "WELCOME15", "from_email": "shop at example"},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 400
    assert Workflow.objects.count() == 0
    assert "shop at example is not a sender address. Enter one like Shop &lt;shop@example.com&gt;" in response.text
    assert 'id="id_from_email_welcome_series" maxlength="254" placeholder=' in response.text
    # One note at the top reports the errors, and the page shows no second banner for them.
    assert response.text.count('class="errornote"') == 1
    assert 'class="messagelist"' not in response.text


@pytest.mark.usefixtures("english")
def test_command_installs_with_code_and_sender(capsys):
    call_command(
        "install_template", "win_back", "--language", "en", "--discount-code", "MISSYOU20", "--from-email", "shop@winkel.example"
    )
    workflow = Workflow.objects.get(template_slug="win_back")

    assert workflow.discount_code == "MISSYOU20"
    assert "The messages offer the discount code MISSYOU20." in capsys.readouterr().out
    emails = MessageTemplate.objects.filter(steps__workflow=workflow, channel=Channel.EMAIL)
    assert set(emails.values_list("from_email", flat=True)) == {"shop@winkel.example"}


@pytest.mark.parametrize(
    ("sender", "valid"),
    [
        ("Winkel <winkel@example.com>", True),
        ("winkel@example.com", True),
        ('"Winkel, Utrecht" <winkel@example.com>', True),
        ("Winkel <winkel@example.com", False),
        ("Winkel winkel@example.com", False),
        ("Winkel <winkel@example>", False),
    ],
)
def test_sender_forms(sender, valid):
    from django.core.exceptions import ValidationError

    from campaigns.models import validate_sender

    if valid:
        validate_sender(sender)
    else:
        with pytest.raises(ValidationError):
            validate_sender(sender)


@pytest.mark.usefixtures("english")
def test_command_ignores_code_for_template_without_offer(capsys):
    call_command("install_template", "post_purchase", "--discount-code", "NOPE")

    assert Workflow.objects.get(template_slug="post_purchase").discount_code == ""
    output = capsys.readouterr()
    assert "post_purchase offers no discount code, so --discount-code is ignored." in output.err
    assert "NOPE" not in output.out


@pytest.mark.usefixtures("english")
def test_discount_code_with_spaces_refused(staff_client):
    with pytest.raises(CommandError, match="Enter the discount code without spaces"):
        call_command("install_template", "win_back", "--discount-code", "TERUG 20 %")

    response = staff_client.post(
        reverse(LIBRARY_URL),
        {"template": "win_back", "language": "en", "discount_code": "TERUG 20 %"},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 400
    assert "Enter the discount code without spaces, e.g. WELCOME15." in response.text
    assert Workflow.objects.count() == 0


@pytest.mark.usefixtures("english")
def test_command_rejects_bad_sender():
    with pytest.raises(CommandError, match="nope is not a sender address"):
        call_command("install_template", "welcome_series", "--from-email", "nope")

    assert Workflow.objects.count() == 0


@pytest.mark.usefixtures("english")
def test_flowchart_describes_each_wait_mode():
    from workflows.flowchart import build

    replenishment = install_template("replenishment", language="en")
    post_purchase = install_template("post_purchase", language="en")

    assert "wait the days at trigger.line_items.cycle_days minus 7 d" in build(
        replenishment, list(replenishment.steps.order_by("position"))
    )
    assert "wait for order_fulfilled, at most 14 d" in build(post_purchase, list(post_purchase.steps.order_by("position")))


@pytest.mark.parametrize(
    ("subject", "shown"),
    [
        ("{{ first_name|default:'Hoi' }}, er ligt nog iets in je winkelwagen", "Hoi, er ligt nog iets in je winkelwagen"),
        ('Je download: {{ trigger.content_title|default:"je gids" }}', "Je download: je gids"),
        ("Welkom bij {{ shop_name }}!{% if order_count > 1 %} Weer terug!{% endif %}", "Welkom bij [shop_name]! Weer terug!"),
    ],
)
def test_flowchart_readable_merge_tags(subject, shown):
    from workflows.flowchart import readable

    assert readable(subject) == shown
