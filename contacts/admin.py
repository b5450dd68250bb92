"""Admin for contacts and what belongs to them: tags, segments, VIP tiers, consent, events and API keys."""

import logging

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from import_export.admin import ImportExportModelAdmin
from import_export.formats import base_formats

from contacts import conditions, timeline, vip
from contacts.condition_editor import ConditionFormField
from contacts.consent import STATUS_FIELDS, set_consent
from contacts.importing import SpreadsheetCSV
from contacts.models import ApiKey, ConsentRecord, ConsentStatus, Contact, Event, ScoreRule, Segment, Shop, Tag, VipTier
from contacts.resources import ContactResource
from contacts.shopify.forms import ShopForm

logger = logging.getLogger(__name__)


class HasOrdersFilter(admin.SimpleListFilter):
    title = gettext_lazy("has orders")
    parameter_name = "has_orders"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Contact]) -> QuerySet[Contact]:
        if self.value() == "yes":
            return queryset.filter(order_count__gt=0)
        if self.value() == "no":
            return queryset.filter(order_count=0)
        return queryset


class LanguageFilter(admin.SimpleListFilter):
    """Offer the languages contacts actually have, because the field is free text."""

    title = gettext_lazy("language")
    parameter_name = "language"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        codes = Contact.objects.exclude(language="").order_by("language").values_list("language", flat=True).distinct()
        return [(code, code) for code in codes] + [("-", _("None"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Contact]) -> QuerySet[Contact]:
        if self.value() == "-":
            return queryset.filter(language="")
        if self.value():
            return queryset.filter(language=self.value())
        return queryset


class ConsentRecordInline(admin.TabularInline):
    model = ConsentRecord
    fields = ["occurred_at", "channel", "status", "source", "proof"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-occurred_at", "-id"]

    def has_add_permission(self, request: HttpRequest, obj: Contact | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Contact | None = None) -> bool:
        return False


@admin.register(Contact)
class ContactAdmin(ImportExportModelAdmin):
    resource_classes = [ContactResource]
    import_formats = [SpreadsheetCSV]
    # SpreadsheetCSV only reads; exports are plain UTF-8 CSV, which imports again.
    export_formats = [base_formats.CSV]

    list_display = [
        "__str__",
        "full_name",
        "phone",
        "email_consent",
        "lead_score",
        "order_count",
        "total_spent",
        "vip_tier",
        "last_order_at",
        "created_at",
    ]
    list_filter = ["email_consent", "sms_consent", "whatsapp_consent", "tags", "vip_tier", LanguageFilter, HasOrdersFilter]
    list_select_related = ["vip_tier"]
    search_fields = ["email", "first_name", "last_name", "phone", "external_id", "company"]
    autocomplete_fields = ["tags"]
    readonly_fields = [
        "email_suppressed_at",
        "email_suppressed_reason",
        "order_count",
        "total_spent",
        "currency",
        "first_order_at",
        "last_order_at",
        "vip_tier",
        "vip_since",
        "created_at",
        "updated_at",
    ]
    inlines = [ConsentRecordInline]
    fieldsets = [
        (None, {"fields": ["email", "phone", "external_id"]}),
        (gettext_lazy("Person"), {"fields": [("first_name", "last_name"), "company", ("language", "time_zone")]}),
        (
            gettext_lazy("Consent"),
            {
                "fields": [
                    "email_consent",
                    "sms_consent",
                    "whatsapp_consent",
                    ("email_suppressed_at", "email_suppressed_reason"),
                ],
                "description": gettext_lazy("A change here is recorded as consent given or withdrawn by staff."),
            },
        ),
        (gettext_lazy("Tags and score"), {"fields": ["tags", "lead_score", "attributes", "note"]}),
        (
            gettext_lazy("Orders"),
            {
                "fields": [
                    ("order_count", "total_spent", "currency"),
                    ("first_order_at", "last_order_at"),
                    ("vip_tier", "vip_since"),
                ]
            },
        ),
        (
            gettext_lazy("Address"),
            {"fields": ["address1", "address2", ("zip", "city"), ("province_code", "country_code")], "classes": ["collapse"]},
        ),
        (gettext_lazy("Dates"), {"fields": [("created_at", "updated_at")], "classes": ["collapse"]}),
    ]

    class Media:
        css = {"all": ["mktauto/admin.css"]}

    @admin.display(description=gettext_lazy("name"), ordering="last_name")
    def full_name(self, contact: Contact) -> str:
        return contact.full_name

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        contact = self.get_object(request, object_id)
        if contact is not None:
            extra_context["timeline"] = timeline.build(contact)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Contact, form: forms.ModelForm, change: bool) -> None:
        # Consent changes go through set_consent, so each one is recorded and a withdrawal exits
        # promotional workflows, exactly as an unsubscribe link would.
        if change:
            original = Contact.objects.get(pk=obj.pk)
            baseline = {field: getattr(original, field) for field in STATUS_FIELDS.values()}
        else:
            baseline = dict.fromkeys(STATUS_FIELDS.values(), ConsentStatus.UNKNOWN)
        requested = {channel: getattr(obj, field) for channel, field in STATUS_FIELDS.items()}
        for field, status in baseline.items():
            setattr(obj, field, status)

        super().save_model(request, obj, form, change)

        for channel, status in requested.items():
            if set_consent(obj, channel, status, source="admin", proof=f"admin user {request.user.pk}"):
                logger.info("staff user %s set contact %s %s consent to %s", request.user.pk, obj.pk, channel, status)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "contact_count"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(contact_total=Count("contacts"))

    @admin.display(description=gettext_lazy("contacts"), ordering="contact_total")
    def contact_count(self, tag: Tag) -> int:
        return tag.contact_total


@admin.register(VipTier)
class VipTierAdmin(admin.ModelAdmin):
    list_display = ["name", "rank", "min_total_spent", "min_order_count", "contact_count"]
    list_display_links = ["name"]
    search_fields = ["name"]
    actions = ["recompute"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[VipTier]:
        return super().get_queryset(request).annotate(contact_total=Count("contacts"))

    @admin.display(description=gettext_lazy("contacts"), ordering="contact_total")
    def contact_count(self, tier: VipTier) -> int:
        return tier.contact_total

    def save_model(self, request: HttpRequest, obj: VipTier, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if {"rank", "min_total_spent", "min_order_count"} & set(form.changed_data):
            self.message_user(
                request,
                _(
                    "Contacts keep their tier until you recompute: select the tiers and run “Recompute the VIP tier "
                    "of every contact”."
                ),
                messages.WARNING,
            )

    @admin.action(description=gettext_lazy("Recompute the VIP tier of every contact"), permissions=["change"])
    def recompute(self, request: HttpRequest, queryset: QuerySet[VipTier]) -> None:
        # Tiers decide together which one is best for a contact, so every contact is recomputed
        # against every tier, whichever tiers are selected.
        changes = vip.recompute_all(timezone.now())
        logger.info("staff user %s recomputed VIP tiers: %s rose, %s dropped", request.user.pk, changes.risen, changes.lowered)
        self.message_user(
            request,
            _(
                "VIP tiers recomputed. Contacts that rose to a higher tier: %(risen)d; they enter the workflows that start "
                "on vip_tier_reached within a few minutes. Contacts that dropped to a lower tier or out of the tiers: %(lowered)d."
            )
            % {"risen": changes.risen, "lowered": changes.lowered},
            messages.SUCCESS,
        )


class SegmentForm(forms.ModelForm):
    condition = ConditionFormField(label=gettext_lazy("Condition"), help_text=gettext_lazy("Who belongs to the segment."))

    class Meta:
        model = Segment
        fields = ["name", "description", "condition"]


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ["name", "description", "member_count"]
    search_fields = ["name", "description"]

    @admin.display(description=gettext_lazy("contacts now"))
    def member_count(self, segment: Segment) -> str:
        try:
            return str(Contact.objects.filter(conditions.compile(segment.condition)).count())
        except conditions.ConditionError as error:
            logger.warning("segment %s has an invalid condition: %s", segment.pk, error)
            return _("invalid condition: %(error)s") % {"error": error}


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "type", "contact", "source", "key", "value", "currency", "processed_at"]
    list_filter = ["type", "source", ("processed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["contact"]
    search_fields = ["contact__email", "source_id", "key", "type"]
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "scope", "revoked"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "scope", "last_used_at", "revoked", "created_at"]
    list_filter = ["scope", "revoked"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is None:
            return ["name", "scope"]
        return ["name", "prefix", "scope", "revoked", "created_at", "last_used_at"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return

        created, raw_key = ApiKey.generate(name=obj.name, scope=obj.scope)
        # The admin goes on with the form's instance (history entry, redirect), so it takes the
        # saved row's identity.
        obj.pk = created.pk
        obj.prefix = created.prefix
        obj.key_hash = created.key_hash
        obj.created_at = created.created_at
        obj._state.adding = False
        logger.info("staff user %s created API key %s", request.user.pk, created.pk)
        self.message_user(
            request,
            _("The new key is %(key)s. Copy it now: it is stored only as a hash and will not be shown again.") % {"key": raw_key},
            messages.WARNING,
        )

    @admin.action(description=gettext_lazy("Revoke the selected keys"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = queryset.filter(revoked=False).update(revoked=True)
        logger.info("staff user %s revoked %s API keys", request.user.pk, revoked)
        message = ngettext(
            "%(count)d key was revoked. Requests with it are now rejected.",
            "%(count)d keys were revoked. Requests with them are now rejected.",
            revoked,
        )
        self.message_user(request, message % {"count": revoked}, messages.SUCCESS)


@admin.register(Shop)
class ShopAdmin(admin.ModelAdmin):
    # The form never shows the stored webhook secret; leaving the field empty keeps it.
    form = ShopForm
    list_display = ["domain", "name", "currency", "active", "uninstalled_at", "created_at"]
    list_filter = ["active"]
    search_fields = ["domain", "name"]
    readonly_fields = ["uninstalled_at", "created_at"]


@admin.register(ScoreRule)
class ScoreRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "event_type", "points", "active"]
    list_editable = ["points", "active"]
    list_filter = ["active", "event_type"]
    search_fields = ["name", "event_type"]
