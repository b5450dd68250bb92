"""The admin's form editor for condition trees, built on django-jsonform.

django-jsonform picks the option of a ``oneOf`` whose keys match the data exactly, so the editor
works on a padded copy of the tree: every leaf carries all of its optional keys, and each
``value`` is text. ``to_editor`` pads a stored tree and ``from_editor`` strips it again. The
round trip keeps every tree ``contacts.conditions`` accepts, except that an event's ``where``
object becomes the equivalent list and an empty tree is edited as an empty "all of" group.

A value is read back as JSON when it parses as JSON (``50``, ``true``, ``["nl", "en"]``,
``"50"`` for the text 50) and as plain text otherwise, so staff type ``Amsterdam`` without
quotes.
"""

import json
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django_jsonform.forms.fields import JSONFormField

from contacts import conditions
from contacts.catalogue import ALL_EVENT_TYPES
from contacts.models import Contact, Segment
from mktauto.json_editor import RenderTimeSchemaWidget

logger = logging.getLogger(__name__)

VALUE_LEAVES = ("field", "attribute", "property")
EVENT_OPTIONAL_KEYS = ("since", "within_days", "same_key", "where")


class EditorData(dict):
    """Submitted editor data, already padded, that goes back into the editor unchanged."""


def to_editor_value(value: Any) -> str:
    """Return the text that stands for a stored leaf value in the editor."""
    if value is None:
        return ""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if needs_quotes(value) else value
    if isinstance(value, list) and value and all(isinstance(item, str) and plain_list_item(item) for item in value):
        return ", ".join(value)
    return json.dumps(value, ensure_ascii=False)


def needs_quotes(text: str) -> bool:
    # Text that would read back as JSON, or lose its surrounding spaces, is shown as a JSON string.
    if text != text.strip():
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def plain_list_item(text: str) -> bool:
    return bool(text) and "," not in text and not needs_quotes(text)


def from_editor_value(text: Any, op: str) -> Any:
    """Return the stored value for the editor's text; None means the leaf has no value."""
    if not isinstance(text, str):
        return text
    text = text.strip()
    if text == "":
        return None if op in ("is_set", "not_set") else ""

    try:
        value = json.loads(text)
    except ValueError:
        value = [part.strip() for part in text.split(",") if part.strip()] if op == "in" else text
    if op == "in" and not isinstance(value, list):
        value = [value]
    return value


def to_editor(tree: Any) -> Any:
    """Pad a stored condition tree into the shape the editor's schema matches."""
    if not isinstance(tree, dict):
        return tree
    if not tree:
        return {"all": []}

    for group in ("all", "any"):
        if group in tree and isinstance(tree[group], list):
            return {group: [to_editor(child) for child in tree[group]]}
    if "not" in tree:
        return {"not": to_editor(tree["not"])}
    for leaf in VALUE_LEAVES:
        if leaf in tree:
            return {leaf: tree[leaf], "op": tree.get("op", "eq"), "value": to_editor_value(tree.get("value"))}
    if "tag" in tree:
        return {"tag": tree["tag"]}
    if "segment" in tree:
        return {"segment": tree["segment"]}
    if "event" in tree:
        where = tree.get("where") or []
        if isinstance(where, dict):
            where = where["all"] if isinstance(where.get("all"), list) and len(where) == 1 else [where]
        return {
            "event": tree["event"],
            "since": tree.get("since") or "",
            "within_days": tree.get("within_days"),
            "same_key": bool(tree.get("same_key")),
            "where": [to_editor(child) for child in where],
        }
    return tree


def from_editor(data: Any, *, top: bool = True) -> Any:
    """Strip the editor's padding and return the stored condition tree."""
    if not isinstance(data, dict):
        return data

    for group in ("all", "any"):
        if group in data and isinstance(data[group], list):
            children = [from_editor(child, top=False) for child in data[group]]
            if top and group == "all" and not children:
                return {}
            return {group: children}
    if "not" in data:
        return {"not": from_editor(data["not"], top=False)}
    for leaf in VALUE_LEAVES:
        if leaf in data:
            op = data.get("op") or "eq"
            node = {leaf: (data[leaf] or "").strip() if isinstance(data[leaf], str) else data[leaf], "op": op}
            value = from_editor_value(data.get("value", ""), op)
            if value is not None:
                node["value"] = value
            return node
    if "tag" in data:
        return {"tag": data["tag"].strip() if isinstance(data["tag"], str) else data["tag"]}
    if "segment" in data:
        return {"segment": data["segment"]}
    if "event" in data:
        node: dict[str, Any] = {"event": data["event"]}
        if data.get("since"):
            node["since"] = data["since"]
        if data.get("within_days") not in (None, ""):
            node["within_days"] = data["within_days"]
        if data.get("same_key"):
            node["same_key"] = True
        if data.get("where"):
            node["where"] = [from_editor(child, top=False) for child in data["where"]]
        return node
    return data


def names_in_use(data: Any, key: str) -> set[str]:
    """Collect the values of ``key`` anywhere in a tree, so the editor's choices keep them."""
    found: set[str] = set()
    if isinstance(data, dict):
        if isinstance(data.get(key), str) and data[key]:
            found.add(data[key])
        for child in data.values():
            found |= names_in_use(child, key)
    elif isinstance(data, list):
        for child in data:
            found |= names_in_use(child, key)
    return found


def operator_choices() -> list[dict[str, str]]:
    titles = {
        "eq": _("is"),
        "ne": _("is not"),
        "gt": _("is greater than"),
        "gte": _("is at least"),
        "lt": _("is less than"),
        "lte": _("is at most"),
        "contains": _("contains"),
        "starts_with": _("starts with"),
        "in": _("is one of (separate with commas)"),
        "is_set": _("is set"),
        "not_set": _("is empty"),
        "older_than_days": _("is more than N days ago"),
        "within_days": _("is within the last N days"),
    }
    return [{"title": titles[op], "value": op} for op in titles if op in conditions.OPERATORS]


