"""The content check: unknown merge tags, tags whose data is often missing, broken links, images, SMS length."""

import pytest
from django.utils import translation

from campaigns.content_check import ERROR, WARNING, Problem, check_template
from campaigns.models import MessageTemplate
from contacts.models import ConsentStatus, Contact


@pytest.fixture(autouse=True)
def _english():
    """Staff read these messages in their own language; the tests read them in English."""
    with translation.override("en"):
        yield


def email(body: str = "Hoi", **fields) -> MessageTemplate:
    return MessageTemplate(name="Controle", subject=fields.pop("subject", "Nieuws"), body=body, **fields)


def messages(problems: list[Problem]) -> list[str]:
    return [problem.message for problem in problems]


@pytest.fixture
def audience(db) -> list[Contact]:
    """Four email subscribers, three of them without a first name; one unsubscribed contact with a name."""
    contacts = [
        Contact.objects.create(email="met.naam@example.com", first_name="Anna", email_consent=ConsentStatus.SUBSCRIBED),
        *[
            Contact.objects.create(email=f"zonder.naam{number}@example.com", email_consent=ConsentStatus.SUBSCRIBED)
            for number in range(3)
        ],
    ]
    Contact.objects.create(email="weg@example.com", first_name="Bram", email_consent=ConsentStatus.UNSUBSCRIBED)
    return contacts


def test_clean_template_has_no_problems(db):
    template = email(
        'Hoi {{ first_name|default:"daar" }},\n\n[Bekijk de jassen](https://shop.example.com/jassen)\n\n'
        "![Winterjas](https://cdn.example.com/jas.jpg)",
        cta_text="Naar de winkel",
        cta_url="{{ shop_url }}",
    )

    assert check_template(template) == []


# Merge tags.


def test_unknown_tag_is_error(db):
    problems = check_template(email("Hoi {{ voornaam }}"))

    assert len(problems) == 1
    assert problems[0].level == ERROR
    assert problems[0].field == "body"
    assert problems[0].message.startswith("The merge tag {{ voornaam }} is unknown and would print nothing.")


def test_unknown_tag_in_subject(db):
    problems = check_template(email(subject="Voor {{ klant.naam }}"))

    assert [(problem.level, problem.field) for problem in problems] == [(ERROR, "subject")]


def test_unknown_tag_in_filter_argument(db):
    problems = check_template(email("Hoi {{ first_name|default:bijnaam }}"))

    assert "{{ bijnaam }} is unknown" in problems[0].message


def test_loop_and_with_variables_known(db):
    body = (
        "{% for item in trigger.line_items %}- {{ item.title }} ({{ forloop.counter }})\n{% endfor %}"
        '{% with naam=first_name|default:"daar" %}Hoi {{ naam }}{% endwith %}'
    )

    assert check_template(email(body)) == []


def test_syntax_error_reported(db):
    problems = check_template(email("Hoi {% if first_name %}{{ first_name }}"))

    assert problems[0].level == ERROR
    assert problems[0].message.startswith("This text has a merge tag error: merge tag error in")


def test_block_tags_known(db):
    assert check_template(email("{% cart_items %}\n\n{% product_recommendations count=2 %}")) == []


# Data that is often missing.


def test_missing_first_name_share_warned(audience):
    problems = check_template(email("Hoi {{ first_name }},"))

    assert messages(problems) == [
        "{{ first_name }} has no fallback, and 75% of the contacts this message can reach have no value for it; "
        'add one, e.g. {{ first_name|default:"..." }}.'
    ]
    assert problems[0].level == WARNING


def test_missing_share_one_query(audience, django_assert_num_queries):
    template = email("Hoi {{ first_name }} {{ last_name }} uit {{ city }} van {{ attributes.bedrijf }}")

    with django_assert_num_queries(1):
        problems = check_template(template)

    assert len(problems) == 4


def test_missing_share_below_threshold_quiet(audience, settings):
    settings.MKTAUTO_MISSING_DATA_WARNING_PERCENT = 80

    assert check_template(email("Hoi {{ first_name }},")) == []


def test_transactional_counts_every_contact(audience):
    problems = check_template(email("Hoi {{ first_name }},", transactional=True))

    assert "and 60% of the contacts" in problems[0].message


def test_fallback_filter_silences_warning(audience):
    assert check_template(email('Hoi {{ first_name|default:"daar" }},')) == []


def test_if_guard_silences_warning(audience):
    assert check_template(email("Hoi{% if first_name %} {{ first_name }}{% endif %},")) == []


def test_fallback_subject_covers_subject(audience):
    template = email(subject="{{ first_name }}, nieuw binnen", fallback_subject="Nieuw binnen")

    assert check_template(template) == []


def test_subject_without_fallback_subject_warned(audience):
    problems = check_template(email(subject="{{ first_name }}, nieuw binnen"))

    assert [problem.field for problem in problems] == ["subject"]


def test_missing_attribute_share(audience):
    Contact.objects.filter(email="met.naam@example.com").update(attributes={"verjaardag": "1990-05-17"})

    problems = check_template(email("Gefeliciteerd met {{ attributes.verjaardag }}"))

    assert "75% of the contacts" in problems[0].message


