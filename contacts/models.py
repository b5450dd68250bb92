import hashlib
import operator
import secrets
from decimal import Decimal
from functools import reduce

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    WHATSAPP = "whatsapp", _("WhatsApp")


class ConsentStatus(models.TextChoices):
    # Promotional messages go only to SUBSCRIBED; transactional ones go to everyone not suppressed.
    UNKNOWN = "unknown", _("Unknown")
    PENDING = "pending", _("Waiting for confirmation")
    SUBSCRIBED = "subscribed", _("Subscribed")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")

    def __str__(self) -> str:
        return self.name


class VipTier(models.Model):
    """A loyalty level a contact reaches by what it spent or by how many orders it placed.

    contacts.vip moves contacts between tiers when their order facts change.
    """

    # Names are data, not interface text: conditions, segments and the vip_tier_reached event's data
    # match on them, so they stay as staff typed them in every language.
    name = models.CharField(_("name"), max_length=50, unique=True, help_text=_("E.g. Silver or Gold."))
    rank = models.PositiveSmallIntegerField(
        _("rank"),
        unique=True,
        validators=[MinValueValidator(1)],
        help_text=_("Higher is better, e.g. 1 for Silver and 2 for Gold. A contact is in the best tier it reaches."),
    )
    min_total_spent = models.DecimalField(
        _("minimum total spent"),
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_(
            "A contact reaches the tier when either threshold is met: this total spent or the minimum number of orders. "
            "Leave empty to go by orders only."
        ),
    )
    min_order_count = models.PositiveIntegerField(
        _("minimum orders"),
        null=True,
        blank=True,
        help_text=_(
            "A contact reaches the tier when either threshold is met: this number of orders or the minimum total spent. "
            "Leave empty to go by spend only."
        ),
    )

    class Meta:
        ordering = ["rank"]
        verbose_name = _("VIP tier")
        verbose_name_plural = _("VIP tiers")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.min_total_spent is None and self.min_order_count is None:
            raise ValidationError(
                _(
                    "Enter a minimum total spent, a minimum number of orders, or both. A tier without either would "
                    "include every contact."
                )
            )

    def qualifies(self) -> Q:
        """Return a Q over Contact that matches the contacts meeting either threshold of this tier."""
        thresholds = []
        if self.min_total_spent is not None:
            thresholds.append(Q(total_spent__gte=self.min_total_spent))
        if self.min_order_count is not None:
            thresholds.append(Q(order_count__gte=self.min_order_count))
        if not thresholds:
            # Only a tier saved without clean() lacks both. It contains no one rather than everyone.
            return Q(pk__in=[])
        return reduce(operator.or_, thresholds)


