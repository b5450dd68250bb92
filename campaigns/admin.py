"""Admin for what we send: message templates with a rendered preview, deliveries and step metrics."""

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import escape
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from campaigns import rendering
from campaigns.content_check import check_template
from campaigns.models import Delivery, MessageTemplate, StepMetric
from campaigns.preview import render_preview, send_test
from contacts.models import Contact
from workflows.reasons import display

logger = logging.getLogger(__name__)

MERGE_FIELDS = ("subject", "fallback_subject", "preview_text", "body", "cta_text", "cta_url")


def sample_contact() -> Contact:
    """Return an unsaved contact to preview with when staff picked none."""
    return Contact(first_name=_("Sam"), last_name=_("Example"), email="sam@example.com", city="Utrecht")


class PreviewForm(forms.Form):
    preview_contact = forms.ModelChoiceField(
        label=gettext_lazy("Preview for contact"),
        queryset=Contact.objects.all(),
        required=False,
        widget=AutocompleteSelect(Delivery._meta.get_field("contact"), admin.site),
    )


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The admin renders help text as HTML, and this one shows an address in angle brackets.
        if "from_email" in self.fields:
            self.fields["from_email"].help_text = escape(self.fields["from_email"].help_text)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()

        # Merge-tag syntax errors are caught here, field by field, instead of at send time.
        context = rendering.merge_context(sample_contact())
        for name in MERGE_FIELDS:
            source = cleaned.get(name)
            if not source:
                continue
            try:
                rendering.render_text(source, context, autoescape=False)
            except rendering.RenderError as error:
                self.add_error(name, _("This text has a merge tag error: %(error)s") % {"error": error})
        return cleaned


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ["name", "channel", "transactional", "subject", "updated_at"]
    list_filter = ["channel", "transactional"]
    search_fields = ["name", "subject", "body"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", ("channel", "purpose", "transactional"), "from_email"]}),
        (
            gettext_lazy("Content"),
            {"fields": ["subject", "fallback_subject", "preview_text", "body", ("cta_text", "cta_url")]},
        ),
        (gettext_lazy("SMS"), {"fields": [("sms_max_segments", "sms_track_links")], "classes": ["collapse"]}),
        (
            gettext_lazy("WhatsApp"),
            {
                "fields": [
                    ("whatsapp_template_name", "whatsapp_language"),
                    "whatsapp_parameters",
                    "whatsapp_provider_template_id",
                ],
                "classes": ["collapse"],
            },
        ),
        (gettext_lazy("Dates"), {"fields": [("created_at", "updated_at")], "classes": ["collapse"]}),
    ]

    @property
    def media(self) -> forms.Media:
        # The preview's contact picker is a separate form on the page. Its script and styles are
        # merged here, so jQuery and Select2 load once.
        return super().media + PreviewForm().media + forms.Media(css={"all": ["mktauto/admin.css"]})

    def get_urls(self) -> list:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        preview = path(
            "<int:object_id>/preview/",
            self.admin_site.admin_view(self.preview_html_view),
            name=f"{prefix}_preview",
        )
        send_test_url = path(
            "<int:object_id>/send-test/",
            self.admin_site.admin_view(require_POST(self.send_test_view)),
            name=f"{prefix}_send_test",
        )
        return [preview, send_test_url, *super().get_urls()]

    def send_test_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Send the message, rendered for the chosen contact, to the staff member's own address."""
        template = get_object_or_404(MessageTemplate, pk=object_id)
        if not self.has_view_permission(request, template):
            raise PermissionDenied
        contact = self.preview_contact(request) or sample_contact()
        to = (request.POST.get("to") or request.user.email or "").strip()
        back = reverse("admin:campaigns_messagetemplate_change", args=[template.pk])
        if request.GET.get("preview_contact"):
            back += "?" + urlencode({"preview_contact": request.GET["preview_contact"]})
        try:
            send_test(template, contact, to, requested_by=request.user.get_username())
        except (ValueError, rendering.RenderError) as error:
            self.message_user(request, _("The test was not sent: %(error)s") % {"error": error}, messages.ERROR)
            return HttpResponseRedirect(back)
        logger.info("message %s sent as a test to %s for contact %s by %s", template.pk, to, contact.pk, request.user.pk)
        self.message_user(request, _("A test of this message was sent to %(to)s.") % {"to": to}, messages.SUCCESS)
        return HttpResponseRedirect(back)

    def preview_contact(self, request: HttpRequest) -> Contact | None:
        """Return the contact chosen for the preview, or None for the sample contact."""
        form = PreviewForm(request.GET)
        if not form.is_valid():
            return None
        return form.cleaned_data["preview_contact"]

    @xframe_options_sameorigin
    def preview_html_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        template = get_object_or_404(MessageTemplate, pk=object_id)
        if not self.has_view_permission(request, template):
            raise PermissionDenied
        contact = self.preview_contact(request) or sample_contact()
        # The same rendering as the text preview beside it: trigger data and the workflow's discount code.
        try:
            rendered = render_preview(template, contact).email
        except rendering.RenderError as error:
            return HttpResponse(str(error), content_type="text/plain; charset=utf-8", status=400)
        if rendered is None:
            return HttpResponse(_("This message is not an email."), content_type="text/plain; charset=utf-8", status=400)
        return HttpResponse(rendered.html)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        template = self.get_object(request, object_id)
        if template is not None:
            extra_context.update(self.preview_context(request, template))
        return super().change_view(request, object_id, form_url, extra_context)

    def preview_context(self, request: HttpRequest, template: MessageTemplate) -> dict[str, Any]:
        contact = self.preview_contact(request)
        preview_form = PreviewForm(initial={"preview_contact": contact.pk if contact else None})
        query = urlencode({"preview_contact": contact.pk}) if contact else ""
        context: dict[str, Any] = {
            "preview_form": preview_form,
            "preview_contact": contact,
            "preview_url": reverse("admin:campaigns_messagetemplate_preview", args=[template.pk])
            + (f"?{query}" if query else ""),
            "preview": None,
            "channel_preview": None,
            "preview_error": "",
            "send_test_url": reverse("admin:campaigns_messagetemplate_send_test", args=[template.pk])
            + (f"?{query}" if query else ""),
            "send_test_to": request.user.email,
            "content_problems": check_template(template),
        }
        try:
            rendered = render_preview(template, contact or sample_contact())
        except rendering.RenderError as error:
            context["preview_error"] = str(error)
            return context
        context["preview"] = rendered.email
        context["channel_preview"] = rendered.sms or rendered.whatsapp
        return context


