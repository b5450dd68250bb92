"""The condition language: one JSON tree that compiles to a Django ``Q``.

Trigger filters, condition steps, exit conditions, goals and segments all use it, so a batch of
contacts (or enrollments, or events) is tested in one query. A tree is one of:

- ``{"all": [tree, ...]}``, ``{"any": [tree, ...]}``, ``{"not": tree}``; ``{}`` matches everything.
- ``{"field": NAME, "op": OP, "value": V}`` on a contact column (``CONTACT_FIELDS``); ``vip_tier``
  tests the tier's name and ``vip_tier_rank`` its rank, e.g. ``{"field": "vip_tier_rank", "op": "gte",
  "value": 2}`` for Gold or better.
- ``{"attribute": NAME, "op": OP, "value": V}`` on a custom attribute.
- ``{"tag": NAME}``: the contact has the tag.
- ``{"segment": NAME}``: the contact matches that segment's condition.
- ``{"event": TYPE, "since": "enrollment", "within_days": N, "same_key": true,
  "where": [tree over properties]}``: at least one such event happened (all keys but
  ``event`` optional).
- ``{"property": NAME, "op": OP, "value": V}``: a property of the event being tested; only in
  trigger filters and inside an event test's ``where``. The money names in ``VALUE_PROPERTIES``
  (``total_price``, ``value``, ...) test the event's Decimal value column, because shops send
  amounts as strings that would compare as text.

OP is one of ``OPERATORS``; ``older_than_days`` and ``within_days`` compare a date column
with ``now``.
"""

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.db.models.expressions import BaseExpression
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from contacts.catalogue import VALUE_PROPERTIES

CONTACT_FIELDS = {
    "email": "text",
    "phone": "text",
    "external_id": "text",
    "first_name": "text",
    "last_name": "text",
    "company": "text",
    "language": "text",
    "time_zone": "text",
    "city": "text",
    "country_code": "text",
    "zip": "text",
    "email_consent": "text",
    "sms_consent": "text",
    "whatsapp_consent": "text",
    "lead_score": "number",
    "order_count": "number",
    "total_spent": "number",
    "first_order_at": "date",
    "last_order_at": "date",
    "created_at": "date",
    "email_suppressed_at": "date",
    "vip_tier": "text",
    "vip_tier_rank": "number",
    "vip_since": "date",
}

# Fields that read a column of a related row instead of a contact column of the same name. A
# contact without a VIP tier has neither a tier name nor a rank: is_set and not_set test that.
FIELD_PATHS = {
    "vip_tier": "vip_tier__name",
    "vip_tier_rank": "vip_tier__rank",
}
# Labels for the fields that are not contact columns; the others use their column's verbose name.
FIELD_LABELS = {
    "vip_tier_rank": _("VIP tier rank"),
}

OPERATORS = {
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "starts_with",
    "in",
    "is_set",
    "not_set",
    "older_than_days",
    "within_days",
}

LEAF_KEYS = ("field", "attribute", "property")
MAX_DEPTH = 20


class ConditionError(ValueError):
    """A condition tree that cannot be compiled; the message names the offending part."""


def validate(tree: Any, *, allow_properties: bool = False) -> None:
    """Raise ConditionError when the tree is not valid condition language."""
    compile_tree(tree, allow_properties=allow_properties, property_path="" if allow_properties else None, dry_run=True)


def compile(  # noqa: A001 - the module's public name; it mirrors the builtin's meaning for this language.
    tree: dict,
    *,
    since: datetime | BaseExpression | None = None,
    key: str | BaseExpression | None = None,
    now: datetime | None = None,
    contact_path: str = "",
) -> Q:
    """Compile a condition tree to a Q over Contact (or over a model that reaches it by ``contact_path``).

    ``since`` and ``key`` serve the ``"since": "enrollment"`` and ``"same_key"`` tests; pass
    ``OuterRef("enrolled_at")`` and ``OuterRef("key")`` to test a queryset of enrollments, each
    against its own values.
    """
    return compile_tree(tree, since=since, key=key, now=now, contact_path=contact_path)


def compile_event_filter(tree: dict, *, now: datetime | None = None) -> Q:
    """Compile a trigger filter to a Q over Event: property leaves test the event, others its contact."""
    return compile_tree(tree, now=now, contact_path="contact__", allow_properties=True, property_path="")


