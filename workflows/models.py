from datetime import time, timedelta
from decimal import Decimal

from croniter import croniter
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from campaigns.models import MessageTemplate
from contacts import conditions
from contacts.models import Channel, Contact

discount_code_validator = RegexValidator(r"^\S*$", _("Enter the discount code without spaces, e.g. WELCOME15."))


class Workflow(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        LIVE = "live", _("Live")
        PAUSED = "paused", _("Paused")
        ARCHIVED = "archived", _("Archived")

    class EntryRule(models.TextChoices):
        ONCE = "once", _("Once per contact, ever")
        ONCE_PER_DAYS = "once_per_days", _("At most once per number of days")
        EVERY_TIME = "every_time", _("Every time the trigger fires (one active enrollment per key)")

    class TriggerType(models.TextChoices):
        EVENT = "event", _("An event happens")
        DATE = "date", _("A contact date is reached (birthday, anniversary)")
        INACTIVITY = "inactivity", _("No event of a type for a number of days")
        SCHEDULE = "schedule", _("On a schedule (cron)")
        CONDITION_ENTERED = "condition_entered", _("Starts matching a condition or segment")
        CONDITION_LEFT = "condition_left", _("Stops matching a condition or segment")

    # Configuration.
    name = models.CharField(_("name"), max_length=200, unique=True)
    objective = models.TextField(
        _("objective"),
        blank=True,
        # xgettext:no-python-format
        help_text=_("What the workflow is for, e.g. recover 10% of abandoned carts within 72 hours."),
    )
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.DRAFT)
    priority = models.IntegerField(_("priority"), default=0, help_text=_("Higher wins when workflows compete for a contact."))
    trigger_type = models.CharField(_("trigger type"), max_length=20, choices=TriggerType.choices, default=TriggerType.EVENT)
    trigger_event = models.CharField(
        _("trigger event"),
        max_length=64,
        blank=True,
        help_text=_(
            "The event type that enrolls a contact, e.g. checkout_started. For an inactivity trigger: the event "
            "whose absence counts, e.g. order_placed."
        ),
    )
    trigger_date_field = models.CharField(
        _("date field"),
        max_length=64,
        blank=True,
        help_text=_(
            "For a date trigger: a custom attribute holding YYYY-MM-DD (e.g. birthday), or one of the contact's dates: "
            "created_at (sign-up), first_order_at (first order) or vip_since (became VIP)."
        ),
    )
    trigger_offset_days = models.IntegerField(
        _("offset (days)"), default=0, help_text=_("For a date trigger: days after the date; negative for days before.")
    )
    trigger_time = models.TimeField(
        _("time of day"),
        null=True,
        blank=True,
        help_text=_("For a date trigger: local time in the contact's time zone, e.g. 09:00."),
    )
    trigger_days = models.PositiveIntegerField(
        _("days without the event"), default=0, help_text=_("For an inactivity trigger, e.g. 60 days without order_placed.")
    )
    trigger_cron = models.CharField(
        _("schedule"),
        max_length=100,
        blank=True,
        help_text=_("For a schedule trigger: a cron expression in the default time zone, e.g. 0 9 * * 1 for Mondays at 09:00."),
    )
    reentry_days = models.PositiveIntegerField(
        _("re-entry after (days)"), default=0, help_text=_("For the entry rule 'at most once per number of days'.")
    )
    last_scheduled_at = models.DateTimeField(_("last scheduled run"), null=True, blank=True, editable=False)
    trigger_filter = models.JSONField(
        _("trigger filter"),
        default=dict,
        blank=True,
        help_text=_(
            'Condition on the event\'s properties and the contact, e.g. {"property": "total_price", "op": "gte", "value": 50}.'
        ),
    )
    keyed = models.BooleanField(
        _("one enrollment per checkout or order"),
        default=False,
        help_text=_("Enroll once per trigger key (checkout token, order id) instead of once per contact."),
    )
    restart_on_change = models.CharField(
        _("restart when this trigger property changes"),
        max_length=64,
        blank=True,
        validators=[RegexValidator(r"^[A-Za-z0-9_.-]*$", _("Enter a property name such as category."))],
        help_text=_(
            "E.g. category: a trigger event for another category ends the running enrollment and starts a new one "
            "with the new event's data, whatever the entry rule. An event with the same value changes nothing."
        ),
    )
    entry_rule = models.CharField(_("entry rule"), max_length=20, choices=EntryRule.choices, default=EntryRule.ONCE)
    exit_condition = models.JSONField(
        _("exit condition"),
        default=dict,
        blank=True,
        help_text=_("Checked when events arrive and before every step; a match ends the enrollment."),
    )
    exit_tag = models.CharField(
        _("tag on leaving"),
        max_length=100,
        blank=True,
        help_text=_(
            "Added to contacts who leave through the exit condition or by reaching the goal, e.g. active after a "
            "win-back. Not added when they unsubscribe or the series ends."
        ),
    )
    goal_event = models.CharField(_("goal event"), max_length=64, blank=True, help_text=_("E.g. order_placed."))
    goal_same_key = models.BooleanField(
        _("goal needs the same key"), default=False, help_text=_("Count only a goal event about the same checkout or order.")
    )
    goal_window_days = models.PositiveIntegerField(
        _("goal window (days)"),
        default=14,
        help_text=_("A goal event counts when it happens this many days after enrollment or sooner."),
    )
    goal_target_percent = models.DecimalField(
        # xgettext:no-python-format
        _("goal target (%)"),
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        # xgettext:no-python-format
        help_text=_("E.g. 8 for 8% converted."),
    )
    exit_on_goal = models.BooleanField(_("exit when the goal is reached"), default=True)
    goal_handoff = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="goal_handoffs_in",
        verbose_name=_("after the goal, move to"),
        help_text=_("E.g. a welcome series that ends with a purchase hands the contact to the post-purchase workflow."),
    )

    # Coordination with the sending policy and with other workflows.
    class BlockedSend(models.TextChoices):
        SKIP = "skip", _("Skip the message and go on with the next step")
        DEFER = "defer", _("Defer the message until the block lifts, at most the maximum delay")

    class OnConflict(models.TextChoices):
        SKIP = "skip", _("Skip the message and go on with the next step")
        DEFER = "defer", _("Defer the message, at most the maximum delay")
        EXIT = "exit", _("Leave this workflow")

    cap_messages = models.PositiveIntegerField(
        _("message cap"),
        null=True,
        blank=True,
        help_text=_(
            "At most this many promotional messages from this workflow per contact within the cap window, e.g. 1 for "
            "browse abandonment. Empty means this workflow has no cap of its own; the sending policy's caps still apply."
        ),
    )
    cap_window_hours = models.PositiveIntegerField(
        _("cap window (hours)"),
        default=24,
        validators=[MinValueValidator(1)],
        help_text=_("The window the message cap counts in, in hours, e.g. 24 for one message per day."),
    )
    blocked_send = models.CharField(
        _("when the sending policy blocks a message"),
        max_length=10,
        choices=BlockedSend.choices,
        default=BlockedSend.DEFER,
        help_text=_(
            "A deferred message keeps the contact on its step, so later steps wait; after the maximum delay it is skipped."
        ),
    )
    max_delay_hours = models.PositiveIntegerField(
        _("maximum delay (hours)"),
        default=24,
        help_text=_("How long a deferred message may wait, in hours, counted from its first deferral. 0 skips at once."),
    )
    on_conflict = models.CharField(
        _("when another workflow has the contact"),
        max_length=10,
        choices=OnConflict.choices,
        default=OnConflict.DEFER,
        help_text=_(
            "What a message does while the contact is active in a live workflow with a higher priority, "
            "or in one of the workflows listed under 'not while active in'."
        ),
    )
    ignore_frequency_caps = models.BooleanField(
        _("ignore frequency caps"),
        default=False,
        help_text=_(
            "Send on schedule even when the sending policy's frequency caps or channel spacing would hold a message back, "
            "e.g. for cart recovery, whose reminders lose their value when they are late. Consent, suppression, quiet "
            "periods, quiet hours and this workflow's own cap still apply, and its messages still count towards the caps "
            "of other workflows."
        ),
    )
    exclusions = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="excluded_by",
        verbose_name=_("not while active in"),
        help_text=_("E.g. a win-back workflow sends nothing while the contact is active in the post-purchase workflow."),
    )
    discount_code = models.CharField(
        _("discount code"),
        max_length=64,
        blank=True,
        validators=[discount_code_validator],
        help_text=_(
            # xgettext:no-python-format
            "Filled into the messages wherever they say {{ discount_code }}. Create the code in the shop first, e.g. "
            "WELCOME15 for 15% off. The texts name the discount itself (15%): change them when your code gives another."
        ),
    )
    metric_targets = models.JSONField(
        _("metric targets"),
        default=list,
        blank=True,
        help_text=_("Target ranges for the key metrics, shown beside the real figures on the workflow page."),
    )
    template_slug = models.CharField(_("installed from template"), max_length=100, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    # Runtime state stays out of the history, which records what staff changed.
    history = HistoricalRecords(excluded_fields=["last_scheduled_at"])

    class Meta:
        ordering = ["-priority", "name"]
        verbose_name = _("workflow")
        verbose_name_plural = _("workflows")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        kind = self.trigger_type
        if kind in (self.TriggerType.EVENT, self.TriggerType.INACTIVITY) and not self.trigger_event:
            errors["trigger_event"] = _("Enter the event type, e.g. order_placed.")
        if kind == self.TriggerType.INACTIVITY and not self.trigger_days:
            errors["trigger_days"] = _("Enter the number of days without the event, e.g. 60.")
        if kind == self.TriggerType.DATE and not self.trigger_date_field:
            errors["trigger_date_field"] = _("Enter the attribute that holds the date, e.g. birthday, or created_at.")
        if kind == self.TriggerType.SCHEDULE and not croniter.is_valid(self.trigger_cron or ""):
            errors["trigger_cron"] = _("%(value)r is not a valid cron expression; e.g. 0 9 * * 1 is Mondays at 09:00.") % {
                "value": self.trigger_cron
            }
        if kind in (self.TriggerType.CONDITION_ENTERED, self.TriggerType.CONDITION_LEFT) and not self.trigger_filter:
            errors["trigger_filter"] = _('Enter the condition or segment to watch, e.g. {"segment": "VIP"}.')
        if self.restart_on_change and kind != self.TriggerType.EVENT:
            errors["restart_on_change"] = _("Only an event trigger can restart; clear this field or choose an event trigger.")
        if self.entry_rule == self.EntryRule.ONCE_PER_DAYS and not self.reentry_days:
            errors["reentry_days"] = _("Enter after how many days a contact may enter again.")
        if errors:
            raise ValidationError(errors)

        for field in ("trigger_filter", "exit_condition"):
            try:
                event_trigger = self.trigger_type == self.TriggerType.EVENT
                conditions.validate(getattr(self, field), allow_properties=field == "trigger_filter" and event_trigger)
            except conditions.ConditionError as error:
                raise ValidationError({field: str(error)}) from error


slug_validator = RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", _("Use lower-case letters, digits, - and _ only."))


class Step(models.Model):
    class Kind(models.TextChoices):
        WAIT = "wait", _("Wait")
        CONDITION = "condition", _("Condition")
        SEND_EMAIL = "send_email", _("Send email")
        SEND_SMS = "send_sms", _("Send SMS")
        SEND_WHATSAPP = "send_whatsapp", _("Send WhatsApp message")
        ADD_TAG = "add_tag", _("Add tag")
        REMOVE_TAG = "remove_tag", _("Remove tag")
        CHANGE_SCORE = "change_score", _("Change lead score")
        UPDATE_ATTRIBUTE = "update_attribute", _("Update attribute")
        NOTIFY_STAFF = "notify_staff", _("Notify staff")
        MOVE_TO_WORKFLOW = "move_to_workflow", _("Move to another workflow")
        EXIT = "exit", _("Exit")

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps", verbose_name=_("workflow"))
    position = models.PositiveIntegerField(_("position"), default=0, db_index=True)
    key = models.CharField(
        _("key"), max_length=50, validators=[slug_validator], help_text=_("Stable name that branches point to, e.g. email-1.")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=200, blank=True)

    # Wait.
    class WaitMode(models.TextChoices):
        DURATION = "duration", _("For a duration")
        UNTIL_TIME = "until_time", _("Until a weekday and time (contact's time zone)")
        UNTIL_DATE = "until_date", _("Until a date from data, at the time of day (contact's time zone)")
        UNTIL_EVENT = "until_event", _("Until an event happens, with the duration as timeout")
        FROM_DATA = "from_data", _("For a number of days taken from data, minus the days below")

    wait_mode = models.CharField(_("wait mode"), max_length=20, choices=WaitMode.choices, default=WaitMode.DURATION)
    wait_days = models.PositiveIntegerField(_("days"), default=0)
    wait_hours = models.PositiveIntegerField(_("hours"), default=0)
    wait_minutes = models.PositiveIntegerField(_("minutes"), default=0)
    wait_weekday = models.PositiveSmallIntegerField(
        _("weekday"),
        null=True,
        blank=True,
        choices=[
            (0, _("Monday")),
            (1, _("Tuesday")),
            (2, _("Wednesday")),
            (3, _("Thursday")),
            (4, _("Friday")),
            (5, _("Saturday")),
            (6, _("Sunday")),
        ],
        help_text=_("For 'until a weekday and time'; empty means the next day the time comes."),
    )
    wait_time = models.TimeField(
        _("time of day"), null=True, blank=True, help_text=_("Local time in the contact's time zone, e.g. 09:00.")
    )
    wait_event = models.CharField(
        _("event to wait for"),
        max_length=64,
        blank=True,
        help_text=_("E.g. order_fulfilled. 'If yes' is taken when it happens, 'if no' at the timeout."),
    )
    wait_same_key = models.BooleanField(_("same checkout or order only"), default=False)
    wait_data_path = models.CharField(
        _("days from"),
        max_length=100,
        blank=True,
        help_text=_(
            "Where the number of days is: trigger.cycle_days, trigger.line_items.cycle_days (the shortest of the items) "
            "or attributes.NAME."
        ),
    )
    # Send.
    template = models.ForeignKey(
        MessageTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="steps", verbose_name=_("message")
    )
    # Tags and score.
    tag = models.CharField(_("tag"), max_length=100, blank=True)
    score_delta = models.IntegerField(_("score change"), default=0, help_text=_("Added to the lead score; negative subtracts."))
    # Attribute, staff notification and hand-off.
    attribute_name = models.CharField(_("attribute"), max_length=64, blank=True)
    attribute_value = models.CharField(
        _("attribute value"), max_length=500, blank=True, help_text=_("Stored as text, e.g. gold.")
    )
    notify_email = models.CharField(
        _("notify address"),
        max_length=254,
        blank=True,
        help_text=_("Staff address that gets the contact's details, e.g. sales@example.com."),
    )
    target_workflow = models.ForeignKey(
        "Workflow",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="handoffs_in",
        verbose_name=_("move to workflow"),
        help_text=_("The contact leaves this workflow and enters that one at its first step."),
    )
    # Condition.
    condition = models.JSONField(_("condition"), default=dict, blank=True)
    if_true = models.CharField(
        _("if yes, go to"), max_length=50, default="next", help_text=_("next, exit, or the key of another step.")
    )
    if_false = models.CharField(
        _("if no, go to"), max_length=50, default="exit", help_text=_("next, exit, or the key of another step.")
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["workflow", "position", "id"]
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        constraints = [models.UniqueConstraint(fields=["workflow", "key"], name="step_key_unique_per_workflow")]

    def __str__(self) -> str:
        return f"{self.position + 1}. {self.name or self.get_kind_display()}"

    def wait_errors(self) -> dict[str, str]:
        mode = self.wait_mode
        if mode == self.WaitMode.DURATION and not self.wait_duration:
            return {"wait_days": _("A wait needs a duration: set days, hours or minutes.")}
        if mode == self.WaitMode.UNTIL_TIME and self.wait_time is None:
            return {"wait_time": _("Enter the time of day to wait for, e.g. 09:00.")}
        if mode == self.WaitMode.UNTIL_EVENT:
            if not self.wait_event:
                return {"wait_event": _("Enter the event to wait for, e.g. order_fulfilled.")}
            if not self.wait_duration:
                return {"wait_days": _("Set the timeout in days, hours or minutes.")}
        if mode == self.WaitMode.UNTIL_DATE and not (
            self.wait_data_path.startswith(("trigger.", "attributes.")) and len(self.wait_data_path.split(".")) >= 2
        ):
            return {"wait_data_path": _("Enter where the date is, e.g. attributes.event_date or trigger.delivery_date.")}
        if mode == self.WaitMode.FROM_DATA and not (
            self.wait_data_path.startswith(("trigger.", "attributes.")) and len(self.wait_data_path.split(".")) >= 2
        ):
            return {"wait_data_path": _("Enter where the days are, e.g. trigger.line_items.cycle_days or attributes.cycle_days.")}
        return {}

    @property
    def wait_duration(self) -> timedelta:
        return timedelta(days=self.wait_days, hours=self.wait_hours, minutes=self.wait_minutes)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.kind == self.Kind.WAIT:
            errors.update(self.wait_errors())
        send_channels = {self.Kind.SEND_EMAIL: "email", self.Kind.SEND_SMS: "sms", self.Kind.SEND_WHATSAPP: "whatsapp"}
        if self.kind in send_channels:
            channel = send_channels[self.kind]
            if self.template_id is None:
                errors["template"] = _("Choose the message this step sends.")
            elif self.template.channel != channel:
                label = Channel(channel).label
                errors["template"] = _("This step sends %(channel)s; choose a %(channel)s message.") % {"channel": label}
        if self.kind == self.Kind.UPDATE_ATTRIBUTE and not self.attribute_name.strip():
            errors["attribute_name"] = _("Enter the attribute to set, e.g. vip_tier.")
        if self.kind == self.Kind.NOTIFY_STAFF and "@" not in self.notify_email:
            errors["notify_email"] = _("Enter the staff email address to notify.")
        if self.kind == self.Kind.MOVE_TO_WORKFLOW:
            if self.target_workflow_id is None:
                errors["target_workflow"] = _("Choose the workflow the contact moves to.")
            elif self.target_workflow_id == self.workflow_id:
                errors["target_workflow"] = _("A workflow cannot hand contacts to itself.")
        if self.kind in (self.Kind.ADD_TAG, self.Kind.REMOVE_TAG) and not self.tag.strip():
            errors["tag"] = _("Enter the tag to add or remove.")
        if self.kind == self.Kind.CHANGE_SCORE and self.score_delta == 0:
            errors["score_delta"] = _("Enter a score change other than 0.")
        if self.kind == self.Kind.CONDITION:
            if not self.condition:
                errors["condition"] = _("A condition step needs a condition.")
            else:
                try:
                    conditions.validate(self.condition)
                except conditions.ConditionError as error:
                    errors["condition"] = str(error)
        if errors:
            raise ValidationError(errors)


class Enrollment(models.Model):
    """One contact in one workflow."""

    class State(models.TextChoices):
        ACTIVE = "active", _("Active")
        COMPLETED = "completed", _("Completed")
        EXITED = "exited", _("Exited")
        FAILED = "failed", _("Failed")

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="enrollments", verbose_name=_("workflow"))
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="enrollments", verbose_name=_("contact"))
    key = models.CharField(_("key"), max_length=200, blank=True, help_text=_("The checkout or order that started it, if any."))
    state = models.CharField(_("state"), max_length=20, choices=State.choices, default=State.ACTIVE)
    step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("next step")
    )
    visit = models.PositiveIntegerField(_("visit"), default=0, help_text=_("Counts step entries; part of each delivery's key."))
    next_run_at = models.DateTimeField(_("next run"), null=True, blank=True)
    waiting_since = models.DateTimeField(
        _("waiting for an event since"), null=True, blank=True, help_text=_("Set while a wait-for-event step waits.")
    )
    enrolled_at = models.DateTimeField(_("enrolled at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    exit_reason = models.CharField(_("exit reason"), max_length=200, blank=True)
    context = models.JSONField(_("trigger data"), default=dict, blank=True)
    trigger_event = models.ForeignKey(
        "contacts.Event", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("trigger event")
    )
    converted_at = models.DateTimeField(_("converted at"), null=True, blank=True)
    revenue = models.DecimalField(_("revenue"), max_digits=14, decimal_places=2, default=Decimal("0"))

    class Meta:
        ordering = ["-enrolled_at", "-id"]
        verbose_name = _("enrollment")
        verbose_name_plural = _("enrollments")
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "contact", "key"], condition=Q(state="active"), name="enrollment_one_active_per_key"
            ),
        ]
        indexes = [
            # Read by the tick: active enrollments whose next step is due.
            models.Index(fields=["next_run_at"], condition=Q(state="active"), name="enrollment_due_idx"),
            # Read by exits and goals when an event arrives for a contact.
            models.Index(fields=["contact", "workflow"], name="enrollment_contact_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.contact} in {self.workflow}"


class TriggerState(models.Model):
    """Whether a contact matched a workflow's watched condition at the last check.

    Condition triggers fire on the change, so a lead score that stays above 50 enrolls once and a
    score that drops and crosses again enrolls again.
    """

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="trigger_states")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="trigger_states")
    matched_since = models.DateTimeField(_("matching since"))

    class Meta:
        verbose_name = _("trigger state")
        verbose_name_plural = _("trigger states")
        constraints = [models.UniqueConstraint(fields=["workflow", "contact"], name="trigger_state_unique")]

    def __str__(self) -> str:
        return f"{self.contact_id} matches {self.workflow_id}"


