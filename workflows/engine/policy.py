"""The sending policy, decided for a whole group of enrollments at one send step before anything is queued.

Rules, in the order a blocked send reports them:

1. Mutual exclusion and priority conflict: the contact is active in a live workflow that this one
   must not overlap (the workflow's "not while active in"), or in one with a higher priority.
2. Suppression rules: conditions from the policy, e.g. contacts tagged open-ticket.
3. Quiet periods: some days after an event such as order_placed, except in workflows that event triggers.
4. The workflow's own message cap.
5. Frequency caps per channel across all workflows and broadcasts, unless the workflow ignores them.
6. Channel spacing, e.g. no SMS on a local day that already had an email, unless the workflow ignores caps.
7. Quiet hours in the contact's time zone.

Transactional messages skip all of them; consent and address are checked by the send step for
every message. Each rule kind reads the whole group with one query (chunked by CHUNK contacts),
never one query per contact, and a rule kind the policy does not use costs no query. Caps and
spacing count promotional deliveries that are queued, sending or sent, including the ones earlier
groups of the same batch inserted in this transaction and the ones allowed earlier in this group.
"""

import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from weakref import WeakKeyDictionary

from django.db.models import BooleanField, Case, Exists, Max, Min, OuterRef, Q, QuerySet, Value, When
from django.db.models.expressions import BaseExpression
from django.db.models.functions import Coalesce

from campaigns.models import Delivery, MessageTemplate
from contacts import conditions
from contacts.models import Channel, Contact, Event
from workflows.engine.batch import Batch, Run
from workflows.engine.localtime import at_local, zone
from workflows.models import Enrollment, SendingPolicy, Step, StepLog, Workflow

logger = logging.getLogger(__name__)

CHUNK = 5000
# A block whose end cannot be computed (a suppression rule, another workflow holding the contact)
# is looked at again this much later when the workflow defers.
RECHECK = timedelta(hours=1)
# Channel spacing compares local calendar days, and two days back cover any UTC offset.
SPACING_LOOKBACK = timedelta(days=2)
# Lifting one block can land in another, e.g. a cap frees up at 23:00, inside quiet hours. Ten
# steps settle any mix of the rules here, whose lifts each move the time forward.
MAX_LIFT_STEPS = 10
# A cap's reason names this many earlier messages and counts the rest.
MAX_NAMES = 3
COUNTED_STATUSES = (Delivery.Status.QUEUED, Delivery.Status.SENDING, Delivery.Status.SENT)
# The annotation SendCheck adds to the send step's contact query.
COUNTED_ANNOTATION = "policy_counted_recently"
CHANNEL_NAMES = {Channel.EMAIL: "email", Channel.SMS: "SMS", Channel.WHATSAPP: "WhatsApp"}
# Step log reasons are stored in English like every other engine reason, and the explain text frames them.
REASON_LENGTH = 300
# The list of further blocking rules after the first reason.
ALSO_LENGTH = 100
# An exit's reason is also stored in Enrollment.exit_reason, whose max_length is 200.
EXIT_REASON_LENGTH = 200


class Action(StrEnum):
    SKIP = "skip"
    DEFER = "defer"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Decision for one blocked send: skip it, defer it until ``until``, or exit the enrollment."""

    action: Action
    reason: str
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Block:
    """One rule that stops a send: ``rule`` names it, ``reason`` explains it. ``lifts_at`` is None when the end is unknown."""

    rule: str
    reason: str
    lifts_at: datetime | None
    conflict: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    """An earlier promotional message that counts towards caps and spacing."""

    at: datetime
    channel: str
    workflow_id: int | None
    label: str


@dataclass
class Rules:
    """The sending policy's rows, read once per batch."""

    quiet_hours: tuple[time, time] | None
    caps: list[tuple[str, int, int]]
    spacings: list[tuple[str, str]]
    suppressions: list[tuple[str, dict]]
    quiet_periods: dict[str, int]

    @staticmethod
    def policy_quiet_hours(policy: SendingPolicy) -> tuple[time, time] | None:
        if policy.quiet_hours_start is None or policy.quiet_hours_end is None:
            return None
        return (policy.quiet_hours_start, policy.quiet_hours_end)

    @classmethod
    def load(cls) -> "Rules":
        policy = SendingPolicy.load()
        return cls(
            quiet_hours=cls.policy_quiet_hours(policy),
            caps=list(policy.caps.values_list("channel", "max_messages", "window_hours")),
            spacings=list(policy.spacings.values_list("channel", "after_channel")),
            suppressions=list(policy.suppression_rules.filter(active=True).values_list("name", "condition")),
            quiet_periods=dict(policy.quiet_periods.values_list("event_type", "days")),
        )


