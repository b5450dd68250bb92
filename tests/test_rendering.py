"""Rendering a message for one contact: merge tags, markdown, escaping, links, the layout, previews and tests."""

import pytest
from django.core import mail

from campaigns.channels.base import ChannelBackend, ChannelMessage
from campaigns.models import Delivery, MessageTemplate, StepMetric
from campaigns.preview import render_preview, send_test
from campaigns.rendering import RenderError, render_email
from contacts.models import Contact, Event
from workflows.models import Enrollment, Step, Workflow

UNSUBSCRIBE = "http://127.0.0.1:8000/u/token/"


def template(body: str = "Hoi {{ first_name }}", **fields) -> MessageTemplate:
    return MessageTemplate(name="Test", subject=fields.pop("subject", "Onderwerp"), body=body, **fields)


def contact(first_name: str = "Anna", **fields) -> Contact:
    return Contact(email="anna@example.com", first_name=first_name, **fields)


def tracked(url: str) -> str:
    return "https://track.example.com/c/?to=" + url


# Merge tags.


def test_merge_tag_uses_contact_value():
    rendered = render_email(template('Hoi {{ first_name|default:"daar" }}'), contact("Anna"))

    assert rendered.text == "Hoi Anna"
    assert "<p>Hoi Anna</p>" in rendered.html


def test_merge_tag_falls_back_to_default():
    rendered = render_email(template('Hoi {{ first_name|default:"daar" }}'), contact(""))

    assert rendered.text == "Hoi daar"
    assert "<p>Hoi daar</p>" in rendered.html


def test_merge_tag_in_subject():
    rendered = render_email(template(subject='Welkom\n{{ first_name|default:"daar" }}!'), contact("Anna"))

    assert rendered.subject == "Welkom Anna!"


def test_merge_tag_reads_trigger_data():
    rendered = render_email(template("Je liet {{ trigger.title }} achter."), contact(), trigger={"title": "Linnen schort"})

    assert rendered.text == "Je liet Linnen schort achter."


def test_unknown_merge_tag_renders_empty():
    rendered = render_email(template("Hoi {{ favourite_colour }}!"), contact())

    assert rendered.text == "Hoi !"


def test_loop_writes_markdown_list():
    body = "Je mandje:\n\n{% for item in trigger.items %}- {{ item }}\n{% endfor %}"

    rendered = render_email(template(body), contact(), trigger={"items": ["Schort", "Theedoek", "Mok"]})

    assert rendered.html.count("<li>") == 3


def test_merge_syntax_error_raises():
    with pytest.raises(RenderError, match="merge tag error"):
        render_email(template("Hoi {% if first_name %}{{ first_name }}"), contact())


@pytest.mark.parametrize(
    "body",
    [
        "{{ first_name|safe }}",
        "{{ trigger.items|safeseq }}",
        "{% autoescape off %}{{ first_name }}{% endautoescape %}",
        "{% load static %}",
        '{% include "admin/base.html" %}',
        "{% debug %}",
        "{{ trigger.__class__ }}",
    ],
    ids=["safe", "safeseq", "autoescape", "load", "include", "debug", "private-attribute"],
)
def test_unsafe_template_code_rejected(body):
    with pytest.raises(RenderError):
        render_email(template(body), contact(), trigger={"items": ["a"]})


# Escaping: contact data never becomes markup.


def test_script_first_name_escaped_in_html():
    rendered = render_email(template("Hoi {{ first_name }}"), contact("<script>alert(1)</script>"))

    assert "<script>" not in rendered.html
    assert "Hoi &lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html


def test_script_first_name_escaped_after_filter():
    rendered = render_email(template("Hoi {{ first_name|upper }}"), contact("<b>anna</b>"))

    assert "<b>" not in rendered.html
    assert "&lt;B&gt;ANNA&lt;/B&gt;" in rendered.html


