import re
from decimal import Decimal
from email.utils import parseaddr

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator, validate_email
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from contacts.models import Channel, Contact

WHATSAPP_TEMPLATE_NAME = RegexValidator(
    r"^[a-z0-9_]{1,512}$",
    _("Enter the template name exactly as WhatsApp approved it: lower-case letters, digits and underscores."),
)
WHATSAPP_LANGUAGE = RegexValidator(r"^[a-z]{2,3}(_[A-Z]{2})?$", _("Enter a WhatsApp language code such as nl, en or en_US."))


# "Name <address>" or a bare address. parseaddr alone is lenient: it reads an address out of
# "Shop <shop@example.com" too, which a mail server then rejects.
SENDER_FORMS = (re.compile(r"^[^<>]*<[^<>]+>$"), re.compile(r"^[^<>\s]+$"))


def validate_sender(value: str) -> None:
    """Accept an address with an optional display name, as in "Shop <shop@example.com>"."""
    _name, address = parseaddr(value)
    try:
        if not any(form.match(value.strip()) for form in SENDER_FORMS):
            raise ValidationError("malformed")
        validate_email(address)
    except ValidationError:
        raise ValidationError(
            _("%(value)s is not a sender address. Enter one like Shop <shop@example.com> or shop@example.com."),
            params={"value": value},
            code="invalid_sender",
        ) from None


class MessageTemplate(models.Model):
    """The content of one message. Subject, body and parameters may use merge tags like {{ first_name|default:"daar" }}."""

    class Purpose(models.TextChoices):
        MESSAGE = "message", _("Workflow or broadcast message")
        CONFIRMATION = "confirmation", _("Double opt-in confirmation")

    name = models.CharField(_("name"), max_length=200, unique=True)
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices, default=Channel.EMAIL)
    purpose = models.CharField(
        _("purpose"),
        max_length=20,
        choices=Purpose.choices,
        default=Purpose.MESSAGE,
        help_text=_(
            "A double opt-in confirmation is sent after an email sign-up when double opt-in is on. Its body must contain "
            "{{ confirmation_url }}, the link that confirms the subscription."
        ),
    )
    transactional = models.BooleanField(
        _("transactional"),
        default=False,
        help_text=_(
            "Transactional messages (order confirmation, shipping) also go to contacts without marketing consent. "
            "Leave off for anything promotional."
        ),
    )
    subject = models.CharField(_("subject"), max_length=300, blank=True)
    fallback_subject = models.CharField(
        _("fallback subject"),
        max_length=300,
        blank=True,
        help_text=_(
            "Sent instead of the subject when one of the subject's merge tags has no value for the contact, "
            "e.g. a missing first name. Use no merge tags here, or only ones with a |default."
        ),
    )
    preview_text = models.CharField(
        _("preview text"), max_length=300, blank=True, help_text=_("Shown after the subject in most inboxes.")
    )
    body = models.TextField(
        _("body"),
        blank=True,
        help_text=_(
            "Email: Markdown. SMS: the plain text that is sent. Merge tags: {{ first_name }}, {{ last_name }}, "
            '{{ email }}, {{ shop_name }}, {{ trigger.* }}; give a fallback with {{ first_name|default:"daar" }}. '
            "Email blocks: {% cart_items %}, {% order_items %}, {% viewed_product %}, {% product_recommendations %}."
        ),
    )
    cta_text = models.CharField(_("button text"), max_length=100, blank=True)
    cta_url = models.CharField(_("button link"), max_length=500, blank=True)
    from_email = models.CharField(
        _("sender"),
        max_length=254,
        blank=True,
        validators=[validate_sender],
        help_text=_("E.g. Shop <shop@example.com>. Empty uses the default sender."),
    )

    # SMS: the body is the text; these two settings shape what is sent.
    sms_max_segments = models.PositiveSmallIntegerField(
        _("maximum SMS segments"),
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text=_(
            "An SMS longer than this many segments is not sent. One segment holds 160 plain characters, or 70 when the "
            "text has characters outside the GSM alphabet such as emoji; each segment is billed."
        ),
    )
    sms_track_links = models.BooleanField(
        _("shorten and track SMS links"),
        default=True,
        help_text=_(
            "Replace each link in the SMS by a short link through this site that counts the click. Off sends links as written."
        ),
    )

    # WhatsApp: an approved template, filled with parameters.
    whatsapp_template_name = models.CharField(
        _("WhatsApp template name"),
        max_length=512,
        blank=True,
        validators=[WHATSAPP_TEMPLATE_NAME],
        help_text=_("The name of the template as WhatsApp approved it, e.g. order_shipped."),
    )
    whatsapp_language = models.CharField(
        _("WhatsApp template language"),
        max_length=10,
        blank=True,
        validators=[WHATSAPP_LANGUAGE],
        help_text=_("The language of the approved template, e.g. nl or en_US."),
    )
    whatsapp_parameters = models.JSONField(
        _("WhatsApp parameters"),
        default=dict,
        blank=True,
        help_text=_(
            'The template\'s variables and their values, which may use merge tags, e.g. {"1": "{{ first_name|default:\'daar\' }}"}.'
        ),
    )
    whatsapp_provider_template_id = models.PositiveBigIntegerField(
        _("template id at Brevo"),
        null=True,
        blank=True,
        help_text=_(
            "Brevo names WhatsApp templates by a number, shown in Brevo's WhatsApp template list. Needed to send through Brevo."
        ),
    )

    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # Imported here because the validation module renders templates and so imports this one.
        from campaigns.template_validation import channel_errors

        errors = channel_errors(self)
        if errors:
            raise ValidationError(errors)


