"""The workflow builder: workflows with sortable steps, enrollments and step logs."""

import logging
from collections.abc import Callable
from typing import Any

from adminsortable2.admin import SortableAdminBase, SortableStackedInline
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST
from simple_history.admin import SimpleHistoryAdmin

from workflows import flowchart, lifecycle, performance, replenishment, resume, targets
from workflows.admin_forms import BRANCH_TARGETS_LIST_ID, StepForm, StepFormSet, WorkflowForm
from workflows.admin_views import TemplateLibraryView
from workflows.engine.exits import exit_enrollments
from workflows.models import (
    ChannelSpacing,
    Enrollment,
    FrequencyCap,
    QuietPeriod,
    ReplenishmentCycle,
    SendingPolicy,
    Step,
    StepLog,
    SuppressionRule,
    Workflow,
)
from workflows.reasons import display
from workflows.step_schema import WAIT_FIELDS, script_config

logger = logging.getLogger(__name__)

REMOVED_BY_STAFF = "removed by staff"
RECENT_CHANGES = 15
CHART_DAYS = 30


def activate_workflows(model_admin: admin.ModelAdmin, request: HttpRequest, workflows: list[Workflow]) -> None:
    """Set each workflow live, or tell staff what keeps it from going live."""
    for workflow in workflows:
        if workflow.status == Workflow.Status.LIVE:
            model_admin.message_user(request, _("“%(name)s” is already live.") % {"name": workflow}, messages.INFO)
            continue
        found = lifecycle.activate(workflow)
        if found:
            model_admin.message_user(
                request,
                _("“%(name)s” was not activated. Fix these problems first: %(problems)s")
                % {"name": workflow, "problems": " ".join(found)},
                messages.ERROR,
            )
            continue
        model_admin.message_user(request, _("“%(name)s” is live now.") % {"name": workflow}, messages.SUCCESS)


def pause_workflows(model_admin: admin.ModelAdmin, request: HttpRequest, workflows: list[Workflow]) -> None:
    """Pause each live workflow; enrollments keep their place until it is live again."""
    for workflow in workflows:
        if workflow.status != Workflow.Status.LIVE:
            model_admin.message_user(
                request,
                _("“%(name)s” is not live (status: %(status)s), so it was not paused.")
                % {"name": workflow, "status": workflow.get_status_display()},
                messages.WARNING,
            )
            continue
        lifecycle.pause(workflow)
        model_admin.message_user(
            request,
            _("“%(name)s” is paused. Its contacts stay where they are until you activate it again.") % {"name": workflow},
            messages.SUCCESS,
        )