def quiet_hours_end(quiet_hours: tuple[time, time], zone_name: str | None, moment: datetime) -> datetime | None:
    """Return when the quiet hours around ``moment`` end in the zone, or None when ``moment`` is outside them."""
    start, end = quiet_hours
    local = moment.astimezone(zone(zone_name))
    clock = local.time().replace(tzinfo=None)
    if start < end:
        quiet, end_day = start <= clock < end, local.date()
    else:
        # Overnight, e.g. 21:00-08:00: the evening part ends on the next local day.
        quiet = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not quiet:
        return None
    return at_local(end_day, end, zone_name)


def dispatch_hold() -> Callable[[Delivery, datetime], datetime | None]:
    """Return the quiet hours check for one dispatch batch: a promotional message due inside them waits for their end.

    The tick checks quiet hours when it queues a message, but a message retried after a failure,
    or queued just before the quiet hours began, reaches dispatch later.
    """
    quiet_hours = Rules.policy_quiet_hours(SendingPolicy.load())

    def hold(delivery: Delivery, now: datetime) -> datetime | None:
        if quiet_hours is None or delivery.transactional or delivery.template.purpose != MessageTemplate.Purpose.MESSAGE:
            return None
        return quiet_hours_end(quiet_hours, delivery.contact.time_zone or None, now)

    return hold


def channel_name(channel: str) -> str:
    return CHANNEL_NAMES.get(channel, channel)


def window_text(hours: int) -> str:
    if hours % 24 == 0:
        days = hours // 24
        return "1 day" if days == 1 else f"{days} days"
    return "1 hour" if hours == 1 else f"{hours} hours"


def names_text(messages: list[Message]) -> str:
    """Join message labels as "A, B and C", naming at most MAX_NAMES and counting the rest."""
    labels = [message.label for message in messages]
    if len(labels) > MAX_NAMES:
        return f"{', '.join(labels[:MAX_NAMES])} and {len(labels) - MAX_NAMES} more"
    if len(labels) == 1:
        return labels[0]
    return f"{', '.join(labels[:-1])} and {labels[-1]}"


def local_text(moment: datetime, zone_name: str | None) -> str:
    return f"{moment.astimezone(zone(zone_name)):%Y-%m-%d %H:%M %Z}"


def message_label(workflow_name: str | None, step_name: str | None, step_key: str | None, template_name: str) -> str:
    """Name an earlier message the way a marketer finds it: workflow and step, or the template of a broadcast."""
    if workflow_name and (step_name or step_key):
        return f"{workflow_name} {step_name or step_key}"
    return template_name


def chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_rivals(workflow: Workflow) -> dict[int, tuple[str, int, bool]]:
    """Return the live workflows that hold back this one's sends: (name, priority, excluded) by id."""
    excluded = Workflow.exclusions.through.objects.filter(from_workflow_id=workflow.pk, to_workflow_id=OuterRef("pk"))
    return {
        pk: (name, priority, is_excluded)
        for pk, name, priority, is_excluded in Workflow.objects.filter(status=Workflow.Status.LIVE)
        .exclude(pk=workflow.pk)
        .annotate(is_excluded=Exists(excluded))
        .filter(Q(priority__gt=workflow.priority) | Q(is_excluded=True))
        .values_list("pk", "name", "priority", "is_excluded")
    }


