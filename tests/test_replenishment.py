"""The replenishment cycle table: default rows, matching plain orders, the reminder schedule and the workflow's exits."""

import json
from datetime import datetime, timedelta

import pytest
import time_machine
from django.contrib import messages as message_levels
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from campaigns.models import Delivery, MessageTemplate
from campaigns.rendering import merge_context, render_subject
from contacts.models import ApiKey, ConsentStatus, Contact, Event, Shop
from tests.test_shopify_webhooks import DOMAIN, SECRET, post_sample
from workflows import replenishment
from workflows.engine.tick import tick
from workflows.library import REMINDER_LEAD_DAYS, REPLENISHMENT_CYCLES, TEMPLATES, install_template
from workflows.lifecycle import activate
from workflows.models import Enrollment, ReplenishmentCycle, Workflow

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
LANGUAGES = ["nl", "en"]

# Order lines as a shop sends them, without cycle_days: each product's title words are in the
# default table, and the days are the reminder day the table must give.
PLAIN_LINES = {
    "supplement-30-days": ({"title": "Vitamin D supplement", "variant_title": "90 capsules", "sku": "VIT-D-90"}, 23),
    "coffee-1-lb": ({"title": "Ethiopian coffee beans", "variant_title": "1 lb", "sku": "COF-ETH-1"}, 12),
    "skincare-60-ml": ({"title": "Hydrating skincare serum", "variant_title": "60 ml", "sku": "SER-60"}, 40),
    "pet-food-15-lb": ({"title": "Grain-free pet food", "variant_title": "15 lb", "sku": "PET-GF-15"}, 28),
    "razor-blades-8-pack": ({"title": "Razor blades", "variant_title": "8-pack", "sku": "RAZ-8"}, 53),
}
SUNGLASSES = {"title": "Aviator sunglasses", "variant_title": "", "sku": "SKU2006-001"}


@pytest.fixture
def lotte(db) -> Contact:
    return Contact.objects.create(email="lotte@example.com", first_name="Lotte", email_consent=ConsentStatus.SUBSCRIBED)


@pytest.fixture
def sanne(db) -> Contact:
    return Contact.objects.create(email="sanne@example.com", first_name="Sanne", email_consent=ConsentStatus.SUBSCRIBED)


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def order(send_event):
    """Place an order of these lines: order("anna@example.com", t0, lines, order_id="1")."""

    def place(email: str, at: datetime, lines: list[dict], **properties) -> Event:
        items = [{"quantity": 1, "price": "10.00", **line} for line in lines]
        return send_event("order_placed", email, at, total_price="10.00", line_items=items, **properties)

    return place


def install_live(language: str = "en") -> Workflow:
    workflow = install_template("replenishment", language=language)
    assert activate(workflow) == []
    return workflow


def ticks(start: datetime, *days: int) -> None:
    for day in days:
        tick(start + day * DAY)


def sent(workflow: Workflow, contact: Contact) -> list[tuple[str, datetime]]:
    deliveries = Delivery.objects.filter(enrollment__workflow=workflow, contact=contact, status=Delivery.Status.SENT)
    return list(deliveries.order_by("sent_at", "id").values_list("step__key", "sent_at"))


def subject_of(key: str, language: str, contact: Contact) -> str:
    message = next(step.message for step in TEMPLATES["replenishment"].steps if step.key == key)
    with translation.override(language):
        source = str(message.subject)
    subject, _missing = render_subject(MessageTemplate(subject=source), merge_context(contact))
    return subject


def cycle(key: str) -> ReplenishmentCycle:
    default = next(item for item in replenishment.DEFAULT_CYCLES if item.key == key)
    return ReplenishmentCycle.objects.get(name=default.name)


def enrollment_context(workflow: Workflow, contact: Contact) -> dict:
    return Enrollment.objects.get(workflow=workflow, contact=contact).context


def states(workflow: Workflow) -> dict[str, tuple[str, str]]:
    rows = workflow.enrollments.values_list("contact__email", "state", "exit_reason")
    return {email: (state, reason) for email, state, reason in rows}


def messages_of(response) -> list[tuple[int, str]]:
    return [(message.level, str(message)) for message in response.context["messages"]]


# The table.


