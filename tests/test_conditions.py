"""The condition language: each node kind compiles to a Q that selects the right contacts."""

from datetime import timedelta

import pytest
from django.db.models import OuterRef

from contacts import conditions
from contacts.models import Contact, Event, Segment, Tag
from workflows.models import Enrollment, Workflow

pytestmark = pytest.mark.django_db


def matching(tree: dict, **options) -> set[str]:
    return set(Contact.objects.filter(conditions.compile(tree, **options)).values_list("email", flat=True))


def add_event(contact: Contact, event_type: str, at, key: str = "", **properties) -> Event:
    return Event.objects.create(source="api", type=event_type, contact=contact, occurred_at=at, key=key, properties=properties)


def test_empty_tree_matches_everyone(anna, bram):
    assert matching({}) == {"anna@example.com", "bram@example.com"}


def test_field_comparisons(anna, bram):
    Contact.objects.filter(pk=anna.pk).update(lead_score=60, city="Utrecht")

    assert matching({"field": "lead_score", "op": "gte", "value": 50}) == {"anna@example.com"}
    assert matching({"field": "lead_score", "op": "lt", "value": 50}) == {"bram@example.com"}
    assert matching({"field": "city", "op": "eq", "value": "Utrecht"}) == {"anna@example.com"}
    assert matching({"field": "city", "op": "is_set"}) == {"anna@example.com"}
    assert matching({"field": "city", "op": "not_set"}) == {"bram@example.com"}
    assert matching({"field": "email_consent", "op": "in", "value": ["subscribed", "pending"]}) == {"anna@example.com"}


def test_date_field_relative_to_now(anna, bram, t0):
    Contact.objects.filter(pk=anna.pk).update(last_order_at=t0 - timedelta(days=90))
    Contact.objects.filter(pk=bram.pk).update(last_order_at=t0 - timedelta(days=10))

    assert matching({"field": "last_order_at", "op": "older_than_days", "value": 60}, now=t0) == {"anna@example.com"}
    assert matching({"field": "last_order_at", "op": "within_days", "value": 60}, now=t0) == {"bram@example.com"}


def test_attribute_tag_and_boolean_nodes(anna, bram, chris):
    Contact.objects.filter(pk=anna.pk).update(attributes={"plan": "pro"})
    bram.tags.add(Tag.objects.create(name="vip"))

    assert matching({"attribute": "plan", "op": "eq", "value": "pro"}) == {"anna@example.com"}
    assert matching({"tag": "vip"}) == {"bram@example.com"}
    assert matching({"not": {"tag": "vip"}}) == {"anna@example.com", "chris@example.com"}
    assert matching({"any": [{"tag": "vip"}, {"attribute": "plan", "op": "eq", "value": "pro"}]}) == {
        "anna@example.com",
        "bram@example.com",
    }
    assert matching({"all": [{"tag": "vip"}, {"attribute": "plan", "op": "eq", "value": "pro"}]}) == set()


def test_event_within_days_and_where(anna, bram, t0):
    add_event(anna, "order_placed", t0 - timedelta(days=2), total_price="80.00")
    add_event(bram, "order_placed", t0 - timedelta(days=40), total_price="80.00")

    assert matching({"event": "order_placed"}) == {"anna@example.com", "bram@example.com"}
    assert matching({"event": "order_placed", "within_days": 30}, now=t0) == {"anna@example.com"}
    where_high = {"event": "order_placed", "where": [{"property": "currency", "op": "not_set"}]}
    assert matching(where_high) == {"anna@example.com", "bram@example.com"}


def test_event_since_enrollment_per_enrollment(anna, bram, t0):
    workflow = Workflow.objects.create(name="W", trigger_event="signed_up")
    anna_enrollment = Enrollment.objects.create(workflow=workflow, contact=anna, enrolled_at=t0)
    bram_enrollment = Enrollment.objects.create(workflow=workflow, contact=bram, enrolled_at=t0)
    add_event(anna, "order_placed", t0 + timedelta(hours=1))
    add_event(bram, "order_placed", t0 - timedelta(hours=1))

    compiled = conditions.compile(
        {"event": "order_placed", "since": "enrollment"}, since=OuterRef("enrolled_at"), contact_path="contact__"
    )

    assert list(Enrollment.objects.filter(compiled).values_list("pk", flat=True)) == [anna_enrollment.pk]
    assert bram_enrollment.pk not in Enrollment.objects.filter(compiled).values_list("pk", flat=True)


def test_same_key_and_keyless_events(anna, t0):
    workflow = Workflow.objects.create(name="Cart", trigger_event="checkout_started")
    cart_a = Enrollment.objects.create(workflow=workflow, contact=anna, key="a", enrolled_at=t0)
    cart_b = Enrollment.objects.create(workflow=workflow, contact=anna, key="b", enrolled_at=t0)
    same_key = conditions.compile(
        {"event": "order_placed", "since": "enrollment", "same_key": True},
        since=OuterRef("enrolled_at"),
        key=OuterRef("key"),
        contact_path="contact__",
    )

    add_event(anna, "order_placed", t0 + timedelta(minutes=5), key="a")
    assert set(Enrollment.objects.filter(same_key).values_list("pk", flat=True)) == {cart_a.pk}

    add_event(anna, "order_placed", t0 + timedelta(minutes=9), key="")
    assert set(Enrollment.objects.filter(same_key).values_list("pk", flat=True)) == {cart_a.pk, cart_b.pk}


def test_segment_reference(anna, bram):
    Segment.objects.create(name="Engaged", condition={"field": "first_name", "op": "eq", "value": "Anna"})

    assert matching({"segment": "Engaged"}) == {"anna@example.com"}


def test_trigger_filter_on_event_properties(anna, bram, t0):
    big = add_event(anna, "checkout_started", t0, total_price="59.95", country="NL")
    Event.objects.filter(pk=big.pk).update(value="59.95")
    small = add_event(bram, "checkout_started", t0, total_price="9.95", country="BE")
    Event.objects.filter(pk=small.pk).update(value="9.95")

    compiled = conditions.compile_event_filter({"all": [{"property": "total_price", "op": "gte", "value": 50}]})
    by_country = conditions.compile_event_filter({"property": "country", "op": "eq", "value": "BE"})

    assert list(Event.objects.filter(compiled).values_list("pk", flat=True)) == [big.pk]
    assert list(Event.objects.filter(by_country).values_list("pk", flat=True)) == [small.pk]


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"field": "password"}, "unknown contact field 'password'"),
        ({"field": "lead_score", "op": "between"}, "unknown operator 'between'"),
        ({"all": {"tag": "x"}}, '"all" needs a list'),
        ({"event": "order_placed", "since": "yesterday"}, '"since" can only be "enrollment"'),
        ({"field": "lead_score", "op": "gt", "value": "many"}, "'many'"),
        ({"property": "total_price", "op": "gt", "value": 1}, "event properties can only be tested"),
        ({"colour": "blue"}, "unknown condition"),
        ("tag", "must be a JSON object"),
    ],
)
def test_invalid_trees_raise_with_reason(tree, message):
    with pytest.raises(conditions.ConditionError) as error:
        conditions.validate(tree)

    assert message in str(error.value)


def test_self_referencing_segment_rejected(anna):
    Segment.objects.create(name="Loop", condition={"segment": "Loop"})

    with pytest.raises(conditions.ConditionError, match="refers to itself"):
        conditions.compile({"segment": "Loop"})