class ReadOnlyAdmin(admin.ModelAdmin):
    """A list and detail view of rows the engine writes; staff look but do not edit."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "contact", "template", "channel", "status", "to_address", "attempts", "sent_at", "short_error"]
    list_filter = ["status", "channel", "transactional"]
    list_select_related = ["contact", "template"]
    search_fields = ["to_address", "subject", "contact__email", "error"]
    date_hierarchy = "created_at"
    fields = [
        "contact",
        "template",
        "channel",
        "transactional",
        "status",
        "error_display",
        "attempts",
        "next_attempt_at",
        "to_address",
        "subject",
        "message_id",
        "enrollment",
        "step",
        "visit",
        "created_at",
        "sent_at",
        "opened_at",
        "clicked_at",
        "bounced_at",
        "unsubscribed_at",
    ]

    # The engine's send-time cancellations are stored in English and shown translated; a backend's
    # own error text is shown as stored.
    readonly_fields = ["error_display"]

    @admin.display(description=gettext_lazy("error"))
    def error_display(self, delivery: Delivery) -> str:
        return display(delivery.error, delivery.contact.time_zone or None)

    @admin.display(description=gettext_lazy("error"))
    def short_error(self, delivery: Delivery) -> str:
        return self.error_display(delivery)[:120]


@admin.register(StepMetric)
class StepMetricAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "step",
        "entered",
        "sent",
        "opened",
        "clicked",
        "unsubscribed",
        "bounced",
        "converted",
        "revenue",
        "exited",
    ]
    list_filter = ["step__workflow"]
    list_select_related = ["step__workflow"]
    date_hierarchy = "day"