def test_default_rows_reminder_days():
    rows = {row.name: (row.cycle_days, row.reminder_day, row.discontinued) for row in ReplenishmentCycle.objects.all()}

    assert rows == {
        "30-day supplement": (30, 23, False),
        "Coffee 1 lb": (19, 12, False),
        "Skincare 60 ml": (47, 40, False),
        "Pet food 15 lb": (35, 28, False),
        "Razor blades 8-pack": (60, 53, False),
    }
    # The migration's copy of the rows and the library's cycles agree with the code's defaults.
    assert {item.name: item.cycle_days for item in replenishment.DEFAULT_CYCLES} == {name: row[0] for name, row in rows.items()}
    assert {key: days - REMINDER_LEAD_DAYS for key, days in REPLENISHMENT_CYCLES.items()} == {
        key: day for key, (_line, day) in PLAIN_LINES.items()
    }
    for item in replenishment.DEFAULT_CYCLES:
        assert cycle(item.key).title_contains == item.title_contains


def test_default_names_are_translated():
    coffee = cycle("coffee-1-lb")

    with translation.override("nl"):
        dutch = str(coffee)
    with translation.override("en"):
        english = str(coffee)

    assert dutch == "Koffie 1 lb"
    assert english == "Coffee 1 lb"
    assert coffee.name == "Coffee 1 lb"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cycle_days": 7}, "Ensure this value is greater than or equal to 8."),
        ({"title_contains": " , "}, "Enter a SKU, a product id or words from the title"),
        ({"sku": "cof-eth-1"}, "Another replenishment cycle has this SKU."),
        ({"product_id": "gid://shopify/Product/111"}, "Another replenishment cycle has this product id."),
    ],
)
@pytest.mark.usefixtures("english")
def test_invalid_rows_rejected(fields, message):
    ReplenishmentCycle.objects.create(name="Ethiopian coffee", sku="COF-ETH-1", product_id="111", cycle_days=19)
    row = ReplenishmentCycle(**{"name": "Another coffee", "cycle_days": 20, **fields})

    with pytest.raises(ValidationError) as error:
        row.full_clean()

    assert message in str(error.value)


def test_match_sku_then_id_then_word():
    ReplenishmentCycle.objects.create(name="Decaf", sku="COF-DECAF", cycle_days=25)
    ReplenishmentCycle.objects.create(name="Espresso", product_id="555", cycle_days=15)
    ReplenishmentCycle.objects.create(name="Senior pet food", title_contains="senior pet food", cycle_days=40)
    table = replenishment.CycleTable.load()

    def matched(line: dict) -> str | None:
        found = table.match(line)
        return found.name if found else None

    assert matched({"title": "Decaf coffee", "sku": "cof-decaf", "product_id": "555"}) == "Decaf"
    assert matched({"title": "Espresso coffee", "sku": "OTHER", "product_id": 555}) == "Espresso"
    assert matched({"title": "Koffiebonen", "variant_title": "1 kg"}) == "Coffee 1 lb"
    assert matched({"title": "Senior pet food", "variant_title": "15 lb"}) == "Senior pet food"
    assert matched({"title": "Grain-free pet food"}) == "Pet food 15 lb"
    assert matched(SUNGLASSES) is None


# Plain orders.


@pytest.mark.parametrize("key", sorted(PLAIN_LINES))
def test_plain_order_reminded_on_day(key, anna, order, t0):
    workflow = install_live()
    line, day = PLAIN_LINES[key]
    order(anna.email, t0, [line], order_id=f"order-{key}")

    ticks(t0, 0, day - 1)
    assert sent(workflow, anna) == []

    tick(t0 + day * DAY)
    assert sent(workflow, anna) == [("reminder", t0 + day * DAY)]
    [item] = enrollment_context(workflow, anna)["line_items"]
    assert item["cycle_days"] == cycle(key).cycle_days
    assert item[replenishment.CYCLE_ID] == cycle(key).pk


@pytest.mark.parametrize("language", LANGUAGES)
def test_full_schedule_of_a_plain_order(language, anna, order, t0):
    workflow = install_live(language)
    order(anna.email, t0, [PLAIN_LINES["supplement-30-days"][0]], order_id="2001")

    ticks(t0, 0, 22, 23, 27, 28, 34, 35)

    assert sent(workflow, anna) == [
        ("reminder", t0 + 23 * DAY),
        ("reorder-prompt", t0 + 28 * DAY),
        ("subscribe-and-save", t0 + 35 * DAY),
    ]
    keys = ["reminder", "reorder-prompt", "subscribe-and-save"]
    assert [message.subject for message in mail.outbox] == [subject_of(key, language, anna) for key in keys]
    assert Enrollment.objects.get(workflow=workflow, contact=anna).state == Enrollment.State.COMPLETED


