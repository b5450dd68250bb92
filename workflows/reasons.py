"""Show the engine's reasons in the reader's language: step logs, exit reasons and delivery errors.

The engine stores every reason as English text (``StepLog.reason``, ``Enrollment.exit_reason``
and the send-time cancellations in ``Delivery.error``), and tests and existing databases hold that
text. ``display`` recognises each format the engine writes and renders it again through gettext,
with its ISO timestamps as a short local time. Anything it does not recognise is shown as stored.
"""

import logging
import re
from collections.abc import Callable
from datetime import datetime

from django.utils import formats
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from workflows.engine.localtime import zone

logger = logging.getLogger(__name__)

# An instant as the waits write it: datetime.isoformat(), e.g. 2026-12-17T01:04:09.087803+01:00.
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:[+-]\d\d:\d\d|Z)?"
# A wall-clock time as the sending policy writes it, already local: 2026-12-05 08:00 CET.
WALL = r"\d{4}-\d\d-\d\d \d\d:\d\d [A-Za-z0-9+:-]+"
CHANNEL = r"email|sms|whatsapp"
# The sending policy names channels with these words (workflows.engine.policy.CHANNEL_NAMES).
POLICY_CHANNEL = r"email|SMS|WhatsApp"

# Channel words inside a reason. Their msgids are the stored words, so the English display reads
# as stored.
CHANNEL_WORDS = {
    "email": _("email"),
    "sms": _("sms"),
    "whatsapp": _("whatsapp"),
    "SMS": _("SMS"),
    "WhatsApp": _("WhatsApp"),
}


def pattern(text: str) -> re.Pattern:
    return re.compile(text, re.DOTALL)