def test_script_first_name_escaped_in_default():
    rendered = render_email(template("Hoi {{ trigger.name|default:first_name }}"), contact("<img src=x onerror=alert(1)>"))

    assert "<img src=x" not in rendered.html


def test_markdown_in_contact_data_stays_text():
    rendered = render_email(template("Hoi {{ first_name }}"), contact("[Gratis](https://evil.example) **nu**"))

    assert "evil.example" not in rendered.links
    assert '<a href="https://evil.example"' not in rendered.html
    assert "<strong>" not in rendered.html
    assert "[Gratis](https://evil.example) **nu**" in rendered.html


def test_contact_data_cannot_start_block():
    rendered = render_email(template("{{ first_name }}"), contact("# Kop\n\n> citaat"))

    assert "<h1>" not in rendered.html
    assert "<blockquote>" not in rendered.html


def test_contact_data_cannot_leave_attribute():
    body = '<a href="https://shop.example.com/?ref={{ first_name }}">Shop</a>'

    rendered = render_email(template(body), contact('" onclick="alert(1)'))

    assert 'onclick="alert(1)"' not in rendered.html


def test_ampersand_escaped_once():
    rendered = render_email(template("Hoi {{ first_name }}", preview_text="Tom & Jerry"), contact("Jan & Piet"))

    assert "Hoi Jan &amp; Piet" in rendered.html
    assert "Tom &amp; Jerry</span>" in rendered.html
    assert "&amp;amp;" not in rendered.html


def test_text_version_keeps_raw_values():
    rendered = render_email(template("Hoi {{ first_name }}"), contact("Jan & <Piet>"))

    assert rendered.text == "Hoi Jan & <Piet>"


# Markdown and layout.


def test_markdown_body_becomes_html():
    body = "# Welkom\n\nHier is **15% korting** met code *WELKOM15*.\n\n1. Kies\n2. Betaal"

    rendered = render_email(template(body), contact())

    assert "<h1>Welkom</h1>" in rendered.html
    assert "<strong>15% korting</strong>" in rendered.html
    assert "<em>WELKOM15</em>" in rendered.html
    assert rendered.html.count("<li>") == 2


def test_layout_inlines_css():
    rendered = render_email(template("Hoi"), contact())

    assert '<body style="' in rendered.html
    assert "<style>" not in rendered.html


def test_layout_language_follows_contact():
    rendered = render_email(template("Hi"), contact(language="en"))

    assert '<html lang="en">' in rendered.html


def test_layout_language_defaults_to_dutch():
    rendered = render_email(template("Hoi"), contact())

    assert '<html lang="nl">' in rendered.html


def test_preview_text_in_layout():
    rendered = render_email(template("Hoi", preview_text="Alleen {{ first_name }} krijgt dit"), contact("Anna"))

    assert '">Alleen Anna krijgt dit</span>' in rendered.html


def test_call_to_action_rendered():
    message = template("Hoi", cta_text="Bekijk {{ first_name }}s mandje", cta_url="{{ shop_url }}/cart")

    rendered = render_email(message, contact("Anna"))

    assert "Bekijk Annas mandje: https://shop.example.com/cart" in rendered.text
    assert ">Bekijk Annas mandje</a>" in rendered.html


def test_unsubscribe_footer_present():
    rendered = render_email(template("Hi"), contact(language="en"), unsubscribe_url=UNSUBSCRIBE)

    assert rendered.text.endswith(f"--\nUnsubscribe: {UNSUBSCRIBE}")
    assert f'href="{UNSUBSCRIBE}"' in rendered.html


def test_unsubscribe_footer_in_dutch():
    rendered = render_email(template("Hoi"), contact(), unsubscribe_url=UNSUBSCRIBE)

    assert rendered.text.endswith(f"--\nUitschrijven: {UNSUBSCRIBE}")
    assert ">Uitschrijven</a>" in rendered.html


def test_no_footer_without_unsubscribe():
    rendered = render_email(template("Hoi"), contact())

    assert "Unsubscribe" not in rendered.text
    assert "Unsubscribe" not in rendered.html