def test_two_products_take_the_shortest_cycle(anna, order, t0):
    workflow = install_live()
    lines = [PLAIN_LINES["razor-blades-8-pack"][0], PLAIN_LINES["coffee-1-lb"][0]]
    order(anna.email, t0, lines, order_id="2002")

    tick(t0)

    assert [item["cycle_days"] for item in enrollment_context(workflow, anna)["line_items"]] == [60, 19]
    assert Enrollment.objects.get(workflow=workflow, contact=anna).next_run_at == t0 + 12 * DAY


def test_shop_cycle_days_win(anna, order, t0):
    workflow = install_live()
    order(anna.email, t0, [{**PLAIN_LINES["coffee-1-lb"][0], "cycle_days": 25}], order_id="2003")

    tick(t0)

    [item] = enrollment_context(workflow, anna)["line_items"]
    assert item["cycle_days"] == 25
    assert replenishment.CYCLE_ID not in item
    assert Enrollment.objects.get(workflow=workflow, contact=anna).next_run_at == t0 + 18 * DAY


def test_order_without_cycle_not_enrolled(anna, lotte, order, t0):
    workflow = install_live()
    ReplenishmentCycle.objects.filter(pk=cycle("coffee-1-lb").pk).update(discontinued=True)
    order(anna.email, t0, [SUNGLASSES], order_id="2004")
    order(lotte.email, t0, [PLAIN_LINES["coffee-1-lb"][0]], order_id="2005")

    ticks(t0, 0, 30)

    assert workflow.enrollments.count() == 0
    assert mail.outbox == []


def test_discontinued_line_gets_no_cycle(anna, order, t0):
    workflow = install_live()
    ReplenishmentCycle.objects.filter(pk=cycle("coffee-1-lb").pk).update(discontinued=True)
    order(anna.email, t0, [PLAIN_LINES["coffee-1-lb"][0], PLAIN_LINES["pet-food-15-lb"][0]], order_id="2006")

    tick(t0)

    coffee, pet_food = enrollment_context(workflow, anna)["line_items"]
    assert "cycle_days" not in coffee
    assert pet_food["cycle_days"] == 35
    assert Enrollment.objects.get(workflow=workflow, contact=anna).next_run_at == t0 + 28 * DAY


def test_shopify_order_matched_by_sku(client, db, t0):
    Shop.objects.create(domain=DOMAIN, name="Koffiehuis", webhook_secret=SECRET, currency="EUR")
    ReplenishmentCycle.objects.create(name="Ethiopian coffee 1 lb", sku="COF-ETH-1", cycle_days=21)
    workflow = install_live()
    line = {
        "id": 1,
        "product_id": 788032119674292922,
        "variant_id": 1,
        "title": "Ethiopian",
        "sku": "cof-eth-1",
        "price": "14.00",
    }

    with time_machine.travel(t0, tick=False):
        response = post_sample(
            client,
            "orders__create.2026-01.json",
            processed_at=t0.isoformat(),
            line_items=[line],
            checkout_token="checkout-7",
            buyer_accepts_marketing=True,
        )
        tick(t0)

    assert response.status_code == 200
    enrollment = workflow.enrollments.get()
    assert enrollment.key == "checkout-7"
    assert enrollment.context["line_items"][0]["cycle_days"] == 21
    assert enrollment.next_run_at == t0 + 14 * DAY


# Exits.


def test_reorder_restarts_the_cycle(anna, order, t0):
    workflow = install_live()
    coffee = PLAIN_LINES["coffee-1-lb"][0]
    order(anna.email, t0, [coffee], order_id="3001")
    tick(t0)
    order(anna.email, t0 + 10 * DAY, [coffee], order_id="3002")

    ticks(t0, 10, 12, 21, 22)

    rows = list(workflow.enrollments.order_by("enrolled_at").values_list("state", "exit_reason", "enrolled_at"))
    assert rows == [(Enrollment.State.EXITED, "reordered", t0), (Enrollment.State.ACTIVE, "", t0 + 10 * DAY)]
    assert sent(workflow, anna) == [("reminder", t0 + 22 * DAY)]


def test_order_of_another_product_keeps_the_countdown(anna, order, t0):
    workflow = install_live()
    order(anna.email, t0, [PLAIN_LINES["coffee-1-lb"][0]], order_id="3101")
    tick(t0)
    order(anna.email, t0 + 5 * DAY, [SUNGLASSES], order_id="3102")

    ticks(t0, 5, 12)

    assert list(workflow.enrollments.values_list("state", "exit_reason")) == [(Enrollment.State.ACTIVE, "")]
    assert sent(workflow, anna) == [("reminder", t0 + 12 * DAY)]