def compile_tree(
    tree: Any,
    *,
    since: datetime | BaseExpression | None = None,
    key: str | BaseExpression | None = None,
    now: datetime | None = None,
    contact_path: str = "",
    allow_properties: bool = False,
    property_path: str | None = None,
    dry_run: bool = False,
    depth: int = 0,
    segments_seen: frozenset[str] = frozenset(),
) -> Q:
    compiler = _Compiler(
        since=since,
        key=key,
        now=now or timezone.now(),
        contact_path=contact_path,
        allow_properties=allow_properties,
        property_path=property_path,
        dry_run=dry_run,
        segments_seen=segments_seen,
    )
    return compiler.node(tree, depth)


class _Compiler:
    def __init__(self, **options: Any) -> None:
        self.since = options["since"]
        self.key = options["key"]
        self.now = options["now"]
        self.contact_path = options["contact_path"]
        self.allow_properties = options["allow_properties"]
        self.property_path = options["property_path"]
        self.dry_run = options["dry_run"]
        self.segments_seen = options["segments_seen"]

    def node(self, tree: Any, depth: int) -> Q:
        if depth > MAX_DEPTH:
            raise ConditionError(f"condition is nested deeper than {MAX_DEPTH} levels")
        if not isinstance(tree, dict):
            raise ConditionError(f"condition must be a JSON object, got {tree!r}")
        if not tree:
            return Q()

        if "all" in tree or "any" in tree:
            operator = "all" if "all" in tree else "any"
            children = tree[operator]
            if not isinstance(children, list):
                raise ConditionError(f'"{operator}" needs a list of conditions, got {children!r}')
            compiled = [self.node(child, depth + 1) for child in children]
            result = Q()
            for child_q in compiled:
                result = (result & child_q) if operator == "all" else (result | child_q)
            if operator == "any" and not compiled:
                return Q(pk__in=[])
            return result
        if "not" in tree:
            return ~self.node(tree["not"], depth + 1)
        if "tag" in tree:
            return self.tag(tree)
        if "segment" in tree:
            return self.segment(tree, depth)
        if "event" in tree:
            return self.event(tree, depth)
        for leaf_key in LEAF_KEYS:
            if leaf_key in tree:
                return self.leaf(tree, leaf_key)
        raise ConditionError(
            f"unknown condition {tree!r}: expected one of all, any, not, field, attribute, tag, segment, event, property"
        )

    def leaf(self, tree: dict, leaf_key: str) -> Q:
        name = tree[leaf_key]
        op = tree.get("op", "eq")
        value = tree.get("value")
        if not isinstance(name, str) or not name:
            raise ConditionError(f'"{leaf_key}" needs a name, got {name!r}')
        if op not in OPERATORS:
            raise ConditionError(f"unknown operator {op!r} in {tree!r}: use one of {', '.join(sorted(OPERATORS))}")

        if leaf_key == "field":
            if name not in CONTACT_FIELDS:
                raise ConditionError(f"unknown contact field {name!r}: use one of {', '.join(sorted(CONTACT_FIELDS))}")
            kind = CONTACT_FIELDS[name]
            path = self.contact_path + FIELD_PATHS.get(name, name)
        elif leaf_key == "attribute":
            kind = "json"
            path = f"{self.contact_path}attributes__{name}"
        else:
            if not self.allow_properties or self.property_path is None:
                raise ConditionError(f'{tree!r}: event properties can only be tested in a trigger filter or an event\'s "where"')
            if name in VALUE_PROPERTIES:
                kind = "number"
                path = self.property_path + "value"
            else:
                kind = "json"
                path = f"{self.property_path}properties__{name}"
        return self.compare(path, kind, op, value, tree)

    def compare(self, path: str, kind: str, op: str, value: Any, tree: dict) -> Q:
        if op in ("is_set", "not_set"):
            is_set = Q(**{f"{path}__isnull": False})
            if kind == "text":
                is_set &= ~Q(**{path: ""})
            return is_set if op == "is_set" else ~is_set
        if op in ("older_than_days", "within_days"):
            if kind != "date":
                raise ConditionError(f"{op} works on date fields only, not on {tree!r}")
            days = self.number(value, tree)
            boundary = self.now - timedelta(days=float(days))
            return Q(**{f"{path}__lt": boundary}) if op == "older_than_days" else Q(**{f"{path}__gte": boundary})
        if op == "in":
            if not isinstance(value, list):
                raise ConditionError(f'"in" needs a list value in {tree!r}')
            return Q(**{f"{path}__in": value})
        if kind == "number" and op not in ("contains", "starts_with"):
            value = self.number(value, tree)
        if kind == "date" and isinstance(value, str):
            parsed = self.parse_datetime(value, tree)
            value = parsed
        lookup = {
            "eq": "",
            "ne": "",
            "gt": "__gt",
            "gte": "__gte",
            "lt": "__lt",
            "lte": "__lte",
            "contains": "__icontains",
            "starts_with": "__istartswith",
        }[op]
        if kind == "json" and op in ("gt", "gte", "lt", "lte") and isinstance(value, str):
            raise ConditionError(f"{op} compares numbers; {value!r} in {tree!r} is text")
        matched = Q(**{f"{path}{lookup}": value})
        return ~matched if op == "ne" else matched

    def number(self, value: Any, tree: dict) -> Decimal:
        try:
            return Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise ConditionError(f"{value!r} in {tree!r} is not a number") from None

    def parse_datetime(self, value: str, tree: dict) -> datetime:
        from django.utils.dateparse import parse_date, parse_datetime

        parsed = parse_datetime(value)
        if parsed is None and parse_date(value) is not None:
            parsed = datetime.combine(parse_date(value), datetime.min.time())
        if parsed is None:
            raise ConditionError(f"{value!r} in {tree!r} is not a date; use YYYY-MM-DD or ISO 8601")
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
        return parsed

    def tag(self, tree: dict) -> Q:
        from contacts.models import Contact

        name = tree["tag"]
        if not isinstance(name, str) or not name:
            raise ConditionError(f'"tag" needs a tag name, got {name!r}')
        tagged = Contact.tags.through.objects.filter(contact_id=self.contact_ref(), tag__name=name)
        return Q(Exists(tagged))

    def segment(self, tree: dict, depth: int) -> Q:
        from contacts.models import Segment

        name = tree["segment"]
        if name in self.segments_seen:
            raise ConditionError(f"segment {name!r} refers to itself")
        if self.dry_run:
            return Q()
        segment = Segment.objects.filter(name=name).first()
        if segment is None:
            raise ConditionError(f"segment {name!r} does not exist")
        return compile_tree(
            segment.condition,
            since=self.since,
            key=self.key,
            now=self.now,
            contact_path=self.contact_path,
            dry_run=self.dry_run,
            depth=depth + 1,
            segments_seen=self.segments_seen | {name},
        )

    def event(self, tree: dict, depth: int) -> Q:
        from contacts.models import Event

        event_type = tree["event"]
        if not isinstance(event_type, str) or not event_type:
            raise ConditionError(f'"event" needs an event type, got {event_type!r}')
        unknown = set(tree) - {"event", "since", "within_days", "same_key", "where"}
        if unknown:
            raise ConditionError(f"unknown keys {sorted(unknown)} in {tree!r}")

        filters = Q(type=event_type)
        if tree.get("since") == "enrollment":
            if self.since is None and not self.dry_run:
                # Outside an enrollment (a segment, a trigger filter) "since enrollment" has no
                # start; it means "ever", which is the least surprising reading.
                pass
            elif self.since is not None:
                # Strictly after: the event that started the enrollment is not "since" it, so an
                # order that enrolls in a replenishment flow does not also count as the reorder.
                filters &= Q(occurred_at__gt=self.since)
        elif tree.get("since") is not None:
            raise ConditionError(f'"since" can only be "enrollment", got {tree["since"]!r}')
        if tree.get("within_days") is not None:
            days = self.number(tree["within_days"], tree)
            filters &= Q(occurred_at__gte=self.now - timedelta(days=float(days)))
        if tree.get("same_key") and self.key is not None:
            # An event without a key (an order placed without a checkout) matches every key.
            filters &= Q(key=self.key) | Q(key="")
        where = tree.get("where")
        if where:
            where_tree = {"all": where} if isinstance(where, list) else where
            filters &= compile_tree(
                where_tree,
                now=self.now,
                contact_path="contact__",
                allow_properties=True,
                property_path="",
                dry_run=self.dry_run,
                depth=depth + 1,
            )
        if self.dry_run:
            return Q()
        return Q(Exists(Event.objects.filter(filters, contact_id=self.contact_ref())))

    def contact_ref(self) -> OuterRef:
        if not self.contact_path:
            return OuterRef("pk")
        return OuterRef(self.contact_path.removesuffix("__") + "_id")