class Contact(models.Model):
    # Identity: each is unique when present. Empty values are stored as NULL so that the
    # unique constraints ignore them.
    email = models.EmailField(_("email"), max_length=254, null=True, blank=True, unique=True)
    phone = models.CharField(
        _("phone"), max_length=20, null=True, blank=True, unique=True, help_text=_("In E.164 form, e.g. +31612345678.")
    )
    external_id = models.CharField(
        _("external id"),
        max_length=100,
        null=True,
        blank=True,
        unique=True,
        help_text=_("The customer id in the shop or CRM."),
    )

    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=150, blank=True)
    company = models.CharField(_("company"), max_length=200, blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True, help_text=_("Language code, e.g. nl or en."))
    time_zone = models.CharField(
        _("time zone"), max_length=64, blank=True, help_text=_("IANA name, e.g. Europe/Amsterdam. Empty uses the default.")
    )
    address1 = models.CharField(_("address"), max_length=200, blank=True)
    address2 = models.CharField(_("address line 2"), max_length=200, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    province_code = models.CharField(_("province code"), max_length=10, blank=True)
    country_code = models.CharField(_("country code"), max_length=2, blank=True)
    zip = models.CharField(_("postal code"), max_length=20, blank=True)
    note = models.TextField(_("note"), blank=True)

    email_consent = models.CharField(
        _("email consent"), max_length=20, choices=ConsentStatus.choices, default=ConsentStatus.UNKNOWN
    )
    sms_consent = models.CharField(_("SMS consent"), max_length=20, choices=ConsentStatus.choices, default=ConsentStatus.UNKNOWN)
    whatsapp_consent = models.CharField(
        _("WhatsApp consent"), max_length=20, choices=ConsentStatus.choices, default=ConsentStatus.UNKNOWN
    )
    email_suppressed_at = models.DateTimeField(
        _("email suppressed at"),
        null=True,
        blank=True,
        help_text=_("Set after a hard bounce or spam complaint. No email of any kind goes to a suppressed address."),
    )
    email_suppressed_reason = models.CharField(_("email suppression reason"), max_length=200, blank=True)

    tags = models.ManyToManyField(Tag, blank=True, related_name="contacts", verbose_name=_("tags"))
    lead_score = models.IntegerField(_("lead score"), default=0)
    attributes = models.JSONField(
        _("attributes"), default=dict, blank=True, help_text=_('Custom fields, e.g. {"birthday": "1990-05-17"}.')
    )

    # Order facts, kept up to date from order events.
    order_count = models.PositiveIntegerField(_("orders"), default=0)
    total_spent = models.DecimalField(_("total spent"), max_digits=14, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(_("currency"), max_length=3, default=settings.MKTAUTO_DEFAULT_CURRENCY)
    first_order_at = models.DateTimeField(_("first order"), null=True, blank=True)
    last_order_at = models.DateTimeField(_("last order"), null=True, blank=True)
    # Kept up to date with the order facts by contacts.vip.
    vip_tier = models.ForeignKey(
        VipTier,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="contacts",
        verbose_name=_("VIP tier"),
        help_text=_("The best tier whose spend or order threshold the contact meets."),
    )
    vip_since = models.DateTimeField(
        _("VIP since"),
        null=True,
        blank=True,
        help_text=_("When the contact first reached a VIP tier. It stays when a refund takes the tier away again."),
    )

    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        indexes = [
            # Read by the inactivity trigger and by "last order before" conditions.
            models.Index(fields=["last_order_at"], name="contact_last_order_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(email__isnull=False) | Q(phone__isnull=False) | Q(external_id__isnull=False),
                name="contact_has_identity",
            ),
            # Imports and events match email case-insensitively by comparing lower-case values; this
            # keeps a writer that bypasses Contact.save() from storing a second spelling.
            models.CheckConstraint(condition=Q(email=Lower("email")), name="contact_email_lower_case"),
        ]

    def __str__(self) -> str:
        return self.email or self.phone or self.external_id or f"#{self.pk}"

    def save(self, *args, **kwargs) -> None:
        self.email = self.email.strip().lower() if self.email else None
        self.phone = self.phone or None
        self.external_id = self.external_id or None
        super().save(*args, **kwargs)

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


class ConsentRecord(models.Model):
    """Append-only history of consent changes; the contact's columns hold the current state."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consent_records")
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    status = models.CharField(_("status"), max_length=20, choices=ConsentStatus.choices)
    source = models.CharField(
        _("source"), max_length=50, help_text=_("Where the change came from: import, shopify, api, unsubscribe link, admin.")
    )
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now)
    proof = models.TextField(_("proof"), blank=True, help_text=_("E.g. the import file and row, or the request's IP address."))

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("consent record")
        verbose_name_plural = _("consent records")

    def __str__(self) -> str:
        return f"{self.contact}: {self.get_channel_display()}, {self.get_status_display()}"


class Segment(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    condition = models.JSONField(
        _("condition"), default=dict, help_text=_("Who belongs to the segment, in the condition language.")
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")

    def __str__(self) -> str:
        return self.name


class Event(models.Model):
    """One thing a contact did, stored before it is processed (the inbox)."""

    class Source(models.TextChoices):
        API = "api", _("API")
        SHOPIFY = "shopify", _("Shopify")
        IMPORT = "import", pgettext_lazy("event source", "Import")
        ADMIN = "admin", _("Admin")
        TRACKING = "tracking", _("Tracking")
        DEMO = "demo", _("Demo")
        # Recorded by mktauto itself, e.g. vip_tier_reached.
        SYSTEM = "system", _("System")

    source = models.CharField(_("source"), max_length=20, choices=Source.choices)
    source_id = models.CharField(
        _("source id"), max_length=200, null=True, blank=True, help_text=_("The sender's id; a repeated id is ignored.")
    )
    type = models.CharField(_("type"), max_length=64)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="events", verbose_name=_("contact"))
    occurred_at = models.DateTimeField(_("occurred at"))
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    properties = models.JSONField(_("properties"), default=dict, blank=True)
    key = models.CharField(
        _("key"), max_length=200, blank=True, help_text=_("The checkout or order this event is about, for exits and goals.")
    )
    value = models.DecimalField(_("value"), max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("event")
        verbose_name_plural = _("events")
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_id"], condition=Q(source_id__isnull=False), name="event_source_id_unique"
            ),
        ]
        indexes = [
            # Read by the inbox: pending events in arrival order.
            models.Index(fields=["received_at", "id"], condition=Q(processed_at__isnull=True), name="event_inbox_idx"),
            # Read by the condition compiler's "event X happened" subqueries.
            models.Index(fields=["contact", "type", "occurred_at"], name="event_contact_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.occurred_at:%Y-%m-%d %H:%M}"


class ApiKey(models.Model):
    """A key for the events API. Only a SHA-256 hash of the key is stored."""

    class Scope(models.TextChoices):
        FULL = "full", _("Full: all events and contact details")
        PIXEL = "pixel", _("Pixel: browsing events only")

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(
        _("prefix"), max_length=12, editable=False, help_text=_("The first characters of the key, to recognise it.")
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(_("scope"), max_length=10, choices=Scope.choices, default=Scope.FULL)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked = models.BooleanField(_("revoked"), default=False)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @classmethod
    def generate(cls, name: str, scope: str = Scope.FULL) -> tuple["ApiKey", str]:
        """Create a key and return it with its raw value, which is shown once and never stored."""
        raw_key = "mk_" + secrets.token_urlsafe(32)
        api_key = cls.objects.create(name=name, scope=scope, prefix=raw_key[:10], key_hash=cls.hash_key(raw_key))
        return api_key, raw_key


class Shop(models.Model):
    """A connected Shopify shop and the secret that verifies the webhooks it sends."""

    domain = models.CharField(
        _("domain"),
        max_length=255,
        unique=True,
        validators=[
            RegexValidator(
                r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$",
                _("Enter the shop's myshopify.com domain, e.g. example.myshopify.com, not its own web address."),
            )
        ],
        help_text=_("The shop's myshopify.com domain, e.g. example.myshopify.com. Shopify names it in every webhook."),
    )
    name = models.CharField(_("name"), max_length=200, blank=True)
    # Stored in clear, unlike API keys: checking a webhook's HMAC-SHA256 signature needs the
    # secret itself, and a hash of it cannot verify anything. Forms must not show it.
    webhook_secret = models.CharField(
        _("webhook secret"),
        max_length=255,
        help_text=_(
            "The app's client secret (API secret key) from the app's settings in Shopify. Shopify signs every webhook "
            "with it, and a webhook whose signature does not match is rejected."
        ),
    )
    currency = models.CharField(
        _("currency"),
        max_length=3,
        default=settings.MKTAUTO_DEFAULT_CURRENCY,
        help_text=_("The shop's currency, e.g. EUR. Used for amounts that arrive without a currency."),
    )
    active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_(
            "Cleared when the app is uninstalled from the shop. Webhooks still verify afterwards, because Shopify sends "
            "the shop's privacy requests after an uninstall."
        ),
    )
    uninstalled_at = models.DateTimeField(_("uninstalled at"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        ordering = ["domain"]
        verbose_name = _("Shopify shop")
        verbose_name_plural = _("Shopify shops")

    def __str__(self) -> str:
        return self.domain

    def save(self, *args, **kwargs) -> None:
        # Shopify sends the domain in lower case; a pasted "Example.myshopify.com " must still match.
        self.domain = self.domain.strip().lower()
        self.currency = self.currency.strip().upper()
        super().save(*args, **kwargs)


class ScoreRule(models.Model):
    """Points added to (or taken from) a contact's lead score when an event matches."""

    name = models.CharField(_("name"), max_length=200)
    event_type = models.CharField(_("event type"), max_length=64, help_text=_("E.g. link_clicked or page_viewed."))
    event_filter = models.JSONField(
        _("event filter"),
        default=dict,
        blank=True,
        help_text=_('Condition on the event\'s properties, e.g. {"property": "url", "op": "contains", "value": "/pricing"}.'),
    )
    points = models.IntegerField(_("points"), help_text=_("Added to the lead score; negative subtracts."))
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["event_type", "name"]
        verbose_name = _("lead score rule")
        verbose_name_plural = _("lead score rules")

    def __str__(self) -> str:
        return f"{self.name} ({self.points:+d})"

    def clean(self) -> None:
        from contacts import conditions

        try:
            conditions.validate(self.event_filter, allow_properties=True)
        except conditions.ConditionError as error:
            raise ValidationError({"event_filter": str(error)}) from error