def test_trigger_value_without_fallback_warned(db):
    problems = check_template(email("Je liet {{ trigger.title }} achter."))

    assert messages(problems) == [
        "{{ trigger.title }} has no fallback. When the trigger data has no trigger.title, it prints nothing; "
        'add one, e.g. {{ trigger.title|default:"..." }}.'
    ]


def test_no_contacts_no_share_warning(db):
    assert check_template(email("Hoi {{ first_name }},")) == []


# Links.


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ("www.shop.example.com", "has no https:// in front"),
        ("https://shop .example.com/jassen", "is not a valid web address"),
        ("https://", "is not a valid web address"),
        ("htps://shop.example.com", "uses htps:"),
        ("javascript:alert(1)", "uses javascript:"),
        ("mailto:hallo-at-shop.example.com", "does not contain a valid email address"),
        ("tel:bel-ons", "is not a phone number"),
    ],
    ids=["no-scheme", "space", "no-host", "scheme-typo", "javascript", "bad-mailto", "bad-tel"],
)
def test_broken_link_is_error(db, link, reason):
    problems = check_template(email(f"[Klik]({link})"))

    assert len(problems) == 1
    assert problems[0].level == ERROR
    assert reason in problems[0].message


@pytest.mark.parametrize(
    "link",
    ["https://shop.example.com/jassen?kleur=blauw&maat=m", "mailto:hallo@shop.example.com", "tel:+31201234567", "#voorwaarden"],
    ids=["web", "mailto", "tel", "anchor"],
)
def test_good_link_passes(db, link):
    assert check_template(email(f'<a href="{link}">Klik</a>')) == []


def test_link_from_empty_trigger_value(db):
    problems = check_template(email("[Afrekenen]({{ trigger.checkout_url }})"))

    assert "The link is empty for a contact without this data" in messages(problems)[0]


def test_broken_button_link(db):
    problems = check_template(email(cta_text="Naar de winkel", cta_url="shop.example.com"))

    assert [(problem.field, problem.level) for problem in problems] == [("cta_url", ERROR)]


def test_button_text_without_link(db):
    problems = check_template(email(cta_text="Naar de winkel"))

    assert messages(problems) == ["Fill in both the button text and the button link, or neither."]


# Images.


def test_image_without_alt_warned(db):
    problems = check_template(email("![](https://cdn.example.com/jas.jpg)"))

    assert [problem.level for problem in problems] == [WARNING]
    assert "has no alt text" in problems[0].message


def test_http_image_warned(db):
    problems = check_template(email("![Jas](http://cdn.example.com/jas.jpg)"))

    assert [problem.level for problem in problems] == [WARNING]
    assert "is not on an https:// address" in problems[0].message


def test_relative_image_is_error(db):
    problems = check_template(email('<img src="/media/jas.jpg" alt="Jas">'))

    assert [problem.level for problem in problems] == [ERROR]


# SMS and WhatsApp.


def test_two_segment_sms_warned(db):
    template = MessageTemplate(name="Sms", channel="sms", body="a" * 200)

    problems = check_template(template)

    assert messages(problems) == ["For a typical contact this SMS is 2 segments (200 GSM-7 characters), each billed as one SMS."]


def test_sms_over_maximum_is_error(db):
    template = MessageTemplate(name="Sms", channel="sms", body="a" * 200, sms_max_segments=1)

    problems = check_template(template)

    assert problems[0].level == ERROR
    assert "the SMS is 2 segments" in problems[0].message


def test_unicode_sms_warned(db):
    template = MessageTemplate(name="Sms", channel="sms", body="Tot morgen 😀")

    problems = check_template(template)

    assert messages(problems) == ["These characters make the SMS Unicode, with 70 characters per segment instead of 160: 😀"]


def test_sms_short_link_counted_at_real_length(db):
    # 150 characters plus the link: as written it would fit, but the short link takes more room.
    template = MessageTemplate(name="Sms", channel="sms", body="a" * 130 + " https://t.nl/x")

    problems = check_template(template)

    assert "2 segments" in problems[0].message


def test_whatsapp_without_template_name(db):
    template = MessageTemplate(name="Wa", channel="whatsapp", whatsapp_language="nl")

    problems = check_template(template)

    assert [(problem.field, problem.level) for problem in problems] == [("whatsapp_template_name", ERROR)]


def test_whatsapp_parameter_unknown_tag(db):
    template = MessageTemplate(
        name="Wa",
        channel="whatsapp",
        whatsapp_template_name="order_shipped",
        whatsapp_language="nl",
        whatsapp_parameters={"1": "{{ naam }}"},
    )

    problems = check_template(template)

    assert [(problem.field, problem.level) for problem in problems] == [("whatsapp_parameters.1", ERROR)]


def test_errors_listed_before_warnings(db):
    problems = check_template(email("![](https://cdn.example.com/a.jpg) {{ voornaam }}"))

    assert [problem.level for problem in problems] == [ERROR, WARNING]
    assert [problem.blocking for problem in problems] == [True, False]