def test_mixed_reorder_ends_one_countdown(anna, order, t0):
    workflow = install_live()
    order(anna.email, t0, [PLAIN_LINES["coffee-1-lb"][0]], order_id="3201", checkout_token="co-3201")
    order(anna.email, t0, [PLAIN_LINES["razor-blades-8-pack"][0]], order_id="3202", checkout_token="co-3202")
    tick(t0)
    reorder = [PLAIN_LINES["coffee-1-lb"][0], PLAIN_LINES["skincare-60-ml"][0]]
    order(anna.email, t0 + 4 * DAY, reorder, order_id="3203", checkout_token="co-3203")

    tick(t0 + 4 * DAY)

    rows = sorted(workflow.enrollments.values_list("state", "exit_reason", "enrolled_at"))
    assert rows == [
        (Enrollment.State.ACTIVE, "", t0),
        (Enrollment.State.ACTIVE, "", t0 + 4 * DAY),
        (Enrollment.State.EXITED, "reordered", t0),
    ]


def test_subscription_started_exits(anna, lotte, order, send_event, t0):
    workflow = install_live()
    for contact in (anna, lotte):
        order(contact.email, t0, [PLAIN_LINES["coffee-1-lb"][0]], order_id=f"4001-{contact.pk}")
    tick(t0)
    send_event("subscription_started", anna.email, t0 + 5 * DAY, subscription_id="sub-1", product="Coffee 1 lb")

    ticks(t0, 5, 12)

    assert states(workflow) == {
        "anna@example.com": (Enrollment.State.EXITED, "exit condition"),
        "lotte@example.com": (Enrollment.State.ACTIVE, ""),
    }
    assert sent(workflow, anna) == []
    assert sent(workflow, lotte) == [("reminder", t0 + 12 * DAY)]


def test_discontinued_exits_only_its_enrollments(anna, lotte, sanne, chris, order, t0):
    workflow = install_live()
    coffee, razor, pet_food = (PLAIN_LINES[key][0] for key in ("coffee-1-lb", "razor-blades-8-pack", "pet-food-15-lb"))
    order(anna.email, t0, [coffee], order_id="5001", checkout_token="checkout-anna")
    order(lotte.email, t0, [razor], order_id="5002", checkout_token="checkout-lotte")
    order(sanne.email, t0, [pet_food, coffee], order_id="5003")
    # Chris's enrollment has ended (he unsubscribed), so he gets no event.
    order(chris.email, t0, [coffee], order_id="5004", checkout_token="checkout-chris")
    tick(t0)
    assert workflow.enrollments.filter(state=Enrollment.State.ACTIVE).count() == 3

    recorded = replenishment.discontinue([cycle("coffee-1-lb")], t0 + 3 * DAY)
    tick(t0 + 3 * DAY)

    assert recorded == 2
    events = Event.objects.filter(type="product_discontinued").values_list("contact__email", "key", "source")
    assert sorted(events) == [("anna@example.com", "checkout-anna", "system"), ("sanne@example.com", "", "system")]
    assert states(workflow) == {
        "anna@example.com": (Enrollment.State.EXITED, "exit condition"),
        "lotte@example.com": (Enrollment.State.ACTIVE, ""),
        "sanne@example.com": (Enrollment.State.EXITED, "exit condition"),
        "chris@example.com": (Enrollment.State.EXITED, "exit condition"),
    }
    assert cycle("coffee-1-lb").discontinued


def test_discontinued_twice_one_event(anna, order, t0):
    install_live()
    order(anna.email, t0, [PLAIN_LINES["coffee-1-lb"][0]], order_id="5101")
    tick(t0)

    replenishment.record_discontinued([cycle("coffee-1-lb")], t0 + DAY)
    replenishment.record_discontinued([cycle("coffee-1-lb")], t0 + 2 * DAY)

    assert Event.objects.filter(type="product_discontinued").count() == 1


@pytest.mark.usefixtures("english")
def test_api_accepts_subscription_events(client, db, t0):
    _api_key, raw_key = ApiKey.generate("Subscription app")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}

    def post(event_type: str):
        body = {"id": f"{event_type}-1", "type": event_type, "email": "dirk@example.com", "occurred_at": t0.isoformat()}
        return client.post("/api/events", data=json.dumps(body), content_type="application/json", **headers)

    with time_machine.travel(t0 + DAY, tick=False):
        started = post("subscription_started")
        cancelled = post("subscription_cancelled")
        discontinued = post("product_discontinued")

    assert started.status_code == 202
    assert cancelled.status_code == 202
    assert discontinued.status_code == 400
    assert "unknown event type 'product_discontinued'" in json.dumps(discontinued.json())
    assert sorted(Event.objects.values_list("type", flat=True)) == ["subscription_cancelled", "subscription_started"]