def conflicts(
    workflow: Workflow, rivals: dict[int, tuple[str, int, bool]], contact_ids: list[int], batch_runs: list[Run]
) -> dict[int, Block]:
    """Return a conflict block for each contact active in one of the ``rivals``."""
    if not rivals:
        return {}
    # The batch writes enrollment states at its end, so one that left a rival workflow earlier in
    # this batch still reads as active.
    finished = {run.id for run in batch_runs if run.state != Enrollment.State.ACTIVE}

    # An explicit exclusion is named before a priority conflict, and a higher priority before a lower one.
    ranked = sorted(rivals, key=lambda pk: (not rivals[pk][2], -rivals[pk][1], rivals[pk][0]))
    rank = {pk: index for index, pk in enumerate(ranked)}
    strongest: dict[int, int] = {}
    for chunk in chunks(contact_ids):
        active = Enrollment.objects.filter(
            contact_id__in=chunk, state=Enrollment.State.ACTIVE, workflow_id__in=list(rivals)
        ).values_list("contact_id", "workflow_id", "pk")
        for contact_id, rival_id, enrollment_id in active:
            if enrollment_id in finished:
                continue
            if contact_id not in strongest or rank[rival_id] < rank[strongest[contact_id]]:
                strongest[contact_id] = rival_id

    blocks = {}
    for contact_id, rival_id in strongest.items():
        name, priority, is_excluded = rivals[rival_id]
        if is_excluded:
            rule, reason = "mutual exclusion", f"mutual exclusion: not while active in {name}"
        else:
            rule = "priority conflict"
            reason = f"priority conflict: active in {name} (priority {priority}, this workflow {workflow.priority})"
        blocks[contact_id] = Block(rule=rule, reason=reason, lifts_at=None, conflict=True)
    return blocks


def suppressed(rules: Rules, contact_ids: list[int], now: datetime) -> dict[int, Block]:
    """Return a block for each contact that an active suppression rule matches, naming the first such rule."""
    compiled: list[tuple[str, Q]] = []
    for name, condition in rules.suppressions:
        if not condition:
            # An empty condition would match everyone. SuppressionRule.clean rejects it, so such a row
            # was written outside the admin.
            logger.warning("suppression rule %r has an empty condition and is ignored", name)
            continue
        try:
            compiled.append((name, conditions.compile(condition, now=now)))
        except conditions.ConditionError as error:
            raise conditions.ConditionError(f"suppression rule {name!r}: {error}. Fix it in the sending policy.") from error
    if not compiled:
        return {}

    any_rule = Q(pk__in=[])
    flags = {}
    for index, (_name, q) in enumerate(compiled):
        any_rule |= q
        flags[f"rule_{index}"] = Case(When(q, then=Value(True)), default=Value(False), output_field=BooleanField())

    blocks = {}
    for chunk in chunks(contact_ids):
        rows = Contact.objects.filter(pk__in=chunk).filter(any_rule).annotate(**flags).values_list("pk", *flags)
        for contact_id, *matched in rows:
            name = next(compiled[index][0] for index, hit in enumerate(matched) if hit)
            rule = f'suppression rule "{name}"'
            blocks[contact_id] = Block(rule=rule, reason=rule, lifts_at=None)
    return blocks


def recent_events(periods: dict[str, int], contact_ids: list[int], now: datetime) -> dict[int, list[tuple[str, int, datetime]]]:
    """Return, per contact, (event type, quiet days, latest occurrence) of the events whose quiet period may still run."""
    if not periods:
        return {}
    earliest = now - timedelta(days=max(periods.values()))
    found: dict[int, list[tuple[str, int, datetime]]] = defaultdict(list)
    for chunk in chunks(contact_ids):
        rows = (
            Event.objects.filter(contact_id__in=chunk, type__in=list(periods), occurred_at__gt=earliest, occurred_at__lte=now)
            .order_by()
            .values("contact_id", "type")
            .annotate(latest=Max("occurred_at"))
            .values_list("contact_id", "type", "latest")
        )
        for contact_id, event_type, latest in rows:
            found[contact_id].append((event_type, periods[event_type], latest))
    return dict(found)