# Reasons are translated when they are shown, not when they are stored. A stored reason is an
# English fact that tests, logs and older rows share. Storing a reason code with its values instead
# would change the engine, its tests and every existing row.
# Each entry maps one format the engine writes to a message with the same named placeholders, and
# the group names choose how a value is shown (see CONVERTERS). Event types and step keys are
# shown as codes, as in the workflow's settings. Reasons made of data only are left as stored:
# a score change ("+5"), a tag ("+vip", "-vip"), an attribute ("tier=gold"), a queued message's
# template name, a conversion ("order_placed 49.95"), a suppression rule's own name and a
# failure's exception.
REASONS: list[tuple[re.Pattern, Promise]] = [
    # Waits (workflows.engine.waits).
    (pattern(rf"until (?P<at>{ISO})"), _("until %(at)s")),
    (pattern(rf"for (?P<event>\S+) until (?P<at>{ISO})"), _("for %(event)s until %(at)s")),
    (pattern(r"(?P<event>\S+) happened -> (?P<target>.*)"), _("%(event)s happened -> %(target)s")),
    (pattern(r"no (?P<event>\S+) before the timeout -> (?P<target>.*)"), _("no %(event)s before the timeout -> %(target)s")),
    (
        pattern(rf"(?P<days>\S+) days from data minus (?P<minus>\d+): until (?P<at>{ISO})"),
        _("%(days)s days from data minus %(minus)s: until %(at)s"),
    ),
    (pattern(r"no days at (?P<path>.*), continued at once"), _("no days at %(path)s, continued at once")),
    (pattern(r"no date at (?P<path>.*), continued at once"), _("no date at %(path)s, continued at once")),
    # Conditions, sends and actions (workflows.engine.steps, actions and advance).
    (pattern(r"yes -> (?P<target>.*)"), _("yes -> %(target)s")),
    (pattern(r"no -> (?P<target>.*)"), _("no -> %(target)s")),
    (pattern(r"no email address"), _("no email address")),
    (pattern(r"no phone number"), _("no phone number")),
    (pattern(r"email suppressed"), _("email suppressed")),
    (pattern(rf"no (?P<channel>{CHANNEL}) consent"), _("no %(channel)s consent")),
    (pattern(r"target workflow not live"), _("target workflow not live")),
    (pattern(r"staff notified at (?P<address>.*)"), _("staff notified at %(address)s")),
    (pattern(r"round limit reached, continues next tick"), _("round limit reached, continues next tick")),
    (pattern(r"exit step"), _("exit step")),
    (pattern(r"moved to (?P<workflow>.*)"), _("moved to %(workflow)s")),
    # Exits (workflows.engine.exits and enroll, and the admin's removal action).
    (pattern(r"exit condition"), _("exit condition")),
    (pattern(r"goal reached"), _("goal reached")),
    (pattern(r"reordered"), _("reordered")),
    (pattern(rf"unsubscribed from (?P<channel>{CHANNEL})"), _("unsubscribed from %(channel)s")),
    (pattern(r"restarted: (?P<property>.*?) changed to (?P<value>.*)"), _("restarted: %(property)s changed to %(value)s")),
    (pattern(r"removed by staff"), _("removed by staff")),
    # The sending policy's first blocking rule (workflows.engine.policy).
    (pattern(r"mutual exclusion: not while active in (?P<workflow>.*)"), _("mutual exclusion: not while active in %(workflow)s")),
    (
        pattern(r"priority conflict: active in (?P<workflow>.*) \(priority (?P<priority>-?\d+), this workflow (?P<own>-?\d+)\)"),
        _("priority conflict: active in %(workflow)s (priority %(priority)s, this workflow %(own)s)"),
    ),
    (
        pattern(rf"quiet period of (?P<days>\d+) days after (?P<event>\S+) on (?P<wall>{WALL})"),
        _("quiet period of %(days)s days after %(event)s on %(wall)s"),
    ),
    (
        pattern(r"workflow cap (?P<count>\d+) per (?P<window>.+?) reached by (?P<names>.*)"),
        _("workflow cap %(count)s per %(window)s reached by %(names)s"),
    ),
    (
        pattern(rf"(?P<channel>{POLICY_CHANNEL}) frequency cap (?P<count>\d+) per (?P<window>.+?) reached by (?P<names>.*)"),
        _("%(channel)s frequency cap %(count)s per %(window)s reached by %(names)s"),
    ),
    (
        pattern(
            rf"channel spacing: no (?P<channel>{POLICY_CHANNEL}) on a day that already had "
            rf"(?P<after_channel>{POLICY_CHANNEL}) \((?P<names>.*)\)"
        ),
        _("channel spacing: no %(channel)s on a day that already had %(after_channel)s (%(names)s)"),
    ),
    (
        pattern(r"quiet hours (?P<start>\d\d:\d\d)-(?P<end>\d\d:\d\d) in (?P<zone>\S+)"),
        _("quiet hours %(start)s-%(end)s in %(zone)s"),
    ),
    # Send-time cancellations and failures (campaigns.dispatch).
    (pattern(r"email consent is no longer waiting for confirmation"), _("email consent is no longer waiting for confirmation")),
    (pattern(r"channel not supported"), _("channel not supported")),
    (pattern(r"enrollment exited"), _("enrollment exited")),
    (pattern(r"workflow draft"), _("workflow draft")),
    (pattern(r"workflow archived"), _("workflow archived")),
    (
        pattern(r"the dispatcher stopped while sending, on every attempt"),
        _("the dispatcher stopped while sending, on every attempt"),
    ),
]

# The names of further blocking rules in a policy reason's "; also ..." list.
RULES: list[tuple[re.Pattern, Promise]] = [
    (pattern(r"mutual exclusion"), _("mutual exclusion")),
    (pattern(r"priority conflict"), _("priority conflict")),
    (pattern(r"quiet hours"), _("quiet hours")),
    (pattern(r"channel spacing"), _("channel spacing")),
    (pattern(r"quiet period after (?P<event>\S+)"), _("quiet period after %(event)s")),
    (pattern(r"workflow cap (?P<count>\d+) per (?P<window>.+)"), _("workflow cap %(count)s per %(window)s")),
    (
        pattern(rf"(?P<channel>{POLICY_CHANNEL}) frequency cap (?P<count>\d+) per (?P<window>.+)"),
        _("%(channel)s frequency cap %(count)s per %(window)s"),
    ),
]