class StepLog(models.Model):
    """The record of one enrollment at one step, including every skip and its reason."""

    class Outcome(models.TextChoices):
        ENTERED = "entered", _("Entered")
        WAITED = "waited", _("Waiting")
        QUEUED = "queued", _("Message queued")
        SKIPPED = "skipped", _("Skipped")
        BRANCHED = "branched", _("Branched")
        TAGGED = "tagged", _("Tag changed")
        SCORED = "scored", _("Score changed")
        EXITED = "exited", _("Exited")
        COMPLETED = "completed", _("Completed")
        CONVERTED = "converted", _("Goal reached")
        FAILED = "failed", _("Failed, retried later")
        DEFERRED = "deferred", _("Deferred by the sending policy")

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="logs", verbose_name=_("enrollment"))
    step = models.ForeignKey(Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="logs", verbose_name=_("step"))
    visit = models.PositiveIntegerField(_("visit"), default=0)
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome.choices)
    # English text written by the engine, kept as its record; the admin, the timeline and explain
    # show it in the reader's language through workflows.reasons.display.
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    at = models.DateTimeField(_("at"))

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("step log")
        verbose_name_plural = _("step logs")
        indexes = [models.Index(fields=["enrollment", "at"], name="steplog_enrollment_idx")]

    def __str__(self) -> str:
        return f"{self.enrollment_id} {self.outcome}"