# The admin.


@pytest.mark.parametrize(
    ("language", "texts"),
    [
        ("nl", ["Herinnering op dag", "Koffie 1 lb", "Scheermesjes 8 stuks", "Uit het assortiment"]),
        ("en", ["Reminder on day", "Coffee 1 lb", "Razor blades 8-pack", "Discontinued"]),
    ],
)
def test_admin_list_shows_reminder_days(language, texts, staff_client):
    response = staff_client.get(reverse("admin:workflows_replenishmentcycle_changelist"), HTTP_ACCEPT_LANGUAGE=language)

    assert response.status_code == 200
    rows = {row.name: row.reminder_day for row in response.context["cl"].result_list}
    assert rows == {
        "30-day supplement": 23,
        "Coffee 1 lb": 12,
        "Skincare 60 ml": 40,
        "Pet food 15 lb": 28,
        "Razor blades 8-pack": 53,
    }
    for text in texts:
        assert text in response.text


def test_admin_search_and_filter(staff_client):
    ReplenishmentCycle.objects.filter(pk=cycle("pet-food-15-lb").pk).update(discontinued=True)
    url = reverse("admin:workflows_replenishmentcycle_changelist")

    found = staff_client.get(url, {"q": "koffie"})
    discontinued = staff_client.get(url, {"discontinued__exact": "1"})

    assert [row.name for row in found.context["cl"].result_list] == ["Coffee 1 lb"]
    assert [row.name for row in discontinued.context["cl"].result_list] == ["Pet food 15 lb"]


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "Contacts waiting for a reminder about the discontinued product: 1."),
        ("nl", "Contacten die op een herinnering over het product uit het assortiment wachten: 1."),
    ],
)
def test_admin_save_discontinued_exits(language, expected, staff_client, anna, lotte, order, t0):
    workflow = install_live()
    order(anna.email, t0, [PLAIN_LINES["coffee-1-lb"][0]], order_id="6001")
    order(lotte.email, t0, [PLAIN_LINES["razor-blades-8-pack"][0]], order_id="6002")
    tick(t0)
    coffee = cycle("coffee-1-lb")
    form = {"name": coffee.name, "sku": "", "product_id": "", "title_contains": coffee.title_contains, "cycle_days": "19"}

    with time_machine.travel(t0 + 2 * DAY, tick=False):
        response = staff_client.post(
            reverse("admin:workflows_replenishmentcycle_change", args=[coffee.pk]),
            {**form, "discontinued": "on"},
            follow=True,
            HTTP_ACCEPT_LANGUAGE=language,
        )
        # Saving again without a change records nothing new.
        staff_client.post(reverse("admin:workflows_replenishmentcycle_change", args=[coffee.pk]), {**form, "discontinued": "on"})
    tick(t0 + 2 * DAY)

    assert [text for level, text in messages_of(response) if level == message_levels.INFO and text.startswith(expected)]
    assert Event.objects.filter(type="product_discontinued").count() == 1
    assert states(workflow) == {
        "anna@example.com": (Enrollment.State.EXITED, "exit condition"),
        "lotte@example.com": (Enrollment.State.ACTIVE, ""),
    }


def test_admin_action_marks_discontinued(staff_client, anna, lotte, order, t0):
    workflow = install_live()
    order(anna.email, t0, [PLAIN_LINES["coffee-1-lb"][0]], order_id="7001")
    order(lotte.email, t0, [PLAIN_LINES["razor-blades-8-pack"][0]], order_id="7002")
    tick(t0)
    selected = [cycle("coffee-1-lb").pk, cycle("razor-blades-8-pack").pk]

    with time_machine.travel(t0 + 2 * DAY, tick=False):
        response = staff_client.post(
            reverse("admin:workflows_replenishmentcycle_changelist"),
            {"action": "mark_discontinued", "_selected_action": selected},
            follow=True,
            HTTP_ACCEPT_LANGUAGE="en",
        )
    tick(t0 + 2 * DAY)

    texts = [text for _level, text in messages_of(response)]
    assert texts[0] == "Products marked discontinued: 2."
    assert texts[1].startswith("Contacts waiting for a reminder about the discontinued product: 2.")
    assert set(ReplenishmentCycle.objects.filter(discontinued=True).values_list("pk", flat=True)) == set(selected)
    assert {state for state, _reason in states(workflow).values()} == {Enrollment.State.EXITED}