# A policy reason: the first rule's reason, the other rules, then the maximum delay or the next try.
COMPOSITE = pattern(
    r"(?P<head>.*?)(?:; also (?P<also>.*?))?"
    rf"(?:; still blocked after the maximum delay of (?P<delay>.+)|; next try (?P<next>{WALL}))?"
)
WINDOW = pattern(r"(?P<count>\d+) (?P<unit>day|days|hour|hours)")
MORE_NAMES = pattern(r"(?P<names>.+) and (?P<count>\d+) more")


def local_time(text: str, zone_name: str | None) -> str:
    """Show an ISO instant as a short date and time in the reader's format, in the contact's time zone."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone(zone_name))
    return formats.date_format(moment, "SHORT_DATETIME_FORMAT")


def wall_time(text: str, zone_name: str | None) -> str:
    """Show a policy's local wall-clock time in the reader's date format, keeping its zone abbreviation."""
    day_and_time, _space, abbreviation = text.rpartition(" ")
    moment = datetime.strptime(day_and_time, "%Y-%m-%d %H:%M")
    return f"{formats.date_format(moment, 'SHORT_DATETIME_FORMAT')} {abbreviation}"


def window_text(text: str, zone_name: str | None) -> str:
    match = WINDOW.fullmatch(text)
    if match is None:
        return text
    count, unit = int(match["count"]), match["unit"]
    if unit.startswith("day"):
        return gettext("1 day") if count == 1 else gettext("%(count)s days") % {"count": count}
    return gettext("1 hour") if count == 1 else gettext("%(count)s hours") % {"count": count}


def names_text(text: str, zone_name: str | None) -> str:
    """Translate the "and" of a message list such as "A, B and C" or "A, B, C and 2 more"."""
    match = MORE_NAMES.fullmatch(text)
    if match:
        return gettext("%(names)s and %(count)s more") % {"names": match["names"], "count": match["count"]}
    first, separator, last = text.rpartition(" and ")
    if not separator:
        return text
    return gettext("%(first)s and %(last)s") % {"first": first, "last": last}


def channel_text(text: str, zone_name: str | None) -> str:
    word = CHANNEL_WORDS.get(text)
    return str(word) if word is not None else text


# Converters of named group values. Groups not named here are shown as stored.
CONVERTERS: dict[str, Callable[[str, str | None], str]] = {
    "at": local_time,
    "wall": wall_time,
    "window": window_text,
    "names": names_text,
    "channel": channel_text,
    "after_channel": channel_text,
}


def translated(text: str, table: list[tuple[re.Pattern, Promise]], zone_name: str | None) -> str:
    for regex, message in table:
        match = regex.fullmatch(text)
        if match is None:
            continue
        values = {
            name: CONVERTERS[name](value, zone_name) if name in CONVERTERS else value for name, value in match.groupdict().items()
        }
        return str(message) % values
    return text


def rules_text(text: str, zone_name: str | None) -> str:
    return ", ".join(translated(rule, RULES, zone_name) for rule in text.split(", "))


def composite(reason: str, zone_name: str | None) -> str:
    """Translate a reason part by part: the first rule's reason, the other rules and the next try."""
    match = COMPOSITE.fullmatch(reason)
    text = translated(match["head"], REASONS, zone_name)
    if match["also"] is not None:
        text += gettext("; also %(rules)s") % {"rules": rules_text(match["also"], zone_name)}
    if match["delay"] is not None:
        text += gettext("; still blocked after the maximum delay of %(window)s") % {
            "window": window_text(match["delay"], zone_name)
        }
    if match["next"] is not None:
        text += gettext("; next try %(wall)s") % {"wall": wall_time(match["next"], zone_name)}
    return text


def display(reason: str, zone_name: str | None = None) -> str:
    """Return a stored engine reason in the active language, with times local to ``zone_name``.

    ``zone_name`` is the contact's time zone; without one, times are shown in MKTAUTO_TIME_ZONE.
    A reason in no known format is returned as it is.
    """
    if not reason:
        return reason
    try:
        return composite(reason, zone_name)
    except Exception:
        # A display must never break a page or the explain command over one odd stored reason.
        logger.exception("reason %r could not be translated, shown as stored", reason[:300])
        return reason