def value_leaf(key: str, title: str, name_schema: dict) -> dict:
    return {
        "type": "object",
        "title": title,
        "properties": {
            key: name_schema,
            "op": {"type": "string", "title": _("Test"), "choices": operator_choices(), "default": "eq"},
            "value": {
                "type": "string",
                "title": _("Value"),
                "help_text": _('Text, a number, true or false. Put text that looks like a number in quotes: "2024".'),
            },
        },
    }


def build_schema(*, allow_properties: bool, event_types: set[str] = frozenset(), segments: set[str] = frozenset()) -> dict:
    """Return the django-jsonform schema for a condition tree, in the active language.

    ``event_types`` and ``segments`` name values already in the tree that must stay selectable
    even when the catalogue or the segment list does not have them.
    """
    field_choices = []
    for name in conditions.CONTACT_FIELDS:
        label = conditions.FIELD_LABELS.get(name) or Contact._meta.get_field(name).verbose_name
        field_choices.append({"title": f"{capfirst(label)} ({name})", "value": name})
    event_choices = [{"title": f"{label} ({name})", "value": name} for name, label in sorted(ALL_EVENT_TYPES.items())]
    event_choices += [{"title": name, "value": name} for name in sorted(set(event_types) - set(ALL_EVENT_TYPES))]
    segment_names = sorted(set(Segment.objects.values_list("name", flat=True)) | set(segments))

    def group(key: str, title: str, ref: str) -> dict:
        return {
            "type": "object",
            "title": title,
            "properties": {key: {"type": "array", "title": _("Conditions"), "items": {"$ref": ref}, "minItems": 0}},
        }

    def options(ref: str) -> list[dict]:
        segment_schema: dict[str, Any] = {"type": "string", "title": _("Segment")}
        if segment_names:
            segment_schema["choices"] = segment_names
        return [
            group("all", _("All of these are true"), ref),
            group("any", _("Any of these is true"), ref),
            {"type": "object", "title": _("This is not true"), "properties": {"not": {"$ref": ref}}},
            value_leaf("field", _("Contact field"), {"type": "string", "title": _("Field"), "choices": field_choices}),
            value_leaf("attribute", _("Custom attribute"), {"type": "string", "title": _("Attribute name")}),
            {"type": "object", "title": _("Has tag"), "properties": {"tag": {"type": "string", "title": _("Tag")}}},
            {"type": "object", "title": _("In segment"), "properties": {"segment": segment_schema}},
            {
                "type": "object",
                "title": _("Event happened"),
                "properties": {
                    "event": {"type": "string", "title": _("Event"), "choices": event_choices},
                    "since": {
                        "type": "string",
                        "title": _("Since"),
                        "choices": [
                            {"title": _("any time"), "value": ""},
                            {"title": _("since enrollment"), "value": "enrollment"},
                        ],
                    },
                    "within_days": {
                        "type": "integer",
                        "title": _("Within the last N days"),
                        "minimum": 0,
                        "help_text": _("Leave empty for no limit."),
                    },
                    "same_key": {"type": "boolean", "title": _("Only for the same checkout or order")},
                    "where": {
                        "type": "array",
                        "title": _("Where (all must be true)"),
                        "items": {"$ref": "#/$defs/event_tree"},
                        "minItems": 0,
                    },
                },
            },
        ]

    property_leaf = value_leaf(
        "property",
        _("Event property"),
        {"type": "string", "title": _("Property"), "help_text": _("E.g. total_price; value is the money value.")},
    )
    definitions = {
        "tree": {"oneOf": options("#/$defs/tree")},
        "event_tree": {"oneOf": [*options("#/$defs/event_tree"), property_leaf]},
    }
    root = "event_tree" if allow_properties else "tree"
    return {**definitions[root], "$defs": definitions}


class ConditionWidget(RenderTimeSchemaWidget):
    def __init__(self, *, allow_properties: bool = False, attrs: dict | None = None) -> None:
        super().__init__(attrs=attrs)
        self.allow_properties = allow_properties

    def build_schema(self) -> dict:
        return build_schema(
            allow_properties=self.allow_properties,
            event_types=names_in_use(self.rendered_data, "event"),
            segments=names_in_use(self.rendered_data, "segment"),
        )


class ConditionFormField(JSONFormField):
    """A condition tree edited as a form and checked with ``contacts.conditions.validate``."""

    def __init__(self, *, allow_properties: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("widget", ConditionWidget(allow_properties=allow_properties))
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.allow_properties = allow_properties

    def to_python(self, value: Any) -> Any:
        data = super().to_python(value)
        if data is None:
            return {}
        return from_editor(data)

    def validate(self, value: Any) -> None:
        # The condition language's own check replaces the JSON schema check, because its messages
        # name the offending part of the tree and the schema check only reports missing fields.
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")
        try:
            conditions.validate(value, allow_properties=self.allow_properties)
        except conditions.ConditionError as error:
            raise ValidationError(_("Invalid condition: %(error)s") % {"error": error}, code="invalid_condition") from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        bound = super().bound_data(data, initial)
        if isinstance(bound, dict):
            return EditorData(bound)
        return bound

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        if isinstance(value, EditorData):
            return json.dumps(value, ensure_ascii=False)
        return json.dumps(to_editor(value or {}), ensure_ascii=False)

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            submitted = self.to_python(data)
        except ValidationError:
            return True
        return json.dumps(initial or {}, sort_keys=True) != json.dumps(submitted or {}, sort_keys=True)
