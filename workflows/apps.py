from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class WorkflowsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "workflows"
    verbose_name = _("Workflows")

    def ready(self) -> None:
        from campaigns import send_window
        from contacts.consent import consent_withdrawn
        from workflows import checks, receivers, schedule  # noqa: F401 - checks registers on import
        from workflows.engine.policy import dispatch_hold

        send_window.register(dispatch_hold)
        consent_withdrawn.connect(receivers.exit_on_withdrawn_consent, dispatch_uid="workflows.exit_on_withdrawn_consent")
        post_migrate.connect(schedule.ensure_tick_schedule, sender=self, dispatch_uid="workflows.ensure_tick_schedule")