def counted_deliveries(scope: Q) -> QuerySet[Delivery]:
    """Return the promotional deliveries that count towards caps and spacing, within ``scope``."""
    return Delivery.objects.filter(transactional=False, status__in=COUNTED_STATUSES).filter(scope)


def recent_messages(contact_ids: list[int], scope: Q, since: datetime) -> dict[int, list[Message]]:
    """Return each contact's counted messages in ``scope`` since ``since``, oldest first."""
    found: dict[int, list[Message]] = defaultdict(list)
    for chunk in chunks(contact_ids):
        rows = (
            counted_deliveries(scope)
            .filter(contact_id__in=chunk)
            # A message queued long ago and sent late counts from when it went out.
            .annotate(counted_at=Coalesce("sent_at", "created_at"))
            .filter(counted_at__gt=since)
            .order_by("counted_at", "id")
            .values_list(
                "contact_id",
                "channel",
                "counted_at",
                "enrollment__workflow_id",
                "enrollment__workflow__name",
                "step__name",
                "step__key",
                "template__name",
            )
        )
        for contact_id, channel, counted_at, message_workflow_id, workflow_name, step_name, step_key, template_name in rows:
            label = message_label(workflow_name, step_name, step_key, template_name)
            found[contact_id].append(Message(counted_at, channel, message_workflow_id, label))
    return dict(found)


def cap_block(rule: str, limit: int, hours: int, messages: list[Message], moment: datetime) -> Block | None:
    """Block when ``limit`` messages fall in the window ending at ``moment``, until the oldest surplus leaves it."""
    window = timedelta(hours=hours)
    in_window = [message for message in messages if moment - window < message.at <= moment]
    if len(in_window) < limit:
        return None
    name = f"{rule} {limit} per {window_text(hours)}"
    reason = f"{name} reached by {names_text(in_window)}"
    return Block(rule=name, reason=reason, lifts_at=in_window[len(in_window) - limit].at + window)


def first_deferrals(step: Step, runs: list[Run]) -> dict[tuple[int, int], datetime]:
    """Return when each run's current visit of ``step`` was first deferred, for the maximum delay."""
    found: dict[tuple[int, int], datetime] = {}
    for chunk in chunks([run.id for run in runs]):
        rows = (
            StepLog.objects.filter(enrollment_id__in=chunk, step_id=step.pk, outcome=StepLog.Outcome.DEFERRED)
            .order_by()
            .values("enrollment_id", "visit")
            .annotate(first=Min("at"))
            .values_list("enrollment_id", "visit", "first")
        )
        found.update({(enrollment_id, visit): first for enrollment_id, visit, first in rows})
    return found


@dataclass
class BatchRules:
    """Policy rows and each workflow's rivals, read once per batch, so staff edits apply from the next batch."""

    rules: Rules
    rivals: dict[int, dict[int, tuple[str, int, bool]]] = field(default_factory=dict)


# Keyed by the batch object, so an entry lives exactly as long as its batch.
BATCH_RULES: WeakKeyDictionary[Batch, BatchRules] = WeakKeyDictionary()


def batch_rules(batch: Batch) -> BatchRules:
    if batch not in BATCH_RULES:
        BATCH_RULES[batch] = BatchRules(rules=Rules.load())
    return BATCH_RULES[batch]


def behaviour(workflow: Workflow, block: Block) -> Action:
    return Action(workflow.on_conflict if block.conflict else workflow.blocked_send)