def test_open_pixel_included():
    rendered = render_email(template("Hoi"), contact(), open_pixel_url="http://127.0.0.1:8000/t/o/abc.gif")

    assert 'src="http://127.0.0.1:8000/t/o/abc.gif"' in rendered.html


def test_remote_stylesheet_not_fetched():
    # Port 9 (discard) on loopback: any fetch attempt would fail the render.
    body = '<link rel="stylesheet" href="http://127.0.0.1:9/style.css">\n\nHoi'

    rendered = render_email(template(body), contact())

    assert "Hoi" in rendered.html


# Links.


def test_links_tracked_with_original_url():
    body = "[Jassen](https://shop.example.com/jassen?kleur=blauw&maat=m)"
    seen = []

    def track(url: str) -> str:
        seen.append(url)
        return tracked(url)

    rendered = render_email(template(body), contact(), track_link=track)

    assert seen == ["https://shop.example.com/jassen?kleur=blauw&maat=m"]
    assert rendered.links == ["https://shop.example.com/jassen?kleur=blauw&maat=m"]
    assert 'href="https://track.example.com/c/?to=https://shop.example.com/jassen?kleur=blauw&amp;maat=m"' in rendered.html


def test_unsubscribe_link_not_tracked():
    rendered = render_email(template("Hoi"), contact(), unsubscribe_url=UNSUBSCRIBE, track_link=tracked)

    assert f'href="{UNSUBSCRIBE}"' in rendered.html
    assert UNSUBSCRIBE not in rendered.links


def test_mailto_link_kept():
    rendered = render_email(template("[Mail ons](mailto:hallo@shop.example.com)"), contact(), track_link=tracked)

    assert 'href="mailto:hallo@shop.example.com"' in rendered.html
    assert rendered.links == []


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "JavaScript:alert(1)", "java&#9;script:alert(1)", "data:text/html,hoi", "/winkelmand", "https://"],
    ids=["javascript", "javascript-capitals", "javascript-tab", "data", "relative", "no-host"],
)
def test_unsafe_link_rejected(url):
    with pytest.raises(RenderError, match="is not an absolute http"):
        render_email(template(f'<a href="{url}">Klik</a>'), contact())


def test_unsafe_link_from_trigger_rejected():
    message = template("Hoi", cta_text="Afrekenen", cta_url="{{ trigger.checkout_url }}")

    with pytest.raises(RenderError, match="javascript:"):
        render_email(message, contact(), trigger={"checkout_url": "javascript:alert(document.cookie)"})


def test_anchor_link_allowed():
    rendered = render_email(template('<a href="#voorwaarden">Voorwaarden</a>'), contact())

    assert 'href="#voorwaarden"' in rendered.html


def test_missing_filter_argument_raises_render_error():
    with pytest.raises(RenderError, match="merge tag error"):
        render_email(template("Hoi {{ first_name|default:nickname }}"), contact(""))


# Preview as any contact, and a test sent to staff.


CART_TRIGGER = {"line_items": [{"title": "Linnen schort", "price": "24.95", "quantity": 2}], "currency": "EUR"}
PREVIEW_SENT: list = []


class PreviewSmsBackend(ChannelBackend):
    def send(self, message: ChannelMessage) -> str:
        PREVIEW_SENT.append(message)
        return "preview-sms-1"


@pytest.fixture
def cart_email(db) -> MessageTemplate:
    return MessageTemplate.objects.create(
        name="Mandje",
        subject="Je mandje, {{ first_name|default:'hoi' }}",
        body="{% cart_items %}\n\n[Winkel](https://shop.example.com/)",
    )


