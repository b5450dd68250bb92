"""Forms behind the workflow builder: the workflow itself, its steps, and the template library."""

import logging
from typing import Any

from adminsortable2.admin import CustomInlineFormSet
from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from campaigns.models import MessageTemplate, validate_sender
from contacts.catalogue import EVENT_TYPE_CHOICES
from contacts.condition_editor import ConditionFormField
from workflows import library
from workflows.models import Step, Workflow, discount_code_validator
from workflows.step_schema import UNUSED_VALUES, unused_fields
from workflows.targets import TargetsFormField

logger = logging.getLogger(__name__)

BRANCH_TARGETS_LIST_ID = "mktauto-step-targets"
# The prefix of the workflow page's step formset: the default, the steps' related name.
STEP_FORMSET_PREFIX = "steps"


def event_choices(current: str, *, blank: bool) -> list[tuple[str, str]]:
    """Return the catalogue's event types as choices, keeping ``current`` when the catalogue lacks it."""
    choices = [(name, f"{label} ({name})") for name, label in EVENT_TYPE_CHOICES]
    if current and current not in dict(choices):
        choices.append((current, current))
    if blank:
        choices.insert(0, ("", "---------"))
    return choices


class WorkflowForm(forms.ModelForm):
    trigger_filter = ConditionFormField(
        allow_properties=True,
        label=_("Trigger filter"),
        help_text=_("Only events and contacts that match enroll. Leave the group empty to enroll on every trigger event."),
    )
    exit_condition = ConditionFormField(
        label=_("Exit condition"),
        help_text=_("Checked when events arrive and before every step; a match ends the enrollment. Empty never exits."),
    )
    metric_targets = TargetsFormField(
        label=_("Metric targets"),
        help_text=_(
            "Target ranges in percent for the key metrics, shown beside the real figures at the top of this page. "
            "A step added in this form can be chosen after saving."
        ),
    )

    class Meta:
        model = Workflow
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, blank in (("trigger_event", False), ("goal_event", True)):
            if name not in self.fields:
                continue
            current = self.initial.get(name) or getattr(self.instance, name, "")
            self.fields[name].widget = forms.Select(choices=event_choices(current, blank=blank))
        if "metric_targets" in self.fields:
            steps = submitted_steps(self.data, STEP_FORMSET_PREFIX) if self.is_bound else None
            if steps is None:
                steps = list(self.instance.steps.order_by("position", "id")) if self.instance.pk else []
            self.fields["metric_targets"].use_steps(steps)


def submitted_steps(data: Any, prefix: str) -> list[Step] | None:
    """Return the unsaved steps that the step formset in ``data`` keeps, or None without a step formset.

    The workflow form is validated before the step formset, so it reads the submitted step keys
    and kinds itself: a metric target may name a step added, renamed or changed in the same form.
    """
    try:
        total = int(data.get(f"{prefix}-TOTAL_FORMS", ""))
    except ValueError:
        return None

    steps = []
    for index in range(total):
        field = f"{prefix}-{index}-"
        key = (data.get(f"{field}key") or "").strip()
        if not key or data.get(f"{field}DELETE"):
            continue
        try:
            position = int(data.get(f"{field}position") or 0)
        except ValueError:
            position = 0
        steps.append(
            Step(key=key, kind=data.get(f"{field}kind") or "", name=(data.get(f"{field}name") or "").strip(), position=position)
        )
    steps.sort(key=lambda step: step.position)
    return steps


class BranchTargetInput(forms.TextInput):
    """A text input that suggests next, exit and the workflow's step keys from a shared datalist."""

    def __init__(self) -> None:
        super().__init__(attrs={"list": BRANCH_TARGETS_LIST_ID, "size": 16, "autocomplete": "off"})


class StepForm(forms.ModelForm):
    condition = ConditionFormField(
        label=_("Condition"), help_text=_("A contact who matches goes the “if yes” way, everyone else the “if no” way.")
    )

    class Meta:
        model = Step
        fields = [
            "key",
            "kind",
            "name",
            "wait_mode",
            "wait_days",
            "wait_hours",
            "wait_minutes",
            "wait_weekday",
            "wait_time",
            "wait_event",
            "wait_same_key",
            "wait_data_path",
            "template",
            "tag",
            "score_delta",
            "attribute_name",
            "attribute_value",
            "notify_email",
            "target_workflow",
            "condition",
            "if_true",
            "if_false",
            "position",
        ]
        widgets = {
            "if_true": BranchTargetInput(),
            "if_false": BranchTargetInput(),
            "kind": forms.Select(attrs={"class": "mktauto-step-kind"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "template" in self.fields:
            # Step.clean checks that the message's channel matches the send kind.
            self.fields["template"].queryset = MessageTemplate.objects.all()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if not kind:
            return cleaned

        # Values of fields the kind does not use are reset, so a step that changed kind keeps no
        # hidden leftovers that the flowchart or a later kind change would pick up.
        for name in unused_fields(kind):
            if name in cleaned:
                cleaned[name] = UNUSED_VALUES[name]
                self.errors.pop(name, None)
        return cleaned


class StepFormSet(CustomInlineFormSet):
    """Checks across steps: every branch target must be next, exit or a step key in this form."""

    def clean(self) -> None:
        super().clean()
        live_forms = [form for form in self.forms if form.has_changed() or form.instance.pk]
        live_forms = [form for form in live_forms if not self._should_delete_form(form) and hasattr(form, "cleaned_data")]
        keys = {form.cleaned_data.get("key") for form in live_forms if form.cleaned_data.get("key")}

        for form in live_forms:
            branches = form.cleaned_data.get("kind") == Step.Kind.CONDITION or (
                form.cleaned_data.get("kind") == Step.Kind.WAIT
                and form.cleaned_data.get("wait_mode") == Step.WaitMode.UNTIL_EVENT
            )
            if not branches:
                continue
            for field in ("if_true", "if_false"):
                target = (form.cleaned_data.get(field) or "").strip()
                if target in ("next", "exit") or target in keys:
                    continue
                form.add_error(
                    field,
                    _("“%(target)s” is not a step key in this workflow. Use next, exit or one of: %(keys)s.")
                    % {"target": target, "keys": ", ".join(sorted(keys)) or "-"},
                )


class TemplateInstallForm(forms.Form):
    template = forms.ChoiceField(label=_("Template"), choices=())
    language = forms.ChoiceField(
        label=_("Language"),
        choices=settings.LANGUAGES,
        help_text=_("The language of the workflow's names and of the messages it creates."),
    )
    discount_code = forms.CharField(
        label=_("Discount code"),
        max_length=64,
        required=False,
        validators=[discount_code_validator],
        help_text=_("The code the messages offer. Create it in the shop before you activate the workflow."),
    )
    from_email = forms.CharField(
        label=_("Sender"),
        max_length=254,
        required=False,
        validators=[validate_sender],
        help_text=_("E.g. Shop <shop@example.com>. Empty uses the default sender."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = [(slug, str(spec.name)) for slug, spec in library.TEMPLATES.items()]