class SendCheck:
    """The sending policy for one group of runs at one send step.

    The send step first adds ``contact_annotations()`` to the contact query it makes anyway. They
    mark the contacts with any counted message in the longest window a rule looks at, so only
    those contacts' earlier messages are read in detail. Then ``verdicts()`` decides the group.
    """

    def __init__(self, batch: Batch, step: Step) -> None:
        self.batch = batch
        self.step = step
        self.now = batch.now
        self.workflow = batch.plans[step.workflow_id].workflow
        self.channel = step.template.channel
        self.exempt = step.template.transactional
        self.label = f"{self.workflow.name} {step.name or step.key}"
        self.zones: dict[int, str] = {}
        self.repeated: set[int] = set()
        self.fixed: dict[int, Block] = {}
        self.events: dict[int, list[tuple[str, int, datetime]]] = {}
        self.history: dict[int, list[Message]] = {}
        self.quiet_by_zone: dict[str | None, Block | None] = {}
        self.caps: list[tuple[int, int]] = []
        self.spacing_after: list[str] = []
        self.scope: Q | None = None
        self.since: datetime | None = None
        if self.exempt:
            return

        cached = batch_rules(batch)
        self.rules = cached.rules
        if self.workflow.pk not in cached.rivals:
            cached.rivals[self.workflow.pk] = load_rivals(self.workflow)
        self.rivals = cached.rivals[self.workflow.pk]
        # A workflow that ignores frequency caps skips the installation-wide caps and channel spacing.
        # Its own cap and the other rules still apply. Its messages still count for other workflows.
        if not self.workflow.ignore_frequency_caps:
            self.caps = [(limit, hours) for channel, limit, hours in self.rules.caps if channel == self.channel]
            self.spacing_after = [after for channel, after in self.rules.spacings if channel == self.channel]

        lookbacks = [timedelta(hours=hours) for _limit, hours in self.caps]
        channels = set(self.spacing_after)
        if self.caps:
            channels.add(self.channel)
        scope = Q(pk__in=[])
        if channels:
            scope |= Q(channel__in=sorted(channels))
        if self.spacing_after:
            lookbacks.append(SPACING_LOOKBACK)
        if self.workflow.cap_messages:
            lookbacks.append(timedelta(hours=self.workflow.cap_window_hours))
            scope |= Q(enrollment__workflow_id=self.workflow.pk)
        if lookbacks:
            self.scope = scope
            self.since = self.now - max(lookbacks)

    def contact_annotations(self) -> dict[str, BaseExpression]:
        """Return annotations for a Contact query: COUNTED_ANNOTATION is whether the contact has counted messages."""
        if self.scope is None:
            return {COUNTED_ANNOTATION: Value(False, output_field=BooleanField())}
        # Wider than the exact test in recent_messages (sent or created in the window), never narrower.
        recent = (
            counted_deliveries(self.scope)
            .filter(contact_id=OuterRef("pk"))
            .filter(Q(created_at__gt=self.since) | Q(sent_at__gt=self.since))
        )
        return {COUNTED_ANNOTATION: Exists(recent)}

    def verdicts(self, runs: list[Run], zones: dict[int, str], counted: set[int]) -> dict[int, Verdict]:
        """Return a verdict for each run the policy blocks; runs without one may send now.

        ``runs`` must already have consent and an address, and each run without a verdict is
        assumed to send: it counts towards the caps and spacing of the same contact's later runs in
        ``runs``. ``zones`` maps contact ids to time zone names, and ``counted`` contains the
        contacts whose COUNTED_ANNOTATION was true.
        """
        if not runs or self.exempt:
            return {}

        per_contact = Counter(run.contact_id for run in runs)
        contact_ids = sorted(per_contact)
        self.zones = zones
        self.repeated = {contact_id for contact_id, count in per_contact.items() if count > 1}
        self.load(contact_ids, sorted(counted.intersection(per_contact)))

        blocked: list[tuple[Run, list[Block]]] = []
        for run in runs:
            blocks = self.blocks_now(run.contact_id)
            if blocks:
                blocked.append((run, blocks))
            else:
                self.record_send(run.contact_id)
        if not blocked:
            return {}

        verdicts = self.decide(blocked)
        counts: Counter[str] = Counter(verdict.action for verdict in verdicts.values())
        logger.info(
            "step %s: sending policy blocked %s of %s sends (%s deferred, %s skipped, %s exited)",
            self.step.pk,
            len(verdicts),
            len(runs),
            counts[Action.DEFER],
            counts[Action.SKIP],
            counts[Action.EXIT],
        )
        return verdicts

    def load(self, contact_ids: list[int], counted: list[int]) -> None:
        """Run one query per rule kind for the whole group."""
        workflow, now = self.workflow, self.now
        self.fixed = conflicts(workflow, self.rivals, contact_ids, self.batch.runs)
        for contact_id, block in suppressed(self.rules, contact_ids, now).items():
            self.fixed.setdefault(contact_id, block)

        # The workflow an event triggers is the one reacting to it, e.g. post-purchase after order_placed.
        own_event = workflow.trigger_event if workflow.trigger_type == Workflow.TriggerType.EVENT else None
        periods = {event_type: days for event_type, days in self.rules.quiet_periods.items() if event_type != own_event}
        self.events = recent_events(periods, contact_ids, now)

        if self.scope is not None and counted:
            self.history = recent_messages(counted, self.scope, self.since)

    def record_send(self, contact_id: int) -> None:
        """Count a send this group allows, for the same contact's later runs in the group."""
        # Only a contact with another run in this group can be affected, which is rare: a keyed
        # workflow with two open carts. Skipping the rest keeps the common case cheap.
        if contact_id in self.repeated:
            self.history.setdefault(contact_id, []).append(Message(self.now, self.channel, self.workflow.pk, self.label))

    def blocks_now(self, contact_id: int) -> list[Block]:
        fixed = self.fixed.get(contact_id)
        if contact_id in self.history or contact_id in self.events:
            timed = self.time_blocks(contact_id, self.now)
        else:
            # Most contacts have nothing counted yet: only quiet hours apply, the same for every contact of a zone.
            zone_name = self.zones.get(contact_id) or None
            if zone_name not in self.quiet_by_zone:
                self.quiet_by_zone[zone_name] = self.quiet_hours_block(zone_name, self.now)
            quiet = self.quiet_by_zone[zone_name]
            timed = [quiet] if quiet else []
        return [fixed, *timed] if fixed else timed

    def time_blocks(self, contact_id: int, moment: datetime) -> list[Block]:
        """Return the blocks at ``moment`` whose end is known, in reporting order."""
        zone_name = self.zones.get(contact_id) or None
        messages = self.history.get(contact_id, [])
        blocks = []

        for event_type, days, latest in self.events.get(contact_id, []):
            ends = latest + timedelta(days=days)
            if moment < ends:
                reason = f"quiet period of {days} days after {event_type} on {local_text(latest, zone_name)}"
                blocks.append(Block(rule=f"quiet period after {event_type}", reason=reason, lifts_at=ends))

        if self.workflow.cap_messages:
            own = [message for message in messages if message.workflow_id == self.workflow.pk]
            block = cap_block("workflow cap", self.workflow.cap_messages, self.workflow.cap_window_hours, own, moment)
            if block:
                blocks.append(block)

        same_channel = [message for message in messages if message.channel == self.channel]
        for limit, hours in self.caps:
            block = cap_block(f"{channel_name(self.channel)} frequency cap", limit, hours, same_channel, moment)
            if block:
                blocks.append(block)

        if self.spacing_after:
            day = moment.astimezone(zone(zone_name)).date()
            for after in self.spacing_after:
                earlier = [
                    message
                    for message in messages
                    if message.channel == after and message.at.astimezone(zone(zone_name)).date() == day
                ]
                if earlier:
                    reason = (
                        f"channel spacing: no {channel_name(self.channel)} on a day that already had "
                        f"{channel_name(after)} ({names_text(earlier)})"
                    )
                    next_day = at_local(day + timedelta(days=1), time(0, 0), zone_name)
                    blocks.append(Block(rule="channel spacing", reason=reason, lifts_at=next_day))

        quiet = self.quiet_hours_block(zone_name, moment)
        if quiet:
            blocks.append(quiet)
        return blocks

    def quiet_hours_block(self, zone_name: str | None, moment: datetime) -> Block | None:
        if self.rules.quiet_hours is None:
            return None
        ends = quiet_hours_end(self.rules.quiet_hours, zone_name, moment)
        if ends is None:
            return None
        start, end = self.rules.quiet_hours
        reason = f"quiet hours {start:%H:%M}-{end:%H:%M} in {zone(zone_name).key}"
        return Block(rule="quiet hours", reason=reason, lifts_at=ends)

    def lift_time(self, contact_id: int, blocks: list[Block]) -> datetime:
        """Return the earliest moment none of the known-end rules blocks, starting after ``blocks`` lift."""
        if any(block.lifts_at is None for block in blocks):
            moment = self.now + RECHECK
        else:
            moment = max(block.lifts_at for block in blocks)
        for _step in range(MAX_LIFT_STEPS):
            later = self.time_blocks(contact_id, moment)
            if not later:
                break
            moment = max(block.lifts_at for block in later)
        return moment

    def decide(self, blocked: list[tuple[Run, list[Block]]]) -> dict[int, Verdict]:
        """Turn each run's blocks into a verdict; the first block's rule decides between skip, defer and exit."""
        workflow, now = self.workflow, self.now
        deferring = [run for run, blocks in blocked if behaviour(workflow, blocks[0]) == Action.DEFER]
        started = first_deferrals(self.step, deferring) if deferring else {}
        max_delay = timedelta(hours=workflow.max_delay_hours)

        verdicts = {}
        for run, blocks in blocked:
            reason = blocks[0].reason
            also = also_text(blocks)
            action = behaviour(workflow, blocks[0])
            if action == Action.EXIT:
                verdicts[run.id] = Verdict(Action.EXIT, truncated(reason, also, EXIT_REASON_LENGTH))
                continue
            if action == Action.SKIP:
                verdicts[run.id] = Verdict(Action.SKIP, truncated(reason, also))
                continue

            deadline = started.get((run.id, run.visit), now) + max_delay
            if now >= deadline:
                suffix = f"{also}; still blocked after the maximum delay of {window_text(workflow.max_delay_hours)}"
                verdicts[run.id] = Verdict(Action.SKIP, truncated(reason, suffix))
                continue
            # At least a minute on, so a deferred run never stays due within the same tick.
            until = max(min(self.lift_time(run.contact_id, blocks), deadline), now + timedelta(minutes=1))
            suffix = f"{also}; next try {local_text(until, self.zones.get(run.contact_id) or None)}"
            verdicts[run.id] = Verdict(Action.DEFER, truncated(reason, suffix), until)
        return verdicts


def also_text(blocks: list[Block]) -> str:
    """Name the rules that block besides the first, whose reason is given in full, e.g. "; also quiet hours"."""
    others = list(dict.fromkeys(block.rule for block in blocks[1:]))
    if not others:
        return ""
    text = f"; also {', '.join(others)}"
    # Long suppression rule names must not crowd out the first reason or the next try.
    return text if len(text) <= ALSO_LENGTH else text[: ALSO_LENGTH - 1] + "…"


def truncated(reason: str, suffix: str, length: int = REASON_LENGTH) -> str:
    """Fit reason and suffix in ``length`` characters, shortening the reason so the suffix always shows."""
    room = length - len(suffix)
    if len(reason) > room:
        reason = reason[: room - 1] + "…"
    return reason + suffix