def test_preview_uses_enrollment_trigger(anna, cart_email, t0):
    workflow = Workflow.objects.create(name="Mandje", trigger_event="checkout_started")
    Step.objects.create(workflow=workflow, position=0, key="mail-1", kind=Step.Kind.SEND_EMAIL, template=cart_email)
    Enrollment.objects.create(workflow=workflow, contact=anna, enrolled_at=t0, context=CART_TRIGGER)

    preview = render_preview(cart_email, anna)

    assert preview.trigger == CART_TRIGGER
    assert "- Linnen schort, 2 × € 24,95 = € 49,90" in preview.email.text


def test_preview_falls_back_to_latest_cart_event(anna, cart_email, t0):
    Event.objects.create(
        source=Event.Source.API, type="checkout_started", contact=anna, occurred_at=t0, properties=CART_TRIGGER, key="c1"
    )

    preview = render_preview(cart_email, anna)

    assert preview.trigger["key"] == "c1"
    assert "Linnen schort" in preview.email.text


def test_preview_links_untracked_and_harmless(anna, cart_email):
    preview = render_preview(cart_email, anna)

    assert 'href="https://shop.example.com/"' in preview.email.html
    assert 'href="http://127.0.0.1:8000/u/example/"' in preview.email.html
    assert "/t/o/" not in preview.email.html


def test_example_link_page_changes_nothing(client, anna):
    response = client.get("/u/example/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "Here it changes nothing." in response.content.decode()


def test_preview_view_for_staff(client, staff_user, anna, cart_email):
    client.force_login(staff_user)

    response = client.get(f"/campaigns/preview/{cart_email.pk}/{anna.pk}/")

    assert response.status_code == 200
    assert "Je mandje, Anna" in response.content.decode()
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def test_preview_view_needs_login(client, anna, cart_email):
    response = client.get(f"/campaigns/preview/{cart_email.pk}/{anna.pk}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_preview_view_needs_permission(client, django_user_model, anna, cart_email):
    clerk = django_user_model.objects.create_user("kees", "kees@example.com", "kees-password", is_staff=True)
    client.force_login(clerk)

    assert client.get(f"/campaigns/preview/{cart_email.pk}/{anna.pk}/").status_code == 403


def test_preview_view_shows_sms_segments(client, staff_user, anna):
    sms = MessageTemplate.objects.create(name="Sms", channel="sms", body="Hoi {{ first_name }} 😀")
    client.force_login(staff_user)

    response = client.get(f"/campaigns/preview/{sms.pk}/{anna.pk}/", HTTP_ACCEPT_LANGUAGE="en")

    page = response.content.decode()
    assert "Hoi Anna 😀</pre>" in page
    assert "11 UCS-2 characters, 1 segment." in page


def test_send_test_marks_subject(anna, cart_email):
    send_test(cart_email, anna, "marieke@example.com", requested_by="marieke")

    message = mail.outbox[0]
    assert message.to == ["marieke@example.com"]
    assert message.subject == "[TEST] Je mandje, Anna"
    assert Delivery.objects.count() == 0
    assert StepMetric.objects.count() == 0


def test_send_test_bad_address_rejected(anna, cart_email):
    with pytest.raises(ValueError, match="'marieke' is not an email address"):
        send_test(cart_email, anna, "marieke")

    assert mail.outbox == []


def test_send_test_sms_to_phone(anna, settings):
    settings.MKTAUTO_SMS_BACKEND = "tests.test_rendering.PreviewSmsBackend"
    PREVIEW_SENT.clear()
    sms = MessageTemplate.objects.create(name="Sms", channel="sms", body="Hoi {{ first_name }}: https://shop.example.com/")

    provider_id = send_test(sms, anna, "+31612345678")

    assert provider_id == "preview-sms-1"
    assert PREVIEW_SENT[0].text == "[TEST] Hoi Anna: https://shop.example.com/"
    assert Delivery.objects.count() == 0


def test_send_test_sms_bad_phone_rejected(anna):
    sms = MessageTemplate.objects.create(name="Sms", channel="sms", body="Hoi")

    with pytest.raises(ValueError, match="is not a phone number in international form"):
        send_test(sms, anna, "0612345678")
