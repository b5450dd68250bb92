"""Changing a workflow's status. Activation checks that it can run, and pausing keeps its enrollments where they are."""

import logging

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from campaigns.content_check import check_template, used_names
from workflows.models import Step, Workflow

logger = logging.getLogger(__name__)


def problems(workflow: Workflow) -> list[str]:
    """List what keeps the workflow from going live, as sentences for staff."""
    found = []
    steps = list(workflow.steps.select_related("template").order_by("position", "id"))
    if not steps:
        found.append(_("The workflow has no steps."))
    try:
        workflow.full_clean()
    except ValidationError as error:
        found.extend(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())

    keys = {step.key for step in steps}
    checked: set[int] = set()
    for step in steps:
        if step.template_id is None or step.template_id in checked:
            continue
        checked.add(step.template_id)
        # Warnings (often-missing data, an image without alt text) are shown on the message's page;
        # only problems that would break the message stop the workflow from going live.
        for problem in check_template(step.template):
            if problem.blocking:
                found.append(_("Message %(message)s: %(problem)s") % {"message": step.template.name, "problem": problem.message})
        if not workflow.discount_code and "discount_code" in used_names(step.template):
            found.append(
                _(
                    "Message %(message)s uses {{ discount_code }}, but the workflow has no discount code. Enter the code "
                    "under Discount code, or take the merge tag out of the message."
                )
                % {"message": step.template.name}
            )
    for step in steps:
        try:
            step.full_clean(exclude=["workflow"])
        except ValidationError as error:
            for messages in error.message_dict.values():
                found.extend(_("Step %(step)s: %(message)s") % {"step": step.key, "message": message} for message in messages)
        branches = step.kind == Step.Kind.CONDITION or (
            step.kind == Step.Kind.WAIT and step.wait_mode == Step.WaitMode.UNTIL_EVENT
        )
        if branches:
            for target in (step.if_true, step.if_false):
                if target not in ("next", "exit") and target not in keys:
                    found.append(
                        _("Step %(step)s branches to %(target)r, which is not a step key; use next, exit or one of: %(keys)s.")
                        % {"step": step.key, "target": target, "keys": ", ".join(sorted(keys))}
                    )
    return found


def activate(workflow: Workflow) -> list[str]:
    """Set the workflow live when it has no problems; return the problems otherwise."""
    found = problems(workflow)
    if found:
        return found
    Workflow.objects.filter(pk=workflow.pk).update(status=Workflow.Status.LIVE)
    workflow.status = Workflow.Status.LIVE
    logger.info("workflow %s is live", workflow.pk)
    return []


def pause(workflow: Workflow) -> None:
    """Pause: enrollments keep their place and are not advanced until the workflow is live again."""
    Workflow.objects.filter(pk=workflow.pk).update(status=Workflow.Status.PAUSED)
    workflow.status = Workflow.Status.PAUSED
    logger.info("workflow %s is paused", workflow.pk)
