"""System checks for the settings that sending and tracking rely on."""

from django.conf import settings
from django.core.checks import Warning, register

from campaigns.channels.base import backend_path
from campaigns.channels.brevo import api_key


@register()
def check_webhook_secret(app_configs, **kwargs) -> list[Warning]:
    """Warn when an ESP sends the mail but its tracking webhook accepts posts from anyone."""
    if not str(getattr(settings, "EMAIL_BACKEND", "")).startswith("anymail."):
        return []
    if getattr(settings, "ANYMAIL", {}).get("WEBHOOK_SECRET"):
        return []
    # A forged hard bounce or complaint would suppress a real contact's email.
    return [
        Warning(
            "ANYMAIL['WEBHOOK_SECRET'] is empty, so anyone can post tracking events to /anymail/, "
            "including bounces and complaints that stop all email to a contact.",
            hint="Set MKTAUTO_ANYMAIL_WEBHOOK_SECRET to 'user:password' and put the same in the webhook URL at the ESP.",
            id="campaigns.W001",
        )
    ]


@register()
def check_channel_backends(app_configs, **kwargs) -> list[Warning]:
    """Warn when the Brevo SMS or WhatsApp backend is chosen without what it needs to send."""
    warnings = []
    brevo = "campaigns.channels.brevo.BrevoBackend"
    uses_brevo = [channel for channel in ("sms", "whatsapp") if backend_path(channel) == brevo]
    if uses_brevo and not api_key():
        warnings.append(
            Warning(
                f"The Brevo backend sends {' and '.join(uses_brevo)} but no Brevo API key is set.",
                hint="Set MKTAUTO_BREVO_API_KEY.",
                id="campaigns.W002",
            )
        )
    if "whatsapp" in uses_brevo and not getattr(settings, "MKTAUTO_WHATSAPP_SENDER_NUMBER", ""):
        warnings.append(
            Warning(
                "The Brevo backend sends WhatsApp but no sender number is set.",
                hint="Set MKTAUTO_WHATSAPP_SENDER_NUMBER to the WhatsApp number registered at Brevo, e.g. +31201234567.",
                id="campaigns.W003",
            )
        )
    return warnings