# The sending policy: one row of installation-wide settings plus its rule rows, all edited on one
# admin page. The engine reads it before every promotional send (workflows/engine/policy.py).

DEFAULT_QUIET_HOURS = (time(21, 0), time(8, 0))
# (channel, max messages, window in hours), created with the policy row.
DEFAULT_FREQUENCY_CAPS = (
    (Channel.EMAIL, 3, 7 * 24),
    (Channel.SMS, 1, 7 * 24),
    (Channel.WHATSAPP, 2, 7 * 24),
)
# (channel, earlier channel): no SMS on a local day that already had an email.
DEFAULT_CHANNEL_SPACINGS = ((Channel.SMS, Channel.EMAIL),)


class SendingPolicy(models.Model):
    """Installation-wide rules for promotional messages, in one row created with defaults on first use.

    Transactional messages are exempt from every rule here, but consent and address checks still apply to them.
    """

    quiet_hours_start = models.TimeField(
        _("quiet hours from"),
        null=True,
        blank=True,
        default=DEFAULT_QUIET_HOURS[0],
        help_text=_("No promotional message is sent from this local time on, in the contact's time zone, e.g. 21:00."),
    )
    quiet_hours_end = models.TimeField(
        _("quiet hours until"),
        null=True,
        blank=True,
        default=DEFAULT_QUIET_HOURS[1],
        help_text=_("Sending starts again at this local time, e.g. 08:00. Clear both times to send at any hour."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("sending policy")
        verbose_name_plural = _("sending policy")

    def __str__(self) -> str:
        return str(_("Sending policy"))

    def clean(self) -> None:
        start, end = self.quiet_hours_start, self.quiet_hours_end
        if (start is None) != (end is None):
            raise ValidationError(_("Enter both quiet hours times, e.g. 21:00 and 08:00, or clear both to send at any hour."))
        if start is not None and start == end:
            raise ValidationError(
                {
                    "quiet_hours_end": _("Quiet hours from %(time)s until %(time)s are empty; enter a different end time.")
                    % {"time": start.strftime("%H:%M")}
                }
            )

    @classmethod
    def load(cls) -> "SendingPolicy":
        """Return the policy row, creating it and its default caps and spacing on first use."""
        policy, created = cls.objects.get_or_create(pk=1)
        if created:
            FrequencyCap.objects.bulk_create(
                [
                    FrequencyCap(policy=policy, channel=channel, max_messages=limit, window_hours=hours)
                    for channel, limit, hours in DEFAULT_FREQUENCY_CAPS
                ]
            )
            ChannelSpacing.objects.bulk_create(
                [
                    ChannelSpacing(policy=policy, channel=channel, after_channel=after)
                    for channel, after in DEFAULT_CHANNEL_SPACINGS
                ]
            )
        return policy


class FrequencyCap(models.Model):
    """At most ``max_messages`` promotional messages on a channel per contact in a sliding window, across all workflows."""

    policy = models.ForeignKey(SendingPolicy, on_delete=models.CASCADE, related_name="caps", verbose_name=_("policy"))
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    max_messages = models.PositiveIntegerField(
        _("maximum messages"),
        validators=[MinValueValidator(1)],
        help_text=_("Queued, sending and sent promotional messages count, from every workflow and broadcast, e.g. 3."),
    )
    window_hours = models.PositiveIntegerField(
        _("window (hours)"), validators=[MinValueValidator(1)], help_text=_("E.g. 168 for 7 days.")
    )

    class Meta:
        ordering = ["channel", "window_hours"]
        verbose_name = _("frequency cap")
        verbose_name_plural = _("frequency caps")
        constraints = [
            models.UniqueConstraint(fields=["policy", "channel", "window_hours"], name="frequency_cap_unique_window"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.max_messages} / {self.window_hours} h"


class ChannelSpacing(models.Model):
    """No promotional message on ``channel`` on a local day that already had one on ``after_channel``."""

    policy = models.ForeignKey(SendingPolicy, on_delete=models.CASCADE, related_name="spacings", verbose_name=_("policy"))
    channel = models.CharField(_("no message on"), max_length=20, choices=Channel.choices)
    after_channel = models.CharField(
        _("on a day that already had"),
        max_length=20,
        choices=Channel.choices,
        help_text=_("Days are calendar days in the contact's time zone, e.g. no SMS on a day that already had an email."),
    )

    class Meta:
        ordering = ["channel", "after_channel"]
        verbose_name = _("channel spacing")
        verbose_name_plural = _("channel spacing")
        constraints = [
            models.UniqueConstraint(fields=["policy", "channel", "after_channel"], name="channel_spacing_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} after {self.after_channel}"

    def clean(self) -> None:
        if self.channel and self.channel == self.after_channel:
            raise ValidationError(
                {
                    "after_channel": _("Choose a channel other than %(channel)s; frequency caps limit one channel.")
                    % {"channel": self.channel}
                }
            )


class SuppressionRule(models.Model):
    """Contacts matching the condition get no promotional message from any workflow."""

    policy = models.ForeignKey(
        SendingPolicy, on_delete=models.CASCADE, related_name="suppression_rules", verbose_name=_("policy")
    )
    name = models.CharField(_("name"), max_length=100, help_text=_("Shown in the step log of every message it stops."))
    condition = models.JSONField(
        _("condition"), default=dict, help_text=_('Who gets no promotional messages, e.g. {"tag": "open-ticket"}.')
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("suppression rule")
        verbose_name_plural = _("suppression rules")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not self.condition:
            raise ValidationError({"condition": _('Enter who to suppress, e.g. {"tag": "open-ticket"}.')})
        try:
            conditions.validate(self.condition)
        except conditions.ConditionError as error:
            raise ValidationError({"condition": str(error)}) from error


class QuietPeriod(models.Model):
    """No promotional message for some days after an event, except from the workflows that event triggers."""

    policy = models.ForeignKey(SendingPolicy, on_delete=models.CASCADE, related_name="quiet_periods", verbose_name=_("policy"))
    event_type = models.CharField(
        _("after event"),
        max_length=64,
        help_text=_("E.g. order_placed. Workflows triggered by this event still send, and so do transactional messages."),
    )
    days = models.PositiveIntegerField(_("days"), validators=[MinValueValidator(1)], help_text=_("E.g. 7."))

    class Meta:
        ordering = ["event_type"]
        verbose_name = _("quiet period")
        verbose_name_plural = _("quiet periods")
        constraints = [models.UniqueConstraint(fields=["policy", "event_type"], name="quiet_period_unique_event")]

    def __str__(self) -> str:
        return f"{self.days} days after {self.event_type}"


# The library's replenishment workflow reminds this many days before a product runs out.
REPLENISHMENT_LEAD_DAYS = 7


class ReplenishmentCycle(models.Model):
    """How many days one order of a consumable product lasts, so a reminder goes out before it runs out.

    workflows.replenishment applies the table when an order enrolls contacts: each order line
    without cycle_days takes the days of the row its product matches. A line matches a row by
    SKU first, then by product id, then by a word in its title.
    """

    # Staff type names in their own language. The default rows' names are stored in English and
    # shown through gettext, so each staff member reads them in the admin's language while the
    # stored value (also in product_discontinued events) is the same on every installation.
    name = models.CharField(_("name"), max_length=100, help_text=_("What staff call the product, e.g. Coffee 1 lb."))
    sku = models.CharField(
        _("SKU"),
        max_length=100,
        blank=True,
        help_text=_(
            "The SKU of the product or variant as your shop sends it with each order line, e.g. COF-1LB. "
            "Upper and lower case do not matter."
        ),
    )
    product_id = models.CharField(
        _("product id"),
        max_length=100,
        blank=True,
        help_text=_(
            "The shop's product id, e.g. 7564321098765: the number at the end of the product's address in the "
            "Shopify admin. Covers every variant of the product."
        ),
    )
    title_contains = models.CharField(
        _("title contains"),
        max_length=255,
        blank=True,
        help_text=_(
            "Words in the product or variant title, separated by commas, e.g. coffee, koffie. Upper and lower case do "
            "not matter. Used for order lines whose SKU and product id match no row; when several rows match, the "
            "longest word wins."
        ),
    )
    cycle_days = models.PositiveIntegerField(
        _("cycle (days)"),
        validators=[MinValueValidator(REPLENISHMENT_LEAD_DAYS + 1)],
        help_text=_(
            "Days until one order runs out, e.g. 30 for a 30-day supply. The reminder goes out 7 days earlier, so "
            "the cycle is at least 8 days."
        ),
    )
    discontinued = models.BooleanField(
        _("discontinued"),
        default=False,
        help_text=_(
            "No longer sold: new orders of it get no reminder, and contacts waiting for a reminder about it leave "
            "the workflows that exit on product_discontinued."
        ),
    )

    class Meta:
        ordering = ["cycle_days", "name"]
        verbose_name = _("replenishment cycle")
        verbose_name_plural = _("replenishment cycles")
        constraints = [
            models.CheckConstraint(
                condition=Q(cycle_days__gte=REPLENISHMENT_LEAD_DAYS + 1),
                name="replenishment_cycle_after_reminder",
                violation_error_message=_("Enter a cycle of at least 8 days, so the reminder comes after the order."),
            ),
            models.UniqueConstraint(
                Lower("sku"),
                condition=~Q(sku=""),
                name="replenishment_cycle_unique_sku",
                violation_error_message=_("Another replenishment cycle has this SKU. Change that row or enter another SKU."),
            ),
            models.UniqueConstraint(
                fields=["product_id"],
                condition=~Q(product_id=""),
                name="replenishment_cycle_unique_product",
                violation_error_message=_(
                    "Another replenishment cycle has this product id. Change that row or enter another product id."
                ),
            ),
        ]

    def __str__(self) -> str:
        return gettext(self.name) if self.name else ""

    @property
    def reminder_day(self) -> int | None:
        """The day after the order on which the reminder goes out, e.g. 23 for a 30-day cycle."""
        if self.cycle_days is None:
            return None
        return self.cycle_days - REPLENISHMENT_LEAD_DAYS

    def title_words(self) -> list[str]:
        return [word.strip().lower() for word in self.title_contains.split(",") if word.strip()]

    def clean(self) -> None:
        self.sku = self.sku.strip()
        self.product_id = self.product_id.strip()
        # Order lines carry the number of an id copied from the Shopify API, gid://shopify/Product/7564321098765.
        if self.product_id.startswith("gid://"):
            self.product_id = self.product_id.rsplit("/", 1)[-1]
        if not (self.sku or self.product_id or self.title_words()):
            raise ValidationError(
                _("Enter a SKU, a product id or words from the title, so that order lines can be matched to this product.")
            )
