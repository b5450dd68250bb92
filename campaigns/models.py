from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from contacts.models import Channel, Contact


class MessageTemplate(models.Model):
    """The content of one message. Subject and body may use merge tags like {{ first_name|default:"daar" }}."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices, default=Channel.EMAIL)
    transactional = models.BooleanField(
        _("transactional"),
        default=False,
        help_text=_(
            "Transactional messages (order confirmation, shipping) also go to contacts without marketing consent. "
            "Leave off for anything promotional."
        ),
    )
    subject = models.CharField(_("subject"), max_length=300, blank=True)
    preview_text = models.CharField(
        _("preview text"), max_length=300, blank=True, help_text=_("Shown after the subject in most inboxes.")
    )
    body = models.TextField(
        _("body"),
        help_text=_("Markdown. Merge tags: {{ first_name }}, {{ last_name }}, {{ email }}, {{ shop_name }}, {{ trigger.* }}."),
    )
    cta_text = models.CharField(_("button text"), max_length=100, blank=True)
    cta_url = models.CharField(_("button link"), max_length=500, blank=True)
    from_email = models.CharField(
        _("sender"), max_length=254, blank=True, help_text=_("E.g. Shop <shop@example.com>. Empty uses the default sender.")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")

    def __str__(self) -> str:
        return self.name


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
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened at"), null=True, blank=True)
    clicked_at = models.DateTimeField(_("clicked at"), null=True, blank=True)
    bounced_at = models.DateTimeField(_("bounced at"), null=True, blank=True)
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
        ]

    def __str__(self) -> str:
        return f"{self.template} → {self.contact}"


class StepMetric(models.Model):
    """Counters for one workflow step on one day (UTC). Rows are only ever incremented."""

    step = models.ForeignKey("workflows.Step", on_delete=models.CASCADE, related_name="metrics")
    day = models.DateField(_("day"))
    entered = models.PositiveIntegerField(_("entered"), default=0)
    sent = models.PositiveIntegerField(_("sent"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    opened = models.PositiveIntegerField(_("opened"), default=0)
    clicked = models.PositiveIntegerField(_("clicked"), default=0)
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
