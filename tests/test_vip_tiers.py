"""VIP tiers: contacts move between tiers as orders and refunds arrive, and a rise records one event
that starts the VIP workflow. Staff recompute after changing a tier. The VIP birthday and
anniversary templates write only to VIP contacts on their day, in Dutch and English."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.messages import constants as message_levels
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from contacts import conditions, timeline, vip
from contacts.condition_editor import build_schema
from contacts.ingest import EventError, parse_event
from contacts.models import ConsentStatus, Contact, Event, Segment, VipTier
from tests.test_library import install_live, sent, subject_of, subjects_to
from workflows.engine.tick import tick
from workflows.models import Enrollment

pytestmark = pytest.mark.django_db

LANGUAGES = ["nl", "en"]
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def tiers(db) -> dict[str, VipTier]:
    """Silver from 500 or 5 orders, Gold from 1000 or 10 orders, as a new installation has them."""
    VipTier.objects.all().delete()
    return {
        "Silver": VipTier.objects.create(name="Silver", rank=1, min_total_spent=Decimal("500"), min_order_count=5),
        "Gold": VipTier.objects.create(name="Gold", rank=2, min_total_spent=Decimal("1000"), min_order_count=10),
    }


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def tier_of(contact: Contact) -> str | None:
    tier = Contact.objects.get(pk=contact.pk).vip_tier
    return tier.name if tier else None


def vip_events(contact: Contact) -> list[dict]:
    return list(
        Event.objects.filter(contact=contact, type="vip_tier_reached").order_by("id").values_list("properties", flat=True)
    )


def order(send_event, contact: Contact, at, amount: str) -> None:
    send_event("order_placed", contact.email, at, total_price=amount)


def messages_of(response) -> list[tuple[int, str]]:
    return [(message.level, str(message)) for message in response.context["messages"]]


# Reaching a tier from order events.


def test_tier_by_total_spent(anna, send_event, t0):
    order(send_event, anna, t0, "520.00")
    tick(t0)
    assert tier_of(anna) == "Silver"

    order(send_event, anna, t0 + DAY, "480.00")
    tick(t0 + DAY)

    assert tier_of(anna) == "Gold"
    assert Contact.objects.get(pk=anna.pk).order_count == 2


def test_tier_by_order_count(anna, send_event, t0):
    for number in range(4):
        order(send_event, anna, t0 + number * MINUTE, "20.00")
    tick(t0 + 4 * MINUTE)
    assert tier_of(anna) is None

    order(send_event, anna, t0 + 5 * MINUTE, "20.00")
    tick(t0 + 5 * MINUTE)

    assert tier_of(anna) == "Silver"
    assert Contact.objects.get(pk=anna.pk).total_spent == Decimal("100.00")


def test_spend_below_every_threshold_has_no_tier(anna, send_event, t0):
    order(send_event, anna, t0, "499.99")

    tick(t0)
    tick(t0 + MINUTE)

    assert tier_of(anna) is None
    assert Contact.objects.get(pk=anna.pk).vip_since is None
    assert vip_events(anna) == []


def test_rise_records_one_event_with_facts(anna, send_event, t0):
    order(send_event, anna, t0, "600.00")

    tick(t0)
    tick(t0 + MINUTE)
    tick(t0 + 2 * MINUTE)

    assert vip_events(anna) == [
        {"tier": "Silver", "tier_rank": 1, "previous_tier": "", "total_spent": "600.00", "order_count": 1}
    ]
    event = Event.objects.get(contact=anna, type="vip_tier_reached")
    assert event.source == Event.Source.SYSTEM
    assert event.occurred_at == t0
    assert event.processed_at == t0 + MINUTE
    assert Contact.objects.get(pk=anna.pk).vip_since == t0


def test_higher_tier_names_previous_tier(anna, send_event, t0):
    order(send_event, anna, t0, "600.00")
    tick(t0)
    order(send_event, anna, t0 + DAY, "450.00")

    tick(t0 + DAY)

    assert [(data["tier"], data["tier_rank"], data["previous_tier"]) for data in vip_events(anna)] == [
        ("Silver", 1, ""),
        ("Gold", 2, "Silver"),
    ]
    assert vip_events(anna)[1]["total_spent"] == "1050.00"
    # vip_since is when the contact first became VIP, not when it reached Gold.
    assert Contact.objects.get(pk=anna.pk).vip_since == t0


def test_skipped_tier_gets_no_event(anna, send_event, t0):
    order(send_event, anna, t0, "1200.00")

    tick(t0)

    assert [data["tier"] for data in vip_events(anna)] == ["Gold"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_rise_enrolls_into_live_vip_workflow(language, anna, send_event, t0):
    workflow = install_live("vip_recognition", language)
    order(send_event, anna, t0, "750.00")

    tick(t0)
    assert workflow.enrollments.count() == 0
    tick(t0 + MINUTE)

    enrollment = Enrollment.objects.get(workflow=workflow, contact=anna)
    assert enrollment.trigger_event.type == "vip_tier_reached"
    assert enrollment.context["tier"] == "Silver"
    assert sent(workflow, anna) == [("congratulations", t0 + MINUTE)]
    assert subjects_to(anna) == [subject_of("vip_recognition", "congratulations", language, anna)]
    assert set(anna.tags.values_list("name", flat=True)) == {"vip"}


def test_vip_workflow_welcomes_once_across_tiers(anna, send_event, t0):
    workflow = install_live("vip_recognition", "en")
    order(send_event, anna, t0, "600.00")
    tick(t0)
    tick(t0 + MINUTE)
    order(send_event, anna, t0 + DAY, "600.00")

    tick(t0 + DAY)
    tick(t0 + DAY + MINUTE)

    assert [data["tier"] for data in vip_events(anna)] == ["Silver", "Gold"]
    assert workflow.enrollments.count() == 1


# Dropping a tier.


def test_refund_lowers_tier_without_event(anna, send_event, t0):
    order(send_event, anna, t0, "1100.00")
    tick(t0)
    assert tier_of(anna) == "Gold"

    send_event("refund_created", anna.email, t0 + DAY, total_price="200.00")
    tick(t0 + DAY)
    assert tier_of(anna) == "Silver"

    send_event("refund_created", anna.email, t0 + 2 * DAY, total_price="500.00")
    tick(t0 + 2 * DAY)

    assert tier_of(anna) is None
    assert [data["tier"] for data in vip_events(anna)] == ["Gold"]
    # The contact stays a former VIP since t0; a new rise keeps that date.
    assert Contact.objects.get(pk=anna.pk).vip_since == t0


def test_cancellation_lowers_tier_by_order_count(anna, send_event, t0):
    for number in range(5):
        order(send_event, anna, t0 + number * MINUTE, "10.00")
    tick(t0 + 5 * MINUTE)
    assert tier_of(anna) == "Silver"

    send_event("order_cancelled", anna.email, t0 + DAY, order_id="1", total_price="0")
    tick(t0 + DAY)

    assert tier_of(anna) is None


def test_reaching_a_tier_again_records_no_second_event(anna, send_event, t0):
    order(send_event, anna, t0, "1100.00")
    tick(t0)
    send_event("refund_created", anna.email, t0 + DAY, total_price="200.00")
    tick(t0 + DAY)
    order(send_event, anna, t0 + 2 * DAY, "300.00")

    tick(t0 + 2 * DAY)

    assert tier_of(anna) == "Gold"
    assert [data["tier"] for data in vip_events(anna)] == ["Gold"]


def test_refund_in_same_batch_lifts_nothing(anna, send_event, t0):
    order(send_event, anna, t0, "800.00")
    send_event("refund_created", anna.email, t0 + MINUTE, total_price="800.00")

    tick(t0 + MINUTE)

    assert tier_of(anna) is None
    assert vip_events(anna) == []


# Recomputing after staff change a tier.


def contacts_with_facts(*facts: tuple[str, str, int]) -> list[Contact]:
    """Contacts whose order facts were set directly, as an import sets them."""
    return [
        Contact.objects.create(email=email, total_spent=Decimal(spent), order_count=count, email_consent=ConsentStatus.SUBSCRIBED)
        for email, spent, count in facts
    ]


def test_recompute_command_assigns_and_lowers(tiers, t0):
    low, mid, high = contacts_with_facts(
        ("low@example.com", "300", 1), ("mid@example.com", "700", 2), ("high@example.com", "90", 12)
    )
    Contact.objects.filter(pk=low.pk).update(vip_tier=tiers["Gold"])
    output = StringIO()

    with translation.override("en"):
        call_command("recompute_vip_tiers", stdout=output)

    assert [tier_of(contact) for contact in (low, mid, high)] == [None, "Silver", "Gold"]
    assert vip_events(low) == []
    assert [data["tier"] for data in vip_events(mid)] == ["Silver"]
    assert [data["tier"] for data in vip_events(high)] == ["Gold"]
    assert output.getvalue().strip() == (
        "VIP tiers recomputed. Contacts that rose to a higher tier: 2. Contacts that dropped to a lower tier or out of the "
        "tiers: 1."
    )


def test_recompute_command_speaks_dutch(tiers):
    contacts_with_facts(("mid@example.com", "700", 2))
    output = StringIO()

    with translation.override("nl"):
        call_command("recompute_vip_tiers", stdout=output)

    assert output.getvalue().strip() == (
        "VIP-niveaus opnieuw berekend. Contacten die naar een hoger niveau gingen: 1. Contacten die naar een lager niveau of "
        "uit de niveaus gingen: 0."
    )


def test_threshold_change_moves_contacts(tiers, send_event, anna, t0):
    order(send_event, anna, t0, "1100.00")
    tick(t0)
    VipTier.objects.filter(pk=tiers["Gold"].pk).update(min_total_spent=Decimal("2000"))

    assert vip.recompute_all(t0 + DAY) == vip.TierChanges(risen=0, lowered=1)
    assert tier_of(anna) == "Silver"

    VipTier.objects.filter(pk=tiers["Gold"].pk).update(min_total_spent=Decimal("1000"))
    assert vip.recompute_all(t0 + 2 * DAY) == vip.TierChanges(risen=1, lowered=0)
    assert tier_of(anna) == "Gold"
    # Gold was reached before, so the rise back records nothing new.
    assert [data["tier"] for data in vip_events(anna)] == ["Gold"]


def test_recompute_is_idempotent(tiers, t0):
    contacts_with_facts(("mid@example.com", "700", 2))

    first = vip.recompute_all(t0)
    second = vip.recompute_all(t0 + MINUTE)

    assert first == vip.TierChanges(risen=1, lowered=0)
    assert second == vip.TierChanges(risen=0, lowered=0)
    assert Event.objects.filter(type="vip_tier_reached").count() == 1


def test_recompute_event_starts_workflow_at_next_tick(tiers, t0):
    workflow = install_live("vip_recognition", "en")
    [mid] = contacts_with_facts(("mid@example.com", "700", 2))

    vip.recompute_all(t0)
    tick(t0 + MINUTE)

    assert [key for key, _at in sent(workflow, mid)] == ["congratulations"]


def test_recompute_queries_do_not_grow_with_contacts(tiers, t0):
    contacts_with_facts(*[(f"a{number}@example.com", "600", 1) for number in range(3)])
    with CaptureQueriesContext(connection) as few:
        vip.recompute_all(t0)
    Contact.objects.update(vip_tier=None, vip_since=None)
    Event.objects.all().delete()
    contacts_with_facts(*[(f"b{number}@example.com", "1200", 1) for number in range(30)])

    with CaptureQueriesContext(connection) as many:
        changes = vip.recompute_all(t0)

    assert changes.risen == 33
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.usefixtures("english")
def test_tier_needs_a_threshold():
    tier = VipTier(name="Bronze", rank=3)

    with pytest.raises(ValidationError) as error:
        tier.full_clean()

    assert error.value.messages == [
        "Enter a minimum total spent, a minimum number of orders, or both. A tier without either would include every contact."
    ]


def test_no_tiers_clears_every_tier(tiers, anna, send_event, t0):
    order(send_event, anna, t0, "600.00")
    tick(t0)

    VipTier.objects.all().delete()
    output = StringIO()
    with translation.override("en"):
        call_command("recompute_vip_tiers", stdout=output)

    assert tier_of(anna) is None
    assert "There are no VIP tiers" in output.getvalue()


# The admin.


@pytest.mark.parametrize("language", LANGUAGES)
def test_tier_list_shows_thresholds_and_counts(language, staff_client, tiers, t0):
    contacts_with_facts(("mid@example.com", "700", 2), ("high@example.com", "90", 12), ("none@example.com", "10", 1))
    vip.recompute_all(t0)

    response = staff_client.get(reverse("admin:contacts_viptier_changelist"), HTTP_ACCEPT_LANGUAGE=language)

    assert response.status_code == 200
    rows = {
        tier.name: (tier.min_total_spent, tier.min_order_count, tier.contact_total) for tier in response.context["cl"].result_list
    }
    assert rows == {"Silver": (Decimal("500.00"), 5, 1), "Gold": (Decimal("1000.00"), 10, 1)}
    heading = {"nl": "Minimaal aantal bestellingen", "en": "Minimum orders"}[language]
    assert heading in response.text


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "VIP tiers recomputed. Contacts that rose to a higher tier: 1;"),
        ("nl", "VIP-niveaus opnieuw berekend. Contacten die naar een hoger niveau gingen: 1;"),
    ],
)
def test_admin_action_recomputes_every_contact(language, expected, staff_client, tiers):
    [mid] = contacts_with_facts(("mid@example.com", "700", 2))

    response = staff_client.post(
        reverse("admin:contacts_viptier_changelist"),
        {"action": "recompute", "_selected_action": [tiers["Gold"].pk]},
        follow=True,
        HTTP_ACCEPT_LANGUAGE=language,
    )

    [(level, text)] = messages_of(response)
    assert level == message_levels.SUCCESS
    assert text.startswith(expected)
    assert tier_of(mid) == "Silver"
    assert [data["tier"] for data in vip_events(mid)] == ["Silver"]


def test_admin_rejects_tier_without_threshold(staff_client):
    response = staff_client.post(
        reverse("admin:contacts_viptier_add"),
        {"name": "Bronze", "rank": "3", "min_total_spent": "", "min_order_count": ""},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 200
    assert not VipTier.objects.filter(name="Bronze").exists()
    assert "Enter a minimum total spent, a minimum number of orders, or both." in response.text


def test_admin_threshold_change_says_to_recompute(staff_client, tiers):
    gold = tiers["Gold"]

    response = staff_client.post(
        reverse("admin:contacts_viptier_change", args=[gold.pk]),
        {"name": "Gold", "rank": "2", "min_total_spent": "1500", "min_order_count": "10"},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert VipTier.objects.get(pk=gold.pk).min_total_spent == Decimal("1500")
    warnings = [text for level, text in messages_of(response) if level == message_levels.WARNING]
    assert warnings == [
        "Contacts keep their tier until you recompute: select the tiers and run “Recompute the VIP tier of every contact”."
    ]


@pytest.mark.parametrize("language", LANGUAGES)
def test_contact_list_shows_and_filters_tier(language, staff_client, tiers, t0):
    contacts_with_facts(("mid@example.com", "700", 2), ("high@example.com", "1500", 3))
    vip.recompute_all(t0)
    url = reverse("admin:contacts_contact_changelist")

    everyone = staff_client.get(url, HTTP_ACCEPT_LANGUAGE=language)
    gold_only = staff_client.get(url, {"vip_tier__id__exact": tiers["Gold"].pk}, HTTP_ACCEPT_LANGUAGE=language)

    assert 'class="sortable column-vip_tier' in everyone.text
    assert {"nl": "VIP-niveau", "en": "VIP tier"}[language] in everyone.text
    assert {contact.email: contact.vip_tier.name for contact in everyone.context["cl"].result_list} == {
        "mid@example.com": "Silver",
        "high@example.com": "Gold",
    }
    assert [contact.email for contact in gold_only.context["cl"].result_list] == ["high@example.com"]


@pytest.mark.parametrize(("language", "title"), [("en", "VIP tier reached"), ("nl", "VIP-niveau bereikt")])
def test_timeline_shows_tier_reached(language, title, anna, send_event, t0):
    order(send_event, anna, t0, "600.00")
    tick(t0)

    with translation.override(language):
        titles = [entry.title for entry in timeline.build(anna)]

    assert title in titles


def test_contact_page_shows_tier(staff_client, anna, send_event, t0):
    order(send_event, anna, t0, "1200.00")
    tick(t0)

    response = staff_client.get(reverse("admin:contacts_contact_change", args=[anna.pk]), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "VIP since" in response.text
    assert ">Gold<" in response.text


def test_events_api_rejects_system_event(t0):
    with pytest.raises(EventError) as error:
        parse_event({"type": "vip_tier_reached", "email": "anna@example.com"}, now=t0)

    assert error.value.field == "type"


# Conditions and segments.


def matching(tree: dict) -> set[str]:
    return set(Contact.objects.filter(conditions.compile(tree)).values_list("email", flat=True))


def test_conditions_on_tier(tiers, t0):
    contacts_with_facts(("none@example.com", "10", 1), ("mid@example.com", "700", 2), ("high@example.com", "1500", 3))
    vip.recompute_all(t0)

    assert matching({"field": "vip_tier", "op": "eq", "value": "Gold"}) == {"high@example.com"}
    assert matching({"field": "vip_tier", "op": "ne", "value": "Gold"}) == {"none@example.com", "mid@example.com"}
    assert matching({"field": "vip_tier", "op": "in", "value": ["Silver", "Gold"]}) == {"mid@example.com", "high@example.com"}
    assert matching({"field": "vip_tier_rank", "op": "gte", "value": 1}) == {"mid@example.com", "high@example.com"}
    assert matching({"field": "vip_tier_rank", "op": "gte", "value": 2}) == {"high@example.com"}
    assert matching({"field": "vip_tier", "op": "is_set"}) == {"mid@example.com", "high@example.com"}
    assert matching({"field": "vip_tier", "op": "not_set"}) == {"none@example.com"}
    assert matching({"field": "vip_since", "op": "within_days", "value": 1}) == set()
    assert matching({"field": "vip_since", "op": "is_set"}) == {"mid@example.com", "high@example.com"}


def test_segment_and_trigger_filter_on_tier(tiers, anna, send_event, t0):
    order(send_event, anna, t0, "1200.00")
    tick(t0)
    Segment.objects.create(name="Gold customers", condition={"field": "vip_tier", "op": "eq", "value": "Gold"})

    assert matching({"segment": "Gold customers"}) == {"anna@example.com"}
    event_filter = conditions.compile_event_filter({"field": "vip_tier_rank", "op": "gte", "value": 2}, now=t0)
    assert Event.objects.filter(event_filter, type="order_placed").count() == 1


@pytest.mark.usefixtures("english")
def test_condition_editor_offers_tier_fields():
    schema = build_schema(allow_properties=False)
    fields = next(option for option in schema["oneOf"] if "field" in option["properties"])["properties"]["field"]["choices"]
    titles = {choice["value"]: choice["title"] for choice in fields}

    assert titles["vip_tier"] == "VIP tier (vip_tier)"
    assert titles["vip_tier_rank"] == "VIP tier rank (vip_tier_rank)"
    assert titles["vip_since"] == "VIP since (vip_since)"


# The VIP birthday and anniversary templates.


@pytest.mark.parametrize("language", LANGUAGES)
def test_vip_birthday_only_for_vips(language, send_event, t0):
    workflow = install_live("vip_birthday", language)
    jarig_vip, jarig, later = (
        Contact.objects.create(email=email, first_name=name, email_consent=ConsentStatus.SUBSCRIBED, attributes={"birthday": day})
        for email, name, day in (
            ("sanne@example.com", "Sanne", "1990-11-02"),
            ("noor@example.com", "Noor", "1988-11-02"),
            ("sem@example.com", "Sem", "1985-11-03"),
        )
    )
    order(send_event, jarig_vip, t0 - 30 * DAY, "650.00")
    order(send_event, jarig, t0 - 30 * DAY, "40.00")
    order(send_event, later, t0 - 30 * DAY, "1200.00")
    tick(t0 - 30 * DAY)

    # 09:00 UTC is 10:00 in Amsterdam, after the trigger's 09:00.
    tick(t0)

    assert sent(workflow, jarig_vip) == [("birthday-gift", t0)]
    assert sent(workflow, jarig) == []
    assert sent(workflow, later) == []
    assert subjects_to(jarig_vip) == [subject_of("vip_birthday", "birthday-gift", language, jarig_vip)]
    assert "VIPBIRTHDAY20" in mail.outbox[-1].body

    tick(t0 + DAY)

    assert sent(workflow, later) == [("birthday-gift", t0 + DAY)]
    assert len(sent(workflow, jarig_vip)) == 1


@pytest.mark.parametrize("language", LANGUAGES)
def test_vip_anniversary_from_first_year(language, send_event, t0):
    workflow = install_live("vip_anniversary", language)
    veteran, newcomer, lapsed = (
        Contact.objects.create(email=email, first_name=name, email_consent=ConsentStatus.SUBSCRIBED)
        for email, name in (("sanne@example.com", "Sanne"), ("noor@example.com", "Noor"), ("sem@example.com", "Sem"))
    )
    year_ago = t0 - 365 * DAY
    order(send_event, veteran, year_ago, "700.00")
    order(send_event, lapsed, year_ago, "700.00")
    tick(year_ago)
    send_event("refund_created", lapsed.email, year_ago + 30 * DAY, total_price="700.00")
    tick(year_ago + 30 * DAY)
    # Becomes VIP at 08:00 in Amsterdam on the veteran's anniversary, before the trigger's 09:00:
    # the same date, but not yet a year.
    order(send_event, newcomer, t0 - timedelta(hours=2), "700.00")
    tick(t0 - timedelta(hours=2))

    tick(t0)

    assert sent(workflow, veteran) == [("anniversary-thanks", t0)]
    assert sent(workflow, newcomer) == []
    assert sent(workflow, lapsed) == []
    assert subjects_to(veteran) == [subject_of("vip_anniversary", "anniversary-thanks", language, veteran)]
    assert "VIPTHANKS15" in mail.outbox[-1].body

    next_year = t0 + 365 * DAY
    tick(next_year)

    assert [key for key, _at in sent(workflow, veteran)] == ["anniversary-thanks", "anniversary-thanks"]
    assert sent(workflow, newcomer) == [("anniversary-thanks", next_year)]
    assert list(workflow.enrollments.filter(contact=veteran).order_by("key").values_list("key", flat=True)) == [
        "vip_since:2026",
        "vip_since:2027",
    ]


# Imports and Shopify customer summaries set order facts without order events.


def test_import_puts_contacts_in_tiers_without_events(t0):
    from contacts.importing import import_contacts

    headers = ["Email", "Total Spent", "Total Orders"]
    rows = [["gold@example.com", "1500.00", "12"], ["silver@example.com", "20.00", "6"], ["new@example.com", "10.00", "1"]]

    import_contacts(headers, rows, file_name="customers.csv", now=t0)

    tiers = dict(Contact.objects.values_list("email", "vip_tier__name"))
    assert tiers == {"gold@example.com": "Gold", "silver@example.com": "Silver", "new@example.com": None}
    assert not Event.objects.filter(type=vip.EVENT_TYPE).exists()
    assert Contact.objects.get(email="gold@example.com").vip_since == t0


def test_import_update_raises_existing_contact_silently(anna, t0):
    from contacts.importing import import_contacts

    # A Shopify customer export (it has Tax Exempt) raises the order facts of existing contacts.
    headers = ["Email", "Total Spent", "Total Orders", "Tax Exempt"]
    import_contacts(headers, [[anna.email, "750.00", "3", "no"]], file_name="customers_export.csv", now=t0)

    assert tier_of(anna) == "Silver"
    assert vip_events(anna) == []

