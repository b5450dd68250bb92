"""Admin pages of the workflow builder that are not a model's list or form."""

import logging
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views import View

from workflows import library
from workflows.admin_forms import TemplateInstallForm
from workflows.models import Workflow

logger = logging.getLogger(__name__)


def trigger_text(spec: library.TemplateSpec) -> str:
    """Describe a template's trigger in a few words, e.g. "No order_placed for 60 days"."""
    kind = spec.trigger_type
    if kind == Workflow.TriggerType.EVENT:
        return spec.trigger_event
    if kind == Workflow.TriggerType.INACTIVITY:
        return _("No %(event)s for %(days)s days") % {"event": spec.trigger_event, "days": spec.trigger_days}
    if kind == Workflow.TriggerType.DATE:
        return _("Each year on %(field)s") % {"field": spec.trigger_date_field}
    return str(Workflow.TriggerType(kind).label)


class TemplateLibraryView(View):
    """List the workflow templates and install the chosen one as a draft workflow."""

    model_admin: admin.ModelAdmin | None = None
    template_name = "admin/workflows/workflow/template_library.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not self.model_admin.has_add_permission(request):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        language = translation.get_language() or "nl"
        form = TemplateInstallForm(initial={"language": language.split("-")[0]})
        return self.render(request, form)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TemplateInstallForm(request.POST)
        if not form.is_valid():
            # The page shows one error note at the top, and the field errors appear in the template's card.
            return self.render(request, form, status=400)

        slug = form.cleaned_data["template"]
        language = form.cleaned_data["language"]
        # A template without a code of its own gets none, whatever the form contains.
        code = form.cleaned_data["discount_code"] if library.TEMPLATES[slug].discount_code else None
        workflow = library.install_template(
            slug, language=language, discount_code=code, from_email=form.cleaned_data["from_email"]
        )
        logger.info("staff user %s installed template %s as workflow %s", request.user.pk, slug, workflow.pk)

        self.model_admin.log_addition(request, workflow, [{"added": {}}])
        self.model_admin.message_user(
            request,
            _("“%(name)s” was installed as a draft. Check the steps and messages, then activate it.") % {"name": workflow.name},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:workflows_workflow_change", args=[workflow.pk]))

    def render(self, request: HttpRequest, form: TemplateInstallForm, status: int = 200) -> HttpResponse:
        opts = self.model_admin.opts
        templates = [
            {
                "slug": slug,
                "name": spec.name,
                "objective": spec.objective,
                "metrics": spec.metrics,
                "trigger": trigger_text(spec),
                "discount_code": spec.discount_code,
                "step_count": len(spec.steps),
                "email_count": sum(1 for step in spec.steps if step.message is not None),
            }
            for slug, spec in library.TEMPLATES.items()
        ]
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": opts,
            "title": _("New workflow from a template"),
            "templates": templates,
            "form": form,
            "languages": form.fields["language"].choices,
            "brand_name": settings.MKTAUTO_BRAND_NAME,
            "shop_url": settings.MKTAUTO_SHOP_URL,
            "default_sender": settings.DEFAULT_FROM_EMAIL,
        }
        return TemplateResponse(request, self.template_name, context, status=status)
