"""Rendering a message for one contact: merge tags, markdown, escaping, links and the layout."""

import pytest

from campaigns.models import MessageTemplate
from campaigns.rendering import RenderError, render_email
from contacts.models import Contact

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
    rendered = render_email(template("Hoi"), contact(), unsubscribe_url=UNSUBSCRIBE)

    assert rendered.text.endswith(f"--\nUnsubscribe: {UNSUBSCRIBE}")
    assert f'href="{UNSUBSCRIBE}"' in rendered.html


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
