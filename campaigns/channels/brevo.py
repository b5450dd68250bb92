"""Brevo's HTTP APIs for transactional SMS and WhatsApp.

SMS: POST {api}/transactionalSMS/send with sender, recipient, content, type and unicodeEnabled,
and Brevo returns {"messageId": ...}. WhatsApp: POST {api}/whatsapp/sendMessage with senderNumber,
contactNumbers, templateId and params, and Brevo returns {"messageId": "..."}. Both take the API key in
an ``api-key`` header. Brevo names WhatsApp templates by a number of its own, so a WhatsApp message
needs the template's Brevo id as well as its approved name.

Settings: MKTAUTO_BREVO_API_KEY (falls back to ANYMAIL["BREVO_API_KEY"]), MKTAUTO_BREVO_API_URL,
MKTAUTO_SMS_SENDER, MKTAUTO_WHATSAPP_SENDER_NUMBER, MKTAUTO_CHANNEL_TIMEOUT (seconds).
"""

import logging
from typing import Any

import requests
from django.conf import settings

from campaigns.channels.base import ChannelBackend, ChannelMessage, PermanentChannelError, TransientChannelError

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.brevo.com/v3/"
# Statuses that mean "this request can never succeed as it is". The others (401 and 403 for a bad
# key, 402 for no credits, 429, 5xx) are fixed by staff or by time, so the message is retried.
PERMANENT_STATUSES = {400, 404, 405, 409, 410, 413, 422}
MAX_ERROR_BODY = 300


def api_key() -> str:
    return getattr(settings, "MKTAUTO_BREVO_API_KEY", "") or getattr(settings, "ANYMAIL", {}).get("BREVO_API_KEY", "")


def digits(phone: str) -> str:
    """Return an E.164 number as Brevo takes it: digits with the country code, no plus sign."""
    return "".join(character for character in phone if character.isdigit())


class BrevoBackend(ChannelBackend):
    def __init__(self, channel: str) -> None:
        super().__init__(channel)
        self.api_url = getattr(settings, "MKTAUTO_BREVO_API_URL", DEFAULT_API_URL).rstrip("/") + "/"
        self.timeout = float(getattr(settings, "MKTAUTO_CHANNEL_TIMEOUT", 10))
        self.session: requests.Session | None = None

    def open(self) -> None:
        if self.session is None:
            self.session = requests.Session()

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def send(self, message: ChannelMessage) -> str:
        key = api_key()
        if not key:
            raise TransientChannelError("no Brevo API key; set MKTAUTO_BREVO_API_KEY")
        if message.channel == "sms":
            path, payload = "transactionalSMS/send", self.sms_payload(message)
        elif message.channel == "whatsapp":
            path, payload = "whatsapp/sendMessage", self.whatsapp_payload(message)
        else:
            raise PermanentChannelError(f"Brevo backend cannot send channel {message.channel!r}")

        response = self.post(path, payload, key)
        provider_id = response.get("messageId") if isinstance(response, dict) else None
        if provider_id in (None, ""):
            # Brevo took the message (2xx) but named no id: sending again would send twice.
            logger.warning("Brevo accepted %s %s without a messageId", message.channel, message.reference)
            return ""
        return str(provider_id)

    def sms_payload(self, message: ChannelMessage) -> dict[str, Any]:
        sender = getattr(settings, "MKTAUTO_SMS_SENDER", "") or settings.MKTAUTO_BRAND_NAME[:11]
        payload: dict[str, Any] = {
            "sender": sender,
            "recipient": digits(message.to),
            "content": message.text,
            "type": "transactional" if message.transactional else "marketing",
            "unicodeEnabled": message.unicode,
        }
        if message.reference:
            payload["tag"] = message.reference
        return payload

    def whatsapp_payload(self, message: ChannelMessage) -> dict[str, Any]:
        sender = getattr(settings, "MKTAUTO_WHATSAPP_SENDER_NUMBER", "")
        if not sender:
            raise TransientChannelError("no WhatsApp sender number; set MKTAUTO_WHATSAPP_SENDER_NUMBER")
        if message.provider_template_id is None:
            raise PermanentChannelError(
                f"WhatsApp template {message.template_name!r} ({message.language}) has no Brevo template id; "
                "fill in the template id at Brevo in the message template"
            )
        payload: dict[str, Any] = {
            "senderNumber": digits(sender),
            "contactNumbers": [digits(message.to)],
            "templateId": message.provider_template_id,
        }
        if message.parameters:
            payload["params"] = dict(message.parameters)
        return payload

    def post(self, path: str, payload: dict[str, Any], key: str) -> Any:
        self.open()
        assert self.session is not None
        url = self.api_url + path
        headers = {"api-key": key, "accept": "application/json", "content-type": "application/json"}
        try:
            response = self.session.post(url, json=payload, headers=headers, timeout=self.timeout)
        except requests.Timeout as error:
            raise TransientChannelError(f"Brevo timed out after {self.timeout:g} s: {error}") from error
        except requests.RequestException as error:
            raise TransientChannelError(f"could not reach Brevo at {url}: {error}") from error

        if response.status_code >= 300:
            text = f"Brevo answered {response.status_code} to {path}: {response.text[:MAX_ERROR_BODY]}"
            if response.status_code in PERMANENT_STATUSES:
                raise PermanentChannelError(text)
            raise TransientChannelError(text)
        try:
            return response.json()
        except ValueError:
            return None
