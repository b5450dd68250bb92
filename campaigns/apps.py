from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self) -> None:
        from anymail.signals import tracking

        from campaigns import checks, esp_events, receivers  # noqa: F401 - checks registers on import
        from contacts.consent import confirmation_requested, consent_withdrawn

        consent_withdrawn.connect(receivers.cancel_on_withdrawn_consent, dispatch_uid="campaigns.cancel_on_withdrawn_consent")
        confirmation_requested.connect(
            receivers.request_confirmation_on_sign_up, dispatch_uid="campaigns.request_confirmation_on_sign_up"
        )
        tracking.connect(esp_events.handle_tracking_event, dispatch_uid="campaigns.esp_tracking_event")
