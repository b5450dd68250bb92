"""Step kinds that act on the contact or on other workflows: attributes, staff notices, hand-offs."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils.translation import gettext as _

from contacts.models import Contact
from workflows.engine.batch import Batch, Run
from workflows.engine.enroll import Candidate, enroll
from workflows.models import Enrollment, Step, StepLog, Workflow

logger = logging.getLogger(__name__)

CHUNK = 1000


def run_update_attribute(batch: Batch, step: Step, runs: list[Run]) -> None:
    contact_ids = sorted({run.contact_id for run in runs})
    for start in range(0, len(contact_ids), CHUNK):
        contacts = list(Contact.objects.filter(pk__in=contact_ids[start : start + CHUNK]).only("pk", "attributes"))
        for contact in contacts:
            contact.attributes = {**(contact.attributes or {}), step.attribute_name: step.attribute_value}
        # JSON columns cannot be merged with one portable UPDATE, so the changed rows are written together.
        Contact.objects.bulk_update(contacts, ["attributes"], batch_size=CHUNK)

    for run in runs:
        batch.log(run, step, StepLog.Outcome.TAGGED, f"{step.attribute_name}={step.attribute_value}"[:300])
        batch.advance(run, step, batch.now)


def run_notify_staff(batch: Batch, step: Step, runs: list[Run]) -> None:
    contact_ids = sorted({run.contact_id for run in runs})
    summaries = [
        _("%(identity)s (%(name)s), score %(score)s, orders %(orders)s")
        % {
            "identity": email or phone or external_id,
            "name": " ".join(part for part in (first, last) if part),
            "score": score,
            "orders": orders,
        }
        for email, phone, external_id, first, last, score, orders in Contact.objects.filter(pk__in=contact_ids).values_list(
            "email", "phone", "external_id", "first_name", "last_name", "lead_score", "order_count"
        )
    ]
    workflow_name = batch.plans[runs[0].workflow_id].workflow.name
    subject = _("%(workflow)s: %(count)s contacts reached step %(step)s") % {
        "workflow": workflow_name,
        "count": len(summaries),
        "step": step.name or step.key,
    }
    body = "\n".join(summaries)
    address = step.notify_email

    def notify() -> None:
        # Sent after the tick commits, so a rolled-back batch never notifies; a failure is logged, not retried.
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address])
        except Exception:
            logger.exception("step %s: staff notification to %s failed", step.pk, address)

    transaction.on_commit(notify)
    for run in runs:
        batch.log(run, step, StepLog.Outcome.QUEUED, _("staff notified at %(address)s") % {"address": address})
        batch.advance(run, step, batch.now)


def run_move_to_workflow(batch: Batch, step: Step, runs: list[Run]) -> None:
    target = step.target_workflow
    if target is None or target.status != Workflow.Status.LIVE:
        for run in runs:
            batch.log(run, step, StepLog.Outcome.SKIPPED, "target workflow not live")
            batch.advance(run, step, batch.now)
        return

    contexts = dict(Enrollment.objects.filter(pk__in=[run.id for run in runs]).values_list("pk", "context"))
    candidates = [
        Candidate(
            contact_id=run.contact_id,
            key=run.key if target.keyed else "",
            enrolled_at=batch.now,
            context=contexts.get(run.id) or {},
        )
        for run in runs
    ]
    enroll(target, candidates, batch.now)
    for run in runs:
        batch.finish(run, Enrollment.State.EXITED, f"moved to {target.name}"[:200], step)
