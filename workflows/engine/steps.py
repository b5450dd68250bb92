"""Set-based step execution: each function runs one step for a whole group of enrollments at once."""

from collections import defaultdict
from datetime import datetime

from django.db.models import F, OuterRef

from campaigns.models import Delivery
from contacts import conditions
from contacts.consent import STATUS_FIELDS
from contacts.models import Channel, ConsentStatus, Contact
from contacts.tagging import tag_contacts, untag_contacts
from workflows.engine import policy
from workflows.engine.actions import run_move_to_workflow, run_notify_staff, run_update_attribute
from workflows.engine.batch import Batch, Run, insert_rows
from workflows.engine.waits import run_wait
from workflows.models import Enrollment, Step, StepLog

CHUNK = 5000


def chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_condition(batch: Batch, step: Step, runs: list[Run]) -> None:
    compiled = conditions.compile(
        step.condition, since=OuterRef("enrolled_at"), key=OuterRef("key"), now=batch.now, contact_path="contact__"
    )
    matched: set[int] = set()
    for chunk in chunks([run.id for run in runs]):
        matched.update(Enrollment.objects.filter(pk__in=chunk).filter(compiled).values_list("pk", flat=True))

    for run in runs:
        answer = run.id in matched
        target = step.if_true if answer else step.if_false
        batch.log(run, step, StepLog.Outcome.BRANCHED, f"{'yes' if answer else 'no'} -> {target}")
        batch.go_to(run, step, target)


def run_send(batch: Batch, step: Step, runs: list[Run]) -> None:
    """Queue the step's message on its template's channel for each run that has consent and passes the sending policy."""
    template = step.template
    channel = template.channel
    address_field = "email" if channel == Channel.EMAIL else "phone"
    check = policy.SendCheck(batch, step)
    annotations = check.contact_annotations()
    columns = ("pk", address_field, STATUS_FIELDS[Channel(channel)], "email_suppressed_at", "time_zone", *annotations)
    contacts = {}
    for chunk in chunks(sorted({run.contact_id for run in runs})):
        contacts.update(
            {row[0]: row[1:] for row in Contact.objects.filter(pk__in=chunk).annotate(**annotations).values_list(*columns)}
        )

    allowed: list[Run] = []
    for run in runs:
        address, consent, suppressed_at, _zone_name, _counted = contacts.get(run.contact_id, (None, None, None, None, False))
        reason = ""
        if not address:
            reason = "no email address" if channel == Channel.EMAIL else "no phone number"
        elif channel == Channel.EMAIL and suppressed_at is not None:
            reason = "email suppressed"
        elif not template.transactional and consent != ConsentStatus.SUBSCRIBED:
            reason = f"no {channel} consent"

        if reason:
            batch.log(run, step, StepLog.Outcome.SKIPPED, reason)
            batch.metrics.add(step.pk, batch.now, "skipped")
            batch.advance(run, step, batch.now)
        else:
            allowed.append(run)

    zones = {run.contact_id: contacts[run.contact_id][3] for run in allowed}
    counted = {run.contact_id for run in allowed if contacts[run.contact_id][4]}
    verdicts = check.verdicts(allowed, zones, counted)

    # One (contact id, enrollment id, visit) per delivery. The rest of the row is the same for the whole group.
    deliveries: list[tuple[int, int, int]] = []
    queued_reason = template.name[:300]
    for run in allowed:
        verdict = verdicts.get(run.id)
        if verdict is None:
            deliveries.append((run.contact_id, run.id, run.visit))
            batch.log(run, step, StepLog.Outcome.QUEUED, queued_reason)
            batch.advance(run, step, batch.now)
        elif verdict.action == policy.Action.DEFER:
            # The run stays on this step with the same visit, so later steps wait and the delivery key stays the same.
            batch.log(run, step, StepLog.Outcome.DEFERRED, verdict.reason)
            # waiting_since marks the visit as already entered, so a retry is not counted again.
            batch.hold(run, verdict.until, run.waiting_since or batch.now)
        elif verdict.action == policy.Action.EXIT:
            batch.finish(run, Enrollment.State.EXITED, verdict.reason, step)
        else:
            batch.log(run, step, StepLog.Outcome.SKIPPED, verdict.reason)
            batch.metrics.add(step.pk, batch.now, "skipped")
            batch.advance(run, step, batch.now)

    # The unique (enrollment, step, visit) constraint makes a repeated run of this visit a no-op.
    insert_rows(
        Delivery,
        ("contact_id", "enrollment_id", "visit"),
        deliveries,
        {
            "template_id": template.pk,
            "channel": channel,
            "transactional": template.transactional,
            "step_id": step.pk,
            "status": Delivery.Status.QUEUED,
            "next_attempt_at": batch.now,
            "created_at": batch.now,
        },
        ignore_conflicts=True,
    )


def run_tag(batch: Batch, step: Step, runs: list[Run]) -> None:
    change = tag_contacts if step.kind == Step.Kind.ADD_TAG else untag_contacts
    tag = change([run.contact_id for run in runs], step.tag)

    sign = "+" if step.kind == Step.Kind.ADD_TAG else "-"
    for run in runs:
        batch.log(run, step, StepLog.Outcome.TAGGED, f"{sign}{tag.name}")
        batch.advance(run, step, batch.now)


def run_change_score(batch: Batch, step: Step, runs: list[Run]) -> None:
    # A contact enrolled twice (two keys) in one batch gets the change twice, as two visits should.
    per_contact: dict[int, int] = defaultdict(int)
    for run in runs:
        per_contact[run.contact_id] += 1
    by_count: dict[int, list[int]] = defaultdict(list)
    for contact_id, count in per_contact.items():
        by_count[count].append(contact_id)
    for count, contact_ids in by_count.items():
        for chunk in chunks(contact_ids):
            Contact.objects.filter(pk__in=chunk).update(lead_score=F("lead_score") + step.score_delta * count)

    for run in runs:
        batch.log(run, step, StepLog.Outcome.SCORED, f"{step.score_delta:+d}")
        batch.advance(run, step, batch.now)


def run_exit(batch: Batch, step: Step, runs: list[Run]) -> None:
    for run in runs:
        batch.finish(run, Enrollment.State.EXITED, "exit step", step)


RUNNERS = {
    Step.Kind.WAIT: run_wait,
    Step.Kind.CONDITION: run_condition,
    Step.Kind.SEND_EMAIL: run_send,
    Step.Kind.SEND_SMS: run_send,
    Step.Kind.SEND_WHATSAPP: run_send,
    Step.Kind.ADD_TAG: run_tag,
    Step.Kind.REMOVE_TAG: run_tag,
    Step.Kind.CHANGE_SCORE: run_change_score,
    Step.Kind.UPDATE_ATTRIBUTE: run_update_attribute,
    Step.Kind.NOTIFY_STAFF: run_notify_staff,
    Step.Kind.MOVE_TO_WORKFLOW: run_move_to_workflow,
    Step.Kind.EXIT: run_exit,
}


def run_step(batch: Batch, step: Step, runs: list[Run], now: datetime) -> None:
    # A run that waits on this step already (a deferred send, a wait for an event) entered it before.
    batch.metrics.add(step.pk, now, "entered", sum(1 for run in runs if run.waiting_since is None))
    RUNNERS[step.kind](batch, step, runs)
