"""The step fields of each step kind, for the admin's step form and its script."""

from workflows.models import Step

WAIT_FIELDS = ("wait_days", "wait_hours", "wait_minutes")
WAIT_MODE_FIELDS = ("wait_mode", "wait_weekday", "wait_time", "wait_event", "wait_same_key", "wait_data_path")
BRANCH_FIELDS = ("if_true", "if_false")

# Fields every kind shows: the rest are shown, validated and kept only for their own kind.
COMMON_FIELDS = ("key", "kind", "name")

KIND_FIELDS: dict[str, tuple[str, ...]] = {
    # A wait for an event branches: "if yes" when it happens, "if no" at the timeout.
    Step.Kind.WAIT: (*WAIT_FIELDS, *WAIT_MODE_FIELDS, *BRANCH_FIELDS),
    Step.Kind.CONDITION: ("condition", *BRANCH_FIELDS),
    Step.Kind.SEND_EMAIL: ("template",),
    Step.Kind.SEND_SMS: ("template",),
    Step.Kind.SEND_WHATSAPP: ("template",),
    Step.Kind.UPDATE_ATTRIBUTE: ("attribute_name", "attribute_value"),
    Step.Kind.NOTIFY_STAFF: ("notify_email",),
    Step.Kind.MOVE_TO_WORKFLOW: ("target_workflow",),
    Step.Kind.ADD_TAG: ("tag",),
    Step.Kind.REMOVE_TAG: ("tag",),
    Step.Kind.CHANGE_SCORE: ("score_delta",),
    Step.Kind.EXIT: (),
}

KIND_SPECIFIC_FIELDS = tuple(sorted({name for names in KIND_FIELDS.values() for name in names}))

# The value of a kind-specific field in a step whose kind does not use it: the model default.
UNUSED_VALUES = {
    "wait_days": 0,
    "wait_hours": 0,
    "wait_minutes": 0,
    "wait_mode": "duration",
    "wait_weekday": None,
    "wait_time": None,
    "wait_event": "",
    "wait_same_key": False,
    "wait_data_path": "",
    "template": None,
    "attribute_name": "",
    "attribute_value": "",
    "notify_email": "",
    "target_workflow": None,
    "tag": "",
    "score_delta": 0,
    "condition": {},
    "if_true": "next",
    "if_false": "exit",
}


def unused_fields(kind: str) -> list[str]:
    """Return the kind-specific fields that a step of ``kind`` does not use."""
    used = set(KIND_FIELDS.get(kind, ()))
    return [name for name in KIND_SPECIFIC_FIELDS if name not in used]


def script_config() -> dict[str, list[str]]:
    """Return the field names per kind for the step form's script, which hides the others."""
    return {str(kind): list(names) for kind, names in KIND_FIELDS.items()}