class Delivery(models.Model):
    """One message to one contact on one channel: the outbox row."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("contact"))
    template = models.ForeignKey(
        MessageTemplate, on_delete=models.PROTECT, related_name="deliveries", verbose_name=_("message template")
    )
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    transactional = models.BooleanField(_("transactional"), default=False)
    # Broadcasts send without an enrollment, hence nullable; string references keep campaigns
    # free of imports from workflows.
    enrollment = models.ForeignKey(
        "workflows.Enrollment", null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    step = models.ForeignKey("workflows.Step", null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    visit = models.PositiveIntegerField(_("visit"), default=0)

    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.QUEUED)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    to_address = models.CharField(_("to"), max_length=254, blank=True)
    subject = models.CharField(_("subject"), max_length=300, blank=True)
    message_id = models.CharField(_("message id"), max_length=300, blank=True)
    provider_message_id = models.CharField(
        _("provider message id"),
        max_length=300,
        blank=True,
        help_text=_("The id the email, SMS or WhatsApp provider gave the message; its webhooks name the message by it."),
    )
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    # Human engagement only. Opens by mail privacy proxies and clicks by link scanners are
    # flagged in the two fields after these and counted apart (see campaigns/traffic.py).
    opened_at = models.DateTimeField(_("opened at"), null=True, blank=True)
    clicked_at = models.DateTimeField(_("clicked at"), null=True, blank=True)
    proxy_opened_at = models.DateTimeField(
        _("opened by a mail proxy at"),
        null=True,
        blank=True,
        help_text=_("A privacy proxy (Apple Mail, Gmail) loaded the images; this says nothing about a person reading it."),
    )
    scanner_clicked_at = models.DateTimeField(
        _("clicked by a link scanner at"),
        null=True,
        blank=True,
        help_text=_("A security scanner followed a link, e.g. seconds after delivery; not counted as a click."),
    )
    bounced_at = models.DateTimeField(_("bounced at"), null=True, blank=True)
    complained_at = models.DateTimeField(_("marked as spam at"), null=True, blank=True)
    unsubscribed_at = models.DateTimeField(_("unsubscribed at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            # One step visit sends at most once, however often the tick that made it is retried.
            models.UniqueConstraint(
                fields=["enrollment", "step", "visit"], condition=Q(enrollment__isnull=False), name="delivery_once_per_visit"
            ),
        ]
        indexes = [
            # Read by dispatch: queued deliveries whose attempt is due.
            models.Index(fields=["next_attempt_at"], condition=Q(status="queued"), name="delivery_dispatch_due_idx"),
            # Read by the ESP webhook receiver, which names a message by the provider's id or our Message-ID.
            models.Index(fields=["provider_message_id"], condition=~Q(provider_message_id=""), name="delivery_provider_id_idx"),
            models.Index(fields=["message_id"], condition=~Q(message_id=""), name="delivery_message_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.template} → {self.contact}"

    def workflow_context(self) -> dict[str, str]:
        """Return the merge data the sending workflow adds: its discount code, empty for a broadcast."""
        if self.enrollment_id is None:
            return {}
        return {"discount_code": self.enrollment.workflow.discount_code}


class StepMetric(models.Model):
    """Counters for one workflow step on one day (UTC). Rows are only ever incremented."""

    step = models.ForeignKey("workflows.Step", on_delete=models.CASCADE, related_name="metrics")
    day = models.DateField(_("day"))
    entered = models.PositiveIntegerField(_("entered"), default=0)
    sent = models.PositiveIntegerField(_("sent"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    delivered = models.PositiveIntegerField(_("delivered"), default=0)
    # Opens and clicks by people; machine ones are counted in the two fields after these.
    opened = models.PositiveIntegerField(_("opened"), default=0)
    clicked = models.PositiveIntegerField(_("clicked"), default=0)
    opened_proxy = models.PositiveIntegerField(
        _("opened by mail proxy"), default=0, help_text=_("Messages whose images a privacy proxy loaded, not a person.")
    )
    clicked_scanner = models.PositiveIntegerField(
        _("clicked by link scanner"), default=0, help_text=_("Messages whose links a security scanner followed, not a person.")
    )
    unsubscribed = models.PositiveIntegerField(_("unsubscribed"), default=0)
    bounced = models.PositiveIntegerField(_("bounced"), default=0)
    complained = models.PositiveIntegerField(_("complained"), default=0)
    converted = models.PositiveIntegerField(_("converted"), default=0)
    revenue = models.DecimalField(_("revenue"), max_digits=14, decimal_places=2, default=Decimal("0"))
    exited = models.PositiveIntegerField(_("exited"), default=0)

    class Meta:
        ordering = ["step", "day"]
        verbose_name = _("step metric")
        verbose_name_plural = _("step metrics")
        constraints = [models.UniqueConstraint(fields=["step", "day"], name="step_metric_unique_day")]

    def __str__(self) -> str:
        return f"{self.step_id} {self.day}"


class ShortLink(models.Model):
    """A short tracking link in an SMS: /s/<code> counts the click for the delivery and redirects to the URL."""

    code = models.CharField(_("code"), max_length=16, unique=True)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="short_links", verbose_name=_("delivery"))
    url = models.URLField(_("destination"), max_length=2000)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("short link")
        verbose_name_plural = _("short links")
        constraints = [
            # A retried send of the same SMS reuses the link it made before, so the text is the same.
            models.UniqueConstraint(fields=["delivery", "url"], name="short_link_once_per_delivery_url"),
        ]

    def __str__(self) -> str:
        return self.code
