"""A workflow's steps as Mermaid flowchart source, for the workflow page in the admin."""

import logging
import re

from django.utils.text import Truncator
from django.utils.translation import gettext as _

from workflows.models import Step, Workflow

logger = logging.getLogger(__name__)

START = "start"
DONE = "done"
EXIT = "exit"
SUBJECT_CHARS = 40


def escape_label(text: str) -> str:
    """Escape text for a quoted Mermaid label with Mermaid's own entity codes."""
    # "#" goes first because every replacement below contains one.
    for raw, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, code)
    return " ".join(text.split())


# A merge tag with a |default fallback, a merge tag without one, and a {% block %} tag.
FALLBACK_TAG = re.compile(r"\{\{\s*[\w.]+\s*\|\s*default:\s*(['\"])(?P<fallback>.*?)\1\s*\}\}")
VALUE_TAG = re.compile(r"\{\{\s*(?P<name>[\w.]+)[^}]*\}\}")
BLOCK_TAG = re.compile(r"\{%.*?%\}")


def duration_text(step: Step) -> str:
    parts = []
    if step.wait_days:
        parts.append(_("%(count)s d") % {"count": step.wait_days})
    if step.wait_hours:
        parts.append(_("%(count)s h") % {"count": step.wait_hours})
    if step.wait_minutes:
        parts.append(_("%(count)s min") % {"count": step.wait_minutes})
    return " ".join(parts) or "0"


def readable(source: str) -> str:
    """Show merge tags as a reader sees them: a fallback's text, or the value's name in brackets.

    E.g. "{{ first_name|default:'Hoi' }}, je mandje" becomes "Hoi, je mandje".
    """
    text = FALLBACK_TAG.sub(lambda match: match["fallback"], source)
    text = VALUE_TAG.sub(lambda match: f"[{match['name']}]", text)
    return " ".join(BLOCK_TAG.sub("", text).split())


def wait_text(step: Step) -> str:
    """Describe a wait step by its mode, e.g. "wait for order_placed, at most 3 d"."""
    mode = step.wait_mode
    if mode == Step.WaitMode.UNTIL_EVENT:
        return _("wait for %(event)s, at most %(duration)s") % {"event": step.wait_event, "duration": duration_text(step)}
    if mode == Step.WaitMode.FROM_DATA:
        return _("wait the days at %(path)s minus %(duration)s") % {
            "path": step.wait_data_path,
            "duration": duration_text(step),
        }
    if mode == Step.WaitMode.UNTIL_DATE:
        return _("wait until the date at %(path)s") % {"path": step.wait_data_path}
    if mode == Step.WaitMode.UNTIL_TIME:
        moment = step.wait_time.strftime("%H:%M") if step.wait_time else ""
        day = step.get_wait_weekday_display() if step.wait_weekday is not None else ""
        return _("wait until %(moment)s") % {"moment": f"{day} {moment}".strip()}
    return _("wait %(duration)s") % {"duration": duration_text(step)}


def detail_text(step: Step) -> str:
    """Return the second label line: what the step does, in a few words."""
    if step.kind == Step.Kind.WAIT:
        return wait_text(step)
    if step.kind == Step.Kind.SEND_EMAIL:
        subject = readable(step.template.subject) if step.template else "-"
        return _("email: %(subject)s") % {"subject": Truncator(subject).chars(SUBJECT_CHARS)}
    if step.kind in (Step.Kind.ADD_TAG, Step.Kind.REMOVE_TAG):
        return f"{step.get_kind_display()}: {step.tag}"
    if step.kind == Step.Kind.CHANGE_SCORE:
        return _("score %(delta)+d") % {"delta": step.score_delta}
    return str(step.get_kind_display())


def node(node_id: str, text: str, shape: str) -> str:
    opening, closing = {"box": ("[", "]"), "round": ("([", "])"), "diamond": ("{", "}"), "hexagon": ("{{", "}}")}[shape]
    return f'    {node_id}{opening}"{text}"{closing}'


def target_id(target: str, index: int, ids_by_key: dict[str, str], count: int) -> str:
    """Return the node a branch target points to: the next step, the exit, or a named step."""
    if target == "exit":
        return EXIT
    if target == "next":
        return f"s{index + 1}" if index + 1 < count else DONE
    return ids_by_key.get(target, EXIT)


def build(workflow: Workflow, steps: list[Step] | None = None) -> str:
    """Return Mermaid ``flowchart TD`` source for the workflow's steps in order."""
    if steps is None:
        steps = list(workflow.steps.select_related("template").order_by("position", "id"))
    ids_by_key = {step.key: f"s{index}" for index, step in enumerate(steps)}
    trigger = escape_label(_("Trigger: %(event)s") % {"event": workflow.trigger_event or "-"})

    lines = ["flowchart TD", node(START, trigger, "round")]
    for index, step in enumerate(steps):
        title = escape_label(f"{index + 1}. {step.name or step.get_kind_display()}")
        detail = escape_label(detail_text(step))
        shape = {Step.Kind.CONDITION: "diamond", Step.Kind.WAIT: "hexagon"}.get(step.kind, "box")
        lines.append(node(f"s{index}", f"{title}<br/><small>{detail}</small>", shape))
        lines.append(f"    class s{index} kind_{step.kind}")
    edges = [f"    {START} --> {'s0' if steps else DONE}"]
    for index, step in enumerate(steps):
        source = f"s{index}"
        if step.kind == Step.Kind.EXIT:
            edges.append(f"    {source} --> {EXIT}")
        elif step.kind == Step.Kind.CONDITION:
            yes = escape_label(_("yes"))
            no = escape_label(_("no"))
            edges.append(f'    {source} -- "{yes}" --> {target_id(step.if_true, index, ids_by_key, len(steps))}')
            edges.append(f'    {source} -- "{no}" --> {target_id(step.if_false, index, ids_by_key, len(steps))}')
        else:
            edges.append(f"    {source} --> {target_id('next', index, ids_by_key, len(steps))}")

    # The end nodes are drawn only when an edge reaches them, so no node floats unconnected.
    if any(edge.endswith(f" {DONE}") for edge in edges):
        lines.append(node(DONE, escape_label(_("Completed")), "round"))
    if any(edge.endswith(f" {EXIT}") for edge in edges):
        lines.append(node(EXIT, escape_label(_("Exit")), "round"))
    lines.extend(edges)

    lines.append("    classDef kind_send_email fill:#e3f2fd,stroke:#1565c0")
    lines.append("    classDef kind_wait fill:#fff8e1,stroke:#f9a825")
    lines.append("    classDef kind_condition fill:#f3e5f5,stroke:#6a1b9a")
    lines.append("    classDef kind_exit fill:#ffebee,stroke:#c62828")
    return "\n".join(lines)