def resume_workflows(model_admin: admin.ModelAdmin, request: HttpRequest, workflows: list[Workflow]) -> None:
    """Set each paused workflow live again, spreading what fell due during the pause over the next hour."""
    for workflow in workflows:
        if workflow.status != Workflow.Status.PAUSED:
            model_admin.message_user(
                request,
                _("“%(name)s” is not paused (status: %(status)s), so it was not resumed.")
                % {"name": workflow, "status": workflow.get_status_display()},
                messages.WARNING,
            )
            continue
        result = resume.resume(workflow)
        if result.problems:
            model_admin.message_user(
                request,
                _("“%(name)s” was not resumed. Fix these problems first: %(problems)s")
                % {"name": workflow, "problems": " ".join(result.problems)},
                messages.ERROR,
            )
            continue
        model_admin.message_user(
            request,
            _(
                "“%(name)s” is live again. What fell due during the pause continues spread over the next %(minutes)s "
                "minutes: enrollments %(enrollments)s, held messages %(messages)s."
            )
            % {
                "name": workflow,
                "enrollments": result.enrollments_spread,
                "messages": result.deliveries_spread,
                "minutes": int(resume.DEFAULT_SPREAD.total_seconds() // 60),
            },
            messages.SUCCESS,
        )


class StepInline(SortableStackedInline):
    model = Step
    form = StepForm
    formset = StepFormSet
    fk_name = "workflow"
    # adminsortable2 takes the order field from the first ordering entry, and the model's own
    # ordering starts with "workflow".
    ordering = ["position", "id"]
    extra = 0
    fields = [
        ("key", "kind", "name"),
        "wait_mode",
        WAIT_FIELDS,
        ("wait_weekday", "wait_time"),
        ("wait_event", "wait_same_key"),
        "wait_data_path",
        "template",
        "tag",
        "score_delta",
        ("attribute_name", "attribute_value"),
        "notify_email",
        "target_workflow",
        "condition",
        ("if_true", "if_false"),
    ]
    classes = ["mktauto-steps"]


@admin.register(Workflow)
class WorkflowAdmin(SortableAdminBase, SimpleHistoryAdmin):
    form = WorkflowForm
    inlines = [StepInline]
    list_display = [
        "name",
        "status_badge",
        "trigger_event",
        "step_count",
        "active_count",
        "goal_target_percent",
        "changed_by",
        "updated_at",
    ]
    list_filter = ["status", "trigger_type", "trigger_event"]
    search_fields = ["name", "objective"]
    readonly_fields = ["status", "template_slug", "created_at", "updated_at"]
    actions = ["activate", "pause", "resume_without_late_sends"]
    fieldsets = [
        (None, {"fields": ["name", "objective", ("status", "priority"), "discount_code"]}),
        (
            gettext_lazy("Trigger"),
            {
                "fields": [
                    "trigger_type",
                    "trigger_event",
                    "trigger_filter",
                    ("trigger_date_field", "trigger_offset_days", "trigger_time"),
                    "trigger_days",
                    "trigger_cron",
                    ("keyed", "entry_rule", "reentry_days"),
                    "restart_on_change",
                ]
            },
        ),
        (gettext_lazy("Exit"), {"fields": ["exit_condition", "exit_tag"]}),
        (
            gettext_lazy("Goal"),
            {
                "fields": [
                    ("goal_event", "goal_same_key"),
                    ("goal_window_days", "goal_target_percent"),
                    ("exit_on_goal", "goal_handoff"),
                    "metric_targets",
                ]
            },
        ),
        (
            gettext_lazy("Coordination"),
            {
                "fields": [
                    ("cap_messages", "cap_window_hours"),
                    "ignore_frequency_caps",
                    ("blocked_send", "max_delay_hours"),
                    "on_conflict",
                    "exclusions",
                ],
                "description": gettext_lazy(
                    "How this workflow shares the contact with the sending policy and with other workflows."
                ),
            },
        ),
        (gettext_lazy("Details"), {"fields": ["template_slug", ("created_at", "updated_at")], "classes": ["collapse"]}),
    ]

    class Media:
        css = {"all": ["mktauto/admin.css"]}
        js = ["mktauto/step_kind.js"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        history = Workflow.history.model.objects.filter(id=OuterRef("pk")).order_by("-history_date")
        return (
            super()
            .get_queryset(request)
            .annotate(
                step_total=Count("steps", distinct=True),
                active_total=Count("enrollments", filter=Q(enrollments__state=Enrollment.State.ACTIVE), distinct=True),
                last_changed_by=Subquery(history.values("history_user__username")[:1]),
            )
        )

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, workflow: Workflow) -> str:
        return format_html(
            '<span class="mktauto-status mktauto-status-{}">{}</span>', workflow.status, workflow.get_status_display()
        )

    @admin.display(description=gettext_lazy("steps"), ordering="step_total")
    def step_count(self, workflow: Workflow) -> int:
        return workflow.step_total

    @admin.display(description=gettext_lazy("active enrollments"), ordering="active_total")
    def active_count(self, workflow: Workflow) -> int:
        return workflow.active_total

    @admin.display(description=gettext_lazy("last changed by"))
    def changed_by(self, workflow: Workflow) -> str:
        return workflow.last_changed_by or "-"

    @admin.action(description=gettext_lazy("Activate the selected workflows"), permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        activate_workflows(self, request, list(queryset))

    @admin.action(description=gettext_lazy("Pause the selected workflows"), permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        pause_workflows(self, request, list(queryset))

    @admin.action(description=gettext_lazy("Resume without late sends"), permissions=["change"])
    def resume_without_late_sends(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        resume_workflows(self, request, list(queryset))

    def get_urls(self) -> list:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        custom = [
            path(
                "library/",
                self.admin_site.admin_view(TemplateLibraryView.as_view(model_admin=self)),
                name=f"{prefix}_library",
            ),
            path(
                "<int:object_id>/activate/",
                self.admin_site.admin_view(require_POST(self.activate_view)),
                name=f"{prefix}_activate",
            ),
            path("<int:object_id>/pause/", self.admin_site.admin_view(require_POST(self.pause_view)), name=f"{prefix}_pause"),
        ]
        return custom + super().get_urls()

    def status_change_view(self, request: HttpRequest, object_id: int, change: Callable[..., None]) -> HttpResponse:
        workflow = get_object_or_404(Workflow, pk=object_id)
        if not self.has_change_permission(request, workflow):
            raise PermissionDenied
        change(self, request, [workflow])
        return HttpResponseRedirect(reverse("admin:workflows_workflow_change", args=[workflow.pk]))

    def activate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        return self.status_change_view(request, object_id, activate_workflows)

    def pause_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        return self.status_change_view(request, object_id, pause_workflows)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        workflow = self.get_object(request, object_id)
        if workflow is not None:
            extra_context.update(self.overview_context(workflow))
        extra_context["step_kind_fields"] = script_config()
        extra_context["branch_targets_list_id"] = BRANCH_TARGETS_LIST_ID
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        extra_context = extra_context or {}
        extra_context["step_kind_fields"] = script_config()
        extra_context["branch_targets_list_id"] = BRANCH_TARGETS_LIST_ID
        return super().add_view(request, form_url, extra_context)

    def overview_context(self, workflow: Workflow) -> dict[str, Any]:
        """Return what the workflow page shows above the form: flowchart, goal, targets, metrics, chart, history."""
        steps = list(workflow.steps.select_related("template").order_by("position", "id"))
        rows = performance.step_rows(workflow, steps)
        goal = performance.goal_summary(workflow)
        return {
            "flowchart_source": flowchart.build(workflow, steps),
            "goal": goal,
            "target_results": targets.evaluate(workflow, rows=rows, goal=goal),
            "step_rows": rows,
            "step_totals": performance.total_row(rows),
            "daily_series": performance.daily_series(workflow, today=timezone.now().date(), days=CHART_DAYS),
            "daily_labels": {
                "enrolled": _("enrolled"),
                "sent": _("sent"),
                "opened": _("opened"),
                "clicked": _("clicked"),
                "converted": _("converted"),
            },
            "step_keys": [step.key for step in steps],
            "recent_changes": recent_changes(workflow),
            "can_activate": workflow.status != Workflow.Status.LIVE,
            "can_pause": workflow.status == Workflow.Status.LIVE,
        }


def recent_changes(workflow: Workflow) -> list[dict[str, Any]]:
    """Return the latest history records of the workflow and its steps, newest first."""
    change_types = {"+": _("created"), "~": _("changed"), "-": _("deleted")}
    workflow_records = Workflow.history.filter(id=workflow.pk).select_related("history_user")[:RECENT_CHANGES]
    step_records = Step.history.filter(workflow_id=workflow.pk).select_related("history_user")[:RECENT_CHANGES]

    changes = [
        {
            "at": record.history_date,
            "user": record.history_user,
            "what": _("workflow"),
            "name": record.name,
            "type": change_types.get(record.history_type, record.history_type),
        }
        for record in workflow_records
    ]
    changes += [
        {
            "at": record.history_date,
            "user": record.history_user,
            "what": _("step"),
            "name": record.name or record.key,
            "type": change_types.get(record.history_type, record.history_type),
        }
        for record in step_records
    ]
    changes.sort(key=lambda change: change["at"], reverse=True)
    return changes[:RECENT_CHANGES]


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = [
        "contact",
        "workflow",
        "state",
        "step",
        "next_run_at",
        "enrolled_at",
        "finished_at",
        "exit_reason_display",
        "converted_at",
    ]
    list_filter = ["workflow", "state"]
    list_select_related = ["contact", "workflow", "step"]
    search_fields = ["contact__email", "contact__first_name", "contact__last_name", "key"]
    date_hierarchy = "enrolled_at"
    actions = ["remove_from_workflow"]
    # The stored English exit reason is shown translated in its place.
    exclude = ["exit_reason"]
    readonly_fields = ["exit_reason_display"]

    @admin.display(description=gettext_lazy("exit reason"), ordering="exit_reason")
    def exit_reason_display(self, enrollment: Enrollment) -> str:
        return display(enrollment.exit_reason, enrollment.contact.time_zone or None)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Enrollment | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Enrollment | None = None) -> bool:
        # The change permission guards the removal action on the list; a single enrollment's
        # page is always read-only because the engine owns its state.
        if obj is not None:
            return False
        return super().has_change_permission(request, obj)

    @admin.action(description=gettext_lazy("Remove from workflow"), permissions=["change"])
    def remove_from_workflow(self, request: HttpRequest, queryset: QuerySet[Enrollment]) -> None:
        # A fresh queryset without the list's joins: PostgreSQL cannot lock the nullable side of
        # an outer join.
        with transaction.atomic():
            locked = Enrollment.objects.filter(pk__in=list(queryset.values_list("pk", flat=True)), state=Enrollment.State.ACTIVE)
            active = list(locked.select_for_update())
            exited = exit_enrollments(active, REMOVED_BY_STAFF, timezone.now()) if active else 0
        skipped = queryset.count() - exited
        logger.info("staff user %s removed %s enrollments from their workflow", request.user.pk, exited)

        if exited:
            self.message_user(
                request,
                ngettext(
                    "%(count)d contact was removed from the workflow.",
                    "%(count)d contacts were removed from their workflow.",
                    exited,
                )
                % {"count": exited},
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d enrollment was not active any more and was left as it was.",
                    "%(count)d enrollments were not active any more and were left as they were.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )


@admin.register(StepLog)
class StepLogAdmin(admin.ModelAdmin):
    list_display = ["at", "enrollment", "step", "visit", "outcome", "reason_display"]
    list_filter = ["outcome", "step__workflow"]
    list_select_related = ["enrollment__contact", "enrollment__workflow", "step"]
    search_fields = ["enrollment__contact__email", "reason"]
    date_hierarchy = "at"
    # The stored English reason is shown translated in its place; search still matches the stored text.
    exclude = ["reason"]
    readonly_fields = ["reason_display"]

    @admin.display(description=gettext_lazy("reason"), ordering="reason")
    def reason_display(self, log: StepLog) -> str:
        return display(log.reason, log.enrollment.contact.time_zone or None)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: StepLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: StepLog | None = None) -> bool:
        return False


class FrequencyCapInline(admin.TabularInline):
    model = FrequencyCap
    extra = 0


class ChannelSpacingInline(admin.TabularInline):
    model = ChannelSpacing
    extra = 0


class SuppressionRuleInline(admin.TabularInline):
    model = SuppressionRule
    extra = 0


class QuietPeriodInline(admin.TabularInline):
    model = QuietPeriod
    extra = 0


@admin.register(SendingPolicy)
class SendingPolicyAdmin(admin.ModelAdmin):
    """One page for the single policy row and its rules."""

    fields = [("quiet_hours_start", "quiet_hours_end")]
    inlines = [FrequencyCapInline, ChannelSpacingInline, SuppressionRuleInline, QuietPeriodInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SendingPolicy | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        # The list always shows the one row, with its defaults if nothing has read the policy yet.
        SendingPolicy.load()
        return super().changelist_view(request, extra_context)


@admin.register(ReplenishmentCycle)
class ReplenishmentCycleAdmin(admin.ModelAdmin):
    """The products the replenishment workflow reminds about, and how long one order of each lasts."""

    list_display = ["display_name", "sku", "product_id", "title_contains", "cycle_days", "reminder_day", "discontinued"]
    list_display_links = ["display_name"]
    list_filter = ["discontinued"]
    search_fields = ["name", "sku", "product_id", "title_contains"]
    fields = ["name", "sku", "product_id", "title_contains", "cycle_days", "discontinued"]
    actions = ["mark_discontinued"]

    @admin.display(description=gettext_lazy("name"), ordering="name")
    def display_name(self, cycle: ReplenishmentCycle) -> str:
        return str(cycle)

    @admin.display(description=gettext_lazy("reminder on day"), ordering="cycle_days")
    def reminder_day(self, cycle: ReplenishmentCycle) -> int | None:
        return cycle.reminder_day

    def save_model(self, request: HttpRequest, obj: ReplenishmentCycle, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            newly_discontinued = obj.discontinued and (not change or "discontinued" in form.changed_data)
            recorded = replenishment.record_discontinued([obj], timezone.now()) if newly_discontinued else 0
        if newly_discontinued:
            logger.info("staff user %s marked replenishment cycle %s discontinued", request.user.pk, obj.pk)
            self.report_discontinued(request, recorded)

    @admin.action(description=gettext_lazy("Mark as discontinued"), permissions=["change"])
    def mark_discontinued(self, request: HttpRequest, queryset: QuerySet[ReplenishmentCycle]) -> None:
        with transaction.atomic():
            cycles = list(queryset.filter(discontinued=False))
            recorded = replenishment.discontinue(cycles, timezone.now())
        logger.info("staff user %s marked replenishment cycles %s discontinued", request.user.pk, [cycle.pk for cycle in cycles])
        self.message_user(
            request,
            _("Products marked discontinued: %(count)d.") % {"count": len(cycles)},
            messages.SUCCESS,
        )
        self.report_discontinued(request, recorded)

    def report_discontinued(self, request: HttpRequest, recorded: int) -> None:
        self.message_user(
            request,
            _(
                "Contacts waiting for a reminder about the discontinued product: %(count)d. They leave the workflows that exit on "
                "product_discontinued within a few minutes."
            )
            % {"count": recorded},
            messages.INFO,
        )
